/**
 * Config of the MCP servers whose tools agents can use: how to reach each server (a command to spawn
 * for stdio, or a Streamable HTTP URL), which of its tools to expose, and its time limit.
 */
import { z } from "zod";

/**
 * A server's name. It prefixes its tools' names (`<server>__<tool>`), so it is letters and digits in
 * groups joined by a single `-` or `_`: never `__`, never at either end.
 */
export const McpServerName = z
  .string()
  .max(32)
  .regex(/^[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*$/, "Use letters and digits, joined by single '-' or '_' (e.g. 'github', 'my-files')");

const common = {
  name: McpServerName,
  /** Allowlist of the server's tool names, as the server spells them; all tools when absent. */
  tools: z.array(z.string().min(1)).min(1).optional(),
  /** Limit for connecting (spawn + initialize + list tools) and for each request to the server. */
  timeoutMs: z.number().int().positive().max(600_000).default(30_000),
};

/**
 * A server agentkit spawns and talks to over stdin/stdout. The process gets a minimal inherited
 * environment (HOME, LOGNAME, PATH, SHELL, TERM, USER) plus `env`: none of agentkit's other
 * variables, so no API keys leak to it. Its stderr goes to agentkit's log at debug level.
 */
export const McpStdioServerConfig = z.strictObject({
  ...common,
  /** Inferred: a config with `command` is a stdio server. */
  transport: z.literal("stdio").default("stdio"),
  command: z.string().min(1),
  args: z.array(z.string()).default([]),
  env: z.record(z.string(), z.string()).optional(),
  cwd: z.string().min(1).optional(),
});
export type McpStdioServerConfig = z.infer<typeof McpStdioServerConfig>;

/** A server reached over Streamable HTTP. `headers` (e.g. Authorization) go with every request. */
export const McpHttpServerConfig = z.strictObject({
  ...common,
  /** Inferred: a config with `url` is a Streamable HTTP server. */
  transport: z.literal("http").default("http"),
  url: z.url({ protocol: /^https?$/ }),
  headers: z.record(z.string(), z.string()).optional(),
});
export type McpHttpServerConfig = z.infer<typeof McpHttpServerConfig>;

/**
 * One MCP server: `{ name, command, args?, env?, cwd? }` (stdio) or `{ name, url, headers? }`
 * (Streamable HTTP), plus optional `tools` and `timeoutMs`. `transport` may be omitted in input; it
 * is always set after parsing, so code narrows on it.
 * @example
 * McpServerConfig.parse({ name: "files", command: "bunx", args: ["some-mcp-server", "/srv/data"], tools: ["read_file"] });
 * McpServerConfig.parse({ name: "search", url: "https://mcp.example.com/mcp", headers: { authorization: "Bearer …" } });
 */
export const McpServerConfig = z.union([McpStdioServerConfig, McpHttpServerConfig]);
export type McpServerConfig = z.infer<typeof McpServerConfig>;

/** The list of MCP servers; names must be unique. */
export const McpServersConfig = z.array(McpServerConfig).superRefine((servers, context) => {
  const seen = new Set<string>();
  for (const [index, server] of servers.entries()) {
    if (seen.has(server.name)) {
      context.addIssue({ code: "custom", path: [index, "name"], message: `Duplicate MCP server name '${server.name}'` });
    }
    seen.add(server.name);
  }
});
export type McpServersConfig = z.infer<typeof McpServersConfig>;
