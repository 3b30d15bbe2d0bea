/**
 * agentkit as an MCP server: `POST /mcp`, Streamable HTTP (MCP 2025-03-26 and later), every agent
 * a tool. The route sits behind the same `auth` middleware as the REST API (a key as
 * `Authorization: Bearer` or `X-API-Key`; open mode open; a share token is refused), so a tenant's
 * tool calls create tasks it owns. The MCP SDK itself is loaded on the first request
 * (mcp-endpoint.ts), not at start-up.
 *
 * `GET /mcp` (a standalone server-to-client stream) and `DELETE /mcp` (ending a session) answer 405
 * (the 405 table in app.ts): the server sends nothing outside a call's own response stream, and a
 * session holds no state to end.
 */
import type { Hono } from "hono";
import { limitBody } from "../../server/body-limit.ts";
import type { AgentPool } from "../../agents/pool.ts";
import type { LiveFeed } from "../../bus/live-feed.ts";
import type { Logger } from "../../lib/logger.ts";
import { BODY_LIMITS, scanJsonStructure } from "../../protocol/limits.ts";
import type { Task } from "../../protocol/task.ts";
import type { Principal } from "../../server/auth.ts";
import type { EventStreams } from "../../server/event-stream.ts";
import type { TaskStore } from "../../store/store.ts";
import type { TaskRunner } from "../../tasks/runner.ts";
import { createCallRegistry } from "./calls.ts";
import type { McpHandler } from "./mcp-endpoint.ts";

export const MCP_PATH = "/mcp";

export interface McpServerDeps {
  store: TaskStore;
  feed: LiveFeed;
  runner: TaskRunner;
  agents: AgentPool;
  logger: Logger;
  version: string;
  maxBodyBytes: number;
  /** Cluster mode: follow a task that may run on another node (as the SSE endpoint does). */
  follow?: (task: Task) => () => void;
  /** `POST /tasks` (with `threadId`: `POST /threads/:id/tasks`) as app.ts does it: its Response (201, or 202 when steered). */
  createTask(principal: Principal, body: { input: string; agent?: string }, threadId?: string): Promise<Response>;
  /** Least time between two progress notifications of a call (default 250 ms). */
  progressIntervalMs?: number;
  /** The server's open long responses: a shutdown answers the calls still following their tasks. */
  streams?: EventStreams;
}

/** A JSON-RPC error answered before the SDK sees the request (the body could not be read). */
function jsonRpcError(status: number, code: number, message: string): Response {
  return Response.json({ jsonrpc: "2.0", error: { code, message }, id: null }, { status });
}

/** Registers `POST /mcp` on the app, after its auth middleware (the principal is set). */
export function registerMcpServer(app: Hono<{ Variables: { principal: Principal } }>, deps: McpServerDeps): void {
  const calls = createCallRegistry();
  // A cancel that reached another node of a cluster, for a call held here.
  deps.runner.onCallCancel((key, reason) => calls.cancel(key, reason));
  let handler: Promise<McpHandler> | undefined;
  app.post(
    MCP_PATH,
    limitBody(deps.maxBodyBytes),
    async (c) => {
      const text = await c.req.text();
      // Hostile structure is refused before parsing, as on every JSON route (the JSON-RPC envelope
      // adds a few levels to a task's body).
      const problem = scanJsonStructure(text, { maxDepth: BODY_LIMITS.maxDepth + 4, maxTokens: BODY_LIMITS.maxTokens + 64 });
      if (problem) return jsonRpcError(400, -32600, `Invalid Request: the body is too complex (${problem})`);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return jsonRpcError(400, -32700, "Parse error: Invalid JSON");
      }
      // Two requests of one batch with one id: both would run, one answer would be lost (the
      // transport answers by id). Refused whole, as a batch over the size limit is.
      const duplicate = duplicateRequestId(body);
      if (duplicate !== undefined) return jsonRpcError(400, -32600, `Invalid Request: the batch has two requests with id ${JSON.stringify(duplicate).slice(0, 100)}`);
      handler ??= import("./mcp-endpoint.ts").then(({ createMcpEndpoint }) => createMcpEndpoint({ ...deps, calls }));
      return (await handler)(c.req.raw, body, c.get("principal"));
    },
  );
}

/** The first request id a JSON-RPC batch uses twice (requests only: notifications have none), if any. */
function duplicateRequestId(body: unknown): string | number | undefined {
  if (!Array.isArray(body)) return undefined;
  const seen = new Set<string>();
  for (const message of body) {
    if (typeof message !== "object" || message === null || !("method" in message) || !("id" in message)) continue;
    const id = (message as { id: unknown }).id;
    if (typeof id !== "string" && typeof id !== "number") continue;
    const key = `${typeof id}:${id}`;
    if (seen.has(key)) return id;
    seen.add(key);
  }
  return undefined;
}
