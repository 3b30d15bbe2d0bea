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
 * - Columns for the cluster (not used by this contract yet): `attempt` is a fencing token that
 *   grows with every claim (`markRunning`); `lease_owner` and `lease_expires_at` will hold the node
 *   running a task and until when.
 *
 * Durability: an append that returned is committed on the server (with its `synchronous_commit`).
 */
import { SQL } from "bun";
import { AgentkitError } from "../errors.ts";
import { Task, TaskStatus } from "../protocol/task.ts";
import { sourcesOf } from "../tasks/state.ts";
import type { ListTasksQuery, NewTask, StoredEvent, TaskOutcome, TaskPage, TaskStore } from "./store.ts";

/** The newest schema this binary knows; a database with a newer one is refused. */
export const POSTGRES_SCHEMA_VERSION = 1;

/** `pg_advisory_xact_lock` key held while migrating, so nodes starting together migrate once. */
const MIGRATION_LOCK = "7018134588412570996"; // "agentkit" as a 64-bit integer

const statuses = TaskStatus.options.map((status) => `'${status}'`).join(", ");

/** Migrations, in order. Inline SQL, so the compiled binary carries them. Never edit a released one. */
export const MIGRATIONS: readonly { version: number; description: string; sql: string }[] = [
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
  status           text NOT NULL CHECK (status IN (${statuses})),
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
];

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
}

export interface PostgresTaskStore extends TaskStore {
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
  const sql = new SQL({
    url: options.url,
    adapter: "postgres",
    // Bun lets PGDATABASE override the URL's database: the URL names the one to use.
    ...(database ? { database } : {}),
    max: options.max ?? 10,
    connectionTimeout: options.connectionTimeoutS ?? 10,
    idleTimeout: options.idleTimeoutS ?? 60,
    connection: { application_name: "agentkit", statement_timeout: options.statementTimeoutMs ?? 30_000 },
  });
  let migratedFrom: number;
  try {
    migratedFrom = await migrate(sql);
  } catch (error) {
    await sql.close({ timeout: 0 }).catch(() => {});
    throw new Error(`PostgreSQL at ${shown}: ${describe(error, parsed.password)}`);
  }
  return { ...createStore(sql), migratedFrom };
}

/** One line: the server's or Bun's message, its code, never the password. */
function describe(error: unknown, password: string): string {
  const { message, code, errno } = error as { message?: unknown; code?: unknown; errno?: unknown };
  let line = String(message ?? error).replace(/\s+/g, " ").trim();
  const tag = typeof errno === "string" ? errno : typeof code === "string" ? code : undefined;
  if (tag && !line.includes(tag)) line += ` (${tag})`;
  if (password) line = line.split(decodeURIComponent(password)).join("***");
  return line;
}

/**
 * Brings the schema to `POSTGRES_SCHEMA_VERSION` in one transaction, under an advisory lock, so
 * nodes that start at once migrate once; refuses a schema newer than this binary's. Returns the
 * version found.
 */
async function migrate(sql: SQL): Promise<number> {
  return sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK}::bigint)`;
    await tx`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      description text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`;
    const [row] = await tx`SELECT coalesce(max(version), 0)::integer AS version FROM schema_migrations`;
    const current = Number(row.version);
    if (current > POSTGRES_SCHEMA_VERSION) {
      throw new Error(`database schema version ${current} is newer than this agentkit's (${POSTGRES_SCHEMA_VERSION}); upgrade agentkit`);
    }
    for (const migration of MIGRATIONS) {
      if (migration.version <= current) continue;
      await tx.unsafe(migration.sql);
      await tx`INSERT INTO schema_migrations (version, description) VALUES (${migration.version}, ${migration.description})`;
    }
    return current;
  }) as Promise<number>;
}

/** What every read selects: the JSON columns as their text. */
const COLUMNS = `id, row_id, owner, agent, input::text AS input, metadata::text AS metadata, status, stop_reason,
  output::text AS output, error::text AS error, total_steps, total_tokens, input_tokens, output_tokens, cost_usd,
  last_seq, pruned_through, created_at, started_at, finished_at`;

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
}

/** A row, validated at the boundary like SQLite's: a bad row is an error, not garbage. */
function toTask(row: TaskRow): Task {
  const iso = (date: Date | null) => (date === null ? null : date.toISOString());
  const json = (text: string | null) => (text === null ? null : JSON.parse(text));
  return Task.parse({
    id: row.id,
    owner: row.owner,
    agent: row.agent,
    input: json(row.input),
    metadata: json(row.metadata),
    status: row.status,
    stop_reason: row.stop_reason,
    output: json(row.output),
    error: json(row.error),
    total_steps: Number(row.total_steps),
    total_tokens: Number(row.total_tokens),
    input_tokens: Number(row.input_tokens),
    output_tokens: Number(row.output_tokens),
    cost_usd: row.cost_usd === null ? null : Number(row.cost_usd),
    last_seq: Number(row.last_seq),
    pruned_through: Number(row.pruned_through),
    created_at: iso(row.created_at),
    started_at: iso(row.started_at),
    finished_at: iso(row.finished_at),
  });
}

function createStore(sql: SQL): TaskStore & { close(): Promise<void> } {
  const columns = () => sql.unsafe(COLUMNS);
  /** `status IN (…)`: the states the state machine allows `to` to be reached from. */
  const from = (to: TaskStatus) => sql.unsafe(`status IN (${sourcesOf(to).map((status) => `'${status}'`).join(", ")})`);
  /** A string as a JSON literal for a `json` column (sent as text, so Bun does not encode it again). */
  const jsonText = (value: unknown) => (value === null ? null : JSON.stringify(value));
  let closing: Promise<void> | undefined;

  return {
    async createTask(task: NewTask) {
      const [row] = await sql`
        INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at)
        VALUES (${task.id}, ${task.owner}, ${task.agent}, ${jsonText(task.input)}::text::json,
                ${jsonText(task.metadata)}::text::json, 'queued', ${task.createdAt})
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
      if (query.status) conditions.push(`status = ${param(query.status)}`);
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
        UPDATE tasks SET status = 'running', started_at = ${startedAt}, attempt = attempt + 1
        WHERE id = ${id} AND ${from("running")}`;
      return result.count === 1;
    },

    async appendEvents(id, events) {
      if (events.length === 0) return;
      const first = events[0]!.seq;
      const last = events.at(-1)!.seq;
      if (last - first + 1 !== events.length || events.some((event, index) => event.seq !== first + index)) {
        throw new AgentkitError("conflict", `Events of task ${id} must be consecutive`);
      }
      // One statement, so one transaction: the conditional move of last_seq, then the inserts off it.
      const result = await sql`
        WITH moved AS (
          UPDATE tasks SET last_seq = ${last} WHERE id = ${id} AND last_seq = ${first - 1} RETURNING id
        )
        INSERT INTO events (task_id, seq, frame)
        SELECT moved.id, event.seq, event.frame
        FROM moved, unnest(${sql.array(events.map((event) => event.seq), "BIGINT")}::bigint[],
                           ${sql.array(events.map((event) => event.frame), "TEXT")}::text[]) AS event(seq, frame)`;
      if (result.count !== events.length) {
        throw new AgentkitError("conflict", `Event ${first} of task ${id} is not the next in sequence`);
      }
    },

    async finishTask(id, outcome: TaskOutcome, seq, frame) {
      const result = await sql`
        WITH moved AS (
          UPDATE tasks SET status = ${outcome.status}, stop_reason = ${outcome.stopReason},
            output = ${jsonText(outcome.output)}::text::json, error = ${jsonText(outcome.error)}::text::json,
            total_steps = ${outcome.totalSteps}, total_tokens = ${outcome.inputTokens + outcome.outputTokens},
            input_tokens = ${outcome.inputTokens}, output_tokens = ${outcome.outputTokens},
            cost_usd = ${outcome.costUsd}::double precision, finished_at = ${outcome.finishedAt}, last_seq = ${seq},
            lease_owner = NULL, lease_expires_at = NULL
          WHERE id = ${id} AND ${from(outcome.status)} AND last_seq = ${seq - 1}
          RETURNING id
        )
        INSERT INTO events (task_id, seq, frame) SELECT id, ${seq}, ${frame} FROM moved`;
      return result.count === 1;
    },

    async pruneEvents(finishedBefore) {
      let pruned = 0;
      for (;;) {
        // Small batches keep each transaction short; SKIP LOCKED lets several nodes prune at once.
        // A task whose log was pruned has pruned_through = last_seq > 0 (a task that ended has its
        // result event, and no event comes after it), so `pruned_through = 0` is SQLite's
        // `pruned_through < last_seq` for ended tasks, and matches the partial index.
        const [row] = await sql`
          WITH batch AS (
            SELECT id FROM tasks
            WHERE finished_at < ${finishedBefore} AND finished_at IS NOT NULL AND pruned_through = 0 AND last_seq > 0
            ORDER BY finished_at LIMIT 500 FOR UPDATE SKIP LOCKED
          ), marked AS (
            UPDATE tasks SET pruned_through = tasks.last_seq FROM batch WHERE tasks.id = batch.id
            RETURNING tasks.id, tasks.last_seq
          ), deleted AS (
            DELETE FROM events USING marked WHERE events.task_id = marked.id AND events.seq <= marked.last_seq
          )
          SELECT count(*)::integer AS pruned FROM marked`;
        const count = Number(row.pruned);
        if (count === 0) return pruned;
        pruned += count;
      }
    },

    async events(id, after, limit): Promise<StoredEvent[]> {
      const rows: { seq: string; frame: string }[] = await sql`
        SELECT seq, frame FROM events WHERE task_id = ${id} AND seq > ${after} ORDER BY seq LIMIT ${limit}`;
      return rows.map((row) => ({ seq: Number(row.seq), frame: row.frame }));
    },

    close() {
      // Waits (a little) for queries already sent; anything started afterwards is refused.
      closing ??= sql.close({ timeout: 5 });
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
