/**
 * Builds the MCP SDK client transport for one server config: a spawned process over stdio, or
 * Streamable HTTP. A stdio server's stderr is split into lines and handed to `onStderrLine`, so it
 * reaches agentkit's log instead of its terminal.
 */
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { createGuardedFetch } from "./mcp-http-fetch.ts";
import type { McpServerConfig } from "./mcp-server-config.ts";

export interface McpTransportHandle {
  transport: Transport;
  /** The server's process id while a stdio server runs; null for HTTP or before spawn. */
  processId(): number | null;
}

const MAX_STDERR_LINE = 500;

export function createMcpTransport(
  config: McpServerConfig,
  events: { onStderrLine(line: string): void; onStderrError(error: Error): void; onMessageTooLarge?(kind: "json" | "sse", limitBytes: number): void },
): McpTransportHandle {
  if (config.transport === "http") {
    const transport = new StreamableHTTPClientTransport(new URL(config.url), {
      requestInit: config.headers ? { headers: config.headers } : undefined,
      // Limits what one message may hold and closes a given-up request's response (see mcp-http-fetch.ts).
      fetch: createGuardedFetch({ onMessageTooLarge: ({ kind, limitBytes }) => events.onMessageTooLarge?.(kind, limitBytes) }),
    });
    return { transport, processId: () => null };
  }
  const transport = new StdioClientTransport({
    command: config.command,
    args: config.args,
    env: config.env,
    cwd: config.cwd,
    stderr: "pipe",
  });
  // With stderr "pipe", the SDK hands out the stream before spawn, so no early line is lost.
  const stderr = transport.stderr;
  if (stderr) {
    let pending = "";
    stderr.on("data", (chunk: Buffer | string) => {
      pending += chunk.toString();
      const lines = pending.split(/\r?\n/);
      pending = lines.pop() ?? "";
      for (const line of lines) if (line.trim() !== "") events.onStderrLine(line.slice(0, MAX_STDERR_LINE));
      // A server that never ends a line must not grow this buffer without bound.
      if (pending.length > MAX_STDERR_LINE) {
        events.onStderrLine(pending.slice(0, MAX_STDERR_LINE));
        pending = "";
      }
    });
    // An 'error' event without a listener would be thrown as an uncaught exception.
    stderr.on("error", (error: Error) => events.onStderrError(error));
  }
  return { transport, processId: () => transport.pid };
}
