/**
 * How an MCP tool is named for the model: `<server>__<tool>`. The double underscore cannot occur in
 * a server name, so the prefix is unambiguous and never collides with a built-in (none contains
 * `__`). Model APIs accept `^[A-Za-z0-9_-]{1,64}$` (OpenAI's rule; Anthropic's is no stricter), so
 * other characters become `_` and the result is cut at 64 characters. Two tools that end up with the
 * same name are reported by the caller, and only the first is exposed.
 */

export const MCP_TOOL_NAME_SEPARATOR = "__";
const MAX_TOOL_NAME_LENGTH = 64;

/**
 * The name the model sees for `toolName` of server `serverName`.
 * @example
 * mcpToolName("files", "read.file") // "files__read_file"
 */
export function mcpToolName(serverName: string, toolName: string): string {
  const safe = toolName.replace(/[^A-Za-z0-9_-]/g, "_");
  return `${serverName}${MCP_TOOL_NAME_SEPARATOR}${safe}`.slice(0, MAX_TOOL_NAME_LENGTH);
}
