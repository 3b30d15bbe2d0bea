/**
 * Profiling aid (not part of `bun run bench`): one server (agentkit binary or bare), N watchers, R
 * short bursts of 200 events after W warm-up bursts, looked at from outside the server:
 *
 *   bun bench/strace-burst.ts [agentkit-binary|bare = bare] [watchers = 100] [bursts = 20] [warm-up bursts = 0]
 *
 * Always printed: the server's CPU per thread (`/proc/<pid>/task/<tid>/schedstat`, so the JIT and GC
 * threads show apart from the main thread) per burst, over the whole cycle (connects included) and
 * within the measured windows alone (trigger sent → result at the last watcher). TRACE picks a tool
 * that watches the measured bursts (not the warm-up):
 *   (unset)  `strace -c -f`: syscall counts (connects included)
 *   writes   `strace -f -ttt -e trace=sendto,write,writev`: writes per window, bytes, their sizes
 *   perf     `perf record`, enabled only inside the windows (`--control` fifo); perf.data is kept
 *            and its path printed: `perf report -i <path> --sort comm,dso --stdio`
 *   jit      no tool; the server runs with BUN_JSC_reportCompileTimes=1, and what JavaScriptCore's
 *            compilers did (count and compile time per tier) is printed for the warm-up and for the
 *            measured bursts (a source run, `bun src/main.ts` behind a one-line wrapper script, names
 *            the functions; the compiled binary does not); JIT_LOG=<file> keeps the measured
 *            bursts' compile log there
 *   none     no tool
 * BENCHMARKS.md ("Latest full run", "Where a short burst's CPU goes at 100 watchers") used them.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { BENCH_CONFIG, cancelTask, createTask, holdSlot, scriptContext, startServer, waitForEnd, warmUp } from "./lib/context.ts";
import { killAll, sleep, startBare, STDERR_LIMIT, type ServerHandle } from "./lib/processes.ts";
import { watchAll } from "./scenarios/fan-out.ts";
import { BURST_STEPS } from "./scenarios/burst.ts";

const [whatArg = "bare", watchersArg = "100", burstsArg = "20", warmupArg = "0"] = process.argv.slice(2);
const what = whatArg === "bare" ? whatArg : resolve(whatArg);
const watchers = Number(watchersArg);
const bursts = Number(burstsArg);
const warmup = Number(warmupArg);
const trace = process.env.TRACE ?? "strace";
const tmpRoot = mkdtempSync(join(tmpdir(), "strace-burst-"));
const configPath = join(tmpRoot, "agentkit.json");
writeFileSync(configPath, JSON.stringify(BENCH_CONFIG));
const context = scriptContext(import.meta.dir, what, tmpRoot, configPath);

/** CPU ns used so far by each of the server's threads, summed by thread name. */
function threadCpu(pid: number): Map<string, number> {
  const map = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim();
      const ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      map.set(name, (map.get(name) ?? 0) + ns);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return map;
}

function addDelta(into: Map<string, number>, before: Map<string, number>, after: Map<string, number>) {
  for (const [name, ns] of after) into.set(name, (into.get(name) ?? 0) + ns - (before.get(name) ?? 0));
}

function perBurst(ns: Map<string, number>): string {
  return [...ns].map(([name, value]) => `${name} ${(value / 1e6 / bursts).toFixed(2)} ms`).join(", ");
}

const perfData = join(tmpRoot, "perf.data");
const perfControl = join(tmpRoot, "perf.ctl");
const writesLog = join(tmpRoot, "writes.txt");

function toolFor(server: ServerHandle): string[] | undefined {
  const pid = String(server.pid);
  switch (trace) {
    case "none":
    case "jit":
      return undefined;
    case "writes":
      return ["strace", "-f", "-ttt", "-e", "trace=sendto,write,writev", "-o", writesLog, "-p", pid];
    case "perf":
      Bun.spawnSync(["mkfifo", perfControl]);
      return ["perf", "record", "-F", "4000", "-D", "-1", "--control", `fifo:${perfControl}`, "-p", pid, "-o", perfData];
    default:
      return ["strace", "-c", "-f", "-p", pid, "-o", join(tmpRoot, "strace.txt")];
  }
}

/** JavaScriptCore's compiles in a stretch of the server's stderr (BUN_JSC_reportCompileTimes=1), per tier. */
function compiles(log: string): string {
  const tiers = new Map<string, { count: number; ms: number }>();
  for (const match of log.matchAll(/ using (Baseline|DFG|FTL)\b.*? in ([0-9.]+) ms/g)) {
    const tier = tiers.get(match[1]!) ?? { count: 0, ms: 0 };
    tier.count++;
    tier.ms += Number(match[2]);
    tiers.set(match[1]!, tier);
  }
  return [...tiers].map(([name, { count, ms }]) => `${name} ${count} (${ms.toFixed(1)} ms)`).join(", ") || "none";
}

/** A command to perf through its control fifo (perf reads it within a millisecond or so). */
async function perfCommand(command: "enable" | "disable") {
  writeFileSync(perfControl, `${command}\n`);
}

/** One burst; the trigger runs at the start of the window. Returns the window and the run's figures. */
async function burst(server: ServerHandle, measured: boolean) {
  let before = new Map<string, number>();
  let startedAt = 0;
  const open = async () => {
    if (measured && trace === "perf") await perfCommand("enable");
    before = threadCpu(server.pid);
    startedAt = Date.now() / 1000;
  };
  let result;
  if (what === "bare") {
    result = await watchAll(context, `${server.ws}/ws`, watchers, 1, async () => {
      await open();
      return (await fetch(`${server.http}/publish?steps=${BURST_STEPS}`, { method: "POST" })).json();
    }, server.pid);
  } else {
    const gate = await holdSlot(server);
    const task = await createTask(server, "bench", { steps: BURST_STEPS });
    result = await watchAll(context, `${server.ws}/ws/tasks/${task.id}?deltas=0`, watchers, 1, async () => {
      await open();
      return cancelTask(server, gate.id);
    }, server.pid);
    const window = { before, after: threadCpu(server.pid), from: startedAt, to: Date.now() / 1000 };
    if (measured && trace === "perf") await perfCommand("disable");
    await waitForEnd(server, task.id, 10_000);
    return { ...window, result };
  }
  const window = { before, after: threadCpu(server.pid), from: startedAt, to: Date.now() / 1000 };
  if (measured && trace === "perf") await perfCommand("disable");
  return { ...window, result };
}

/** Writes per window from `strace -ttt` output: count, bytes, median size. */
function writesPerWindow(windows: { from: number; to: number }[]): string {
  const writes: { at: number; bytes: number }[] = [];
  for (const line of readFileSync(writesLog, "utf8").split("\n")) {
    const match = /^\d+\s+(\d+\.\d+) (?:sendto|write|writev)\(.*= (-?\d+)/.exec(line);
    if (match) writes.push({ at: Number(match[1]), bytes: Number(match[2]) });
  }
  const inside = writes.filter((write) => windows.some((window) => write.at >= window.from && write.at <= window.to));
  const sizes = inside.filter((write) => write.bytes > 0).map((write) => write.bytes).sort((a, b) => a - b);
  const bytes = sizes.reduce((sum, size) => sum + size, 0);
  return `${(inside.length / windows.length).toFixed(0)} writes per window (${((inside.length - sizes.length) / windows.length).toFixed(0)} wrote nothing), ${(bytes / windows.length).toFixed(0)} bytes, median ${sizes[sizes.length >> 1] ?? 0} bytes`;
}

let keep = false;
if (trace === "jit") process.env.BUN_JSC_reportCompileTimes = "1";
try {
  const server = what === "bare" ? await startBare(import.meta.dir) : await startServer(context, { AGENTKIT_MAX_CONCURRENT_TASKS: "1" });
  if (what !== "bare") await warmUp(server);
  for (let index = 0; index < warmup; index++) await burst(server, false);
  const command = toolFor(server);
  const tool = command ? Bun.spawn(command, { stderr: "ignore", stdout: "ignore" }) : undefined;
  await sleep(500);
  const warmedUpLog = server.stderr().length;
  const cycleBefore = threadCpu(server.pid);
  const inWindows = new Map<string, number>();
  const windows: { from: number; to: number }[] = [];
  let cpu = 0;
  let total = 0;
  for (let index = 0; index < bursts; index++) {
    const { before, after, from, to, result } = await burst(server, true);
    addDelta(inWindows, before, after);
    windows.push({ from, to });
    cpu += result.cpu;
    total += result.stats.last_arrival - result.triggeredAt;
  }
  const cycle = new Map<string, number>();
  addDelta(cycle, cycleBefore, threadCpu(server.pid));
  tool?.kill("SIGINT");
  await tool?.exited;
  console.log(`${what}: ${bursts} bursts × ${watchers} watchers after ${warmup} warm-up bursts${command ? ` (under ${command[0]})` : ""}`);
  console.log(`  trigger → last result: mean ${(total / bursts).toFixed(2)} ms; server CPU ${((cpu * 1e6) / (bursts * watchers * 200)).toFixed(3)} µs/delivery`);
  console.log(`  CPU per burst, whole cycle: ${perBurst(cycle)}`);
  console.log(`  CPU per burst, in the windows: ${perBurst(inWindows)}`);
  if (trace === "writes") console.log(`  ${writesPerWindow(windows)}`);
  if (trace === "jit") {
    await sleep(200); // the last lines through the pipe
    const log = server.stderr();
    console.log(`  JIT compiles, start-up and warm-up: ${compiles(log.slice(0, warmedUpLog))}`);
    console.log(`  JIT compiles, measured bursts: ${compiles(log.slice(warmedUpLog))}${log.length >= STDERR_LIMIT ? " (the log was cut at its limit)" : ""}`);
    if (process.env.JIT_LOG) {
      writeFileSync(process.env.JIT_LOG, log.slice(warmedUpLog));
      console.log(`  the measured bursts' compile log: ${process.env.JIT_LOG}`);
    }
  }
  if (trace === "perf") {
    keep = true;
    console.log(`  perf data (windows only): ${perfData}`);
  }
  if (!["none", "jit", "writes", "perf"].includes(trace)) console.log(await Bun.file(join(tmpRoot, "strace.txt")).text());
  await server.stop();
} finally {
  killAll();
  if (!keep) rmSync(tmpRoot, { recursive: true, force: true });
}
