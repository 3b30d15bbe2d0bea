/**
 * PostgreSQL migrations under the conditions of a running cluster (test/helpers/postgres.ts: a real
 * server): a database an earlier release migrated, a migration that has to wait for a table lock
 * another session holds, a node that starts while another one migrates, an index build that was
 * interrupted. What each must do: finish when it can, never stall the cluster's queries longer than
 * its lock_timeout, and otherwise fail with an error naming the migration and what bounds it.
 */
import { SQL } from "bun";
import { expect, test } from "bun:test";
import type { Logger } from "../../src/lib/logger.ts";
import { createPostgresStore, MIGRATE_APPLICATION_NAME, MIGRATIONS, POSTGRES_SCHEMA_VERSION, type PostgresStoreOptions } from "../../src/store/postgres-store.ts";
import { describePostgres } from "../helpers/postgres.ts";
import { newTask } from "./conformance.ts";

/** The key of the migration lock (`pg_advisory_lock`), as every agentkit release takes it. */
const MIGRATION_LOCK = "7018134588412570996";

/** Migration 5 as d0ec4fa released it: `tasks_owner_status` alone (53244cc added `tasks_thread_status` later). */
const D0EC4FA_MIGRATION_5 = {
  version: 5,
  description: "tasks_owner_status: one tenant's tasks in one status, newest first",
  sql: `
CREATE INDEX tasks_owner_status ON tasks (owner, status, row_id);
`,
};

interface Entry {
  level: string;
  message: string;
  fields?: Record<string, unknown>;
}

function recordingLogger(): Logger & { entries: Entry[]; text(): string } {
  const entries: Entry[] = [];
  const log = (level: string) => (message: string, fields?: Record<string, unknown>) => entries.push({ level, message, fields });
  return {
    entries,
    debug: log("debug"),
    info: log("info"),
    warn: log("warn"),
    error: log("error"),
    text: () => entries.map((entry) => `${entry.level} ${entry.message} ${JSON.stringify(entry.fields ?? {})}`).join("\n"),
  };
}

describePostgres("PostgreSQL migrations", (pg) => {
  /** A connection of its own (one, reserved), closed by the caller. */
  async function connection(url: string) {
    const client = new SQL(url, { max: 1 });
    const conn = await client.reserve();
    return {
      conn,
      async close() {
        await conn.release().catch(() => {});
        await client.close({ timeout: 0 });
      },
    };
  }

  /** A database as a release that ran migrations up to `through` left it (d0ec4fa's text for 5, and so without tasks_thread_status). */
  async function databaseAt(through: number, { d0ec4fa = false } = {}): Promise<string> {
    const url = await pg.createDatabase();
    const { conn, close } = await connection(url);
    try {
      await conn`CREATE TABLE schema_migrations (version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`;
      for (const migration of MIGRATIONS.slice(0, through)) {
        const applied = d0ec4fa && migration.version === 5 ? D0EC4FA_MIGRATION_5 : migration;
        await conn.unsafe(applied.sql);
        await conn`INSERT INTO schema_migrations (version, description) VALUES (${applied.version}, ${applied.description})`;
      }
      await conn`INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at)
                 VALUES ('old', 'anonymous', 'default', '"hi"', '{}', 'completed', now())`;
      if (through >= 3) await conn`UPDATE tasks SET thread_id = 'th' WHERE id = 'old'`;
    } finally {
      await close();
    }
    return url;
  }

  async function query<T>(url: string, body: (conn: SQL) => Promise<T>): Promise<T> {
    const { conn, close } = await connection(url);
    try {
      return await body(conn);
    } finally {
      await close();
    }
  }

  const indexOf = (url: string, name: string) =>
    query(url, async (conn) => {
      const [row] = await conn`SELECT i.indisvalid AS valid, pg_get_indexdef(i.indexrelid) AS definition FROM pg_index i WHERE i.indexrelid = to_regclass(${name})`;
      return row as { valid: boolean; definition: string } | undefined;
    });
  const schemaVersion = (url: string) =>
    query(url, async (conn) => Number((await conn`SELECT max(version) AS v FROM schema_migrations`)[0].v));

  /** Opens a store; the caller closes it. */
  async function open(url: string, options: Partial<PostgresStoreOptions> = {}) {
    return createPostgresStore({ url, max: 2, ...options });
  }

  test("a database migrated by d0ec4fa (migration 5 without tasks_thread_status) gets the index at the next start, its schema version unchanged", async () => {
    const url = await databaseAt(POSTGRES_SCHEMA_VERSION, { d0ec4fa: true });
    expect(await indexOf(url, "tasks_thread_status")).toBeUndefined();
    const logger = recordingLogger();
    const store = await open(url, { logger });
    try {
      expect(store.migratedFrom).toBe(POSTGRES_SCHEMA_VERSION);
      const index = await indexOf(url, "tasks_thread_status");
      expect(index?.valid).toBe(true);
      expect(index?.definition).toContain("(thread_id, status, row_id) WHERE (thread_id IS NOT NULL)");
      // No new schema version: an older agentkit (which knows 5) still opens this database.
      expect(await schemaVersion(url)).toBe(POSTGRES_SCHEMA_VERSION);
      expect(POSTGRES_SCHEMA_VERSION).toBe(MIGRATIONS.length);
      expect(logger.text()).toContain("index built concurrently");
      expect((await store.getTask("old"))?.id).toBe("old");
    } finally {
      await store.close();
    }
    // Started again: nothing to build, nothing logged.
    const again = recordingLogger();
    await (await open(url, { logger: again })).close();
    expect(again.entries).toEqual([]);
  });

  test("a database at 5 (before deliveries were fair by destination) migrates to 7 (and on) and keeps its pending deliveries: each is claimed when due, with its destination; ended ones are not", async () => {
    const url = await databaseAt(5);
    await query(url, async (conn) => {
      await conn`UPDATE tasks SET webhook_url = 'http://task.test/mine' WHERE id = 'old'`;
      const rows = [
        ["due", "http://task.test/mine", 0, "2026-01-01T00:00:01.000Z", "pending", null, null],
        ["retrying", "https://Agent.test:443/in", 2, "2026-01-01T00:05:00.000Z", "pending", "HTTP 503", null],
        // Claimed by the release before, which stopped mid-delivery: due again when its lease ends.
        ["leased", "https://agent.test/other", 0, "2026-01-01T00:10:00.000Z", "pending", null, null],
        ["done", "http://task.test/mine", 1, "2026-01-01T00:00:01.000Z", "delivered", null, "2026-01-01T00:00:02.000Z"],
        ["gone", "http://task.test/mine", 1, "2026-01-01T00:00:01.000Z", "failed", "HTTP 410", null],
      ] as const;
      for (const [id, hookUrl, attempts, next, status, error, delivered] of rows) {
        await conn`INSERT INTO webhooks (id, task_id, url, event, payload, attempts, next_attempt_at, status, last_error, created_at, delivered_at)
                   VALUES (${id}, 'old', ${hookUrl}, 'task.finished', '{}', ${attempts}, ${next}::timestamptz, ${status}, ${error}, '2026-01-01T00:00:01.000Z', ${delivered}::timestamptz)`;
      }
    });
    const store = await open(url);
    try {
      expect(store.migratedFrom).toBe(5);
      expect(await schemaVersion(url)).toBe(8);
      for (const index of ["webhooks_destination_due", "webhooks_intake", "webhook_destinations_due"]) expect((await indexOf(url, index))?.valid).toBe(true);
      // All due rows in time order: no query reads it now (the planner took it for a destination's rows).
      expect(await indexOf(url, "webhooks_due")).toBeUndefined();
      const summary = async () => (await store.taskWebhooks("old")).map((webhook) => [webhook.id, webhook.status, webhook.attempts]);
      const before = await summary();
      expect(before).toEqual([["due", "pending", 0], ["retrying", "pending", 2], ["leased", "pending", 0], ["done", "delivered", 1], ["gone", "failed", 1]]);
      const fair = { perDestination: 4, busy: new Map<string, number>() };
      const claim = async (at: string) => (await store.claimWebhooks(new Date(at), 16, 3_600_000, fair)).map((row) => [row.id, row.destination]);
      expect(await claim("2026-01-01T00:04:59.000Z")).toEqual([["due", "http://task.test"]]);
      expect(await claim("2026-01-01T00:05:00.000Z")).toEqual([["retrying", "https://agent.test"]]);
      expect(await claim("2026-01-01T00:10:00.000Z")).toEqual([["leased", "https://agent.test"]]);
      expect(await claim("2026-01-02T00:00:00.000Z")).toEqual([["due", "http://task.test"], ["retrying", "https://agent.test"], ["leased", "https://agent.test"]]);
      expect(await summary()).toEqual(before);
    } finally {
      await store.close();
    }
  });

  test("a database at 7 (a thread's tasks counted at each read) migrates to 8: each thread's task count and newest task are counted once, then kept on its row whoever writes — a node of the release before included", async () => {
    const url = await databaseAt(7); // its task 'old' in the thread 'th'
    const row = (id: string, thread: string | null) =>
      query(url, (conn) => conn`INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at, thread_id)
                                VALUES (${id}, 'anonymous', 'default', '"hi"', '{}', 'completed', now(), ${thread})`);
    await query(url, (conn) => conn`INSERT INTO threads (id, owner, created_at) VALUES ('th', 'anonymous', now()), ('two', 'anonymous', now()), ('empty', 'anonymous', now())`);
    await row("a", "two");
    await row("b", "two");
    await row("lone", null);
    const store = await open(url);
    try {
      expect(store.migratedFrom).toBe(7);
      expect(await schemaVersion(url)).toBe(8);
      const counts = async () => Object.fromEntries((await store.listThreads({ limit: 100 })).threads.map((thread) => [thread.id, [thread.task_count, thread.last_task_id]]));
      expect(await counts()).toEqual({ th: [1, "old"], two: [2, "b"], empty: [0, null] });
      expect(await store.getThread("two")).toMatchObject({ task_count: 2, last_task_id: "b" });
      // A node of the release before, still running through the upgrade, writes as it always did.
      await row("c", "empty");
      // This release's own writes: a task in a thread, a thread adopting a task of none.
      await store.createTask(newTask("d", { threadId: "two" }));
      await store.createThread({ id: "adopter", owner: "anonymous", createdAt: new Date(), adopt: "lone" });
      expect(await counts()).toEqual({ adopter: [1, "lone"], th: [1, "old"], two: [3, "d"], empty: [1, "c"] });
      // By hand (an operator): a task deleted, one moved to another thread.
      await query(url, (conn) => conn`DELETE FROM tasks WHERE id = 'd'`);
      await query(url, (conn) => conn`UPDATE tasks SET thread_id = 'empty' WHERE id = 'b'`);
      expect(await counts()).toEqual({ adopter: [1, "lone"], th: [1, "old"], two: [1, "a"], empty: [2, "c"] });
      // Another older task moved in after it (lone: created after b, before c): c stays the newest.
      await query(url, (conn) => conn`UPDATE tasks SET thread_id = 'empty' WHERE id = 'lone'`);
      expect(await counts()).toEqual({ adopter: [0, null], th: [1, "old"], two: [1, "a"], empty: [3, "c"] });
      // And the counts agree with the tasks themselves.
      const counted = await query(url, (conn) => conn`
        SELECT threads.id, count(tasks.id)::integer AS tasks, (SELECT t.id FROM tasks t WHERE t.thread_id = threads.id ORDER BY t.row_id DESC LIMIT 1) AS newest
        FROM threads LEFT JOIN tasks ON tasks.thread_id = threads.id GROUP BY threads.id`);
      expect(Object.fromEntries(counted.map((r: { id: string; tasks: number; newest: string | null }) => [r.id, [r.tasks, r.newest]]))).toEqual(await counts());
    } finally {
      await store.close();
    }
  });

  test("migration 8 counts a task an old node was inserting as it began: the migration waits for that write, then counts it once", async () => {
    const url = await databaseAt(7); // its task 'old' in the thread 'th'
    await query(url, (conn) => conn`INSERT INTO threads (id, owner, created_at) VALUES ('th', 'anonymous', now())`);
    // A node of the release before, mid-write: its task in 'th' is inserted, not yet committed.
    const writer = await connection(url);
    try {
      await writer.conn`BEGIN`;
      await writer.conn`INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at, thread_id)
                        VALUES ('inflight', 'anonymous', 'default', '"hi"', '{}', 'queued', now(), 'th')`;
      const opening = open(url);
      // The migration waits for the write's lock on tasks (its lock_timeout is 3 s; a retry would do too).
      await Bun.sleep(500);
      await writer.conn`COMMIT`;
      const store = await opening;
      try {
        expect(store.migratedFrom).toBe(7);
        // Counted once: by the migration's count (the trigger did not exist when it was inserted).
        expect(await store.getThread("th")).toMatchObject({ task_count: 2, last_task_id: "inflight" });
      } finally {
        await store.close();
      }
    } finally {
      await writer.close();
    }
  });

  test("an index build cut short by statement_timeout names what it was building and the setting; the INVALID leftover is dropped and built again at the next start", async () => {
    const url = await databaseAt(POSTGRES_SCHEMA_VERSION, { d0ec4fa: true });
    // A transaction with a snapshot: CREATE INDEX CONCURRENTLY waits for it to end (it blocks nobody meanwhile).
    const holder = await connection(url);
    try {
      await holder.conn`BEGIN ISOLATION LEVEL REPEATABLE READ`;
      await holder.conn`SELECT count(*) FROM tasks`;
      const error = (await open(url, { statementTimeoutMs: 1500 }).then(
        (store) => store.close().then(() => undefined),
        (thrown: unknown) => thrown as Error,
      )) as Error | undefined;
      expect(error?.message).toContain(
        "index tasks_thread_status (a thread's tasks in one status (busy check, history)): CREATE INDEX CONCURRENTLY tasks_thread_status was cancelled by statement_timeout after 1500 ms",
      );
      expect(error?.message).toContain("AGENTKIT_DATABASE_STATEMENT_TIMEOUT_MS");
      expect((await indexOf(url, "tasks_thread_status"))?.valid).toBe(false);
    } finally {
      await holder.conn`ROLLBACK`.catch(() => {});
      await holder.close();
    }
    const logger = recordingLogger();
    await (await open(url, { logger })).close();
    expect((await indexOf(url, "tasks_thread_status"))?.valid).toBe(true);
    expect(logger.text()).toContain("left INVALID by an interrupted build is dropped and built again");
  });

  test("migration 5 from version 4 builds its indexes concurrently: writes to tasks go on meanwhile", async () => {
    const url = await databaseAt(4);
    const holder = await connection(url);
    const writer = await connection(url);
    try {
      // An open transaction holding a snapshot keeps the concurrent build waiting at its end.
      await holder.conn`BEGIN ISOLATION LEVEL REPEATABLE READ`;
      await holder.conn`SELECT count(*) FROM tasks`;
      const opening = open(url);
      // Once the build waits, a write to tasks is not held behind it (a plain CREATE INDEX holds every write until its commit).
      for (let tries = 0; ; tries++) {
        const [row] = await writer.conn`SELECT count(*)::integer AS n FROM pg_stat_activity WHERE application_name = ${MIGRATE_APPLICATION_NAME} AND query LIKE 'CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'`;
        if (row.n > 0) break;
        if (tries > 200) throw new Error("the concurrent build never waited");
        await Bun.sleep(25);
      }
      const started = performance.now();
      await writer.conn`SET statement_timeout = 3000`;
      await writer.conn`UPDATE tasks SET total_steps = total_steps + 1 WHERE id = 'old'`;
      expect(performance.now() - started).toBeLessThan(1000);
      await holder.conn`ROLLBACK`;
      const store = await opening;
      expect(store.migratedFrom).toBe(4);
      await store.close();
      expect((await indexOf(url, "tasks_owner_status"))?.valid).toBe(true);
      expect((await indexOf(url, "tasks_thread_status"))?.valid).toBe(true);
      expect(await schemaVersion(url)).toBe(POSTGRES_SCHEMA_VERSION);
    } finally {
      await holder.conn`ROLLBACK`.catch(() => {});
      await holder.close();
      await writer.close();
    }
  });

  /** Waits until a session waits for an ACCESS EXCLUSIVE lock on tasks (the migration's ALTER TABLE). */
  async function untilAlterWaits(conn: SQL): Promise<void> {
    for (let tries = 0; tries < 1000; tries++) {
      const [row] = await conn`SELECT count(*)::integer AS n FROM pg_locks WHERE NOT granted AND mode = 'AccessExclusiveLock' AND relation = 'tasks'::regclass`;
      if (row.n > 0) return;
      await Bun.sleep(10);
    }
    throw new Error("no ALTER TABLE ever waited for tasks");
  }

  test("a migration blocked by a reader's lock gives up after its lock_timeout (so tasks queries queued behind it do not stall), logs who holds it, and succeeds once the lock is released", async () => {
    const url = await databaseAt(2);
    const reader = await connection(url);
    const other = await connection(url);
    const logger = recordingLogger();
    try {
      await reader.conn`BEGIN`;
      await reader.conn`SELECT count(*) FROM tasks`; // ACCESS SHARE until the transaction ends
      const opening = open(url, { logger, migration: { lockTimeoutMs: 300, backoffMs: 200, attempts: 30 } });
      opening.catch(() => {});
      // A query of tasks that arrives while the ALTER TABLE waits queues behind it: for its lock_timeout at most.
      await untilAlterWaits(other.conn);
      const started = performance.now();
      await other.conn`SELECT count(*) FROM tasks`;
      expect(performance.now() - started).toBeLessThan(1500);
      await Bun.sleep(1500);
      await reader.conn`ROLLBACK`;
      const store = await opening;
      expect(store.migratedFrom).toBe(2);
      await store.close();
      expect(await schemaVersion(url)).toBe(POSTGRES_SCHEMA_VERSION);
      const waits = logger.entries.filter((entry) => entry.message.includes("a migration waits for a lock on its tables"));
      expect(waits.length).toBeGreaterThan(0);
      expect(waits[0]!.fields).toMatchObject({ migration: "migration 3 (threads, the waiting state, pending inputs, structured output, secrets)", lock_timeout_ms: 300 });
      expect(String(waits[0]!.fields!.holders)).toContain("idle in transaction");
      expect(String(waits[0]!.fields!.holders)).toContain("AccessShareLock on tasks");
    } finally {
      await reader.conn`ROLLBACK`.catch(() => {});
      await reader.close();
      await other.close();
    }
  });

  test("a migration that never gets its lock fails naming the migration, its lock_timeout and who holds the lock; the database stays at the version before it", async () => {
    const url = await databaseAt(2);
    const reader = await connection(url);
    try {
      await reader.conn`BEGIN`;
      await reader.conn`SELECT count(*) FROM tasks`;
      const error = (await open(url, { statementTimeoutMs: 5000, migration: { lockTimeoutMs: 200, backoffMs: 100, attempts: 3 } }).then(
        (store) => store.close().then(() => undefined),
        (thrown: unknown) => thrown as Error,
      )) as Error | undefined;
      expect(error?.message).toContain(
        "migration 3 (threads, the waiting state, pending inputs, structured output, secrets) could not lock its tables: 3 tries each gave up after 200 ms (its lock_timeout",
      );
      expect(error?.message).toContain("idle in transaction");
      expect(error?.message).toContain("(55P03)");
      expect(error?.message).not.toContain("\n");
      expect(await schemaVersion(url)).toBe(2);
    } finally {
      await reader.conn`ROLLBACK`.catch(() => {});
      await reader.close();
    }
  });

  test("a node that starts while another migrates waits, says what it waits for after a second, and starts once that migration is over", async () => {
    const url = await pg.createDatabase();
    const other = await connection(url);
    const logger = recordingLogger();
    try {
      await other.conn`SELECT pg_advisory_lock(${MIGRATION_LOCK}::bigint)`;
      const opening = open(url, { logger, statementTimeoutMs: 1000 });
      opening.catch(() => {});
      await Bun.sleep(2500); // longer than the statement timeout: waiting is not a statement
      expect(logger.text()).toContain("waiting for another node's schema migration");
      expect(logger.text()).toContain(`held by pid ${Number((await other.conn`SELECT pg_backend_pid() AS pid`)[0].pid)}`);
      await other.conn`SELECT pg_advisory_unlock(${MIGRATION_LOCK}::bigint)`;
      const store = await opening;
      expect(store.migratedFrom).toBe(0);
      await store.close();
      expect(logger.text()).toContain("the other node's migration is over");
    } finally {
      await other.close();
    }
  });

  test("a node waiting for another's migration gives up after its bound with an error saying what it waited for", async () => {
    const url = await pg.createDatabase();
    const other = await connection(url);
    try {
      await other.conn`SELECT pg_advisory_lock(${MIGRATION_LOCK}::bigint)`;
      const error = (await open(url, { statementTimeoutMs: 5000, migration: { waitMs: 1500 } }).then(
        (store) => store.close().then(() => undefined),
        (thrown: unknown) => thrown as Error,
      )) as Error | undefined;
      expect(error?.message).toMatch(/gave up after \d+ s waiting for another node's schema migration: the migration lock \(pg_advisory_lock 7018134588412570996\) is held by pid \d+/);
    } finally {
      await other.close();
    }
  });

  test("with only an index to build and another node holding the migration lock, a node starts at once and leaves the build to it", async () => {
    const url = await databaseAt(POSTGRES_SCHEMA_VERSION, { d0ec4fa: true });
    const other = await connection(url);
    try {
      await other.conn`SELECT pg_advisory_lock(${MIGRATION_LOCK}::bigint)`;
      const started = performance.now();
      const store = await open(url);
      expect(performance.now() - started).toBeLessThan(3000);
      expect(store.migratedFrom).toBe(POSTGRES_SCHEMA_VERSION);
      await store.createTask(newTask("works"));
      await store.close();
      expect(await indexOf(url, "tasks_thread_status")).toBeUndefined();
    } finally {
      await other.close();
    }
  });
});
