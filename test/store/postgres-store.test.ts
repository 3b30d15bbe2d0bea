/**
 * The PostgreSQL store on a real server (test/helpers/postgres.ts): the TaskStore contract
 * (test/store/conformance.ts, the same suite the SQLite store runs), then what is PostgreSQL's own:
 * versioned migrations (several nodes starting at once, a newer schema refused), start-up errors in
 * one line without the password, the same Task objects as SQLite for the same writes, and the
 * cluster columns.
 */
import { expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { createPostgresStore, MIGRATIONS, POSTGRES_SCHEMA_VERSION } from "../../src/store/postgres-store.ts";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import type { TaskStore } from "../../src/store/store.ts";
import { describePostgres, withSql } from "../helpers/postgres.ts";
import { tempDir } from "../helpers/server.ts";
import { startFreezableProxy } from "../helpers/tcp-proxy.ts";
import { newTask, outcome, storeConformance } from "./conformance.ts";

describePostgres("PostgreSQL store", (pg) => {
  storeConformance("PostgreSQL", () => {
    let url: string | undefined;
    return {
      async open() {
        url = await pg.createDatabase();
        return createPostgresStore({ url, max: 4 });
      },
      openAgain: () => createPostgresStore({ url: url!, max: 4 }),
    };
  });

  test("a new database is migrated to the current schema, once, and says so in schema_migrations", async () => {
    const url = await pg.createDatabase();
    const first = await createPostgresStore({ url });
    expect(first.migratedFrom).toBe(0);
    await first.close();
    const second = await createPostgresStore({ url });
    expect(second.migratedFrom).toBe(POSTGRES_SCHEMA_VERSION);
    await second.close();
    await withSql(url, async (sql) => {
      const versions = await sql`SELECT version, description FROM schema_migrations ORDER BY version`;
      expect(versions.map((row: { version: number }) => row.version)).toEqual(MIGRATIONS.map((migration) => migration.version));
      // The columns the cluster slices build on are there.
      const columns = await sql`SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'tasks'`;
      const types = Object.fromEntries(columns.map((row: { column_name: string; data_type: string }) => [row.column_name, row.data_type]));
      expect(types).toMatchObject({ attempt: "bigint", lease_owner: "text", lease_expires_at: "timestamp with time zone", row_id: "bigint" });
    });
  });

  test("nodes starting at once on a new database migrate it once, and all start", async () => {
    const url = await pg.createDatabase();
    const stores = await Promise.all(Array.from({ length: 6 }, () => createPostgresStore({ url, max: 2 })));
    expect(stores.filter((store) => store.migratedFrom === 0)).toHaveLength(1);
    await stores[0]!.createTask(newTask("seen-by-all"));
    for (const store of stores) expect((await store.getTask("seen-by-all"))?.id).toBe("seen-by-all");
    await Promise.all(stores.map((store) => store.close()));
    await withSql(url, async (sql) => {
      expect(Number((await sql`SELECT count(*) AS n FROM schema_migrations`)[0].n)).toBe(MIGRATIONS.length);
    });
  });

  test("a database with a newer schema is refused, untouched", async () => {
    const url = await pg.createDatabase();
    await (await createPostgresStore({ url })).close();
    await withSql(url, (sql) => sql`INSERT INTO schema_migrations (version, description) VALUES (${POSTGRES_SCHEMA_VERSION + 1}, 'from the future')`);
    await expect(createPostgresStore({ url })).rejects.toThrow(
      `database schema version ${POSTGRES_SCHEMA_VERSION + 1} is newer than this agentkit's (${POSTGRES_SCHEMA_VERSION})`,
    );
    await withSql(url, async (sql) => {
      expect(Number((await sql`SELECT max(version) AS v FROM schema_migrations`)[0].v)).toBe(POSTGRES_SCHEMA_VERSION + 1);
    });
  });

  function withPassword(url: string, path: string): string {
    const parsed = new URL(url);
    parsed.password = "s3cret-Pa55";
    parsed.pathname = path;
    return parsed.href;
  }

  test("a database that cannot be reached is one line naming it, never the password", async () => {
    const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const closedPort = listener.port;
    listener.stop(true);
    const attempts = [
      { url: `postgres://agent:s3cret-Pa55@127.0.0.1:${closedPort}/agentkit`, says: `PostgreSQL at postgres://agent@127.0.0.1:${closedPort}/agentkit: ` },
      { url: withPassword(pg.adminUrl, "/no_such_db"), says: 'database "no_such_db" does not exist' },
      { url: "mysql://agent:s3cret-Pa55@127.0.0.1/x", says: "the database URL must be postgres://" },
    ];
    for (const attempt of attempts) {
      const error = (await createPostgresStore({ url: attempt.url }).then(
        () => undefined,
        (thrown: unknown) => thrown,
      )) as Error | undefined;
      expect(error).toBeInstanceOf(Error);
      expect(error!.message).toContain(attempt.says);
      expect(error!.message).not.toContain("s3cret-Pa55");
      expect(error!.message).not.toContain("\n");
    }
  });

  test("a ping that waits less than opening its connection takes (a database far away) does not kill that connection: a later one gets through", async () => {
    const url = new URL(await pg.createDatabase());
    const store = await createPostgresStore({ url: url.href, max: 1 });
    // The store's own connections are up; its ping connection is opened on the first ping, through
    // a proxy 300 ms away (a round trip): opening it takes a few round trips, longer than 0.4 s.
    const proxy = await startFreezableProxy(url.hostname, Number(url.port), { delayMs: 150 });
    const far = new URL(url.href);
    far.hostname = "127.0.0.1";
    far.port = String(proxy.port);
    const through = await createPostgresStore({ url: far.href, max: 1 });
    try {
      const answers: boolean[] = [];
      for (let attempt = 0; attempt < 8 && !answers.includes(true); attempt++) answers.push(await through.ping(400));
      // Before: each 0.4 s ping closed the connection it was opening; none ever got through.
      expect(answers[0]).toBe(false);
      expect(answers).toContain(true);
      expect(await through.ping(400)).toBe(true); // and it stays up
    } finally {
      await through.close();
      proxy.stop();
      await store.close();
    }
  }, 60_000);

  test("a row that fails validation is an error, not garbage", async () => {
    const url = await pg.createDatabase();
    const store = await createPostgresStore({ url });
    try {
      await store.createTask(newTask("t"));
      await withSql(url, (sql) => sql`UPDATE tasks SET metadata = '"not an object"' WHERE id = 't'`);
      await expect(store.getTask("t")).rejects.toThrow();
    } finally {
      await store.close();
    }
  });

  test("attempt, the fencing token, grows with each claim (markRunning)", async () => {
    const url = await pg.createDatabase();
    const store = await createPostgresStore({ url });
    try {
      await store.createTask(newTask("t"));
      const attempt = () => withSql(url, async (sql) => Number((await sql`SELECT attempt FROM tasks WHERE id = 't'`)[0].attempt));
      expect(await attempt()).toBe(0);
      expect(await store.markRunning("t", new Date())).toBe(true);
      expect(await attempt()).toBe(1);
      expect(await store.markRunning("t", new Date())).toBe(false);
      expect(await attempt()).toBe(1);
    } finally {
      await store.close();
    }
  });

  test("SQLite and PostgreSQL give identical tasks, pages and events for the same writes", async () => {
    const dataDir = tempDir();
    const stores: TaskStore[] = [createSqliteStore({ dataDir }), await createPostgresStore({ url: await pg.createDatabase() })];
    try {
      const views = [];
      for (const s of stores) {
        await s.createTask(newTask("a", { owner: "alice", metadata: { z: 1, a: [true, null, { "ü": "é" }] }, input: "one\u0000two" }));
        await s.createTask(newTask("b", { owner: "bob", createdAt: new Date("2026-03-04T05:06:07.000Z") }));
        await s.createTask(newTask("c", { owner: "alice", createdAt: new Date("2026-12-31T23:59:59.999Z") }));
        await s.markRunning("a", new Date("2026-03-04T05:06:08.001Z"));
        await s.appendEvents("a", [{ seq: 1, frame: '{"type":"step","seq":1}' }, { seq: 2, frame: '{"type":"step","seq":2}' }]);
        await s.finishTask("a", outcome("completed", { output: "fin", costUsd: 0.1 + 0.2, inputTokens: 5, outputTokens: 7, totalSteps: 2 }), 3, '{"type":"result"}');
        await s.finishTask("b", outcome("failed", { error: { code: "agent_not_configured", message: "no agent", retryable: false } }), 1, "{}");
        await s.pruneEvents(new Date("2026-03-04T05:06:59.000Z"));
        const first = await s.listTasks({ limit: 2 });
        views.push({
          tasks: await Promise.all(["a", "b", "c"].map((id) => s.getTask(id))),
          first: first.tasks,
          second: (await s.listTasks({ limit: 2, cursor: first.nextCursor! })).tasks,
          alice: await s.listTasks({ limit: 10, owner: "alice" }),
          open: await s.tasksWithStatus(["queued", "running"]),
          events: await s.events("a", 0, 10),
          pruned: await s.pruneEvents(new Date("2100-01-01T00:00:00.000Z")),
        });
      }
      expect(views[1]).toEqual(views[0]!);
      expect(JSON.stringify(views[1]!.tasks)).toBe(JSON.stringify(views[0]!.tasks)); // key order too
    } finally {
      for (const s of stores) await s.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  /** Tasks that ended a month before `PRUNE_BEFORE`, in this order, each with a log of `events` events. */
  async function endedLogs(store: TaskStore, logs: [id: string, events: number][]) {
    const finishedAt = new Date("2026-01-01T00:00:00.000Z");
    for (const [index, [id, events]] of logs.entries()) {
      await store.createTask(newTask(id));
      await store.markRunning(id, new Date());
      for (let first = 1; first <= events; first += 4_000) {
        await store.appendEvents(id, Array.from({ length: Math.min(4_000, events - first + 1) }, (_, at) => ({ seq: first + at, frame: "{}" })));
      }
      await store.finishTask(id, outcome("completed", { finishedAt: new Date(finishedAt.getTime() + index) }), events + 1, "{}");
    }
  }
  const PRUNE_BEFORE = new Date("2026-02-01T00:00:00.000Z");

  /** Each DELETE on events takes 0.4 s: a long log's transaction stays open a while. */
  const slowDeletes = (url: string) =>
    withSql(url, (sql) =>
      sql.unsafe(`
        CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.4); RETURN NULL; END $$;
        CREATE TRIGGER slow_delete AFTER DELETE ON events FOR EACH STATEMENT EXECUTE FUNCTION slow_delete();`),
    );

  /** Updates a task's row from another connection, giving up after 200 ms on a lock: the rows it updated. */
  const touchUnderLockTimeout = (url: string, id: string) =>
    withSql(url, (sql) =>
      sql.begin(async (tx) => {
        await tx`SET LOCAL lock_timeout = '200ms'`;
        return (await tx`UPDATE tasks SET metadata = metadata WHERE id = ${id}`).count;
      }),
    );

  test("two nodes prune at once: while one deletes a long log, the other prunes the next and neither holds a row it does not prune", async () => {
    const url = await pg.createDatabase();
    const a = await createPostgresStore({ url, max: 4 });
    const b = await createPostgresStore({ url, max: 4 });
    try {
      await endedLogs(a, [["long1", 12_000], ["long2", 12_000], ["short", 3]]);
      await slowDeletes(url);
      const pa = a.pruneEvents(PRUNE_BEFORE);
      await Bun.sleep(150);
      const pb = b.pruneEvents(PRUNE_BEFORE);
      await Bun.sleep(300);
      const updated = await touchUnderLockTimeout(url, "short").catch((error) => String(error));
      const counts = await Promise.all([pa, pb]);
      expect(counts[0] + counts[1]).toBe(3);
      expect(updated).toBe(1);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test("retention locks only the task rows it prunes: while a long log's transaction deletes it, another ended task's row can be updated", async () => {
    const url = await pg.createDatabase();
    const store = await createPostgresStore({ url, max: 4 });
    try {
      await endedLogs(store, [["long", 12_000], ["short", 3]]);
      await slowDeletes(url);
      const pruning = store.pruneEvents(PRUNE_BEFORE);
      await Bun.sleep(250); // inside the long log's transaction (its first DELETE sleeps)
      const updated = await touchUnderLockTimeout(url, "short");
      expect(updated).toBe(1);
      expect(await pruning).toBe(2);
    } finally {
      await store.close();
    }
  });

  test("a record waits for the destination another transaction holds (a record of another of its rows), then reads its soonest row after it: next_due is never left later than a pending row", async () => {
    const url = await pg.createDatabase();
    const store = await createPostgresStore({ url, max: 4 });
    const at = new Date("2026-03-04T05:07:00.000Z");
    const later = (ms: number) => new Date(at.getTime() + ms);
    try {
      await store.createTask(newTask("t"));
      const hook = (id: string) => ({ id, event: "task.finished" as const, payload: "{}", createdAt: at, url: `http://r.test/${id}` });
      await store.finishTask("t", outcome("cancelled"), 1, "{}", undefined, [hook("a"), hook("b")]);
      const fair = { perDestination: 4, busy: new Map<string, number>() };
      expect((await store.claimWebhooks(at, 16, 3_600_000, fair)).map((row) => row.id)).toEqual(["a", "b"]);
      let recording: Promise<boolean> | undefined;
      await withSql(url, (sql) =>
        sql.begin(async (tx) => {
          // Another node records `b` as a retry due in 5 s (before `a`'s lease ends) and holds its
          // destination, as a record does until it commits.
          await tx`UPDATE webhooks SET attempts = 1, next_attempt_at = ${later(5000)} WHERE id = 'b'`;
          await tx`SELECT 1 FROM webhook_destinations WHERE destination = 'http://r.test' FOR UPDATE`;
          await tx`UPDATE webhook_destinations SET next_due = ${later(5000)} WHERE destination = 'http://r.test'`;
          // Meanwhile `a` is delivered: its record waits for the destination.
          recording = store.recordWebhookAttempt("a", { outcome: "delivered", at: later(10) }, later(10));
          await withSql(url, async (watch) => {
            for (let tries = 0; tries < 500; tries++) {
              const [row] = await watch`SELECT count(*)::integer AS waiting FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`;
              if (row.waiting > 0) return;
              await Bun.sleep(10);
            }
            throw new Error("the record did not wait for the destination");
          });
        }),
      );
      expect(await recording!).toBe(true);
      // What it read after the other commit: `b` due in 5 s (a read from before it, `b`'s lease: an hour).
      const [row] = await withSql(url, (sql) => sql`SELECT next_due FROM webhook_destinations WHERE destination = 'http://r.test'`);
      expect(row.next_due).toEqual(later(5000));
      expect((await store.claimWebhooks(later(5000), 16, 1000, fair)).map((webhook) => webhook.id)).toEqual(["b"]);
    } finally {
      await store.close();
    }
  });

  test("retention deletes no more than 10,000 events in one statement (a long log in ranges, in one transaction): a reader finds the log whole or pruned, never a part", async () => {
    const url = await pg.createDatabase();
    const store = await createPostgresStore({ url, max: 4 });
    try {
      // Every DELETE on events, with how many rows it took (a statement trigger sees them all).
      await withSql(url, async (sql) => {
        await sql.unsafe(`
          CREATE TABLE deletes (rows bigint NOT NULL);
          CREATE FUNCTION count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN INSERT INTO deletes SELECT count(*) FROM gone; RETURN NULL; END $$;
          CREATE TRIGGER count_deleted AFTER DELETE ON events REFERENCING OLD TABLE AS gone
            FOR EACH STATEMENT EXECUTE FUNCTION count_deleted();`);
      });
      const finishedAt = new Date("2026-01-01T00:00:00.000Z");
      const long = 25_000;
      await store.createTask(newTask("long"));
      await store.markRunning("long", new Date());
      for (let first = 1; first <= long; first += 5_000) {
        await store.appendEvents("long", Array.from({ length: 5_000 }, (_, index) => ({ seq: first + index, frame: `{"n":${first + index}}` })));
      }
      await store.finishTask("long", outcome("completed", { finishedAt }), long + 1, "{}");
      for (let index = 0; index < 30; index++) {
        await store.createTask(newTask(`short-${index}`));
        await store.markRunning(`short-${index}`, new Date());
        await store.appendEvents(`short-${index}`, Array.from({ length: 999 }, (_, event) => ({ seq: event + 1, frame: "{}" })));
        await store.finishTask(`short-${index}`, outcome("completed", { finishedAt: new Date(finishedAt.getTime() + 1 + index) }), 1_000, "{}");
      }
      let done = false;
      const pruning = store.pruneEvents(new Date("2026-02-01T00:00:00.000Z")).finally(() => (done = true));
      const seen = new Set<number>();
      while (!done) {
        const events = await store.events("long", 0, long + 10);
        seen.add(events.length);
      }
      expect(await pruning).toBe(31);
      expect([...seen].every((length) => length === 0 || length === long + 1)).toBe(true);
      const rows: number[] = await withSql(url, async (sql) => (await sql`SELECT rows FROM deletes`).map((row: { rows: string }) => Number(row.rows)));
      expect(rows.reduce((sum, count) => sum + count, 0)).toBe(long + 1 + 30 * 1_000);
      expect(Math.max(...rows)).toBeLessThanOrEqual(10_000);
      expect(rows.filter((count) => count > 0).length).toBeGreaterThanOrEqual(6); // the long log's 3 ranges, the short ones' 3+ batches
      expect(await store.getTask("long")).toMatchObject({ last_seq: long + 1, pruned_through: long + 1 });
    } finally {
      await store.close();
    }
  });

  test("concurrent batched appends over many tasks all land, gapless (throughput printed, not asserted)", async () => {
    const store = await createPostgresStore({ url: await pg.createDatabase(), max: 10 });
    try {
      const tasks = 50;
      const batches = 20;
      const batch = 16;
      const frame = JSON.stringify({ type: "step", data: { event_type: "tool_call", step: 1, data: { id: "c", name: "calculator", arguments: { expression: "1+1" } }, timestamp: new Date().toISOString() } });
      for (let index = 0; index < tasks; index++) await store.createTask(newTask(`load-${index}`));
      const started = performance.now();
      await Promise.all(
        Array.from({ length: tasks }, async (_, index) => {
          for (let b = 0; b < batches; b++) {
            await store.appendEvents(`load-${index}`, Array.from({ length: batch }, (_, offset) => ({ seq: b * batch + offset + 1, frame })));
          }
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      const total = tasks * batches * batch;
      console.log(`postgres store: ${total} events in ${tasks * batches} appends of ${batch} over ${tasks} tasks: ${Math.round(total / seconds)} events/s`);
      for (let index = 0; index < tasks; index += 7) expect((await store.getTask(`load-${index}`))?.last_seq).toBe(batches * batch);
    } finally {
      await store.close();
    }
  });
});
