export { createMcpManager, type McpManager, type McpManagerOptions } from "./mcp-manager.ts";
export {
  McpHttpServerConfig,
  McpServerConfig,
  McpServerName,
  McpServersConfig,
  McpStdioServerConfig,
} from "./mcp-server-config.ts";
export type { McpServerState, McpServerStatus, RestartBackoff } from "./mcp-server-supervisor.ts";
export { MCP_TOOL_NAME_SEPARATOR, mcpToolName } from "./mcp-tool-name.ts";
