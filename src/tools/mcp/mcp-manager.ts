/**
 * The MCP manager: one supervisor per configured server, and their tools as agentkit `Tool`s. A
 * server that fails to start, crashes or hangs only makes its own tools fail (as `tool_error`
 * observations) while it is restarted in the background; the other servers keep serving.
 */
import type { Logger } from "../../lib/logger.ts";
import { VERSION } from "../../version.ts";
import type { Tool } from "../tool.ts";
import type { McpServerConfig } from "./mcp-server-config.ts";
import { McpServerSupervisor, type McpServerStatus, type RestartBackoff } from "./mcp-server-supervisor.ts";
import { createToolSchemaValidator } from "./mcp-input-schema.ts";
import { createMcpTool } from "./mcp-tool.ts";

export interface McpManagerOptions {
  /** Parsed configs (`McpServerConfig`); names must be unique. */
  servers: readonly McpServerConfig[];
  logger: Logger;
  /** Delays between reconnect attempts of a failed server. Default: 1 s doubling up to 30 s. */
  restartBackoff?: RestartBackoff;
  /** Called on every state change of a server (connecting, ready, waiting_to_restart, closed). */
  onStatusChange?(status: McpServerStatus): void;
}

export interface McpManager {
  /**
   * Connects every server in parallel. Resolves once each has connected or failed its first attempt
   * (failed ones keep retrying in the background). Never rejects.
   */
  start(): Promise<void>;
  /**
   * The tools of one server, named `<server>__<tool>` (see mcp-tool-name.ts). Reflects the server's
   * latest tool list, so call it when building a task's tools; the returned tools keep working across
   * restarts. While a server has never been reached, lists placeholders for its config's `tools`
   * allowlist (or nothing without one). Throws for a server name that is not configured.
   */
  tools(serverName: string): Tool[];
  /** A snapshot of every server. */
  status(): McpServerStatus[];
  /** Stops every server (stdio processes exit) and stops reconnecting. */
  close(): Promise<void>;
}

const DEFAULT_BACKOFF: RestartBackoff = { initialDelayMs: 1_000, maxDelayMs: 30_000 };

/**
 * Creates the manager; nothing connects until `start()`.
 * @example
 * const mcp = createMcpManager({ servers: McpServersConfig.parse(config.mcpServers), logger });
 * await mcp.start();
 * const tools = [...builtins, ...mcp.tools("files")];
 * // on shutdown
 * await mcp.close();
 */
export function createMcpManager(options: McpManagerOptions): McpManager {
  const validator = createToolSchemaValidator((pattern, reason) =>
    options.logger.warn("mcp: a tool schema's pattern cannot be matched in linear time; JavaScript's engine checks it", { pattern: pattern.slice(0, 200), reason }),
  );
  const supervisors = new Map<string, McpServerSupervisor>();
  for (const config of options.servers) {
    if (supervisors.has(config.name)) throw new Error(`Duplicate MCP server name '${config.name}'`);
    supervisors.set(
      config.name,
      new McpServerSupervisor({
        config,
        logger: options.logger,
        backoff: options.restartBackoff ?? DEFAULT_BACKOFF,
        validator,
        clientInfo: { name: "agentkit", version: VERSION },
        onStatusChange: options.onStatusChange ?? (() => {}),
      }),
    );
  }

  return {
    async start() {
      await Promise.all([...supervisors.values()].map((supervisor) => supervisor.start()));
    },
    tools(serverName) {
      const supervisor = supervisors.get(serverName);
      if (!supervisor) {
        const known = [...supervisors.keys()].join(", ") || "none";
        throw new Error(`Unknown MCP server '${serverName}'. Configured servers: ${known}`);
      }
      return supervisor.listedTools().map((listed) => createMcpTool(supervisor, listed));
    },
    status() {
      return [...supervisors.values()].map((supervisor) => supervisor.status());
    },
    async close() {
      await Promise.all([...supervisors.values()].map((supervisor) => supervisor.close()));
    },
  };
}
