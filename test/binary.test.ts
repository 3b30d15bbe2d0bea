/** The single binary: built as `bun run build` builds it, then run with no environment at all. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { buildBinary, listeningPort } from "./helpers/binary.ts";
import { until, within } from "./helpers/deferred.ts";
import { contentsOf, layoutOf, writeOldDataDir } from "./helpers/old-sqlite.ts";
import { tempDir } from "./helpers/server.ts";
import { connect } from "./helpers/ws-client.ts";

let workDir: string;
let binary: string;

beforeAll(async () => {
  workDir = tempDir();
  binary = buildBinary(workDir);
}, 60_000);

afterAll(() => rmSync(workDir, { recursive: true, force: true }));

/** Starts the binary on a free port; resolves with the port once it listens. */
async function launch(args: string[], env: Record<string, string> = {}) {
  // `--port 0` after the caller's flags: a free port, whatever PORT says.
  const child = Bun.spawn([binary, ...args, "--port", "0"], { env, cwd: workDir, stderr: "pipe", stdout: "pipe" });
  const { port, log: logged } = await listeningPort(child, 10_000);
  const log = logged();
  return { child, port, log, base: `http://127.0.0.1:${port}` };
}

async function post(base: string, input: string) {
  const response = await fetch(`${base}/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input }) });
  expect(response.status).toBe(201);
  return (await response.json()) as { id: string };
}

test("--version and --help", () => {
  const version = Bun.spawnSync([binary, "--version"], { env: {} });
  expect(version.exitCode).toBe(0);
  expect(version.stdout.toString()).toMatch(/^agentkit \d+\.\d+\.\d+\n$/);
  const help = Bun.spawnSync([binary, "--help"], { env: {} });
  expect(help.exitCode).toBe(0);
  expect(help.stdout.toString()).toContain("--data-dir DIR");
  expect(help.stdout.toString()).toContain("agentkit healthcheck [options]");
  expect(help.stdout.toString()).toContain("<data dir>/agentkit.addr.json");
});

test("the source map is in the executable (stack traces name the TypeScript sources), not only in the .map files beside it", () => {
  // Without --sourcemap the executable holds none of these paths; with it, every module's.
  const contents = readFileSync(binary).toString("latin1");
  for (const source of ["src/webhooks/delivery.ts", "src/server/app.ts", "src/engine/react.ts"]) expect(contents).toContain(source);
});

test("a bad configuration value stops start-up with one line naming it, exit code 2", () => {
  const result = Bun.spawnSync([binary, "serve"], { env: { PORT: "not-a-port" }, cwd: workDir });
  expect(result.exitCode).toBe(2);
  const lines = result.stderr.toString().trim().split("\n");
  expect(lines.length).toBe(1);
  expect(lines[0]).toStartWith("agentkit: invalid configuration: PORT:");
  const flag = Bun.spawnSync([binary, "--port", "99999"], { env: {}, cwd: workDir });
  expect(flag.exitCode).toBe(2);
  expect(flag.stderr.toString()).toContain("--port");
});

test("with no environment it serves a task end to end, then stops cleanly on SIGTERM", async () => {
  const { child, port, log } = await launch([]);
  try {
    expect(log).toContain("no AGENTKIT_API_KEY set");
    expect(log).toContain("built-in demo model");
    const base = `http://127.0.0.1:${port}`;
    expect((await fetch(`${base}/health`)).status).toBe(200);
    const task = await post(base, "What is (2 + 3) * 4?");
    const socket = await connect(`ws://127.0.0.1:${port}/ws/tasks/${task.id}`);
    expect((await socket.result()).data).toMatchObject({ status: "completed", output: "(2 + 3) * 4 = 20" });
    expect(existsSync(join(workDir, "agentkit-data", "agentkit.sqlite"))).toBe(true);
    const healthcheck = Bun.spawnSync([binary, "healthcheck", "--url", `${base}/health`], { env: {} });
    expect(healthcheck.exitCode).toBe(0);
  } finally {
    child.kill("SIGTERM");
  }
  expect(await within(child.exited, 10_000, "the binary to exit")).toBe(0);
  const down = Bun.spawnSync([binary, "healthcheck", "--url", "http://127.0.0.1:1/health"], { env: {} });
  expect(down.exitCode).toBe(1);
});

test("compact: its --help; refused (exit 1, nothing done) while the binary serves the data dir; after the server stops, an old build's file is compacted (every row kept) and served again", async () => {
  const help = Bun.spawnSync([binary, "compact", "--help"], { env: {} });
  expect(help.exitCode).toBe(0);
  expect(help.stdout.toString()).toContain("agentkit compact [--data-dir DIR]");
  expect(Bun.spawnSync([binary, "--help"], { env: {} }).stdout.toString()).toContain("agentkit compact [--data-dir DIR]");
  const dataDir = join(workDir, "compact-data");
  const path = join(dataDir, "agentkit.sqlite");
  await writeOldDataDir(dataDir, { tasks: 4, events: 300 });
  const server = await launch(["--data-dir", dataDir]);
  try {
    const refused = Bun.spawnSync([binary, "compact", "--data-dir", dataDir], { env: {}, stdout: "pipe", stderr: "pipe" });
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr.toString()).toContain(`agentkit compact: the data dir ${dataDir} is in use by another agentkit process (its agentkit.lock is held: a server, or an agentkit compact)`);
    expect(layoutOf(path).eventsSql).toMatch(/WITHOUT ROWID/);
  } finally {
    server.child.kill("SIGTERM");
  }
  expect(await within(server.child.exited, 10_000, "the server to stop")).toBe(0);
  const contents = contentsOf(path); // as the server left it (it took over the task that was running)
  const compacted = Bun.spawnSync([binary, "compact", "--data-dir", dataDir], { env: {}, stdout: "pipe", stderr: "pipe" });
  expect(compacted.stderr.toString()).toBe("");
  expect(compacted.exitCode).toBe(0);
  expect(compacted.stdout.toString()).toMatch(/ MB → [\d,.]+ MB; auto_vacuum incremental \(retention now gives freed space back\); [\d,]+ events in the new layout/);
  expect(layoutOf(path)).toMatchObject({ autoVacuum: 2, eventsIndex: "CREATE UNIQUE INDEX events_task_seq ON events(task_id, seq)" });
  expect(contentsOf(path)).toEqual(contents);
  const again = await launch(["--data-dir", dataDir]);
  try {
    const task = (await (await fetch(`${again.base}/tasks/task-1`)).json()) as { last_seq: number };
    expect(task.last_seq).toBe(301);
  } finally {
    again.child.kill("SIGTERM");
  }
  expect(await within(again.child.exited, 10_000, "the server to stop")).toBe(0);
});

test("after kill -9, the next start resumes a running task from its log (no gap, no step run twice); on_interrupt 'fail' ends one interrupted; a queued one runs", async () => {
  const dataDir = join(workDir, "crash-data");
  const config = join(workDir, "crash-agents.json");
  await Bun.write(
    config,
    JSON.stringify({
      agents: [
        { name: "ticker", model: "demo/bench", tools: ["calculator"], max_steps: 10000 },
        { name: "brittle", model: "demo/bench", tools: ["calculator"], max_steps: 10000, on_interrupt: "fail" },
      ],
    }),
  );
  const args = ["--data-dir", dataDir, "--config", config, "--max-concurrent", "2"];
  const first = await launch(args);
  const postTo = (agent: string, input: object) =>
    fetch(`${first.base}/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ agent, input: JSON.stringify(input) }) }).then(
      async (response) => (await response.json()) as { id: string },
    );
  const resuming = await postTo("ticker", { steps: 300, delay_ms: 5 });
  const failing = await postTo("brittle", { steps: 300, delay_ms: 5 });
  const queued = await postTo("ticker", { steps: 2 });
  const watcher = await connect(`ws://127.0.0.1:${first.port}/ws/tasks/${resuming.id}`);
  await watcher.waitFor((frame) => (frame.seq ?? 0) >= 6, "a few events");
  first.child.kill("SIGKILL");
  await first.child.exited;

  const second = await launch(args);
  try {
    const late = await connect(`ws://127.0.0.1:${second.port}/ws/tasks/${resuming.id}`);
    const result = await late.result(30_000);
    expect(result.data).toMatchObject({ status: "completed", output: "done" });
    expect(late.seqs).toEqual(Array.from({ length: result.seq! }, (_, index) => index + 1)); // no gap
    const steps = late.frames.filter((frame) => frame.type === "step").map((frame) => frame.data as { event_type: string; data: { id?: string } });
    expect(steps.filter((step) => step.event_type === "resumed")).toHaveLength(1);
    // Every call has exactly one result: nothing stored was run (or stored) twice.
    const results = steps.filter((step) => step.event_type === "tool_result").map((step) => step.data.id);
    expect(new Set(results).size).toBe(results.length);
    expect(results).toHaveLength(300);

    const failed = await connect(`ws://127.0.0.1:${second.port}/ws/tasks/${failing.id}`);
    expect((await failed.result()).data).toMatchObject({ status: "failed", stop_reason: "interrupted" });
    const next = await connect(`ws://127.0.0.1:${second.port}/ws/tasks/${queued.id}`);
    expect((await next.result()).data).toMatchObject({ status: "completed", output: "done" });
  } finally {
    second.child.kill("SIGTERM");
    await second.child.exited;
  }
}, 60_000);

test("SIGTERM drains: a running task is handed over (watchers closed with 1001, no result), exit code 0; the next start finishes it", async () => {
  const config = join(workDir, "slow-agent.json");
  await Bun.write(config, JSON.stringify({ agents: [{ name: "ticker", model: "demo/bench", tools: ["calculator"], max_steps: 10000 }] }));
  const args = ["--data-dir", join(workDir, "term-data"), "--config", config];
  const { child, port } = await launch(args);
  const task = await post(`http://127.0.0.1:${port}`, JSON.stringify({ steps: 200, delay_ms: 5 }));
  const watcher = await connect(`ws://127.0.0.1:${port}/ws/tasks/${task.id}`);
  await watcher.waitFor((frame) => (frame.seq ?? 0) >= 3, "a few events");
  child.kill("SIGTERM");
  expect((await watcher.closed).code).toBe(1001);
  expect(watcher.frames.some((frame) => frame.type === "result")).toBe(false);
  expect(await within(child.exited, 10_000, "exit")).toBe(0);

  const again = await launch(args);
  try {
    const late = await connect(`ws://127.0.0.1:${again.port}/ws/tasks/${task.id}`);
    const result = await late.result(30_000);
    expect(result.data).toMatchObject({ status: "completed", output: "done" });
    expect(late.seqs).toEqual(Array.from({ length: result.seq! }, (_, index) => index + 1));
  } finally {
    again.child.kill("SIGTERM");
    await again.child.exited;
  }
}, 60_000);

test("healthcheck finds a server started with --port and --host 0.0.0.0 the way serve was told to", async () => {
  // As in the Docker image: PORT=8000 and AGENTKIT_DATA_DIR in the environment, but `serve --port …`.
  const env = { PORT: "8000", AGENTKIT_DATA_DIR: join(workDir, "hc-data") };
  const healthcheck = (args: string[] = [], environment: Record<string, string> = env) => {
    const result = Bun.spawnSync([binary, "healthcheck", ...args], { env: environment, cwd: workDir, stdout: "pipe", stderr: "pipe" });
    return { code: result.exitCode, out: result.stdout.toString(), err: result.stderr.toString() };
  };
  const { child, port, log } = await launch(["serve", "--host", "0.0.0.0"], env);
  const addressFile = join(env.AGENTKIT_DATA_DIR, "agentkit.addr.json");
  try {
    expect(log).toContain(`listening on http://0.0.0.0:${port}`);
    expect(JSON.parse(readFileSync(addressFile, "utf8"))).toMatchObject({ host: "0.0.0.0", port, pid: child.pid });
    const plain = healthcheck();
    expect(plain).toMatchObject({ code: 0, err: "" });
    expect(plain.out).toBe(`agentkit healthcheck: healthy: GET http://127.0.0.1:${port}/health (address from ${addressFile}, written by pid ${child.pid}): 200\n`);
    // The same flags as serve, with no data dir at all: 0.0.0.0 is checked via 127.0.0.1.
    expect(healthcheck(["--port", String(port), "--host", "0.0.0.0"], {}).code).toBe(0);
    expect(healthcheck(["--url", `http://127.0.0.1:${port}/health`], {}).code).toBe(0);
  } finally {
    child.kill("SIGTERM");
  }
  expect(await within(child.exited, 10_000, "the binary to exit")).toBe(0);
  expect(existsSync(addressFile)).toBe(false); // removed on a clean stop
  // Nothing listening any more: exit 1, one line on stderr saying what was tried.
  const down = healthcheck(["--port", String(port)]);
  expect(down.code).toBe(1);
  expect(down.out).toBe("");
  expect(down.err).toStartWith(`agentkit healthcheck: unhealthy: GET http://127.0.0.1:${port}/health (address from --port): `);
  expect(down.err.trim().split("\n").length).toBe(1);
});

test("healthcheck ignores the address file of a server that is gone (kill -9) and says what it tried", async () => {
  const env = { PORT: "1", AGENTKIT_DATA_DIR: join(workDir, "hc-killed") };
  const { child, port } = await launch(["serve"], env);
  child.kill("SIGKILL");
  await child.exited;
  expect(JSON.parse(readFileSync(join(env.AGENTKIT_DATA_DIR, "agentkit.addr.json"), "utf8"))).toMatchObject({ port });
  // The stale file names a dead pid: healthcheck falls back to PORT (1: nothing there).
  const result = Bun.spawnSync([binary, "healthcheck"], { env, cwd: workDir, stdout: "pipe", stderr: "pipe" });
  expect(result.exitCode).toBe(1);
  expect(result.stderr.toString()).toStartWith("agentkit healthcheck: unhealthy: GET http://127.0.0.1:1/health (address from PORT/AGENTKIT_HOST");
});

test("a second server started by mistake — on the same port, or on the same data dir — stops with one line (exit 2); the first keeps serving and runs its task to the end", async () => {
  const dataDir = join(workDir, "twice-data");
  const config = join(workDir, "twice-agents.json");
  await Bun.write(config, JSON.stringify({ agents: [{ name: "ticker", model: "demo/bench", tools: ["calculator"], max_steps: 10000 }] }));
  const first = await launch(["--data-dir", dataDir, "--config", config]);
  try {
    const task = (await (
      await fetch(`${first.base}/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ agent: "ticker", input: JSON.stringify({ steps: 60, delay_ms: 10 }) }) })
    ).json()) as { id: string };
    const watcher = await connect(`ws://127.0.0.1:${first.port}/ws/tasks/${task.id}`);
    await watcher.waitFor((frame) => (frame.seq ?? 0) >= 3, "the task runs");

    // Same port (Bun shares a port between processes that ask for it when not in development mode).
    const samePort = Bun.spawnSync([binary, "--data-dir", join(workDir, "twice-other"), "--config", config, "--port", String(first.port)], { cwd: workDir, stderr: "pipe", stdout: "pipe", timeout: 15_000 });
    expect(samePort.stderr.toString().trim().split("\n")).toEqual([`agentkit: cannot start: cannot listen on 127.0.0.1:${first.port}: another process listens on that port (choose another with --port) (EADDRINUSE)`]);
    expect(samePort.exitCode).toBe(2);

    // Same data dir, another port: it would have taken the running task for a crash's leftover.
    const sameDir = Bun.spawnSync([binary, "--data-dir", dataDir, "--config", config, "--port", "0"], { cwd: workDir, stderr: "pipe", stdout: "pipe", timeout: 15_000 });
    const lines = sameDir.stderr.toString().trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toStartWith(`agentkit: cannot start: the data dir ${dataDir} is in use by another agentkit process (its agentkit.lock is held: a server, or an agentkit compact)`);
    expect(sameDir.exitCode).toBe(2);

    const result = await watcher.result(30_000);
    expect(result.data).toMatchObject({ status: "completed", output: "done" });
    expect(watcher.seqs).toEqual(Array.from({ length: result.seq! }, (_, index) => index + 1));
    expect(first.child.exitCode).toBeNull();
    expect(existsSync(join(dataDir, "agentkit.addr.json"))).toBe(true); // the second did not remove the first's
  } finally {
    first.child.kill("SIGTERM");
    await first.child.exited;
  }
  // Stopped: the data dir is free again.
  const again = await launch(["--data-dir", dataDir, "--config", config]);
  again.child.kill("SIGTERM");
  expect(await again.child.exited).toBe(0);
}, 60_000);

test("a data dir whose agentkit.lock was deleted while its server runs (or whose server is older than the lock): a second server sees the first through its address file and stops (exit 2)", async () => {
  const dataDir = join(workDir, "unlocked-data");
  const first = await launch(["--data-dir", dataDir]);
  try {
    rmSync(join(dataDir, "agentkit.lock"));
    const second = Bun.spawnSync([binary, "--data-dir", dataDir, "--port", "0"], { cwd: workDir, stderr: "pipe", stdout: "pipe", timeout: 15_000 });
    const lines = second.stderr.toString().trim().split("\n");
    expect(lines).toEqual([
      `agentkit: cannot start: the data dir ${dataDir} is in use by another agentkit server (http://127.0.0.1:${first.port} answers as agentkit, pid ${first.child.pid} (agentkit.addr.json)): one data dir serves one server — stop that one, or choose another --data-dir (servers share a PostgreSQL database instead: AGENTKIT_DATABASE_URL)`,
    ]);
    expect(second.exitCode).toBe(2);
    expect((await fetch(`${first.base}/health`)).status).toBe(200);
  } finally {
    first.child.kill("SIGTERM");
    await first.child.exited;
  }
  // A stale address file (its server gone, kill -9 leaves it) does not stop the next start.
  const crashed = await launch(["--data-dir", dataDir]);
  crashed.child.kill("SIGKILL");
  await crashed.child.exited;
  expect(existsSync(join(dataDir, "agentkit.addr.json"))).toBe(true);
  const next = await launch(["--data-dir", dataDir]);
  next.child.kill("SIGTERM");
  expect(await next.child.exited).toBe(0);
}, 60_000);

test("a low open-file limit is named at start-up (each connection and watcher holds a file descriptor)", async () => {
  const child = Bun.spawn(["bash", "-c", `ulimit -n 1000 && exec "$0" --data-dir "$1" --port 0`, binary, join(workDir, "nofile-data")], { cwd: workDir, stderr: "pipe", stdout: "pipe" });
  const { log } = await listeningPort(child, 10_000);
  child.kill("SIGTERM");
  expect(await child.exited).toBe(0);
  expect(log()).toContain("warn  the open-file limit is 1000: each connection and watcher holds one");
});

test("a start that fails (a port in use, a tools module that throws) stops before the store is opened: a fresh data dir has no database, an existing one is not migrated", async () => {
  const holder = await launch(["--data-dir", join(workDir, "fails-holder")]);
  try {
    const fresh = join(workDir, "fails-fresh");
    const refused = Bun.spawnSync([binary, "--data-dir", fresh, "--port", String(holder.port)], { cwd: workDir, stderr: "pipe", stdout: "pipe", timeout: 15_000 });
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr.toString()).toContain("EADDRINUSE");
    expect(existsSync(join(fresh, "agentkit.sqlite"))).toBe(false);
  } finally {
    holder.child.kill("SIGTERM");
    await holder.child.exited;
  }
  const module = join(workDir, "throwing-tools.ts");
  await Bun.write(module, 'throw new Error("this module does not load");\n');
  const fresh = join(workDir, "fails-tools");
  const broken = Bun.spawnSync([binary, "--data-dir", fresh, "--port", "0"], { cwd: workDir, env: { AGENTKIT_TOOLS_MODULE: module }, stderr: "pipe", stdout: "pipe", timeout: 15_000 });
  expect(broken.exitCode).toBe(2);
  expect(broken.stderr.toString()).toContain("this module does not load");
  expect(existsSync(join(fresh, "agentkit.sqlite"))).toBe(false);
}, 60_000);

test("a data dir that is a file, and a database URL whose password has an unencoded '@', are named (exit 2), the password never shown", () => {
  const file = join(workDir, "a-file");
  Bun.spawnSync(["touch", file]);
  const asFile = Bun.spawnSync([binary, "--data-dir", file, "--port", "0"], { cwd: workDir, stderr: "pipe", stdout: "pipe" });
  expect(asFile.stderr.toString().trim()).toBe(`agentkit: cannot start: the data dir ${file} is a file, not a directory: choose another --data-dir`);
  expect(asFile.exitCode).toBe(2);
  for (const url of ["postgres://agentkit:Pa@ssw0rd?Secret@127.0.0.1:1/agentkit", "postgres://agentkit:p@ss/word@127.0.0.1:1/agentkit"]) {
    const run = Bun.spawnSync([binary, "--data-dir", join(workDir, "pg-data"), "--port", "0", "--database-url", url], { cwd: workDir, stderr: "pipe", stdout: "pipe" });
    const said = run.stderr.toString();
    expect(said).toContain("has an '@' after its host: percent-encode");
    for (const secret of ["ssw0rd", "Secret", "ss/word"]) expect(said).not.toContain(secret);
    expect(run.exitCode).toBe(2);
  }
});

test("a restart refused for a port in use touches nothing: the previous run's running task is not resumed by a server that never served", async () => {
  const dataDir = join(workDir, "refused-data");
  const config = join(workDir, "refused-agents.json");
  await Bun.write(config, JSON.stringify({ agents: [{ name: "ticker", model: "demo/bench", tools: ["calculator"], max_steps: 10000 }] }));
  const crashed = await launch(["--data-dir", dataDir, "--config", config]);
  const task = (await (
    await fetch(`${crashed.base}/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ agent: "ticker", input: JSON.stringify({ steps: 300, delay_ms: 10 }) }) })
  ).json()) as { id: string };
  const watcher = await connect(`ws://127.0.0.1:${crashed.port}/ws/tasks/${task.id}`);
  await watcher.waitFor((frame) => (frame.seq ?? 0) >= 3, "the task runs");
  crashed.child.kill("SIGKILL");
  await crashed.child.exited;
  const holder = await launch(["--data-dir", join(workDir, "refused-holder"), "--config", config]);
  try {
    const refused = Bun.spawnSync([binary, "--data-dir", dataDir, "--config", config, "--port", String(holder.port)], { cwd: workDir, stderr: "pipe", stdout: "pipe", timeout: 15_000 });
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr.toString()).toContain("EADDRINUSE");
    expect(refused.stderr.toString()).not.toContain("recovered tasks");
  } finally {
    holder.child.kill("SIGTERM");
    await holder.child.exited;
  }
  // The next real start resumes it once: attempt 2 (a refused start would have made it 3).
  const next = await launch(["--data-dir", dataDir, "--config", config]);
  try {
    const late = await connect(`ws://127.0.0.1:${next.port}/ws/tasks/${task.id}`);
    await late.result(30_000);
    const resumed = late.frames.filter((frame) => frame.type === "step" && (frame.data as { event_type: string }).event_type === "resumed");
    expect(resumed.map((frame) => (frame.data as { data: { attempt: number } }).data.attempt)).toEqual([2]);
  } finally {
    next.child.kill("SIGTERM");
    await next.child.exited;
  }
}, 60_000);

test("SIGTERM while an MCP server hangs in start-up (and later, while it is retried): exit 0, and no MCP server process is left behind", async () => {
  const marker = `mute-${crypto.randomUUID()}`;
  const config = join(workDir, `${marker}.json`);
  // A stdio "server" that never answers initialize (and ignores its stdin closing).
  await Bun.write(
    config,
    JSON.stringify({
      agents: [{ name: "default", model: "demo", tools: ["calculator"] }],
      mcp_servers: [{ name: "mute", command: process.execPath, args: ["-e", `setInterval(() => {}, 1000); // ${marker}`], timeoutMs: 2000 }],
    }),
  );
  const leftovers = () => Bun.spawnSync(["pgrep", "-f", marker]).stdout.toString().trim().split("\n").filter(Boolean);
  for (const [when, afterMs] of [["during start-up", 500], ["while serving", 11_000]] as const) {
    const child = Bun.spawn([binary, "--data-dir", join(workDir, `${marker}-data`), "--config", config, "--port", "0"], { cwd: workDir, stderr: "pipe", stdout: "pipe" });
    await Bun.sleep(afterMs);
    expect(leftovers().length, when).toBeGreaterThan(0); // it was started
    child.kill("SIGTERM");
    expect(await within(child.exited, 15_000, "the server to exit"), when).toBe(0);
    await until(() => leftovers().length === 0, `no MCP server left (${when})`, 5_000);
  }
}, 60_000);
