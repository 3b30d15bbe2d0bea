/** Runs a tool call through the real engine phase (lookup, zod validation, abort, error policy). */
import { executeToolCall, type ToolOutcome } from "../../../src/engine/tool-execution.ts";
import type { Tool } from "../../../src/tools/tool.ts";

let callNumber = 0;

export function runTool(
  tools: readonly Tool[],
  name: string,
  input: unknown,
  options: { abortSignal?: AbortSignal; timeoutMs?: number } = {},
): Promise<ToolOutcome> {
  return executeToolCall(
    { id: `call-${++callNumber}`, name, arguments: typeof input === "string" ? input : JSON.stringify(input) },
    {
      tools: new Map(tools.map((tool) => [tool.name, tool])),
      timeoutMs: options.timeoutMs ?? 15_000,
      abortSignal: options.abortSignal ?? new AbortController().signal,
    },
  );
}
