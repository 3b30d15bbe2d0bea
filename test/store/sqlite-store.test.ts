/** The SQLite store on a real file: gapless seq, first terminal state wins, validation on read. */
import { afterEach, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import type { TaskOutcome, TaskStore } from "../../src/store/store.ts";
import { tempDir } from "../helpers/server.ts";

let store: TaskStore | undefined;
let dir: string | undefined;
afterEach(() => {
  store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  store = dir = undefined;
});

function open() {
  dir = tempDir();
  store = createSqliteStore({ dataDir: dir });
  return store;
}

const outcome = (status: TaskOutcome["status"]): TaskOutcome => ({
  status,
  stopReason: status === "completed" ? "final_answer" : "cancelled",
  output: status === "completed" ? "ok" : null,
  error: null,
  totalSteps: 1,
  inputTokens: 2,
  outputTokens: 1,
  costUsd: null,
  finishedAt: new Date(),
});

test("events get a gapless seq; out-of-order or duplicate appends are refused", async () => {
  const s = open();
  await s.createTask({ id: "t", owner: "anonymous", agent: "a", input: "i", metadata: { k: 1 }, createdAt: new Date() });
  await s.appendEvents("t", [{ seq: 1, frame: '{"n":1}' }]);
  await s.appendEvents("t", [{ seq: 2, frame: '{"n":2}' }]);
  await expect(s.appendEvents("t", [{ seq: 2, frame: '{"dup":2}' }])).rejects.toThrow("not the next in sequence");
  await expect(s.appendEvents("t", [{ seq: 4, frame: '{"gap":4}' }])).rejects.toThrow("not the next in sequence");
  await expect(s.appendEvents("missing", [{ seq: 1, frame: "{}" }])).rejects.toThrow();
  expect(await s.events("t", 0, 10)).toEqual([
    { seq: 1, frame: '{"n":1}' },
    { seq: 2, frame: '{"n":2}' },
  ]);
  expect(await s.events("t", 1, 10)).toEqual([{ seq: 2, frame: '{"n":2}' }]);
  expect(await s.events("t", 0, 1)).toEqual([{ seq: 1, frame: '{"n":1}' }]);
  expect((await s.getTask("t"))?.last_seq).toBe(2);
});

test("the first terminal state wins", async () => {
  const s = open();
  await s.createTask({ id: "t", owner: "anonymous", agent: "a", input: "i", metadata: {}, createdAt: new Date() });
  expect(await s.markRunning("t", new Date())).toBe(true);
  expect(await s.markRunning("t", new Date())).toBe(false);
  expect(await s.finishTask("t", outcome("cancelled"), 1, '{"r":"cancelled"}')).toBe(true);
  expect(await s.finishTask("t", outcome("completed"), 2, '{"r":"completed"}')).toBe(false);
  const task = await s.getTask("t");
  expect(task).toMatchObject({ status: "cancelled", last_seq: 1, stop_reason: "cancelled" });
  expect((await s.events("t", 0, 10)).map((event) => event.frame)).toEqual(['{"r":"cancelled"}']);
  // A queued task that was cancelled can no longer start.
  await s.createTask({ id: "q", owner: "anonymous", agent: "a", input: "i", metadata: {}, createdAt: new Date() });
  expect(await s.finishTask("q", outcome("cancelled"), 1, "{}")).toBe(true);
  expect(await s.markRunning("q", new Date())).toBe(false);
});

test("data survives reopening the file; a row that fails validation is an error, not garbage", async () => {
  const s = open();
  await s.createTask({ id: "t", owner: "anonymous", agent: "a", input: "i", metadata: { nested: { x: [1] } }, createdAt: new Date("2026-01-02T03:04:05Z") });
  s.close();
  store = createSqliteStore({ dataDir: dir! });
  expect(await store.getTask("t")).toMatchObject({ metadata: { nested: { x: [1] } }, created_at: "2026-01-02T03:04:05.000Z", status: "queued" });
  const { Database } = await import("bun:sqlite");
  const raw = new Database(`${dir}/agentkit.sqlite`);
  raw.run("UPDATE tasks SET status = 'exploded' WHERE id = 't'");
  raw.close();
  await expect(store.getTask("t")).rejects.toThrow();
});

test("an invalid cursor is a bad request", async () => {
  const s = open();
  await expect(s.listTasks({ limit: 5, cursor: "garbage" })).rejects.toMatchObject({ code: "bad_request" });
});

test("a run of events is stored in one transaction: all or none", async () => {
  const s = open();
  await s.createTask({ id: "a", owner: "anonymous", agent: "x", input: "i", metadata: {}, createdAt: new Date() });
  await s.appendEvents("a", [
    { seq: 1, frame: "a1" },
    { seq: 2, frame: "a2" },
    { seq: 3, frame: "a3" },
  ]);
  await expect(
    s.appendEvents("a", [
      { seq: 4, frame: "a4" },
      { seq: 6, frame: "a6-gap" },
    ]),
  ).rejects.toThrow("must be consecutive");
  await expect(s.appendEvents("a", [{ seq: 3, frame: "again" }, { seq: 4, frame: "a4" }])).rejects.toThrow("not the next in sequence");
  expect((await s.events("a", 0, 10)).map((event) => event.frame)).toEqual(["a1", "a2", "a3"]);
  expect((await s.getTask("a"))?.last_seq).toBe(3);
  await s.appendEvents("a", []);
  expect((await s.getTask("a"))?.last_seq).toBe(3);
});
