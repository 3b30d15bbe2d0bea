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

test("reading a thread counts none of its tasks: its task count and newest task are kept on its row, right through every way a task joins it", async () => {
  await server?.close();
  server = await startTestServer({ agents: [{ tools: ["calculator"] }] });
  const http = server.http.bind(server);
  const thread = (await (await http("/threads", { method: "POST" })).json()) as { id: string };
  let newest = "";
  for (let index = 0; index < 4; index++) {
    const response = await http(`/threads/${thread.id}/tasks`, { method: "POST", json: { input: `hello ${index}` } });
    newest = ((await response.json()) as { id: string }).id;
  }
  // POST /tasks with thread_id, too.
  const viaTasks = (await (await http("/tasks", { method: "POST", json: { input: "and one more", thread_id: thread.id } })).json()) as { id: string };
  expect(await (await http(`/threads/${thread.id}`)).json()).toMatchObject({ task_count: 5, last_task_id: viaTasks.id });
  expect(newest).not.toBe(viaTasks.id);

  // A finished task without a thread, continued over AG-UI: a thread of its id, with the task as its first turn (adopted).
  const lone = await server.createTask({ input: "What is 2 + 3?" });
  await until(async () => ((await (await http(`/tasks/${lone.id}`)).json()) as { status: string }).status === "completed", "the task to complete");
  const run = await http("/ag-ui", {
    method: "POST",
    json: { threadId: lone.id, runId: "r1", messages: [{ id: "m1", role: "user", content: "and now?" }] },
  });
  expect(run.status).toBe(200);
  await run.text();
  const adopted = (await (await http(`/threads/${lone.id}`)).json()) as { task_count: number; last_task_id: string; tasks: { id: string }[] };
  expect(adopted.task_count).toBe(2);
  expect(adopted.tasks.map((task) => task.id)[0]).toBe(lone.id);
  expect(adopted.last_task_id).toBe(adopted.tasks.at(-1)!.id);
  const listed = (await (await http("/threads?limit=100")).json()) as { threads: { id: string; task_count: number; last_task_id: string }[] };
  expect(listed.threads.map((t) => [t.id, t.task_count, t.last_task_id])).toEqual([
    [lone.id, 2, adopted.last_task_id],
    [thread.id, 5, viaTasks.id],
  ]);

  // What the server ran to read threads touches the threads table alone: no count over the thread's tasks.
  const threadReads = [...prepared].filter((sql) => /\bFROM threads\b/.test(sql) && /^\s*SELECT/i.test(sql));
  expect(threadReads.length).toBeGreaterThan(0);
  for (const sql of threadReads) {
    const steps = plan(server.dataDir, sql);
    expect(steps.filter((step) => /\btasks\b/.test(step)), sql).toEqual([]);
  }
});
