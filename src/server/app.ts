/**
 * The HTTP API (Hono): health, agents, tasks, events, cancel, and the WebSocket route's upgrade.
 * Runtime-agnostic: the Bun adapter (serve.ts) passes in `upgrade`, so `app.request()` works in tests.
 */
import { Hono, type Context } from "hono";
import { TrieRouter } from "hono/router/trie-router";
import type { z } from "zod";
import { limitBody } from "./body-limit.ts";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import type { AgentPool } from "../agents/pool.ts";
import type { WatcherLimits } from "./watcher-limits.ts";
import { AgentkitError, isDatabaseInterrupted, isDatabaseUnavailable, isStoreWriteFailure, toAgentkitError } from "../errors.ts";
import type { Logger } from "../lib/logger.ts";
import {
  AnswerBody,
  ApprovalBody,
  CreateTaskBody,
  CreateThreadTaskBody,
  EventsQuery,
  InputBody,
  LastEventId,
  ListTasksQuery,
  ListThreadsQuery,
  TaskIdParam,
  type BusyPolicy,
} from "../protocol/api.ts";
import type { Interaction } from "../tasks/interaction.ts";
import { UNFINISHED_STATUSES } from "../protocol/task.ts";
import { canSeeThread } from "./auth.ts";
import { BODY_LIMITS, LIST_MAX_BYTES } from "../protocol/limits.ts";
import { PAGE_BYTES, type TaskStore } from "../store/store.ts";
import type { StoreHealth } from "../store/store-health.ts";
import type { LiveFeed } from "../bus/live-feed.ts";
import type { EventStreams } from "./event-stream.ts";
import { sseResponse } from "./sse.ts";
import { admitTask, type TaskRunner } from "../tasks/runner.ts";
import type { Task, TaskStatus } from "../protocol/task.ts";
import { canControl, canSee, keyFromHeaders, requireControl, watchOnlyError, type Authenticator, type Principal } from "./auth.ts";
import { createShareTokens, SHARE_TTL, ShareBody } from "./share-tokens.ts";
import { jsonBody, validate } from "./validation.ts";
import { DOCS_PATHS, registerDocs } from "./docs.ts";
import { wantsEventStream } from "./negotiate.ts";
import { lastSeqOf } from "./watch.ts";
import { allowedOrigins, readHandshake, type WatchRequest } from "./ws-handshake.ts";
import { METRICS_CONTENT_TYPE } from "../telemetry/metrics.ts";
import type { Telemetry } from "../telemetry/telemetry.ts";
import { createWebhookAllowlist, type WebhookAllowlist } from "../webhooks/allowlist.ts";
import { registerWebhookRoutes } from "../webhooks/routes.ts";
import { registerMcpServer } from "../protocols/mcp/index.ts";
import { databaseWait } from "./database-wait.ts";
import { registerAgUi } from "../protocols/ag-ui/register.ts";
import { A2A_CARD_PATHS, A2A_ROUTES, registerA2A } from "../protocols/a2a/register.ts";
import { newTaskId } from "../tasks/task-id.ts";

export type { WatchRequest } from "./ws-handshake.ts";

export interface AppDeps {
  store: TaskStore;
  feed: LiveFeed;
  runner: TaskRunner;
  agents: AgentPool;
  auth: Authenticator;
  logger: Logger;
  version: string;
  maxBodyBytes: number;
  /** A Server-Sent Events client with more than this many bytes queued (for `slowClientGraceMs`) is cut off. */
  slowClientBytes: number;
  /** How long more than `slowClientBytes` may stay queued for a client (default 1 s; see `slow-client.ts`). */
  slowClientGraceMs?: number;
  /** The server's open event streams (SSE, A2A, AG-UI): a shutdown ends them before the connections close. */
  streams?: EventStreams;
  /** The watcher limits: SSE streams of `GET /tasks/:id/events` and A2A subscriptions count with WebSocket watchers. */
  watchers?: WatcherLimits;
  /** Origins allowed by CORS (`*` for any); empty: no CORS headers. */
  corsOrigins?: readonly string[];
  /** Upgrades the request to a task WebSocket; false if it could not. Absent outside Bun.serve. */
  upgrade?: (request: Request, watch: WatchRequest, headers: Record<string, string>) => boolean;
  now?: () => Date;
  /** Cluster mode: follow a task that may run on another node while a watcher streams it. */
  follow?: (task: Task) => () => void;
  /** This node, for /health: its id, its role, and whether it is part of a cluster. */
  node?: { id: string; role: "all" | "api" | "worker"; cluster: boolean };
  /** Cluster mode: whether the database answers within `timeoutMs` (for /health, and requests kept waiting). */
  databaseReachable?: (timeoutMs: number) => Promise<boolean>;
  /** One node (SQLite): whether the store is taking writes (for /health; a request's failed write is noted). */
  storeHealth?: StoreHealth;
  /**
   * Signs the read-only watch tokens of `POST /tasks/:id/share` (HMAC-SHA256; at least 32 bytes).
   * The authenticator must verify with the same secret. Unset: that route answers 501.
   */
  shareSecret?: Uint8Array;
  /** Steering, approvals and answers (`POST /tasks/:id/input|approvals|answers`). */
  interaction?: Interaction;
  /** `GET /metrics`: the Prometheus exposition (admin key only). Unset: 404. */
  metrics?: () => string;
  /** Event-stream watchers and slow clients (metrics). */
  telemetry?: Telemetry;
  /** Webhooks (src/webhooks): which `webhook_url`s tasks may have, and the signing secret. Unset: refused. */
  webhooks?: { allowlist: WebhookAllowlist; secret: string };
}

export function createApp(deps: AppDeps) {
  const { store, runner, agents, auth, logger } = deps;
  const now = deps.now ?? (() => new Date());
  const shares = deps.shareSecret ? createShareTokens({ secret: deps.shareSecret, now: () => now().getTime() }) : undefined;
  const startedAt = Date.now();
  // TrieRouter, not Hono's default SmartRouter: that one compiles a RegExpRouter from all these
  // routes on the first request (several ms, paid by the first /health after start); the trie is
  // built as routes are added and matches these paths as fast. (SmartRouter falls back to this same
  // TrieRouter for paths a RegExpRouter cannot take: routing is the same.)
  const app = new Hono<{ Variables: { principal: Principal } }>({ router: new TrieRouter() });

  const origins = deps.corsOrigins ?? [];
  if (origins.length > 0) {
    app.use(
      "*",
      cors({
        origin: origins.includes("*") ? "*" : [...origins],
        allowHeaders: ["Authorization", "X-API-Key", "Content-Type", "Last-Event-ID", "Mcp-Session-Id", "Mcp-Protocol-Version", "A2A-Version", "A2A-Extensions"],
        // Every method some route answers (the browser's preflight for another is refused).
        allowMethods: ALL_METHODS,
        exposeHeaders: ["Location", "Retry-After", "Allow", "Mcp-Session-Id"],
        maxAge: 600,
      }),
    );
  }

  app.onError((error, c) => {
    // A client that went away mid-request (typically during its body upload) is not a server fault:
    // logged at debug, so no client can flood the error log. Nobody reads the answer.
    if (error instanceof Error && error.name === "AbortError" && c.req.raw.signal.aborted) {
      logger.debug("request aborted by the client", { method: c.req.method, path: c.req.path, error: String(error) });
      return c.json(new AgentkitError("bad_request", "The request was aborted").toJSON(), 400);
    }
    let failure: AgentkitError;
    if (error instanceof HTTPException) {
      // Hono's own 4xx (malformed JSON body, …): keep the status, use our shape.
      const code = error.status === 413 ? "payload_too_large" : error.status === 401 ? "unauthorized" : "bad_request";
      failure = new AgentkitError(code, error.message || "Bad request");
    } else if (isDatabaseUnavailable(error)) {
      // PostgreSQL is down or restarting (cluster mode): the server is fine, try again shortly.
      logger.warn("request failed: the database is unreachable", { method: c.req.method, path: c.req.path, error: String(error) });
      failure = new AgentkitError("unavailable", "The database is unreachable; try again shortly");
    } else if (isDatabaseInterrupted(error)) {
      // PostgreSQL cut the statement short (a statement timeout behind a lock, a deadlock, too many
      // connections): nothing of the request was kept, and it can be made again shortly.
      logger.warn("request failed: the database cut it short", { method: c.req.method, path: c.req.path, error: String(error) });
      // Its words stay in the log: they can name roles, files and settings.
      failure = new AgentkitError("unavailable", "The database could not complete the request; try again shortly");
    } else if (isStoreWriteFailure(error)) {
      // SQLite failed for a reason outside the request (a full disk, an I/O error, a read-only
      // file, a lock held too long): nothing was stored, and the request can be made again once
      // the operator has fixed it. A failed write marked the store's writes failing (/health) as it
      // failed (the server's store reports its writes); a failed read does not, it is logged here.
      const write = deps.storeHealth?.noted(error) ?? true;
      logger.warn(write ? "request failed: the store cannot write" : "request failed: the store could not be read", {
        method: c.req.method,
        path: c.req.path,
        error: String(error),
      });
      failure = new AgentkitError("unavailable", `The data store ${write ? "cannot write" : "could not be read"} (${(error as Error).message}); try again later`);
    } else {
      failure = toAgentkitError(error);
    }
    if (failure.code === "internal") {
      logger.error("request failed", { method: c.req.method, path: c.req.path, error: String(error) });
    }
    // A full queue drains as tasks finish: tell the client when trying again makes sense.
    const headers: Record<string, string> =
      failure.code === "queue_full" ? { "Retry-After": String(QUEUE_FULL_RETRY_AFTER_S) } : failure.code === "unavailable" ? { "Retry-After": "2" } : {};
    return c.json(failure.toJSON(), failure.httpStatus, headers);
  });
  app.notFound((c) => c.json(new AgentkitError("not_found", `No route for ${c.req.method} ${c.req.path}`).toJSON(), 404));

  app.get("/health", async (c) => {
    // A liveness probe gives up after ~1 s (Kubernetes' default): a database that does not answer
    // must not make /health that slow (the node is alive, and says so, "degraded").
    const database = deps.databaseReachable ? await deps.databaseReachable(HEALTH_PING_MS).catch(() => false) : undefined;
    const store = deps.storeHealth?.state();
    return c.json(
      {
        status: database === false || (store !== undefined && store.writes !== "ok") ? "degraded" : "ok",
        version: deps.version,
        uptime_s: Math.round((Date.now() - startedAt) / 1000),
        tasks: runner.stats(),
        ...(deps.node ? { node: deps.node.id, role: deps.node.role, cluster: deps.node.cluster } : {}),
        ...(database === undefined ? {} : { database: database ? "reachable" : "unreachable" }),
        ...(store === undefined ? {} : { store }),
      },
      // 200 even when the database is down: the process is alive (a restart would not help, and a
      // restart loop would hurt); the body says it is degraded, for a readiness check to read.
      200,
    );
  });

  // Prometheus metrics, on every role (workers run the tasks): the admin key when keys are set.
  app.get("/metrics", (c) => {
    if (!deps.metrics) throw new AgentkitError("not_found", "No route for GET /metrics");
    const principal = auth.authenticate(keyFromHeaders(c.req.raw.headers));
    if (!principal) throw new AgentkitError("unauthorized", "Invalid or missing API key (use Authorization: Bearer <key> or X-API-Key)");
    if (!principal.admin || principal.readOnly) throw new AgentkitError("forbidden", "Metrics need the admin key");
    return c.body(deps.metrics(), 200, { "Content-Type": METRICS_CONTENT_TYPE, "Cache-Control": "no-store" });
  });

  if (deps.node?.role === "worker") {
    // A worker runs tasks; the API and watchers are served by the nodes with role all or api.
    app.all("*", (c) => {
      throw new AgentkitError("not_found", `This node is a worker (--role worker): it runs tasks and serves /health and /metrics only; use an API node for ${c.req.method} ${c.req.path}`);
    });
  }

  // The API's documents and docs page: open, like /health (docs.ts).
  registerDocs(app, deps.version);

  // The open routes' OPTIONS and other methods are answered without a key too (204 or 405, with
  // `Allow`): there is nothing to hide about a route anyone may call. Their own methods pass on to
  // their handlers (the agent cards' are registered below).
  for (const path of OPEN_PATHS) {
    const methods = ROUTES[path]!;
    app.all(path, (c, next) => (methods.includes(c.req.method) ? next() : otherMethod(c, methods)));
  }

  // Cluster mode: a request answers 503 when the database stops answering (database-wait.ts).
  if (deps.databaseReachable) {
    const reachable = deps.databaseReachable;
    app.use("*", databaseWait(() => reachable(DATABASE_PING_MS)));
  }

  // A2A (Agent2Agent): open agent cards, and JSON-RPC that checks the key itself (src/protocols/a2a).
  registerA2A(app, deps);

  // The WebSocket route authenticates after the upgrade (error frame, then close 4001), as the seed
  // does; only a browser origin that is not allowed is refused before it (ws-handshake.ts).
  const wsOrigins = allowedOrigins(origins);
  app.get("/ws/tasks/:id", (c) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket" || !deps.upgrade) {
      throw new AgentkitError("upgrade_required", "This endpoint speaks WebSocket; connect with a WebSocket client");
    }
    const { watch, headers } = readHandshake(c.req.raw, c.req.param("id"), c.req.query(), { auth, origins: wsOrigins });
    if (!deps.upgrade(c.req.raw, watch, headers)) {
      throw new AgentkitError("bad_request", "WebSocket upgrade failed");
    }
    return new Response(null);
  });

  // Every other route needs the key when one is configured.
  app.use("*", async (c, next) => {
    // An EventSource cannot set headers: the event stream (and only it) also takes ?api_key=, like the WebSocket.
    const streaming = c.req.method === "GET" && EVENTS_PATH.test(c.req.path) && wantsEventStream(c.req.header("accept"));
    const principal = auth.authenticate(keyFromHeaders(c.req.raw.headers) ?? (streaming ? c.req.query("api_key") : undefined));
    if (!principal) {
      throw new AgentkitError("unauthorized", "Invalid or missing API key (use Authorization: Bearer <key> or X-API-Key)");
    }
    // A share token only watches: whatever is not a watching route is refused (403), routes added later included.
    if (principal.readOnly && !((c.req.method === "GET" || c.req.method === "HEAD") && WATCH_PATHS.some((path) => path.test(c.req.path)))) {
      throw watchOnlyError();
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
        approval: definition.approval,
        on_busy: definition.on_busy,
        output_schema: definition.output_schema ?? null,
        default: definition.name === agents.defaultAgent.definition.name,
      })),
    }),
  );

  app.post(
    "/tasks",
    limitBody(deps.maxBodyBytes),
    jsonBody(CreateTaskBody, BODY_LIMITS),
    async (c) => {
      const body = c.req.valid("json");
      return createTask(c.get("principal"), body, body.thread_id);
    },
  );

  // ---- threads: conversations whose tasks run with the history of the earlier ones ----
  app.post("/threads", async (c) => {
    const principal = c.get("principal");
    requireControl(principal);
    const thread = await store.createThread({ id: `thr_${crypto.randomUUID()}`, owner: principal.id, createdAt: now() });
    return c.json(thread, 201, { Location: `/threads/${thread.id}` });
  });

  app.get("/threads", validate("query", ListThreadsQuery), async (c) => {
    const principal = c.get("principal");
    const { limit, cursor } = c.req.valid("query");
    const page = await store.listThreads({ limit, cursor, owner: principal.admin ? undefined : principal.id });
    return c.json({ threads: page.threads, next_cursor: page.nextCursor });
  });

  app.get("/threads/:id", validate("param", TaskIdParam), async (c) => {
    const thread = await requireThread(c.req.valid("param").id, c.get("principal"));
    // The newest tasks that fit in LIST_MAX_BYTES of JSON (at least one), as a page of GET /tasks:
    // a thread of long inputs cannot make this response, or its reading, large.
    const tasks = await store.threadTasks(thread.id, { limit: THREAD_TASKS_SHOWN, maxChars: LIST_MAX_BYTES });
    const shown: string[] = [];
    // The thread's own fields and the punctuation count too ("false" is the longer flag).
    let bytes = Buffer.byteLength(JSON.stringify({ ...thread, tasks_truncated: false }), "utf8") + ',"tasks":[]'.length;
    for (let index = tasks.length - 1; index >= 0; index--) {
      const json = JSON.stringify(tasks[index]);
      bytes += Buffer.byteLength(json, "utf8") + (shown.length > 0 ? 1 : 0);
      if (shown.length > 0 && bytes > LIST_MAX_BYTES) break;
      shown.unshift(json);
    }
    const head = JSON.stringify({ ...thread, tasks_truncated: thread.task_count > shown.length });
    return c.body(`${head.slice(0, -1)},"tasks":[${shown.join(",")}]}`, 200, { "Content-Type": "application/json" });
  });

  app.post(
    "/threads/:id/tasks",
    limitBody(deps.maxBodyBytes),
    validate("param", TaskIdParam),
    jsonBody(CreateThreadTaskBody, BODY_LIMITS),
    async (c) => createTask(c.get("principal"), c.req.valid("json"), c.req.valid("param").id),
  );

  /**
   * Creates a task (in a thread when `threadId` is given), applying the thread's busy policy when an
   * earlier task of it has not ended: enqueue (default: it runs after), reject (409), interrupt
   * (cancel the earlier ones, then run), or steer (the input joins the running task; 202).
   */
  async function createTask(principal: Principal, body: { input: string; agent?: string; metadata?: Record<string, unknown>; on_busy?: BusyPolicy; webhook_url?: string }, threadId?: string) {
    requireControl(principal);
    const agent = body.agent === undefined ? agents.defaultAgent : agents.get(body.agent);
    if (!agent) {
      const known = agents.list().map((a) => a.definition.name).join(", ");
      throw new AgentkitError("validation_failed", `Unknown agent '${body.agent}'; known agents: ${known}`, {
        details: [{ path: "agent", message: `must be one of: ${known}` }],
      });
    }
    const webhookUrl = body.webhook_url === undefined ? null : (deps.webhooks?.allowlist ?? NO_WEBHOOKS).check(body.webhook_url);
    if (threadId !== undefined) {
      await requireThread(threadId, principal);
      const busy = await store.threadTasks(threadId, { limit: THREAD_TASKS_SHOWN, statuses: UNFINISHED_STATUSES });
      const policy = body.on_busy ?? agent.definition.on_busy;
      if (busy.length > 0) {
        const current = busy.find((task) => task.status !== "queued") ?? busy[0]!;
        if (policy === "reject") {
          throw new AgentkitError("conflict", `Thread ${threadId} is busy: task ${current.id} is ${current.status} (on_busy: reject)`);
        }
        if (policy === "steer") {
          if (!deps.interaction) throw new AgentkitError("not_implemented", "Steering is not available on this server");
          const { inputId } = await deps.interaction.input(current.id, principal.id, body.input);
          return Response.json({ steered: true, input_id: inputId, task: (await store.getTask(current.id)) ?? current }, { status: 202 });
        }
        if (policy === "interrupt") {
          // Newest first, so no queued one starts while its predecessor is being cancelled.
          for (const task of [...busy].reverse()) await runner.cancel(task.id);
        }
      }
    }
    const task = await admitTask(runner, () =>
      store.createTask({
        id: newTaskId(),
        owner: principal.id,
        agent: agent.definition.name,
        input: body.input,
        metadata: body.metadata ?? {},
        createdAt: now(),
        threadId: threadId ?? null,
        webhookUrl,
      }),
    );
    runner.submit(task);
    return Response.json(task, { status: 201, headers: { Location: `/tasks/${task.id}` } });
  }

  // ---- people in the loop: steering, approvals, answers ----
  const interactionRoute = <T>(path: string, schema: z.ZodType<T>, act: (taskId: string, principal: Principal, body: T) => Promise<Response>) =>
    app.post(
      path,
      limitBody(deps.maxBodyBytes),
      validate("param", TaskIdParam),
      jsonBody(schema, BODY_LIMITS),
      async (c) => {
        const principal = c.get("principal");
        requireControl(principal);
        const task = await requireTask(c.req.valid("param").id, principal);
        if (!deps.interaction) throw new AgentkitError("not_implemented", "Not available on this server");
        return act(task.id, principal, c.req.valid("json") as T);
      },
    );
  interactionRoute("/tasks/:id/input", InputBody, async (taskId, principal, body) => {
    const { inputId } = await deps.interaction!.input(taskId, principal.id, body.text);
    return Response.json({ task_id: taskId, input_id: inputId }, { status: 202 });
  });
  interactionRoute("/tasks/:id/approvals", ApprovalBody, async (taskId, principal, body) => {
    const decision = body.decision === "approve" ? { kind: "approve" as const, callId: body.call_id } : { kind: "reject" as const, callId: body.call_id, ...(body.reason ? { reason: body.reason } : {}) };
    return Response.json(await deps.interaction!.decide(taskId, principal.id, decision));
  });
  interactionRoute("/tasks/:id/answers", AnswerBody, async (taskId, principal, body) => {
    return Response.json(await deps.interaction!.decide(taskId, principal.id, { kind: "answer", callId: body.call_id, text: body.text }));
  });

  app.get("/tasks", validate("query", ListTasksQuery), async (c) => {
    const query = c.req.valid("query");
    const principal = c.get("principal");
    const page = await listPage({ ...query, owner: principal.admin ? undefined : principal.id });
    return c.body(`{"tasks":[${page.tasks.join(",")}],"next_cursor":${JSON.stringify(page.nextCursor)}}`, 200, {
      "Content-Type": "application/json",
    });
  });

  app.get("/tasks/:id", validate("param", TaskIdParam), async (c) => {
    return c.json(await requireTask(c.req.valid("param").id, c.get("principal")));
  });

  app.get("/tasks/:id/events", validate("param", TaskIdParam), validate("query", EventsQuery), async (c) => {
    const task = await requireTask(c.req.valid("param").id, c.get("principal"));
    const { after, limit, deltas } = c.req.valid("query");
    // As the WebSocket does (close 4400): an `after` beyond the log is the client's mistake.
    const requireKnown = (seq: number, what: string) => {
      const lastSeq = lastSeqOf(task, deps.feed);
      if (seq > lastSeq) throw new AgentkitError("bad_request", `${what}=${seq} is beyond the task's last event (last_seq ${lastSeq})`);
      return seq;
    };
    if (wantsEventStream(c.req.header("accept"))) {
      const lastEventId = LastEventId.safeParse(c.req.header("last-event-id"));
      if (!lastEventId.success) throw new AgentkitError("bad_request", "Last-Event-ID must be a seq (a non-negative integer)");
      return sseResponse({
        store,
        feed: deps.feed,
        logger,
        task,
        after: lastEventId.data === undefined ? requireKnown(after, "after") : requireKnown(lastEventId.data, "Last-Event-ID"),
        deltas,
        slowClientBytes: deps.slowClientBytes,
        slowClientGraceMs: deps.slowClientGraceMs,
        streams: deps.streams,
        signal: c.req.raw.signal,
        follow: deps.follow,
        telemetry: deps.telemetry,
        expiresAt: c.get("principal").readOnly?.expiresAt,
        watchers: deps.watchers,
        key: c.get("principal").id,
      });
    }
    // At most `limit` events, and no more than ~1 MiB of them (at least one): a page of 1,000 big
    // frames (200 KB tool results) was 200 MB read and written in one turn of the event loop.
    const events = await store.events(task.id, requireKnown(after, "after"), limit, PAGE_BYTES);
    // Stored frames are already JSON: splice them in rather than parse and re-serialise.
    const body =
      `{"task_id":${JSON.stringify(task.id)},"status":${JSON.stringify(task.status)},"last_seq":${task.last_seq},` +
      `"pruned_through":${task.pruned_through},"events":[${events.map((event) => event.frame).join(",")}]}`;
    return c.body(body, 200, { "Content-Type": "application/json" });
  });

  app.post("/tasks/:id/cancel", validate("param", TaskIdParam), async (c) => {
    const { id } = c.req.valid("param");
    requireControl(c.get("principal"));
    await requireTask(id, c.get("principal"));
    const task = await runner.cancel(id);
    if (!task) throw new AgentkitError("not_found", `No task with id '${id}'`);
    return c.json(task);
  });

  // A read-only watch token for this task (or its thread): a share link for its live view.
  app.post(
    "/tasks/:id/share",
    limitBody(SHARE_BODY_BYTES),
    validate("param", TaskIdParam),
    jsonBody(ShareBody, { maxDepth: 2, maxTokens: 16, optional: true }),
    async (c) => {
      const principal = c.get("principal");
      requireControl(principal);
      if (!shares) throw new AgentkitError("not_implemented", "Share tokens need a secret (AGENTKIT_SHARE_SECRET)");
      const task = await requireTask(c.req.valid("param").id, principal);
      if (!canControl(principal, task)) throw watchOnlyError();
      const { ttl_seconds: ttl = SHARE_TTL.default, scope = "task" } = c.req.valid("json");
      const threadId = (task as { thread_id?: string | null }).thread_id;
      if (scope === "thread" && !threadId) throw new AgentkitError("bad_request", `Task '${task.id}' is not part of a thread: share it with scope 'task'`);
      const id = scope === "thread" ? threadId! : task.id;
      const { token, expires_at } = shares.sign(scope, id, task.owner, ttl);
      const path = encodeURIComponent(task.id);
      return c.json({ token, expires_at, scope, id, watch_url: `/ws/tasks/${path}`, events_url: `/tasks/${path}/events` }, 201);
    },
  );

  // MCP server (Streamable HTTP): each agent as a tool, a tools/call a task (src/protocols/mcp).
  registerMcpServer(app, { ...deps, createTask });

  // AG-UI: a RunAgentInput in, the run's AG-UI events out as Server-Sent Events (src/protocols/ag-ui).
  registerAgUi(app, deps);

  // Webhooks: a task's delivery status, and the signing secret (src/webhooks).
  registerWebhookRoutes(app, { store, agents, secret: deps.webhooks?.secret, requireTask });

  // A known route asked with a method it does not answer: 405 with `Allow` (HEAD comes with GET);
  // OPTIONS gets the same `Allow` and no error. Behind the key, like the routes themselves: without
  // one these are a 401, as an unknown path is (the open routes' are answered above, without one).
  for (const [path, methods] of Object.entries(ROUTES)) {
    if (!OPEN_PATHS.includes(path)) app.all(path, (c) => otherMethod(c, methods));
  }

  /**
   * A page of tasks, each serialised once, that stops once it holds LIST_MAX_BYTES (at least one
   * task): a client's large inputs cannot make one list response, or its serialisation, large.
   * Read in small chunks so no more than a chunk is read beyond what fits.
   */
  async function listPage(query: { status?: TaskStatus; limit: number; cursor?: string; owner?: string }) {
    const tasks: string[] = [];
    let bytes = 0;
    let cursor = query.cursor;
    while (tasks.length < query.limit) {
      // Read about as many as may still fit: a first look at two, then by the size of those read so
      // far (tasks at the input limits are ~400 KB each: a chunk of ten was 4 MB read to keep two).
      const fit = tasks.length === 0 ? LIST_FIRST_CHUNK : Math.floor((LIST_MAX_BYTES - bytes) / (bytes / tasks.length)) + 1;
      const chunk = await store.listTasks({ ...query, cursor, limit: Math.max(1, Math.min(LIST_CHUNK, fit, query.limit - tasks.length)) });
      let taken = 0;
      for (const task of chunk.tasks) {
        const json = JSON.stringify(task);
        const size = Buffer.byteLength(json, "utf8");
        if (tasks.length > 0 && bytes + size > LIST_MAX_BYTES) break;
        tasks.push(json);
        bytes += size;
        taken++;
      }
      if (taken < chunk.tasks.length) {
        // Full before the end of this chunk: the cursor goes after the last task taken.
        return { tasks, nextCursor: taken === 0 ? (cursor ?? null) : chunk.cursors[taken - 1]! };
      }
      if (!chunk.nextCursor) return { tasks, nextCursor: null };
      cursor = chunk.nextCursor;
    }
    return { tasks, nextCursor: cursor ?? null };
  }

  /** The thread, if this principal may see it; another key's thread is as absent as a missing one. */
  async function requireThread(id: string, principal: Principal) {
    const thread = await store.getThread(id);
    if (!thread || !canSeeThread(principal, thread)) throw new AgentkitError("not_found", `No thread with id '${id}'`);
    return thread;
  }

  /** The task, if this principal may see it; another key's task is as absent as a missing one. */
  async function requireTask(id: string, principal: Principal) {
    const task = await store.getTask(id);
    if (!task || !canSee(principal, task)) throw new AgentkitError("not_found", `No task with id '${id}'`);
    return task;
  }

  return app;
}

export type App = ReturnType<typeof createApp>;

/**
 * A known route asked with a method it does not answer: 405 with `Allow`. OPTIONS (without CORS,
 * which answers preflights itself) gets the same `Allow` and no error: 204.
 */
function otherMethod(c: Context, methods: readonly string[]): Response {
  const allow = methods.join(", ");
  if (c.req.method === "OPTIONS") return c.body(null, 204, { Allow: allow });
  const failure = new AgentkitError("method_not_allowed", `${c.req.method} is not allowed on ${c.req.routePath}; allowed: ${allow}`);
  return c.json(failure.toJSON(), 405, { Allow: allow });
}

/**
 * The web console's pages: served by Bun.serve's own routes (serve.ts), before the app, on every
 * node but a worker; the app answers their other methods (and their bundled `/chunk-*` assets are
 * Bun's alone). In ROUTES so that those are a 405, as on every route, and so the document lists them.
 */
export const CONSOLE_ROUTES: Record<string, readonly string[]> = { "/": ["GET", "HEAD"], "/ui": ["GET", "HEAD"] };

/** The routes and the methods each answers (HEAD: as GET, by Hono); anything else is a 405. */
export const ROUTES: Record<string, readonly string[]> = {
  "/health": ["GET", "HEAD"],
  "/agents": ["GET", "HEAD"],
  "/tasks": ["GET", "HEAD", "POST"],
  "/tasks/:id": ["GET", "HEAD"],
  "/tasks/:id/events": ["GET", "HEAD"],
  "/tasks/:id/cancel": ["POST"],
  "/tasks/:id/share": ["POST"],
  "/tasks/:id/input": ["POST"],
  "/tasks/:id/approvals": ["POST"],
  "/tasks/:id/answers": ["POST"],
  "/threads": ["GET", "HEAD", "POST"],
  "/threads/:id": ["GET", "HEAD"],
  "/threads/:id/tasks": ["POST"],
  "/ws/tasks/:id": ["GET"],
  "/metrics": ["GET", "HEAD"],
  "/openapi.json": ["GET", "HEAD"],
  "/asyncapi.json": ["GET", "HEAD"],
  "/docs": ["GET", "HEAD"],
  "/tasks/:id/webhooks": ["GET", "HEAD"],
  "/webhooks/secret": ["GET", "HEAD"],
  "/ag-ui": ["POST"],
  "/ag-ui/:agent": ["POST"],
  "/mcp": ["POST"],
  ...A2A_ROUTES,
  ...CONSOLE_ROUTES,
};
/** The routes open to anyone (no key read), as /health: their OPTIONS and other methods are too. */
export const OPEN_PATHS: readonly string[] = ["/health", ...DOCS_PATHS, ...A2A_CARD_PATHS, ...Object.keys(CONSOLE_ROUTES)];
const ALL_METHODS = [...new Set([...Object.values(ROUTES).flat(), "OPTIONS"])];
/** The event stream's path: the one REST route that also takes `?api_key=` (EventSource cannot set headers). */
const EVENTS_PATH = /^\/tasks\/[^/]+\/events$/;
/** What a read-only principal (a share token) may GET: the task and its events. Everything else is 403. */
const WATCH_PATHS: readonly RegExp[] = [/^\/tasks\/[^/]+$/, EVENTS_PATH, /^\/threads\/[^/]+$/];
/** `POST /tasks/:id/share` takes a small body, if any. */
const SHARE_BODY_BYTES = 4096;
/** The most tasks `GET /threads/:id` shows (the newest, in order), and the busy check looks at. */
const THREAD_TASKS_SHOWN = 200;
/** Tasks read per store query while filling a page of `GET /tasks`. */
const LIST_CHUNK = 100;
/** How long `/health` waits for the database's answer (cluster mode) before it says `unreachable`. */
const HEALTH_PING_MS = 400;
/** How long a request kept waiting waits for the database's answer before it gets 503 (database-wait.ts). */
const DATABASE_PING_MS = 1000;
/** Tasks the list reads first, before it knows how large they are. */
const LIST_FIRST_CHUNK = 2;
/** No webhook allowlist: every `webhook_url` is refused. */
const NO_WEBHOOKS = createWebhookAllowlist([]);
/** `Retry-After` of a 429 `queue_full`, in seconds. */
const QUEUE_FULL_RETRY_AFTER_S = 5;

/** Whether a principal may read or watch a task (it lives in auth.ts; exported here as before). */
export { canSee };
