/**
 * The task WebSocket on Bun's native handlers (the one file that knows Bun's ServerWebSocket).
 * Protocol: see README "WebSocket protocol". `connected` first, then stored events after `after`,
 * then live ones; `ping` → `pong`; `cancel` cancels the task for every watcher.
 */
import type { ServerWebSocket, WebSocketHandler } from "bun";
import { deltaTopic, taskTopic } from "../bus/bus.ts";
import type { LiveFeed } from "../bus/live-feed.ts";
import { CloseCode, errorMessage } from "../errors.ts";
import type { Logger } from "../lib/logger.ts";
import { ClientFrame, errorFrame, PONG } from "../protocol/frames.ts";
import type { TaskStore } from "../store/store.ts";
import type { TaskRunner } from "../tasks/runner.ts";
import type { WatchRequest } from "./app.ts";
import { attachWatcher } from "./watch.ts";

export interface Connection extends WatchRequest {
  closed: boolean;
  heartbeat?: ReturnType<typeof setTimeout>;
}

export interface WebSocketDeps {
  store: TaskStore;
  feed: LiveFeed;
  runner: TaskRunner;
  logger: Logger;
  heartbeatMs: number;
  maxFrameBytes: number;
}

export interface TaskWebSockets {
  handler: WebSocketHandler<Connection>;
  /** Closes every open task WebSocket (graceful shutdown: 1001 "going away"). */
  closeAll(code: number, reason: string): void;
  readonly size: number;
}

export function createTaskWebSockets(deps: WebSocketDeps): TaskWebSockets {
  const { store, feed, runner, logger } = deps;
  const open = new Set<ServerWebSocket<Connection>>();

  function fail(ws: ServerWebSocket<Connection>, message: string, code: string, closeCode: number) {
    if (ws.data.closed) return;
    ws.send(errorFrame(message, code));
    ws.close(closeCode, message.slice(0, 120));
  }

  async function start(ws: ServerWebSocket<Connection>) {
    const { taskId, after } = ws.data;
    const task = await store.getTask(taskId);
    if (ws.data.closed) return;
    if (!task) return fail(ws, `No task with id '${taskId}'`, "not_found", CloseCode.notFound);
    const lastSeq = Math.max(task.last_seq, feed.tail(taskId)?.lastSeq ?? 0);
    if (after > lastSeq) {
      return fail(ws, `after=${after} is beyond the task's last event (${lastSeq})`, "bad_request", CloseCode.badRequest);
    }
    ws.send(JSON.stringify({ type: "connected", task_id: taskId, status: task.status, last_seq: lastSeq }));
    await attachWatcher({
      store,
      feed,
      taskId,
      after,
      watcher: {
        send: (frame) => void ws.send(frame),
        subscribe: () => {
          ws.subscribe(taskTopic(taskId));
          if (ws.data.deltas) ws.subscribe(deltaTopic(taskId));
        },
        get closed() {
          return ws.data.closed;
        },
      },
    });
  }

  function onClientFrame(ws: ServerWebSocket<Connection>, raw: string | Buffer) {
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
        runner.cancel(ws.data.taskId).catch((error) => {
          logger.error("cancel failed", { task: ws.data.taskId, error: errorMessage(error) });
          fail(ws, "Cancel failed", "internal", CloseCode.serverError);
        });
        return;
    }
  }

  const handler: WebSocketHandler<Connection> = {
    maxPayloadLength: deps.maxFrameBytes,
    // Idle detection is ours (heartbeatMs, on client frames); Bun's would close silently.
    idleTimeout: 0,
    sendPings: false,
    perMessageDeflate: false,

    open(ws) {
      ws.data.closed = false;
      open.add(ws);
      if (!ws.data.authorized) {
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
      clearTimeout(ws.data.heartbeat);
    },
  };

  return {
    handler,
    closeAll(code, reason) {
      for (const ws of open) ws.close(code, reason);
    },
    get size() {
      return open.size;
    },
  };
}
