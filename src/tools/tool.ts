/**
 * The tool seam: a name, a zod input schema and `execute(input, { abortSignal })`.
 * Arguments from the model are validated against the schema before `execute` sees them.
 */
import { z } from "zod";
import type { ToolSpec } from "../llm/model.ts";

export interface ToolContext {
  /** Aborts on task cancel, task deadline or the per-call timeout. Pass it on to any I/O. */
  abortSignal: AbortSignal;
  /** The id of the task that made the call (set by the engine; absent when a tool is run on its own). */
  taskId?: string;
  /** The per-call time limit, ms, already applied to `abortSignal` (set by the engine). */
  timeoutMs?: number;
}

export interface Tool<Input = any> {
  readonly name: string;
  readonly description: string;
  readonly inputSchema: z.ZodType<Input>;
  /**
   * The input's JSON Schema as shown to the model, for tools whose schema arrives as JSON Schema
   * (MCP servers). When absent, `toolSpec` derives it from `inputSchema`. `inputSchema` must still
   * accept exactly the inputs this schema describes: the engine validates with `inputSchema` only.
   */
  readonly jsonSchema?: Record<string, unknown>;
  /**
   * True when running the same call twice has the same effect as running it once (a read, a pure
   * computation). A call of an idempotent tool that was interrupted (its task's server stopped
   * before its result was stored) is run again when the task resumes; any other interrupted call is
   * reported to the model as a `tool_error` with code `interrupted`. Default false.
   */
  readonly idempotent?: boolean;
  execute(input: Input, context: ToolContext): Promise<unknown>;
}

/**
 * Defines a tool with typed input.
 * @example
 * const echo = defineTool({
 *   name: "echo", description: "Repeats its input",
 *   inputSchema: z.object({ text: z.string() }),
 *   execute: async ({ text }) => text,
 * });
 */
export function defineTool<Schema extends z.ZodType>(tool: {
  name: string;
  description: string;
  inputSchema: Schema;
  /** See `Tool.idempotent`; default false. */
  idempotent?: boolean;
  execute(input: z.infer<Schema>, context: ToolContext): Promise<unknown>;
}): Tool<z.infer<Schema>> {
  return tool as Tool<z.infer<Schema>>;
}

/** Describes a tool to a model (JSON Schema of its input: `tool.jsonSchema` if given, else derived). */
export function toolSpec(tool: Tool): ToolSpec {
  // A tool's spec never changes: derive it once, not at the start of every task.
  let spec = specs.get(tool);
  if (!spec) {
    const source = tool.jsonSchema ?? (z.toJSONSchema(tool.inputSchema) as Record<string, unknown>);
    const { $schema: _ignored, ...schema } = source;
    spec = { name: tool.name, description: tool.description, inputSchema: schema };
    specs.set(tool, spec);
  }
  return spec;
}
const specs = new WeakMap<Tool, ToolSpec>();

/** A tool failure with structured fields, shown to the model as a `tool_error` observation. */
export class ToolError extends Error {
  constructor(
    readonly code: "unknown_tool" | "invalid_arguments" | "execution_failed" | "timeout" | "aborted" | "interrupted" | "not_runnable",
    message: string,
    readonly retryable: boolean,
    options: { cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "ToolError";
  }
}
