/**
 * Reconnect storm: N watchers follow one live task (a paced model: one step every `STEP_MS`), then
 * every connection drops at once and every watcher reconnects with `after=<last seq it had>` —
 * what clients do after a network blip or a proxy restart. Measured from the drop: all
 * re-subscribed (each has its `connected` frame) and all caught up (each has every event up to the
 * `last_seq` its `connected` frame announced), the server's CPU over that time, and — since every
 * frame's seq is checked — no gap and no duplicate across the reconnect. Afterwards the task ends
 * and every watcher must get its result (proof that each one was subscribed again).
 *
 * Against the bare Bun.serve pub/sub server doing the same with the least work: `connected`, the
 * frames after `after` from an in-memory array, subscribe. Pairs alternate the order.
 *
 * The count is 10,000, or less when the open-file limit (RLIMIT_NOFILE) does not allow it: the
 * server holds one fd per watcher, and during the storm briefly some that are closing too.
 */
import { cancelTask, createTask, getTask, round, startServer, type Context } from "../lib/context.ts";
import { ClientProcess, cpuSecondsOf, sleep, startBare, type ServerHandle } from "../lib/processes.ts";
import type { ClientReport } from "../client.ts";
import { spread, type Spread } from "./burst.ts";

const STEP_MS = 100;
const PER_CLIENT = 5000;
const STORM_CONCURRENCY = 1024;

export interface StormRun {
  system: "agentkit" | "bare";
  watchers: number;
  resubscribed_all_ms: number;
  resubscribed_p50_ms: number;
  caught_up_all_ms: number;
  caught_up_p50_ms: number;
  replayed_frames: number;
  server_cpu_ms: number;
  server_cpu_us_per_watcher: number;
  failed: number;
  retries: number;
  gaps: number;
  duplicates: number;
  all_got_result: boolean;
  errors: string[];
}

export interface StormResult {
  watchers: number;
  limited_by: string | null;
  step_ms: number;
  reconnects_in_flight: number;
  client_processes: number;
  pairs: number;
  agentkit_caught_up_ms: Spread;
  bare_caught_up_ms: Spread;
  agentkit_resubscribed_ms: Spread;
  bare_resubscribed_ms: Spread;
  agentkit_cpu_us_per_watcher: Spread;
  bare_cpu_us_per_watcher: Spread;
  /** agentkit ÷ bare, per pair: time to all caught up, and server CPU. */
  time_ratio: Spread;
  cpu_ratio: Spread;
  correct: boolean;
  runs: StormRun[];
}

async function stormRun(context: Context, system: "agentkit" | "bare", server: ServerHandle, watchers: number): Promise<StormRun> {
  let url: string;
  let end: () => Promise<unknown>;
  if (system === "agentkit") {
    const task = await createTask(server, "bench", { steps: 100_000, delay_ms: STEP_MS });
    const deadline = performance.now() + 5000;
    while ((await getTask(server, task.id)).status !== "running") {
      if (performance.now() > deadline) throw new Error("storm: task did not start");
      await sleep(5);
    }
    url = `${server.ws}/ws/tasks/${task.id}?deltas=0`;
    end = () => cancelTask(server, task.id);
  } else {
    await (await fetch(`${server.http}/publish?steps=100000&delay_ms=${STEP_MS}`, { method: "POST" })).json();
    url = `${server.ws}/ws`;
    end = async () => (await fetch(`${server.http}/end`, { method: "POST" })).json();
  }
  const clients: ClientProcess[] = [];
  try {
    for (let remaining = watchers; remaining > 0; remaining -= PER_CLIENT) {
      const count = Math.min(PER_CLIENT, remaining);
      clients.push(
        new ClientProcess(context.benchDir, { mode: "storm", url, count, concurrency: 256, stormConcurrency: STORM_CONCURRENCY, timeoutMs: 60_000 }),
      );
    }
    for (const client of clients) {
      const ready = await client.next("ready", 180_000);
      if (ready.failed > 0) throw new Error(`storm: ${ready.failed} watchers failed to connect: ${ready.errors.join("; ")}`);
    }
    await sleep(1000); // every watcher follows the live task for a while
    const cpuBefore = cpuSecondsOf(server.pid);
    for (const client of clients) client.send({ type: "go" });
    const reports = await Promise.all(clients.map((client) => client.next("storm-done", 120_000)));
    const cpu = cpuSecondsOf(server.pid) - cpuBefore;
    const dropped = Math.min(...reports.map((r) => r.dropped_at));
    const at = (r: Extract<ClientReport, { type: "storm-done" }>, ms: number) => r.dropped_at + ms - dropped;
    // Then the task ends: every watcher must get its result.
    for (const client of clients) client.send({ type: "go" });
    await end();
    const ends = await Promise.all(clients.map((client) => client.next("storm-end", 60_000)));
    const weighted = (pick: (r: (typeof reports)[number]) => number) =>
      reports.reduce((sum, r) => sum + pick(r) * r.watchers, 0) / watchers;
    return {
      system,
      watchers,
      resubscribed_all_ms: round(Math.max(...reports.map((r) => at(r, r.resubscribed_all_ms))), 1),
      resubscribed_p50_ms: round(weighted((r) => r.resubscribed_p50_ms), 1),
      caught_up_all_ms: round(Math.max(...reports.map((r) => at(r, r.caught_up_all_ms))), 1),
      caught_up_p50_ms: round(weighted((r) => r.caught_up_p50_ms), 1),
      replayed_frames: reports.reduce((sum, r) => sum + r.replayed_frames, 0),
      server_cpu_ms: round(cpu * 1000, 1),
      server_cpu_us_per_watcher: round((cpu * 1e6) / watchers, 2),
      failed: reports.reduce((sum, r) => sum + r.failed, 0),
      retries: reports.reduce((sum, r) => sum + r.retries, 0),
      gaps: ends.reduce((sum, r) => sum + r.gaps, 0),
      duplicates: ends.reduce((sum, r) => sum + r.duplicates, 0),
      all_got_result: ends.every((r) => !r.timed_out) && ends.reduce((sum, r) => sum + r.watchers_done, 0) === watchers,
      errors: reports.flatMap((r) => r.errors).slice(0, 5),
    };
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
}

export async function storm(context: Context): Promise<StormResult> {
  // The server holds every watcher's socket, plus (briefly) closing ones: leave room for both.
  const wanted = context.options.quick ? 1000 : 10_000;
  const fit = Math.floor((context.nofile - 300) / 1.5);
  const watchers = Math.min(wanted, fit);
  const limitedBy = watchers < wanted ? `RLIMIT_NOFILE ${context.nofile}: the server holds one fd per watcher, and closing ones during the storm` : null;
  const pairs = context.options.quick ? 1 : 3;
  context.log(`reconnect storm: ${watchers} watchers of a live task (a step every ${STEP_MS} ms), ${pairs} pairs${limitedBy ? ` (limited by ${limitedBy})` : ""}`);
  const runs: StormRun[] = [];
  for (let pair = 0; pair < pairs; pair++) {
    const order = pair % 2 === 0 ? (["bare", "agentkit"] as const) : (["agentkit", "bare"] as const);
    for (const system of order) {
      // A fresh server each time: no TIME_WAIT or leftover state from the previous storm.
      const server = system === "agentkit" ? await startServer(context) : await startBare(context.benchDir);
      try {
        const run = await stormRun(context, system, server, watchers);
        runs.push(run);
        context.log(
          `  ${system.padEnd(8)} all re-subscribed ${run.resubscribed_all_ms} ms (p50 ${run.resubscribed_p50_ms}), all caught up ${run.caught_up_all_ms} ms, ` +
            `server CPU ${run.server_cpu_ms} ms = ${run.server_cpu_us_per_watcher} µs/watcher, replayed ${run.replayed_frames}, ` +
            `retries ${run.retries}, failed ${run.failed}, gaps ${run.gaps}, dups ${run.duplicates}, all results ${run.all_got_result}`,
        );
      } finally {
        await server.stop();
      }
    }
  }
  const of = (system: "agentkit" | "bare") => runs.filter((run) => run.system === system);
  const a = of("agentkit");
  const b = of("bare");
  return {
    watchers,
    limited_by: limitedBy,
    step_ms: STEP_MS,
    reconnects_in_flight: STORM_CONCURRENCY * Math.ceil(watchers / PER_CLIENT),
    client_processes: Math.ceil(watchers / PER_CLIENT),
    pairs,
    agentkit_caught_up_ms: spread(a.map((run) => run.caught_up_all_ms), 1),
    bare_caught_up_ms: spread(b.map((run) => run.caught_up_all_ms), 1),
    agentkit_resubscribed_ms: spread(a.map((run) => run.resubscribed_all_ms), 1),
    bare_resubscribed_ms: spread(b.map((run) => run.resubscribed_all_ms), 1),
    agentkit_cpu_us_per_watcher: spread(a.map((run) => run.server_cpu_us_per_watcher), 2),
    bare_cpu_us_per_watcher: spread(b.map((run) => run.server_cpu_us_per_watcher), 2),
    time_ratio: spread(a.map((run, index) => run.caught_up_all_ms / b[index]!.caught_up_all_ms)),
    cpu_ratio: spread(a.map((run, index) => run.server_cpu_ms / b[index]!.server_cpu_ms)),
    correct: runs.every((run) => run.failed === 0 && run.gaps === 0 && run.duplicates === 0 && run.all_got_result),
    runs,
  };
}
