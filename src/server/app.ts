/**
 * The HTTP API (Hono): health, agents, tasks, events, cancel, and the WebSocket route's upgrade.
 * Runtime-agnostic: the Bun adapter (serve.ts) passes in `upgrade`, so `app.request()` works in tests.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import type { AgentPool } from "../agents/pool.ts";
import { AgentkitError, toAgentkitError } from "../errors.ts";
import type { Logger } from "../lib/logger.ts";
import { CreateTaskBody, EventsQuery, LastEventId, ListTasksQuery, TaskIdParam, WatchQuery } from "../protocol/api.ts";
import type { TaskStore } from "../store/store.ts";
import type { LiveFeed } from "../bus/live-feed.ts";
import { sseResponse } from "./sse.ts";
import type { TaskRunner } from "../tasks/runner.ts";
import {
  AGENTKIT_PROTOCOL,
  keyFromHeaders,
  keyFromProtocols,
  parseProtocols,
  type Authenticator,
  type Principal,
} from "./auth.ts";
import { validate } from "./validation.ts";

/** What the WebSocket adapter needs to know about a connection it is asked to upgrade. */
export interface WatchRequest {
  taskId: string;
  after: number;
  /** Whether the watcher wants live `delta` frames. */
  deltas: boolean;
  /** Undefined when the key was missing or wrong: the socket gets an error frame and close 4001. */
  principal: Principal | undefined;
}

export interface AppDeps {
  store: TaskStore;
  feed: LiveFeed;
  runner: TaskRunner;
  agents: AgentPool;
  auth: Authenticator;
  logger: Logger;
  version: string;
  maxBodyBytes: number;
  /** A Server-Sent Events client with more than this many bytes queued is cut off. */
  slowClientBytes: number;
  /** Origins allowed by CORS (`*` for any); empty: no CORS headers. */
  corsOrigins?: readonly string[];
  /** Upgrades the request to a task WebSocket; false if it could not. Absent outside Bun.serve. */
  upgrade?: (request: Request, watch: WatchRequest, headers: Record<string, string>) => boolean;
  now?: () => Date;
}

export function createApp(deps: AppDeps) {
  const { store, runner, agents, auth, logger } = deps;
  const now = deps.now ?? (() => new Date());
  const startedAt = Date.now();
  const app = new Hono<{ Variables: { principal: Principal } }>();

  const origins = deps.corsOrigins ?? [];
  if (origins.length > 0) {
    app.use(
      "*",
      cors({
        origin: origins.includes("*") ? "*" : [...origins],
        allowHeaders: ["Authorization", "X-API-Key", "Content-Type", "Last-Event-ID"],
        allowMethods: ["GET", "POST", "OPTIONS"],
        exposeHeaders: ["Location"],
        maxAge: 600,
      }),
    );
  }

  app.onError((error, c) => {
    let failure: AgentkitError;
    if (error instanceof HTTPException) {
      // Hono's own 4xx (malformed JSON body, …): keep the status, use our shape.
      const code = error.status === 413 ? "payload_too_large" : error.status === 401 ? "unauthorized" : "bad_request";
      failure = new AgentkitError(code, error.message || "Bad request");
    } else {
      failure = toAgentkitError(error);
    }
    if (failure.code === "internal") {
      logger.error("request failed", { method: c.req.method, path: c.req.path, error: String(error) });
    }
    return c.json(failure.toJSON(), failure.httpStatus);
  });
  app.notFound((c) => c.json(new AgentkitError("not_found", `No route for ${c.req.method} ${c.req.path}`).toJSON(), 404));

  app.get("/health", (c) =>
    c.json({ status: "ok", version: deps.version, uptime_s: Math.round((Date.now() - startedAt) / 1000), tasks: runner.stats() }),
  );

  // The WebSocket route authenticates after the upgrade (error frame, then close 4001), as the seed does.
  app.get("/ws/tasks/:id", (c) => {
    const parsedId = TaskIdParam.safeParse({ id: c.req.param("id") });
    const query = WatchQuery.safeParse(c.req.query());
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket" || !deps.upgrade) {
      throw new AgentkitError("upgrade_required", "This endpoint speaks WebSocket; connect with a WebSocket client");
    }
    if (!parsedId.success || !query.success) {
      throw new AgentkitError("bad_request", "Invalid task id or query (after must be a non-negative integer)");
    }
    // The key may come as ?api_key= (the seed's way), a header, or a subprotocol (browsers).
    const protocols = parseProtocols(c.req.header("sec-websocket-protocol") ?? null);
    const key = query.data.api_key ?? keyFromHeaders(c.req.raw.headers) ?? keyFromProtocols(protocols);
    const watch = { taskId: parsedId.data.id, after: query.data.after, deltas: query.data.deltas, principal: auth.authenticate(key) };
    // A browser that offers subprotocols needs one selected; select ours, never the key-carrying one.
    const headers: Record<string, string> = protocols.includes(AGENTKIT_PROTOCOL) ? { "Sec-WebSocket-Protocol": AGENTKIT_PROTOCOL } : {};
    if (!deps.upgrade(c.req.raw, watch, headers)) {
      throw new AgentkitError("bad_request", "WebSocket upgrade failed");
    }
    return new Response(null);
  });

  // Every other route needs the key when one is configured.
  app.use("*", async (c, next) => {
    // An EventSource cannot set headers: the event stream also takes ?api_key=, like the WebSocket.
    const streaming = c.req.method === "GET" && c.req.header("accept")?.includes("text/event-stream");
    const principal = auth.authenticate(keyFromHeaders(c.req.raw.headers) ?? (streaming ? c.req.query("api_key") : undefined));
    if (!principal) {
      throw new AgentkitError("unauthorized", "Invalid or missing API key (use Authorization: Bearer <key> or X-API-Key)");
    }
    c.set("principal", principal);
    await next();
  });

  app.get("/agents", (c) =>
    c.json({
      agents: agents.list().map(({ definition }) => ({
        name: definition.name,
        description: definition.description,
        model: definition.model,
        tools: definition.tools,
        max_steps: definition.max_steps,
        timeout_ms: definition.timeout_ms,
        default: definition.name === agents.defaultAgent.definition.name,
      })),
    }),
  );

  app.post(
    "/tasks",
    bodyLimit({
      maxSize: deps.maxBodyBytes,
      onError: () => {
        throw new AgentkitError("payload_too_large", `Request body is larger than ${deps.maxBodyBytes} bytes`);
      },
    }),
    validate("json", CreateTaskBody),
    async (c) => {
      const body = c.req.valid("json");
      const agent = body.agent === undefined ? agents.defaultAgent : agents.get(body.agent);
      if (!agent) {
        const known = agents.list().map((a) => a.definition.name).join(", ");
        throw new AgentkitError("validation_failed", `Unknown agent '${body.agent}'; known agents: ${known}`, {
          details: [{ path: "agent", message: `must be one of: ${known}` }],
        });
      }
      runner.ensureCapacity();
      const task = await store.createTask({
        id: crypto.randomUUID(),
        owner: c.get("principal").id,
        agent: agent.definition.name,
        input: body.input,
        metadata: body.metadata ?? {},
        createdAt: now(),
      });
      runner.submit(task);
      return c.json(task, 201, { Location: `/tasks/${task.id}` });
    },
  );

  app.get("/tasks", validate("query", ListTasksQuery), async (c) => {
    const query = c.req.valid("query");
    const principal = c.get("principal");
    const page = await store.listTasks({ ...query, owner: principal.admin ? undefined : principal.id });
    return c.json({ tasks: page.tasks, next_cursor: page.nextCursor });
  });

  app.get("/tasks/:id", validate("param", TaskIdParam), async (c) => {
    return c.json(await requireTask(c.req.valid("param").id, c.get("principal")));
  });

  app.get("/tasks/:id/events", validate("param", TaskIdParam), validate("query", EventsQuery), async (c) => {
    const task = await requireTask(c.req.valid("param").id, c.get("principal"));
    const { after, limit, deltas } = c.req.valid("query");
    if (c.req.header("accept")?.includes("text/event-stream")) {
      const lastEventId = LastEventId.safeParse(c.req.header("last-event-id"));
      if (!lastEventId.success) throw new AgentkitError("bad_request", "Last-Event-ID must be a seq (a non-negative integer)");
      return sseResponse({
        store,
        feed: deps.feed,
        logger,
        task,
        after: lastEventId.data ?? after,
        deltas,
        slowClientBytes: deps.slowClientBytes,
        signal: c.req.raw.signal,
      });
    }
    const events = await store.events(task.id, after, limit);
    // Stored frames are already JSON: splice them in rather than parse and re-serialise.
    const body =
      `{"task_id":${JSON.stringify(task.id)},"status":${JSON.stringify(task.status)},"last_seq":${task.last_seq},` +
      `"pruned_through":${task.pruned_through},"events":[${events.map((event) => event.frame).join(",")}]}`;
    return c.body(body, 200, { "Content-Type": "application/json" });
  });

  app.post("/tasks/:id/cancel", validate("param", TaskIdParam), async (c) => {
    const { id } = c.req.valid("param");
    await requireTask(id, c.get("principal"));
    const task = await runner.cancel(id);
    if (!task) throw new AgentkitError("not_found", `No task with id '${id}'`);
    return c.json(task);
  });

  /** The task, if this principal may see it; another key's task is as absent as a missing one. */
  async function requireTask(id: string, principal: Principal) {
    const task = await store.getTask(id);
    if (!task || !canSee(principal, task)) throw new AgentkitError("not_found", `No task with id '${id}'`);
    return task;
  }

  return app;
}

export type App = ReturnType<typeof createApp>;

/** Whether a principal may read, watch or cancel a task. */
export function canSee(principal: Principal, task: { owner: string }): boolean {
  return principal.admin || principal.id === task.owner;
}
