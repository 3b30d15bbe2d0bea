/**
 * The embedded TaskStore: one SQLite file (`bun:sqlite`) in WAL mode.
 *
 * Durability promise: with `synchronous=NORMAL` in WAL mode, an event whose append has returned
 * survives a crash of the process (kill -9); a power loss or OS crash may lose the last few
 * transactions, never corrupt the file, and never leave a gap in a task's `seq` (each append is
 * one transaction that also moves `tasks.last_seq`).
 */
import { Database } from "bun:sqlite";
import { accessSync, constants, existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { AgentkitError, isStoreWriteFailure } from "../errors.ts";
import { Thread, type Task, type TaskStatus } from "../protocol/task.ts";
import type { Logger } from "../lib/logger.ts";
import { backgroundSlice } from "../lib/turn.ts";
import { createCheckpointer, type CheckpointResult } from "./sqlite-checkpointer.ts";
import { framesWritten, readWalLog } from "./sqlite-wal.ts";
import { checkedTask, parseColumn } from "./task-row.ts";
import { sourcesOf } from "../tasks/state.ts";
import {
  FencedError,
  resultAfter,
  newestWithin,
  seqRange,
  type ListTasksQuery,
  type ListThreadsQuery,
  type NewTask,
  type NewWebhook,
  type UsageTotals,
  type Webhook,
  type WebhookAttempt,
  type WebhookEvent,
  type WebhookStatus,
  webhookDestination,
  type PendingInput,
  type StoredEvent,
  type TaskOutcome,
  type TaskPage,
  type TaskStore,
} from "./store.ts";

/**
 * 2: `tasks.error` holds a `TaskError` as JSON (it held the message alone in 1).
 * 3: `tasks.attempt`, the fencing token of the task's current run (see `FencedError`).
 * 4: threads, the `waiting` state (`wait_until`), pending inputs, structured output, secrets.
 * 5: webhooks: `tasks.webhook_url` and the outbox (`webhooks`).
 * 6: webhooks fair by destination: `webhooks.destination` and the index of due destinations.
 */
export const SCHEMA_VERSION = 6;

/**
 * Retention's transactions: each deletes about `PRUNE_MS` worth of events — logs that fit whole,
 * several to a transaction, or a piece of a longer one. How many events that is follows how long the
 * last transaction took (a frame of 200 KB costs ~400 times one of 300 B: 4,000 events of ~300 B
 * take ~4.5 ms here, 20 of 200 KB ~3 ms), starting at `PRUNE_FIRST` (a few ms even of 200 KB frames),
 * growing at most twofold a transaction, never more than `PRUNE_EVENTS`.
 */
const PRUNE_MS = 4;
const PRUNE_FIRST = 16;
const PRUNE_EVENTS = 8000;
/** WAL bytes between checkpoints (sqlite-checkpointer.ts): SQLite's own interval, 1,000 pages of 4 KiB. */
const CHECKPOINT_BYTES = 4 * 1024 * 1024;
/** Free pages a file keeps after retention (a file with `auto_vacuum = INCREMENTAL` gives back the rest). */
const GIVE_BACK_MIN_PAGES = 256;
/** Rows a claim takes in (see `intakeWebhooks`) before it claims; the delivery worker takes in a backlog itself. */
const INTAKE_PER_CLAIM = 64;
/** Batches of due destinations one claim reads at most (each past the full ones and those it served). */
const CLAIM_ROUNDS = 4;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tasks (
  id           TEXT PRIMARY KEY,
  owner        TEXT NOT NULL,
  agent        TEXT NOT NULL,
  input        TEXT NOT NULL,
  metadata     TEXT NOT NULL,
  status       TEXT NOT NULL,
  stop_reason  TEXT,
  output       TEXT,
  error        TEXT,
  total_steps  INTEGER NOT NULL DEFAULT 0,
  total_tokens INTEGER NOT NULL DEFAULT 0,
  input_tokens INTEGER NOT NULL DEFAULT 0,
  output_tokens INTEGER NOT NULL DEFAULT 0,
  cost_usd     REAL,
  last_seq     INTEGER NOT NULL DEFAULT 0,
  pruned_through INTEGER NOT NULL DEFAULT 0,
  created_at   TEXT NOT NULL,
  started_at   TEXT,
  finished_at  TEXT,
  attempt      INTEGER NOT NULL DEFAULT 0,
  thread_id    TEXT,
  output_json  TEXT,
  wait_until   TEXT,
  webhook_url  TEXT
);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks(status);
CREATE INDEX IF NOT EXISTS tasks_owner ON tasks(owner);
CREATE INDEX IF NOT EXISTS tasks_finished ON tasks(finished_at) WHERE pruned_through < last_seq;
`;

/**
 * A new file's events table, made right after `SCHEMA` (and, with `EVENTS_INDEX`, what
 * `agentkit compact` makes of an old file's: sqlite-compact.ts).
 */
export const EVENTS_TABLE = `CREATE TABLE IF NOT EXISTS events (
  task_id TEXT NOT NULL,
  seq     INTEGER NOT NULL,
  frame   TEXT NOT NULL
);`;

/**
 * A task's events are found by (task_id, seq). A file made before 2026-11-27 has them in a WITHOUT
 * ROWID table keyed so; it keeps that (rewriting a large log at start-up would hold it for minutes).
 * A new file has a plain table and this index: SQLite keeps a WITHOUT ROWID row's first ~1,000 bytes
 * on its page and the rest on an overflow page of its own, so frames of 1–4 KB (thoughts, tool
 * results) took 2–3.5× their size on disk; a plain table keeps rows up to ~4 KB on the page. Its
 * inserts append in rowid order, and cost less (bench/sqlite-layout.ts).
 */
export const EVENTS_INDEX = `CREATE UNIQUE INDEX IF NOT EXISTS events_task_seq ON events(task_id, seq)`;

/** Schema 4's new tables and indexes (a new file gets them with the rest; an old one when migrated). */
const SCHEMA_4 = `
CREATE INDEX IF NOT EXISTS tasks_thread ON tasks(thread_id) WHERE thread_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_waiting ON tasks(wait_until) WHERE status = 'waiting';
CREATE TABLE IF NOT EXISTS threads (
  id         TEXT PRIMARY KEY,
  owner      TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS threads_owner ON threads(owner);
CREATE TABLE IF NOT EXISTS inputs (
  task_id    TEXT NOT NULL,
  id         TEXT NOT NULL,
  text       TEXT NOT NULL,
  sender     TEXT NOT NULL,
  created_at TEXT NOT NULL,
  UNIQUE (task_id, id)
);
CREATE TABLE IF NOT EXISTS secrets (
  name  TEXT PRIMARY KEY,
  value BLOB NOT NULL
);
`;

/** Schema 5's outbox of webhooks (src/webhooks): written with a task's end or wait, delivered later. */
const SCHEMA_5 = `
CREATE TABLE IF NOT EXISTS webhooks (
  id              TEXT PRIMARY KEY,
  task_id         TEXT NOT NULL,
  url             TEXT NOT NULL,
  event           TEXT NOT NULL,
  payload         TEXT NOT NULL,
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT NOT NULL,
  status          TEXT NOT NULL DEFAULT 'pending',
  last_error      TEXT,
  created_at      TEXT NOT NULL,
  delivered_at    TEXT
);
CREATE INDEX IF NOT EXISTS webhooks_due ON webhooks(next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhooks_task ON webhooks(task_id);
`;

/**
 * Schema 6: deliveries fair by destination (src/webhooks/delivery.ts). `webhooks.destination` (the
 * URL's origin, `webhookDestination`) is NULL until a claim takes the row in (`webhooks_intake`:
 * rows written since, and those of a file from before 6); `webhook_destinations` has a row per
 * destination with `next_due` the soonest `next_attempt_at` of its pending rows (NULL: none), so that
 * a claim finds the destinations due in `next_due` order and reads only their soonest rows
 * (`webhooks_destination_due`), passing over a full destination without reading its backlog. Every
 * write to a destination's pending rows keeps it so (the intake lowers it to a row it takes in; a
 * claim and a record read it again from the index); it is never later than that soonest row, and a
 * destination left due with nothing to send costs a claim one of the destinations it reads (a file
 * written before records did so may have some: each claim sets those it reads right).
 */
const MIGRATE_6_COLUMN = `ALTER TABLE webhooks ADD COLUMN destination TEXT`;
const SCHEMA_6 = `
CREATE TABLE IF NOT EXISTS webhook_destinations (
  destination TEXT PRIMARY KEY,
  next_due    TEXT
);
CREATE INDEX IF NOT EXISTS webhook_destinations_due ON webhook_destinations(next_due) WHERE next_due IS NOT NULL;
CREATE INDEX IF NOT EXISTS webhooks_destination_due ON webhooks(destination, next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhooks_intake ON webhooks(status) WHERE status = 'pending' AND destination IS NULL;
`;

/**
 * Indexes added without a schema change (an older agentkit opens a file that has them unchanged).
 * `tasks_owner_status`: one tenant's tasks in one status, newest first (`GET /tasks?status=`), which
 * `tasks_owner` alone answered by scanning all of the tenant's tasks (20 ms at 100,000).
 * `tasks_thread_status`: a thread's unfinished tasks (is it busy?) and its completed ones (its
 * history) without reading the rest of its tasks, whose inputs may be long.
 */
const INDEXES = `
CREATE INDEX IF NOT EXISTS tasks_owner_status ON tasks(owner, status);
CREATE INDEX IF NOT EXISTS tasks_thread_status ON tasks(thread_id, status) WHERE thread_id IS NOT NULL;
`;

/**
 * A thread's task count and newest task, kept on its row: every read of a thread (`GET /threads/:id`,
 * each task added to it, each row of `GET /threads`) counted the thread's tasks, reading its whole
 * `tasks_thread` index range — 2–4 ms a thread of 30,000 tasks, on the event loop, growing with it
 * (tasks are never deleted), and as many counts as threads on a page of the list. Added without a
 * schema change, as `INDEXES` are: triggers keep the columns right whoever writes the file, an older
 * agentkit too (which still counts for itself). A file without them (or without one of the
 * triggers) gets them, counted once, when it is opened.
 */
const THREAD_COUNT_TRIGGERS = `
CREATE TRIGGER IF NOT EXISTS threads_count_insert AFTER INSERT ON tasks WHEN NEW.thread_id IS NOT NULL
BEGIN
  UPDATE threads SET task_count = task_count + 1, last_task_id = NEW.id WHERE id = NEW.thread_id;
END;
CREATE TRIGGER IF NOT EXISTS threads_count_move AFTER UPDATE OF thread_id ON tasks WHEN OLD.thread_id IS NOT NEW.thread_id
BEGIN
  UPDATE threads SET task_count = task_count - 1,
    last_task_id = (SELECT id FROM tasks WHERE thread_id = OLD.thread_id ORDER BY rowid DESC LIMIT 1)
    WHERE OLD.thread_id IS NOT NULL AND id = OLD.thread_id;
  UPDATE threads SET task_count = task_count + 1,
    last_task_id = (SELECT id FROM tasks WHERE thread_id = NEW.thread_id ORDER BY rowid DESC LIMIT 1)
    WHERE NEW.thread_id IS NOT NULL AND id = NEW.thread_id;
END;
CREATE TRIGGER IF NOT EXISTS threads_count_delete AFTER DELETE ON tasks WHEN OLD.thread_id IS NOT NULL
BEGIN
  UPDATE threads SET task_count = task_count - 1,
    last_task_id = (SELECT id FROM tasks WHERE thread_id = OLD.thread_id ORDER BY rowid DESC LIMIT 1)
    WHERE id = OLD.thread_id;
END;
`;
const THREAD_COUNT_TRIGGER_NAMES = ["threads_count_insert", "threads_count_move", "threads_count_delete"];

/** Gives the threads table its kept counts (`THREAD_COUNT_TRIGGERS`), inside the opening transaction. */
function keepThreadCounts(db: Database): void {
  const columns = new Set((db.query("SELECT name FROM pragma_table_info('threads')").all() as { name: string }[]).map((row) => row.name));
  const triggers = new Set((db.query("SELECT name FROM sqlite_master WHERE type = 'trigger'").all() as { name: string }[]).map((row) => row.name));
  if (columns.has("task_count") && columns.has("last_task_id") && THREAD_COUNT_TRIGGER_NAMES.every((name) => triggers.has(name))) return;
  if (!columns.has("task_count")) db.run("ALTER TABLE threads ADD COLUMN task_count INTEGER NOT NULL DEFAULT 0");
  if (!columns.has("last_task_id")) db.run("ALTER TABLE threads ADD COLUMN last_task_id TEXT");
  // Counted once, as they are now (the triggers keep them from here on).
  db.run(`UPDATE threads SET
    task_count = (SELECT count(*) FROM tasks WHERE tasks.thread_id = threads.id),
    last_task_id = (SELECT tasks.id FROM tasks WHERE tasks.thread_id = threads.id ORDER BY tasks.rowid DESC LIMIT 1)`);
  db.run(THREAD_COUNT_TRIGGERS);
}

/** A row of TASK_COLUMNS as bun:sqlite returns it: a Task with its metadata, error and output_json as JSON text. */
interface TaskRow {
  rowid: number;
  id: string;
  owner: string;
  agent: string;
  input: string;
  metadata: string;
  status: TaskStatus;
  stop_reason: Task["stop_reason"];
  output: string | null;
  error: string | null;
  total_steps: number;
  total_tokens: number;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number | null;
  last_seq: number;
  pruned_through: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  thread_id: string | null;
  output_json: string | null;
  wait_until: string | null;
}

/** A row as the API's task (fields in the schema's order, which is the JSON's), checked by `checkedTask`. */
function toTask(value: unknown): Task {
  const row = value as TaskRow;
  return checkedTask({
    id: row.id,
    owner: row.owner,
    agent: row.agent,
    input: row.input,
    metadata: parseColumn(row.id, "metadata", row.metadata) as Task["metadata"],
    status: row.status,
    stop_reason: row.stop_reason,
    output: row.output,
    error: row.error === null ? null : (parseColumn(row.id, "error", row.error) as Task["error"]),
    total_steps: row.total_steps,
    total_tokens: row.total_tokens,
    input_tokens: row.input_tokens,
    output_tokens: row.output_tokens,
    cost_usd: row.cost_usd,
    thread_id: row.thread_id,
    output_json: row.output_json === null ? null : parseColumn(row.id, "output_json", row.output_json),
    wait_until: row.wait_until,
    last_seq: row.last_seq,
    pruned_through: row.pruned_through,
    created_at: row.created_at,
    started_at: row.started_at,
    finished_at: row.finished_at,
  });
}

/** What every task read selects: the row and nothing of the tables beside it. */
const TASK_COLUMNS = `rowid, id, owner, agent, input, metadata, status, stop_reason, output, error, total_steps,
  total_tokens, input_tokens, output_tokens, cost_usd, last_seq, pruned_through, created_at, started_at, finished_at,
  thread_id, output_json, wait_until`;

/**
 * The query `listTasks` runs (a page and one more row, newest first), with its parameters;
 * `before`: the decoded cursor. Exported so that a test can EXPLAIN the very SQL.
 */
export function listTasksSql(query: { status?: TaskStatus; owner?: string; before?: number; limit: number }): { sql: string; params: Record<string, string | number> } {
  const conditions: string[] = [];
  const params: Record<string, string | number> = { limit: query.limit + 1 };
  if (query.status) {
    conditions.push("status = $status");
    params.status = query.status;
  }
  if (query.owner !== undefined) {
    conditions.push("owner = $owner");
    params.owner = query.owner;
  }
  if (query.before !== undefined) {
    conditions.push("rowid < $before");
    params.before = query.before;
  }
  const where = conditions.length ? `WHERE ${conditions.join(" AND ")}` : "";
  return { sql: `SELECT ${TASK_COLUMNS} FROM tasks ${where} ORDER BY rowid DESC LIMIT $limit`, params };
}

/**
 * The query `threadTasks` runs (newest first), with its parameters. Exported so that a test can
 * EXPLAIN the very SQL. With statuses, each status is its own newest-first walk of the
 * (thread_id, status) index, at most `limit` rows, merged: `status IN (…)` made SQLite walk the
 * thread's whole `tasks_thread` index in rowid order instead, reading every task of the thread to
 * find the few unfinished ones (the busy check of every new task in a thread: 17–28 ms with a
 * 30,000-task thread, growing with it).
 */
export function threadTasksSql(query: { threadId: string; limit: number; statuses?: readonly TaskStatus[]; before?: string }): {
  sql: string;
  params: Record<string, string | number>;
} {
  const params: Record<string, string | number> = { thread_id: query.threadId, limit: query.limit };
  const before = query.before === undefined ? "" : " AND rowid < (SELECT rowid FROM tasks WHERE id = $before)";
  if (query.before !== undefined) params.before = query.before;
  const newest = (status = "") => `SELECT ${TASK_COLUMNS} FROM tasks WHERE thread_id = $thread_id${status}${before} ORDER BY rowid DESC LIMIT $limit`;
  if (!query.statuses) return { sql: newest(), params };
  const statuses = [...new Set(query.statuses)];
  statuses.forEach((status, index) => (params[`s${index}`] = status));
  if (statuses.length === 1) return { sql: newest(" AND status = $s0"), params };
  const walks = statuses.map((_, index) => `SELECT * FROM (${newest(` AND status = $s${index}`)})`);
  return { sql: `${walks.join(" UNION ALL ")} ORDER BY rowid DESC LIMIT $limit`, params };
}

/**
 * Schema 1 → 2: an error was its message alone; it becomes a `TaskError`. The code is the stop
 * reason where that is a code of its own (`max_steps`, `token_budget`, `deadline`, `interrupted`),
 * else `internal` (a provider's status cannot be told reliably from an old message).
 */
const MIGRATE_1_TO_2 = `
UPDATE tasks SET error = json_object(
  'code', CASE WHEN stop_reason IN ('max_steps', 'token_budget', 'deadline', 'interrupted') THEN stop_reason ELSE 'internal' END,
  'message', error,
  'retryable', json(CASE WHEN stop_reason = 'interrupted' THEN 'true' ELSE 'false' END)
) WHERE error IS NOT NULL;
`;

/** Schema 2 → 3: the fencing token. Tasks of an older file start at 0 (a running one is taken over: 1). */
const MIGRATE_2_TO_3 = `ALTER TABLE tasks ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0`;

/** Schemas 4 and 5: the columns an older file lacks, each added when the file does not have it. */
const ADDED_COLUMNS = [["thread_id", "TEXT"], ["output_json", "TEXT"], ["wait_until", "TEXT"], ["webhook_url", "TEXT"]] as const;

/**
 * The released migrations of a file's schema version (`PRAGMA user_version`), as they run on an
 * older file: never change one (test/store/migrations.test.ts pins them), add a new one. `SCHEMA`
 * (a new file's tables) and `INDEXES` (added at every open, with no version) are not among them.
 */
export const SQLITE_MIGRATIONS: Readonly<Record<string, string>> = {
  "1 to 2": MIGRATE_1_TO_2,
  "2 to 3": MIGRATE_2_TO_3,
  "4 and 5: columns": ADDED_COLUMNS.map(([column, type]) => `ALTER TABLE tasks ADD COLUMN ${column} ${type}`).join(";\n"),
  "4: tables": SCHEMA_4,
  "5: webhooks": SCHEMA_5,
  "6: webhooks.destination": MIGRATE_6_COLUMN,
  "6: webhook destinations": SCHEMA_6,
};

const WEBHOOK_COLUMNS = "id, task_id, url, event, payload, attempts, next_attempt_at, status, last_error, created_at, delivered_at";

interface WebhookRow {
  id: string;
  task_id: string;
  url: string;
  event: string;
  payload: string;
  attempts: number;
  next_attempt_at: string;
  status: string;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
}

function toWebhook(row: WebhookRow): Webhook {
  return {
    id: row.id,
    taskId: row.task_id,
    url: row.url,
    event: row.event as WebhookEvent,
    payload: row.payload,
    attempts: row.attempts,
    nextAttemptAt: new Date(row.next_attempt_at),
    status: row.status as WebhookStatus,
    lastError: row.last_error,
    createdAt: new Date(row.created_at),
    deliveredAt: row.delivered_at === null ? null : new Date(row.delivered_at),
  };
}

export interface SqliteStoreOptions {
  /** Directory for `agentkit.sqlite`; created if missing. Use `:memory:` for a throwaway store. */
  dataDir: string;
  /** WAL checkpoints in a worker thread (default), or SQLite's automatic ones inside commits (false). */
  checkpointInWorker?: boolean;
  /** Where the checkpointer says it fell back to the main thread. */
  logger?: Logger;
  /** Makes the checkpointer (tests: to see what the store tells it). */
  checkpointer?: typeof createCheckpointer;
}

export function createSqliteStore(options: SqliteStoreOptions): TaskStore {
  let path = ":memory:";
  if (options.dataDir !== ":memory:") {
    if (existsSync(options.dataDir) && !statSync(options.dataDir).isDirectory()) {
      throw new Error(`the data dir ${options.dataDir} is a file, not a directory: choose another --data-dir`);
    }
    mkdirSync(options.dataDir, { recursive: true });
    path = join(options.dataDir, "agentkit.sqlite");
  }
  let db: Database;
  try {
    db = new Database(path, { create: true, strict: true });
    // A new file gives back to the file system what retention frees (`PRAGMA incremental_vacuum`
    // after a pass, a slice at a time); this can only be chosen before its first page is written
    // (before WAL mode, before any table). A file made before keeps its size (free pages are reused).
    if ((db.query("SELECT count(*) AS n FROM sqlite_master").get() as { n: number }).n === 0) db.run("PRAGMA auto_vacuum = INCREMENTAL");
    db.run("PRAGMA journal_mode = WAL");
  } catch (error) {
    throw new Error(cannotOpen(path, options.dataDir, error));
  }
  const givesBack = (db.query("PRAGMA auto_vacuum").get() as { auto_vacuum: number }).auto_vacuum === 2;
  db.run("PRAGMA synchronous = NORMAL");
  db.run("PRAGMA busy_timeout = 5000");
  db.run("PRAGMA cache_size = -65536"); // 64 MiB: event-log pages of many live tasks stay cached
  // WAL checkpoints run in a worker thread (sqlite-checkpointer.ts), about as often as SQLite's own
  // (every ~4 MiB written), instead of inside a commit on the event loop: 6–8 ms stalls for every
  // watcher. If the worker cannot run, SQLite's automatic checkpoint is turned back on.
  const pageBytes = (db.query("PRAGMA page_size").get() as { page_size: number }).page_size;
  const checkpointer =
    path === ":memory:" || options.checkpointInWorker === false
      ? undefined
      : (options.checkpointer ?? createCheckpointer)({
          path,
          pageBytes,
          // A WAL file that grew past ~4 checkpoints' worth (a large transaction, a pass of retention
          // while a reader held the log) is shortened back to it: to 16 MiB.
          walLimitBytes: 4 * CHECKPOINT_BYTES,
          thresholdBytes: CHECKPOINT_BYTES,
          logger: options.logger,
          onFallback: () => db.run("PRAGMA wal_autocheckpoint = 1000"),
          onResume: () => db.run("PRAGMA wal_autocheckpoint = 0"),
          catchUp: () => db.query("PRAGMA wal_checkpoint(PASSIVE)").get() as CheckpointResult,
        });
  if (checkpointer) db.run("PRAGMA wal_autocheckpoint = 0");
  /** Set by `close`: work that yields (retention) stops at its next turn. */
  let closed = false;
  /** A write committed about `bytes` of rows (and at least a page of the WAL). */
  const wrote = (bytes = 0) => checkpointer?.wrote(4096 + bytes);
  const frameBytes = (events: readonly StoredEvent[]) => {
    let bytes = 0;
    for (const event of events) bytes += event.frame.length + 32;
    return bytes;
  };
  db.run("PRAGMA foreign_keys = ON");
  const version = (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
  if (version > SCHEMA_VERSION) {
    throw new Error(`${path} has schema version ${version}, newer than this agentkit (${SCHEMA_VERSION})`);
  }
  const migrate = db.transaction(() => {
    // Read again under the write lock: another process may have migrated the file meanwhile, and a
    // migration must run once (the version moves in the same transaction).
    const current = (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
    if (current > SCHEMA_VERSION) {
      throw new Error(`${path} has schema version ${current}, newer than this agentkit (${SCHEMA_VERSION})`);
    }
    db.run(SCHEMA); // a new file gets the current tables; an old one keeps its own, migrated below
    db.run(EVENTS_TABLE);
    if (current === 1) db.run(MIGRATE_1_TO_2);
    // Guarded by the column itself too, so a file that has it (whatever its version says) is left as is.
    const hasAttempt = db.query("SELECT 1 FROM pragma_table_info('tasks') WHERE name = 'attempt'").get() !== null;
    if (current < 3 && !hasAttempt) db.run(MIGRATE_2_TO_3);
    // Schema 4: columns an older file lacks (each guarded by the column itself), then the new tables.
    for (const [column, type] of ADDED_COLUMNS) {
      const has = db.query(`SELECT 1 FROM pragma_table_info('tasks') WHERE name = '${column}'`).get() !== null;
      if (!has) db.run(`ALTER TABLE tasks ADD COLUMN ${column} ${type}`);
    }
    db.run(SCHEMA_4);
    db.run(SCHEMA_5);
    const hasDestination = db.query("SELECT 1 FROM pragma_table_info('webhooks') WHERE name = 'destination'").get() !== null;
    if (!hasDestination) db.run(MIGRATE_6_COLUMN);
    db.run(SCHEMA_6);
    db.run(INDEXES);
    keepThreadCounts(db);
    const events = db.query("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'").get() as { sql: string };
    if (!/WITHOUT ROWID/i.test(events.sql)) db.run(EVENTS_INDEX);
    db.run(`PRAGMA user_version = ${SCHEMA_VERSION}`);
  });
  try {
    migrate.immediate();
  } catch (error) {
    // The file opened but cannot be written (a read-only file or mount, a full disk): say where.
    if (isStoreWriteFailure(error)) throw new Error(cannotOpen(path, options.dataDir, error));
    throw error;
  }

  const insertTask = db.query(
    `INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at, thread_id, webhook_url)
     VALUES ($id, $owner, $agent, $input, $metadata, 'queued', $created_at, $thread_id, $webhook_url)`,
  );
  const selectTask = db.query(`SELECT ${TASK_COLUMNS} FROM tasks WHERE id = $id`);
  /** `status IN (…)`: the states the state machine allows `to` to be reached from. */
  const from = (to: TaskStatus) => `status IN (${sourcesOf(to).map((status) => `'${status}'`).join(", ")})`;
  const markRunning = db.query(
    `UPDATE tasks SET status = 'running', started_at = coalesce(started_at, $started_at), attempt = attempt + 1, wait_until = NULL
     WHERE id = $id AND ${from("running")}`,
  );
  const waitTask = db.query(
    `UPDATE tasks SET status = 'waiting', wait_until = $wait_until,
       total_steps = coalesce($total_steps, total_steps), input_tokens = coalesce($input_tokens, input_tokens),
       output_tokens = coalesce($output_tokens, output_tokens), total_tokens = coalesce($total_tokens, total_tokens),
       cost_usd = CASE WHEN $total_steps IS NULL THEN cost_usd ELSE $cost_usd END
     WHERE id = $id AND ${from("waiting")} AND ($fence IS NULL OR attempt = $fence)`,
  );
  const waitParams = (id: string, waitUntil: Date | null, fence: number | undefined, totals: UsageTotals | undefined) => ({
    id,
    wait_until: waitUntil?.toISOString() ?? null,
    fence: fence ?? null,
    total_steps: totals?.steps ?? null,
    input_tokens: totals?.inputTokens ?? null,
    output_tokens: totals?.outputTokens ?? null,
    total_tokens: totals ? totals.inputTokens + totals.outputTokens : null,
    cost_usd: totals?.costUsd ?? null,
  });
  const moveWaiting = db.query(
    `UPDATE tasks SET last_seq = $last, status = CASE WHEN $requeue THEN 'queued' ELSE status END,
       wait_until = CASE WHEN $requeue THEN NULL ELSE wait_until END
     WHERE id = $id AND status = 'waiting' AND last_seq = $first - 1`,
  );
  const selectExpiredWaits = db.query(
    `SELECT ${TASK_COLUMNS} FROM tasks WHERE status = 'waiting' AND wait_until < $now ORDER BY wait_until LIMIT $limit`,
  );
  const insertInput = db.query(
    `INSERT INTO inputs (task_id, id, text, sender, created_at)
     SELECT $task_id, $id, $text, $sender, $created_at FROM tasks WHERE id = $task_id AND status IN ('queued', 'running', 'waiting')`,
  );
  const selectInputs = db.query(`SELECT id, text, sender, created_at FROM inputs WHERE task_id = $task_id ORDER BY rowid`);
  const countInputs = db.query(`SELECT count(*) AS count FROM inputs WHERE task_id = $task_id`);
  const deleteInput = db.query(`DELETE FROM inputs WHERE task_id = $task_id AND id = $id`);
  const deleteTaskInputs = db.query(`DELETE FROM inputs WHERE task_id = $task_id`);
  const insertThread = db.query(`INSERT INTO threads (id, owner, created_at) VALUES ($id, $owner, $created_at)`);
  const adoptTask = db.query(`UPDATE tasks SET thread_id = $thread WHERE id = $task AND owner = $owner AND thread_id IS NULL`);
  const createThreadTx = db.transaction((thread: { id: string; owner: string; createdAt: Date; adopt?: string }) => {
    insertThread.run({ id: thread.id, owner: thread.owner, created_at: thread.createdAt.toISOString() });
    if (thread.adopt !== undefined) adoptTask.run({ thread: thread.id, task: thread.adopt, owner: thread.owner });
  });
  const selectThread = db.query(
    `SELECT rowid, id, owner, created_at, task_count, last_task_id FROM threads WHERE id = $id`,
  );
  const selectSecret = db.query(`SELECT value FROM secrets WHERE name = $name`);
  const insertSecret = db.query(`INSERT OR IGNORE INTO secrets (name, value) VALUES ($name, $value)`);
  const insertEvent = db.query(`INSERT INTO events (task_id, seq, frame) VALUES ($task_id, $seq, $frame)`);
  /**
   * Inserts a task's events with multi-row INSERTs of 32, then 8, then 1 row (positional
   * parameters): ~15% less CPU per event than a statement call per event, named.
   */
  const insertRows = new Map([32, 8, 1].map((rows) => [
    rows,
    db.query(`INSERT INTO events (task_id, seq, frame) VALUES ${Array.from({ length: rows }, (_, row) => `(?1, ?${2 * row + 2}, ?${2 * row + 3})`).join(", ")}`),
  ]));
  const insertEvents = (id: string, events: readonly StoredEvent[]) => {
    let index = 0;
    for (const [rows, statement] of insertRows) {
      for (; events.length - index >= rows; index += rows) {
        const values: (string | number)[] = [id];
        for (let row = index; row < index + rows; row++) values.push(events[row]!.seq, events[row]!.frame);
        statement.run(...values);
      }
    }
  };
  // A webhook without a url goes to the task's own `webhook_url`, if it has one.
  const insertWebhook = db.query(
    `INSERT INTO webhooks (id, task_id, url, event, payload, next_attempt_at, created_at)
     SELECT $id, id, coalesce($url, webhook_url), $event, $payload, $created_at, $created_at
     FROM tasks WHERE id = $task_id AND coalesce($url, webhook_url) IS NOT NULL`,
  );
  const insertWebhooks = (taskId: string, webhooks: readonly NewWebhook[] | undefined) => {
    for (const webhook of webhooks ?? []) {
      insertWebhook.run({
        id: webhook.id,
        task_id: taskId,
        url: webhook.url ?? null,
        event: webhook.event,
        payload: webhook.payload,
        created_at: webhook.createdAt.toISOString(),
      });
    }
  };
  // Schema 6: deliveries fair by destination (see SCHEMA_6). Intake: rows written since, oldest
  // first, get their destination, and their destination's `next_due` is lowered to their soonest.
  const selectIntake = db.query(`SELECT rowid, url, next_attempt_at FROM webhooks WHERE status = 'pending' AND destination IS NULL ORDER BY rowid LIMIT $limit`);
  const anyIntake = db.query(`SELECT 1 FROM webhooks WHERE status = 'pending' AND destination IS NULL LIMIT 1`);
  const setDestination = db.query(`UPDATE webhooks SET destination = $destination WHERE rowid = $rowid`);
  const lowerDestination = db.query(
    `INSERT INTO webhook_destinations (destination, next_due) VALUES ($destination, $due)
     ON CONFLICT (destination) DO UPDATE SET next_due = excluded.next_due WHERE next_due IS NULL OR next_due > excluded.next_due`,
  );
  const intakeTx = db.transaction((limit: number): number => {
    const rows = selectIntake.all({ limit }) as { rowid: number; url: string; next_attempt_at: string }[];
    const soonest = new Map<string, string>();
    for (const row of rows) {
      const destination = webhookDestination(row.url);
      setDestination.run({ destination, rowid: row.rowid });
      const due = soonest.get(destination);
      if (due === undefined || row.next_attempt_at < due) soonest.set(destination, row.next_attempt_at);
    }
    for (const [destination, due] of soonest) lowerDestination.run({ destination, due });
    return rows.length;
  });
  /** Destinations with rows due (or that may have: `next_due` is a lower bound), soonest first. */
  const selectDueDestinations = db.query(
    `SELECT destination FROM webhook_destinations WHERE next_due IS NOT NULL AND next_due <= $now ORDER BY next_due LIMIT $limit`,
  );
  /** One destination's due rows, oldest due first. */
  const selectDestinationDue = db.query(
    `SELECT rowid, ${WEBHOOK_COLUMNS} FROM webhooks WHERE destination = $destination AND status = 'pending' AND next_attempt_at <= $now
     ORDER BY next_attempt_at, rowid LIMIT $limit`,
  );
  const leaseWebhook = db.query(`UPDATE webhooks SET next_attempt_at = $lease WHERE rowid = $rowid`);
  /** A destination's `next_due`, exact again: its soonest pending row's (leases included), or NULL. */
  const refreshDestination = db.query(
    `UPDATE webhook_destinations SET next_due = (SELECT min(next_attempt_at) FROM webhooks WHERE destination = $destination AND status = 'pending')
     WHERE destination = $destination`,
  );
  /** Whether a claim may find anything: a read, so that an idle poll takes no write lock and writes nothing. */
  const anyWebhookDue = db.query(
    `SELECT 1 WHERE EXISTS (SELECT 1 FROM webhooks WHERE status = 'pending' AND destination IS NULL)
       OR EXISTS (SELECT 1 FROM webhook_destinations WHERE next_due IS NOT NULL AND next_due <= $now)`,
  );
  const claimTx = db.transaction((now: string, lease: string, limit: number, perDestination: number, busy: ReadonlyMap<string, number>) => {
    const taken = intakeTx(INTAKE_PER_CLAIM);
    const claimed: (WebhookRow & { rowid: number; destination: string })[] = [];
    const visited = new Set<string>();
    let full = 0;
    for (const count of busy.values()) if (count >= perDestination) full++;
    let changed = taken > 0;
    for (let round = 0; round < CLAIM_ROUNDS && claimed.length < limit; round++) {
      // Full destinations and those this claim has served may come first: read past them.
      const wanted = limit - claimed.length + full + visited.size;
      const destinations = selectDueDestinations.all({ now, limit: wanted }) as { destination: string }[];
      let served = 0;
      for (const { destination } of destinations) {
        if (claimed.length >= limit) break;
        if (visited.has(destination)) continue;
        const quota = Math.min(perDestination - (busy.get(destination) ?? 0), limit - claimed.length);
        if (quota <= 0) continue; // full: its rows are not read
        visited.add(destination);
        served++;
        const rows = selectDestinationDue.all({ destination, now, limit: quota }) as (WebhookRow & { rowid: number })[];
        for (const row of rows) {
          leaseWebhook.run({ lease, rowid: row.rowid });
          claimed.push({ ...row, next_attempt_at: lease, destination });
        }
        refreshDestination.run({ destination });
        changed = true;
      }
      if (destinations.length < wanted || served === 0) break; // no other destination is due
    }
    return { claimed, changed };
  });
  const recordWebhook = db.query(
    `UPDATE webhooks SET attempts = attempts + 1, status = $status, next_attempt_at = coalesce($next, next_attempt_at),
       last_error = coalesce($error, last_error), delivered_at = $delivered_at
     WHERE id = $id AND status = 'pending'
     RETURNING destination`,
  );
  // The row's destination's `next_due` is made exact in the same transaction: a retry may be due
  // before it (it was the lease's end), and a delivered or failed row's lease must not leave it
  // behind — a destination left due with nothing to send took a claim's place (each claim reads a
  // bounded number of destinations: thousands served once made the claims come back empty while a
  // new row was due). A row not taken in yet (no destination) is left to the intake.
  const recordTx = db.transaction((params: { id: string; status: string; next: string | null; error: string | null; delivered_at: string | null }): boolean => {
    const recorded = recordWebhook.get(params) as { destination: string | null } | null;
    if (recorded === null) return false;
    if (recorded.destination !== null) refreshDestination.run({ destination: recorded.destination });
    return true;
  });
  const selectUnfinishedTaskWebhook = db.query(`SELECT 1 FROM tasks WHERE webhook_url IS NOT NULL AND status IN ('queued', 'running', 'waiting') LIMIT 1`);
  const selectTaskWebhooks = db.query(
    `SELECT ${WEBHOOK_COLUMNS.split(", ").map((column) => `webhooks.${column}`).join(", ")},
       coalesce(webhooks.url = tasks.webhook_url, 0) AS to_task_url
     FROM webhooks JOIN tasks ON tasks.id = webhooks.task_id WHERE webhooks.task_id = $task_id ORDER BY webhooks.rowid`,
  );
  const waitTx = db.transaction((id: string, waitUntil: Date | null, fence: number | undefined, webhooks: readonly NewWebhook[], totals: UsageTotals | undefined): boolean => {
    if (waitTask.run(waitParams(id, waitUntil, fence, totals)).changes !== 1) return false;
    insertWebhooks(id, webhooks);
    return true;
  });
  const finishStatements = new Map(
    (["completed", "failed", "cancelled", "timed_out"] as const).map((to) => [
      to,
      db.query(
        `UPDATE tasks SET status = $status, stop_reason = $stop_reason, output = $output, error = $error,
           total_steps = $total_steps, total_tokens = $total_tokens, input_tokens = $input_tokens,
           output_tokens = $output_tokens, cost_usd = $cost_usd, finished_at = $finished_at, last_seq = $seq,
           output_json = $output_json, wait_until = NULL
         WHERE id = $id AND ${from(to)} AND last_seq = $prev AND ($fence IS NULL OR attempt = $fence)`,
      ),
    ]),
  );
  const selectEvents = db.query(
    `SELECT seq, frame FROM events WHERE task_id = $task_id AND seq > $after ORDER BY seq LIMIT $limit`,
  );

  const prunable = db.query(
    `SELECT id, last_seq, pruned_through FROM tasks WHERE finished_at IS NOT NULL AND finished_at < $before AND pruned_through < last_seq LIMIT 500`,
  );
  // A log is pruned from its start: `pruned_through` moves up by at most `$events` (to `last_seq`
  // at most) and the events up to it go, in one transaction. Moved from the row as it is, so that
  // two runs at once never move it back. Readers find the events after `pruned_through`, as ever.
  const advancePruned = db.query(
    `UPDATE tasks SET pruned_through = min(last_seq, pruned_through + $events)
     WHERE id = $id AND pruned_through < last_seq RETURNING pruned_through, last_seq`,
  );
  const deleteThrough = db.query(`DELETE FROM events WHERE task_id = $id AND seq <= $through`);
  const freelistCount = db.query(`PRAGMA freelist_count`);
  const freePages = () => (freelistCount.get() as { freelist_count: number }).freelist_count;
  /**
   * Prunes each log by up to its `events`: how many logs are pruned to their end now, and how many
   * pages were freed (for the checkpointer: see `pruneEvents`). Run as `.immediate()`: it reads
   * before it writes, and a deferred transaction that has read gets SQLITE_BUSY at once, without
   * waiting, when another connection holds the write lock — as the checkpointer's worker does while it
   * shortens the WAL. The store's other transactions write first.
   */
  const pruneBatch = db.transaction((pieces: { id: string; events: number }[]) => {
    const before = freePages();
    let whole = 0;
    for (const { id, events } of pieces) {
      const row = advancePruned.get({ id, events }) as { pruned_through: number; last_seq: number } | null;
      if (!row) continue; // pruned meanwhile
      deleteThrough.run({ id, through: row.pruned_through });
      if (row.pruned_through === row.last_seq) whole++;
    }
    return { whole, freed: Math.max(0, freePages() - before) };
  });

  /**
   * After a retention pass (a file with `auto_vacuum = INCREMENTAL`): the free pages go back to the
   * file system, moving live pages from the end of the file into free ones — ~`PRUNE_MS` of it per
   * step, the event loop getting turns between steps (the file shrinks at the next checkpoint).
   * Fewer than `GIVE_BACK_MIN_PAGES` free pages are kept (the next writes take them). Whether any
   * page was given back.
   */
  async function giveBack(): Promise<boolean> {
    let step = 64;
    let gave = false;
    for (let free = freePages(); !closed && free > GIVE_BACK_MIN_PAGES; ) {
      const wal = checkpointer && readWalLog(path);
      const started = performance.now();
      db.run(`PRAGMA incremental_vacuum(${step})`);
      const took = performance.now() - started;
      const left = freePages();
      // What the step wrote, read off the WAL: a page moved is written at its new place, and so are
      // its parent and the pointer-map pages it changes (0.3–1.3 frames per page given back here), and
      // the frames are counted as such — not as rows, whose WAL the checkpointer estimates.
      if (wal) checkpointer.wroteFrames(framesWritten(wal, readWalLog(path)));
      if (left >= free) return gave; // nothing given back (never expected): not a loop without end
      free = left;
      gave = true;
      step = Math.max(8, Math.min(4096, 2 * step, Math.floor((step * PRUNE_MS) / Math.max(took, 0.01))));
      const checkpointing = checkpointer?.settled();
      if (checkpointing) await checkpointing;
      else if (backgroundSlice.spent) await backgroundSlice.next();
    }
    return gave;
  }

  // Only a live task takes events: after its result, a task's log is closed (a stale writer — a
  // server that lost its task to another in cluster mode — must not extend it).
  const moveSeq = db.query(
    `UPDATE tasks SET last_seq = $last
     WHERE id = $id AND last_seq = $first - 1 AND status IN ('queued', 'running') AND ($fence IS NULL OR attempt = $fence)`,
  );
  const selectAttempt = db.query(`SELECT attempt FROM tasks WHERE id = $id`);
  /**
   * After a fenced write changed nothing: throws `FencedError` when the task exists and its
   * attempt is not `fence` — whatever else is wrong (a stale run's seq or a task its successor
   * ended), the run was taken over, and that is what its caller must learn.
   */
  const checkFence = (id: string, fence: number | undefined) => {
    if (fence === undefined) return;
    const row = selectAttempt.get({ id }) as { attempt: number } | null;
    if (row && row.attempt !== fence) throw new FencedError(id, fence);
  };
  const takeOver = db.query(`UPDATE tasks SET attempt = attempt + 1 WHERE id = $id AND status = 'running' RETURNING attempt`);
  /** Appends a contiguous run of events in one transaction, or nothing. */
  const appendTx = db.transaction((id: string, events: readonly StoredEvent[], fence: number | undefined) => {
    const { first, last } = seqRange(id, events);
    if (moveSeq.run({ id, first, last, fence: fence ?? null }).changes !== 1) {
      checkFence(id, fence);
      throw new AgentkitError("conflict", `Event ${first} of task ${id} is not the next in sequence`);
    }
    insertEvents(id, events);
  });

  const appendWaitingTx = db.transaction((id: string, events: readonly StoredEvent[], requeue: boolean): boolean => {
    const { first, last } = seqRange(id, events);
    if (moveWaiting.run({ id, first, last, requeue: requeue ? 1 : 0 }).changes !== 1) return false;
    insertEvents(id, events);
    return true;
  });

  const finishTx = db.transaction((id: string, outcome: TaskOutcome, seq: number, frame: string, fence: number | undefined, webhooks: readonly NewWebhook[] | undefined, before: readonly StoredEvent[]): boolean => {
    const first = before.length > 0 ? resultAfter(id, before, seq) : seq;
    const moved = finishStatements.get(outcome.status)!.run({
      id,
      seq,
      prev: first - 1,
      fence: fence ?? null,
      status: outcome.status,
      stop_reason: outcome.stopReason,
      output: outcome.output,
      output_json: outcome.outputJson === undefined || outcome.outputJson === null ? null : JSON.stringify(outcome.outputJson),
      error: outcome.error === null ? null : JSON.stringify(outcome.error),
      total_steps: outcome.totalSteps,
      total_tokens: outcome.inputTokens + outcome.outputTokens,
      input_tokens: outcome.inputTokens,
      output_tokens: outcome.outputTokens,
      cost_usd: outcome.costUsd,
      finished_at: outcome.finishedAt.toISOString(),
    });
    if (moved.changes !== 1) {
      checkFence(id, fence);
      return false;
    }
    insertEvents(id, before);
    insertEvent.run({ task_id: id, seq, frame });
    // Messages that never reached the model are dropped with the run: the task has its result.
    deleteTaskInputs.run({ task_id: id });
    insertWebhooks(id, webhooks);
    return true;
  });

  return {
    async createTask(task: NewTask) {
      insertTask.run({
        id: task.id,
        owner: task.owner,
        agent: task.agent,
        input: task.input,
        metadata: JSON.stringify(task.metadata),
        created_at: task.createdAt.toISOString(),
        thread_id: task.threadId ?? null,
        webhook_url: task.webhookUrl ?? null,
      });
      wrote(task.input.length);
      return toTask(selectTask.get({ id: task.id }));
    },

    async getTask(id) {
      const row = selectTask.get({ id });
      return row ? toTask(row) : undefined;
    },

    async listTasks(query: ListTasksQuery): Promise<TaskPage> {
      const { sql, params } = listTasksSql({ ...query, before: query.cursor === undefined ? undefined : decodeCursor(query.cursor) });
      const rows = db.query(sql).all(params);
      const page = rows.slice(0, query.limit);
      const last = page.at(-1) as { rowid: number } | undefined;
      return {
        tasks: page.map(toTask),
        nextCursor: rows.length > query.limit && last ? encodeCursor(last.rowid) : null,
        cursors: page.map((row) => encodeCursor((row as { rowid: number }).rowid)),
      };
    },

    async tasksWithStatus(statuses) {
      if (statuses.length === 0) return [];
      const placeholders = statuses.map((_, index) => `$s${index}`).join(", ");
      const params = Object.fromEntries(statuses.map((status, index) => [`s${index}`, status]));
      return db.query(`SELECT ${TASK_COLUMNS} FROM tasks WHERE status IN (${placeholders}) ORDER BY rowid`).all(params).map(toTask);
    },

    async markRunning(id, startedAt) {
      wrote();
      return markRunning.run({ id, started_at: startedAt.toISOString() }).changes === 1;
    },

    async appendEvents(id, events, fence) {
      if (events.length === 0) return;
      appendTx(id, events, fence);
      wrote(frameBytes(events));
    },

    async waitTask(id, waitUntil, fence, webhooks, totals) {
      wrote();
      if (webhooks?.length ? waitTx(id, waitUntil, fence, webhooks, totals) : waitTask.run(waitParams(id, waitUntil, fence, totals)).changes === 1) return true;
      checkFence(id, fence);
      return false;
    },

    async appendWhileWaiting(id, events, requeue) {
      if (events.length === 0) return false;
      wrote(frameBytes(events));
      return appendWaitingTx(id, events, requeue);
    },

    async expiredWaits(now, limit) {
      return selectExpiredWaits.all({ now: now.toISOString(), limit }).map(toTask);
    },

    async addInput(taskId, input: PendingInput) {
      wrote(input.text.length);
      return (
        insertInput.run({ task_id: taskId, id: input.id, text: input.text, sender: input.by, created_at: input.createdAt.toISOString() })
          .changes === 1
      );
    },

    async pendingInputCount(taskId) {
      return (countInputs.get({ task_id: taskId }) as { count: number }).count;
    },

    async pendingInputs(taskId) {
      const rows = selectInputs.all({ task_id: taskId }) as { id: string; text: string; sender: string; created_at: string }[];
      return rows.map((row) => ({ id: row.id, text: row.text, by: row.sender, createdAt: new Date(row.created_at) }));
    },

    async deleteInputs(taskId, ids) {
      if (ids.length === 0) return;
      wrote();
      db.transaction(() => {
        for (const id of ids) deleteInput.run({ task_id: taskId, id });
      })();
    },

    async createThread(thread) {
      createThreadTx(thread);
      wrote();
      return toThread(selectThread.get({ id: thread.id }));
    },

    async getThread(id) {
      const row = selectThread.get({ id });
      return row ? toThread(row) : undefined;
    },

    async listThreads(query: ListThreadsQuery) {
      const conditions: string[] = [];
      const params: Record<string, string | number> = { limit: query.limit + 1 };
      if (query.owner !== undefined) {
        conditions.push("owner = $owner");
        params.owner = query.owner;
      }
      if (query.cursor !== undefined) {
        conditions.push("rowid < $before");
        params.before = decodeCursor(query.cursor);
      }
      const where = conditions.length ? `WHERE ${conditions.join(" AND ")}` : "";
      const rows = db
        .query(
          `SELECT rowid, id, owner, created_at, task_count, last_task_id FROM threads ${where} ORDER BY rowid DESC LIMIT $limit`,
        )
        .all(params) as { rowid: number }[];
      const page = rows.slice(0, query.limit);
      const last = page.at(-1);
      return { threads: page.map(toThread), nextCursor: rows.length > query.limit && last ? encodeCursor(last.rowid) : null };
    },

    async threadTasks(threadId, query) {
      if (query.statuses?.length === 0) return [];
      const { sql, params } = threadTasksSql({ threadId, ...query });
      // Newest first, read one row at a time: no row is read past the one that does not fit.
      return newestWithin(db.query(sql).iterate(params) as IterableIterator<TaskRow>, query.maxChars).reverse().map(toTask);
    },

    async secret(name) {
      insertSecret.run({ name, value: crypto.getRandomValues(new Uint8Array(32)) });
      const row = selectSecret.get({ name }) as { value: Uint8Array };
      return new Uint8Array(row.value);
    },

    async finishTask(id, outcome, seq, frame, fence, webhooks, before = []) {
      wrote(frame.length + frameBytes(before) + (outcome.output?.length ?? 0));
      return finishTx(id, outcome, seq, frame, fence, webhooks, before);
    },

    async claimWebhooks(now, limit, leaseMs, fairness) {
      if (limit <= 0 || anyWebhookDue.get({ now: now.toISOString() }) === null) return [];
      const lease = new Date(now.getTime() + leaseMs).toISOString();
      const { claimed, changed } = claimTx.immediate(now.toISOString(), lease, limit, fairness?.perDestination ?? limit, fairness?.busy ?? new Map());
      if (changed) wrote();
      return claimed.sort((a, b) => a.rowid - b.rowid).map((row) => ({ ...toWebhook(row), destination: row.destination }));
    },

    async intakeWebhooks(limit) {
      if (limit <= 0 || anyIntake.get() === null) return 0;
      const taken = intakeTx.immediate(limit);
      if (taken === 0) return 0;
      // Each row's page, and the index pages it moves in: ~2 KB of WAL a row, with many destinations.
      wrote(taken * 2048);
      // A backlog is taken in batch after batch: while the worker checkpoints, no more (as retention:
      // writing on, it outpaced the worker, and the event loop copied the rest — 37–62 ms at a time
      // after 100,000 rows, bench/webhook-claim.ts).
      const checkpointing = checkpointer?.settled();
      if (checkpointing) await checkpointing;
      return taken;
    },

    async recordWebhookAttempt(id, attempt: WebhookAttempt, at) {
      wrote();
      return recordTx.immediate({
        id,
        status: attempt.outcome === "retry" ? "pending" : attempt.outcome,
        next: attempt.outcome === "retry" ? attempt.nextAttemptAt.toISOString() : null,
        error: attempt.outcome === "delivered" ? null : attempt.error,
        delivered_at: attempt.outcome === "delivered" ? at.toISOString() : null,
      });
    },

    async unfinishedTaskWebhooks() {
      return selectUnfinishedTaskWebhook.get() !== null;
    },

    async taskWebhooks(taskId) {
      return (selectTaskWebhooks.all({ task_id: taskId }) as (WebhookRow & { to_task_url: number })[]).map((row) => ({ ...toWebhook(row), toTaskUrl: row.to_task_url === 1 }));
    },

    async takeOver(id) {
      wrote();
      const row = takeOver.get({ id }) as { attempt: number } | null;
      return row ? row.attempt : undefined;
    },

    async pruneEvents(finishedBefore) {
      let pruned = 0;
      // The store answers synchronously: a prune done in one go held the event loop for all of it
      // (372 ms for 2,000 tasks of 200 events), and so did a long log pruned whole (a 300,000-event
      // one: 150–900 ms). Each transaction deletes ~PRUNE_MS worth of events: whole logs that fit,
      // or the next piece of a longer one, whose `pruned_through` moves up with each piece (a run
      // stopped half-way leaves a log pruned up to there, which the next run goes on with). Appends
      // are not held up, and the loop gets a turn between transactions.
      const slice = backgroundSlice;
      let budget = PRUNE_FIRST;
      for (;;) {
        const rows = prunable.all({ before: finishedBefore.toISOString() }) as { id: string; last_seq: number; pruned_through: number }[];
        if (rows.length === 0) {
          const gaveBack = givesBack && (await giveBack());
          // What the pass wrote last is checkpointed now, not at the next writes (an idle server's
          // WAL kept it), and a WAL file it grew is then shortened (sqlite-checkpointer.ts).
          if ((pruned > 0 || gaveBack) && !closed) checkpointer?.flush();
          return pruned;
        }
        const left = (index: number) => rows[index]!.last_seq - rows[index]!.pruned_through;
        for (let index = 0; index < rows.length; ) {
          let pieces: { id: string; events: number }[];
          let events: number;
          if (left(index) > budget) {
            // A long log: its next piece, alone (its last piece may go with the logs after it).
            events = budget;
            pieces = [{ id: rows[index]!.id, events }];
            rows[index]!.pruned_through += events;
          } else {
            events = left(index);
            pieces = [{ id: rows[index]!.id, events }];
            for (index++; index < rows.length && events + left(index) <= budget; index++) {
              pieces.push({ id: rows[index]!.id, events: left(index) });
              events += left(index);
            }
          }
          const started = performance.now();
          const { whole, freed } = pruneBatch.immediate(pieces);
          const took = performance.now() - started;
          pruned += whole;
          budget = Math.max(1, Math.min(PRUNE_EVENTS, 2 * budget, Math.floor((events * PRUNE_MS) / Math.max(took, 0.01))));
          // The WAL this wrote: each page of the deleted rows once more (~1.5 MB per 4,000 events of
          // ~300 B), but not the overflow pages of frames past ~1 KB, which are freed unwritten.
          wrote(Math.min(freed * pageBytes, events * 1024));
          // While the worker checkpoints, no more: writing on, retention outpaced it, and the event
          // loop copied the rest (sqlite-checkpointer.ts). Waiting gives the loop turns as well.
          const checkpointing = checkpointer?.settled();
          if (checkpointing) await checkpointing;
          else if (slice.spent) await slice.next();
          else continue;
          if (closed) return pruned; // the server stopped meanwhile: the next run goes on
        }
      }
    },

    async events(id, after, limit, maxBytes): Promise<StoredEvent[]> {
      if (maxBytes === undefined) return selectEvents.all({ task_id: id, after, limit }) as StoredEvent[];
      // Row by row, so that rows past `maxBytes` are never read.
      const page: StoredEvent[] = [];
      let bytes = 0;
      for (const row of selectEvents.iterate({ task_id: id, after, limit }) as Iterable<StoredEvent>) {
        page.push(row);
        bytes += Buffer.byteLength(row.frame);
        if (bytes >= maxBytes) break;
      }
      return page;
    },

    async close() {
      closed = true;
      await checkpointer?.close();
      db.close();
    },
  };

  function toThread(row: unknown): Thread {
    const { rowid: _rowid, ...rest } = row as { rowid: number };
    return Thread.parse(rest);
  }

  // A cursor is the rowid of the last task on the page, so pages stay stable while tasks are added.
  function encodeCursor(rowid: number): string {
    return Buffer.from(`t${rowid}`).toString("base64url");
  }
  function decodeCursor(cursor: string): number {
    const decoded = Buffer.from(cursor, "base64url").toString();
    const match = /^t(\d{1,15})$/.exec(decoded);
    if (!match) throw new AgentkitError("bad_request", "Invalid cursor");
    return Number(match[1]);
  }
}

/**
 * Why the SQLite file could not be opened, said so that an operator can act: SQLite's own message
 * ("unable to open database file") names neither the file nor the cause. The usual cause is a data
 * dir the server's user cannot write (a bind mount owned by another uid).
 */
function cannotOpen(path: string, dataDir: string, error: unknown): string {
  const reason = error instanceof Error ? error.message : String(error);
  let hint = "";
  if (dataDir !== ":memory:") {
    try {
      accessSync(dataDir, constants.W_OK);
      if (existsSync(path)) accessSync(path, constants.R_OK | constants.W_OK);
    } catch {
      const uid = typeof process.getuid === "function" ? ` (uid ${process.getuid()})` : "";
      hint = `: this user${uid} cannot write ${existsSync(path) ? path : `the data dir ${dataDir}`} — give it that (chown, or a writable mount) or choose another --data-dir`;
    }
  }
  return `cannot open the SQLite database ${path} (${reason})${hint}`;
}
