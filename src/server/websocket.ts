/**
 * The task WebSocket on Bun's native handlers (the one file that knows Bun's ServerWebSocket).
 * Protocol: see README "WebSocket protocol". `connected` first, then stored events after `after`,
 * then live ones; `ping` → `pong`; `cancel` cancels the task for every watcher.
 *
 * Limits: watchers per task and per key (close 4029), client frame size (Bun closes with 1009),
 * and slow watchers: one with more than `slowClientBytes` queued for `slowClientGraceMs` (or at once
 * past the hard limit: `slow-client.ts`) gets nothing more (it leaves its topics at once), and is
 * closed with 4008 as soon as what was queued has drained — so the close frame comes right after a
 * whole frame, however long the client stalled. Calling `close()` with
 * a megabyte queued would not do: the socket is force-closed a few seconds later, mid-frame, if the
 * client has not read it all by then. A watcher that has not drained within the heartbeat period is
 * cut off. It may resume with `after=`; it never slows the others.
 *
 * Liveness: every `heartbeatMs / 3` the server pings each watcher (a protocol-level ping, which
 * every browser and WebSocket library answers); any frame from the client — pong, ping or message —
 * proves it alive. A watcher silent for `heartbeatMs` is closed with 4408 (reconnect). A client
 * may also send the seed's `{"type":"ping"}` and gets `{"type":"pong"}`.
 */
import { timerAt, type Timer } from "../lib/timer.ts";
import type { ServerWebSocket, WebSocketHandler } from "bun";
import { deltaTopic, taskTopic } from "../bus/bus.ts";
import type { LiveFeed } from "../bus/live-feed.ts";
import { AgentkitError, CloseCode, errorMessage, isTransientStoreFailure } from "../errors.ts";
import type { Logger } from "../lib/logger.ts";
import { ackFrame, CLIENT_FRAME_TYPES, ClientFrame, errorFrame, PONG } from "../protocol/frames.ts";
import type { Interaction } from "../tasks/interaction.ts";
import { scanJsonStructure } from "../protocol/limits.ts";
import type { Task } from "../protocol/task.ts";
import type { TaskStore } from "../store/store.ts";
import type { TaskRunner } from "../tasks/runner.ts";
import { noTelemetry, type Telemetry } from "../telemetry/telemetry.ts";
import { canSee, WATCH_ONLY_MESSAGE } from "./auth.ts";
import type { WatchRequest } from "./ws-handshake.ts";
import { DEFAULT_SLOW_CLIENT_GRACE_MS, slowClientHardLimit } from "./slow-client.ts";
import type { WatcherLimits } from "./watcher-limits.ts";
import { lastSeqOf, startStream } from "./watch.ts";

/** A client frame's JSON: one object of a few fields (`{"type":"answer","call_id":…,"text":…}`), with room to spare. */
const CLIENT_FRAME_STRUCTURE = { maxDepth: 4, maxTokens: 64 };

/**
 * Client frames a socket may send in one second. A client pings every ~30 s and decides now and
 * then; 100,000 small frames in one TCP write held the event loop for ~0.2 s (each answered with an
 * error frame). Past it the socket is closed with 1008 (policy violation).
 */
export const MAX_CLIENT_FRAMES_PER_SECOND = 200;
/** Requests a client may send before its stream has started (they wait for it; see `Connection.early`). */
const MAX_EARLY_REQUESTS = 16;

/** A task's watchers are checked for slow ones at most this often (each publish that meets backpressure asks). */
const SCAN_EVERY_MS = 20;
export interface Connection extends WatchRequest {
  /** Nothing more is sent once set: closing, closed, or marked slow. */
  closed: boolean;
  /** Counted in the per-task and per-key watcher limits: the function that uncounts it. */
  counted?: () => void;
  /** `performance.now()` when the client last sent a frame of any kind (message, ping, pong). */
  lastSeen: number;
  /** `performance.now()` when it was found too slow; it is closed with 4008 once drained. */
  slowSince?: number;
  /** Set while more than `slowClientBytes` is queued: it is found too slow if it still is when this fires. */
  overLimit?: ReturnType<typeof setTimeout>;
  /** Stops following the task from the log when this watcher leaves (cluster mode). */
  unfollow?: () => void;
  /** The replay waits for the client to read (`drain`) or leave. */
  drainWaiters?: (() => void)[];
  /** `performance.now()` when its current second of client frames began, and how many came in it. */
  framesSince?: number;
  framesInSecond?: number;
  /**
   * Requests (cancel, input, decisions) that came before the stream started — while the task was
   * being read (a database round trip in a cluster): acted on, in order, once it has.
   */
  early?: ClientFrame[];
  /** A share token's expiry: the watcher is closed (4001) when it comes. */
  expiry?: Timer;
}

export interface WebSocketDeps {
  store: TaskStore;
  feed: LiveFeed;
  runner: TaskRunner;
  logger: Logger;
  heartbeatMs: number;
  maxFrameBytes: number;
  /** The watcher limits, shared with SSE streams (`watcher-limits.ts`). */
  watchers: WatcherLimits;
  slowClientBytes: number;
  /** How long more than `slowClientBytes` may stay queued for a watcher that reads (default 1 s; see `slow-client.ts`). */
  slowClientGraceMs?: number;
  /**
   * Cluster mode: a watcher joins a task that may run on another node; the follower publishes its
   * frames here from the log while it is watched. Returns the function to call when it leaves.
   */
  follow?: (task: Task) => () => void;
  /** Steering, approvals and answers (`input`, `approve`, `reject`, `answer` frames). */
  interaction?: Interaction;
  /** Watchers connected, slow clients cut off (metrics). */
  telemetry?: Telemetry;
}

export interface TaskWebSockets {
  handler: WebSocketHandler<Connection>;
  /** Checks the queues of `taskId`'s watchers (a publish met backpressure): the slow ones are closed (4008). */
  closeSlowWatchers(taskId: string): void;
  /** Closes every open task WebSocket (graceful shutdown: 1001 "going away") and stops the heartbeat. */
  closeAll(code: number, reason: string): void;
  readonly size: number;
}

type Socket = ServerWebSocket<Connection>;

export function createTaskWebSockets(deps: WebSocketDeps): TaskWebSockets {
  const { store, feed, runner, logger } = deps;
  const telemetry = deps.telemetry ?? noTelemetry;
  const open = new Set<Socket>();
  const watchersByTask = new Map<string, Set<Socket>>();
  const lastScan = new Map<string, number>();
  /** A scan due once `SCAN_EVERY_MS` have passed since the last one (a publish met backpressure meanwhile). */
  const laterScans = new Map<string, ReturnType<typeof setTimeout>>();
  const hardLimit = slowClientHardLimit(deps.slowClientBytes);
  const graceMs = deps.slowClientGraceMs ?? DEFAULT_SLOW_CLIENT_GRACE_MS;

  function fail(ws: Socket, message: string, code: string, closeCode: number) {
    if (ws.data.closed) return;
    ws.send(errorFrame(message, code));
    ws.close(closeCode, message.slice(0, 120));
  }

  /**
   * After a send: a watcher with more than the hard limit queued is too slow at once; one past
   * `slowClientBytes` is if it still is `graceMs` later (a burst written in one turn passes the
   * limit for a client that reads, too), unless it read back under the limit meanwhile (`drain`).
   */
  function checkSlow(ws: Socket) {
    const buffered = ws.getBufferedAmount();
    if (buffered <= deps.slowClientBytes || ws.data.closed) return;
    if (buffered > hardLimit) return closeSlow(ws);
    ws.data.overLimit ??= setTimeout(() => {
      ws.data.overLimit = undefined;
      if (!ws.data.closed && ws.getBufferedAmount() > deps.slowClientBytes) closeSlow(ws);
    }, graceMs);
  }

  /** Checks the queue of every watcher of `taskId` (see `closeSlowWatchers`). */
  function scanSlow(taskId: string) {
    const set = watchersByTask.get(taskId);
    if (!set) return void lastScan.delete(taskId);
    lastScan.set(taskId, performance.now());
    for (const ws of set) checkSlow(ws);
  }

  function clearOverLimit(ws: Socket) {
    clearTimeout(ws.data.overLimit);
    ws.data.overLimit = undefined;
  }

  /**
   * Stops queueing anything for a watcher that does not read: it leaves its topics now, and the
   * close frame goes out once the data already queued has drained (see `drain`), so the client
   * gets a whole prefix of the log, then 4008 — never a frame cut in half.
   */
  function closeSlow(ws: Socket) {
    if (ws.data.closed) return;
    ws.data.closed = true; // stop replaying into it at once
    ws.data.slowSince = performance.now();
    clearOverLimit(ws);
    telemetry.slowClientClosed("websocket");
    ws.unsubscribe(taskTopic(ws.data.taskId));
    ws.unsubscribe(deltaTopic(ws.data.taskId));
    if (ws.getBufferedAmount() === 0) closeDrained(ws);
  }

  /** A replay waiting for this client to read goes on (it sees `closed` if the socket closed). */
  function wakeReplay(ws: Socket) {
    const waiters = ws.data.drainWaiters;
    if (!waiters?.length) return;
    ws.data.drainWaiters = [];
    for (const wake of waiters) wake();
  }

  function closeDrained(ws: Socket) {
    ws.data.slowSince = undefined;
    ws.close(CloseCode.tooSlow, "Too slow: reconnect with after=<last seq>");
  }

  /** Pings every watcher; closes those silent for the heartbeat period, and slow ones that never drained. */
  function sweep() {
    const now = performance.now();
    for (const ws of open) {
      if (ws.data.slowSince !== undefined) {
        // It has not read what was queued for a whole heartbeat period: cut it off.
        if (now - ws.data.slowSince > deps.heartbeatMs) ws.terminate();
      } else if (ws.data.closed) {
        // Closing already (refused, or shutting down): nothing to check.
      } else if (now - ws.data.lastSeen > deps.heartbeatMs) {
        ws.data.closed = true;
        wakeReplay(ws); // a replay waiting for it to read stops now
        ws.close(CloseCode.heartbeatTimeout, "Heartbeat timeout: reconnect with after=<last seq>");
      } else {
        ws.ping();
      }
    }
  }
  const heartbeat = setInterval(sweep, Math.max(10, Math.floor(deps.heartbeatMs / 3)));
  heartbeat.unref();

  /** Counts the watcher against its limits; false (and the socket closed) if over one. */
  function admit(ws: Socket, key: string): boolean {
    const { taskId } = ws.data;
    const counted = deps.watchers.acquire(taskId, key);
    if ("refused" in counted) {
      fail(ws, counted.refused, "too_many_watchers", CloseCode.tooManyWatchers);
      return false;
    }
    let set = watchersByTask.get(taskId);
    if (!set) watchersByTask.set(taskId, (set = new Set()));
    set.add(ws);
    ws.data.counted = counted.release;
    telemetry.watcherOpened("websocket");
    return true;
  }

  function release(ws: Socket) {
    if (!ws.data.counted) return;
    ws.data.counted();
    ws.data.counted = undefined;
    telemetry.watcherClosed("websocket");
    const set = watchersByTask.get(ws.data.taskId);
    set?.delete(ws);
    if (set?.size === 0) {
      watchersByTask.delete(ws.data.taskId);
      lastScan.delete(ws.data.taskId);
    }
  }

  async function start(ws: Socket) {
    const { taskId, after, principal } = ws.data;
    // A live task is the runner's own (no store read, no row validation); an ended one is the store's.
    const task = runner.liveTask(taskId) ?? (await store.getTask(taskId));
    if (ws.data.closed) return;
    if (!task || !canSee(principal!, task)) return fail(ws, `No task with id '${taskId}'`, "not_found", CloseCode.notFound);
    const lastSeq = lastSeqOf(task, feed);
    if (after > lastSeq) {
      return fail(ws, `after=${after} is beyond the task's last event (${lastSeq})`, "bad_request", CloseCode.badRequest);
    }
    if (!admit(ws, principal!.id)) return;
    const early = ws.data.early;
    ws.data.early = undefined;
    for (const request of early ?? []) act(ws, request);
    ws.data.unfollow = deps.follow?.(task);
    await startStream({
      store,
      feed,
      task,
      after,
      sendControl: (frame) => void ws.send(frame),
      watcher: {
        send({ frame }) {
          ws.send(frame);
          checkSlow(ws);
        },
        batch: (sends) => void ws.cork(sends),
        // The replay goes at the client's pace; one that never reads is closed by the heartbeat.
        backlogged: () => ws.getBufferedAmount() > deps.slowClientBytes / 2,
        drained: () => (ws.data.closed ? Promise.resolve() : new Promise<void>((resolve) => (ws.data.drainWaiters ??= []).push(resolve))),
        subscribe() {
          if (ws.data.closed) return;
          ws.subscribe(taskTopic(taskId));
          if (ws.data.deltas) ws.subscribe(deltaTopic(taskId));
        },
        get closed() {
          return ws.data.closed;
        },
      },
    });
  }

  /**
   * An answer to the client's own frame (error, pong, ack). A client that keeps sending and never
   * reads gets them queued like any frame, under the same slow-client limit.
   */
  function answer(ws: Socket, frame: string) {
    ws.send(frame);
    checkSlow(ws);
  }

  function onClientFrame(ws: Socket, raw: string | Buffer) {
    if (typeof raw !== "string") {
      answer(ws, errorFrame("Binary frames are not supported; send JSON text", "bad_request"));
      return;
    }
    // Every client frame is one flat object: a frame nested or wide past that is refused from its
    // text, before parsing (64 KB of `[` took ~5 ms to parse, and a client can send many at once).
    const tooBig = scanJsonStructure(raw, CLIENT_FRAME_STRUCTURE);
    if (tooBig) {
      answer(ws, errorFrame(`Message is too deeply nested or has too many fields (${tooBig}); send one flat JSON object`, "bad_request"));
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      answer(ws, errorFrame("Invalid JSON", "bad_request"));
      return;
    }
    const frame = ClientFrame.safeParse(value);
    if (!frame.success) {
      const type = typeof value === "object" && value !== null && !Array.isArray(value) ? (value as { type?: unknown }).type : undefined;
      const what = typeof type === "string" ? `Unknown message type '${type.slice(0, 64)}'` : "Message has no string 'type'";
      const known = typeof type === "string" && (CLIENT_FRAME_TYPES as readonly string[]).includes(type);
      const message = known
        ? `Invalid '${type}' message: ${frame.error.issues.map((issue) => `${issue.path.join(".") || "(frame)"}: ${issue.message}`).join("; ")}`
        : `${what}; expected one of ${CLIENT_FRAME_TYPES.map((name) => `{"type":"${name}"}`).join(", ")}`;
      const requestId = typeof value === "object" && value !== null ? (value as { request_id?: unknown }).request_id : undefined;
      answer(ws, errorFrame(message.slice(0, 1000), "bad_request", typeof requestId === "string" ? requestId.slice(0, 128) : undefined));
      return;
    }
    // A share token only watches: every frame that would act on the task is refused, the connection stays open.
    if (frame.data.type !== "ping" && ws.data.principal?.readOnly) {
      answer(ws, errorFrame(WATCH_ONLY_MESSAGE, "forbidden", "request_id" in frame.data ? frame.data.request_id : undefined));
      return;
    }
    if (frame.data.type !== "ping" && !ws.data.counted) {
      // The stream has not started: the task is still being read (or the watcher is being refused,
      // and the socket closes). A client that sends at once (a cancel button) is not ignored.
      const early = (ws.data.early ??= []);
      if (early.length >= MAX_EARLY_REQUESTS) {
        answer(ws, errorFrame(`Too many requests before the stream started (at most ${MAX_EARLY_REQUESTS}): wait for 'connected'`, "bad_request", "request_id" in frame.data ? frame.data.request_id : undefined));
      } else {
        early.push(frame.data);
      }
      return;
    }
    act(ws, frame.data);
  }

  /** Acts on a valid client frame from a watcher whose stream has started. */
  function act(ws: Socket, request: ClientFrame) {
    switch (request.type) {
      case "ping":
        answer(ws, PONG);
        return;
      case "cancel":
        runner.cancel(ws.data.taskId).catch((error) => {
          logger.error("cancel failed", { task: ws.data.taskId, error: errorMessage(error) });
          fail(ws, "Cancel failed", "internal", CloseCode.serverError);
        });
        return;
      case "input":
      case "approve":
      case "reject":
      case "answer": {
        const reply = (done: Promise<string>) =>
          done.then(
            (ack) => {
              if (!ws.data.closed) answer(ws, ack);
            },
            (error) => {
              const failure = error instanceof AgentkitError ? error : undefined;
              if (!failure) logger.error("websocket: request failed", { task: ws.data.taskId, type: request.type, error: errorMessage(error) });
              if (!ws.data.closed) answer(ws, errorFrame(failure?.message ?? "Internal server error", failure?.code ?? "internal", request.request_id));
            },
          );
        if (!deps.interaction) {
          answer(ws, errorFrame("This server does not take people's input", "bad_request", request.request_id));
          return;
        }
        const { interaction } = deps;
        const by = ws.data.principal!.id;
        const taskId = ws.data.taskId;
        if (request.type === "input") {
          void reply(interaction.input(taskId, by, request.text).then(({ inputId }) => ackFrame("input", request.request_id, inputId)));
        } else {
          const decision =
            request.type === "approve"
              ? { kind: "approve" as const, callId: request.call_id }
              : request.type === "reject"
                ? { kind: "reject" as const, callId: request.call_id, ...(request.reason ? { reason: request.reason } : {}) }
                : { kind: "answer" as const, callId: request.call_id, text: request.text };
          void reply(interaction.decide(taskId, by, decision).then(() => ackFrame(request.type, request.request_id)));
        }
        return;
      }
    }
  }

  /**
   * A frame from the client (message, ping or pong) proves it alive and counts against
   * MAX_CLIENT_FRAMES_PER_SECOND; past it the socket is closed (1008). False when the frame is not
   * to be acted on (closing, or just closed for the flood).
   */
  function heard(ws: Socket): boolean {
    const now = performance.now();
    ws.data.lastSeen = now;
    if (ws.data.closed) return false; // closing: what is still buffered is not read
    if (ws.data.framesSince === undefined || now - ws.data.framesSince >= 1000) {
      ws.data.framesSince = now;
      ws.data.framesInSecond = 0;
    }
    if (++ws.data.framesInSecond! > MAX_CLIENT_FRAMES_PER_SECOND) {
      ws.data.closed = true;
      ws.close(CloseCode.policyViolation, `Too many messages: at most ${MAX_CLIENT_FRAMES_PER_SECOND} a second`);
      return false;
    }
    return true;
  }

  const handler: WebSocketHandler<Connection> = {
    maxPayloadLength: deps.maxFrameBytes,
    // Hard backstop well past our own slow-client limit (which is checked at most every 20 ms):
    // Bun then closes the connection rather than silently dropping frames.
    backpressureLimit: Math.max(deps.slowClientBytes * 8, deps.slowClientBytes + 8 * 1024 * 1024),
    closeOnBackpressureLimit: true,
    // Idle detection is ours (heartbeatMs, on client frames); Bun's would close silently.
    idleTimeout: 0,
    sendPings: false,
    perMessageDeflate: false,

    open(ws) {
      ws.data.closed = false;
      ws.data.counted = undefined;
      ws.data.lastSeen = performance.now();
      open.add(ws);
      if (!ws.data.principal) {
        return fail(ws, "Invalid or missing api_key", "unauthorized", CloseCode.unauthorized);
      }
      if (ws.data.badRequest !== undefined) {
        return fail(ws, ws.data.badRequest, "bad_request", CloseCode.badRequest);
      }
      const expiresAt = ws.data.principal.readOnly?.expiresAt;
      if (expiresAt !== undefined) {
        // A share token is valid until it expires — for a watcher already connected too.
        ws.data.expiry = timerAt(expiresAt, () => fail(ws, "The share token has expired", "unauthorized", CloseCode.unauthorized));
      }
      start(ws).catch((error) => {
        // The store out of reach or cutting a read short (a cluster's database down or behind a
        // lock, SQLite failing) passes: REST answers 503 with Retry-After; a watcher gets
        // `unavailable` and 1001, on which clients reconnect (1011 told them not to, and a short
        // outage ended every watch that began during it).
        if (isTransientStoreFailure(error)) {
          logger.warn("websocket: could not start the stream: the store is unavailable", { task: ws.data.taskId, error: errorMessage(error) });
          fail(ws, "The data store could not be read; try again shortly", "unavailable", CloseCode.goingAway);
          return;
        }
        logger.error("websocket: could not start the stream", { task: ws.data.taskId, error: errorMessage(error) });
        fail(ws, "Internal server error", "internal", CloseCode.serverError);
      });
    },

    message(ws, raw) {
      if (!heard(ws)) return;
      try {
        onClientFrame(ws, raw);
      } catch (error) {
        logger.error("websocket: message handler failed", { task: ws.data.taskId, error: errorMessage(error) });
        fail(ws, "Internal server error", "internal", CloseCode.serverError);
      }
    },

    // Control frames count too: 100,000 pings in one TCP write held the event loop ~45 ms (each
    // answered with a pong); a client pings every ~30 s.
    ping(ws) {
      heard(ws);
    },

    pong(ws) {
      heard(ws);
    },

    drain(ws) {
      wakeReplay(ws);
      if (ws.data.overLimit && ws.getBufferedAmount() <= deps.slowClientBytes) clearOverLimit(ws);
      if (ws.data.slowSince !== undefined && ws.getBufferedAmount() === 0) closeDrained(ws);
    },

    close(ws) {
      ws.data.closed = true;
      clearOverLimit(ws);
      ws.data.expiry?.clear();
      wakeReplay(ws);
      ws.data.slowSince = undefined;
      open.delete(ws);
      release(ws);
      ws.data.unfollow?.();
      ws.data.unfollow = undefined;
    },
  };

  return {
    handler,
    closeSlowWatchers(taskId) {
      // Called on every publish that met backpressure: scan a task's watchers at most every
      // SCAN_EVERY_MS. A publish within that time of the last scan is not dropped: one scan follows
      // when the time is up (a watcher that passed the limit meanwhile, even the hard one, with no
      // later publish, would otherwise get no grace timer — and a dead one would hold its queue
      // until the heartbeat).
      const since = performance.now() - (lastScan.get(taskId) ?? -Infinity);
      if (since >= SCAN_EVERY_MS) return scanSlow(taskId);
      if (!laterScans.has(taskId)) {
        laterScans.set(
          taskId,
          setTimeout(() => {
            laterScans.delete(taskId);
            scanSlow(taskId);
          }, SCAN_EVERY_MS - since),
        );
      }
    },
    closeAll(code, reason) {
      clearInterval(heartbeat);
      for (const timer of laterScans.values()) clearTimeout(timer);
      laterScans.clear();
      for (const ws of open) {
        ws.data.closed = true;
        clearOverLimit(ws);
        ws.close(code, reason);
      }
    },
    get size() {
      return open.size;
    },
  };
}
