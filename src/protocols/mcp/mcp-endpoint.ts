/**
 * The MCP endpoint's work, per HTTP request (loaded on the first `POST /mcp`: the MCP SDK is not
 * part of a server's start-up). Stateless Streamable HTTP: every POST gets its own SDK `Server` and
 * `WebStandardStreamableHTTPServerTransport`, so any node of a cluster answers any request and a
 * restart loses no session. `initialize` hands out an `Mcp-Session-Id`, which agentkit keeps no
 * state for: it only tells one client's request ids from another's when a cancel comes in.
 *
 * `tools/call` is a thin adapter over the same parts as `POST /tasks`: it creates a task (the
 * caller's principal owns it), follows it like any watcher, sends `notifications/progress` for its
 * durable step events, and answers with the final answer. Its response stream is the call: a
 * `notifications/cancelled` for it, or the client closing that stream, cancels the task
 * (`runner.cancel`, the one cancel every endpoint uses).
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { z } from "zod";
import {
  CancelledNotificationSchema,
  ErrorCode,
  ListToolsRequestSchema,
  type CallToolRequest,
  type CallToolResult,
  type ServerNotification,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import type { jsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/types.js";
import { AgentkitError, errorMessage } from "../../errors.ts";
import type { Task } from "../../protocol/task.ts";
import type { Principal } from "../../server/auth.ts";
import { callKey, type CallRegistry } from "./calls.ts";
import { describeStep, followTask, type FollowEnd, type OpenRequest } from "./follow-task.ts";
import type { McpServerDeps } from "./index.ts";
import { AgentToolArguments, agentTools, structuredContentOf, structuredShape } from "./tools.ts";

/** `_meta` keys of a tool result. */
export const META_TASK_ID = "agentkit/task_id";
export const META_STATUS = "agentkit/status";

const INSTRUCTIONS =
  "Each tool is an agentkit agent: calling it runs a task on that agent and returns the agent's final answer. " +
  "Progress notifications report the task's steps while it runs; cancelling the call cancels the task. " +
  "The result's _meta holds the task id (agentkit/task_id), to watch or steer the task over agentkit's REST, SSE or WebSocket API.";

/** Elicitation (the only thing the SDK server validates with JSON Schema) is not used: no Ajv per request. */
const NO_VALIDATION: jsonSchemaValidator = {
  getValidator: () => (input) => ({ valid: true, data: input as never, errorMessage: undefined }),
};

/** The longest call key a cancel is announced to the cluster for (a NOTIFY payload is < 8,000 bytes). */
const MAX_ANNOUNCED_KEY = 1024;

/** SSE comment lines this often keep Bun's idle timeout (10 s) and proxies from closing a quiet call. */
const KEEP_ALIVE_MS = 5_000;

export type McpHandler = (request: Request, body: unknown, principal: Principal) => Promise<Response>;

export function createMcpEndpoint(deps: McpServerDeps & { calls: CallRegistry }): McpHandler {
  const { logger, calls } = deps;
  const progressIntervalMs = deps.progressIntervalMs ?? 250;

  return async (request, body, principal) => {
    const messages = Array.isArray(body) ? body : [body];
    const initializing = messages.some((message) => (message as { method?: unknown } | null)?.method === "initialize");
    // A new session id at `initialize`; afterwards the client sends it back on every request.
    const newSession = initializing ? crypto.randomUUID() : undefined;
    const session = newSession ?? request.headers.get("mcp-session-id") ?? "";

    const server = new Server(
      { name: "agentkit", title: "agentkit agents", version: deps.version },
      { capabilities: { tools: { listChanged: false } }, instructions: INSTRUCTIONS, jsonSchemaValidator: NO_VALIDATION },
    );
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, keepAliveMs: KEEP_ALIVE_MS });
    server.onerror = (error) => logger.debug("mcp: protocol error", { error: errorMessage(error) });

    server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: agentTools(deps.agents) as unknown as Tool[] }));

    server.setNotificationHandler(CancelledNotificationSchema, (notification) => {
      const { requestId, reason } = notification.params;
      if (requestId === undefined) return;
      const key = callKey(principal.id, session, requestId);
      // Not held here: in a cluster the call may be on another node (any node answers any request).
      // A key longer than any agentkit hands out (a session id is a UUID) is not announced.
      // A late cancel (its call has just ended here) is not announced either: elsewhere it would wait for a call reusing the id.
      if (calls.cancel(key, reason ?? "cancelled by the client") === "unknown" && key.length <= MAX_ANNOUNCED_KEY) {
        deps.runner.announceCallCancel(key, reason ?? "cancelled by the client");
      }
    });

    // Registered with a schema that only names the method: with the full one, the SDK's protocol
    // layer parsed a malformed call (no `name`, `arguments` an array) first and answered -32603
    // (internal error) with zod's dump; this way the SDK's `Server` checks the call itself and
    // answers -32602 (invalid params).
    server.setRequestHandler(TOOLS_CALL, async (checked, extra): Promise<CallToolResult> => {
      const call = checked as unknown as CallToolRequest;
      const name = call.params.name;
      const agent = deps.agents.get(name);
      if (!agent) throw invalidParams(`Unknown tool '${name}'; the tools are the agents: ${deps.agents.list().map((a) => a.definition.name).join(", ")}`);
      const parsed = AgentToolArguments.safeParse(call.params.arguments ?? {});
      if (!parsed.success) {
        return errorResult(`Invalid arguments: ${parsed.error.issues.map((issue) => `${issue.path.join(".") || "arguments"}: ${issue.message}`).join("; ")}`);
      }
      const { input, thread_id: threadId } = parsed.data;

      // The call ends when the task does; cancelling the call cancels the task. Registered before the
      // task is made (admission, a database write): a cancel arriving meanwhile finds the call, and
      // the task is cancelled as soon as it exists.
      const cancelled = new AbortController();
      const forget = calls.register(callKey(principal.id, session, extra.requestId), (reason) => cancelled.abort(reason));

      // The task, exactly as POST /tasks (or POST /threads/:id/tasks) makes it.
      let task: Task;
      let steered = false;
      try {
        const created = await deps.createTask(principal, { input, agent: name }, threadId);
        const json = (await created.json()) as Task | { steered: true; task: Task };
        steered = created.status === 202;
        task = "steered" in json ? json.task : json;
      } catch (error) {
        forget();
        // Refusals (queue full, a busy or unknown thread…) are the tool's answer; faults are protocol errors.
        if (error instanceof AgentkitError && error.code !== "internal" && error.code !== "unavailable") {
          return errorResult(`agentkit refused the task (${error.code}): ${error.message}`);
        }
        throw error;
      }

      const onDisconnect = () => cancelled.abort("the client closed the connection");
      request.signal.addEventListener("abort", onDisconnect, { once: true });
      if (request.signal.aborted) onDisconnect();
      // The server stopping is not the client leaving: the call is answered (the task goes on).
      let shuttingDown = false;
      const unregister = deps.streams?.add(() => {
        shuttingDown = true;
        cancelled.abort("the server is shutting down");
      });

      const progressToken = extra._meta?.progressToken;
      const progress =
        progressToken === undefined
          ? undefined
          : throttled(progressIntervalMs, (value: number, message: string) =>
              extra.sendNotification({ method: "notifications/progress", params: { progressToken, progress: value, message } } as ServerNotification),
            );

      let end: FollowEnd;
      try {
        end = await followTask({
          store: deps.store,
          feed: deps.feed,
          logger,
          task,
          follow: deps.follow,
          signal: cancelled.signal,
          onStep: (seq, event) => {
            const message = describeStep(event);
            if (message !== undefined) progress?.report(seq, message);
          },
        });
      } finally {
        forget();
        unregister?.();
        request.signal.removeEventListener("abort", onDisconnect);
      }

      if (end.kind === "aborted" && shuttingDown) {
        await progress?.flush();
        logger.info("mcp: the server is stopping; a tool call is answered, its task goes on", { task: task.id });
        return {
          content: [{ type: "text", text: `The agentkit server is shutting down; the task ${task.id} goes on (after a restart, or on another node). Its result: GET /tasks/${task.id}.` }],
          isError: true,
          _meta: { [META_TASK_ID]: task.id, [META_STATUS]: "running", ...(steered ? { "agentkit/steered": true } : {}) },
        };
      }
      if (end.kind === "aborted") {
        progress?.stop();
        logger.info("mcp: tool call cancelled; cancelling its task", { task: task.id, reason: String(cancelled.signal.reason) });
        await deps.runner.cancel(task.id).catch((error) => logger.error("mcp: could not cancel a task", { task: task.id, error: errorMessage(error) }));
        // The client gave up on this call: no answer is sent (the spec's SHOULD NOT); its stream ends.
        await transport.close();
        return errorResult("cancelled");
      }
      await progress?.flush();
      const meta = (status: string, more: Record<string, unknown> = {}) => ({
        [META_TASK_ID]: task.id,
        [META_STATUS]: status,
        ...(steered ? { "agentkit/steered": true } : {}),
        ...more,
      });

      if (end.kind === "waiting") {
        return {
          content: [{ type: "text", text: waitingText(end.task, end.open) }],
          isError: true,
          _meta: meta("waiting", { "agentkit/waiting_for": end.open }),
        };
      }
      const { status, output, error, output_json: outputJson } = end.end;
      if (status === "completed") {
        const shape = structuredShape(agent.definition);
        return {
          content: [{ type: "text", text: output ?? "" }],
          ...(shape && outputJson !== null && outputJson !== undefined ? { structuredContent: structuredContentOf(shape, outputJson) } : {}),
          _meta: meta(status),
        };
      }
      const why =
        status === "cancelled"
          ? `The task ${task.id} was cancelled`
          : `The task ${task.id} ${status === "timed_out" ? "timed out" : "failed"}${error ? ` (${error.code}): ${error.message}` : ""}`;
      return { content: [{ type: "text", text: why }], isError: true, _meta: meta(status, error ? { "agentkit/error": error } : {}) };
    });

    await server.connect(transport);
    let response: Response;
    try {
      response = await transport.handleRequest(request, { parsedBody: body });
    } catch (error) {
      await transport.close();
      throw error;
    }
    if (newSession && response.ok) response.headers.set("mcp-session-id", newSession);
    // Only notifications (202), or a refusal: nothing streams, nothing to keep.
    if (response.status !== 200) void transport.close();
    return response;
  };
}

/** `tools/call` as far as the SDK needs it to route the request (see where it is registered). */
const TOOLS_CALL = z.looseObject({ method: z.literal("tools/call") });

/**
 * A -32602 error. Not an `McpError`, whose message starts "MCP error -32602: " — a client's SDK
 * adds that prefix again when it reports the error.
 */
function invalidParams(message: string): Error {
  return Object.assign(new Error(message), { code: ErrorCode.InvalidParams });
}

function errorResult(text: string): CallToolResult {
  return { content: [{ type: "text", text }], isError: true };
}

/** What an MCP client is told when the task waits for a person, and how to decide. */
function waitingText(task: Task, open: readonly OpenRequest[]): string {
  const lines = [`The task ${task.id} is waiting for a person; it goes on once they decide${task.wait_until ? ` (the wait ends on its own at ${task.wait_until})` : ""}.`];
  for (const request of open) {
    if (request.kind === "approval") {
      lines.push(
        `- waiting for approval of ${request.name} ${JSON.stringify(request.arguments ?? {})}: decide at POST /tasks/${task.id}/approvals {"call_id":${JSON.stringify(request.call_id)},"decision":"approve"|"reject"}`,
      );
    } else {
      lines.push(`- waiting for an answer to "${request.question}": answer at POST /tasks/${task.id}/answers {"call_id":${JSON.stringify(request.call_id)},"text":"…"}`);
    }
  }
  lines.push(`Watch it at GET /tasks/${task.id}/events (or the web console); its final answer will be the task's output.`);
  return lines.join("\n");
}

/**
 * Progress at most once per `intervalMs`: the first at once, then the latest one at the end of
 * each interval (values in between are skipped; progress only grows). `flush` sends what waits.
 */
function throttled(intervalMs: number, send: (progress: number, message: string) => Promise<void>) {
  let last = Number.NEGATIVE_INFINITY;
  let pending: { progress: number; message: string } | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let chain: Promise<void> = Promise.resolve();
  const sendPending = () => {
    timer = undefined;
    const next = pending;
    pending = undefined;
    if (!next) return chain;
    last = performance.now();
    chain = chain.then(() => send(next.progress, next.message)).catch(() => {});
    return chain;
  };
  return {
    report(progress: number, message: string) {
      pending = { progress, message };
      if (timer) return;
      const wait = last + intervalMs - performance.now();
      if (wait <= 0) void sendPending();
      else timer = setTimeout(sendPending, wait);
    },
    flush(): Promise<void> {
      clearTimeout(timer);
      return sendPending();
    },
    /** Drops what waits: the call is over. */
    stop() {
      clearTimeout(timer);
      timer = undefined;
      pending = undefined;
    },
  };
}
