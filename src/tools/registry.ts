/** The built-in tools by name; agents pick from these. */
import type { Tool } from "./tool.ts";
import { calculatorTool } from "./calculator.ts";
import { createCurrentTimeTool } from "./current-time.ts";
import { askUserTool } from "./ask-user.ts";

export type ToolRegistry = ReadonlyMap<string, Tool>;

export function builtinTools(): ToolRegistry {
  const tools: Tool[] = [calculatorTool, createCurrentTimeTool(), askUserTool];
  return new Map(tools.map((tool) => [tool.name, tool]));
}
