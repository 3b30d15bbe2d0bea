/**
 * Profiling aid (not part of `bun run bench`): two agentkit binaries and the bare pub/sub server,
 * short bursts (200 events) to N watchers, interleaved round by round (the order rotates), so that
 * a change's effect on server CPU per delivery is measured side by side on a noisy machine:
 *
 *   bun bench/ab-burst.ts <binary-A> <binary-B> [watchers=100] [rounds=40] [warm-up bursts=100]
 *
 * Each round runs one burst on each server; per round it takes the ratios A ÷ bare, B ÷ bare and
 * B ÷ A of server CPU per delivery (whole process, from the trigger to the last watcher's result),
 * and prints their medians and quartiles over the rounds.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { BENCH_CONFIG, cancelTask, scriptContext, createTask, holdSlot, startServer, waitForEnd, warmUp, type Context } from "./lib/context.ts";
import { killAll, startBare, type ServerHandle } from "./lib/processes.ts";
import { watchAll } from "./scenarios/fan-out.ts";
import { BURST_STEPS } from "./scenarios/burst.ts";

const [aArg, bArg, watchersArg = "100", roundsArg = "40", warmupArg = "100"] = process.argv.slice(2);
if (!aArg || !bArg) {
  console.error("usage: bun bench/ab-burst.ts <binary-A> <binary-B> [watchers] [rounds] [warm-up]");
  process.exit(2);
}
const watchers = Number(watchersArg);
const rounds = Number(roundsArg);
const warmup = Number(warmupArg);
const deliveries = watchers * 200;
const tmpRoot = mkdtempSync(join(tmpdir(), "ab-burst-"));
const configPath = join(tmpRoot, "agentkit.json");
writeFileSync(configPath, JSON.stringify(BENCH_CONFIG));

const contextFor = (binary: string): Context => scriptContext(import.meta.dir, binary, tmpRoot, configPath);

type System = { name: string; context: Context; server: ServerHandle };

/** One burst; returns the server's CPU µs per delivery and the trigger → last result time. */
async function burst(system: System): Promise<{ cpu: number; ms: number }> {
  const { context, server } = system;
  let result;
  if (server.kind === "bare") {
    result = await watchAll(context, `${server.ws}/ws`, watchers, 1, async () => (await fetch(`${server.http}/publish?steps=${BURST_STEPS}`, { method: "POST" })).json(), server.pid);
  } else {
    const gate = await holdSlot(server);
    const task = await createTask(server, "bench", { steps: BURST_STEPS });
    result = await watchAll(context, `${server.ws}/ws/tasks/${task.id}?deltas=0`, watchers, 1, () => cancelTask(server, gate.id), server.pid);
    await waitForEnd(server, task.id, 10_000);
  }
  if (result.stats.frames !== deliveries) throw new Error(`${system.name}: ${result.stats.frames} of ${deliveries} frames`);
  return { cpu: (result.cpu * 1e6) / deliveries, ms: result.stats.last_arrival - result.triggeredAt };
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}
const describe = (values: number[]) => `${quantile(values, 0.5).toFixed(3)} (${quantile(values, 0.25).toFixed(3)}–${quantile(values, 0.75).toFixed(3)})`;

try {
  const systems: System[] = [];
  for (const [name, binary] of [["A", resolve(aArg)], ["B", resolve(bArg)]] as const) {
    const context = contextFor(binary);
    const server = await startServer(context, { AGENTKIT_MAX_CONCURRENT_TASKS: "1" });
    await warmUp(server);
    systems.push({ name, context, server });
  }
  systems.push({ name: "bare", context: contextFor("bare"), server: await startBare(import.meta.dir) });
  for (let index = 0; index < warmup; index++) for (const system of systems) await burst(system);
  const cpu: Record<string, number[]> = { A: [], B: [], bare: [] };
  const time: Record<string, number[]> = { A: [], B: [], bare: [] };
  for (let round = 0; round < rounds; round++) {
    const order = systems.map((_, index) => systems[(index + round) % systems.length]!);
    for (const system of order) {
      const got = await burst(system);
      cpu[system.name]!.push(got.cpu);
      time[system.name]!.push(got.ms);
    }
  }
  const ratio = (x: string, y: string) => cpu[x]!.map((value, index) => value / cpu[y]![index]!);
  console.log(`${watchers} watchers × 200 events, ${rounds} rounds after ${warmup} warm-up bursts each; median (quartiles)`);
  console.log(`  A = ${aArg}\n  B = ${bArg}`);
  for (const name of ["A", "B", "bare"]) console.log(`  ${name.padEnd(4)} CPU ${describe(cpu[name]!)} µs/delivery, ${describe(time[name]!)} ms`);
  console.log(`  A ÷ bare ${describe(ratio("A", "bare"))}   B ÷ bare ${describe(ratio("B", "bare"))}   B ÷ A ${describe(ratio("B", "A"))}`);
  for (const system of systems) await system.server.stop();
} finally {
  killAll();
  rmSync(tmpRoot, { recursive: true, force: true });
}
