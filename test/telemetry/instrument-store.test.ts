/**
 * The server's store wrapper (`instrumentStore`): one Proxy over the real SQLite store that times
 * the event-log writes for the metrics and reports every watched write to the store's health
 * (/health's `store.writes`), and leaves everything else as the store answers it.
 */
import { rmSync } from "node:fs";
import { afterEach, expect, test } from "bun:test";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import { createStoreHealth } from "../../src/store/store-health.ts";
import type { TaskOutcome, TaskStore } from "../../src/store/store.ts";
import { instrumentStore } from "../../src/telemetry/instrument-store.ts";
import { noTelemetry, type Telemetry } from "../../src/telemetry/telemetry.ts";
import { tempDir } from "../helpers/server.ts";
import { diskFullError } from "../helpers/sqlite-errors.ts";

let dir: string | undefined;
let store: TaskStore | undefined;
afterEach(() => {
  store?.close();
  store = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** The real store, whose next call of a method named in `refuse` throws SQLite's SQLITE_FULL (once per name). */
function refusing(sqlite: TaskStore, refuse: Set<string>): TaskStore {
  return new Proxy(sqlite, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof property !== "string" || typeof value !== "function") return value;
      return (...args: unknown[]) => (refuse.delete(property) ? Promise.reject(diskFullError()) : (value as (...a: unknown[]) => unknown)(...args));
    },
  });
}

const completed = (): TaskOutcome => ({
  status: "completed",
  stopReason: "final_answer",
  output: "done",
  error: null,
  totalSteps: 1,
  inputTokens: 1,
  outputTokens: 1,
  costUsd: null,
  finishedAt: new Date(),
});

test("one wrapper times the event-log writes and reports every watched write to the store's health", async () => {
  dir = tempDir();
  store = createSqliteStore({ dataDir: dir });
  const refuse = new Set<string>();
  const timed: [operation: string, events: number, failed: boolean][] = [];
  const telemetry: Telemetry = { ...noTelemetry, storeWrite: (operation, _ms, events, failed) => void timed.push([operation, events, failed]) };
  const health = createStoreHealth();
  const served = instrumentStore(refusing(store, refuse), telemetry, health);

  await served.createTask({ id: "t", owner: "o", agent: "a", input: "i", metadata: {}, createdAt: new Date() });
  expect(await served.markRunning("t", new Date())).toBe(true);
  expect(health.state()).toEqual({ writes: "ok" });

  // A refused append: the health says failing (SQLite's message), the metrics count a failed append.
  refuse.add("appendEvents");
  await expect(served.appendEvents("t", [{ seq: 1, frame: "{}" }])).rejects.toMatchObject({ code: "SQLITE_FULL" });
  expect(health.state()).toMatchObject({ writes: "failing", error: "database or disk is full" });
  expect(timed).toEqual([["append", 1, true]]);

  // The next one succeeds: ok again, and timed.
  await served.appendEvents("t", [{ seq: 1, frame: "{}" }]);
  expect(health.state()).toEqual({ writes: "ok" });
  expect(timed).toEqual([["append", 1, true], ["append", 1, false]]);

  // A write that is watched but not timed (the task's start, a takeover): health only.
  refuse.add("takeOver");
  await expect(served.takeOver("t")).rejects.toMatchObject({ code: "SQLITE_FULL" });
  expect(health.state()).toMatchObject({ writes: "failing" });
  expect(await served.takeOver("t")).toBe(2);
  expect(health.state()).toEqual({ writes: "ok" });

  // The end, with the run's last events: timed with them, and a write.
  refuse.add("finishTask");
  await expect(served.finishTask("t", completed(), 3, "{}", undefined, undefined, [{ seq: 2, frame: "{}" }])).rejects.toMatchObject({ code: "SQLITE_FULL" });
  expect(health.state()).toMatchObject({ writes: "failing" });
  expect(await served.finishTask("t", completed(), 3, "{}", undefined, undefined, [{ seq: 2, frame: "{}" }])).toBe(true);
  expect(health.state()).toEqual({ writes: "ok" });
  expect(timed.slice(2)).toEqual([["finish", 1, true], ["finish", 1, false]]);

  // Reads are the store's own, untouched.
  expect(await served.getTask("t")).toMatchObject({ status: "completed", last_seq: 3 });
  expect((await served.events("t", 0, 10)).map((event) => event.seq)).toEqual([1, 2, 3]);
});

test("without metrics, the watched writes still report to the health; with neither, the store itself", async () => {
  dir = tempDir();
  store = createSqliteStore({ dataDir: dir });
  expect(instrumentStore(store, noTelemetry)).toBe(store);
  const refuse = new Set(["createTask"]);
  const health = createStoreHealth();
  const served = instrumentStore(refusing(store, refuse), noTelemetry, health);
  const task = { id: "t", owner: "o", agent: "a", input: "i", metadata: {}, createdAt: new Date() };
  await expect(served.createTask(task)).rejects.toMatchObject({ code: "SQLITE_FULL" });
  expect(health.state()).toMatchObject({ writes: "failing" });
  await served.createTask(task);
  expect(health.state()).toEqual({ writes: "ok" });
});
