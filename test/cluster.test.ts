/**
 * Cluster mode with the compiled binary: three `agentkit` processes on one PostgreSQL database
 * (issue 9). Each test starts its own nodes on a database of its own — port 0, a data dir each,
 * `--node-id`, `--max-concurrent 2`, a short lease (AGENTKIT_LEASE_MS 1500, renewed every 500 ms)
 * and poll (AGENTKIT_POLL_MS 300) so that takeovers happen within seconds — and kills them at the
 * end. Agents come from a config file and use the built-in `demo/bench` model (input
 * `{"steps":N,"delay_ms":M}`: N steps, each one `calculator` call, M ms per model call).
 *
 * Which node ran a task is read from the nodes' logs (the `task finished` line is written by the
 * node that stored the result) and, while it runs, from the `lease_owner` column: the API does not
 * say which node runs a task.
 *
 * Every wait is bounded; nothing asserts a duration except as a bounded wait (e.g. a takeover
 * within lease + 2 s). Durations worth knowing (cancel, takeover, handover) are printed.
 */
import { SQL } from "bun";
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { buildBinary, launchBinary, type BinaryProcess } from "./helpers/binary.ts";
import { within } from "./helpers/deferred.ts";
import { startFreezableProxy } from "./helpers/tcp-proxy.ts";
import { describePostgres, postgres, postgresBinDir, startCluster, type OwnCluster } from "./helpers/postgres.ts";
import { tempDir } from "./helpers/server.ts";
import { connect, type TestSocket } from "./helpers/ws-client.ts";

const LEASE_MS = 1500;
const POLL_MS = 300;

let workDir: string;
let binary: string;
let configPath: string;

if (postgres.ok) {
  beforeAll(async () => {
    workDir = tempDir();
    binary = buildBinary(workDir);
    configPath = join(workDir, "agents.json");
    await Bun.write(
      configPath,
      JSON.stringify({
        agents: [
          { name: "ticker", model: "demo/bench", tools: ["calculator"], max_steps: 10000 },
          { name: "brittle", model: "demo/bench", tools: ["calculator"], max_steps: 10000, on_interrupt: "fail" },
          { name: "slow", model: "demo/slow", tools: ["calculator"] },
        ],
      }),
    );
  }, 60_000);
  afterAll(() => rmSync(workDir, { recursive: true, force: true }));
}

/** A small seeded PRNG (mulberry32), so a failing race can be replayed with CLUSTER_TEST_SEED. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Node extends BinaryProcess {
  id: string;
  role: string;
}

interface NodeOptions {
  role?: "all" | "api" | "worker";
  maxConcurrent?: number;
  leaseMs?: number;
  pollMs?: number;
  env?: Record<string, string>;
}

/** Polls `check` every `every` ms until it returns a value other than undefined/false; bounded. */
async function poll<T>(check: () => Promise<T | undefined | false> | T | undefined | false, what: string, ms: number, every = 25): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    await Bun.sleep(every);
  }
}

interface Frame {
  type: string;
  seq?: number;
  data?: any;
}

/** The durable frames of a log, parsed. */
const parse = (frames: readonly string[]): Frame[] => frames.map((frame) => JSON.parse(frame) as Frame);

/** The step events of a log, by type. */
function steps(frames: readonly string[], type: string): any[] {
  return parse(frames)
    .filter((frame) => frame.type === "step" && frame.data.event_type === type)
    .map((frame) => frame.data);
}

describePostgres("a cluster of agentkit nodes on one PostgreSQL database (the compiled binary)", (pg) => {
  let nodes: Node[] = [];
  let sockets: TestSocket[] = [];
  let pools: SQL[] = [];
  let ownClusters: OwnCluster[] = [];

  afterEach(async () => {
    for (const socket of sockets) socket.close();
    for (const node of nodes) {
      node.child.kill("SIGCONT");
      node.child.kill("SIGKILL");
    }
    await Promise.all(nodes.map((node) => node.exited));
    await Promise.all(pools.map((pool) => pool.close({ timeout: 0 }).catch(() => {})));
    for (const cluster of ownClusters) await cluster.stop();
    nodes = [];
    sockets = [];
    pools = [];
    ownClusters = [];
  });

  async function startNode(url: string, id: string, options: NodeOptions = {}): Promise<Node> {
    const role = options.role ?? "all";
    const dataDir = join(workDir, `${id}-${crypto.randomUUID().slice(0, 8)}`);
    const args = ["serve", "--data-dir", dataDir, "--config", configPath, "--node-id", id, "--max-concurrent", String(options.maxConcurrent ?? 2), "--role", role];
    const env = {
      AGENTKIT_DATABASE_URL: url,
      AGENTKIT_LEASE_MS: String(options.leaseMs ?? LEASE_MS),
      AGENTKIT_POLL_MS: String(options.pollMs ?? POLL_MS),
      ...options.env,
    };
    const node = { ...(await launchBinary(binary, args, env, { cwd: workDir })), id, role };
    nodes.push(node);
    return node;
  }

  async function startNodes(url: string, ids: string[], options: NodeOptions = {}): Promise<Node[]> {
    return Promise.all(ids.map((id) => startNode(url, id, options)));
  }

  function database(url: string): SQL {
    const pool = new SQL(url, { max: 2 });
    pools.push(pool);
    return pool;
  }

  async function create(node: Node, agent: string, input: unknown): Promise<string> {
    const response = await fetch(`${node.base}/tasks`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ agent, input: typeof input === "string" ? input : JSON.stringify(input) }),
    });
    if (response.status !== 201) throw new Error(`POST /tasks on ${node.id} → ${response.status}: ${await response.text()}`);
    return ((await response.json()) as { id: string }).id;
  }

  async function getTask(node: Node, id: string): Promise<any> {
    const response = await fetch(`${node.base}/tasks/${id}`);
    if (response.status !== 200) throw new Error(`GET /tasks/${id} on ${node.id} → ${response.status}: ${await response.text()}`);
    return response.json();
  }

  /** The task's stored log through `GET /tasks/:id/events`, every page: frame texts in seq order. */
  async function storedLog(node: Node, id: string): Promise<string[]> {
    const frames: string[] = [];
    for (;;) {
      const response = await fetch(`${node.base}/tasks/${id}/events?after=${frames.length}&limit=1000`);
      if (response.status !== 200) throw new Error(`GET /tasks/${id}/events on ${node.id} → ${response.status}`);
      const page = (await response.json()) as { last_seq: number; events: { seq: number }[] };
      frames.push(...page.events.map((event) => JSON.stringify(event)));
      // A page stops at 1,000 events or ~1 MiB of frames: the log ends at last_seq.
      if (page.events.length === 0 || page.events.at(-1)!.seq >= page.last_seq) return frames;
    }
  }

  const TERMINAL = ["completed", "failed", "cancelled", "timed_out"];
  async function waitTerminal(node: Node, id: string, ms = 30_000): Promise<any> {
    return poll(async () => {
      const task = await getTask(node, id);
      return TERMINAL.includes(task.status) ? task : undefined;
    }, `task ${id} to end`, ms, 50);
  }

  async function watch(node: Node, id: string, after = 0): Promise<TestSocket> {
    const socket = await connect(`${node.ws}/ws/tasks/${id}${after ? `?after=${after}` : ""}`);
    sockets.push(socket);
    return socket;
  }

  /** The task's row as the database has it (what the API does not show: lease and attempt). */
  async function row(sql: SQL, id: string): Promise<{ status: string; attempt: number; owner: string | null; lastSeq: number }> {
    const [found] = await sql`SELECT status, attempt, lease_owner, last_seq FROM tasks WHERE id = ${id}`;
    return { status: found.status, attempt: Number(found.attempt), owner: found.lease_owner, lastSeq: Number(found.last_seq) };
  }

  /** The nodes whose log says they stored the task's result. */
  const finishedOn = (candidates: Node[], id: string) => candidates.filter((node) => node.log().includes(`task finished {"task":"${id}"`));

  /** A gapless log 1..n whose only `result` is its last frame; every tool call has exactly one outcome. */
  function expectWellFormed(log: string[]) {
    const frames = parse(log);
    expect(frames.map((frame) => frame.seq)).toEqual(Array.from({ length: frames.length }, (_, index) => index + 1));
    expect(frames.filter((frame) => frame.type === "result")).toHaveLength(1);
    expect(frames.at(-1)!.type).toBe("result");
    const calls = steps(log, "tool_call").map((step) => step.data.id as string);
    const outcomes = [...steps(log, "tool_result"), ...steps(log, "tool_error")].map((step) => step.data.id as string);
    expect(new Set(calls).size).toBe(calls.length);
    expect(new Set(outcomes).size).toBe(outcomes.length); // no call has two results
    for (const id of outcomes) expect(calls).toContain(id);
  }

  test("tasks spread over the workers; each node runs at most --max-concurrent at once; each task runs and finishes once", async () => {
    const url = await pg.createDatabase();
    const cluster = await startNodes(url, ["spread-a", "spread-b", "spread-c"]);
    const [a] = cluster;
    const sql = database(url);
    // Sample who runs what while the tasks run (the lease owner of every running task).
    const peak = new Map<string, number>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const rows = await sql`SELECT lease_owner, count(*)::integer AS n FROM tasks WHERE status = 'running' GROUP BY lease_owner`;
        for (const { lease_owner, n } of rows) peak.set(lease_owner, Math.max(peak.get(lease_owner) ?? 0, n));
        await Bun.sleep(20);
      }
    })();
    const ids = await Promise.all(Array.from({ length: 12 }, () => create(a!, "ticker", { steps: 8, delay_ms: 60 })));
    const ended = await Promise.all(ids.map((id) => waitTerminal(a!, id)));
    sampling = false;
    await sampler;
    for (const task of ended) expect(task).toMatchObject({ status: "completed", output: "done", total_steps: 9 });
    const ranBy = new Map<string, number>();
    for (const id of ids) {
      const finishers = finishedOn(cluster, id);
      expect(finishers).toHaveLength(1); // ran, and finished, on exactly one node
      ranBy.set(finishers[0]!.id, (ranBy.get(finishers[0]!.id) ?? 0) + 1);
      expect(steps(await storedLog(a!, id), "resumed")).toEqual([]); // never taken over
    }
    console.log(`12 tasks created on ${a!.id}, finished by: ${JSON.stringify(Object.fromEntries(ranBy))}; peak running per node: ${JSON.stringify(Object.fromEntries(peak))}`);
    expect(ranBy.size).toBeGreaterThanOrEqual(2);
    for (const [owner, count] of peak) {
      expect(cluster.map((node) => node.id)).toContain(owner);
      expect(count).toBeLessThanOrEqual(2);
    }
  }, 30_000);

  test("watchers on every node see every task exactly once, in order — the stored log — including watchers that join mid-task on a node that does not run it", async () => {
    const url = await pg.createDatabase();
    const cluster = await startNodes(url, ["watch-a", "watch-b", "watch-c"]);
    const sql = database(url);
    const ids = await Promise.all(Array.from({ length: 6 }, (_, index) => create(cluster[index % 3]!, "ticker", { steps: 40, delay_ms: 30 })));
    const early = new Map<string, TestSocket[]>();
    await Promise.all(ids.map(async (id) => early.set(id, await Promise.all(cluster.map((node) => watch(node, id))))));
    // Mid-task joiners, on nodes that do not run the task: from the start, and from after=5.
    const late = new Map<string, { socket: TestSocket; after: number; node: Node }[]>();
    await Promise.all(
      ids.map(async (id) => {
        await early.get(id)![0]!.waitFor((frame) => (frame.seq ?? 0) >= 10, "ten events");
        const { owner } = await row(sql, id);
        const others = cluster.filter((node) => node.id !== owner);
        expect(others).toHaveLength(2); // it runs on one of the three
        const joiners = [
          { socket: await watch(others[0]!, id), after: 0, node: others[0]! },
          { socket: await watch(others[1]!, id, 5), after: 5, node: others[1]! },
        ];
        for (const { socket } of joiners) expect((await socket.waitFor((frame) => frame.type === "connected")).status).toBe("running");
        late.set(id, joiners);
      }),
    );
    for (const id of ids) {
      const all = [...early.get(id)!.map((socket) => ({ socket, after: 0 })), ...late.get(id)!];
      await Promise.all(all.map(({ socket }) => socket.result(30_000)));
      const log = await storedLog(cluster[0]!, id);
      expectWellFormed(log);
      expect(log).toHaveLength(3 * 40 + 2);
      // The same log through every node's REST API.
      for (const node of cluster.slice(1)) expect(await storedLog(node, id)).toEqual(log);
      for (const { socket, after } of all) {
        expect(socket.durable).toEqual(log.slice(after)); // exactly once, in order, the stored bytes
      }
      // Live `delta` frames stay on the node that runs the task: watchers elsewhere get none.
      const [runner] = finishedOn(cluster, id);
      expect(runner).toBeDefined();
      for (const [index, socket] of early.get(id)!.entries()) {
        if (cluster[index] !== runner) expect(socket.frames.filter((frame) => frame.type === "delta")).toEqual([]);
      }
    }

    // A model that streams its text (demo/slow, words 150 ms apart): `delta` frames reach the
    // watchers on the node that runs the task, and only those; the durable frames reach everyone.
    const slow = await create(cluster[0]!, "slow", "What is 2 + 3?");
    const slowWatchers = await Promise.all(cluster.map((node) => watch(node, slow)));
    for (const socket of slowWatchers) expect((await socket.result(15_000)).data).toMatchObject({ status: "completed" });
    const slowLog = await storedLog(cluster[0]!, slow);
    expectWellFormed(slowLog);
    const [slowRunner] = finishedOn(cluster, slow);
    for (const [index, socket] of slowWatchers.entries()) {
      expect(socket.durable).toEqual(slowLog);
      const deltas = socket.frames.filter((frame) => frame.type === "delta").length;
      if (cluster[index] === slowRunner) expect(deltas).toBeGreaterThan(0);
      else expect(deltas).toBe(0);
    }
  }, 40_000);

  test("cancel from a node that does not run the task (REST and WebSocket) ends it promptly; every watcher on every node gets one `cancelled` result; a queued task cancelled anywhere never starts", async () => {
    const url = await pg.createDatabase();
    const cluster = await startNodes(url, ["cancel-a", "cancel-b", "cancel-c"]);
    const sql = database(url);
    // Six long tasks fill the six slots (2 per node); a seventh stays queued.
    const ids = await Promise.all(Array.from({ length: 6 }, (_, index) => create(cluster[index % 3]!, "ticker", { steps: 5000, delay_ms: 20 })));
    await poll(async () => (await sql`SELECT count(*)::integer AS n FROM tasks WHERE status = 'running'`)[0].n === 6, "six tasks running", 10_000);
    const queued = await create(cluster[0]!, "ticker", { steps: 1 });
    const watchers = new Map<string, TestSocket[]>();
    for (const id of [...ids, queued]) watchers.set(id, await Promise.all(cluster.map((node) => watch(node, id))));

    // The queued one, cancelled on another node: it never starts.
    const cancelQueued = await fetch(`${cluster[2]!.base}/tasks/${queued}/cancel`, { method: "POST" });
    expect(cancelQueued.status).toBe(200);
    expect(await cancelQueued.json()).toMatchObject({ status: "cancelled", stop_reason: "cancelled", started_at: null, last_seq: 1 });

    // REST cancel of a running task, sent to a node that does not run it.
    const [first, second, ...rest] = ids;
    await watchers.get(first!)![0]!.waitFor((frame) => (frame.seq ?? 0) >= 5, "a few events");
    const firstOwner = (await row(sql, first!)).owner;
    const elsewhere = cluster.find((node) => node.id !== firstOwner)!;
    let started = performance.now();
    const response = await within(fetch(`${elsewhere.base}/tasks/${first}/cancel`, { method: "POST" }), LEASE_MS + 5000, "the cancel to answer");
    const restMs = performance.now() - started;
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ status: "cancelled", stop_reason: "cancelled" });

    // WebSocket cancel, from a watcher on a node that does not run it.
    const secondOwner = (await row(sql, second!)).owner;
    const canceller = watchers.get(second!)![cluster.findIndex((node) => node.id !== secondOwner)]!;
    started = performance.now();
    canceller.send({ type: "cancel" });
    await within(canceller.result(), LEASE_MS + 5000, "the cancel's result");
    const wsMs = performance.now() - started;
    console.log(`cancel across nodes: REST answered 'cancelled' in ${restMs.toFixed(0)} ms; WebSocket cancel to its result in ${wsMs.toFixed(0)} ms`);

    for (const id of rest) await fetch(`${cluster[Math.floor(Math.random() * 3)]!.base}/tasks/${id}/cancel`, { method: "POST" });
    for (const id of [...ids, queued]) {
      for (const socket of watchers.get(id)!) expect((await socket.result(LEASE_MS + 5000)).data).toMatchObject({ status: "cancelled" });
    }
    await Bun.sleep(2 * POLL_MS); // anything late would arrive now
    for (const id of [...ids, queued]) {
      const log = await storedLog(cluster[1]!, id);
      expectWellFormed(log);
      for (const socket of watchers.get(id)!) {
        expect(socket.frames.filter((frame) => frame.type === "result")).toHaveLength(1);
        expect(socket.durable).toEqual(log);
      }
      expect(await getTask(cluster[0]!, id)).toMatchObject({ status: "cancelled" });
    }
    expect(await storedLog(cluster[0]!, queued)).toHaveLength(1); // only its result: it never ran
  }, 40_000);

  test("kill -9 of the owning node mid-task: another node takes over within lease + 2 s and resumes from the log (one `resumed`); reconnecting watchers end with exactly the stored log; on_interrupt 'fail' ends interrupted", async () => {
    const url = await pg.createDatabase();
    const sql = database(url);
    // The first node alone claims both tasks (2 slots); then the others join.
    const a = await startNode(url, "kill-a");
    const resuming = await create(a, "ticker", { steps: 300, delay_ms: 10 });
    const failing = await create(a, "brittle", { steps: 300, delay_ms: 10 });
    await poll(async () => (await row(sql, resuming)).owner === a.id && (await row(sql, failing)).owner === a.id, "both tasks running on the first node", 5000);
    const [b, c] = await startNodes(url, ["kill-b", "kill-c"]);
    const cluster = [a, b!, c!];
    const watchers = await Promise.all(cluster.map((node) => watch(node, resuming)));
    const failWatcher = await watch(b!, failing);
    await watchers[1]!.waitFor((frame) => (frame.seq ?? 0) >= 30, "thirty events");
    const before = await row(sql, resuming);

    const killedAt = performance.now();
    a.child.kill("SIGKILL");
    await a.exited;
    // The watcher on the dead node lost its connection: it reconnects to a survivor with after=<last seq>.
    await within(watchers[0]!.closed, 5000, "the dead node's watcher to close");
    const kept = watchers[0]!.durable;
    const lastSeq = watchers[0]!.seqs.at(-1) ?? 0;
    const reconnected = await watch(c!, resuming, lastSeq);

    const taken = await poll(async () => {
      const now = await row(sql, resuming);
      return now.attempt > before.attempt && now.owner ? now : undefined;
    }, "the takeover", LEASE_MS + 2000, 10);
    const takeoverMs = performance.now() - killedAt;
    console.log(`kill -9: taken over by ${taken.owner} ${takeoverMs.toFixed(0)} ms after the kill (lease ${LEASE_MS} ms, poll ${POLL_MS} ms)`);
    expect([b!.id, c!.id]).toContain(taken.owner!);
    expect(taken.attempt).toBe(before.attempt + 1);

    for (const socket of [watchers[1]!, watchers[2]!, reconnected]) {
      expect((await socket.result(30_000)).data).toMatchObject({ status: "completed", output: "done" });
    }
    const log = await storedLog(b!, resuming);
    expectWellFormed(log);
    const resumed = steps(log, "resumed");
    expect(resumed).toHaveLength(1);
    expect(resumed[0].data).toMatchObject({ attempt: taken.attempt, node: taken.owner, reason: "takeover" });
    expect(steps(log, "tool_result")).toHaveLength(300);
    expect(watchers[1]!.durable).toEqual(log);
    expect(watchers[2]!.durable).toEqual(log);
    expect([...kept, ...reconnected.durable]).toEqual(log); // across the reconnect: no gap, no duplicate
    for (const socket of [watchers[1]!, watchers[2]!, reconnected]) expect(socket.frames.filter((frame) => frame.type === "result")).toHaveLength(1);

    // on_interrupt "fail": taken over and ended `interrupted`, with a result.
    expect((await failWatcher.result(LEASE_MS + 5000)).data).toMatchObject({ status: "failed", stop_reason: "interrupted", error: { code: "interrupted" } });
    const failLog = await storedLog(b!, failing);
    expectWellFormed(failLog);
    expect(failWatcher.durable).toEqual(failLog);
    expect(steps(failLog, "resumed")).toEqual([]);
  }, 40_000);

  test("a paused worker (SIGSTOP past its lease, then SIGCONT) is fenced: the task is taken over; on waking the paused node stops its run (lease known lost, or a write refused) and publishes nothing that is not in the store", async () => {
    const url = await pg.createDatabase();
    const sql = database(url);
    const a = await startNode(url, "pause-a");
    const id = await create(a, "ticker", { steps: 400, delay_ms: 10 });
    await poll(async () => (await row(sql, id)).owner === a.id, "the task running on the first node", 5000);
    const [b, c] = await startNodes(url, ["pause-b", "pause-c"]);
    const onPaused = await watch(a, id); // a watcher on the node that will be paused
    const others = await Promise.all([watch(b!, id), watch(c!, id)]);
    await others[0]!.waitFor((frame) => (frame.seq ?? 0) >= 20, "twenty events");
    const before = await row(sql, id);

    a.child.kill("SIGSTOP");
    const stoppedAt = performance.now();
    const taken = await poll(async () => {
      const now = await row(sql, id);
      return now.attempt > before.attempt && now.owner ? now : undefined;
    }, "the takeover of the paused node's task", LEASE_MS + 2000, 10);
    console.log(`SIGSTOP: taken over by ${taken.owner} ${(performance.now() - stoppedAt).toFixed(0)} ms after the pause`);
    expect([b!.id, c!.id]).toContain(taken.owner!);
    // Let the new owner write for a while, then wake the paused node up in the middle of it.
    await poll(async () => (await row(sql, id)).lastSeq >= taken.lastSeq + 30, "the new owner to write", 10_000);
    a.child.kill("SIGCONT");

    for (const socket of [...others, onPaused]) expect((await socket.result(30_000)).data).toMatchObject({ status: "completed", output: "done" });
    await Bun.sleep(2 * POLL_MS); // anything late would arrive now
    const log = await storedLog(b!, id);
    expectWellFormed(log);
    const resumed = steps(log, "resumed");
    expect(resumed).toHaveLength(1);
    expect(resumed[0].data).toMatchObject({ attempt: taken.attempt, node: taken.owner, reason: "takeover" });
    // Every frame the paused node's watcher got is the stored frame of that seq: nothing of its own.
    for (const [index, frame] of onPaused.frames.entries()) {
      if (typeof frame.seq === "number") expect(onPaused.raw[index]).toBe(log[frame.seq - 1]!);
    }
    expect(onPaused.durable).toEqual(log);
    for (const socket of others) expect(socket.durable).toEqual(log);
    // The paused node noticed it lost the task and stopped the run: its lease was past when it woke
    // (checked before any write), or a write or renewal was refused by the fencing token.
    const lost = a.lines("lost a task").filter((line) => line.includes(id));
    expect(lost.length).toBeGreaterThanOrEqual(1);
    console.log(`the paused node, on waking: ${lost.map((line) => line.replace(/^\S+ \S+\s+/, "")).join(" | ")}`);
    expect(a.child.exitCode).toBeNull(); // it lives on, and serves
    expect((await fetch(`${a.base}/health`)).status).toBe(200);
    expect(finishedOn([a], id)).toEqual([]);
  }, 40_000);

  test("SIGTERM on the node running a task hands it over: another node resumes it at once (long before the lease would expire), one result", async () => {
    const url = await pg.createDatabase();
    const sql = database(url);
    const longLease = 10_000; // a takeover by expiry would take 10 s
    const a = await startNode(url, "term-a", { leaseMs: longLease });
    const id = await create(a, "ticker", { steps: 300, delay_ms: 10 });
    await poll(async () => (await row(sql, id)).owner === a.id, "the task running on the first node", 5000);
    const [b, c] = await startNodes(url, ["term-b", "term-c"], { leaseMs: longLease });
    const onStopping = await watch(a, id);
    const others = await Promise.all([watch(b!, id), watch(c!, id)]);
    // Event streams on the stopping node: the task's SSE stream, and an AG-UI run (a task of its own, on any node).
    const sse = await fetch(`${a.base}/tasks/${id}/events`, { headers: { Accept: "text/event-stream" } });
    const agui = await fetch(`${a.base}/ag-ui/ticker`, {
      method: "POST",
      headers: { "content-type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ threadId: "term-thread", runId: "term-run", messages: [{ id: "u1", role: "user", content: JSON.stringify({ steps: 300, delay_ms: 10 }) }], tools: [], context: [], state: {}, forwardedProps: {} }),
    });
    expect([sse.status, agui.status]).toEqual([200, 200]);
    // Read to the end; a connection cut mid-stream is kept as the error it is (asserted below).
    const streamBodies = Promise.all([sse, agui].map((response) => response.text().catch((error: Error) => `cut: ${error.message}`)));
    await others[0]!.waitFor((frame) => (frame.seq ?? 0) >= 20, "twenty events");
    const before = await row(sql, id);

    const termAt = performance.now();
    a.child.kill("SIGTERM");
    const taken = await poll(async () => {
      const now = await row(sql, id);
      return now.attempt > before.attempt && now.owner ? now : undefined;
    }, "the handover", 5000, 10);
    console.log(`SIGTERM: handed over to ${taken.owner} ${(performance.now() - termAt).toFixed(0)} ms after the signal (lease ${longLease} ms, poll ${POLL_MS} ms)`);
    const code = await within(a.exited, 10_000, "the stopping node to exit").catch((error) => {
      throw new Error(`${(error as Error).message}; its log ends:\n${a.log().split("\n").slice(-15).join("\n")}`);
    });
    expect(code).toBe(0);
    expect((await within(onStopping.closed, 5000, "the stopping node's watcher to be closed")).code).toBe(1001);
    expect(onStopping.frames.some((frame) => frame.type === "result")).toBe(false);
    const reconnected = await watch(b!, id, onStopping.seqs.at(-1) ?? 0);

    for (const socket of [...others, reconnected]) expect((await socket.result(30_000)).data).toMatchObject({ status: "completed", output: "done" });
    const log = await storedLog(b!, id);
    expectWellFormed(log);
    expect(steps(log, "resumed")).toHaveLength(1);
    expect(steps(log, "resumed")[0].data).toMatchObject({ node: taken.owner, reason: "takeover" });
    for (const socket of others) expect(socket.durable).toEqual(log);
    expect([...onStopping.durable, ...reconnected.durable]).toEqual(log);

    // The stopping node ended its event streams as whole responses (a cut connection rejects here),
    // and its AG-UI stream's end was not taken for the client's abort: that run's task was not
    // cancelled, it completes on the cluster.
    const [sseText, aguiText] = await within(streamBodies, 5000, "the stopping node's event streams to end");
    expect(sseText).not.toStartWith("cut:");
    expect(aguiText).not.toStartWith("cut:");
    expect(sseText).toContain('"event_type":"tool_call"');
    expect(sseText).not.toContain('"type":"result"');
    const [{ id: aguiTask }] = await sql`SELECT id FROM tasks WHERE id <> ${id}`; // this database's other task
    expect(aguiText).toContain(`"task_id":"${aguiTask}"`);
    expect(aguiText).not.toContain("RUN_FINISHED");
    expect(aguiText).toContain('"code":"server_stopping"');
    const ended = await poll(async () => {
      const now = await row(sql, aguiTask);
      return now.status !== "running" && now.status !== "queued" ? now : undefined;
    }, "the AG-UI run's task to end", 20_000);
    expect(ended.status).toBe("completed");
  }, 40_000);

  test("the queue's limit holds on a node that takes many requests at once: each is counted before its insert, not after", async () => {
    const url = await pg.createDatabase();
    // An api node runs nothing: what it accepts stays queued. A poll interval long enough that the
    // count is not refreshed during the burst.
    const api = await startNode(url, "cap-api", { role: "api", pollMs: 60_000, env: { AGENTKIT_MAX_QUEUED_TASKS: "5" } });
    await create(api, "ticker", { steps: 1 });
    await Bun.sleep(300); // the count this first request asked for has come back
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => fetch(`${api.base}/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ agent: "ticker", input: JSON.stringify({ steps: 1 }) }) })),
    );
    const accepted = answers.filter((response) => response.status === 201).length;
    expect(accepted + answers.filter((response) => response.status === 429).length).toBe(20);
    const queued = ((await (await fetch(`${api.base}/tasks?status=queued&limit=100`)).json()) as { tasks: unknown[] }).tasks.length;
    // Never past the limit; at most one below it (the first task, counted before its insert and
    // again by the count, until the next refresh).
    expect(queued).toBeLessThanOrEqual(5);
    expect(queued).toBeGreaterThanOrEqual(4);
  }, 30_000);

  test("a database that stops answering (frozen, not down): requests get 503 with Retry-After within seconds, /health says unreachable; all is served again once it answers", async () => {
    const url = new URL(await pg.createDatabase());
    const proxy = await startFreezableProxy(url.hostname, Number(url.port));
    try {
      url.hostname = "127.0.0.1";
      url.port = String(proxy.port);
      const node = await startNode(url.href, "frozen-db", { role: "api" });
      const id = await create(node, "ticker", { steps: 1 });
      proxy.freeze();
      const started = performance.now();
      const [read, created, list] = await Promise.all([
        fetch(`${node.base}/tasks/${id}`),
        fetch(`${node.base}/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ agent: "ticker", input: "{}" }) }),
        fetch(`${node.base}/tasks?limit=5`),
      ]);
      const waited = performance.now() - started;
      for (const response of [read, created, list]) {
        expect(response.status).toBe(503);
        expect(response.headers.get("retry-after")).toBe("2");
        expect(((await response.json()) as { error: { code: string } }).error.code).toBe("unavailable");
      }
      // Not a timing target: the bound says the answer came from the wait, not from a query that
      // finally failed (the queries wait as long as the database is frozen).
      expect(waited).toBeLessThan(15_000);
      const asked = performance.now();
      expect(await (await fetch(`${node.base}/health`)).json()).toMatchObject({ status: "degraded", database: "unreachable" });
      // The promise itself, not a speed target: a liveness probe's 1 s (Kubernetes' default) — it
      // waits 0.4 s for the database (it waited 1 s, and probes with that timeout failed).
      expect(performance.now() - asked).toBeLessThan(950);
      proxy.thaw();
      const back = await poll(async () => {
        const response = await fetch(`${node.base}/tasks/${id}`);
        return response.status === 200 ? ((await response.json()) as { id: string }) : undefined;
      }, "the node to read the task again", 15_000, 200);
      expect(back.id).toBe(id);
    } finally {
      proxy.thaw();
      proxy.stop();
    }
  }, 40_000);

  test("roles: an api node runs nothing (its tasks wait for a worker); a worker serves only /health (404 elsewhere); /health says node, role, cluster and database", async () => {
    const url = await pg.createDatabase();
    const api = await startNode(url, "role-api", { role: "api" });
    const first = await create(api, "ticker", { steps: 3 });
    await Bun.sleep(4 * POLL_MS); // four polls: an api node would have claimed it by now if it ran tasks
    expect(await getTask(api, first)).toMatchObject({ status: "queued", started_at: null });
    const watcher = await watch(api, first);

    const worker = await startNode(url, "role-worker", { role: "worker" });
    expect((await watcher.result(10_000)).data).toMatchObject({ status: "completed", output: "done" });
    const more = await Promise.all(Array.from({ length: 3 }, () => create(api, "ticker", { steps: 3, delay_ms: 10 })));
    for (const id of more) expect(await waitTerminal(api, id)).toMatchObject({ status: "completed" });
    for (const id of [first, ...more]) expect(finishedOn([api, worker], id)).toEqual([worker]);
    expect(watcher.durable).toEqual(await storedLog(api, first));

    // The worker answers /health only.
    expect((await fetch(`${worker.base}/tasks`)).status).toBe(404);
    expect((await fetch(`${worker.base}/tasks/${first}`)).status).toBe(404);
    expect((await fetch(`${worker.base}/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"input":"1+1"}' })).status).toBe(404);
    expect((await fetch(`${worker.base}/ws/tasks/${first}`)).status).toBe(404);
    await expect(connect(`${worker.ws}/ws/tasks/${first}`)).rejects.toThrow();

    const workerHealth = await fetch(`${worker.base}/health`);
    expect(workerHealth.status).toBe(200);
    expect(await workerHealth.json()).toMatchObject({ status: "ok", node: "role-worker", role: "worker", cluster: true, database: "reachable" });
    expect(await (await fetch(`${api.base}/health`)).json()).toMatchObject({ status: "ok", node: "role-api", role: "api", cluster: true, database: "reachable" });
  }, 30_000);

  test.skipIf(!postgresBinDir)(
    `the database restarted mid-run: clients get clear errors, nodes stay up, their tasks end cleanly with one result, nothing acknowledged is lost, new tasks run${postgresBinDir ? "" : " (skipped: needs PostgreSQL's binaries to start a server it may stop)"}`,
    async () => {
      // A server of its own: this test stops and starts it.
      const server = await startCluster(postgresBinDir!);
      ownClusters.push(server);
      const admin = new SQL(server.url, { max: 1 });
      await admin`CREATE DATABASE agentkit`;
      await admin.close();
      const url = new URL(server.url);
      url.pathname = "/agentkit";
      const cluster = await startNodes(url.href, ["outage-a", "outage-b", "outage-c"]);
      const ids = await Promise.all(Array.from({ length: 6 }, (_, index) => create(cluster[index % 3]!, "ticker", { steps: 200, delay_ms: 20 })));
      const watchers = await Promise.all(ids.map((id, index) => watch(cluster[(index + 1) % 3]!, id)));
      await Promise.all(watchers.map((socket) => socket.waitFor((frame) => (frame.seq ?? 0) >= 10, "ten events")));

      await server.halt();
      const haltedAt = performance.now();
      // What clients see while the database is down.
      const refused = await fetch(`${cluster[0]!.base}/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"input":"1+1"}' });
      const refusedBody = await refused.text();
      const read = await fetch(`${cluster[1]!.base}/tasks/${ids[0]}`);
      const health = await Promise.all(cluster.map(async (node) => (await fetch(`${node.base}/health`)).json() as Promise<any>));
      console.log(`database down: POST /tasks → ${refused.status} ${refusedBody}; GET /tasks/:id → ${read.status}; /health → ${health.map((h) => `${h.status}/${h.database}`).join(", ")}`);
      // 503 with Retry-After and the usual JSON error: try again shortly (not a 500).
      expect(refused.status).toBe(503);
      expect(refused.headers.get("retry-after")).toBe("2");
      expect(JSON.parse(refusedBody)).toMatchObject({ error: { code: "unavailable" } });
      expect(read.status).toBe(503);
      for (const h of health) expect(h).toMatchObject({ status: "degraded", database: "unreachable" });
      // Down for longer than a lease: every run must notice it can no longer renew.
      await Bun.sleep(Math.max(0, LEASE_MS + 1000 - (performance.now() - haltedAt)));
      for (const node of cluster) expect(node.child.exitCode).toBeNull(); // no node exits
      await server.start();
      const downMs = performance.now() - haltedAt;

      // Every task ends, with exactly one result, and every frame a watcher was sent is stored.
      const ended = await Promise.all(ids.map((id) => waitTerminal(cluster[0]!, id, 40_000)));
      const outcomes = ended.map((task) => `${task.status}/${task.stop_reason}`);
      console.log(`database down for ${downMs.toFixed(0)} ms; the six tasks ended: ${outcomes.join(", ")}`);
      for (const task of ended) expect(["completed", "failed"]).toContain(task.status);
      for (const [index, id] of ids.entries()) {
        const log = await storedLog(cluster[0]!, id);
        expectWellFormed(log);
        const socket = watchers[index]!;
        // Published only once stored: nothing a watcher was sent is missing from the log, byte for byte.
        for (const [position, frame] of socket.frames.entries()) {
          if (typeof frame.seq === "number") expect(socket.raw[position]).toBe(log[frame.seq - 1]!);
        }
        // The watchers stayed connected through the outage, and end with the whole log.
        await Promise.race([socket.closed, socket.result(15_000)]).catch(() => {});
        const durable = socket.durable;
        if (JSON.stringify(durable) !== JSON.stringify(log)) {
          // Say what each node logged of this task, for the failure below.
          console.log(`the watcher on ${cluster[(index + 1) % 3]!.id} got ${durable.length} of ${log.length} frames of ${id}; the nodes logged:`);
          for (const node of cluster) console.log(`  ${node.id}: ${node.lines(id).join("\n    ") || "(nothing)"}`);
        }
        expect(durable).toEqual(log);
        expect(await Promise.race([socket.closed.then(() => "closed"), Bun.sleep(0).then(() => "open")])).toBe("open");
      }
      // The nodes recovered without a restart: new tasks run, on every node, and health is ok again.
      const fresh = await Promise.all(cluster.map((node) => create(node, "ticker", { steps: 3 })));
      for (const id of fresh) expect(await waitTerminal(cluster[1]!, id, 15_000)).toMatchObject({ status: "completed", output: "done" });
      for (const node of cluster) {
        expect(node.child.exitCode).toBeNull();
        expect(await (await fetch(`${node.base}/health`)).json()).toMatchObject({ status: "ok", database: "reachable" });
      }
    },
    90_000,
  );

  test("race: 30 tasks cancelled from random nodes at random moments each end with exactly one result, and never change after it", async () => {
    const seed = Number(process.env.CLUSTER_TEST_SEED ?? Date.now() % 1_000_000);
    const rand = random(seed);
    const pick = <T>(items: readonly T[]) => items[Math.floor(rand() * items.length)]!;
    const url = await pg.createDatabase();
    const cluster = await startNodes(url, ["race-a", "race-b", "race-c"]);
    const count = 30;
    const ids = await Promise.all(Array.from({ length: count }, () => create(pick(cluster), "ticker", { steps: 30, delay_ms: 20 })));
    const watchers = await Promise.all(ids.map((id) => watch(pick(cluster), id)));
    const answers = new Map<string, string>();
    await Promise.all(
      ids.map(async (id, index) => {
        await Bun.sleep(Math.floor(rand() * 1500));
        const node = pick(cluster);
        if (rand() < 0.3) {
          // From a watcher of its own on that node, as a WebSocket cancel.
          const socket = await watch(node, id);
          socket.send({ type: "cancel" });
          await socket.result(LEASE_MS + 10_000);
        } else {
          const response = await fetch(`${node.base}/tasks/${id}/cancel`, { method: "POST" });
          expect(response.status).toBe(200);
          answers.set(id, ((await response.json()) as { status: string }).status);
        }
        await watchers[index]!.result(LEASE_MS + 10_000);
      }),
    );
    const ended = await Promise.all(ids.map((id) => waitTerminal(cluster[0]!, id)));
    const snapshot = await Promise.all(ids.map(async (id) => ({ task: await getTask(cluster[1]!, id), log: await storedLog(cluster[2]!, id) })));
    const tally: Record<string, number> = {};
    for (const [index, id] of ids.entries()) {
      const { task, log } = snapshot[index]!;
      tally[task.status] = (tally[task.status] ?? 0) + 1;
      expect(["cancelled", "completed"]).toContain(task.status);
      expect(ended[index]).toEqual(task);
      expectWellFormed(log);
      const result = parse(log).at(-1)!;
      expect(result.data).toMatchObject({ status: task.status, task_id: id });
      expect(task.last_seq).toBe(log.length);
      if (answers.has(id)) expect(answers.get(id)).toBe(task.status); // the cancel's answer is the final state
      expect(watchers[index]!.frames.filter((frame) => frame.type === "result")).toHaveLength(1);
      expect(watchers[index]!.durable).toEqual(log);
    }
    console.log(`race (seed ${seed}): ${JSON.stringify(tally)}`);
    // Never changes after its result: cancel everything again, from every node, and wait some polls.
    await Promise.all(ids.flatMap((id) => cluster.map((node) => fetch(`${node.base}/tasks/${id}/cancel`, { method: "POST" }))));
    await Bun.sleep(3 * POLL_MS);
    for (const [index, id] of ids.entries()) {
      expect(await getTask(pick(cluster), id)).toEqual(snapshot[index]!.task);
      expect(await storedLog(pick(cluster), id)).toEqual(snapshot[index]!.log);
      expect(watchers[index]!.frames.filter((frame) => frame.type === "result")).toHaveLength(1);
    }
  }, 60_000);
});
