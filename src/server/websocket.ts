/**
 * The task WebSocket on Bun's native handlers (the one file that knows Bun's ServerWebSocket).
 * Protocol: see README "WebSocket protocol". `connected` first, then stored events after `after`,
 * then live ones; `ping` → `pong`; `cancel` cancels the task for every watcher.
 *
 * Limits: watchers per task and per key (close 4029), client frame size (Bun closes with 1009),
 * and slow watchers: one with more than `slowClientBytes` queued is closed with 4008 and may resume
 * with `after=` — it never slows the others, and nothing is dropped silently (Bun's own hard limit
 * closes rather than drops).
 */
import type { ServerWebSocket, WebSocketHandler } from "bun";
import { deltaTopic, taskTopic } from "../bus/bus.ts";
import type { LiveFeed } from "../bus/live-feed.ts";
import { CloseCode, errorMessage } from "../errors.ts";
import type { Logger } from "../lib/logger.ts";
import { ClientFrame, errorFrame, PONG } from "../protocol/frames.ts";
import type { TaskStore } from "../store/store.ts";
import type { TaskRunner } from "../tasks/runner.ts";
import { canSee, type WatchRequest } from "./app.ts";
import { lastSeqOf, startStream } from "./watch.ts";

export interface Connection extends WatchRequest {
  closed: boolean;
  /** Counted in the per-task and per-key watcher limits. */
  counted: boolean;
  heartbeat?: ReturnType<typeof setTimeout>;
}

export interface WebSocketDeps {
  store: TaskStore;
  feed: LiveFeed;
  runner: TaskRunner;
  logger: Logger;
  heartbeatMs: number;
  maxFrameBytes: number;
  maxWatchersPerTask: number;
  maxWatchersPerKey: number;
  slowClientBytes: number;
}

export interface TaskWebSockets {
  handler: WebSocketHandler<Connection>;
  /** Closes the watchers of `taskId` that have more than `slowClientBytes` queued (4008). */
  closeSlowWatchers(taskId: string): void;
  /** Closes every open task WebSocket (graceful shutdown: 1001 "going away"). */
  closeAll(code: number, reason: string): void;
  readonly size: number;
}

type Socket = ServerWebSocket<Connection>;

export function createTaskWebSockets(deps: WebSocketDeps): TaskWebSockets {
  const { store, feed, runner, logger } = deps;
  const open = new Set<Socket>();
  const watchersByTask = new Map<string, Set<Socket>>();
  const watchersByKey = new Map<string, number>();
  const lastScan = new Map<string, number>();

  function fail(ws: Socket, message: string, code: string, closeCode: number) {
    if (ws.data.closed) return;
    ws.send(errorFrame(message, code));
    ws.close(closeCode, message.slice(0, 120));
  }

  function isSlow(ws: Socket): boolean {
    return ws.getBufferedAmount() > deps.slowClientBytes;
  }

  function closeSlow(ws: Socket) {
    if (ws.data.closed) return;
    ws.data.closed = true; // stop replaying into it at once
    ws.close(CloseCode.tooSlow, "Too slow: reconnect with after=<last seq>");
  }

  /** Counts the watcher against its limits; false (and the socket closed) if over one. */
  function admit(ws: Socket, key: string): boolean {
    const { taskId } = ws.data;
    const ofTask = watchersByTask.get(taskId)?.size ?? 0;
    const ofKey = watchersByKey.get(key) ?? 0;
    if (ofTask >= deps.maxWatchersPerTask || ofKey >= deps.maxWatchersPerKey) {
      const which = ofTask >= deps.maxWatchersPerTask ? `${deps.maxWatchersPerTask} per task` : `${deps.maxWatchersPerKey} per key`;
      fail(ws, `Too many watchers (limit ${which})`, "too_many_watchers", CloseCode.tooManyWatchers);
      return false;
    }
    let set = watchersByTask.get(taskId);
    if (!set) watchersByTask.set(taskId, (set = new Set()));
    set.add(ws);
    watchersByKey.set(key, ofKey + 1);
    ws.data.counted = true;
    return true;
  }

  function release(ws: Socket) {
    if (!ws.data.counted) return;
    ws.data.counted = false;
    const set = watchersByTask.get(ws.data.taskId);
    set?.delete(ws);
    if (set?.size === 0) {
      watchersByTask.delete(ws.data.taskId);
      lastScan.delete(ws.data.taskId);
    }
    const key = ws.data.principal!.id;
    const count = (watchersByKey.get(key) ?? 1) - 1;
    if (count > 0) watchersByKey.set(key, count);
    else watchersByKey.delete(key);
  }

  async function start(ws: Socket) {
    const { taskId, after, principal } = ws.data;
    const task = await store.getTask(taskId);
    if (ws.data.closed) return;
    if (!task || !canSee(principal!, task)) return fail(ws, `No task with id '${taskId}'`, "not_found", CloseCode.notFound);
    const lastSeq = lastSeqOf(task, feed);
    if (after > lastSeq) {
      return fail(ws, `after=${after} is beyond the task's last event (${lastSeq})`, "bad_request", CloseCode.badRequest);
    }
    if (!admit(ws, principal!.id)) return;
    await startStream({
      store,
      feed,
      task,
      after,
      sendControl: (frame) => void ws.send(frame),
      watcher: {
        send({ frame }) {
          ws.send(frame);
          if (isSlow(ws)) closeSlow(ws);
        },
        subscribe() {
          ws.subscribe(taskTopic(taskId));
          if (ws.data.deltas) ws.subscribe(deltaTopic(taskId));
        },
        get closed() {
          return ws.data.closed;
        },
      },
    });
  }

  function onClientFrame(ws: Socket, raw: string | Buffer) {
    if (typeof raw !== "string") {
      ws.send(errorFrame("Binary frames are not supported; send JSON text", "bad_request"));
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      ws.send(errorFrame("Invalid JSON", "bad_request"));
      return;
    }
    const frame = ClientFrame.safeParse(value);
    if (!frame.success) {
      const type = typeof value === "object" && value !== null && !Array.isArray(value) ? (value as { type?: unknown }).type : undefined;
      const what = typeof type === "string" ? `Unknown message type '${type.slice(0, 64)}'` : "Message has no string 'type'";
      ws.send(errorFrame(`${what}; expected {"type":"ping"} or {"type":"cancel"}`, "bad_request"));
      return;
    }
    switch (frame.data.type) {
      case "ping":
        ws.send(PONG);
        return;
      case "cancel":
        if (!ws.data.counted) return; // not streaming yet (or refused): nothing it may cancel
        runner.cancel(ws.data.taskId).catch((error) => {
          logger.error("cancel failed", { task: ws.data.taskId, error: errorMessage(error) });
          fail(ws, "Cancel failed", "internal", CloseCode.serverError);
        });
        return;
    }
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
      ws.data.counted = false;
      open.add(ws);
      if (!ws.data.principal) {
        return fail(ws, "Invalid or missing api_key", "unauthorized", CloseCode.unauthorized);
      }
      ws.data.heartbeat = setTimeout(() => {
        if (!ws.data.closed) ws.close(CloseCode.normal, "Heartbeat timeout");
      }, deps.heartbeatMs);
      start(ws).catch((error) => {
        logger.error("websocket: could not start the stream", { task: ws.data.taskId, error: errorMessage(error) });
        fail(ws, "Internal server error", "internal", CloseCode.serverError);
      });
    },

    message(ws, raw) {
      ws.data.heartbeat?.refresh();
      try {
        onClientFrame(ws, raw);
      } catch (error) {
        logger.error("websocket: message handler failed", { task: ws.data.taskId, error: errorMessage(error) });
        fail(ws, "Internal server error", "internal", CloseCode.serverError);
      }
    },

    close(ws) {
      ws.data.closed = true;
      open.delete(ws);
      release(ws);
      clearTimeout(ws.data.heartbeat);
    },
  };

  return {
    handler,
    closeSlowWatchers(taskId) {
      // Called on every publish that met backpressure: scan a task's watchers at most every 20 ms.
      const now = performance.now();
      if (now - (lastScan.get(taskId) ?? -Infinity) < 20) return;
      lastScan.set(taskId, now);
      const set = watchersByTask.get(taskId);
      if (!set) return lastScan.delete(taskId), undefined;
      for (const ws of set) if (isSlow(ws)) closeSlow(ws);
    },
    closeAll(code, reason) {
      for (const ws of open) ws.close(code, reason);
    },
    get size() {
      return open.size;
    },
  };
}
