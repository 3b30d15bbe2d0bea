/**
 * The benchmark suite (issue 5): `bun run bench` (bench/run.sh) runs this.
 *
 * Builds dist/agentkit if missing or older than the sources, then runs, each against a fresh
 * server with a fresh data dir under one temp dir: start, short bursts and fan-out (against the
 * bare Bun pub/sub ceiling), the reconnect storm (against bare subscribe), steady latency, many
 * tasks (instant and paced model), cancel, idle connections. The machine (CPU, cores, memory, the
 * data dir's disk and filesystem, load average before and after each scenario, Bun) is recorded. Writes
 * bench/results/<UTC timestamp>.json and prints Markdown tables. Every process it starts is killed
 * and the temp dir removed on the way out, on failure and on Ctrl-C too.
 *
 *   bun run bench                          everything (~5 minutes on 2 cores)
 *   bun run bench -- --quick               smaller counts, one run each (a smoke test)
 *   bun run bench -- --only=burst,storm    some scenarios: start burst fanout storm steady tasks cancel connections cluster
 *   bun run bench -- --only=cluster        cluster mode on PostgreSQL (a throwaway cluster with durability on,
 *                                          or AGENTKIT_BENCH_DATABASE_URL; skipped with the reason without PostgreSQL)
 *   bun run bench -- --reps=5 --pad=200    runs per fan-out figure; padding characters per tool_call
 *   bun run bench -- --pairs=9             interleaved agentkit/bare pairs per short-burst figure
 *   bun run bench -- --burst-warmup=0      short bursts run before the measured pairs (default 30)
 *   bun run bench -- --binary=/tmp/agentkit  another build of agentkit (A/B a change; no build step)
 *   bun run bench -- --baseline=/tmp/old     an older build measured beside it in the same run (cluster: SQLite many tasks)
 */
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { BENCH_CONFIG, type Context, type Options } from "./lib/context.ts";
import { ClientProcess, foreignCpuSeconds, killAll, snapshotCpu, within } from "./lib/processes.ts";
import { judgeTargets, renderTables, type Machine, type Results } from "./lib/report.ts";
import { burst } from "./scenarios/burst.ts";
import { storm } from "./scenarios/storm.ts";
import { cancel } from "./scenarios/cancel.ts";
import { connections } from "./scenarios/connections.ts";
import { fanOut } from "./scenarios/fan-out.ts";
import { manyTasks } from "./scenarios/many-tasks.ts";
import { cluster } from "./scenarios/cluster.ts";
import { postgresAvailability, startBenchPostgres, type BenchPostgres } from "./lib/postgres.ts";
import { start } from "./scenarios/start.ts";
import { steady } from "./scenarios/steady.ts";

const SCENARIOS = ["start", "burst", "fanout", "storm", "steady", "tasks", "cancel", "connections", "cluster"] as const;
const WHOLE_RUN_LIMIT_MS = 35 * 60_000;

const benchDir = import.meta.dir;
const repoRoot = dirname(benchDir);
const restore: (() => void)[] = [];
let tmpRoot: string | undefined;
let benchPostgres: BenchPostgres | undefined;

function cleanUp() {
  killAll();
  // Synchronous (an exit handler): signal the throwaway PostgreSQL to stop; main() awaits its stop first.
  benchPostgres?.killNow();
  benchPostgres = undefined;
  while (restore.length) {
    try {
      restore.pop()!();
    } catch {
      // keep going: the rest must still be cleaned up
    }
  }
  if (tmpRoot) rmSync(tmpRoot, { recursive: true, force: true });
  tmpRoot = undefined;
}

process.on("exit", cleanUp);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    process.stderr.write(`\nbench: ${signal}, cleaning up\n`);
    cleanUp();
    process.exit(130);
  });
}

function parseOptions(): Options {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      reps: { type: "string" },
      pairs: { type: "string" },
      "burst-warmup": { type: "string" },
      pad: { type: "string" },
      "fanout-clients": { type: "string" },
      "steady-clients": { type: "string" },
      binary: { type: "string" },
      baseline: { type: "string" },
    },
  });
  const only = values.only ? new Set(values.only.split(",").map((name) => name.trim())) : undefined;
  for (const name of only ?? []) {
    if (!(SCENARIOS as readonly string[]).includes(name)) throw new Error(`--only: unknown scenario '${name}' (${SCENARIOS.join(", ")})`);
  }
  return {
    quick: values.quick ?? false,
    only,
    reps: Number(values.reps ?? (values.quick ? 1 : 5)),
    // 21: at 100 watchers a burst lasts ~25 ms and one pair's CPU ratio swings 1.0–2.9×; 7 pairs gave medians from 1.26× to 1.69× for one build.
    pairs: Number(values.pairs ?? (values.quick ? 2 : 21)),
    burstWarmup: Number(values["burst-warmup"] ?? (values.quick ? 5 : 30)),
    pad: Number(values.pad ?? 0),
    fanoutClients: Number(values["fanout-clients"] ?? 1),
    steadyClients: Number(values["steady-clients"] ?? 2),
    binary: values.binary,
    baseline: values.baseline ? resolve(values.baseline) : undefined,
  };
}

function newestMtime(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

function run(command: string[], what: string) {
  const result = Bun.spawnSync(command, { cwd: repoRoot, stdout: "inherit", stderr: "inherit" });
  if (result.exitCode !== 0) throw new Error(`${what} failed (${command.join(" ")}: exit ${result.exitCode})`);
}

/** dist/agentkit, built first if it is missing or older than anything it is built from. */
function ensureBinary(log: (message: string) => void): string {
  const binary = join(repoRoot, "dist", "agentkit");
  if (!existsSync(join(repoRoot, "node_modules"))) {
    log("installing dependencies (bun install --frozen-lockfile)");
    run(["bun", "install", "--frozen-lockfile"], "bun install");
  }
  const sources = ["src", "package.json", "bun.lock", "tsconfig.json", "bunfig.toml"]
    .map((path) => join(repoRoot, path))
    .filter((path) => existsSync(path));
  const newest = Math.max(...sources.map(newestMtime));
  if (!existsSync(binary) || statSync(binary).mtimeMs < newest) {
    log("building dist/agentkit (bun run build)");
    run(["bun", "run", "build"], "bun run build");
  }
  return binary;
}

function openFileLimit(): number {
  const fromEnv = Number(process.env.BENCH_NOFILE);
  if (Number.isFinite(fromEnv) && fromEnv > 0) return fromEnv;
  const limits = readFileSync("/proc/self/limits", "utf8");
  const soft = /^Max open files\s+(\d+)/m.exec(limits)?.[1];
  return soft ? Number(soft) : 1024;
}

/** The load average (1, 5, 15 min) as /proc/loadavg has it. */
function load(): [number, number, number] {
  const [one, five, fifteen] = loadavg().map((value) => Math.round(value * 100) / 100);
  return [one!, five!, fifteen!];
}

/** Where the data dirs live: device, filesystem, mount options, and whether the disk says it rotates. */
function dataDisk(dir: string): Machine["data_dir"] {
  const found = Bun.spawnSync(["findmnt", "-no", "SOURCE,FSTYPE,OPTIONS", "-T", dir]).stdout.toString().trim().split(/\s+/);
  const [device = "unknown", fstype = "unknown", mountOptions = ""] = found;
  let rotational: boolean | null = null;
  let model: string | null = null;
  const name = /^\/dev\/([a-z]+?)(p?\d+)?$/.exec(device)?.[1];
  if (name) {
    try {
      rotational = readFileSync(`/sys/block/${name}/queue/rotational`, "utf8").trim() === "1";
    } catch {
      // not a block device we can see
    }
    try {
      model = readFileSync(`/sys/block/${name}/device/model`, "utf8").trim() || null;
    } catch {
      model = name.startsWith("vd") ? "virtio block device (the host's storage is not visible)" : null;
    }
  }
  return { path: dir, device, fstype, mount_options: mountOptions, rotational, model };
}

function machine(nofile: number, dataDir: string): Machine {
  const commit = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: repoRoot }).stdout.toString().trim();
  const dirty = Bun.spawnSync(["git", "status", "--porcelain", "--", "src"], { cwd: repoRoot }).stdout.toString().trim();
  return {
    nproc: cpus().length,
    cpu_model: cpus()[0]?.model ?? "unknown",
    memory_gib: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    kernel: release(),
    bun: Bun.version,
    commit: (commit || "unknown") + (dirty ? " (src modified)" : ""),
    open_file_limit: nofile,
    data_dir: dataDisk(dataDir),
    loadavg_start: load(),
    loadavg_end: load(),
  };
}

async function main(): Promise<number> {
  const options = parseOptions();
  const began = performance.now();
  const log = (message: string) => process.stderr.write(`[${((performance.now() - began) / 1000).toFixed(1).padStart(6)} s] ${message}\n`);
  const source = options.binary ? resolve(options.binary) : ensureBinary(log);
  if (!existsSync(source)) throw new Error(`--binary: ${source} does not exist`);
  tmpRoot = mkdtempSync(join(process.env.BENCH_TMPDIR ?? tmpdir(), "agentkit-bench-"));
  // Run a private copy: a build of dist/ during the run (tests build it too) must not swap binaries.
  const binary = join(tmpRoot, "agentkit");
  copyFileSync(source, binary);
  chmodSync(binary, 0o755);
  const hasher = new Bun.CryptoHasher("sha1");
  hasher.update(await Bun.file(binary).arrayBuffer());
  const binaryInfo = { path: source, sha1: hasher.digest("hex").slice(0, 12), bytes: statSync(binary).size };
  if (options.baseline) {
    if (!existsSync(options.baseline)) throw new Error(`--baseline: ${options.baseline} does not exist`);
    const copy = join(tmpRoot, "agentkit-baseline");
    copyFileSync(options.baseline, copy);
    chmodSync(copy, 0o755);
    log(`baseline binary: ${options.baseline}, run from a private copy`);
    options.baseline = copy;
  }
  const configPath = join(tmpRoot, "agentkit.json");
  writeFileSync(configPath, JSON.stringify(BENCH_CONFIG, null, 2));
  const nofile = openFileLimit();
  const context: Context = { repoRoot, benchDir, binary, tmpRoot, configPath, nofile, options, log };
  const wanted = (name: (typeof SCENARIOS)[number]) => !options.only || options.only.has(name);

  const results: Results = {
    date: new Date().toISOString(),
    command: ["bun run bench", ...process.argv.slice(2)].join(" "),
    machine: machine(nofile, tmpRoot),
    binary: binaryInfo,
    options: { ...options, only: options.only ? [...options.only] : "all" },
    duration_s: 0,
    clock_offset_ms: null,
    other_load: {},
    errors: {},
    targets: [],
  };
  const disk = results.machine.data_dir;
  log(
    `agentkit bench: ${results.machine.nproc}× ${results.machine.cpu_model}, ${results.machine.memory_gib} GiB, Bun ${results.machine.bun}, ` +
      `open files ${nofile}; data dir on ${disk.device} (${disk.fstype}${disk.rotational === null ? "" : disk.rotational ? ", rotational" : ", non-rotational"}); ` +
      `load average ${results.machine.loadavg_start.join(" ")}`,
  );
  log(`binary: ${binaryInfo.path} (sha1 ${binaryInfo.sha1}), run from a private copy`);

  // Latency compares clocks of two processes (server's `t`, client's arrival): check they agree.
  const probe = new ClientProcess(benchDir, {
    mode: "cancel",
    http: "http://127.0.0.1:1",
    ws: "ws://127.0.0.1:1",
    trials: 0,
    watchers: 0,
    agent: "",
    input: "",
    timeoutMs: 1000,
  });
  try {
    await probe.next("ready", 10_000);
    results.clock_offset_ms = Math.round((await probe.clockOffset()) * 1000) / 1000;
    log(`clock offset between processes: ${results.clock_offset_ms} ms`);
  } finally {
    await probe.close();
  }

  const steps: [(typeof SCENARIOS)[number], () => Promise<void>][] = [
    ["start", async () => void (results.start = await start(context))],
    ["burst", async () => void (results.burst = await burst(context))],
    ["fanout", async () => void (results.fan_out = await fanOut(context))],
    ["storm", async () => void (results.storm = await storm(context))],
    ["steady", async () => void (results.steady = await steady(context))],
    [
      "tasks",
      async () => {
        results.many_tasks = await manyTasks(context);
        results.many_tasks_paced = await manyTasks(context, 1);
      },
    ],
    ["cancel", async () => void (results.cancel = await cancel(context))],
    ["connections", async () => void (results.connections = await connections(context, restore))],
    [
      "cluster",
      async () => {
        const available = postgresAvailability();
        if (!available.ok) {
          results.cluster_skipped = available.reason;
          log(`cluster: SKIPPED — ${available.reason}`);
          return;
        }
        benchPostgres = await startBenchPostgres(available, log);
        try {
          const disk = benchPostgres.dataDir ? dataDisk(benchPostgres.dataDir) : null;
          const diskText = disk ? `${disk.device} (${disk.fstype}, ${disk.mount_options})` : null;
          results.cluster = await cluster(context, benchPostgres, diskText);
          const failed = Object.entries(results.cluster.errors);
          if (failed.length) throw new Error(failed.map(([part, message]) => `${part}: ${message}`).join("; "));
        } finally {
          await benchPostgres.stop();
          benchPostgres = undefined;
        }
      },
    ],
  ];
  for (const [name, step] of steps) {
    if (!wanted(name)) continue;
    const before = snapshotCpu();
    const loadBefore = load();
    const began = performance.now();
    try {
      await within(step(), (name === "cluster" ? 25 : 8) * 60_000, name);
    } catch (error) {
      results.errors[name] = error instanceof Error ? error.message : String(error);
      log(`${name} FAILED: ${results.errors[name]}`);
      killAll(); // whatever that scenario left running
    }
    const foreign = foreignCpuSeconds(before, snapshotCpu());
    const seconds = (performance.now() - began) / 1000;
    const loadAfter = load();
    results.other_load[name] = { cpu_s: foreign, wall_s: Math.round(seconds * 10) / 10, loadavg_before: loadBefore, loadavg_after: loadAfter };
    log(`  ${name}: other processes used ${foreign} CPU-s in ${seconds.toFixed(1)} s; load average ${loadBefore[0]} → ${loadAfter[0]}`);
    if (foreign > 0.05 * seconds) log(`  note: other processes used ${foreign} CPU-s during these ${seconds.toFixed(1)} s — figures skewed`);
  }

  results.duration_s = Math.round((performance.now() - began) / 100) / 10;
  results.machine.loadavg_end = load();
  results.targets = judgeTargets(results);
  const resultsDir = join(benchDir, "results");
  mkdirSync(resultsDir, { recursive: true });
  const stamp = results.date.replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  const file = join(resultsDir, `${stamp}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`\n${renderTables(results)}\n\nResults: ${file} (${results.duration_s} s)\n`);
  return Object.keys(results.errors).length > 0 ? 1 : 0;
}

const watchdog = setTimeout(() => {
  process.stderr.write(`bench: still running after ${WHOLE_RUN_LIMIT_MS / 60_000} minutes, giving up\n`);
  cleanUp();
  process.exit(1);
}, WHOLE_RUN_LIMIT_MS);
watchdog.unref();

main().then(
  (code) => {
    cleanUp();
    process.exit(code);
  },
  (error) => {
    process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    cleanUp();
    process.exit(1);
  },
);
