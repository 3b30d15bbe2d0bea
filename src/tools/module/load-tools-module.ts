/**
 * Loads the tools module (`tools_module` in the config file, `AGENTKIT_TOOLS_MODULE`) at start-up:
 * imports the TypeScript file (Bun transpiles it, in the compiled binary too), collects the tools
 * it exports and checks them. Anything wrong stops start-up with one line naming the file.
 *
 * What counts as the module's tools (all of them, each tool once however often it is exported):
 *   - `export default [tool, …]` or `export default tool`;
 *   - `export const tools = [tool, …]`;
 *   - every other named export that is a tool made by `defineTool` (other exports are ignored:
 *     helpers and constants may be exported freely).
 * A default export or a `tools` export that is not a tool or a list of tools is an error, and so is
 * a module with no tools at all.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Tool } from "../tool.ts";
import { isDefinedTool } from "../define.ts";
import { provideModules } from "./provided-modules.ts";

/** A tools module that cannot be used; its message is one line that names the file. */
export class ToolsModuleError extends Error {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`tools module ${file}: ${oneLine(detail)}`);
    this.name = "ToolsModuleError";
  }
}

export interface LoadToolsModuleOptions {
  /** Names already taken (built-in tools, `http_fetch`): a tool with one of them is an error. */
  taken?: Iterable<string>;
  /** Resolves a relative `path` (default: the current directory). */
  cwd?: string;
}

/** Imports `path` and returns its tools, checked; throws `ToolsModuleError`. */
export async function loadToolsModule(path: string, options: LoadToolsModuleOptions = {}): Promise<Tool[]> {
  const file = resolve(options.cwd ?? process.cwd(), path);
  if (!existsSync(file)) throw new ToolsModuleError(file, "not found");
  if (!statSync(file).isFile()) throw new ToolsModuleError(file, "not a file");
  provideModules(dirname(file));
  let exports: Record<string, unknown>;
  try {
    exports = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (error) {
    throw new ToolsModuleError(file, importFailure(error));
  }
  const tools = collectTools(file, exports);
  if (tools.length === 0) {
    throw new ToolsModuleError(
      file,
      "exports no tools: export tools made with defineTool (from \"agentkit/tools\"): `export default [myTool]`, `export const tools = [myTool]`, or `export const myTool = defineTool({...})`",
    );
  }
  const taken = new Set(options.taken ?? []);
  const seen = new Set<string>();
  for (const tool of tools) {
    if (taken.has(tool.name)) throw new ToolsModuleError(file, `tool '${tool.name}' has the name of a built-in tool; choose another name`);
    if (seen.has(tool.name)) throw new ToolsModuleError(file, `two tools are named '${tool.name}'`);
    seen.add(tool.name);
  }
  return tools;
}

function collectTools(file: string, exports: Record<string, unknown>): Tool[] {
  const tools = new Set<Tool>();
  const list = (value: unknown, where: string) => {
    const items = Array.isArray(value) ? value : [value];
    for (const [index, item] of items.entries()) {
      if (isDefinedTool(item)) tools.add(item);
      else {
        const at = Array.isArray(value) ? `${where}[${index}]` : where;
        throw new ToolsModuleError(file, `${at} is not a tool made with defineTool (import { defineTool } from "agentkit/tools"): got ${describe(item)}`);
      }
    }
  };
  for (const [name, value] of Object.entries(exports)) {
    if (name === "default") list(value, "the default export");
    else if (name === "tools") list(value, "export 'tools'");
    else if (isDefinedTool(value)) tools.add(value);
  }
  return [...tools];
}

/** What went wrong importing the module, in one line: a syntax error with its line and column. */
function importFailure(error: unknown): string {
  const first = error instanceof AggregateError && error.errors.length > 0 ? error.errors[0] : error;
  const position = (first as { position?: { line?: number; column?: number } | null } | undefined)?.position;
  const message = first instanceof Error || (typeof first === "object" && first !== null && "message" in first) ? String((first as { message: unknown }).message) : String(first);
  const name = (first as { name?: unknown } | undefined)?.name;
  if (name === "BuildMessage" || (first as object | undefined)?.constructor?.name === "BuildMessage") {
    return `cannot be compiled${position?.line ? ` (line ${position.line}, column ${position.column ?? 0})` : ""}: ${message}`;
  }
  if (name === "ResolveMessage" || (first as object | undefined)?.constructor?.name === "ResolveMessage") return `cannot be loaded: ${message}`;
  return `threw while loading: ${typeof name === "string" && name !== "Error" ? `${name}: ` : ""}${message}`;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") {
    const name = (value as { name?: unknown }).name;
    return typeof name === "string" ? `an object named '${name}'` : "an object";
  }
  return typeof value;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").trim();
}
