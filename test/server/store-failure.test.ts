/**
 * SQLite stops writing while the server runs (a full disk): reads go on, writes fail. The store is
 * the real one; while "full", its writes throw the error SQLite gives for a full disk (a real
 * SQLITE_FULL, made by an in-memory database at its page limit). Nothing stored may be lost, the
 * server says what is wrong, and the tasks it cut go on once the store writes again.
 */
import { copyFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterEach, expect, test } from "bun:test";
import type { TaskStore } from "../../src/store/store.ts";
import { AgentDefinition } from "../../src/agents/agent.ts";
import { until } from "../helpers/deferred.ts";
import { startTestServer, tempDir, type TestServer } from "../helpers/server.ts";
import { busyReadError, diskFullError } from "../helpers/sqlite-errors.ts";

const WRITES = new Set(["createTask", "appendEvents", "finishTask", "waitTask", "markRunning", "takeOver", "createThread", "appendWhileWaiting", "addInput"]);
/** Reads of a task that requests make. */
const READS = new Set(["getTask", "events"]);

interface Disk {
  full: boolean;
  refused: number;
  /** Refuse the next N calls of a write method (the disk full for a moment). */
  next?: Record<string, number>;
  /** Fail every read of a task (`READS`) with SQLite's SQLITE_BUSY (made in this directory). */
  readsFail?: string;
}

/** The store, with every write refused while `disk.full`, and the next `disk.next[method]` calls of a method. */
function fillable(disk: Disk) {
  return (store: TaskStore): TaskStore =>
    new Proxy(store, {
      get(target, property) {
        const value = Reflect.get(target, property, target);
        if (typeof property !== "string" || typeof value !== "function") return value;
        if (READS.has(property)) {
          return async (...args: unknown[]) => {
            if (disk.readsFail) throw busyReadError(disk.readsFail);
            return (value as (...a: unknown[]) => Promise<unknown>)(...args);
          };
        }
        if (!WRITES.has(property)) return value;
        return async (...args: unknown[]) => {
          if (disk.full || ((disk.next?.[property] ?? 0) > 0 && disk.next![property]!--)) {
            disk.refused++;
            throw diskFullError();
          }
          return (value as (...a: unknown[]) => Promise<unknown>)(...args);
        };
      },
    });
}

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

type Health = { status: string; store?: { writes: string; since?: string; error?: string } };
type ErrorBody = { error: { code: string } };

const BENCH = [{ model: "demo/bench", tools: ["calculator"], max_steps: 1000 }];

test("the error is what bun:sqlite gives for a full disk", () => {
  const error = diskFullError();
  expect(error.name).toBe("SQLiteError");
  expect((error as { code?: string }).code).toBe("SQLITE_FULL");
});

test("a full disk: /health says degraded, requests get 503 with Retry-After, the cut task is taken up again from its log once the store writes, and its watcher sees one gapless log", async () => {
  const disk: Disk = { full: false, refused: 0 };
  server = await startTestServer({ agents: BENCH, wrapStore: fillable(disk) });
  const task = await server.createTask({ input: JSON.stringify({ steps: 40, delay_ms: 15 }) });
  const ws = await server.watch(task.id);
  await ws.waitFor((frame) => frame.type === "step" && (frame.seq ?? 0) >= 10, "10 events");

  disk.full = true;
  await Bun.sleep(100); // the run's next write fails
  expect(disk.refused).toBeGreaterThan(0);

  const health = (await (await server.http("/health")).json()) as Health;
  expect(health.status).toBe("degraded");
  expect(health.store).toMatchObject({ writes: "failing", error: "database or disk is full" });
  expect(typeof health.store?.since).toBe("string");

  const refused = await server.http("/tasks", { method: "POST", json: { input: "What is 2+2?" } });
  expect(refused.status).toBe(503);
  expect(refused.headers.get("retry-after")).not.toBeNull();
  expect(((await refused.json()) as ErrorBody).error.code).toBe("unavailable");

  // The task has not ended: the store says running, and no result reached the watcher.
  expect(((await (await server.http(`/tasks/${task.id}`)).json()) as { status: string }).status).toBe("running");
  expect(ws.frames.some((frame) => frame.type === "result")).toBe(false);

  disk.full = false;
  const result = await ws.waitFor((frame) => frame.type === "result", "the result", 15_000);
  expect((result.data as { status: string }).status).toBe("completed");
  const resumed = ws.frames.filter((frame) => frame.type === "step" && (frame.data as { event_type: string }).event_type === "resumed");
  expect(resumed.length).toBe(1);
  expect((resumed[0]!.data as { data: { reason: string } }).data.reason).toBe("store_failure");

  // What the watcher got is the stored log, every seq once, in order.
  const seqs = ws.frames.filter((frame) => frame.seq !== undefined).map((frame) => frame.seq!);
  expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, index) => index + 1));
  expect(ws.raw.filter((text) => JSON.parse(text).seq !== undefined)).toEqual(await server.storedLog(task.id));

  const after = (await (await server.http("/health")).json()) as Health;
  expect(after.status).toBe("ok");
  expect(after.store).toEqual({ writes: "ok" });
  ws.close();
});

test("a cancel while the store cannot write answers 503; the task ends cancelled once it can, not resumed", async () => {
  const disk: Disk = { full: false, refused: 0 };
  server = await startTestServer({ agents: BENCH, wrapStore: fillable(disk) });
  const task = await server.createTask({ input: JSON.stringify({ steps: 200, delay_ms: 15 }) });
  const ws = await server.watch(task.id);
  await ws.waitFor((frame) => frame.type === "step" && (frame.seq ?? 0) >= 5, "5 events");
  disk.full = true;
  await Bun.sleep(100);

  const cancel = await server.http(`/tasks/${task.id}/cancel`, { method: "POST" });
  expect(cancel.status).toBe(503);
  expect(((await cancel.json()) as ErrorBody).error.code).toBe("unavailable");
  expect(((await (await server.http(`/tasks/${task.id}`)).json()) as { status: string }).status).toBe("running");

  disk.full = false;
  const result = await ws.waitFor((frame) => frame.type === "result", "the result", 15_000);
  expect((result.data as { status: string }).status).toBe("cancelled");
  expect(ws.frames.some((frame) => frame.type === "step" && (frame.data as { event_type: string }).event_type === "resumed")).toBe(false);
  expect(((await (await server.http(`/tasks/${task.id}`)).json()) as { status: string }).status).toBe("cancelled");
  ws.close();
});

test("a task whose end could not be stored is not left running: it is taken up again and ends once the store writes", async () => {
  const disk: Disk = { full: false, refused: 0, next: { finishTask: 2 } };
  server = await startTestServer({ agents: BENCH, wrapStore: fillable(disk) });
  const task = await server.createTask({ input: JSON.stringify({ steps: 3 }) });
  const ws = await server.watch(task.id);
  const result = await ws.waitFor((frame) => frame.type === "result", "the result", 15_000);
  expect(disk.refused).toBe(2);
  expect((result.data as { status: string; output: string }).status).toBe("completed");
  const reasons = ws.frames
    .filter((frame) => frame.type === "step" && (frame.data as { event_type: string }).event_type === "resumed")
    .map((frame) => (frame.data as { data: { reason: string } }).data.reason);
  expect(reasons).toEqual(["store_failure", "store_failure"]);
  expect(((await (await server.http(`/tasks/${task.id}`)).json()) as { status: string }).status).toBe("completed");
  expect(ws.raw.filter((text) => JSON.parse(text).seq !== undefined)).toEqual(await server.storedLog(task.id));
  ws.close();
});

test("agentkit.sqlite deleted or replaced under a running server: /health says the writes are lost (degraded, naming the file)", async () => {
  for (const how of ["deleted", "replaced"] as const) {
    server = await startTestServer();
    const file = join(server.dataDir, "agentkit.sqlite");
    expect(((await (await server.http("/health")).json()) as Health).store).toEqual({ writes: "ok" });
    if (how === "deleted") for (const suffix of ["", "-wal", "-shm"]) rmSync(file + suffix, { force: true });
    else {
      copyFileSync(file, `${file}.copy`);
      renameSync(`${file}.copy`, file);
    }
    const health = (await (await server.http("/health")).json()) as Health;
    expect(health.status, how).toBe("degraded");
    expect(health.store).toMatchObject({ writes: "lost", error: expect.stringContaining(`${file} was ${how} while the server runs`) });
    // Tasks still run (into the file it has open): the server says what that means, it does not stop.
    const task = await server.createTask({ input: "What is 2+2?" });
    await (await server.watch(task.id)).result();
    await server.close();
    server = undefined;
  }
});

const statusOf = async (id: string) => ((await (await server!.http(`/tasks/${id}`)).json()) as { status: string }).status;

test("a task the store cut waits for a slot like any other: max_concurrent_tasks holds while it is taken up again", async () => {
  const disk: Disk = { full: false, refused: 0 };
  server = await startTestServer({ agents: BENCH, wrapStore: fillable(disk), config: { maxConcurrentTasks: 1 } });
  const first = await server.createTask({ input: JSON.stringify({ steps: 60, delay_ms: 15 }) });
  // Running well past the first's retry (1 s after it is cut).
  const second = await server.createTask({ input: JSON.stringify({ steps: 150, delay_ms: 15 }) });
  await until(async () => (await statusOf(first.id)) === "running", "the first runs");
  disk.next = { appendEvents: 1 }; // the first's next write: it is cut, the second takes the slot
  let most = 0;
  const watching = setInterval(() => (most = Math.max(most, server!.runner.stats().running)), 5);
  try {
    await until(async () => (await statusOf(first.id)) === "completed" && (await statusOf(second.id)) === "completed", "both complete", 15_000);
  } finally {
    clearInterval(watching);
  }
  expect(disk.refused).toBe(1);
  expect(most).toBe(1);
});

test("a task whose start the store refused (markRunning) is not stranded: it stays queued and runs once the store writes", async () => {
  const disk: Disk = { full: false, refused: 0, next: { markRunning: 1 } };
  server = await startTestServer({ agents: BENCH, wrapStore: fillable(disk) });
  const task = await server.createTask({ input: JSON.stringify({ steps: 2 }) });
  const ws = await server.watch(task.id);
  const result = await ws.waitFor((frame) => frame.type === "result", "the result", 10_000);
  expect((result.data as { status: string }).status).toBe("completed");
  expect(disk.refused).toBe(1);
  expect(server.runner.stats()).toEqual({ running: 0, queued: 0 });
  ws.close();
});

test("on_interrupt fail: a task the store cut ends interrupted once the store writes, and its thread's next task runs", async () => {
  const disk: Disk = { full: false, refused: 0 };
  server = await startTestServer({ agents: [{ ...BENCH[0], on_interrupt: "fail" }], wrapStore: fillable(disk) });
  const thread = (await (await server.http("/threads", { method: "POST" })).json()) as { id: string };
  const first = await server.createTask({ input: JSON.stringify({ steps: 100, delay_ms: 15 }), thread_id: thread.id });
  const second = await server.createTask({ input: JSON.stringify({ steps: 1 }), thread_id: thread.id });
  await until(async () => (await statusOf(first.id)) === "running", "the first runs");
  disk.next = { appendEvents: 1 };
  await until(async () => (await statusOf(first.id)) === "failed", "the first ends", 10_000);
  const ended = (await (await server.http(`/tasks/${first.id}`)).json()) as { stop_reason: string; error: { code: string } };
  expect(ended).toMatchObject({ stop_reason: "interrupted", error: { code: "interrupted" } });
  await until(async () => (await statusOf(second.id)) === "completed", "the thread's next task runs", 10_000);
});

test("a cancel that reaches a running task whose end the store cannot write answers 503; the task ends cancelled once it can", async () => {
  const disk: Disk = { full: false, refused: 0 };
  server = await startTestServer({ agents: BENCH, wrapStore: fillable(disk) });
  const task = await server.createTask({ input: JSON.stringify({ steps: 5, delay_ms: 1500 }) });
  await until(async () => (await statusOf(task.id)) === "running", "it runs");
  await Bun.sleep(200); // in its model call: nothing to write until the cancel
  disk.full = true;
  const cancel = await server.http(`/tasks/${task.id}/cancel`, { method: "POST" });
  expect(cancel.status).toBe(503);
  expect(((await cancel.json()) as ErrorBody).error.code).toBe("unavailable");
  disk.full = false;
  await until(async () => (await statusOf(task.id)) === "cancelled", "it ends cancelled", 10_000);
  const log = (await server.storedLog(task.id)).map((text) => JSON.parse(text) as { data: { event_type?: string } });
  expect(log.some((frame) => frame.data.event_type === "resumed")).toBe(false);
});

test("a run whose approval request the store could not write is not parked without it: it is taken up again and parks with the request", async () => {
  const disk: Disk = { full: false, refused: 0, next: { appendEvents: 1 } };
  server = await startTestServer({ agents: [{ ...BENCH[0], approval: ["calculator"] }], wrapStore: fillable(disk) });
  const task = await server.createTask({ input: JSON.stringify({ steps: 1 }) });
  await until(async () => (await statusOf(task.id)) === "waiting", "it waits for the approval", 10_000);
  const kinds = (await server.storedLog(task.id)).map((text) => (JSON.parse(text) as { data: { event_type?: string } }).data.event_type);
  expect(disk.refused).toBe(1);
  expect(kinds).toContain("approval_requested");
  expect(kinds).toContain("resumed");
});

test("a cancel of a task whose start the store refused ends it cancelled (it does not run later)", async () => {
  const disk: Disk = { full: false, refused: 0 };
  server = await startTestServer({ agents: BENCH, wrapStore: fillable(disk) });
  disk.next = { markRunning: 1 };
  const task = await server.createTask({ input: JSON.stringify({ steps: 2 }) });
  await until(() => disk.refused === 1, "its start refused");
  const cancel = await server.http(`/tasks/${task.id}/cancel`, { method: "POST" });
  expect(cancel.status).toBe(200);
  expect(((await cancel.json()) as { status: string }).status).toBe("cancelled");
  await Bun.sleep(1500); // past the retry
  expect(await statusOf(task.id)).toBe("cancelled");
  const kinds = (await server.storedLog(task.id)).map((text) => (JSON.parse(text) as { type: string }).type);
  expect(kinds).toEqual(["result"]);
});

test("the retry's wait starts at 1 s again once a task taken up again has written (it doubles only while the store keeps refusing)", async () => {
  const { startLoggedServer } = await import("../helpers/logged-server.ts");
  const disk: Disk = { full: false, refused: 0 };
  const logged = await startLoggedServer({ config: { agents: [AgentDefinition.parse({ name: "default", ...BENCH[0] })] }, wrapStore: fillable(disk) });
  try {
    const created = await fetch(`${logged.baseUrl}/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input: JSON.stringify({ steps: 400, delay_ms: 10 }) }) });
    expect(created.status).toBe(201);
    const waits = () => logged.lines.filter((entry) => entry.line.includes("it is taken up again once it can")).map((entry) => Number(/"retry_in_ms":(\d+)/.exec(entry.line)![1]));
    const resumes = () => logged.lines.filter((entry) => entry.line.includes("task resumed from its log")).length;
    disk.next = { appendEvents: 1 };
    await until(() => resumes() === 1, "taken up again", 10_000);
    await Bun.sleep(200); // its run writes again
    disk.next = { appendEvents: 1 };
    await until(() => resumes() === 2, "taken up again, twice", 10_000);
    expect(waits()).toEqual([1000, 1000]);
  } finally {
    await logged.close();
  }
});

test("a task whose start the store refused twice, then ran and wrote: its next cut waits 1 s again", async () => {
  const { startLoggedServer } = await import("../helpers/logged-server.ts");
  const disk: Disk = { full: false, refused: 0 };
  const logged = await startLoggedServer({ config: { agents: [AgentDefinition.parse({ name: "default", ...BENCH[0] })] }, wrapStore: fillable(disk) });
  try {
    disk.next = { markRunning: 2 };
    const created = await fetch(`${logged.baseUrl}/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input: JSON.stringify({ steps: 400, delay_ms: 10 }) }) });
    expect(created.status).toBe(201);
    const waits = () => logged.lines.filter((entry) => entry.line.includes("it is taken up again once it can")).map((entry) => Number(/"retry_in_ms":(\d+)/.exec(entry.line)![1]));
    await until(() => disk.refused === 2, "start refused twice", 10_000);
    await Bun.sleep(2500); // started, writing
    disk.next = { appendEvents: 1 };
    await until(() => waits().length === 3, "cut", 10_000);
    expect(waits()).toEqual([1000, 2000, 1000]);
  } finally {
    await logged.close();
  }
});

test("a read that fails (SQLITE_BUSY) answers 503 and is logged, but does not mark the store's writes failing; a write that fails still does", async () => {
  const { startLoggedServer } = await import("../helpers/logged-server.ts");
  const disk: Disk = { full: false, refused: 0 };
  const logged = await startLoggedServer({ wrapStore: fillable(disk) });
  const http = (path: string, method = "GET") => fetch(`${logged.baseUrl}${path}`, { method });
  const healthOf = async () => (await (await http("/health")).json()) as Health;
  try {
    const created = await fetch(`${logged.baseUrl}/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input: "What is 2+2?" }) });
    const task = (await created.json()) as { id: string };
    await until(async () => ((await (await http(`/tasks/${task.id}`)).json()) as { status: string }).status === "completed", "the task ends");

    disk.readsFail = tempDir();
    try {
      // A GET, and a POST whose first step (the task's read) fails: both 503, the store said unreadable.
      const failed = [await http(`/tasks/${task.id}`), await http(`/tasks/${task.id}/cancel`, "POST")];
      const health = await healthOf();
      expect(health.status).toBe("ok");
      expect(health.store).toEqual({ writes: "ok" });
      for (const response of failed) {
        expect(response.status, response.url).toBe(503);
        expect(response.headers.get("retry-after")).not.toBeNull();
        const body = (await response.json()) as { error: { code: string; message: string } };
        expect(body.error).toMatchObject({ code: "unavailable", message: expect.stringContaining("could not be read (database is locked)") });
      }
      const warned = logged.lines.filter((entry) => entry.line.includes("request failed: the store could not be read"));
      expect(warned.map((entry) => entry.level)).toEqual(["warn", "warn"]);
      expect(logged.lines.some((entry) => entry.line.includes("the store cannot write"))).toBe(false);
    } finally {
      rmSync(disk.readsFail, { recursive: true, force: true });
      disk.readsFail = undefined;
    }

    // A request's write that fails (a thread, made by the request alone) marks them, as before.
    disk.full = true;
    const refused = await http("/threads", "POST");
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toContain("cannot write (database or disk is full)");
    const failing = await healthOf();
    expect(failing.status).toBe("degraded");
    expect(failing.store).toMatchObject({ writes: "failing", error: "database or disk is full" });
    // And its success clears them.
    disk.full = false;
    expect((await http("/threads", "POST")).status).toBe(201);
    expect((await healthOf()).store).toEqual({ writes: "ok" });
  } finally {
    await logged.close();
  }
});
