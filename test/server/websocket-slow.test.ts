/**
 * When the task WebSocket finds a watcher too slow (src/server/websocket.ts), with a socket whose
 * queue the test sets: more than `slowClientBytes` queued is allowed for `slowClientGraceMs` (a
 * burst written in one turn passes the limit for a client that reads, too), past the hard limit
 * (4× the limit, at least 2 MiB) it is cut off at once, and one that stays past the limit is cut
 * off when the grace runs out — in each case it leaves its topics first, then gets 4008 once what
 * was queued has drained.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ServerWebSocket } from "bun";
import { taskTopic, type EventBus } from "../../src/bus/bus.ts";
import { createLiveFeed } from "../../src/bus/live-feed.ts";
import { CloseCode } from "../../src/errors.ts";
import { createLogger } from "../../src/lib/logger.ts";
import { createWatcherLimits } from "../../src/server/watcher-limits.ts";
import { createTaskWebSockets, type Connection, type TaskWebSockets } from "../../src/server/websocket.ts";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import type { TaskStore } from "../../src/store/store.ts";
import type { TaskRunner } from "../../src/tasks/runner.ts";
import { newTaskId } from "../../src/tasks/task-id.ts";
import { until } from "../helpers/deferred.ts";

const LIMIT = 16 * 1024;

/** The parts of Bun's ServerWebSocket the handler uses; `buffered` is what the test says is queued. */
class FakeSocket {
  buffered = 0;
  readonly sent: string[] = [];
  readonly topics = new Set<string>();
  closedWith: number | undefined;
  constructor(readonly data: Connection) {}
  send(frame: string) {
    this.sent.push(frame);
    return frame.length;
  }
  getBufferedAmount() {
    return this.buffered;
  }
  subscribe(topic: string) {
    this.topics.add(topic);
  }
  unsubscribe(topic: string) {
    this.topics.delete(topic);
  }
  close(code: number) {
    this.closedWith = code;
  }
  cork(callback: () => void) {
    callback();
  }
  ping() {}
  terminate() {
    this.closedWith = 1006;
  }
}

let dir: string | undefined;
let store: TaskStore | undefined;
const opened: TaskWebSockets[] = [];
afterEach(async () => {
  for (const sockets of opened.splice(0)) sockets.closeAll(CloseCode.goingAway, "test over");
  await store?.close();
  store = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A watcher of a queued task, subscribed to its topic, on a handler with the given grace. */
async function watching(graceMs: number) {
  dir = mkdtempSync(join(tmpdir(), "agentkit-ws-slow-"));
  store = createSqliteStore({ dataDir: dir });
  const bus: EventBus = { publish() {}, subscribers: () => 0 };
  const feed = createLiveFeed(bus);
  const task = await store.createTask({ id: newTaskId(), owner: "k", agent: "a", input: "x", metadata: {}, createdAt: new Date() });
  const runner = { liveTask: () => undefined } as unknown as TaskRunner;
  const sockets = createTaskWebSockets({
    store,
    feed,
    runner,
    logger: createLogger("silent"),
    heartbeatMs: 60_000,
    maxFrameBytes: 64 * 1024,
    watchers: createWatcherLimits({ perTask: 10, perKey: 10 }),
    slowClientBytes: LIMIT,
    slowClientGraceMs: graceMs,
  });
  opened.push(sockets);
  const ws = new FakeSocket({ taskId: task.id, after: 0, deltas: false, principal: { id: "k", admin: false }, closed: false, lastSeen: 0 });
  const socket = ws as unknown as ServerWebSocket<Connection>;
  sockets.handler.open!(socket);
  await until(() => ws.topics.has(taskTopic(task.id)), "the watcher to subscribe");
  return { ws, socket, sockets, topic: taskTopic(task.id), taskId: task.id };
}

test("past the limit but under the hard limit, a watcher is not cut off within the grace period", async () => {
  const { ws, sockets, topic, taskId } = await watching(60_000);
  ws.buffered = 10 * LIMIT; // 160 KiB: a burst of one turn, not yet handed to the socket
  sockets.closeSlowWatchers(taskId);
  expect(ws.topics.has(topic)).toBe(true);
  expect(ws.closedWith).toBeUndefined();
});

test("past the hard limit, a watcher is cut off at once: it leaves its topics, then gets 4008 once what was queued has drained", async () => {
  const { ws, socket, sockets, topic, taskId } = await watching(60_000);
  ws.buffered = 2 * 1024 * 1024 + 1;
  sockets.closeSlowWatchers(taskId);
  expect(ws.topics.has(topic)).toBe(false);
  expect(ws.closedWith).toBeUndefined();
  ws.buffered = 0;
  sockets.handler.drain!(socket);
  expect(ws.closedWith).toBe(CloseCode.tooSlow);
});

test("a watcher that stays past the limit is cut off when the grace runs out, with no more frames published", async () => {
  const { ws, socket, sockets, topic, taskId } = await watching(50);
  ws.buffered = 10 * LIMIT;
  sockets.closeSlowWatchers(taskId);
  expect(ws.topics.has(topic)).toBe(true);
  await until(() => !ws.topics.has(topic), "the grace to run out", 10_000);
  expect(ws.closedWith).toBeUndefined(); // what was queued goes first
  ws.buffered = 0;
  sockets.handler.drain!(socket);
  expect(ws.closedWith).toBe(CloseCode.tooSlow);
});

test("a watcher that reads back under the limit within the grace is not cut off when it would have run out", async () => {
  const { ws, socket, sockets, topic, taskId } = await watching(50);
  ws.buffered = 10 * LIMIT;
  sockets.closeSlowWatchers(taskId);
  ws.buffered = LIMIT / 2; // it reads: Bun tells the handler (drain)
  sockets.handler.drain!(socket);
  await Bun.sleep(300); // well past the grace
  expect(ws.topics.has(topic)).toBe(true);
  expect(ws.closedWith).toBeUndefined();
});

test("reading back under the limit starts the grace afresh: a watcher over the limit again later gets a whole grace period", async () => {
  const { ws, socket, sockets, topic, taskId } = await watching(2000);
  ws.buffered = 10 * LIMIT;
  sockets.closeSlowWatchers(taskId);
  ws.buffered = 0;
  sockets.handler.drain!(socket); // back under: this grace is over
  await Bun.sleep(1200);
  ws.buffered = 10 * LIMIT; // over again, 1.2 s into what was the first grace
  sockets.closeSlowWatchers(taskId);
  await Bun.sleep(1200); // past the first grace's end (2 s), well within the second (3.2 s)
  expect(ws.topics.has(topic)).toBe(true);
  await until(() => !ws.topics.has(topic), "the second grace to run out", 10_000);
});

test("a watcher that passes the hard limit just after a scan is checked once the scan interval is up, with no more publishes", async () => {
  const { ws, socket, sockets, topic, taskId } = await watching(60_000);
  sockets.closeSlowWatchers(taskId); // a publish met backpressure: a scan, nothing over
  ws.buffered = 2 * 1024 * 1024 + 1;
  sockets.closeSlowWatchers(taskId); // the next one, within the interval: no scan now, one when it is up
  expect(ws.topics.has(topic)).toBe(true);
  await until(() => !ws.topics.has(topic), "the scan that follows", 5_000);
  ws.buffered = 0;
  sockets.handler.drain!(socket);
  expect(ws.closedWith).toBe(CloseCode.tooSlow);
});

test("a client that keeps sending frames and never reads: the answers to its own frames (errors) count toward the limit, with its grace", async () => {
  const { ws, socket, sockets, topic } = await watching(50);
  ws.buffered = 10 * LIMIT; // its error frames, unread
  sockets.handler.message!(socket, '{"type":"nonsense"}');
  expect(ws.sent.at(-1)).toContain('"type":"error"');
  await until(() => !ws.topics.has(topic), "the grace to run out", 10_000);
  expect(ws.closedWith).toBeUndefined(); // what was queued goes first
});

test("… and past the hard limit (its pongs), at once", async () => {
  const { ws, socket, sockets, topic } = await watching(60_000);
  ws.buffered = 3 * 1024 * 1024;
  sockets.handler.message!(socket, '{"type":"ping"}');
  expect(ws.sent.at(-1)).toContain('"type":"pong"');
  expect(ws.topics.has(topic)).toBe(false);
});
