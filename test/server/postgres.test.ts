/**
 * The server on the PostgreSQL store, end to end: REST and WebSocket as on SQLite, cancel, a
 * restart on the same database, and the `agentkit` entry point choosing PostgreSQL from
 * AGENTKIT_DATABASE_URL (and stopping with one line when it cannot reach it).
 */
import { listeningPort } from "../helpers/binary.ts";
import { SQL } from "bun";
import { afterEach, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { createPostgresStore } from "../../src/store/postgres-store.ts";
import { until, within } from "../helpers/deferred.ts";
import { describePostgres } from "../helpers/postgres.ts";
import { startPostgresTestServer } from "../helpers/postgres-server.ts";
import { callTools, answer, createScriptedModel } from "../helpers/scripted-model.ts";
import { tempDir, type TestServer } from "../helpers/server.ts";
import { createGateTool } from "../helpers/tools.ts";

const root = join(import.meta.dir, "..", "..");

describePostgres("the server on PostgreSQL", (pg) => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  test("REST and WebSocket: create, watch (live and late), read, list, replay — the same frames everywhere", async () => {
    server = await startPostgresTestServer(await pg.createDatabase());
    const metadata = { customer: "ACME", tags: ["a", "b"], nested: { "ключ": "値" } };
    const created = await server.createTask({ input: "What is 12 * (3 + 4)?", metadata });
    const live = await server.watch(created.id);
    const result = await live.result();
    expect(result.data).toMatchObject({ status: "completed", output: "12 * (3 + 4) = 84" });
    expect(live.seqs).toEqual([1, 2, 3, 4, 5, 6]);

    const task = (await (await server.http(`/tasks/${created.id}`)).json()) as Record<string, unknown>;
    expect(task).toMatchObject({ id: created.id, status: "completed", metadata, last_seq: 6, pruned_through: 0, error: null });
    expect(String(task.created_at)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    const late = await server.watch(created.id, "after=2");
    await late.result();
    expect(late.seqs).toEqual([3, 4, 5, 6]);
    expect(late.durable).toEqual(live.durable.slice(2));

    const events = (await (await server.http(`/tasks/${created.id}/events?after=0`)).json()) as { events: unknown[]; last_seq: number };
    expect(events.last_seq).toBe(6);
    expect(events.events.map((event) => JSON.stringify(event))).toEqual(live.durable);

    const second = await server.createTask({ input: "What time is it?" });
    await (await server.watch(second.id)).result();
    const list = (await (await server.http("/tasks?limit=1")).json()) as { tasks: { id: string }[]; next_cursor: string };
    expect(list.tasks.map((t) => t.id)).toEqual([second.id]);
    const next = (await (await server.http(`/tasks?limit=1&cursor=${list.next_cursor}`)).json()) as { tasks: { id: string }[]; next_cursor: null };
    expect(next).toMatchObject({ tasks: [{ id: created.id }], next_cursor: null });
    expect((await server.http("/tasks?cursor=garbage")).status).toBe(400);
  });

  test("cancel reaches every watcher once; the task stays cancelled", async () => {
    const gate = createGateTool();
    server = await startPostgresTestServer(await pg.createDatabase(), {
      models: { m: createScriptedModel([callTools([{ id: "w", name: "wait", arguments: "{}" }]), answer("never")]) },
      tools: [gate.tool],
      agents: [{ model: "test/m", tools: ["wait"] }],
    });
    const task = await server.createTask({ input: "wait" });
    const watchers = await Promise.all([server.watch(task.id), server.watch(task.id)]);
    await within(gate.started, 5000, "the tool to start");
    const cancelled = await server.http(`/tasks/${task.id}/cancel`, { method: "POST" });
    expect(cancelled.status).toBe(200);
    expect(await cancelled.json()).toMatchObject({ status: "cancelled", stop_reason: "cancelled" });
    for (const watcher of watchers) {
      expect((await watcher.result()).data).toMatchObject({ status: "cancelled" });
      expect(watcher.frames.filter((frame) => frame.type === "result")).toHaveLength(1);
    }
    gate.release();
    const again = await server.http(`/tasks/${task.id}/cancel`, { method: "POST" });
    expect(await again.json()).toMatchObject({ status: "cancelled" });
  });

  test("a statement cut short by PostgreSQL (a lock past the statement timeout) stops the run without ending the task: it is taken up again from its log and completes", async () => {
    const url = await pg.createDatabase();
    server = await startPostgresTestServer(url, { agents: [{ name: "default", model: "demo/bench", tools: ["calculator"], max_steps: 100 }] }, { statementTimeoutMs: 300 });
    const task = await server.createTask({ input: JSON.stringify({ steps: 40, delay_ms: 50 }) });
    const watcher = await server.watch(task.id);
    await until(async () => ((await (await server!.http(`/tasks/${task.id}`)).json()) as { last_seq: number }).last_seq >= 6, "some events stored");
    // Another session holds the events table for 1 s: the run's next append times out (57014).
    const locker = new SQL(url, { max: 1 });
    try {
      await locker.begin(async (tx) => {
        await tx`LOCK TABLE events IN ACCESS EXCLUSIVE MODE`;
        await Bun.sleep(1_000);
      });
    } finally {
      await locker.close();
    }
    const result = await watcher.result(20_000);
    expect(result.data).toMatchObject({ status: "completed" });
    const events = await server.storedLog(task.id);
    expect(events.some((frame) => frame.includes('"event_type":"resumed"') && frame.includes('"store_failure"'))).toBe(true);
  });

  test("a read PostgreSQL cuts short (a lock past the statement timeout): REST answers 503 `unavailable` with Retry-After, a watch `unavailable` and 1001 — not 500 / 1011; both work once the lock is gone", async () => {
    const url = await pg.createDatabase();
    server = await startPostgresTestServer(url, {}, { statementTimeoutMs: 300 });
    const task = await server.createTask({ input: "What is 2 + 2?" });
    await (await server.watch(task.id)).result();
    // Another session holds the tasks table: every read of it times out (57014) meanwhile.
    const locker = new SQL(url, { max: 1 });
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const holding = locker.begin(async (tx) => {
      await tx`LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE`;
      locked();
      await released;
    });
    try {
      await within(isLocked, 5000, "the lock");
      const read = await server.http(`/tasks/${task.id}`);
      expect(read.status).toBe(503);
      expect(read.headers.get("retry-after")).toBe("2");
      const body = (await read.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("unavailable");
      expect(body.error.message).toBe("The database could not complete the request; try again shortly");
      const socket = await server.watch(task.id);
      expect((await socket.closed).code).toBe(1001);
      expect(socket.frames).toEqual([{ type: "error", data: { code: "unavailable", message: "The data store could not be read; try again shortly" } }]);
    } finally {
      release();
      await holding;
      await locker.close();
    }
    expect((await server.http(`/tasks/${task.id}`)).status).toBe(200);
    expect((await (await server.watch(task.id)).result()).data).toMatchObject({ status: "completed" });
  });

  test("a restart on the same database: a task left running resumes from its log; a queued one runs", async () => {
    const url = await pg.createDatabase();
    const store = await createPostgresStore({ url });
    await store.createTask({ id: "was-running", owner: "anonymous", agent: "default", input: "What is 1 + 1?", metadata: {}, createdAt: new Date() });
    await store.createTask({ id: "was-queued", owner: "anonymous", agent: "default", input: "What is 3 + 4?", metadata: {}, createdAt: new Date() });
    await store.markRunning("was-running", new Date());
    await store.appendEvents("was-running", [
      { seq: 1, frame: JSON.stringify({ type: "step", seq: 1, data: { event_type: "usage", step: 1, data: { input_tokens: 3, output_tokens: 4 }, timestamp: new Date().toISOString() } }) },
    ]);
    await store.close();

    server = await startPostgresTestServer(url);
    const running = await server.watch("was-running");
    const result = await running.result();
    expect(result.data).toMatchObject({ status: "completed", output: "1 + 1 = 2" });
    expect(running.seqs).toEqual(Array.from({ length: result.seq! }, (_, index) => index + 1));
    expect(running.frames.find((frame) => frame.seq === 2)).toMatchObject({ type: "step", data: { event_type: "resumed", data: { reason: "restart", attempt: 2 } } });
    const queued = await server.watch("was-queued");
    expect((await queued.result()).data).toMatchObject({ status: "completed", output: "3 + 4 = 7" });
    const before = await (await server.http("/tasks/was-queued")).json();
    await server.close();

    server = await startPostgresTestServer(url);
    expect(await (await server.http("/tasks/was-queued")).json()).toEqual(before);
  });

  test("`agentkit` with AGENTKIT_DATABASE_URL serves from PostgreSQL; an unreachable database stops start-up with one line, exit 2", async () => {
    const url = await pg.createDatabase();
    const dataDir = tempDir();
    const child = Bun.spawn([process.execPath, join(root, "src/main.ts"), "--port", "0", "--data-dir", dataDir], {
      env: { PATH: process.env.PATH, AGENTKIT_DATABASE_URL: url },
      stdout: "ignore",
      stderr: "pipe",
    });
    try {
      const { port, log: logged } = await listeningPort(child);
      const log = logged();
      expect(log).toContain("store: PostgreSQL");
      const response = await fetch(`http://127.0.0.1:${port}/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input: "What is 6 * 7?" }) });
      const { id } = (await response.json()) as { id: string };
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/tasks/${id}`);
      await within(
        new Promise<void>((resolve) => ws.addEventListener("message", (event) => JSON.parse(String(event.data)).type === "result" && resolve())),
        10_000,
        "the result",
      );
      ws.close();
      child.kill("SIGTERM");
      expect(await within(child.exited, 10_000, "exit")).toBe(0);
      // The task is in PostgreSQL, not in a SQLite file.
      const sql = new SQL(url, { max: 1 });
      const [row] = await sql`SELECT status, last_seq FROM tasks WHERE id = ${id}`;
      await sql.close();
      expect(row).toMatchObject({ status: "completed", last_seq: "6" });
      expect(await Bun.file(join(dataDir, "agentkit.sqlite")).exists()).toBe(false);
    } finally {
      child.kill("SIGKILL");
    }

    const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const closedPort = listener.port;
    listener.stop(true);
    const failed = Bun.spawnSync(
      [process.execPath, join(root, "src/main.ts"), "--port", "0", "--data-dir", dataDir, "--database-url", `postgres://agent:s3cret-Pa55@127.0.0.1:${closedPort}/agentkit`],
      { env: { PATH: process.env.PATH }, stderr: "pipe", stdout: "pipe" },
    );
    const stderr = failed.stderr.toString();
    expect(failed.exitCode).toBe(2);
    expect(stderr).toStartWith(`agentkit: cannot start: PostgreSQL at postgres://agent@127.0.0.1:${closedPort}/agentkit: `);
    expect(stderr.trim().split("\n")).toHaveLength(1);
    expect(stderr).not.toContain("s3cret-Pa55");
    rmSync(dataDir, { recursive: true, force: true });
  });

  test("100 tasks at once on the bench model: every event persisted once and delivered gapless to its watcher (throughput printed, not asserted)", async () => {
    server = await startPostgresTestServer(await pg.createDatabase(), {
      agents: [{}, { name: "bench", model: "demo/bench", tools: ["calculator"], max_steps: 1000 }],
      config: { maxConcurrentTasks: 100, maxQueuedTasks: 1000 },
    });
    const tasks = 100;
    const steps = 50;
    const started = performance.now();
    const ids = await Promise.all(Array.from({ length: tasks }, async () => (await server!.createTask({ agent: "bench", input: JSON.stringify({ steps }) })).id));
    const watchers = await Promise.all(ids.map((id) => server!.watch(id)));
    await Promise.all(watchers.map((watcher) => watcher.result(60_000)));
    const seconds = (performance.now() - started) / 1000;
    let persisted = 0;
    for (const id of ids) persisted += ((await (await server.http(`/tasks/${id}`)).json()) as { last_seq: number }).last_seq;
    console.log(`server on postgres: ${tasks} tasks × ${steps} steps, ${persisted} events persisted in ${seconds.toFixed(2)} s: ${Math.round(persisted / seconds)} events/s`);
    for (const watcher of watchers) expect(watcher.seqs).toEqual(Array.from({ length: watcher.seqs.length }, (_, index) => index + 1));
    expect(persisted).toBe(tasks * (3 * steps + 2));
    expect(persisted).toBe(watchers.reduce((sum, watcher) => sum + watcher.seqs.length, 0));
  });
});
