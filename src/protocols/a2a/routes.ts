/**
 * A2A (Agent2Agent) endpoints: a thin adapter over the runner, the store and the live feed — no
 * second task model. A task started here is an agentkit task (REST, WebSocket, SSE and the CLI see
 * it); a task started anywhere can be read, followed and cancelled here.
 *
 *   GET  /.well-known/agent-card.json                  the default agent's card (open)
 *   GET  /a2a/:agent/.well-known/agent-card.json       an agent's card (open)
 *   POST /a2a/:agent                                   JSON-RPC 2.0, v1.0 and v0.3 method names
 *
 * register.ts puts these routes on the app; this module, their handlers, is loaded on the first
 * A2A request.
 *
 * Decisions (README "A2A"):
 * - **Contexts are threads.** A message without `contextId` starts a new thread (its id is the
 *   task's `contextId`); a message with a `contextId` continues that thread (made on first use with
 *   that id), so the agent sees the conversation's history; the thread's busy policy applies.
 * - **A message with `taskId`** continues that task: while it waits (`input-required`) the text
 *   answers its question, or decides its approval ("approve"/"yes"/"ok" or "reject"/"no"/"deny",
 *   "reject: <reason>"; a data part `{decision, call_id?, reason?}` also works); while it runs, the
 *   text is a steering message (`POST /tasks/:id/input`). An ended task refuses it (-32004).
 * - **Cancel** is `runner.cancel`: the run is aborted, the state is `canceled` for good (the store's
 *   first terminal state wins). Canceling a task that already completed or failed is -32002.
 * - **Tenants**: the same keys; another key's task is -32001 (as missing), as is a task of another
 *   agent. A share token may only read (`GetTask`, `SubscribeToTask`).
 * - Streams join the live feed with no gap and no duplicate (`startStream`), and follow a task
 *   running on another node (`follow`) in a cluster.
 */
import { eventStreamResponse } from "../../server/event-stream.ts";
import type { Context } from "hono";
import type { Agent } from "../../agents/pool.ts";
import { AgentkitError, errorMessage, isTransientStoreFailure } from "../../errors.ts";
import type { Logger } from "../../lib/logger.ts";
import { MAX_INPUT_CHARS, scanJsonStructure } from "../../protocol/limits.ts";
import { isTerminal, type Task, UNFINISHED_STATUSES } from "../../protocol/task.ts";
import { admitTask } from "../../tasks/runner.ts";
import { forEachLogEvent } from "../../store/store.ts";
import { coalesced } from "../../lib/turn.ts";
import type { Decision } from "../../tasks/interaction.ts";
import { canSee, canSeeThread, keyFromHeaders, type Principal } from "../../server/auth.ts";
import { threadNamed } from "../../threads/client-thread.ts";
import { startStream } from "../../server/watch.ts";
import { buildAgentCard, cardDialect } from "./card.ts";
import { contextOf, DigestCache, FrameProjector, LogDigest, MESSAGE_ID_KEY, toA2ATask, type Ask } from "./view.ts";
import {
  isPlainObject,
  METHODS,
  readBlocking,
  readHistoryLength,
  readMessage,
  readTaskId,
  renderSendResult,
  renderStreamEvent,
  renderTask,
  rpcError,
  RpcCode,
  RpcError,
  rpcResult,
  type A2AEvent,
  type Dialect,
  type IncomingMessage,
  type RpcId,
} from "./wire.ts";
import { newTaskId } from "../../tasks/task-id.ts";
import type { AppDeps } from "../../server/app.ts";

/** What the A2A routes use of the app's dependencies. */
export type A2ADeps = Pick<
  AppDeps,
  "store" | "feed" | "runner" | "agents" | "auth" | "logger" | "version" | "maxBodyBytes" | "slowClientBytes" | "slowClientGraceMs" | "streams" | "interaction" | "follow" | "now" | "watchers"
>;

/**
 * How often a stream (or a blocking send) checks whether a task that asked a person has parked: a
 * safety net, as the live feed tells of a park at once (`onParked`; across nodes, a signal that a
 * reconnecting listener may miss).
 */
const PARK_POLL_MS = 1_000;
/** Keep-alive: SSE comments, and whitespace before a blocking answer's JSON (Bun's idle timeout is 10 s). */
const KEEP_ALIVE_MS = 5000;
/** Structure of a JSON-RPC body checked before parsing (nesting; `,`/`:` tokens). */
const BODY_STRUCTURE = { maxDepth: 32, maxTokens: 20_000 };
/** The most tasks a busy-thread check looks at. */
const THREAD_TASKS = 200;

const JSON_MEDIA_TYPE = /^application\/(?:[\w.-]+\+)?json$/i;

/** The handlers of the A2A routes (register.ts registers them, and loads this module on the first A2A request). */
export interface A2AHandlers {
  /** `GET /.well-known/agent-card.json`: the default agent's card. */
  defaultCard(c: Context): Response;
  /** `GET /a2a/:agent/.well-known/agent-card.json` */
  agentCard(c: Context): Response;
  /** `POST /a2a/:agent` (after the body-size limit): JSON-RPC. */
  rpc(c: Context): Promise<Response>;
}

export function createA2AHandlers(deps: A2ADeps): A2AHandlers {
  const { store, agents, auth } = deps;
  const now = deps.now ?? (() => new Date());
  const digests = new DigestCache();

  const card = (c: Context, agent: Agent) => {
    const dialect = cardDialect(c.req.header("a2a-version"));
    const body = buildAgentCard({ agent, origin: originOf(c), version: deps.version, keyRequired: auth.required }, dialect);
    // The card's URLs come from the request's host (and the proxy's forwarded headers): a cache in
    // front must not hand one client's card to another.
    return c.json(body, 200, { "Cache-Control": "no-cache", Vary: "A2A-Version, Host, X-Forwarded-Host, X-Forwarded-Proto" });
  };

  return {
    defaultCard: (c) => card(c, agents.defaultAgent),
    agentCard: (c) => card(c, requireAgent(c.req.param("agent")!)),
    rpc: async (c) => {
      const agent = requireAgent(c.req.param("agent")!);
      const principal = auth.authenticate(keyFromHeaders(c.req.raw.headers));
      if (!principal) throw new AgentkitError("unauthorized", "Invalid or missing API key (use Authorization: Bearer <key> or X-API-Key)");
      const contentType = c.req.header("content-type");
      if (!JSON_MEDIA_TYPE.test(contentType?.split(";")[0]!.trim() ?? "")) {
        throw new AgentkitError("unsupported_media_type", `A JSON-RPC request must be JSON: send Content-Type: application/json (got ${contentType ? `'${contentType.slice(0, 100)}'` : "no Content-Type"})`);
      }
      const text = await c.req.text();
      let id: RpcId = null;
      let dialect: Dialect = "v1";
      try {
        const tooComplex = scanJsonStructure(text, BODY_STRUCTURE);
        if (tooComplex) throw new RpcError(RpcCode.invalidRequest, `The request ${tooComplex}`);
        let request: unknown;
        try {
          request = JSON.parse(text);
        } catch {
          throw new RpcError(RpcCode.parseError, "Invalid JSON payload");
        }
        if (!isPlainObject(request)) throw new RpcError(RpcCode.invalidRequest, "A JSON-RPC request is an object (batches are not supported)");
        // A number past 2^53 has lost digits in JSON.parse already: echoed, it would not be the client's id.
        if (typeof request.id === "string" || (typeof request.id === "number" && Number.isSafeInteger(request.id))) id = request.id;
        else if (request.id !== undefined && request.id !== null) throw new RpcError(RpcCode.invalidRequest, "id must be a string, an integer of at most 2^53 - 1 in size, or null");
        if (request.jsonrpc !== "2.0" || typeof request.method !== "string" || request.method === "") {
          throw new RpcError(RpcCode.invalidRequest, 'Invalid JSON-RPC request: needs "jsonrpc": "2.0" and a method');
        }
        // A valid notification (no `id` member) gets no answer (JSON-RPC 2.0 §4.1), not even an error; and
        // as A2A defines no notifications, it does nothing: a task its sender could never learn of
        // is not started.
        if (!Object.hasOwn(request, "id")) {
          deps.logger.debug("a2a: a JSON-RPC notification (no id) was ignored", { method: String(request.method).slice(0, 100) });
          return c.body(null, 202);
        }
        const method = Object.hasOwn(METHODS, request.method) ? METHODS[request.method] : undefined;
        if (!method) throw new RpcError(RpcCode.methodNotFound, `Method not found: ${request.method.slice(0, 100)}`);
        dialect = method.dialect;
        const params = request.params ?? {};
        if (!isPlainObject(params)) throw new RpcError(RpcCode.invalidParams, "params must be an object");
        if (principal.readOnly && method.op !== "get" && method.op !== "subscribe") {
          throw new RpcError(RpcCode.unsupportedOperation, "This token can only watch (GetTask, SubscribeToTask)");
        }
        const call: Call = { id, dialect, params, principal, agent, signal: c.req.raw.signal };
        switch (method.op) {
          case "get":
            return c.json(rpcResult(id, await getTask(call)));
          case "cancel":
            return c.json(rpcResult(id, await cancelTask(call)));
          case "send":
            return await send(call);
          case "stream":
            return await stream(call);
          case "subscribe":
            return await subscribe(call);
          case "card":
            throw new RpcError(RpcCode.extendedCardNotConfigured, "This agent has no extended card: its public card is all there is");
          case "push":
            throw new RpcError(RpcCode.pushNotificationNotSupported, "Push notifications are not supported by this agent (capabilities.pushNotifications is false)");
        }
      } catch (error) {
        return c.json(rpcError(id, toRpcError(error, deps.logger), dialect));
      }
    },
  };

  interface Call {
    id: RpcId;
    dialect: Dialect;
    params: Record<string, unknown>;
    principal: Principal;
    agent: Agent;
    signal: AbortSignal;
  }

  function requireAgent(name: string): Agent {
    const agent = agents.get(name);
    if (!agent) throw new AgentkitError("not_found", `No agent '${name}'`);
    return agent;
  }

  /** The task, if this principal may see it and it is this agent's; else -32001 (as a missing one). */
  async function requireTask(id: string, call: Call): Promise<Task> {
    const task = await store.getTask(id);
    if (!task || !canSee(call.principal, task) || task.agent !== call.agent.definition.name) throw new RpcError(RpcCode.taskNotFound, `Task not found: ${id}`);
    return task;
  }

  /**
   * What the view needs of a task's log, read a slice at a time (a long log never holds the event
   * loop) — from where the digest of an earlier view of the task ended, if one is kept.
   */
  async function digestOf(task: Task): Promise<LogDigest> {
    // A task that has not ended is shown as its status read saw it: up to its `last_seq` (both move
    // in one transaction). A log read past it could hold the task's end while the view says working,
    // and a stream that follows from there would never see the result it waits for.
    const ended = isTerminal(task.status);
    const upTo = ended ? Number.POSITIVE_INFINITY : task.last_seq;
    // A pruned log (retention prunes it from its start, a piece at a time: all of it, or up to
    // `pruned_through` so far) is shown without history past the input, not as a part.
    if (task.pruned_through > 0) {
      digests.delete(task.id);
      return new LogDigest(task);
    }
    const earlier = digests.get(task.id);
    // A status read older than the kept digest is shown from the start.
    const digest = earlier && earlier.lastSeq <= upTo ? earlier.clone() : new LogDigest(task);
    let next = digest.lastSeq + 1;
    let hole = false;
    await forEachLogEvent(
      store,
      task.id,
      (event) => {
        if (event.seq !== next) hole = true;
        next = event.seq + 1;
        if (event.seq <= upTo) digest.add(event);
      },
      digest.lastSeq,
    );
    // An ended task's log read short of its end, or with a hole (retention pruned it meanwhile: the
    // read went on past what was deleted), is shown as a pruned one.
    if (ended && (hole || digest.lastSeq !== task.last_seq)) return new LogDigest(task);
    digests.set(task.id, digest);
    return digest;
  }

  async function snapshot(task: Task) {
    const digest = await digestOf(task);
    return { a2a: toA2ATask(task, digest), asks: digest.asks, lastSeq: digest.lastSeq };
  }

  async function getTask(call: Call) {
    const task = await requireTask(readTaskId(call.params), call);
    const { a2a } = await snapshot(task);
    return renderTask(a2a, call.dialect, readHistoryLength(call.params));
  }

  async function cancelTask(call: Call) {
    const id = readTaskId(call.params);
    const task = await requireTask(id, call);
    if (isTerminal(task.status) && task.status !== "cancelled") {
      throw new RpcError(RpcCode.taskNotCancelable, `Task ${id} has already ended (${task.status}) and cannot be canceled`);
    }
    const ended = task.status === "cancelled" ? task : await deps.runner.cancel(id);
    if (!ended) throw new RpcError(RpcCode.taskNotFound, `Task not found: ${id}`);
    // It ended otherwise first (completed while the cancel was on its way): the first end stands.
    if (ended.status !== "cancelled") throw new RpcError(RpcCode.taskNotCancelable, `Task ${id} ended (${ended.status}) before it could be canceled`);
    const { a2a } = await snapshot(ended);
    return renderTask(a2a, call.dialect);
  }

  /**
   * Starts a task for the message, or hands it to the task it names. Returns the task as it is now,
   * and the last seq the caller's view already covers (a stream follows from there).
   */
  /**
   * `beforeSteer(taskId)`: called before a message steers the task its busy context is on (it may
   * refuse by throwing: the message is then not delivered).
   */
  async function startOrContinue(
    call: Call,
    message: IncomingMessage,
    beforeSteer?: (taskId: string) => void,
  ): Promise<{ task: Task; after: number; fresh: boolean }> {
    if (message.taskId) return continueTask(call, message);
    if (message.text.trim() === "") throw new RpcError(RpcCode.invalidParams, "The message has no text");
    const { principal, agent } = call;
    let threadId: string | undefined;
    if (message.contextId) {
      // The caller's context: its busy policy applies now. A context with no thread yet (a task's,
      // which becomes a thread, or a new one the caller names) is made once the task is admitted.
      const existing = await store.getThread(message.contextId);
      if (existing && !canSeeThread(principal, existing)) throw new RpcError(RpcCode.invalidParams, `Unknown contextId '${message.contextId}'`);
      threadId = existing?.id;
    }
    if (threadId !== undefined) {
      const busy = await store.threadTasks(threadId, { limit: THREAD_TASKS, statuses: UNFINISHED_STATUSES });
      if (busy.length > 0) {
        const current = busy.find((task) => task.status !== "queued") ?? busy[0]!;
        const policy = agent.definition.on_busy;
        if (policy === "reject") throw new RpcError(RpcCode.unsupportedOperation, `Context ${threadId} is busy: task ${current.id} is ${current.status} (on_busy: reject)`);
        if (policy === "steer" && deps.interaction) {
          beforeSteer?.(current.id);
          await deps.interaction.input(current.id, principal.id, message.text);
          const task = (await store.getTask(current.id)) ?? current;
          return { task, after: task.last_seq, fresh: false };
        }
        // Newest first, so no queued one starts while its predecessor is being cancelled.
        if (policy === "interrupt") for (const task of [...busy].reverse()) await deps.runner.cancel(task.id);
      }
    }
    // A new context's thread is made once the task is admitted: a refused message (queue full)
    // leaves no empty thread behind — a client retrying against a full queue made one per attempt.
    const task = await admitTask(deps.runner, async () =>
      store.createTask({
        id: newTaskId(),
        owner: principal.id,
        agent: agent.definition.name,
        input: message.text,
        metadata: { [MESSAGE_ID_KEY]: message.messageId },
        createdAt: now(),
        threadId: threadId ?? (await newContext(message.contextId, principal)),
      }),
    );
    deps.runner.submit(task);
    return { task, after: 0, fresh: true };
  }

  /** The thread of a context that has none yet: the one the caller names (or its ended task's), or a new one. */
  async function newContext(contextId: string | undefined, principal: Principal): Promise<string> {
    if (contextId === undefined) return (await store.createThread({ id: `thr_${crypto.randomUUID()}`, owner: principal.id, createdAt: now() })).id;
    const named = await threadNamed(store, contextId, principal, now());
    if ("thread" in named) return named.thread.id;
    if (named.refused === "unfinished") {
      throw new RpcError(RpcCode.invalidParams, `contextId '${contextId}' is task ${named.task.id}, which has not ended (${named.task.status}): send the message with its taskId to continue it`);
    }
    throw new RpcError(RpcCode.invalidParams, `Unknown contextId '${contextId}'`);
  }

  async function continueTask(call: Call, message: IncomingMessage): Promise<{ task: Task; after: number; fresh: boolean }> {
    const task = await requireTask(message.taskId!, call);
    if (message.contextId && message.contextId !== contextOf(task)) {
      throw new RpcError(RpcCode.invalidParams, `contextId '${message.contextId}' is not the context of task ${task.id} ('${contextOf(task)}')`);
    }
    if (isTerminal(task.status)) {
      throw new RpcError(RpcCode.unsupportedOperation, `Task ${task.id} has ended (${task.status}) and takes no more messages: send a new message with its contextId to continue the conversation`);
    }
    const interaction = deps.interaction;
    if (!interaction) throw new RpcError(RpcCode.unsupportedOperation, "This server takes no messages for running tasks");
    const asks = task.status === "waiting" ? (await digestOf(task)).asks : [];
    if (asks.length > 0) {
      const decision = decisionFor(asks, message);
      await interaction.decide(task.id, call.principal.id, decision);
    } else {
      if (message.text.trim() === "") throw new RpcError(RpcCode.invalidParams, "The message has no text");
      await interaction.input(task.id, call.principal.id, message.text);
    }
    const current = (await store.getTask(task.id)) ?? task;
    return { task: current, after: current.last_seq, fresh: false };
  }

  /** A non-streaming send: the task at once, or (blocking) once it ended or needs input. */
  async function send(call: Call): Promise<Response> {
    const message = readMessage(call.params, MAX_INPUT_CHARS);
    const historyLength = readHistoryLength(call.params.configuration);
    const { task, after } = await startOrContinue(call, message);
    if (!readBlocking(call.params, call.dialect) || isTerminal(task.status) || task.status === "waiting") {
      const { a2a } = await snapshot(task);
      return Response.json(rpcResult(call.id, renderSendResult(a2a, call.dialect, historyLength)));
    }
    // Blocking: whitespace (valid before JSON) keeps the connection from idling out meanwhile. The
    // first goes out at once, and with it the response's headers: Bun sends them with the body's
    // first bytes, and a client that waits for headers only so long (many HTTP clients have such a
    // timeout) would give up on a task that takes longer.
    const encoder = new TextEncoder();
    let stop: (() => void) | undefined;
    let keepAlive: ReturnType<typeof setInterval> | undefined;
    let unregister: (() => void) | undefined;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoder.encode(" "));
        keepAlive = setInterval(() => controller.enqueue(encoder.encode(" ")), KEEP_ALIVE_MS);
        let finished = false;
        const finish = async (failure?: unknown) => {
          if (finished) return;
          finished = true;
          clearInterval(keepAlive);
          unregister?.();
          let json: unknown;
          try {
            if (failure) throw failure;
            const current = (await store.getTask(task.id)) ?? task;
            const { a2a } = await snapshot(current);
            json = rpcResult(call.id, renderSendResult(a2a, call.dialect, historyLength));
          } catch (error) {
            json = rpcError(call.id, toRpcError(error, deps.logger), call.dialect);
          }
          try {
            controller.enqueue(encoder.encode(JSON.stringify(json)));
            controller.close();
          } catch {
            // The client went away.
          }
        };
        // Any park ends it (the answer then shows what waits): the asks may be in the log before
        // `after`, where this projector does not look.
        stop = follow({ task, after, projector: new FrameProjector(task), announced: new Set(), anyPark: true, emit: () => {}, done: finish, signal: call.signal });
        // A stopping server answers with the task as it is (it goes on, after a restart or on another node).
        unregister = deps.streams?.add(() => {
          stop?.();
          void finish();
        });
      },
      cancel() {
        clearInterval(keepAlive);
        unregister?.();
        stop?.();
      },
    });
    return new Response(body, { headers: { "Content-Type": "application/json", "Cache-Control": "no-store" } });
  }

  async function stream(call: Call): Promise<Response> {
    const message = readMessage(call.params, MAX_INPUT_CHARS);
    const historyLength = readHistoryLength(call.params.configuration);
    // A message for a task already there (an input, a decision; or a message to a busy context
    // that steers its task) is not one the queue admits: a running task takes MAX_PENDING_INPUTS of
    // them at a time, again after each step, each with its stream. That stream counts as a
    // subscription does, checked before the message is delivered.
    let release: (() => void) | undefined;
    const count = (taskId: string) => void (release = countWatcher(call, taskId));
    if (message.taskId) count((await requireTask(message.taskId, call)).id);
    try {
      const { task, fresh } = await startOrContinue(call, message, count);
      // A new task: it as created (submitted), then every event of its log. A continued one: it as it
      // is now, then what comes after the log read for that view.
      if (fresh) return sseOf(call, task, toA2ATask(task, []), 0, [], { historyLength, endIfParked: true, asksShown: false, release });
      const { a2a, asks, lastSeq } = await snapshot(task);
      return sseOf(call, task, a2a, lastSeq, asks, { historyLength, endIfParked: true, asksShown: task.status === "waiting", release });
    } catch (error) {
      release?.();
      throw error;
    }
  }

  async function subscribe(call: Call): Promise<Response> {
    const task = await requireTask(readTaskId(call.params), call);
    if (isTerminal(task.status)) {
      throw new RpcError(RpcCode.unsupportedOperation, `Task ${task.id} has ended (${task.status}): nothing more will happen; read it with GetTask`);
    }
    const { a2a, asks, lastSeq } = await snapshot(task);
    // A subscription only watches: it counts with the task's and the key's WebSocket and SSE watchers
    // (a key past its limit there could otherwise watch without bound here), as a streamed message
    // to a task already there does (`stream`); a new task's stream is not counted: the queue admits it.
    const release = countWatcher(call, task.id);
    // A task that already waits for a person is in an interrupted state: its stream ends there, as
    // every A2A stream does (the SDK's own server ends such a subscription after the task); the
    // message that answers it starts a new one.
    return sseOf(call, task, a2a, lastSeq, asks, { endIfParked: true, asksShown: task.status === "waiting", release });
  }

  /** Counts a watcher of the task for the caller's key (the watcher limits): its release, or -32603 past a limit. */
  function countWatcher(call: Call, taskId: string): (() => void) | undefined {
    const counted = deps.watchers?.acquire(taskId, call.principal.id);
    if (counted && "refused" in counted) throw new RpcError(RpcCode.internal, `${counted.refused}; close another watcher of it first`);
    return counted?.release;
  }

  /**
   * The event stream of a task: the task as it is (`a2a`, which covers the log up to `after`), then
   * an event per frame after it, until it ends or parks for a person. `open`: the asks still open in
   * the log up to `after`; `asksShown`: the task was waiting, so `a2a` showed them. Asks in the log of
   * a task that was still running are not shown yet: its park (which writes no frame) announces them.
   */
  function sseOf(
    call: Call,
    task: Task,
    a2a: ReturnType<typeof toA2ATask>,
    after: number,
    asks: readonly Ask[],
    options: { historyLength?: number; endIfParked: boolean; asksShown: boolean; release?: () => void },
  ): Response {
    const open = options.asksShown ? asks : [];
    const { historyLength } = options;
    let stop: (() => void) | undefined;
    const render = (event: A2AEvent) => `data: ${JSON.stringify(rpcResult(call.id, renderStreamEvent(event, call.dialect, historyLength)))}\n\n`;
    return eventStreamResponse({
      slowClientBytes: deps.slowClientBytes,
      slowGraceMs: deps.slowClientGraceMs,
      registry: deps.streams,
      keepAliveMs: KEEP_ALIVE_MS,
      expiresAt: call.principal.readOnly?.expiresAt,
      // Past the high-water mark the client is not reading: the stream ends (it resubscribes).
      onClose: () => {
        stop?.();
        options.release?.();
      },
      start(stream) {
        const send = (event: A2AEvent) => stream.write(render(event));
        // The task as it is comes first, whatever its size (a long history), outside the slow-client
        // limit: counted, a snapshot past it ended every stream (and every resubscribe) right after it.
        stream.write(render({ kind: "task", task: a2a }), { uncounted: true });
        const projector = new FrameProjector(task);
        for (const ask of asks) projector.asks.set(ask.callId, ask);
        if (open.length > 0 && options.endIfParked) {
          // A message decided one of several waiting calls: the task still needs input.
          send(projector.inputRequired(open));
          return stream.close();
        }
        const announced = new Set(open.map((ask) => ask.callId));
        stop = follow({
          task,
          after,
          projector,
          announced,
          emit: (events) => events.forEach(send),
          done: (failure) => {
            if (failure) stream.write(`data: ${JSON.stringify(rpcError(call.id, toRpcError(failure, deps.logger), call.dialect))}\n\n`);
            stream.close();
          },
          signal: call.signal,
        });
      },
    });
  }

  /**
   * Follows a task's frames after `after` — stored, then live, with no gap and no duplicate — and
   * turns them into A2A events, until the `result` (terminal) or until the task parks with asks
   * not yet `announced` (input-required) — or parks at all, with `anyPark`. Returns the function
   * that stops it.
   */
  function follow(options: {
    task: Task;
    after: number;
    projector: FrameProjector;
    announced: Set<string>;
    anyPark?: boolean;
    emit(events: A2AEvent[]): void;
    done(failure?: unknown): void;
    signal: AbortSignal;
  }): () => void {
    const { task, projector, announced } = options;
    let closed = false;
    let stopListening: (() => void) | undefined;
    let poll: ReturnType<typeof setInterval> | undefined;
    const unfollow = deps.follow?.(task);
    const unpark = deps.feed.onParked(task.id, () => {
      if (awaitsPark()) void checkParked();
    });
    const stop = () => {
      if (closed) return;
      closed = true;
      stopListening?.();
      unfollow?.();
      unpark();
      clearInterval(poll);
      options.signal.removeEventListener("abort", stop);
    };
    const end = (failure?: unknown) => {
      if (closed) return;
      stop();
      options.done(failure);
    };
    const unannounced = () => [...projector.asks.values()].filter((ask) => !announced.has(ask.callId));
    /** A park would end this: any park, or one with asks not yet announced. */
    const awaitsPark = () => options.anyPark === true || unannounced().length > 0;
    // One read at a time; a park told of during a read is read again right after it.
    const checkParked = coalesced(async () => {
      if (closed) return;
      try {
        const current = await store.getTask(task.id);
        if (closed || current?.status !== "waiting" || !awaitsPark()) return;
        if (projector.asks.size > 0) options.emit([projector.inputRequired([...projector.asks.values()])]);
        end();
      } catch (error) {
        deps.logger.warn("a2a: could not read a task's status", { task: task.id, error: errorMessage(error) });
      }
    });
    const watchForPark = () => {
      // The poll is a safety net for a park nobody here was told of. With `anyPark` and no ask known,
      // one node needs none (its runner tells the feed of every park); a cluster's park signal can be
      // missed (a LISTEN reconnect), so there it polls.
      const needsPoll = unannounced().length > 0 || (options.anyPark === true && deps.follow !== undefined);
      if (!needsPoll) {
        clearInterval(poll);
        poll = undefined;
      } else poll ??= setInterval(() => void checkParked(), PARK_POLL_MS);
    };
    const handle = (seq: number, frame: string) => {
      if (closed) return;
      options.emit(projector.project(seq, frame));
      if (projector.ended) return end();
      watchForPark();
    };
    options.signal.addEventListener("abort", stop, { once: true });
    if (isTerminal(task.status) && options.after >= task.last_seq) {
      queueMicrotask(() => end());
      return stop;
    }
    startStream({
      store,
      feed: deps.feed,
      task,
      after: options.after,
      sendControl: () => {},
      watcher: {
        send: ({ seq, frame }) => handle(seq, frame),
        subscribe: () => {
          if (closed) return;
          stopListening = deps.feed.listen(task.id, (frame, seq) => {
            if (seq !== undefined) handle(seq, frame);
          });
        },
        get closed() {
          return closed;
        },
      },
    })
      .then(() => {
        if (!closed) watchForPark();
      })
      .catch((error) => end(error));
    return stop;
  }
}

/** What a message for a waiting task decides: an answer to its question, or an approval decision. */
function decisionFor(asks: readonly Ask[], message: IncomingMessage): Decision {
  const structured = message.data.find((value): value is Record<string, unknown> => isPlainObject(value) && (typeof value.decision === "string" || typeof value.call_id === "string"));
  const callId = typeof structured?.call_id === "string" ? structured.call_id : undefined;
  const ask = callId ? asks.find((candidate) => candidate.callId === callId) : asks[0];
  if (!ask) throw new RpcError(RpcCode.invalidParams, `No call '${callId}' waits for a decision; waiting: ${asks.map((candidate) => candidate.callId).join(", ")}`);
  if (ask.kind === "question") {
    const text = typeof structured?.text === "string" ? structured.text : message.text;
    return { kind: "answer", callId: ask.callId, text };
  }
  let verdict: "approve" | "reject" | undefined;
  let reason: string | undefined;
  if (typeof structured?.decision === "string") {
    verdict = /^approve/i.test(structured.decision) ? "approve" : /^reject/i.test(structured.decision) ? "reject" : undefined;
    if (typeof structured.reason === "string" && structured.reason) reason = structured.reason;
  } else {
    const match = /^\s*(approve[ds]?|approval|yes|y|ok|okay|allow|accept|go ahead|reject(?:ed)?|no|n|deny|denied|decline)\b[\s.:,!-]*([\s\S]*)$/i.exec(message.text);
    if (match) {
      verdict = /^(approve|approval|yes|y|ok|okay|allow|accept|go ahead)/i.test(match[1]!) ? "approve" : "reject";
      if (match[2]!.trim()) reason = match[2]!.trim();
    }
  }
  if (!verdict) {
    throw new RpcError(RpcCode.invalidParams, `Call '${ask.callId}' (${ask.name}) waits for an approval: reply "approve" or "reject" (optionally "reject: <reason>")`);
  }
  return verdict === "approve" ? { kind: "approve", callId: ask.callId } : { kind: "reject", callId: ask.callId, ...(reason ? { reason } : {}) };
}

/** Any failure as a JSON-RPC error: A2A's own, agentkit's mapped to the nearest A2A code. */
function toRpcError(error: unknown, logger: Logger): RpcError {
  if (error instanceof RpcError) return error;
  if (error instanceof AgentkitError) {
    switch (error.code) {
      case "not_found":
        return new RpcError(RpcCode.taskNotFound, error.message);
      case "bad_request":
      case "validation_failed":
        return new RpcError(RpcCode.invalidParams, error.message);
      case "conflict":
      case "forbidden":
      case "not_implemented":
        return new RpcError(RpcCode.unsupportedOperation, error.message);
      default:
        return new RpcError(RpcCode.internal, error.message);
    }
  }
  if (isTransientStoreFailure(error)) {
    // The store out of reach or cutting a statement short passes: said as such, at warn (REST: 503).
    logger.warn("a2a: request failed: the data store is unavailable", { error: errorMessage(error) });
    return new RpcError(RpcCode.internal, "The data store is unavailable; try again shortly");
  }
  logger.error("a2a: request failed", { error: errorMessage(error) });
  return new RpcError(RpcCode.internal, "Internal error");
}

/** The server's origin as the client reached it (behind a proxy: `X-Forwarded-Proto`/`-Host`). */
function originOf(c: Context): string {
  const url = new URL(c.req.url);
  const proto = c.req.header("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase();
  const host = c.req.header("x-forwarded-host")?.split(",")[0]?.trim();
  const scheme = proto === "http" || proto === "https" ? proto : url.protocol.slice(0, -1);
  return `${scheme}://${host && /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(host) ? host : url.host}`;
}
