/**
 * Profiling aid (not part of `bun run bench`): one server (agentkit binary or bare), N watchers, R bursts of 200 events, with the
 * server's syscalls counted by `strace -c -f -p` over the bursts alone. Not part of the suite.
 *   bun bench/strace-burst.ts <agentkit-binary|bare> <watchers> <bursts>
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BENCH_CONFIG, cancelTask, createTask, holdSlot, startServer, waitForEnd, warmUp, type Context } from "./lib/context.ts";
import { cpuSecondsOf, killAll, sleep, startBare } from "./lib/processes.ts";
import { watchAll } from "./scenarios/fan-out.ts";
import { BURST_STEPS } from "./scenarios/burst.ts";

const [what = "bare", watchersArg = "100", burstsArg = "20"] = process.argv.slice(2);
const watchers = Number(watchersArg);
const bursts = Number(burstsArg);
const tmpRoot = mkdtempSync(join(tmpdir(), "strace-burst-"));
const configPath = join(tmpRoot, "agentkit.json");
writeFileSync(configPath, JSON.stringify(BENCH_CONFIG));
const context: Context = {
  repoRoot: join(import.meta.dir, ".."),
  benchDir: import.meta.dir,
  binary: what,
  tmpRoot,
  configPath,
  nofile: 20000,
  options: { quick: false, only: undefined, reps: 1, pairs: 1, burstWarmup: 0, pad: 0, fanoutClients: 1, steadyClients: 1, binary: undefined, baseline: undefined },
  log: (message) => console.error(message),
};
try {
  const server = what === "bare" ? await startBare(import.meta.dir) : await startServer(context, { AGENTKIT_MAX_CONCURRENT_TASKS: "1" });
  if (what !== "bare") await warmUp(server);
  const tool = process.env.TRACE === "perf"
    ? ["perf", "record", "-F", "2000", "-g", "-p", String(server.pid), "-o", "/tmp/perf.data"]
    : process.env.TRACE === "none" ? ["sleep", "100000"] : ["strace", "-c", "-f", "-p", String(server.pid), "-o", join(tmpRoot, "strace.txt")];
  const strace = Bun.spawn(tool, { stderr: "ignore", stdout: "ignore" });
  await sleep(500);
  const { readdirSync, readFileSync } = await import("node:fs");
  const threads = () => {
    const map = new Map<string, number>();
    for (const tid of readdirSync(`/proc/${server.pid}/task`)) {
      try {
        const comm = readFileSync(`/proc/${server.pid}/task/${tid}/comm`, "utf8").trim();
        const ns = Number(readFileSync(`/proc/${server.pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
        map.set(`${comm}`, (map.get(comm) ?? 0) + ns);
      } catch {}
    }
    return map;
  };
  const threadsBefore = threads();
  let cpu = 0;
  let total = 0;
  for (let index = 0; index < bursts; index++) {
    let result;
    if (what === "bare") {
      result = await watchAll(context, `${server.ws}/ws`, watchers, 1, async () => (await fetch(`${server.http}/publish?steps=${BURST_STEPS}`, { method: "POST" })).json(), server.pid);
    } else {
      const gate = await holdSlot(server);
      const task = await createTask(server, "bench", { steps: BURST_STEPS });
      result = await watchAll(context, `${server.ws}/ws/tasks/${task.id}?deltas=0`, watchers, 1, () => cancelTask(server, gate.id), server.pid);
      await waitForEnd(server, task.id, 10_000);
    }
    cpu += result.cpu;
    total += result.stats.last_arrival - result.triggeredAt;
  }
  const threadsAfter = threads();
  console.log([...threadsAfter].map(([comm, ns]) => `${comm}: ${((ns - (threadsBefore.get(comm) ?? 0)) / 1e6 / bursts).toFixed(2)} ms/burst`).join(", "));
  strace.kill("SIGINT");
  await strace.exited;
  console.log(`${what}: ${bursts} bursts × ${watchers} watchers: mean ${(total / bursts).toFixed(2)} ms, CPU ${((cpu * 1e6) / (bursts * watchers * 200)).toFixed(3)} µs/delivery (under strace)`);
  console.log(await Bun.file(join(tmpRoot, "strace.txt")).text());
  await server.stop();
} finally {
  killAll();
  rmSync(tmpRoot, { recursive: true, force: true });
}
