/**
 * The SQLite store on a real file: the TaskStore contract (test/store/conformance.ts, the same
 * suite the PostgreSQL store runs), then what is SQLite's own: the file, validation on read, the
 * schema migrations.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Task } from "../../src/protocol/task.ts";
import { createSqliteStore, listTasksSql, SQLITE_MIGRATIONS } from "../../src/store/sqlite-store.ts";
import { FencedError, type TaskOutcome, type TaskStore } from "../../src/store/store.ts";
import { tempDir } from "../helpers/server.ts";
import { storeConformance } from "./conformance.ts";

storeConformance("SQLite", () => {
  const dataDir = tempDir();
  return {
    open: async () => createSqliteStore({ dataDir }),
    openAgain: async () => createSqliteStore({ dataDir }),
    cleanup: () => rmSync(dataDir, { recursive: true, force: true }),
  };
});

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

test("a database file that cannot be opened is named in the error (SQLite's own message names nothing)", () => {
  const dir = tempDir();
  mkdirSync(join(dir, "agentkit.sqlite")); // a directory where the file should be
  try {
    expect(() => createSqliteStore({ dataDir: dir })).toThrow(`cannot open the SQLite database ${join(dir, "agentkit.sqlite")}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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

test("a task read back is exactly what the API schema makes of it (fields, values, order), and each kind of bad row is an error naming the column", async () => {
  const s = open();
  await s.createTask({ id: "t", owner: "k", agent: "a", input: "i", metadata: { deep: { list: [1, "two", null] } }, createdAt: new Date("2026-01-02T03:04:05Z") });
  await s.markRunning("t", new Date("2026-01-02T03:04:06Z"));
  await s.appendEvents("t", [{ seq: 1, frame: "{}" }]);
  const error = { code: "rate_limited" as const, message: "slow down", retryable: true };
  expect(await s.finishTask("t", { ...outcome("failed"), stopReason: "error", error }, 2, "{}")).toBe(true);
  const task = (await s.getTask("t"))!;
  const parsed = Task.parse(task);
  expect(task).toEqual(parsed);
  expect(Object.keys(task)).toEqual(Object.keys(Task.shape));
  expect(JSON.stringify(task)).toBe(JSON.stringify(parsed));
  s.close();
  const { Database } = await import("bun:sqlite");
  const cases: [string, RegExp][] = [
    ["UPDATE tasks SET metadata = 'not json' WHERE id = 't'", /metadata is not JSON/],
    ["UPDATE tasks SET metadata = '[1]' WHERE id = 't'", /metadata is not an object/],
    ["UPDATE tasks SET stop_reason = 'bored' WHERE id = 't'", /unknown stop_reason/],
    ["UPDATE tasks SET last_seq = 1.5 WHERE id = 't'", /last_seq is not an integer/],
    ["UPDATE tasks SET error = '{\"code\":\"nope\",\"message\":\"m\",\"retryable\":true}' WHERE id = 't'", /error is not a task error/],
    ["UPDATE tasks SET output = x'41' WHERE id = 't'", /output is not a string or null/],
  ];
  for (const [statement, message] of cases) {
    const raw = new Database(`${dir}/agentkit.sqlite`);
    raw.run("SAVEPOINT bad");
    raw.run(statement);
    raw.run("RELEASE bad");
    raw.close();
    store = createSqliteStore({ dataDir: dir! });
    await expect(store.getTask("t")).rejects.toThrow(message);
    await expect(store.listTasks({ limit: 5 })).rejects.toThrow(message);
    await store.close();
    store = undefined;
    // Put the good row back for the next case.
    const fix = new Database(`${dir}/agentkit.sqlite`);
    fix.run(
      "UPDATE tasks SET metadata = ?, stop_reason = 'error', last_seq = 2, error = ?, output = NULL WHERE id = 't'",
      [JSON.stringify({ deep: { list: [1, "two", null] } }), JSON.stringify(error)],
    );
    fix.close();
  }
});

test("a task's error is stored as its object and read back as one", async () => {
  const s = open();
  await s.createTask({ id: "t", owner: "anonymous", agent: "a", input: "i", metadata: {}, createdAt: new Date() });
  const error = { code: "rate_limited" as const, message: "openai/gpt-test: HTTP 429 after 2 attempts: slow down", retryable: true };
  expect(await s.finishTask("t", { ...outcome("failed"), stopReason: "error", error }, 1, "{}")).toBe(true);
  expect((await s.getTask("t"))?.error).toEqual(error);
  expect((await s.listTasks({ limit: 5 })).tasks[0]?.error).toEqual(error);
  s.close();
  store = createSqliteStore({ dataDir: dir! });
  expect((await store.getTask("t"))?.error).toEqual(error);
});

/** The schema of version 1, as it was: `error` held the message alone. */
const SCHEMA_V1 = `
CREATE TABLE tasks (
  id TEXT PRIMARY KEY, owner TEXT NOT NULL, agent TEXT NOT NULL, input TEXT NOT NULL, metadata TEXT NOT NULL,
  status TEXT NOT NULL, stop_reason TEXT, output TEXT, error TEXT,
  total_steps INTEGER NOT NULL DEFAULT 0, total_tokens INTEGER NOT NULL DEFAULT 0,
  input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0, cost_usd REAL,
  last_seq INTEGER NOT NULL DEFAULT 0, pruned_through INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT
);
CREATE INDEX tasks_status ON tasks(status);
CREATE INDEX tasks_owner ON tasks(owner);
CREATE INDEX tasks_finished ON tasks(finished_at) WHERE pruned_through < last_seq;
CREATE TABLE events (task_id TEXT NOT NULL, seq INTEGER NOT NULL, frame TEXT NOT NULL, PRIMARY KEY (task_id, seq)) WITHOUT ROWID;
`;

test("a schema 1 file is migrated at start-up: string errors become objects, once; a newer schema is refused", async () => {
  const { Database } = await import("bun:sqlite");
  dir = tempDir();
  const path = `${dir}/agentkit.sqlite`;
  const raw = new Database(path, { create: true });
  raw.run(SCHEMA_V1);
  raw.run("PRAGMA user_version = 1");
  const insert = raw.query(
    `INSERT INTO tasks (id, owner, agent, input, metadata, status, stop_reason, output, error, last_seq, created_at, finished_at)
     VALUES (?, 'anonymous', 'default', 'hi', '{}', ?, ?, ?, ?, 1, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z')`,
  );
  insert.run("provider", "failed", "error", null, "openai/gpt-test: HTTP 429 after 4 attempts: slow down");
  insert.run("steps", "failed", "max_steps", null, "Stopped: reached the limit of 3 steps");
  insert.run("deadline", "timed_out", "deadline", null, "Task exceeded its 150 ms time limit");
  insert.run("restart", "failed", "interrupted", null, "Interrupted: the server stopped while this task was running");
  insert.run("done", "completed", "final_answer", "42", null);
  insert.run("cancelled", "cancelled", "cancelled", null, null);
  raw.run(`INSERT INTO events (task_id, seq, frame) VALUES ('done', 1, '{"type":"result"}')`);
  raw.close();

  const expected = {
    provider: { code: "internal", message: "openai/gpt-test: HTTP 429 after 4 attempts: slow down", retryable: false },
    steps: { code: "max_steps", message: "Stopped: reached the limit of 3 steps", retryable: false },
    deadline: { code: "deadline", message: "Task exceeded its 150 ms time limit", retryable: false },
    restart: { code: "interrupted", message: "Interrupted: the server stopped while this task was running", retryable: true },
    done: null,
    cancelled: null,
  };
  const errors = async (s: TaskStore) =>
    Object.fromEntries(await Promise.all(Object.keys(expected).map(async (id) => [id, (await s.getTask(id))?.error])));

  store = createSqliteStore({ dataDir: dir });
  expect(await errors(store)).toEqual(expected);
  expect(await store.events("done", 0, 10)).toEqual([{ seq: 1, frame: '{"type":"result"}' }]);
  // Schema 5: the outbox and the tasks' webhook_url.
  expect(await store.taskWebhooks("done")).toEqual([]);
  await store.close();

  // Opening the migrated file again changes nothing (the migration ran once).
  store = createSqliteStore({ dataDir: dir });
  expect(await errors(store)).toEqual(expected);
  await store.close();
  const check = new Database(path);
  expect((check.query("PRAGMA user_version").get() as { user_version: number }).user_version).toBe(6);
  expect((check.query("SELECT error FROM tasks WHERE id = 'steps'").get() as { error: string }).error).toBe(JSON.stringify(expected.steps));
  expect(check.query("SELECT webhook_url FROM tasks WHERE id = 'done'").get()).toEqual({ webhook_url: null });

  // A file from a newer agentkit is refused, untouched.
  check.run("PRAGMA user_version = 7");
  check.close();
  store = undefined;
  expect(() => createSqliteStore({ dataDir: dir! })).toThrow("schema version 7, newer than this agentkit (6)");
});

test("a schema 2 file is migrated to 3 at start-up: tasks get attempt 0, a running one is taken over at 1; once", async () => {
  const { Database } = await import("bun:sqlite");
  dir = tempDir();
  const path = `${dir}/agentkit.sqlite`;
  const raw = new Database(path, { create: true });
  raw.run(SCHEMA_V1); // schema 2 has the tables of 1 (only the error's content changed)
  raw.run("PRAGMA user_version = 2");
  raw.run(
    `INSERT INTO tasks (id, owner, agent, input, metadata, status, last_seq, created_at, started_at)
     VALUES ('running', 'anonymous', 'default', 'hi', '{}', 'running', 2, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z'),
            ('queued', 'anonymous', 'default', 'hi', '{}', 'queued', 0, '2026-01-01T00:00:00.000Z', NULL)`,
  );
  raw.run(`INSERT INTO events (task_id, seq, frame) VALUES ('running', 1, '{"n":1}'), ('running', 2, '{"n":2}')`);
  raw.close();

  store = createSqliteStore({ dataDir: dir });
  const before = await store.getTask("running");
  expect(before).toMatchObject({ status: "running", last_seq: 2, started_at: "2026-01-01T00:00:01.000Z" });
  const attempts = () => {
    const db = new Database(path, { readonly: true });
    try {
      return db.query("SELECT id, attempt FROM tasks ORDER BY id").all();
    } finally {
      db.close();
    }
  };
  expect(attempts()).toEqual([{ id: "queued", attempt: 0 }, { id: "running", attempt: 0 }]);
  expect(await store.takeOver("running")).toBe(1);
  await expect(store.appendEvents("running", [{ seq: 3, frame: "{}" }], 0)).rejects.toBeInstanceOf(FencedError);
  await store.appendEvents("running", [{ seq: 3, frame: '{"n":3}' }], 1);
  expect(await store.markRunning("queued", new Date())).toBe(true);
  await store.close();

  // Opening the migrated file again changes nothing (the column is added once).
  store = createSqliteStore({ dataDir: dir });
  expect(attempts()).toEqual([{ id: "queued", attempt: 1 }, { id: "running", attempt: 1 }]);
  expect(await store.events("running", 0, 10)).toEqual([
    { seq: 1, frame: '{"n":1}' },
    { seq: 2, frame: '{"n":2}' },
    { seq: 3, frame: '{"n":3}' },
  ]);
  const check = new Database(path, { readonly: true });
  expect((check.query("PRAGMA user_version").get() as { user_version: number }).user_version).toBe(6);
  check.close();
});

test("a schema 5 file (before deliveries were fair by destination) opens at 6 and keeps its pending deliveries: each is claimed when due, with its destination; ended ones are not", async () => {
  dir = tempDir();
  const path = `${dir}/agentkit.sqlite`;
  // Schema 5 as its release left it: the tables of 1, then the released steps to 5.
  const raw = new Database(path, { create: true });
  raw.run(SCHEMA_V1);
  for (const step of ["2 to 3", "4 and 5: columns", "4: tables", "5: webhooks"]) raw.run(SQLITE_MIGRATIONS[step]!);
  raw.run("PRAGMA user_version = 5");
  raw.run(
    `INSERT INTO tasks (id, owner, agent, input, metadata, status, last_seq, created_at, finished_at, webhook_url)
     VALUES ('t', 'anonymous', 'default', 'hi', '{}', 'completed', 1, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z', 'http://task.test/mine')`,
  );
  const insert = raw.query(
    `INSERT INTO webhooks (id, task_id, url, event, payload, attempts, next_attempt_at, status, last_error, created_at, delivered_at)
     VALUES (?, 't', ?, 'task.finished', '{}', ?, ?, ?, ?, '2026-01-01T00:00:01.000Z', ?)`,
  );
  insert.run("due", "http://task.test/mine", 0, "2026-01-01T00:00:01.000Z", "pending", null, null);
  insert.run("retrying", "https://Agent.test:443/in", 2, "2026-01-01T00:05:00.000Z", "pending", "HTTP 503", null);
  // Claimed by the release before, which stopped mid-delivery: due again when its lease ends.
  insert.run("leased", "https://agent.test/other", 0, "2026-01-01T00:10:00.000Z", "pending", null, null);
  insert.run("done", "http://task.test/mine", 1, "2026-01-01T00:00:01.000Z", "delivered", null, "2026-01-01T00:00:02.000Z");
  insert.run("gone", "http://task.test/mine", 1, "2026-01-01T00:00:01.000Z", "failed", "HTTP 410", null);
  raw.close();

  const s = openStore(dir);
  const before = await s.taskWebhooks("t");
  expect(before.map((webhook) => [webhook.id, webhook.status, webhook.attempts])).toEqual([
    ["due", "pending", 0], ["retrying", "pending", 2], ["leased", "pending", 0], ["done", "delivered", 1], ["gone", "failed", 1],
  ]);
  const fair = { perDestination: 4, busy: new Map<string, number>() };
  const claim = async (at: string) => (await s.claimWebhooks(new Date(at), 16, 3_600_000, fair)).map((row) => [row.id, row.destination]);
  expect(await claim("2026-01-01T00:04:59.000Z")).toEqual([["due", "http://task.test"]]);
  expect(await claim("2026-01-01T00:05:00.000Z")).toEqual([["retrying", "https://agent.test"]]);
  expect(await claim("2026-01-01T00:10:00.000Z")).toEqual([["leased", "https://agent.test"]]);
  expect(await claim("2026-01-02T00:00:00.000Z")).toEqual([["due", "http://task.test"], ["retrying", "https://agent.test"], ["leased", "https://agent.test"]]);
  s.close();
  store = undefined;

  // Opened again: migrated once; the outbox as it was left.
  const again = openStore(dir);
  expect((await again.taskWebhooks("t")).map((webhook) => [webhook.id, webhook.status, webhook.attempts])).toEqual(before.map((webhook) => [webhook.id, webhook.status, webhook.attempts]));
  again.close();
  const check = new Database(path, { readonly: true });
  expect((check.query("PRAGMA user_version").get() as { user_version: number }).user_version).toBe(6);
  expect(check.query("SELECT id, destination FROM webhooks ORDER BY rowid").all()).toEqual([
    { id: "due", destination: "http://task.test" },
    { id: "retrying", destination: "https://agent.test" },
    { id: "leased", destination: "https://agent.test" },
    { id: "done", destination: null },
    { id: "gone", destination: null },
  ]);
  check.close();
});

function openStore(dataDir: string): TaskStore {
  store = createSqliteStore({ dataDir });
  return store;
}

test("the claim's reads use their indexes: due destinations by next_due, a destination's due rows, rows to take in", () => {
  dir = tempDir();
  createSqliteStore({ dataDir: dir }).close();
  const db = new Database(`${dir}/agentkit.sqlite`, { readonly: true });
  const plan = (sql: string) => (db.query(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[]).map((row) => row.detail).join("; ");
  try {
    expect(plan(`SELECT destination FROM webhook_destinations WHERE next_due IS NOT NULL AND next_due <= '2026' ORDER BY next_due LIMIT 16`)).toContain("USING INDEX webhook_destinations_due");
    expect(plan(`SELECT rowid FROM webhooks WHERE destination = 'x' AND status = 'pending' AND next_attempt_at <= '2026' ORDER BY next_attempt_at, rowid LIMIT 4`)).toContain("INDEX webhooks_destination_due (destination=? AND next_attempt_at<?)");
    expect(plan(`SELECT min(next_attempt_at) FROM webhooks WHERE destination = 'x' AND status = 'pending'`)).toContain("webhooks_destination_due");
    const intake = plan(`SELECT rowid, url, next_attempt_at FROM webhooks WHERE status = 'pending' AND destination IS NULL ORDER BY rowid LIMIT 64`);
    expect(intake).toContain("USING INDEX webhooks_intake");
    expect(intake).not.toContain("TEMP B-TREE");
  } finally {
    db.close();
  }
});

/** A task's log as a reader finds it: `pruned_through`, and whether the events left are exactly those after it. */
async function logOf(s: TaskStore, id: string) {
  const { pruned_through, last_seq } = (await s.getTask(id))!;
  const seqs = (await s.events(id, 0, last_seq + 1)).map((event) => event.seq);
  const whole = seqs.length === last_seq - pruned_through && seqs.every((seq, index) => seq === pruned_through + 1 + index);
  return { pruned_through, whole };
}

/** `count` tasks that ended two days ago, each with a log of `events` step events and its result. */
async function endedLogs(s: TaskStore, count: number, events: number): Promise<string[]> {
  const ended = new Date(Date.now() - 48 * 3600_000);
  const frame = (seq: number) => JSON.stringify({ type: "step", seq, pad: "x".repeat(150) });
  const ids: string[] = [];
  for (let index = 0; index < count; index++) {
    const id = `old-${index}`;
    await s.createTask({ id, owner: "o", agent: "a", input: "{}", metadata: {}, createdAt: ended });
    await s.markRunning(id, ended);
    for (let first = 1; first <= events; first += 10_000) {
      const size = Math.min(10_000, events - first + 1);
      await s.appendEvents(id, Array.from({ length: size }, (_, event) => ({ seq: first + event, frame: frame(first + event) })));
    }
    await s.finishTask(id, { ...outcome("completed"), finishedAt: ended }, events + 1, frame(events + 1));
    ids.push(id);
  }
  return ids;
}

test("retention gives the event loop turns while it prunes many logs, each pruned from its start, and reports every task", async () => {
  const s = open();
  const ids = await endedLogs(s, 60, 1_000);
  // ~60,000 rows to delete: tens of ms of work (~55 ms here), which used to run in one turn of the event loop.
  const pruning = s.pruneEvents(new Date(Date.now() - 24 * 3600_000));
  // A turn of the event loop comes while it prunes: what it sees there (the store answers synchronously).
  await new Promise<void>((resolve) => setImmediate(resolve));
  let through = 0;
  for (const id of ids) {
    const log = await logOf(s, id);
    expect(log.whole).toBe(true); // what is left of a log: the events after its pruned_through, no hole
    through += log.pruned_through;
  }
  expect(await pruning).toBe(60);
  // The turn came in the middle of the prune: some events were gone, not all.
  expect(through).toBeGreaterThan(0);
  expect(through).toBeLessThan(60 * 1_001);
  for (const id of ids) {
    expect(await s.getTask(id)).toMatchObject({ last_seq: 1_001, pruned_through: 1_001 });
    expect(await s.events(id, 0, 10)).toEqual([]);
  }
});

test("a log longer than a transaction's worth is pruned in pieces: pruned_through moves up between turns, the rest stays whole, and it ends pruned", async () => {
  const s = open();
  const [id] = await endedLogs(s, 1, 60_000);
  const pruning = s.pruneEvents(new Date(Date.now() - 24 * 3600_000));
  let done = false;
  void pruning.then(() => (done = true));
  // At every turn the prune gives the event loop: how far it got, and how long the turn waited.
  const seen: number[] = [];
  let longest = 0;
  while (!done) {
    const asked = performance.now();
    await new Promise<void>((resolve) => setImmediate(resolve));
    longest = Math.max(longest, performance.now() - asked);
    const log = await logOf(s, id!);
    expect(log.whole).toBe(true);
    seen.push(log.pruned_through);
  }
  expect(await pruning).toBe(1);
  const between = [...new Set(seen)].filter((through) => through > 0 && through < 60_001);
  expect(between.length).toBeGreaterThanOrEqual(3); // several pieces, each seen from outside
  expect(seen).toEqual([...seen].sort((a, b) => a - b)); // it only moves up
  expect(await s.getTask(id!)).toMatchObject({ last_seq: 60_001, pruned_through: 60_001 });
  expect(await s.events(id!, 0, 10)).toEqual([]);
  // A measurement, not a requirement (this machine's load decides it): the longest wait for a turn.
  console.log(`pruning a 60,001-event log: ${seen.length} turns, ${between.length} points seen between its start and end, the longest wait for a turn ${longest.toFixed(1)} ms`);
});

test("a prune the server stops in the middle of (the store closed at one of its turns) ends quietly; the next run goes on", async () => {
  const dataDir = tempDir();
  dir = dataDir;
  const first = createSqliteStore({ dataDir });
  const ids = await endedLogs(first, 40, 1_000);
  await first.createTask({ id: "long", owner: "o", agent: "a", input: "{}", metadata: {}, createdAt: new Date(Date.now() - 48 * 3600_000) });
  await first.markRunning("long", new Date());
  await first.appendEvents("long", Array.from({ length: 20_000 }, (_, event) => ({ seq: event + 1, frame: JSON.stringify({ seq: event + 1 }) })));
  await first.finishTask("long", { ...outcome("completed"), finishedAt: new Date(Date.now() - 48 * 3600_000) }, 20_001, "{}");
  const cutoff = new Date(Date.now() - 24 * 3600_000);
  const pruning = first.pruneEvents(cutoff);
  await new Promise<void>((resolve) => setImmediate(resolve));
  await first.close();
  const partly = await pruning; // no "closed database" error
  expect(partly).toBeLessThan(41);
  store = createSqliteStore({ dataDir });
  // Where the first run stopped, each log is pruned up to a point and whole after it.
  let through = 0;
  for (const id of [...ids, "long"]) {
    const log = await logOf(store, id);
    expect(log.whole).toBe(true);
    through += log.pruned_through;
  }
  expect(through).toBeGreaterThan(0);
  expect(await store.pruneEvents(cutoff)).toBe(41 - partly);
  for (const id of [...ids, "long"]) expect(await store.events(id, 0, 10)).toEqual([]);
  expect(await store.getTask("long")).toMatchObject({ last_seq: 20_001, pruned_through: 20_001 });
});

test("one tenant's tasks in one status are found by the (owner, status) index, not by scanning all the tenant's tasks; a file without it gets it", async () => {
  const { Database } = await import("bun:sqlite");
  const tasks = open();
  await tasks.createTask({ id: "t1", owner: "tenant", agent: "default", input: "hi", metadata: {}, createdAt: new Date() });
  tasks.close();
  store = undefined;
  const path = `${dir}/agentkit.sqlite`;
  // The very query listTasks runs with a status and an owner, with and without a cursor.
  const running = { status: "running", owner: "tenant", limit: 20 } as const;
  const plan = (query: Parameters<typeof listTasksSql>[0]) => {
    const { sql, params } = listTasksSql(query);
    const raw = new Database(path, { readonly: true, strict: true });
    try {
      const rows = raw.query(`EXPLAIN QUERY PLAN ${sql}`).all(params) as { detail: string }[];
      return rows.map((row) => row.detail).join("; ");
    } finally {
      raw.close();
    }
  };
  for (const query of [running, { status: "completed", owner: "tenant", before: 500, limit: 20 }] as const) {
    const detail = plan(query);
    expect(detail).toContain("USING INDEX tasks_owner_status (owner=? AND status=?");
    expect(detail).not.toContain("TEMP B-TREE"); // newest first straight from the index, no sort
  }
  // A file made before the index (same schema version) gets it when opened.
  const raw = new Database(path);
  raw.run("DROP INDEX tasks_owner_status");
  raw.close();
  expect(plan(running)).not.toContain("tasks_owner_status");

  store = createSqliteStore({ dataDir: dir! });
  await store.close();
  store = undefined;
  expect(plan(running)).toContain("USING INDEX tasks_owner_status");
});

describe("the events table's layout", () => {
  const frame = (seq: number, pad: number) => `{"type":"step","seq":${seq},"data":{"text":"${"t".repeat(pad)}"}}`;
  async function fill(s: TaskStore, id: string, events: number, pad: number) {
    await s.createTask({ id, owner: "o", agent: "a", input: "hi", metadata: {}, createdAt: new Date() });
    await s.markRunning(id, new Date());
    for (let seq = 1; seq <= events; seq += 3) await s.appendEvents(id, [0, 1, 2].map((i) => ({ seq: seq + i, frame: frame(seq + i, pad) })));
  }

  test("a new file: a plain table with a unique (task_id, seq) index; frames of 1–4 KB stay on their pages (the file is not 2–3× the data)", async () => {
    const s = open();
    await fill(s, "t", 1500, 1500);
    const db = new Database(join(dir!, "agentkit.sqlite"), { readonly: true });
    const table = db.query("SELECT sql FROM sqlite_master WHERE name = 'events'").get() as { sql: string };
    expect(table.sql).not.toMatch(/WITHOUT ROWID/i);
    expect(db.query("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'events_task_seq'").get()).not.toBeNull();
    // The database's size as this connection sees it (pages still in the WAL included). Data ≈ 1500 × ~1.55 KB.
    const { page_count } = db.query("PRAGMA page_count").get() as { page_count: number };
    const { page_size } = db.query("PRAGMA page_size").get() as { page_size: number };
    db.close();
    const data = 1500 * frame(1, 1500).length;
    expect(page_count * page_size).toBeLessThan(1.5 * data);
    // The log reads back whole, in order; a duplicate seq is refused.
    const page = await s.events("t", 0, 2000);
    expect(page.map((event) => event.seq)).toEqual(Array.from({ length: 1500 }, (_, index) => index + 1));
    expect(page[41]!.frame).toBe(frame(42, 1500));
    // A second row for a (task_id, seq) is refused by the table itself, whatever writes it.
    const raw = new Database(join(dir!, "agentkit.sqlite"));
    expect(() => raw.run("INSERT INTO events (task_id, seq, frame) VALUES ('t', 42, '{}')")).toThrow(/UNIQUE constraint failed: events\.task_id, events\.seq/);
    raw.close();
  });

  test("a file made with the WITHOUT ROWID table keeps it (nothing rewritten, no second index), and works as before", async () => {
    dir = tempDir();
    store = createSqliteStore({ dataDir: dir });
    store.close();
    const raw = new Database(join(dir, "agentkit.sqlite"));
    raw.run("DROP INDEX events_task_seq");
    raw.run("DROP TABLE events");
    raw.run("CREATE TABLE events (task_id TEXT NOT NULL, seq INTEGER NOT NULL, frame TEXT NOT NULL, PRIMARY KEY (task_id, seq)) WITHOUT ROWID");
    raw.close();
    store = createSqliteStore({ dataDir: dir });
    await fill(store, "old", 30, 100);
    expect((await store.events("old", 10, 100)).map((event) => event.seq)).toEqual(Array.from({ length: 20 }, (_, index) => index + 11));
    const check = new Database(join(dir, "agentkit.sqlite"), { readonly: true });
    expect((check.query("SELECT sql FROM sqlite_master WHERE name = 'events'").get() as { sql: string }).sql).toMatch(/WITHOUT ROWID/);
    expect(check.query("SELECT 1 FROM sqlite_master WHERE name = 'events_task_seq'").get()).toBeNull();
    check.close();
    const raw2 = new Database(join(dir, "agentkit.sqlite"));
    expect(() => raw2.run("INSERT INTO events (task_id, seq, frame) VALUES ('old', 7, '{}')")).toThrow(/UNIQUE constraint failed: events\.task_id, events\.seq/);
    raw2.close();
  });
});

test("two retention passes at once, appends to a live task, readers between every piece: never a gap or a duplicate, pruned_through never past last_seq, the live task untouched", async () => {
  const s = open();
  const ended = new Date(Date.now() - 48 * 3_600_000);
  const ids = ["l1", "l2", "l3"];
  for (const id of ids) {
    await s.createTask({ id, owner: "o", agent: "a", input: "{}", metadata: {}, createdAt: ended });
    await s.markRunning(id, ended);
    for (let from = 1; from <= 20_000; from += 5_000) {
      await s.appendEvents(id, Array.from({ length: 5_000 }, (_, index) => ({ seq: from + index, frame: JSON.stringify({ seq: from + index, pad: "x".repeat(300) }) })));
    }
    await s.finishTask(id, { ...outcome("completed"), finishedAt: ended }, 20_001, "{}");
  }
  await s.createTask({ id: "live", owner: "o", agent: "a", input: "{}", metadata: {}, createdAt: ended });
  await s.markRunning("live", ended);
  let live = 0;
  let done = 0;
  const passes = [s.pruneEvents(new Date()), s.pruneEvents(new Date())].map((pass) => pass.finally(() => done++));
  while (done < 2) {
    await s.appendEvents("live", Array.from({ length: 50 }, (_, index) => ({ seq: live + 1 + index, frame: "{}" })));
    live += 50;
    for (const id of ids) {
      const seqs = (await s.events(id, 0, 30_000)).map((event) => event.seq);
      const task = (await s.getTask(id))!;
      expect(task.pruned_through).toBeLessThanOrEqual(task.last_seq);
      if (seqs.length > 0) {
        expect(seqs[0]! - 1).toBeLessThanOrEqual(task.pruned_through);
        expect(seqs.at(-1)).toBe(20_001);
        expect(seqs.every((seq, index) => seq === seqs[0]! + index)).toBe(true);
      }
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  const pruned = await Promise.all(passes);
  expect(pruned[0]! + pruned[1]!).toBe(3);
  expect((await s.events("live", 0, 1_000_000)).length).toBe(live);
  expect((await s.getTask("live"))!.pruned_through).toBe(0);
  for (const id of ids) expect((await s.getTask(id))!.pruned_through).toBe(20_001);
}, 60_000);

test("retention gives the space back: a new file shrinks to what is left (auto_vacuum incremental, a slice at a time); a file made before keeps its size and reuses its free pages", async () => {
  const sizeAfterPrune = async (made: "new" | "old") => {
    const d = tempDir();
    if (made === "old") {
      // A file made before this version: no auto_vacuum (it cannot be turned on after the first page).
      const raw = new Database(join(d, "agentkit.sqlite"), { create: true });
      raw.run("PRAGMA journal_mode = WAL");
      raw.close();
    }
    const s = createSqliteStore({ dataDir: d });
    const ended = new Date(Date.now() - 48 * 3_600_000);
    for (let task = 0; task < 10; task++) {
      const id = `t${task}`;
      await s.createTask({ id, owner: "o", agent: "a", input: "{}", metadata: {}, createdAt: ended });
      await s.markRunning(id, ended);
      for (let from = 1; from <= 600; from += 200) {
        await s.appendEvents(id, Array.from({ length: 200 }, (_, index) => ({ seq: from + index, frame: JSON.stringify({ seq: from + index, pad: "p".repeat(1500) }) })));
      }
      await s.finishTask(id, { ...outcome("completed"), finishedAt: ended }, 601, "{}");
    }
    const pages = () => {
      const raw = new Database(join(d, "agentkit.sqlite"), { readonly: true });
      try {
        return (raw.query("PRAGMA page_count").get() as { page_count: number }).page_count;
      } finally {
        raw.close();
      }
    };
    const before = pages();
    expect(await s.pruneEvents(new Date())).toBe(10);
    const after = pages();
    s.close();
    rmSync(d, { recursive: true, force: true });
    return { before, after };
  };
  const fresh = await sizeAfterPrune("new");
  expect(fresh.before).toBeGreaterThan(2000); // ~9 MB of frames
  expect(fresh.after).toBeLessThan(fresh.before / 5);
  const old = await sizeAfterPrune("old");
  expect(old.after).toBe(old.before);
});

test("a thread's task count and newest task are kept on its row: a file without them gets them counted when opened, and an older agentkit's writes keep them right", async () => {
  const s = open();
  await s.createThread({ id: "th", owner: "alice", createdAt: new Date() });
  for (const id of ["t1", "t2", "t3"]) await s.createTask({ id, owner: "alice", agent: "a", input: "hi", metadata: {}, createdAt: new Date(), threadId: "th" });
  expect(await s.getThread("th")).toMatchObject({ task_count: 3, last_task_id: "t3" });
  s.close();
  store = undefined;
  // The file as a build before the kept counts left it: no columns, no triggers.
  const path = `${dir}/agentkit.sqlite`;
  let raw = new Database(path);
  for (const trigger of ["threads_count_insert", "threads_count_move", "threads_count_delete"]) raw.run(`DROP TRIGGER ${trigger}`);
  raw.run("ALTER TABLE threads DROP COLUMN task_count");
  raw.run("ALTER TABLE threads DROP COLUMN last_task_id");
  raw.run("INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at, thread_id) VALUES ('t4', 'alice', 'a', 'hi', '{}', 'queued', '2026', 'th')");
  raw.close();

  let reopened = openStore(dir!);
  expect(await reopened.getThread("th")).toMatchObject({ task_count: 4, last_task_id: "t4" });
  expect((await reopened.listThreads({ limit: 10 })).threads).toMatchObject([{ id: "th", task_count: 4, last_task_id: "t4" }]);
  reopened.close();
  store = undefined;
  // An older agentkit writes the file as it knows it (the columns untouched): the triggers count.
  raw = new Database(path);
  raw.run("INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at, thread_id) VALUES ('t5', 'alice', 'a', 'hi', '{}', 'queued', '2026', 'th')");
  raw.run("INSERT INTO threads (id, owner, created_at) VALUES ('th2', 'alice', '2026')");
  raw.run("INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at) VALUES ('lone', 'alice', 'a', 'hi', '{}', 'completed', '2026')");
  raw.run("UPDATE tasks SET thread_id = 'th2' WHERE id = 'lone'");
  raw.close();
  reopened = openStore(dir!);
  expect(await reopened.getThread("th")).toMatchObject({ task_count: 5, last_task_id: "t5" });
  expect(await reopened.getThread("th2")).toMatchObject({ task_count: 1, last_task_id: "lone" });
  reopened.close();
  store = undefined;
  // The columns there but one trigger gone (dropped by hand), a task added meanwhile: repaired at open.
  raw = new Database(path);
  raw.run("DROP TRIGGER threads_count_insert");
  raw.run("INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at, thread_id) VALUES ('t6', 'alice', 'a', 'hi', '{}', 'queued', '2026', 'th')");
  raw.close();
  reopened = openStore(dir!);
  expect(await reopened.getThread("th")).toMatchObject({ task_count: 6, last_task_id: "t6" });
  await reopened.createTask({ id: "t7", owner: "alice", agent: "a", input: "hi", metadata: {}, createdAt: new Date(), threadId: "th" });
  expect(await reopened.getThread("th")).toMatchObject({ task_count: 7, last_task_id: "t7" });
});
