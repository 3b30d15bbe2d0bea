/**
 * What the PostgreSQL store reads to answer for a thread must not grow with the thread: a thread's
 * tasks are never deleted, so a read that walks them all gets slower with every task a client adds
 * (on a 30,000-task thread: 6–8 ms to count them at each read of the thread, 72 ms for the busy check
 * of each new task, 10 ms per queued task behind a running one at every claim of every node). Nor
 * may a page of `GET /tasks` by a status read more than that status's tasks.
 *
 * Measured on the very SQL the store ran against a real server (test/helpers/postgres.ts), by what
 * the server itself counted (`pg_stat_user_tables`, `pg_stat_user_indexes`: sequential scans of
 * tasks, index scans, index entries read) — a structural bound, independent of this machine's speed.
 * The store gets one connection, and its statistics are read once it has closed it (a backend
 * flushes them as it exits). Under `plan_cache_mode` both custom and generic plans: Bun prepares
 * every statement, and PostgreSQL may switch a prepared statement to its generic plan after five
 * runs — the plan that walked the whole thread for the busy check.
 */
import { SQL } from "bun";
import { expect, test } from "bun:test";
import { createPostgresStore, type PostgresTaskStore } from "../../src/store/postgres-store.ts";
import { UNFINISHED_STATUSES } from "../../src/protocol/task.ts";
import { describePostgres, withSql } from "../helpers/postgres.ts";
import { until } from "../helpers/deferred.ts";
import { newTask } from "./conformance.ts";

/** Ended tasks in the long thread: more than any bound below, so a walk of the thread shows. */
const THREAD_TASKS = 3000;

interface Reads {
  /** Sequential scans of tasks. */
  seqScans: number;
  /** Index scans of tasks (any index). */
  indexScans: number;
  /** Index entries of tasks read. */
  entries: number;
}

describePostgres("PostgreSQL: a thread's reads do not grow with the thread", (pg) => {

  async function reads(url: string): Promise<Reads> {
    return withSql(url, async (sql) => {
      const [row] = await sql`
        SELECT t.seq_scan::bigint AS seq_scans, coalesce(sum(i.idx_scan), 0)::bigint AS index_scans, coalesce(sum(i.idx_tup_read), 0)::bigint AS entries
        FROM pg_stat_user_tables t LEFT JOIN pg_stat_user_indexes i ON i.relid = t.relid
        WHERE t.relname = 'tasks' GROUP BY t.seq_scan`;
      return { seqScans: Number(row.seq_scans), indexScans: Number(row.index_scans), entries: Number(row.entries) };
    });
  }

  /**
   * A database with 1,000 threads of 3 tasks, then the thread `long` (THREAD_TASKS ended tasks, written
   * as the store writes them, interleaved with tasks of no thread) and the thread `short`, and `extra`
   * run in it after that. Many short threads, as a server has: the planner expects a thread to have
   * a few tasks, and plans a walk of one as cheap.
   */
  async function database(extra: (sql: SQL) => Promise<void> = async () => {}): Promise<string> {
    const url = await pg.createDatabase();
    await (await createPostgresStore({ url, max: 1 })).close(); // the schema
    await withSql(url, async (sql) => {
      await sql`INSERT INTO threads (id, owner, created_at) SELECT 'many-' || i, 'alice', now() FROM generate_series(1, 1000) i`;
      await sql`
        INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at, finished_at, last_seq, thread_id)
        SELECT 'many-' || i || '-' || j, 'alice', 'default', '"hi"', '{}', 'completed', now(), now(), 2, 'many-' || i
        FROM generate_series(1, 1000) i, generate_series(1, 3) j`;
      await sql`INSERT INTO threads (id, owner, created_at) VALUES ('long', 'alice', now()), ('short', 'alice', now())`;
      await sql`
        INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at, finished_at, last_seq, thread_id)
        SELECT 'ended-' || i, 'alice', 'default', to_json('turn ' || i), '{}', CASE WHEN i % 7 = 0 THEN 'failed' ELSE 'completed' END,
               now(), now(), 2, CASE WHEN i % 3 = 0 THEN NULL ELSE 'long' END
        FROM generate_series(1, ${Math.round(THREAD_TASKS * 1.5)}::integer) i`;
      await sql`INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at, thread_id)
                VALUES ('short-1', 'alice', 'default', '"hi"', '{}', 'completed', now(), 'short')`;
      await extra(sql);
      await sql`VACUUM ANALYZE tasks`;
    });
    return url;
  }

  /**
   * What `body` read of tasks, on one connection under `planCacheMode`. A `getTask` after it is the
   * sign its statistics arrived: exactly one index scan of its own, which is taken off.
   */
  async function measured(url: string, planCacheMode: string, body: (store: PostgresTaskStore) => Promise<void>): Promise<Reads> {
    const database = new URL(url).pathname.slice(1);
    await withSql(url, (sql) => sql.unsafe(`ALTER DATABASE ${database} SET plan_cache_mode = ${planCacheMode}`));
    const before = await reads(url);
    const store = await createPostgresStore({ url, max: 1 });
    try {
      await body(store);
      expect((await store.getTask("short-1"))?.id).toBe("short-1");
    } finally {
      await store.close();
    }
    let after = before;
    await until(async () => (after = await reads(url)).indexScans > before.indexScans, "the store's statistics to be flushed");
    return { seqScans: after.seqScans - before.seqScans, indexScans: after.indexScans - before.indexScans - 1, entries: after.entries - before.entries - 1 };
  }

  for (const mode of ["force_custom_plan", "force_generic_plan"]) {
    test(`reading a thread (getThread, listThreads) reads none of its tasks: its count and newest task are on its row (${mode})`, async () => {
      const url = await database();
      const newest = `ended-${Math.round(THREAD_TASKS * 1.5) - 1}`; // the last of the long thread's (a multiple of 3 has no thread)
      const read = await measured(url, mode, async (store) => {
        for (let run = 0; run < 8; run++) {
          expect(await store.getThread("long")).toMatchObject({ id: "long", task_count: THREAD_TASKS, last_task_id: newest });
          const page = await store.listThreads({ limit: 100 });
          expect(page.threads.map((thread) => [thread.id, thread.task_count, thread.last_task_id])).toEqual([
            ["short", 1, "short-1"],
            ["long", THREAD_TASKS, newest],
            ...Array.from({ length: 98 }, (_, index) => [`many-${1000 - index}`, 3, `many-${1000 - index}-3`]),
          ]);
        }
      });
      expect(read).toEqual({ seqScans: 0, indexScans: 0, entries: 0 });
    });

    test(`the busy check of a long thread reads its unfinished tasks, not every task of it (${mode})`, async () => {
      const url = await database(async (sql) => {
        await sql`INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at, thread_id)
                  VALUES ('waiting', 'alice', 'default', '"hi"', '{}', 'waiting', now(), 'long'),
                         ('queued', 'alice', 'default', '"hi"', '{}', 'queued', now(), 'long')`;
      });
      const read = await measured(url, mode, async (store) => {
        // Past the five runs after which PostgreSQL may prefer a prepared statement's generic plan.
        for (let run = 0; run < 10; run++) {
          const busy = await store.threadTasks("long", { limit: 200, statuses: UNFINISHED_STATUSES });
          expect(busy.map((task) => [task.id, task.status])).toEqual([["waiting", "waiting"], ["queued", "queued"]]);
        }
        expect((await store.threadTasks("long", { limit: 200, statuses: ["queued"] })).map((task) => task.id)).toEqual(["queued"]);
      });
      expect(read.seqScans).toBe(0);
      // 11 reads that each walk the thread read 11 × 3,000 entries; a walk per status reads its rows.
      expect(read.entries).toBeLessThan(THREAD_TASKS / 10);
    });

    test(`a claim passes over queued tasks behind a running one of a long thread without reading the thread (${mode})`, async () => {
      const url = await database(async (sql) => {
        await sql`INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at, thread_id, lease_owner, lease_expires_at, attempt)
                  VALUES ('running', 'alice', 'default', '"hi"', '{}', 'running', now(), 'long', 'n1', now() + interval '1 hour', 1)`;
        await sql`INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at, thread_id)
                  SELECT 'behind-' || i, 'alice', 'default', '"hi"', '{}', 'queued', now(), 'long' FROM generate_series(1, 20) i`;
        await sql`INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at) VALUES ('free', 'alice', 'default', '"hi"', '{}', 'queued', now())`;
      });
      const read = await measured(url, mode, async (store) => {
        const claim = await store.claimNext("n2", 60_000, new Date());
        expect(claim?.task.id).toBe("free");
        expect(await store.claimNext("n2", 60_000, new Date())).toBeUndefined();
      });
      expect(read.seqScans).toBe(0);
      // 2 claims × 20 queued tasks, each reading the thread: 120,000 entries; a probe per status each reads a row or two.
      expect(read.entries).toBeLessThan(THREAD_TASKS / 10);
    });

    test(`a page of GET /tasks by a status that few tasks have reads those, not every task (${mode})`, async () => {
      const url = await database(async (sql) => {
        await sql`INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at, finished_at)
                  VALUES ('cancelled-1', 'alice', 'default', '"hi"', '{}', 'cancelled', now(), now())`;
      });
      const read = await measured(url, mode, async (store) => {
        // Past the five runs after which PostgreSQL may prefer a prepared statement's generic plan, and
        // a status most tasks have in between (the generic plan is made for the average status).
        for (let run = 0; run < 8; run++) {
          expect((await store.listTasks({ status: "completed", limit: 20 })).tasks).toHaveLength(20);
          expect((await store.listTasks({ status: "cancelled", limit: 20 })).tasks.map((task) => task.id)).toEqual(["cancelled-1"]);
          expect((await store.listTasks({ status: "running", limit: 20 })).tasks).toEqual([]);
        }
      });
      expect(read.seqScans).toBe(0);
      // A walk of every task newest first, testing each one's status, reads ~10,500 entries per page.
      expect(read.entries).toBeLessThan(THREAD_TASKS / 2);
    });
  }

  test("two nodes adding tasks to one thread at once: its count stays exact and its newest task is the one created last", async () => {
    const url = await pg.createDatabase();
    const one = await createPostgresStore({ url, max: 4 });
    const two = await createPostgresStore({ url, max: 4 });
    try {
      await one.createThread({ id: "shared", owner: "alice", createdAt: new Date() });
      const each = 150;
      await Promise.all(
        [one, two].flatMap((store, node) =>
          Array.from({ length: each }, (_, index) => store.createTask(newTask(`n${node}-${index}`, { owner: "alice", threadId: "shared" }))),
        ),
      );
      const [counted] = await withSql(url, (sql) => sql`
        SELECT count(*)::integer AS tasks, (SELECT id FROM tasks WHERE thread_id = 'shared' ORDER BY row_id DESC LIMIT 1) AS newest
        FROM tasks WHERE thread_id = 'shared'`);
      expect(counted.tasks).toBe(2 * each);
      for (const store of [one, two]) {
        expect(await store.getThread("shared")).toMatchObject({ task_count: 2 * each, last_task_id: counted.newest });
      }
    } finally {
      await one.close();
      await two.close();
    }
  });

  test("a task moved out of a thread (or deleted) while another node adds one to it: the thread's newest task is the added one", async () => {
    const url = await pg.createDatabase();
    const store = await createPostgresStore({ url, max: 2 });
    const inserter = new SQL(url, { max: 1 });
    const mover = new SQL(url, { max: 1 });
    try {
      await store.createThread({ id: "x", owner: "alice", createdAt: new Date() });
      await store.createThread({ id: "y", owner: "alice", createdAt: new Date() });
      await store.createTask(newTask("a", { owner: "alice", threadId: "x" }));
      await store.createTask(newTask("b", { owner: "alice", threadId: "x" }));
      // A node adds c to x, its transaction still open (its trigger holds x's row)...
      const tx = await inserter.reserve();
      await tx`BEGIN`;
      await tx`INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at, thread_id)
               VALUES ('c', 'alice', 'default', '"hi"', '{}', 'queued', now(), 'x')`;
      // ...as an operator moves b, x's newest committed task, to y: its trigger waits for x's row.
      const moved = mover`UPDATE tasks SET thread_id = 'y' WHERE id = 'b'`.then(() => true);
      await until(async () => {
        const [row] = await withSql(url, (sql) => sql`SELECT count(*)::integer AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE tasks SET thread_id%'`);
        return row.n === 1;
      }, "the move to wait for the thread's row");
      await tx`COMMIT`;
      tx.release();
      expect(await moved).toBe(true);
      // Before: x kept a as its newest (the move's statement counted without c, which committed meanwhile).
      expect(await store.getThread("x")).toMatchObject({ task_count: 2, last_task_id: "c" });
      expect(await store.getThread("y")).toMatchObject({ task_count: 1, last_task_id: "b" });
    } finally {
      await inserter.close();
      await mover.close();
      await store.close();
    }
  });
});
