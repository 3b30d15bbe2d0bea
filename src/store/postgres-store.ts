/**
 * The clustered TaskStore: PostgreSQL through Bun's built-in client (`Bun.SQL`), the same contract
 * as the SQLite store (`store.ts`), proved by the same conformance suite
 * (`test/store/conformance.ts`).
 *
 * - Every write that the contract makes conditional is one statement: a data-modifying CTE moves
 *   `tasks` (only from the states `src/tasks/state.ts` allows, only when `last_seq` is the one
 *   expected) and inserts the events off that row, so a write either lands whole or not at all, in
 *   one round trip. Under READ COMMITTED a concurrent writer of the same task waits for the row
 *   lock and then re-checks the condition against the committed row: one of two racing
 *   `finishTask` calls wins, the other writes nothing; two appends of the same seq cannot both land.
 * - Text a client or a model wrote (`input`, `output`) and the JSON objects (`metadata`, `error`)
 *   are `json` columns holding exactly the JSON text we wrote: PostgreSQL `text` cannot hold
 *   U+0000, JSON escapes it, and `json` (unlike `jsonb`) keeps the text as written, key order
 *   included. They are read back as text and parsed here, as the SQLite store does.
 * - Times are `timestamptz`, shown as `Date#toISOString()` (milliseconds, `Z`), like SQLite's.
 * - `row_id` (an identity column) orders tasks for listing: the cursor is the last `row_id` of a
 *   page, so pages stay stable while tasks are added.
 * - Cluster mode (`ClusterStore`, issue 9): `attempt` is the fencing token of a task's current run
 *   (+1 on every claim, `markRunning`, `claimNext` or `takeOver`); `appendEvents` and `finishTask`
 *   given a `fence` also require `attempt = fence`, in the same statement. `lease_owner` and
 *   `lease_expires_at` (the database's clock) hold the node running a task and until when;
 *   `cancel_requested` a client's cancel that the running node has to act on.
 * - Signals: one channel (`CLUSTER_CHANNEL`), compact text payloads (`formatSignal`). Appends and
 *   finishes that landed announce `e:<id>:<last_seq>` right after their commit, coalesced per node
 *   (`createAnnouncer`: why not inside the append's own statement). `listen` opens a connection of
 *   its own per call (`application_name` = `LISTEN_APPLICATION_NAME`); its stop function closes that
 *   connection without a round trip, so stop + `listen` again is how a caller replaces a LISTEN
 *   connection it suspects is half-open (its own `probe` signals stopped coming back).
 *
 * Durability: an append that returned is committed on the server (with its `synchronous_commit`).
 */
import { SQL, type ReservedSQL } from "bun";
import { AgentkitError } from "../errors.ts";
import { TaskStatus, Thread, type Task } from "../protocol/task.ts";
import { checkedTask, parseColumn } from "./task-row.ts";
import { sourcesOf, TRANSITIONS } from "../tasks/state.ts";
import type { Logger } from "../lib/logger.ts";
import {
  type Claim,
  type ClusterSignal,
  type ClusterStore,
  FencedError,
  newestWithin,
  resultAfter,
  seqRange,
  type Lease,
  type ListTasksQuery,
  type ListThreadsQuery,
  type NewTask,
  type NewWebhook,
  type Webhook,
  type WebhookEvent,
  type WebhookStatus,
  type ClaimedWebhook,
  webhookDestination,
  type PendingInput,
  type StoredEvent,
  type TaskOutcome,
  type TaskPage,
  type TaskStore,
} from "./store.ts";

/** The newest schema this binary knows; a database with a newer one is refused. */
export const POSTGRES_SCHEMA_VERSION = 8;

/**
 * Events one retention statement deletes at most (one short log's at least): logs that fit go in one
 * statement, a longer one's in ranges of this many (`pruneEvents`).
 */
const PRUNE_EVENTS = 10_000;

/** `pg_advisory_xact_lock` key held while migrating, so nodes starting together migrate once. */
const MIGRATION_LOCK = "7018134588412570996"; // "agentkit" as a 64-bit integer
/**
 * How long a ping waits for its answer before its connection is thought stuck and replaced: longer
 * than opening a connection takes (a few round trips), whatever a caller itself waits.
 */
const PING_DEADLINE_MS = 3000;

/** The statuses migration 1 allowed (frozen: a released migration never changes). */
const V1_STATUSES = ["queued", "running", "completed", "failed", "cancelled", "timed_out"].map((status) => `'${status}'`).join(", ");
/**
 * The statuses migration 3 allows (frozen, like V1_STATUSES: it was built from `TaskStatus.options`,
 * so a status added later would have changed a released migration's text without anyone noticing).
 * A new status needs a new migration that replaces the constraint.
 */
const V3_STATUSES = ["queued", "running", "waiting", "completed", "failed", "cancelled", "timed_out"].map((status) => `'${status}'`).join(", ");

export interface Migration {
  version: number;
  description: string;
  sql: string;
  /**
   * Index-only (every statement `CREATE INDEX <name> ON <table> …;`): applied one index at a time
   * as `CREATE INDEX CONCURRENTLY IF NOT EXISTS`, outside a transaction, so writes to the table go on
   * while it builds (a plain CREATE INDEX holds them for the whole build); its version is recorded
   * once every index is there and valid. Same indexes as the text says, built without the block.
   */
  concurrently?: true;
}

/**
 * Migrations, in order. Inline SQL, so the compiled binary carries them. Never edit a released one
 * (test/store/migrations.test.ts pins each one's text): a database that ran the old text never
 * runs it again. Add a new migration instead — or, for an index alone, an entry of
 * `POSTGRES_INDEXES`, which needs no schema version.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "tasks and events",
    sql: `
CREATE TABLE tasks (
  id               text PRIMARY KEY,
  row_id           bigint GENERATED ALWAYS AS IDENTITY UNIQUE, -- creation order: listing and its cursor
  owner            text NOT NULL,
  agent            text NOT NULL,
  input            json NOT NULL,  -- a JSON string (text cannot hold U+0000)
  metadata         json NOT NULL,  -- the object, as JSON text (key order kept)
  status           text NOT NULL CHECK (status IN (${V1_STATUSES})),
  stop_reason      text,
  output           json,           -- a JSON string, or NULL
  error            json,           -- {code, message, retryable}, or NULL
  total_steps      bigint NOT NULL DEFAULT 0,
  total_tokens     bigint NOT NULL DEFAULT 0,
  input_tokens     bigint NOT NULL DEFAULT 0,
  output_tokens    bigint NOT NULL DEFAULT 0,
  cost_usd         double precision,
  last_seq         bigint NOT NULL DEFAULT 0,
  pruned_through   bigint NOT NULL DEFAULT 0,
  created_at       timestamptz NOT NULL,
  started_at       timestamptz,
  finished_at      timestamptz,
  attempt          bigint NOT NULL DEFAULT 0, -- fencing token: +1 on every claim (queued → running)
  lease_owner      text,                      -- the node running the task (cluster mode)
  lease_expires_at timestamptz                -- its lease ends then unless renewed (cluster mode)
) WITH (fillfactor = 80); -- room for HOT updates: an append moves last_seq, which no index covers
CREATE INDEX tasks_status ON tasks (status, row_id);
CREATE INDEX tasks_owner ON tasks (owner, row_id);
-- Retention: ended tasks whose log is still there (last_seq stays out of it, see fillfactor).
CREATE INDEX tasks_prunable ON tasks (finished_at) WHERE pruned_through = 0 AND finished_at IS NOT NULL;
CREATE TABLE events (
  task_id text NOT NULL,
  seq     bigint NOT NULL CHECK (seq > 0),
  frame   text NOT NULL, -- the frame exactly as published
  PRIMARY KEY (task_id, seq)
);
`,
  },
  {
    version: 2,
    description: "cluster: cancel requests, claim and lease indexes",
    sql: `
ALTER TABLE tasks ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;
-- claimNext: the oldest queued task.
CREATE INDEX tasks_queued ON tasks (row_id) WHERE status = 'queued';
-- claimNext: running tasks whose lease expired (or that never had one: a single-node server's).
CREATE INDEX tasks_leases ON tasks (lease_expires_at) WHERE status = 'running';
`,
  },
  {
    version: 3,
    description: "threads, the waiting state, pending inputs, structured output, secrets",
    sql: `
ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check CHECK (status IN (${V3_STATUSES}));
ALTER TABLE tasks ADD COLUMN thread_id text, ADD COLUMN output_json json, ADD COLUMN wait_until timestamptz;
CREATE INDEX tasks_thread ON tasks (thread_id, row_id) WHERE thread_id IS NOT NULL;
CREATE INDEX tasks_waiting ON tasks (wait_until) WHERE status = 'waiting';
CREATE TABLE threads (
  id         text PRIMARY KEY,
  row_id     bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  owner      text NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE INDEX threads_owner ON threads (owner, row_id);
CREATE TABLE inputs (
  row_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  task_id    text NOT NULL,
  id         text NOT NULL,
  text       json NOT NULL, -- a JSON string (text cannot hold U+0000)
  sender     text NOT NULL,
  created_at timestamptz NOT NULL,
  UNIQUE (task_id, id)
);
CREATE TABLE secrets (
  name  text PRIMARY KEY,
  value bytea NOT NULL
);
`,
  },
  {
    version: 4,
    description: "webhooks: the task's webhook_url and the outbox",
    sql: `
ALTER TABLE tasks ADD COLUMN webhook_url text;
CREATE TABLE webhooks (
  id              text PRIMARY KEY,  -- webhook-id: the same on every attempt
  row_id          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  task_id         text NOT NULL,
  url             text NOT NULL,
  event           text NOT NULL,
  payload         text NOT NULL,     -- the body exactly as sent (JSON text: no U+0000)
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL,
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  last_error      text,
  created_at      timestamptz NOT NULL,
  delivered_at    timestamptz
);
CREATE INDEX webhooks_due ON webhooks (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhooks_task ON webhooks (task_id, row_id);
`,
  },
  {
    version: 5,
    description: "tasks in one status: a tenant's, newest first; a thread's (busy check, history)",
    sql: `
CREATE INDEX tasks_owner_status ON tasks (owner, status, row_id);
CREATE INDEX tasks_thread_status ON tasks (thread_id, status, row_id) WHERE thread_id IS NOT NULL;
`,
    // Released as an index-only migration; applied concurrently since (same indexes, no write block).
    concurrently: true,
  },
  {
    version: 6,
    description: "webhooks fair by destination: webhooks.destination and the due destinations",
    // `destination` (the URL's origin) is NULL until a claim takes the row in: rows written since,
    // and those pending from before. `next_due`: no later than the soonest next_attempt_at of the
    // destination's pending rows (NULL: none). Its indexes on webhooks are migration 7's.
    // `webhooks_due` (all due rows in time order) goes: no query needs it now, and the planner took
    // it for a destination's soonest rows, reading the rows of every destination due before them
    // (97,000 of a receiver that hangs: 20 ms a claim).
    sql: `
DROP INDEX webhooks_due;
ALTER TABLE webhooks ADD COLUMN destination text;
CREATE TABLE webhook_destinations (
  destination text PRIMARY KEY,
  next_due    timestamptz
);
CREATE INDEX webhook_destinations_due ON webhook_destinations (next_due) WHERE next_due IS NOT NULL;
`,
  },
  {
    version: 7,
    description: "webhooks fair by destination: a destination's due rows, the rows to take in",
    sql: `
CREATE INDEX webhooks_destination_due ON webhooks (destination, next_attempt_at, row_id) WHERE status = 'pending';
CREATE INDEX webhooks_intake ON webhooks (row_id) WHERE status = 'pending' AND destination IS NULL;
`,
    // The outbox keeps every webhook ever sent: built without holding its writes (task ends) meanwhile.
    concurrently: true,
  },
  {
    version: 8,
    description: "threads keep their task count and newest task",
    // Every read of a thread (GET /threads/:id, each task added to it, each row of GET /threads)
    // counted its tasks: the thread's whole tasks_thread range, 30,000 index entries (6-8 ms) for a
    // thread of 30,000 tasks, growing with it (tasks are never deleted). Kept on the row by a
    // trigger, so that every writer keeps it right — a node of the release before too, still running
    // through a rolling upgrade. The newest task is the one of the highest row_id, not the last
    // insert to commit: two nodes inserting into a thread at once take its row lock in either order.
    // The trigger is created before the count, so that the count (after its lock on tasks, which
    // waits for writers in flight) sees every task, and later ones are counted by the trigger.
    sql: `
ALTER TABLE threads ADD COLUMN task_count bigint NOT NULL DEFAULT 0, ADD COLUMN last_task_row_id bigint, ADD COLUMN last_task_id text;
CREATE FUNCTION agentkit_thread_task_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    IF OLD.thread_id IS NOT NULL THEN
      -- The thread's row first, then its newest task in a statement of its own: a task inserted into
      -- it meanwhile (its trigger holds the row) has committed by then, and that statement sees it.
      PERFORM 1 FROM threads WHERE id = OLD.thread_id FOR UPDATE;
      UPDATE threads SET task_count = task_count - 1, (last_task_row_id, last_task_id) = (
          SELECT tasks.row_id, tasks.id FROM tasks WHERE tasks.thread_id = OLD.thread_id ORDER BY tasks.row_id DESC LIMIT 1)
        WHERE id = OLD.thread_id;
    END IF;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    IF NEW.thread_id IS NOT NULL THEN
      UPDATE threads SET task_count = task_count + 1,
          last_task_id = CASE WHEN last_task_row_id IS NULL OR last_task_row_id < NEW.row_id THEN NEW.id ELSE last_task_id END,
          last_task_row_id = greatest(last_task_row_id, NEW.row_id)
        WHERE id = NEW.thread_id;
    END IF;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER tasks_thread_count AFTER INSERT OR DELETE ON tasks
  FOR EACH ROW EXECUTE FUNCTION agentkit_thread_task_count();
CREATE TRIGGER tasks_thread_move AFTER UPDATE OF thread_id ON tasks
  FOR EACH ROW WHEN (OLD.thread_id IS DISTINCT FROM NEW.thread_id) EXECUTE FUNCTION agentkit_thread_task_count();
UPDATE threads SET task_count = counted.tasks, last_task_row_id = counted.newest,
    last_task_id = (SELECT tasks.id FROM tasks WHERE tasks.row_id = counted.newest)
  FROM (SELECT thread_id, count(*) AS tasks, max(row_id) AS newest FROM tasks WHERE thread_id IS NOT NULL GROUP BY thread_id) AS counted
  WHERE threads.id = counted.thread_id;
`,
  },
];

export interface IndexSpec {
  /** The index's name: it exists (and is valid) or it is built. */
  name: string;
  /** What it serves, for logs and errors. */
  description: string;
  /** `CREATE INDEX <name> ON <table> …;` — created as CONCURRENTLY IF NOT EXISTS. */
  sql: string;
}

/**
 * Indexes added without a schema version, as the SQLite store adds its own (`INDEXES` there):
 * checked at every start, and built with CREATE INDEX CONCURRENTLY when missing (or dropped and
 * built again when an interrupted build left it INVALID). An index changes no query's result, so
 * it does not bump `POSTGRES_SCHEMA_VERSION`: an older agentkit still opens the database (a
 * rollback, a node not yet upgraded), where a new version would make it refuse to start.
 * An entry is released like a migration: never change its definition (a database that has the name
 * keeps the old one) — add an index under a new name.
 *
 * `tasks_thread_status`: commit 53244cc added it to migration 5 after d0ec4fa had released that
 * migration with `tasks_owner_status` alone, so a database migrated by d0ec4fa never got it.
 */
export const POSTGRES_INDEXES: readonly IndexSpec[] = [
  {
    name: "tasks_thread_status",
    description: "a thread's tasks in one status (busy check, history)",
    sql: "CREATE INDEX tasks_thread_status ON tasks (thread_id, status, row_id) WHERE thread_id IS NOT NULL;",
  },
];

/** The one LISTEN/NOTIFY channel of a cluster (per database). */
export const CLUSTER_CHANNEL = "agentkit";

/** `application_name` of the connection that migrates the schema at start (in `pg_stat_activity`). */
export const MIGRATE_APPLICATION_NAME = "agentkit-migrate";

/** `application_name` of the dedicated connection `listen` opens (find it in `pg_stat_activity`). */
export const LISTEN_APPLICATION_NAME = "agentkit-listen";

/**
 * A signal as its NOTIFY payload: `q` (queued), `c:<taskId>` (cancel), `i:<taskId>` (input), `w:<taskId>` (parked), `e:<taskId>:<lastSeq>`
 * (events), `p:<node>:<nonce>` (probe), `x:<JSON [key, reason]>` (cancel_call: the key holds
 * U+0000 separators, which JSON escapes). Task ids and node names may contain `:` (the last field
 * is found from the end); a probe's nonce may not. Throws on a payload PostgreSQL would refuse.
 */
export function formatSignal(signal: ClusterSignal): string {
  let payload: string;
  switch (signal.kind) {
    case "queued":
      payload = "q";
      break;
    case "cancel":
      payload = `c:${signal.taskId}`;
      break;
    case "input":
      payload = `i:${signal.taskId}`;
      break;
    case "parked":
      payload = `w:${signal.taskId}`;
      break;
    case "events":
      if (!Number.isSafeInteger(signal.lastSeq) || signal.lastSeq < 0) throw new Error(`invalid lastSeq ${signal.lastSeq}`);
      payload = `e:${signal.taskId}:${signal.lastSeq}`;
      break;
    case "probe":
      if (signal.nonce === "" || signal.nonce.includes(":")) throw new Error("a probe's nonce must be non-empty, without ':'");
      payload = `p:${signal.node}:${signal.nonce}`;
      break;
    case "cancel_call":
      payload = `x:${JSON.stringify([signal.key, signal.reason])}`;
      break;
  }
  // PostgreSQL refuses a payload of 8000 bytes or more (and text cannot hold U+0000).
  if (Buffer.byteLength(payload) >= 8000 || payload.includes("\u0000")) throw new Error("signal payload too long or not text");
  return payload;
}

/** A NOTIFY payload back as a signal; undefined for anything malformed (ignored by listeners). */
export function parseSignal(payload: string): ClusterSignal | undefined {
  if (payload === "q") return { kind: "queued" };
  const kind = payload.slice(0, 2);
  const rest = payload.slice(2);
  if (kind === "c:") return rest ? { kind: "cancel", taskId: rest } : undefined;
  if (kind === "i:") return rest ? { kind: "input", taskId: rest } : undefined;
  if (kind === "w:") return rest ? { kind: "parked", taskId: rest } : undefined;
  if (kind === "x:") return parseCallCancel(rest);
  if (kind !== "e:" && kind !== "p:") return undefined;
  const colon = rest.lastIndexOf(":");
  if (colon <= 0 || colon === rest.length - 1) return undefined;
  const head = rest.slice(0, colon);
  const tail = rest.slice(colon + 1);
  if (kind === "p:") return { kind: "probe", node: head, nonce: tail };
  if (!/^\d{1,15}$/.test(tail)) return undefined;
  return { kind: "events", taskId: head, lastSeq: Number(tail) };
}

function parseCallCancel(json: string): ClusterSignal | undefined {
  try {
    const value: unknown = JSON.parse(json);
    if (!Array.isArray(value) || value.length !== 2) return undefined;
    const [key, reason] = value as unknown[];
    return typeof key === "string" && key !== "" && typeof reason === "string" ? { kind: "cancel_call", key, reason } : undefined;
  } catch {
    return undefined;
  }
}

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database?sslmode=…` */
  url: string;
  /** Connections in the pool (default 10). */
  max?: number;
  /** `statement_timeout` of every connection in ms; 0 = none (default 30000). */
  statementTimeoutMs?: number;
  /** Seconds to wait for a connection to open (default 10). */
  connectionTimeoutS?: number;
  /** Seconds an idle connection stays open (default 60). */
  idleTimeoutS?: number;
  /** Where migrations say what they wait for (another node's migration, a table lock). */
  logger?: Logger;
  /** How migrating waits; the defaults suit a server (tests shorten them). */
  migration?: Partial<MigrationLimits>;
}

export interface MigrationLimits {
  /**
   * `lock_timeout` of a migration's transaction, ms (default 3000). While an ALTER TABLE waits for
   * its ACCESS EXCLUSIVE lock (behind a long reader), every other query of that table queues behind
   * it: this bounds that stall, well under a task's lease.
   */
  lockTimeoutMs: number;
  /** Tries of a migration that gave up on a lock before the start fails (default 5). */
  attempts: number;
  /** Pause before the 2nd try, ms, doubled for each next one up to 8x (default 1000). */
  backoffMs: number;
  /** How long a node waits for another node's migration before it gives up, ms (default 300000). */
  waitMs: number;
}

const MIGRATION_LIMITS: MigrationLimits = { lockTimeoutMs: 3000, attempts: 5, backoffMs: 1000, waitMs: 300_000 };

export interface PostgresTaskStore extends TaskStore, ClusterStore {
  /** The schema version the database had before this process migrated it (0: a new database). */
  readonly migratedFrom: number;
  close(): Promise<void>;
}

/** The URL without its password or query, for messages and logs. */
export function redactDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    const user = parsed.username ? `${parsed.username}@` : "";
    return `${parsed.protocol}//${user}${parsed.host}${parsed.pathname}`;
  } catch {
    return "(an invalid URL)";
  }
}

/** Opens the pool, checks the server is reachable, migrates the schema. Throws one clear line. */
export async function createPostgresStore(options: PostgresStoreOptions): Promise<PostgresTaskStore> {
  const shown = redactDatabaseUrl(options.url);
  let parsed: URL;
  try {
    parsed = new URL(options.url);
    if (!/^postgres(ql)?:$/.test(parsed.protocol)) throw new Error();
  } catch {
    throw new Error(`the database URL must be postgres://user:password@host:port/database (got ${shown})`);
  }
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ""));
  const connect = (max: number, applicationName: string, idleTimeoutS: number) =>
    new SQL({
      url: options.url,
      adapter: "postgres",
      // Bun lets PGDATABASE override the URL's database: the URL names the one to use.
      ...(database ? { database } : {}),
      max,
      connectionTimeout: options.connectionTimeoutS ?? 10,
      idleTimeout: idleTimeoutS,
      connection: { application_name: applicationName, statement_timeout: options.statementTimeoutMs ?? 30_000 },
    });
  const sql = connect(options.max ?? 10, "agentkit", options.idleTimeoutS ?? 60);
  // The LISTEN connection of each `listen()` is a client of its own (Bun gives it a dedicated
  // connection), so stopping that listener closes exactly that connection.
  const openListener = () => connect(1, LISTEN_APPLICATION_NAME, 0);
  // Health pings go on a connection of their own: through the pool, a pool busy with slow (but
  // answering) queries made a ping wait for a connection, and the database look unreachable.
  const openPinger = () => connect(1, "agentkit-ping", 60);
  let migratedFrom: number;
  // Migrating goes on a connection of its own: it holds a session-level advisory lock (released by
  // closing it, whatever happens) and CREATE INDEX CONCURRENTLY runs outside any transaction.
  const migrator = connect(1, MIGRATE_APPLICATION_NAME, 0);
  try {
    migratedFrom = await migrate(migrator, {
      ...MIGRATION_LIMITS,
      ...options.migration,
      statementTimeoutMs: options.statementTimeoutMs ?? 30_000,
      logger: options.logger,
    });
  } catch (error) {
    await migrator.close({ timeout: 0 }).catch(() => {});
    await sql.close({ timeout: 0 }).catch(() => {});
    throw new Error(`PostgreSQL at ${shown}: ${describeError(error, parsed.password)}`);
  }
  await migrator.close().catch(() => {});
  return { ...createStore(sql, openListener, openPinger), migratedFrom };
}

/** One line: the server's or Bun's message, its code, never the password. */
function describeError(error: unknown, password: string): string {
  const { message, code, errno } = error as { message?: unknown; code?: unknown; errno?: unknown };
  let line = String(message ?? error).replace(/\s+/g, " ").trim();
  const tag = typeof errno === "string" ? errno : typeof code === "string" ? code : undefined;
  if (tag && !line.includes(tag)) line += ` (${tag})`;
  if (password) line = line.split(decodeURIComponent(password)).join("***");
  return line;
}

type MigrateOptions = MigrationLimits & { statementTimeoutMs: number; logger?: Logger };

/** `migration 5 (tasks in one status: …)`: how errors and logs name a migration. */
function migrationName(migration: Migration): string {
  return `migration ${migration.version} (${migration.description})`;
}

/** The SQLSTATE of a server error (Bun puts it in `errno`), else undefined. */
function sqlState(error: unknown): string | undefined {
  const { errno, code } = (error ?? {}) as { errno?: unknown; code?: unknown };
  if (typeof errno === "string" && /^[0-9A-Z]{5}$/.test(errno)) return errno;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** An error of a named step: a statement timeout names the setting that bounds it. */
function stepError(step: string, error: unknown, options: MigrateOptions): Error {
  const state = sqlState(error);
  const message = String((error as { message?: unknown })?.message ?? error).replace(/\s+/g, " ").trim();
  if (state === "57014" && /statement timeout/.test(message)) {
    return new Error(
      `${step} was cancelled by statement_timeout after ${options.statementTimeoutMs} ms: a large table takes longer; ` +
        `raise AGENTKIT_DATABASE_STATEMENT_TIMEOUT_MS (0 = none) for this start (57014)`,
    );
  }
  return new Error(`${step} failed: ${message}${state && !message.includes(state) ? ` (${state})` : ""}`);
}

/** The statements of an index-only text, each `CREATE INDEX <name> ON <rest>`; throws on anything else. */
export function indexStatements(sql: string): { name: string; definition: string }[] {
  const lines = sql.split("\n").map((line) => line.trim()).filter((line) => line !== "" && !line.startsWith("--"));
  return lines.map((line) => {
    const match = /^CREATE INDEX ([a-z_][a-z0-9_]*) (ON [a-z_][a-z0-9_]* .+);$/.exec(line);
    if (!match) throw new Error(`not an index-only statement: ${line}`);
    return { name: match[1]!, definition: match[2]! };
  });
}

/** `valid`, `invalid` (a CONCURRENTLY build that did not finish) or `missing`. */
async function indexState(conn: ReservedSQL, name: string): Promise<"valid" | "invalid" | "missing"> {
  const [row] = await conn`SELECT i.indisvalid AS valid FROM pg_index i WHERE i.indexrelid = to_regclass(${name})`;
  return row === undefined ? "missing" : row.valid ? "valid" : "invalid";
}

/** Tables this schema has: the sessions holding locks on them are the ones a migration can wait for. */
const SCHEMA_TABLES = ["tasks", "events", "threads", "inputs", "secrets", "webhooks", "webhook_destinations", "schema_migrations"];

/** Best effort: the oldest transactions holding a lock on our tables, for the log and the error. */
async function lockHolders(conn: ReservedSQL): Promise<string> {
  try {
    const rows = await conn.unsafe(
      `SELECT a.pid, a.application_name, a.state,
              floor(extract(epoch FROM now() - a.xact_start))::integer AS open_s,
              string_agg(DISTINCT l.mode || ' on ' || c.relname, ', ') AS locks
         FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.granted AND l.pid <> pg_backend_pid() AND c.relname IN (${SCHEMA_TABLES.map((table) => `'${table}'`).join(", ")})
          AND pg_table_is_visible(c.oid)
        GROUP BY a.pid, a.application_name, a.state, a.xact_start
        ORDER BY a.xact_start NULLS LAST LIMIT 3`,
    );
    if (rows.length === 0) return "no session holds a lock on them now";
    return (rows as { pid: number; application_name: string; state: string; open_s: number | null; locks: string }[])
      .map((row) => `pid ${row.pid} (${row.application_name || "no application_name"}, ${row.state}${row.open_s === null ? "" : `, transaction open ${row.open_s} s`}; ${row.locks})`)
      .join("; ");
  } catch {
    return "the sessions holding them could not be read";
  }
}

/** Best effort: the session holding the migration lock, for the log and the error. */
async function migrationLockHolder(conn: ReservedSQL): Promise<string> {
  try {
    const [row] = await conn`
      SELECT a.pid, a.application_name, a.state, floor(extract(epoch FROM now() - a.query_start))::integer AS query_s, left(a.query, 120) AS query
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
       WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND (l.classid::bigint << 32) + l.objid::bigint = ${MIGRATION_LOCK}::bigint`;
    if (!row) return "its holder has just let it go";
    const query = String(row.query ?? "").replace(/\s+/g, " ").trim();
    return `held by pid ${row.pid} (${row.application_name || "no application_name"}, ${row.state}${row.query_s === null ? "" : ` for ${row.query_s} s`}${query ? `: ${query}` : ""})`;
  } catch {
    return "its holder could not be read";
  }
}

/** Retry pause before try `attempt + 1`: backoff, doubled each time, at most 8x. */
function backoff(options: MigrateOptions, attempt: number): number {
  return options.backoffMs * 2 ** Math.min(attempt - 1, 3);
}

/**
 * Builds an index concurrently unless it is there and valid: an INVALID one (a build that was
 * interrupted: a statement timeout, a crash, a deadlock) is dropped first, since IF NOT EXISTS would
 * keep it as it is. Runs under the migration lock, so no other node is building it meanwhile.
 *
 * No lock_timeout here: CONCURRENTLY takes SHARE UPDATE EXCLUSIVE, which reads and writes do not
 * queue behind, and its waits (for transactions older than the build) block nobody; giving up on
 * them would only throw the finished build away. statement_timeout bounds it. A deadlock (an older
 * agentkit waiting for the migration lock inside a transaction, whose snapshot the build waits for)
 * is tried again.
 */
async function ensureIndex(conn: ReservedSQL, step: string, name: string, definition: string, options: MigrateOptions): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      const state = await indexState(conn, name);
      if (state === "valid") return false;
      if (state === "invalid") {
        options.logger?.warn("PostgreSQL: an index left INVALID by an interrupted build is dropped and built again", { index: name, step });
        await conn.unsafe(`DROP INDEX CONCURRENTLY IF EXISTS ${name}`);
      }
      const started = performance.now();
      await conn.unsafe(`CREATE INDEX CONCURRENTLY IF NOT EXISTS ${name} ${definition}`);
      if ((await indexState(conn, name)) !== "valid") throw new Error(`index ${name} is not valid after its build`);
      options.logger?.info("PostgreSQL: index built concurrently", { index: name, step, ms: Math.round(performance.now() - started) });
      return true;
    } catch (error) {
      const state = sqlState(error);
      if ((state === "40P01" || state === "55P03") && attempt < options.attempts) {
        options.logger?.warn("PostgreSQL: an index build gave up on a lock; it is tried again", {
          index: name, step, attempt, retry_in_ms: backoff(options, attempt), holders: await lockHolders(conn),
        });
        await Bun.sleep(backoff(options, attempt));
        continue;
      }
      throw stepError(`${step}: CREATE INDEX CONCURRENTLY ${name}`, error, options);
    }
  }
}

/**
 * Runs one migration and records its version. An index-only one builds its indexes concurrently;
 * any other runs in one transaction whose `lock_timeout` bounds how long it waits for a table lock
 * (and so how long the queries queued behind that wait stall): given up, it is tried again later,
 * `attempts` times in all, each wait logged with the sessions holding the locks.
 */
async function runMigration(conn: ReservedSQL, migration: Migration, options: MigrateOptions): Promise<void> {
  const step = migrationName(migration);
  if (migration.concurrently) {
    for (const index of indexStatements(migration.sql)) await ensureIndex(conn, step, index.name, index.definition, options);
    await conn`INSERT INTO schema_migrations (version, description) VALUES (${migration.version}, ${migration.description})`;
    return;
  }
  for (let attempt = 1; ; attempt++) {
    try {
      await conn.begin(async (tx) => {
        await tx.unsafe(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(options.lockTimeoutMs))}`);
        await tx.unsafe(migration.sql);
        await tx`INSERT INTO schema_migrations (version, description) VALUES (${migration.version}, ${migration.description})`;
      });
      return;
    } catch (error) {
      if (sqlState(error) !== "55P03") throw stepError(step, error, options);
      const holders = await lockHolders(conn);
      if (attempt >= options.attempts) {
        throw new Error(
          `${step} could not lock its tables: ${attempt} tries each gave up after ${options.lockTimeoutMs} ms (its lock_timeout, ` +
            `so that the queries queued behind it do not stall); ${holders}. End those transactions, then start again (55P03)`,
        );
      }
      const wait = backoff(options, attempt);
      options.logger?.warn("PostgreSQL: a migration waits for a lock on its tables; it is tried again", {
        migration: step, attempt, of: options.attempts, lock_timeout_ms: options.lockTimeoutMs, retry_in_ms: wait, holders,
      });
      await Bun.sleep(wait);
    }
  }
}

/** The schema version (0: none yet) and the indexes of `POSTGRES_INDEXES` not there and valid. */
async function schemaState(conn: ReservedSQL): Promise<{ version: number; missing: IndexSpec[] }> {
  const [exists] = await conn`SELECT to_regclass('schema_migrations') IS NOT NULL AS yes`;
  if (!exists.yes) return { version: 0, missing: [...POSTGRES_INDEXES] };
  const [row] = await conn`SELECT coalesce(max(version), 0)::integer AS version FROM schema_migrations`;
  const missing: IndexSpec[] = [];
  for (const index of POSTGRES_INDEXES) if ((await indexState(conn, index.name)) !== "valid") missing.push(index);
  return { version: Number(row.version), missing };
}

function refuseNewer(version: number): void {
  if (version > POSTGRES_SCHEMA_VERSION) {
    throw new Error(`database schema version ${version} is newer than this agentkit's (${POSTGRES_SCHEMA_VERSION}); upgrade agentkit`);
  }
}

/**
 * Takes the migration lock (session-level, on this connection), polling `pg_try_advisory_lock`:
 * a waiter holds no statement open, so it has no snapshot a CONCURRENTLY build would wait for, and
 * its wait is bounded by `waitMs` rather than by statement_timeout. Logs what it waits for once
 * the wait passes a second. With `optional` (only these indexes to build), a lock held by another node
 * is not waited for (false): the node starts without them.
 */
async function takeMigrationLock(conn: ReservedSQL, options: MigrateOptions, optional: readonly IndexSpec[] | undefined): Promise<boolean> {
  const started = performance.now();
  let told = false;
  for (let pause = 50; ; pause = Math.min(pause * 2, 500)) {
    const [row] = await conn`SELECT pg_try_advisory_lock(${MIGRATION_LOCK}::bigint) AS taken`;
    const waited = performance.now() - started;
    if (row.taken) {
      if (told) options.logger?.info("PostgreSQL: the other node's migration is over; this node goes on", { waited_ms: Math.round(waited) });
      return true;
    }
    if (optional) {
      options.logger?.info("PostgreSQL: another node holds the migration lock; the indexes it may be building are left to it", {
        missing: optional.map((index) => index.name).join(", "), lock: await migrationLockHolder(conn),
      });
      return false;
    }
    if (waited >= options.waitMs) {
      throw new Error(
        `gave up after ${Math.round(waited / 1000)} s waiting for another node's schema migration: the migration lock ` +
          `(pg_advisory_lock ${MIGRATION_LOCK}) is ${await migrationLockHolder(conn)}. If that session is stuck, end it ` +
          `(SELECT pg_terminate_backend(pid)) and start again`,
      );
    }
    if (!told && waited >= 1000) {
      told = true;
      options.logger?.warn("PostgreSQL: waiting for another node's schema migration", {
        lock: await migrationLockHolder(conn), gives_up_after_s: Math.round(options.waitMs / 1000),
      });
    }
    await Bun.sleep(pause);
  }
}

/**
 * Brings the schema to `POSTGRES_SCHEMA_VERSION` and builds the indexes of `POSTGRES_INDEXES` that
 * are missing, under an advisory lock, so nodes that start at once migrate once; refuses a schema
 * newer than this binary's. Returns the version found.
 *
 * Each migration is its own transaction (with its version row), so one that fails leaves the
 * database at the version before it, and a start that finds nothing to do takes no lock at all.
 */
async function migrate(client: SQL, options: MigrateOptions): Promise<number> {
  const conn = await client.reserve();
  try {
    const found = await schemaState(conn);
    refuseNewer(found.version);
    if (found.version === POSTGRES_SCHEMA_VERSION && found.missing.length === 0) return found.version;
    // Only indexes to build: a node that finds another migrating starts without waiting for it.
    const taken = await takeMigrationLock(conn, options, found.version === POSTGRES_SCHEMA_VERSION ? found.missing : undefined);
    if (!taken) return found.version;
    try {
      await conn`CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY,
        description text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`;
      // Read again under the lock: another node may have migrated meanwhile.
      const current = (await schemaState(conn)).version;
      refuseNewer(current);
      for (const migration of MIGRATIONS) {
        if (migration.version > current) await runMigration(conn, migration, options);
      }
      for (const index of POSTGRES_INDEXES) {
        await ensureIndex(conn, `index ${index.name} (${index.description})`, index.name, indexStatements(index.sql)[0]!.definition, options);
      }
      return current;
    } finally {
      await conn`SELECT pg_advisory_unlock(${MIGRATION_LOCK}::bigint)`.catch(() => {});
    }
  } finally {
    await conn.release().catch(() => {});
  }
}

/** What every read selects: the JSON columns as their text. */
const COLUMNS = `id, row_id, owner, agent, input::text AS input, metadata::text AS metadata, status, stop_reason,
  output::text AS output, error::text AS error, total_steps, total_tokens, input_tokens, output_tokens, cost_usd,
  last_seq, pruned_through, created_at, started_at, finished_at, thread_id, output_json::text AS output_json, wait_until`;

interface TaskRow {
  id: string;
  row_id: string;
  owner: string;
  agent: string;
  input: string;
  metadata: string;
  status: string;
  stop_reason: string | null;
  output: string | null;
  error: string | null;
  total_steps: string;
  total_tokens: string;
  input_tokens: string;
  output_tokens: string;
  cost_usd: number | null;
  last_seq: string;
  pruned_through: string;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  thread_id: string | null;
  output_json: string | null;
  wait_until: Date | null;
}

/** A row as the API's task, checked at the boundary like SQLite's (`checkedTask`): a bad row is an error, not garbage. */
function toTask(row: TaskRow): Task {
  const iso = (date: Date | null) => (date === null ? null : date.toISOString());
  const json = (column: string, text: string | null) => (text === null ? null : parseColumn(row.id, column, text));
  return checkedTask({
    id: row.id,
    owner: row.owner,
    agent: row.agent,
    input: json("input", row.input) as string,
    metadata: json("metadata", row.metadata) as Task["metadata"],
    status: row.status as Task["status"],
    stop_reason: row.stop_reason as Task["stop_reason"],
    output: json("output", row.output) as string | null,
    error: json("error", row.error) as Task["error"],
    total_steps: Number(row.total_steps),
    total_tokens: Number(row.total_tokens),
    input_tokens: Number(row.input_tokens),
    output_tokens: Number(row.output_tokens),
    cost_usd: row.cost_usd === null ? null : Number(row.cost_usd),
    thread_id: row.thread_id,
    output_json: json("output_json", row.output_json),
    wait_until: iso(row.wait_until),
    last_seq: Number(row.last_seq),
    pruned_through: Number(row.pruned_through),
    created_at: iso(row.created_at) as string,
    started_at: iso(row.started_at),
    finished_at: iso(row.finished_at),
  });
}

/**
 * Threads with their task count and newest task (the form `getThread` and `listThreads` return),
 * kept on the row by migration 8's trigger: reading a thread reads none of its tasks.
 */
const THREAD_COLUMNS = "threads.id, threads.row_id, threads.owner, threads.created_at, threads.task_count, threads.last_task_id";

function toThread(row: { id: string; owner: string; created_at: Date; task_count: number; last_task_id: string | null }): Thread {
  return Thread.parse({
    id: row.id,
    owner: row.owner,
    created_at: row.created_at.toISOString(),
    task_count: Number(row.task_count),
    last_task_id: row.last_task_id,
  });
}

/**
 * Announces stored events (`e:<id>:<lastSeq>`) right after their write committed, coalesced: at most
 * one NOTIFY statement of this store is in flight, and what is announced meanwhile goes out in the
 * next one, once per task (its highest `lastSeq`).
 *
 * Not `pg_notify` inside the append itself: PostgreSQL serialises the commits of all transactions
 * that notify (a database-wide lock held through the commit, WAL flush included), so notifying in
 * every append cut the store's events/s by 40–70 % with the WAL flush not even synced (tests run
 * `fsync=off`); with `synchronous_commit` it would serialise every append's fsync. Here a node's
 * announcements take that lock once per batch, off the appends' path. An announcement is a hint:
 * one lost in a crash between the commit and its NOTIFY costs a watcher only its next catch-up.
 */
function createAnnouncer(sql: SQL): { announce(taskId: string, lastSeq: number): void; drain(): Promise<void> } {
  let pending = new Map<string, number>();
  let flushing: Promise<void> | undefined;
  async function flush(): Promise<void> {
    try {
      while (pending.size > 0) {
        const batch = pending;
        pending = new Map();
        const payloads = [...batch].map(([taskId, lastSeq]) => `e:${taskId}:${lastSeq}`);
        await sql`SELECT pg_notify(${CLUSTER_CHANNEL}, payload)::text AS notified
                  FROM unnest(${sql.array(payloads, "TEXT")}::text[]) AS payload`.catch(() => {
          // A hint that could not be sent (the database is unreachable, the store is closing): the
          // watchers catch up from the log when their connection comes back.
        });
      }
    } finally {
      flushing = undefined;
    }
  }
  return {
    announce(taskId, lastSeq) {
      if ((pending.get(taskId) ?? -1) < lastSeq) pending.set(taskId, lastSeq);
      // After the current turn of the event loop's microtasks, so appends completing together share a statement.
      flushing ??= Promise.resolve().then(flush);
    },
    drain: () => flushing ?? Promise.resolve(),
  };
}

const WEBHOOK_COLUMNS = "id, task_id, url, event, payload, attempts, next_attempt_at, status, last_error, created_at, delivered_at";

interface WebhookRow {
  id: string;
  task_id: string;
  url: string;
  event: string;
  payload: string;
  attempts: number;
  next_attempt_at: Date;
  status: string;
  last_error: string | null;
  created_at: Date;
  delivered_at: Date | null;
}

function toWebhook(row: WebhookRow): Webhook {
  return {
    id: row.id,
    taskId: row.task_id,
    url: row.url,
    event: row.event as WebhookEvent,
    payload: row.payload,
    attempts: Number(row.attempts),
    nextAttemptAt: row.next_attempt_at,
    status: row.status as WebhookStatus,
    lastError: row.last_error,
    createdAt: row.created_at,
    deliveredAt: row.delivered_at,
  };
}

/** Rows a claim takes in (see `intakeWebhooks`) before it claims; the delivery worker takes in a backlog itself. */
const INTAKE_PER_CLAIM = 64;
/** Batches of due destinations one claim locks at most. */
const CLAIM_ROUNDS = 4;

/**
 * Takes up to `limit` rows written since (oldest first) in: each gets its destination, and its
 * destination's next_due is lowered to its soonest (an upsert, which waits for a claim holding the
 * destination and lowers what that claim left). Rows another node is taking in are skipped.
 * Destinations are upserted in name order, so two nodes taking in at once cannot deadlock.
 */
async function intake(tx: SQL, limit: number): Promise<number> {
  const rows: { id: string; url: string; next_attempt_at: Date }[] = await tx`
    SELECT id, url, next_attempt_at FROM webhooks WHERE status = 'pending' AND destination IS NULL
    ORDER BY row_id LIMIT ${limit} FOR UPDATE SKIP LOCKED`;
  if (rows.length === 0) return 0;
  const destinations = rows.map((row) => webhookDestination(row.url));
  const soonest = new Map<string, Date>();
  rows.forEach((row, index) => {
    const due = soonest.get(destinations[index]!);
    if (due === undefined || row.next_attempt_at < due) soonest.set(destinations[index]!, row.next_attempt_at);
  });
  const names = [...soonest.keys()].sort();
  await tx`
    WITH taken AS (
      UPDATE webhooks SET destination = given.destination
      FROM unnest(${rows.map((row) => row.id)}::text[], ${destinations}::text[]) AS given(id, destination)
      WHERE webhooks.id = given.id
    )
    INSERT INTO webhook_destinations (destination, next_due)
    SELECT * FROM unnest(${names}::text[], ${names.map((name) => soonest.get(name)!)}::timestamptz[]) ORDER BY 1
    ON CONFLICT (destination) DO UPDATE SET next_due = least(webhook_destinations.next_due, excluded.next_due)`;
  return rows.length;
}

function createStore(sql: SQL, openListener: () => SQL, openPinger: () => SQL): TaskStore & ClusterStore & { close(): Promise<void> } {
  let pinger: SQL | undefined;
  let pinging: Promise<boolean> | undefined;
  /** A ping's answer, on a connection of its own; unanswered within PING_DEADLINE_MS, that connection is replaced. */
  const pingOnce = async (): Promise<boolean> => {
    const connection = (pinger ??= openPinger());
    const query = connection`SELECT 1 AS ok`;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => {
        resolve(false);
        try {
          query.cancel();
        } catch {}
        // Unanswered: the connection may be half-open (after a partition it can stay stuck until
        // the OS gives up on it); the next ping dials a new one.
        if (pinger === connection) pinger = undefined;
        connection.close({ timeout: 0 }).catch(() => {});
      }, PING_DEADLINE_MS);
    });
    try {
      return await Promise.race([query.then((rows) => Number(rows[0]?.ok) === 1, () => false), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  };
  const columns = () => sql.unsafe(COLUMNS);
  /** `status IN (…)`: the states the state machine allows `to` to be reached from. */
  const from = (to: TaskStatus) => sql.unsafe(`status IN (${sourcesOf(to).map((status) => `'${status}'`).join(", ")})`);
  /** `status IN (…)`: the states that are not terminal; a terminal task's log ends with its result. */
  const open = () =>
    sql.unsafe(`status IN (${TaskStatus.options.filter((status) => TRANSITIONS[status].length > 0).map((status) => `'${status}'`).join(", ")})`);
  /** A string as a JSON literal for a `json` column (sent as text, so Bun does not encode it again). */
  const jsonText = (value: unknown) => (value === null ? null : JSON.stringify(value));
  let closing: Promise<void> | undefined;
  const announcer = createAnnouncer(sql);
  /** Stops every listener still open (on close). */
  const listeners = new Set<() => Promise<void>>();
  /** A lease length in whole milliseconds (added to the database's now()). */
  const leaseLength = (ms: number) => Math.max(0, Math.round(ms));
  /** After a fenced write changed nothing: `FencedError` when the task's attempt moved on (it never goes back). */
  async function checkFence(id: string, fence: number | undefined): Promise<void> {
    if (fence === undefined) return;
    const [row] = await sql`SELECT attempt FROM tasks WHERE id = ${id}`;
    if (row && Number(row.attempt) !== fence) throw new FencedError(id, fence);
  }
  /**
   * The columns of webhooks to write off a moved task row (`moved`: id, webhook_url), for an
   * `INSERT … SELECT … FROM moved, unnest(…)`: '' is a webhook without a url (the task's own).
   */
  const webhookArrays = (webhooks: readonly NewWebhook[] | undefined) => {
    const list = webhooks ?? [];
    return {
      ids: sql.array(list.map((webhook) => webhook.id), "TEXT"),
      urls: sql.array(list.map((webhook) => webhook.url ?? ""), "TEXT"),
      events: sql.array(list.map((webhook) => webhook.event), "TEXT"),
      payloads: sql.array(list.map((webhook) => webhook.payload), "TEXT"),
      created: sql.array(list.map((webhook) => webhook.createdAt.toISOString()), "TEXT"),
    };
  };
  const leaseArrays = (leases: readonly Lease[]) => [
    sql.array(leases.map((lease) => lease.taskId), "TEXT"),
    sql.array(leases.map((lease) => lease.attempt), "BIGINT"),
  ];

  return {
    async createTask(task: NewTask) {
      const [row] = await sql`
        INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at, thread_id, webhook_url)
        VALUES (${task.id}, ${task.owner}, ${task.agent}, ${jsonText(task.input)}::text::json,
                ${jsonText(task.metadata)}::text::json, 'queued', ${task.createdAt}, ${task.threadId ?? null}, ${task.webhookUrl ?? null})
        RETURNING ${columns()}`;
      return toTask(row);
    },

    async getTask(id) {
      const [row] = await sql`SELECT ${columns()} FROM tasks WHERE id = ${id}`;
      return row ? toTask(row) : undefined;
    },

    async listTasks(query: ListTasksQuery): Promise<TaskPage> {
      const conditions: string[] = [];
      const values: unknown[] = [];
      const param = (value: unknown) => `$${values.push(value)}`;
      // The status is written into the statement (one of seven, checked): each gets a plan of its own.
      // As a parameter, the generic plan PostgreSQL may prefer after five runs is made for the average
      // status — a walk of every task newest first — and a page of a status few tasks have (or none)
      // read them all (10,500 entries a page of 'cancelled' among 7,500 tasks).
      if (query.status) conditions.push(`status = '${TaskStatus.parse(query.status)}'`);
      if (query.owner !== undefined) conditions.push(`owner = ${param(query.owner)}`);
      if (query.cursor !== undefined) conditions.push(`row_id < ${param(decodeCursor(query.cursor))}::bigint`);
      const where = conditions.length ? `WHERE ${conditions.join(" AND ")}` : "";
      const rows: TaskRow[] = await sql.unsafe(
        `SELECT ${COLUMNS} FROM tasks ${where} ORDER BY row_id DESC LIMIT ${param(query.limit + 1)}::integer`,
        values,
      );
      const page = rows.slice(0, query.limit);
      const last = page.at(-1);
      return {
        tasks: page.map(toTask),
        nextCursor: rows.length > query.limit && last ? encodeCursor(last.row_id) : null,
        cursors: page.map((row) => encodeCursor(row.row_id)),
      };
    },

    async tasksWithStatus(wanted) {
      if (wanted.length === 0) return [];
      const rows: TaskRow[] = await sql`
        SELECT ${columns()} FROM tasks WHERE status = ANY(${sql.array([...wanted], "TEXT")}::text[]) ORDER BY row_id`;
      return rows.map(toTask);
    },

    async markRunning(id, startedAt) {
      const result = await sql`
        UPDATE tasks SET status = 'running', started_at = coalesce(started_at, ${startedAt}), attempt = attempt + 1, wait_until = NULL
        WHERE id = ${id} AND ${from("running")}`;
      return result.count === 1;
    },

    async waitTask(id, waitUntil, fence, webhooks, totals) {
      const hooks = webhookArrays(webhooks);
      const steps = totals?.steps ?? null;
      const [row] = await sql`
        WITH moved AS (
          UPDATE tasks SET status = 'waiting', wait_until = ${waitUntil}, lease_owner = NULL, lease_expires_at = NULL,
            total_steps = coalesce(${steps}::bigint, total_steps),
            input_tokens = coalesce(${totals?.inputTokens ?? null}::bigint, input_tokens),
            output_tokens = coalesce(${totals?.outputTokens ?? null}::bigint, output_tokens),
            total_tokens = coalesce(${totals ? totals.inputTokens + totals.outputTokens : null}::bigint, total_tokens),
            cost_usd = CASE WHEN ${steps}::bigint IS NULL THEN cost_usd ELSE ${totals?.costUsd ?? null}::double precision END
          WHERE id = ${id} AND ${from("waiting")} AND (${fence ?? null}::bigint IS NULL OR attempt = ${fence ?? null}::bigint)
          RETURNING id, webhook_url
        ), hooks AS (
          INSERT INTO webhooks (id, task_id, url, event, payload, next_attempt_at, created_at)
          SELECT hook.id, moved.id, coalesce(nullif(hook.url, ''), moved.webhook_url), hook.event, hook.payload,
            hook.created_at::timestamptz, hook.created_at::timestamptz
          FROM moved, unnest(${hooks.ids}::text[], ${hooks.urls}::text[], ${hooks.events}::text[], ${hooks.payloads}::text[],
                             ${hooks.created}::text[]) AS hook(id, url, event, payload, created_at)
          WHERE coalesce(nullif(hook.url, ''), moved.webhook_url) IS NOT NULL
        )
        SELECT count(*)::integer AS moved FROM moved`;
      if (Number(row.moved) === 1) return true;
      await checkFence(id, fence);
      return false;
    },

    async appendWhileWaiting(id, events, requeue) {
      if (events.length === 0) return false;
      const { first, last } = seqRange(id, events);
      const result = await sql`
        WITH moved AS (
          UPDATE tasks SET last_seq = ${last},
            status = CASE WHEN ${requeue}::boolean THEN 'queued' ELSE status END,
            wait_until = CASE WHEN ${requeue}::boolean THEN NULL ELSE wait_until END
          WHERE id = ${id} AND status = 'waiting' AND last_seq = ${first - 1}
          RETURNING id
        )
        INSERT INTO events (task_id, seq, frame)
        SELECT moved.id, event.seq, event.frame
        FROM moved, unnest(${sql.array(events.map((event) => event.seq), "BIGINT")}::bigint[],
                           ${sql.array(events.map((event) => event.frame), "TEXT")}::text[]) AS event(seq, frame)`;
      if (result.count !== events.length) return false;
      announcer.announce(id, last);
      return true;
    },

    async expiredWaits(now, limit) {
      const rows: TaskRow[] = await sql`
        SELECT ${columns()} FROM tasks WHERE status = 'waiting' AND wait_until < ${now} ORDER BY wait_until LIMIT ${limit}`;
      return rows.map(toTask);
    },

    async addInput(taskId, input: PendingInput) {
      const result = await sql`
        INSERT INTO inputs (task_id, id, text, sender, created_at)
        SELECT ${taskId}, ${input.id}, ${jsonText(input.text)}::text::json, ${input.by}, ${input.createdAt}
        FROM tasks WHERE id = ${taskId} AND status IN ('queued', 'running', 'waiting')`;
      return result.count === 1;
    },

    async pendingInputCount(taskId) {
      const [row] = await sql`SELECT count(*)::integer AS count FROM inputs WHERE task_id = ${taskId}`;
      return Number(row.count);
    },

    async pendingInputs(taskId) {
      const rows: { id: string; text: string; sender: string; created_at: Date }[] = await sql`
        SELECT id, text::text AS text, sender, created_at FROM inputs WHERE task_id = ${taskId} ORDER BY row_id`;
      return rows.map((row) => ({ id: row.id, text: JSON.parse(row.text) as string, by: row.sender, createdAt: row.created_at }));
    },

    async deleteInputs(taskId, ids) {
      if (ids.length === 0) return;
      await sql`DELETE FROM inputs WHERE task_id = ${taskId} AND id = ANY(${sql.array([...ids], "TEXT")}::text[])`;
    },

    async createThread(thread) {
      await sql.begin(async (tx) => {
        await tx`INSERT INTO threads (id, owner, created_at) VALUES (${thread.id}, ${thread.owner}, ${thread.createdAt})`;
        if (thread.adopt !== undefined) await tx`UPDATE tasks SET thread_id = ${thread.id} WHERE id = ${thread.adopt} AND owner = ${thread.owner} AND thread_id IS NULL`;
      });
      const [row] = await sql`SELECT ${sql.unsafe(THREAD_COLUMNS)} FROM threads WHERE id = ${thread.id}`;
      return toThread(row);
    },

    async getThread(id) {
      const [row] = await sql`SELECT ${sql.unsafe(THREAD_COLUMNS)} FROM threads WHERE id = ${id}`;
      return row ? toThread(row) : undefined;
    },

    async listThreads(query: ListThreadsQuery) {
      const conditions: string[] = [];
      const values: unknown[] = [];
      const param = (value: unknown) => `$${values.push(value)}`;
      if (query.owner !== undefined) conditions.push(`owner = ${param(query.owner)}`);
      if (query.cursor !== undefined) conditions.push(`row_id < ${param(decodeCursor(query.cursor))}::bigint`);
      const where = conditions.length ? `WHERE ${conditions.join(" AND ")}` : "";
      const rows = await sql.unsafe(`SELECT ${THREAD_COLUMNS} FROM threads ${where} ORDER BY row_id DESC LIMIT ${param(query.limit + 1)}::integer`, values);
      const page = rows.slice(0, query.limit);
      const last = page.at(-1);
      return { threads: page.map(toThread), nextCursor: rows.length > query.limit && last ? encodeCursor(String(last.row_id)) : null };
    },

    async threadTasks(threadId, query) {
      if (query.statuses?.length === 0) return [];
      const values: unknown[] = [];
      const param = (value: unknown) => `$${values.push(value)}`;
      const conditions = [`thread_id = ${param(threadId)}`];
      if (query.before !== undefined) conditions.push(`row_id < (SELECT row_id FROM tasks WHERE id = ${param(query.before)})`);
      const limit = param(query.limit);
      const walk = (status?: string) =>
        `SELECT * FROM tasks WHERE ${[...conditions, ...(status ? [`status = ${status}`] : [])].join(" AND ")} ORDER BY row_id DESC LIMIT ${limit}::integer`;
      // With statuses, each is its own newest-first walk of tasks_thread_status (thread_id, status,
      // row_id), merged: 'status IN ($2, $3, $4)' is prepared once, and its generic plan (PostgreSQL's
      // after five runs) walked tasks_thread instead, reading every task of the thread to test its
      // status — the busy check of each new task in a 30,000-task thread read 30,000 rows (72 ms
      // alone, 300–600 ms while tasks ran), to find none or a few.
      const statuses = query.statuses ? [...new Set(query.statuses)].map((status) => param(status)) : [];
      const newest =
        statuses.length === 0
          ? walk()
          : statuses.length === 1
            ? walk(statuses[0])
            : `SELECT * FROM (${statuses.map((status) => `(${walk(status)})`).join(" UNION ALL ")}) AS walks ORDER BY row_id DESC LIMIT ${limit}::integer`;
      if (query.maxChars === undefined) {
        const rows: TaskRow[] = await sql.unsafe(`SELECT ${COLUMNS} FROM (${newest}) AS newest ORDER BY row_id`, values);
        return rows.map(toTask);
      }
      // Only rows that may fit are sent: those whose newer rows hold at most maxChars by a lower
      // bound on their length read from the stored JSON text's size (a string of n UTF-16 units is
      // at most 6n + 2 bytes of JSON), which never unescapes it (U+0000 and lone surrogates cannot
      // be text in PostgreSQL). The exact cut, on the strings as read, is the SQLite store's.
      const atLeast = (column: string) => `coalesce((octet_length(${column}::text) - 2) / 6, 0)`;
      const rows: TaskRow[] = await sql.unsafe(
        `SELECT ${COLUMNS} FROM (
           SELECT *, coalesce(sum(${atLeast("input")} + ${atLeast("output")})
             OVER (ORDER BY row_id DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS newer_chars
           FROM (${newest}) AS newest
         ) AS sized WHERE newer_chars <= ${param(query.maxChars)}::bigint ORDER BY row_id`,
        values,
      );
      return newestWithin(rows.map(toTask).reverse(), query.maxChars).reverse();
    },

    async secret(name) {
      const fresh = crypto.getRandomValues(new Uint8Array(32));
      await sql`INSERT INTO secrets (name, value) VALUES (${name}, ${fresh}) ON CONFLICT (name) DO NOTHING`;
      const [row] = await sql`SELECT value FROM secrets WHERE name = ${name}`;
      return new Uint8Array(row.value);
    },

    async appendEvents(id, events, fence) {
      if (events.length === 0) return;
      const { first, last } = seqRange(id, events);
      // One statement, so one transaction: the conditional move of last_seq, then the inserts off it.
      // Only a task that runs (or is about to) takes a run's events: a terminal task's log ends with
      // its result, and a waiting task's log grows only by decisions (`appendWhileWaiting`), as in SQLite.
      const result = await sql`
        WITH moved AS (
          UPDATE tasks SET last_seq = ${last}
          WHERE id = ${id} AND last_seq = ${first - 1} AND status IN ('queued', 'running')
            AND (${fence ?? null}::bigint IS NULL OR attempt = ${fence ?? null}::bigint)
          RETURNING id
        )
        INSERT INTO events (task_id, seq, frame)
        SELECT moved.id, event.seq, event.frame
        FROM moved, unnest(${sql.array(events.map((event) => event.seq), "BIGINT")}::bigint[],
                           ${sql.array(events.map((event) => event.frame), "TEXT")}::text[]) AS event(seq, frame)`;
      if (result.count !== events.length) {
        await checkFence(id, fence);
        throw new AgentkitError("conflict", `Event ${first} of task ${id} is not the next in sequence (or the task has ended)`);
      }
      announcer.announce(id, last);
    },

    async finishTask(id, outcome: TaskOutcome, seq, frame, fence, webhooks, before = []) {
      const hooks = webhookArrays(webhooks);
      const prev = (before.length > 0 ? resultAfter(id, before, seq) : seq) - 1;
      const result = await sql`
        WITH moved AS (
          UPDATE tasks SET status = ${outcome.status}, stop_reason = ${outcome.stopReason},
            output = ${jsonText(outcome.output)}::text::json, error = ${jsonText(outcome.error)}::text::json,
            total_steps = ${outcome.totalSteps}, total_tokens = ${outcome.inputTokens + outcome.outputTokens},
            input_tokens = ${outcome.inputTokens}, output_tokens = ${outcome.outputTokens},
            cost_usd = ${outcome.costUsd}::double precision, finished_at = ${outcome.finishedAt}, last_seq = ${seq},
            output_json = ${outcome.outputJson === undefined || outcome.outputJson === null ? null : JSON.stringify(outcome.outputJson)}::text::json,
            lease_owner = NULL, lease_expires_at = NULL, wait_until = NULL
          WHERE id = ${id} AND ${from(outcome.status)} AND last_seq = ${prev}
            AND (${fence ?? null}::bigint IS NULL OR attempt = ${fence ?? null}::bigint)
          RETURNING id, webhook_url
        ), earlier AS (
          -- The run's last events, stored with its end (one commit).
          INSERT INTO events (task_id, seq, frame)
          SELECT moved.id, event.seq, event.frame
          FROM moved, unnest(${sql.array(before.map((event) => event.seq), "BIGINT")}::bigint[],
                             ${sql.array(before.map((event) => event.frame), "TEXT")}::text[]) AS event(seq, frame)
        ), dropped AS (
          -- Messages that never reached the model are dropped with the run: the task has its result.
          DELETE FROM inputs USING moved WHERE inputs.task_id = moved.id
        ), hooks AS (
          -- The outbox: its webhooks are written with the end, or not at all ('' url: the task's own).
          INSERT INTO webhooks (id, task_id, url, event, payload, next_attempt_at, created_at)
          SELECT hook.id, moved.id, coalesce(nullif(hook.url, ''), moved.webhook_url), hook.event, hook.payload,
            hook.created_at::timestamptz, hook.created_at::timestamptz
          FROM moved, unnest(${hooks.ids}::text[], ${hooks.urls}::text[], ${hooks.events}::text[], ${hooks.payloads}::text[],
                             ${hooks.created}::text[]) AS hook(id, url, event, payload, created_at)
          WHERE coalesce(nullif(hook.url, ''), moved.webhook_url) IS NOT NULL
        )
        INSERT INTO events (task_id, seq, frame) SELECT id, ${seq}, ${frame} FROM moved`;
      if (result.count === 1) {
        announcer.announce(id, seq);
        return true;
      }
      await checkFence(id, fence);
      return false;
    },

    async claimWebhooks(now, limit, leaseMs, fairness) {
      if (limit <= 0) return [];
      const perDestination = fairness?.perDestination ?? limit;
      const busy = fairness?.busy ?? new Map<string, number>();
      const full = [...busy].filter(([, count]) => count >= perDestination).map(([destination]) => destination);
      const lease = new Date(now.getTime() + leaseMs);
      // Nothing to take in and no destination due that is not full: an idle poll opens no transaction.
      // The check for rows to take in reads a column of the row (`id`), not `SELECT 1`: an index-only
      // scan never marks the entries of rows taken in since as dead (a scan that visits the row
      // does), so until vacuum came by each check read them all again: 12 ms after 100,000.
      const work = await sql`
        (SELECT id FROM webhooks WHERE status = 'pending' AND destination IS NULL ORDER BY row_id LIMIT 1)
        UNION ALL
        (SELECT destination FROM webhook_destinations WHERE next_due <= ${now} AND destination <> ALL(${full}::text[]) LIMIT 1)`;
      if (work.length === 0) return [];
      return sql.begin(async (tx) => {
        await intake(tx, INTAKE_PER_CLAIM);
        const claimed: ClaimedWebhook[] = [];
        const visited: string[] = [];
        for (let round = 0; round < CLAIM_ROUNDS && claimed.length < limit; round++) {
          // The destinations due soonest, each locked for this claim (SKIP LOCKED: one another node
          // is claiming, or a record is lowering, is left for the next claim): a destination's rows
          // are claimed by one node at a time, and its next_due changes under its lock only.
          const wanted = limit - claimed.length;
          const locked: { destination: string }[] = await tx`
            SELECT destination FROM webhook_destinations
            WHERE next_due <= ${now} AND destination <> ALL(${[...full, ...visited]}::text[])
            ORDER BY next_due LIMIT ${wanted} FOR UPDATE SKIP LOCKED`;
          if (locked.length === 0) break;
          const destinations = locked.map((row) => row.destination);
          visited.push(...destinations);
          const quotas = destinations.map((destination) => Math.max(0, Math.min(perDestination - (busy.get(destination) ?? 0), wanted)));
          // Each destination's due rows, oldest first, at most its quota; destinations in turn.
          const rows: (WebhookRow & { row_id: string; destination: string })[] = await tx`
            WITH turn AS (
              SELECT * FROM unnest(${destinations}::text[], ${quotas}::integer[]) WITH ORDINALITY AS turn(destination, quota, n)
            ),
            picked AS (
              SELECT due.id FROM turn CROSS JOIN LATERAL (
                SELECT id, next_attempt_at, row_id FROM webhooks
                WHERE webhooks.destination = turn.destination AND status = 'pending' AND next_attempt_at <= ${now}
                ORDER BY next_attempt_at, row_id LIMIT turn.quota
                FOR UPDATE SKIP LOCKED
              ) due
              ORDER BY turn.n, due.next_attempt_at, due.row_id LIMIT ${wanted}
            )
            UPDATE webhooks SET next_attempt_at = ${lease} FROM picked WHERE webhooks.id = picked.id
            RETURNING webhooks.row_id, webhooks.destination, ${sql.unsafe(WEBHOOK_COLUMNS.split(", ").map((column) => `webhooks.${column}`).join(", "))}`;
          // Exact again, in a statement of its own: it sees every change committed before the locks.
          await tx`
            UPDATE webhook_destinations SET next_due = (
              SELECT min(next_attempt_at) FROM webhooks WHERE webhooks.destination = webhook_destinations.destination AND status = 'pending'
            ) WHERE destination = ANY(${destinations}::text[])`;
          for (const row of rows.sort((a, b) => Number(a.row_id) - Number(b.row_id))) claimed.push({ ...toWebhook(row), destination: row.destination });
          if (locked.length < wanted) break; // no other destination is due
        }
        return claimed;
      });
    },

    async intakeWebhooks(limit) {
      if (limit <= 0) return 0;
      if ((await sql`SELECT id FROM webhooks WHERE status = 'pending' AND destination IS NULL ORDER BY row_id LIMIT 1`).length === 0) return 0;
      return sql.begin((tx) => intake(tx, limit));
    },

    async recordWebhookAttempt(id, attempt, at) {
      const next = attempt.outcome === "retry" ? attempt.nextAttemptAt : null;
      // The row's destination's next_due is made exact in the same transaction: a retry may be due
      // before it (it was the lease's end), and a delivered or failed row's lease must not leave it
      // behind (a destination left due with nothing to send took a claim's place, and thousands served
      // once made claims come back empty while a new row was due).
      // Locks: the row, then its destination, in the statement that records. Claims and intakes
      // never wait for a webhook row (SKIP LOCKED), and a record holds one row and one destination,
      // so no cycle of waits forms (intakes wait for destinations in name order). The soonest row
      // is read in a statement of its own, after the lock — one statement reads a snapshot from
      // before its lock wait, and would miss what the holder committed (a retry due sooner: next_due
      // left later than a due row). It sees every claim, intake and record of the destination that
      // committed before, those that held it among them; one that comes after waits for it (or, a
      // claim, skips it) and then recomputes (a claim, a record) or lowers (an intake) in turn.
      return sql.begin(async (tx) => {
        const [row] = await tx`
          WITH recorded AS (
            UPDATE webhooks SET attempts = attempts + 1, status = ${attempt.outcome === "retry" ? "pending" : attempt.outcome},
              next_attempt_at = coalesce(${next}::timestamptz, next_attempt_at),
              last_error = coalesce(${attempt.outcome === "delivered" ? null : attempt.error}::text, last_error),
              delivered_at = ${attempt.outcome === "delivered" ? at : null}::timestamptz
            WHERE id = ${id} AND status = 'pending'
            RETURNING destination
          ),
          locked AS (
            SELECT webhook_destinations.destination FROM webhook_destinations JOIN recorded USING (destination)
            FOR UPDATE OF webhook_destinations
          )
          SELECT (SELECT count(*) FROM recorded)::integer AS recorded, (SELECT destination FROM locked) AS destination`;
        if (Number(row.recorded) !== 1) return false;
        // A row not taken in yet has no destination: the intake lowers its destination's next_due.
        // Often unchanged (the row was not its destination's soonest): then no new row version.
        if (row.destination !== null) {
          await tx`
            UPDATE webhook_destinations SET next_due = soonest.due
            FROM (SELECT min(next_attempt_at) AS due FROM webhooks WHERE destination = ${row.destination} AND status = 'pending') soonest
            WHERE webhook_destinations.destination = ${row.destination} AND webhook_destinations.next_due IS DISTINCT FROM soonest.due`;
        }
        return true;
      });
    },

    async unfinishedTaskWebhooks() {
      const rows = await sql`SELECT 1 FROM tasks WHERE webhook_url IS NOT NULL AND status IN ('queued', 'running', 'waiting') LIMIT 1`;
      return rows.length > 0;
    },

    async taskWebhooks(taskId) {
      const rows: (WebhookRow & { to_task_url: boolean })[] = await sql`
        SELECT ${sql.unsafe(WEBHOOK_COLUMNS.split(", ").map((column) => `webhooks.${column}`).join(", "))},
          coalesce(webhooks.url = tasks.webhook_url, false) AS to_task_url
        FROM webhooks JOIN tasks ON tasks.id = webhooks.task_id WHERE webhooks.task_id = ${taskId} ORDER BY webhooks.row_id`;
      return rows.map((row) => ({ ...toWebhook(row), toTaskUrl: row.to_task_url === true }));
    },

    async takeOver(id) {
      const [row] = await sql`
        UPDATE tasks SET attempt = attempt + 1, lease_owner = NULL, lease_expires_at = NULL
        WHERE id = ${id} AND status = 'running'
        RETURNING attempt`;
      return row ? Number(row.attempt) : undefined;
    },

    async claimNext(node, leaseMs, startedAt): Promise<Claim | undefined> {
      // Takeovers first: they are older work, and clients are watching them. Each branch locks at
      // most the one row it returns (LockRows under LIMIT 1), and the queued branch runs only when
      // the takeover branch found nothing (an Append under LIMIT 1 stops at the first row), so a
      // claim never holds a row it does not take — other claimers skip only the rows being claimed.
      // A running task without a lease (a single-node server's that died) counts as expired.
      const [row] = await sql`
        WITH picked AS (
          SELECT * FROM (
            SELECT id AS picked_id, true AS takeover FROM tasks
            WHERE status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < now())
            ORDER BY lease_expires_at NULLS FIRST
            LIMIT 1 FOR UPDATE SKIP LOCKED
          ) AS expired
          UNION ALL
          SELECT * FROM (
            SELECT id AS picked_id, false AS takeover FROM tasks
            WHERE status = 'queued'
              -- A thread's tasks run one at a time, in order: not while an earlier one has not ended.
              -- One probe per unfinished status, each bounded by an index on its status (tasks_thread_status
              -- (thread_id, status, row_id), or the status's partial index): with 'status IN (…)' the
              -- planner walked the thread (tasks_thread, or tasks_thread_status with the statuses as a
              -- filter), so each queued task of a thread read its every task (30,000 of a 30,000-task
              -- thread: 10 ms per queued task behind a running one, at every claim of every node).
              AND (thread_id IS NULL OR NOT (
                EXISTS (SELECT 1 FROM tasks AS earlier
                        WHERE earlier.thread_id = tasks.thread_id AND earlier.status = 'running' AND earlier.row_id < tasks.row_id)
                OR EXISTS (SELECT 1 FROM tasks AS earlier
                           WHERE earlier.thread_id = tasks.thread_id AND earlier.status = 'waiting' AND earlier.row_id < tasks.row_id)
                OR EXISTS (SELECT 1 FROM tasks AS earlier
                           WHERE earlier.thread_id = tasks.thread_id AND earlier.status = 'queued' AND earlier.row_id < tasks.row_id)))
            ORDER BY row_id
            LIMIT 1 FOR UPDATE SKIP LOCKED
          ) AS queued
          LIMIT 1
        )
        -- started_at: the node's time, but never before the finish of the thread's task before it
        -- (which this claim saw end): startedAt is read before the query waits for a connection, and
        -- a thread's next task showed a start 2 ms before its predecessor's finish. Node clocks only
        -- (finished_at is a node's too); greatest() skips the NULL of a task in no thread. One row
        -- read, by tasks_thread (thread_id, row_id), however long the thread.
        UPDATE tasks SET status = 'running', started_at = coalesce(tasks.started_at, greatest(${startedAt}::timestamptz, (
            SELECT earlier.finished_at FROM tasks AS earlier
            WHERE tasks.thread_id IS NOT NULL AND earlier.thread_id = tasks.thread_id AND earlier.row_id < tasks.row_id
            ORDER BY earlier.row_id DESC LIMIT 1))),
          attempt = tasks.attempt + 1, lease_owner = ${node},
          lease_expires_at = now() + ${leaseLength(leaseMs)}::bigint * interval '1 millisecond'
        FROM picked
        WHERE tasks.id = picked.picked_id AND tasks.status IN ('queued', 'running')
        RETURNING ${columns()}, tasks.attempt AS claim_attempt, picked.takeover, tasks.cancel_requested,
          EXISTS (SELECT 1 FROM inputs WHERE inputs.task_id = tasks.id) AS inputs_pending`;
      if (!row) return undefined;
      return {
        task: toTask(row),
        attempt: Number(row.claim_attempt),
        takeover: row.takeover,
        cancelRequested: row.cancel_requested,
        inputsPending: row.inputs_pending,
      };
    },

    async renewLeases(node, leases, leaseMs) {
      const held = new Set<string>();
      const cancelRequested = new Set<string>();
      const inputsPending = new Set<string>();
      if (leases.length === 0) return { held, cancelRequested, inputsPending };
      const [ids, attempts] = leaseArrays(leases);
      const rows: { id: string; cancel_requested: boolean; inputs_pending: boolean }[] = await sql`
        UPDATE tasks SET lease_expires_at = now() + ${leaseLength(leaseMs)}::bigint * interval '1 millisecond'
        FROM unnest(${ids}::text[], ${attempts}::bigint[]) AS lease(id, attempt)
        WHERE tasks.id = lease.id AND tasks.attempt = lease.attempt AND tasks.lease_owner = ${node} AND tasks.status = 'running'
        RETURNING tasks.id, tasks.cancel_requested, EXISTS (SELECT 1 FROM inputs WHERE inputs.task_id = tasks.id) AS inputs_pending`;
      for (const row of rows) {
        held.add(row.id);
        if (row.cancel_requested) cancelRequested.add(row.id);
        if (row.inputs_pending) inputsPending.add(row.id);
      }
      return { held, cancelRequested, inputsPending };
    },

    async releaseLeases(node, leases) {
      if (leases.length === 0) return;
      const [ids, attempts] = leaseArrays(leases);
      // Expired a millisecond ago by the database's clock: claimable by the next claimNext.
      await sql`
        UPDATE tasks SET lease_expires_at = now() - interval '1 millisecond'
        FROM unnest(${ids}::text[], ${attempts}::bigint[]) AS lease(id, attempt)
        WHERE tasks.id = lease.id AND tasks.attempt = lease.attempt AND tasks.lease_owner = ${node} AND tasks.status = 'running'`;
    },

    async requestCancel(taskId) {
      await sql`
        WITH flagged AS (
          UPDATE tasks SET cancel_requested = true WHERE id = ${taskId} AND ${open()} RETURNING id
        )
        SELECT pg_notify(${CLUSTER_CHANNEL}, 'c:' || id)::text AS notified FROM flagged`;
    },

    async nextLeaseExpiry(node) {
      const [row] = await sql`
        SELECT (extract(epoch FROM min(lease_expires_at) - now()) * 1000)::double precision AS ms
        FROM tasks WHERE status = 'running' AND lease_expires_at IS NOT NULL AND lease_owner IS DISTINCT FROM ${node}`;
      return row?.ms === null || row?.ms === undefined ? undefined : Number(row.ms);
    },

    async countQueued() {
      const [row] = await sql`SELECT count(*)::integer AS queued FROM tasks WHERE status = 'queued'`;
      return Number(row.queued);
    },

    async signal(signal) {
      await sql`SELECT pg_notify(${CLUSTER_CHANNEL}, ${formatSignal(signal)})::text AS notified`;
    },

    async listen(onSignal, onListen) {
      if (closing) throw new Error("the store is closed");
      // A client of its own: stopping closes its connection for sure (a half-open one included),
      // so stop + listen again is how a caller forces a new LISTEN connection.
      const client = openListener();
      let stopped = false;
      try {
        await client.listen(
          CLUSTER_CHANNEL,
          (payload) => {
            if (stopped) return;
            const signal = parseSignal(payload);
            if (signal) onSignal(signal);
          },
          () => {
            if (!stopped) onListen();
          },
        );
      } catch (error) {
        await client.close({ timeout: 0 }).catch(() => {});
        throw error;
      }
      let stopping: Promise<void> | undefined;
      const stop = () => {
        // No UNLISTEN round trip (it would hang on a half-open connection): closing the client
        // drops the connection, and the server forgets its LISTEN with it.
        stopping ??= (async () => {
          stopped = true;
          listeners.delete(stop);
          await client.close({ timeout: 0 }).catch(() => {});
        })();
        return stopping;
      };
      listeners.add(stop);
      return stop;
    },

    async ping(timeoutMs) {
      if (closing) return false;
      // One ping at a time, shared: it may outlive a caller's wait. A caller that waits less than
      // a new connection takes to open (/health waits 0.4 s; TLS and SCRAM to a database 60 ms
      // away take longer) must not kill that connection, or no ping ever gets through.
      pinging ??= pingOnce().finally(() => (pinging = undefined));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const waited = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
      try {
        return await Promise.race([pinging, waited]);
      } finally {
        clearTimeout(timer);
      }
    },

    async pruneEvents(finishedBefore) {
      let pruned = 0;
      for (;;) {
        // A transaction per batch of logs, which SKIP LOCKED lets several nodes share. A task whose
        // log was pruned has pruned_through = last_seq > 0 (a task that ended has its result event,
        // and no event comes after it), so `pruned_through = 0` is SQLite's
        // `pruned_through < last_seq` for ended tasks, and matches the partial index. No statement
        // deletes more than ~PRUNE_EVENTS events (a log of 300,000 in one was seconds of one
        // statement, near `statement_timeout`; 500 such logs in one, past it every time, so that
        // retention never got anywhere): the logs that fit in that go in one statement, as before;
        // a longer one alone, its events deleted a range at a time, then marked pruned — all in its
        // transaction, so that a reader finds it whole or pruned, never a part (and a pass stopped
        // half-way leaves it whole, for the next).
        const count = (await sql.begin(async (tx) => {
          // The logs this transaction prunes are chosen first, unlocked, then locked alone: locking
          // all 500 candidates held every one of their rows for the whole transaction — seconds when
          // the first is a long log — where anything that updates an ended task (adopting it into a
          // thread) waited. Logs another node is pruning (locked): the next choice among the candidates.
          const candidates: { id: string; last_seq: string }[] = await tx`
            SELECT id, last_seq FROM tasks
            WHERE finished_at < ${finishedBefore} AND finished_at IS NOT NULL AND pruned_through = 0 AND last_seq > 0
            ORDER BY finished_at LIMIT 500`;
          if (candidates.length === 0) return 0;
          // The next logs after `from` that fit one transaction (a long one alone); locked, those
          // another node has not taken. All of one choice taken: the candidates after it.
          let rows: { id: string; last_seq: string }[] = [];
          for (let from = 0; rows.length === 0 && from < candidates.length; ) {
            const chosen = [candidates[from]!.id];
            let sum = Number(candidates[from]!.last_seq);
            for (from++; sum <= PRUNE_EVENTS && from < candidates.length; from++) {
              if (sum + Number(candidates[from]!.last_seq) > PRUNE_EVENTS) break;
              chosen.push(candidates[from]!.id);
              sum += Number(candidates[from]!.last_seq);
            }
            rows = await tx`
              SELECT id, last_seq FROM tasks WHERE id = ANY(${sql.array(chosen, "TEXT")}::text[]) AND pruned_through = 0
              ORDER BY finished_at FOR UPDATE SKIP LOCKED`;
          }
          if (rows.length === 0) return 0;
          const first = Number(rows[0]!.last_seq);
          if (first > PRUNE_EVENTS) {
            const id = rows[0]!.id;
            for (let from = 0; from < first; from += PRUNE_EVENTS) {
              await tx`DELETE FROM events WHERE task_id = ${id} AND seq > ${from} AND seq <= ${Math.min(first, from + PRUNE_EVENTS)}`;
            }
            await tx`UPDATE tasks SET pruned_through = last_seq WHERE id = ${id}`;
            return 1;
          }
          // The rows that were locked and not taken are let go at the commit, for the next batch.
          const ids = [rows[0]!.id];
          let events = first;
          for (const row of rows.slice(1)) {
            if (events + Number(row.last_seq) > PRUNE_EVENTS) break;
            ids.push(row.id);
            events += Number(row.last_seq);
          }
          const [row] = await tx`
            WITH marked AS (
              UPDATE tasks SET pruned_through = last_seq WHERE id = ANY(${sql.array(ids, "TEXT")}::text[])
              RETURNING id, last_seq
            ), deleted AS (
              DELETE FROM events USING marked WHERE events.task_id = marked.id AND events.seq <= marked.last_seq
            )
            SELECT count(*)::integer AS pruned FROM marked`;
          return Number(row.pruned);
        })) as number;
        if (count === 0) return pruned;
        pruned += count;
      }
    },

    async events(id, after, limit, maxBytes): Promise<StoredEvent[]> {
      // The cut is made in the query, so that rows past it are never sent (cutting what was fetched
      // would fetch the rest again with every next page): `octet_length` reads a frame's size from
      // its TOAST header, without reading the frame; it counts the bytes the frame was written as
      // (UTF-8, as `pageMayContinue` counts them).
      const rows: { seq: string; frame: string }[] =
        maxBytes === undefined
          ? await sql`SELECT seq, frame FROM events WHERE task_id = ${id} AND seq > ${after} ORDER BY seq LIMIT ${limit}`
          : await sql`
              SELECT seq, frame FROM (
                SELECT seq, frame, sum(octet_length(frame)) OVER (ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
                FROM events WHERE task_id = ${id} AND seq > ${after} ORDER BY seq LIMIT ${limit}
              ) page
              WHERE coalesce(before, 0) < ${maxBytes}::bigint ORDER BY seq`;
      return rows.map((row) => ({ seq: Number(row.seq), frame: row.frame }));
    },

    close() {
      // Waits (a little) for queries already sent; anything started afterwards is refused.
      closing ??= (async () => {
        await announcer.drain();
        await Promise.all([...listeners].map((stop) => stop()));
        await pinger?.close({ timeout: 0 }).catch(() => {});
        await sql.close({ timeout: 5 });
      })();
      return closing;
    },
  };
}

// A cursor is the row_id of the last task on the page (the same form as SQLite's rowid cursor).
function encodeCursor(rowId: string): string {
  return Buffer.from(`t${rowId}`).toString("base64url");
}
function decodeCursor(cursor: string): string {
  const decoded = Buffer.from(cursor, "base64url").toString();
  const match = /^t(\d{1,15})$/.exec(decoded);
  if (!match) throw new AgentkitError("bad_request", "Invalid cursor");
  return match[1]!;
}
