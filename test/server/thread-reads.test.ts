/**
 * What a thread's reads cost must not grow with the thread: a real server on loopback (SQLite), and
 * the query plans of the very SQL it prepared while serving the thread's requests (EXPLAIN on its
 * file) — a structural bound, independent of this machine's speed. A thread's tasks are never
 * deleted, so a read that walks them all gets slower with every task a client adds (a 30,000-task
 * thread held the event loop 17–28 ms at each new task of it, for the busy check alone).
 */
import { Database } from "bun:sqlite";
import { afterAll, expect, test } from "bun:test";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { until } from "../helpers/deferred.ts";

// Every statement the store prepares, to EXPLAIN what the server really ran (bun:sqlite caches
// prepared statements by their text: each distinct query is seen once, as it is first used).
const prepared = new Set<string>();
const query = Database.prototype.query;
Database.prototype.query = function (this: Database, sql: string) {
  prepared.add(sql);
  return query.call(this, sql);
} as typeof Database.prototype.query;

let server: TestServer | undefined;
afterAll(async () => {
  Database.prototype.query = query;
  await server?.close();
});

/** SQLite's plan of `sql` on the server's file, one step a line. */
function plan(dataDir: string, sql: string): string[] {
  const db = new Database(`${dataDir}/agentkit.sqlite`, { readonly: true });
  try {
    return (db.query(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[]).map((row) => row.detail);
  } finally {
    db.close();
  }
}

test("a thread's busy check finds its unfinished tasks through the (thread_id, status) index, not by reading every task of the thread", async () => {
  server = await startTestServer({
    agents: [{ tools: ["calculator"] }, { tools: ["calculator"], approval: ["calculator"] }],
  });
  const http = server.http.bind(server);
  const thread = (await (await http("/threads", { method: "POST" })).json()) as { id: string };
  const post = (body: Record<string, unknown>) => http(`/threads/${thread.id}/tasks`, { method: "POST", json: body });
  // Finished tasks, then one that waits for an approval: the thread is busy.
  for (let index = 0; index < 5; index++) expect((await post({ input: `hello ${index}` })).status).toBe(201);
  const waiting = (await (await post({ input: "What is 2 + 2?", agent: "agent1" })).json()) as { id: string };
  await until(async () => ((await (await http(`/tasks/${waiting.id}`)).json()) as { status: string }).status === "waiting", "the task to wait for its approval");

  // The busy check still finds it (behaviour unchanged)…
  const refused = await post({ input: "and now?", on_busy: "reject" });
  expect(refused.status).toBe(409);
  expect(((await refused.json()) as { error: { message: string } }).error.message).toContain(waiting.id);
  const thread_ = (await (await http(`/threads/${thread.id}`)).json()) as { task_count: number; tasks: unknown[] };
  expect(thread_.task_count).toBe(6);
  expect(thread_.tasks.length).toBe(6);

  // …and every query of a thread's tasks by status the server ran walks only the rows of those
  // statuses: each SEARCH of the thread's tasks uses the (thread_id, status) index. The thread-only
  // index (thread_id) means reading each of the thread's tasks to test its status.
  const byStatus = [...prepared].filter((sql) => /thread_id = \$thread_id/.test(sql) && /\bstatus (=|IN\b)/.test(sql));
  expect(byStatus.length).toBeGreaterThan(0);
  for (const sql of byStatus) {
    const steps = plan(server.dataDir, sql).filter((step) => step.startsWith("SEARCH tasks") || step.startsWith("SCAN tasks"));
    expect(steps.length, sql).toBeGreaterThan(0);
    for (const step of steps.filter((step) => !step.includes("(id=?)"))) {
      expect(step, sql).toContain("USING INDEX tasks_thread_status (thread_id=? AND status=?");
    }
  }
});
