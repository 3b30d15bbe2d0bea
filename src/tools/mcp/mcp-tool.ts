/**
 * Adapts one MCP tool to agentkit's `Tool` seam. The tool holds no connection: `execute` goes through
 * the server's supervisor, so a Tool obtained before a restart keeps working after it.
 */
import type { Tool } from "../tool.ts";
import { mcpArgumentsSchema } from "./mcp-input-schema.ts";
import type { McpServerSupervisor } from "./mcp-server-supervisor.ts";
import type { McpListedTool } from "./mcp-tool-listing.ts";

export function createMcpTool(supervisor: McpServerSupervisor, listed: McpListedTool): Tool<Record<string, unknown>> {
  return {
    name: listed.name,
    description: listed.description,
    inputSchema: mcpArgumentsSchema(() => supervisor.argumentsCheck(listed.serverToolName)),
    jsonSchema: listed.jsonSchema,
    idempotent: listed.idempotent,
    execute: (input, { abortSignal }) => supervisor.call(listed, input, abortSignal),
  };
}
