/**
 * `agentkit/tools`: the public way to write tools in TypeScript.
 *
 * A tools module (`"tools_module": "./tools.ts"` in the config file, or `AGENTKIT_TOOLS_MODULE`) is
 * imported once at start-up — by `bun src/main.ts` and by the compiled binary alike — and the tools
 * it exports join the built-in ones: agents list them in `tools` by name.
 *
 * @example
 * // tools.ts
 * import { defineTool, z } from "agentkit/tools";
 *
 * export const wordCount = defineTool({
 *   name: "word_count",
 *   description: "Counts the words of a text",
 *   input: z.object({ text: z.string() }),
 *   idempotent: true,
 *   async execute({ text }, { signal }) {
 *     signal.throwIfAborted();
 *     return { words: text.split(/\s+/).filter(Boolean).length };
 *   },
 * });
 *
 * `agentkit/tools` and `zod` resolve inside the server even where no `node_modules` holds them
 * (a tools module next to the compiled binary): the loader provides both (src/tools/module). Both
 * are agentkit's own zod 4, so a schema is always one the server can validate and describe.
 */
import { z } from "zod";
import { toolSpec, type Tool, type ToolContext } from "./tool.ts";

export { z };

/** What `execute` gets besides its input. */
export interface ToolCallContext {
  /**
   * Aborts when the task is cancelled, when it runs past its time limit, and when this call runs
   * past the agent's `tool_timeout_ms`. Pass it on to `fetch` and any other I/O, and stop when it
   * aborts: the task does not wait for a tool that ignores it, but the tool's work goes on.
   */
  signal: AbortSignal;
  /** The id of the task that made the call. */
  taskId: string;
  /** The per-call time limit (the agent's `tool_timeout_ms`), already applied to `signal`. */
  timeoutMs: number;
}

/** What `defineTool` takes. */
export interface ToolDefinition<Schema extends z.ZodType> {
  /** What the model calls it: `^[A-Za-z0-9_-]{1,64}$`, without `__` (kept for MCP tools). */
  name: string;
  /** What the model reads to decide when to call it. */
  description: string;
  /** The input: a zod object schema. The model's arguments are checked against it before `execute`. */
  input: Schema;
  /**
   * The tool's result: any JSON value (a string is shown to the model as it is, anything else as
   * JSON). A thrown error becomes a `tool_error` observation the model reads (`execution_failed`).
   */
  execute(input: z.infer<Schema>, context: ToolCallContext): Promise<unknown> | unknown;
  /**
   * True when running the same call twice has the same effect as once (a read, a computation): an
   * interrupted call is then run again when its task resumes after a restart. Default false.
   */
  idempotent?: boolean;
}

/** A tool made by `defineTool`: what a tools module exports. */
export type DefinedTool<Input = unknown> = Tool<Input> & { readonly [DEFINED]: true };

/** Marks tools made by `defineTool` (a registry symbol: the same in every copy of this module). */
const DEFINED: unique symbol = Symbol.for("agentkit.defineTool") as never;

const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Defines a tool. Checks the definition at once (a bad name, a missing description, an input that
 * is not a zod object schema or cannot be described as JSON Schema) and throws a `TypeError` naming
 * the tool — in a tools module that stops start-up with one line naming the module.
 */
export function defineTool<Schema extends z.ZodType>(definition: ToolDefinition<Schema>): DefinedTool<z.infer<Schema>> {
  const label = typeof definition?.name === "string" ? `defineTool '${definition.name}'` : "defineTool";
  if (typeof definition !== "object" || definition === null) throw new TypeError(`${label}: expects an object {name, description, input, execute}`);
  const { name, description, input, execute, idempotent } = definition;
  if (typeof name !== "string" || !TOOL_NAME.test(name)) {
    throw new TypeError(`${label}: name must be 1 to 64 characters of A-Z a-z 0-9 _ - (got ${JSON.stringify(name) ?? "nothing"})`);
  }
  if (name.includes("__")) throw new TypeError(`${label}: name must not contain '__' (names with '__' are MCP tools, <server>__<tool>)`);
  if (typeof description !== "string" || description.trim() === "") throw new TypeError(`${label}: description must be a non-empty string`);
  if (typeof execute !== "function") throw new TypeError(`${label}: execute must be a function`);
  if (idempotent !== undefined && typeof idempotent !== "boolean") throw new TypeError(`${label}: idempotent must be true or false`);
  if (typeof input === "object" && input !== null && !("_zod" in input) && "_def" in input && typeof (input as { safeParse?: unknown }).safeParse === "function") {
    // zod 3's schemas have `_def` and no `_zod`: the module found a zod 3 of its own (node_modules).
    throw new TypeError(`${label}: input is a zod 3 schema (the module's own "zod" resolves to zod 3): install zod 4 there, or import z from "agentkit/tools"`);
  }
  if (typeof input !== "object" || input === null || !("_zod" in input) || typeof (input as { safeParse?: unknown }).safeParse !== "function") {
    throw new TypeError(`${label}: input must be a zod schema, e.g. z.object({ text: z.string() }) (import z from "agentkit/tools" or "zod")`);
  }
  const tool: Tool<z.infer<Schema>> = {
    name,
    description,
    inputSchema: input as z.ZodType<z.infer<Schema>>,
    ...(idempotent === undefined ? {} : { idempotent }),
    execute: async (value, context: ToolContext) =>
      execute(value, { signal: context.abortSignal, taskId: context.taskId ?? "", timeoutMs: context.timeoutMs ?? Number.POSITIVE_INFINITY }),
  };
  // The JSON Schema the model is shown: derived (and cached) now, so a schema it cannot be made of
  // stops start-up instead of failing every task that lists the tool.
  let schema: Record<string, unknown>;
  try {
    schema = toolSpec(tool).inputSchema;
  } catch (error) {
    throw new TypeError(`${label}: input cannot be described as JSON Schema for the model: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (schema.type !== "object") {
    throw new TypeError(`${label}: input must be an object schema (z.object({...})): the model passes named arguments`);
  }
  Object.defineProperty(tool, DEFINED, { value: true });
  return tool as DefinedTool<z.infer<Schema>>;
}

/** Whether `value` is a tool made by `defineTool` (from any copy of this module). */
export function isDefinedTool(value: unknown): value is DefinedTool {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[DEFINED] === true;
}
