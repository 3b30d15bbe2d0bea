/**
 * Short bursts: one task of 200 durable events (66 steps of the instant model), N watchers, against
 * the bare Bun.serve pub/sub server publishing the same 200 frames to the same number of clients.
 * Unlike fan-out (900–6,000 frames per watcher) this includes what a real task pays once: the
 * time is taken from the trigger that starts the task to the `result` frame at the last watcher.
 *
 * agentkit: the task is created while a gate task holds the server's only slot, its watchers
 * connect, then the gate is cancelled (POST /tasks/:gate/cancel): the clock starts when that
 * request is sent, so it includes the gate's end, the measured task's start-up (dequeue,
 * `queued → running`, the engine's first model call), every store append and every publish.
 * bare: the clock starts when POST /publish is sent.
 *
 * Runs are interleaved in pairs (the order alternates); each pair gives a ratio, and the figures are
 * the median and the min–max over the pairs. Server CPU per delivery: the server's CPU time (all
 * threads, schedstat) from just before the trigger to the last watcher's result, ÷ deliveries.
 */
import { framesOfTask } from "../lib/frames.ts";
import { cancelTask, createTask, holdSlot, median, round, startServer, waitForEnd, warmUp, type Context } from "../lib/context.ts";
import { startBare, type ServerHandle } from "../lib/processes.ts";
import { toRun, watchAll, type FanOutRun } from "./fan-out.ts";

/** 66 steps: 3 × 66 + 2 = 200 durable events. */
export const BURST_STEPS = 66;

export interface BurstRun {
  system: "agentkit" | "bare";
  /** Trigger sent → result at the last watcher. */
  total_ms: number;
  /** Trigger sent → first frame at any watcher (agentkit: the task's start-up is in here). */
  first_frame_ms: number;
  deliveries: number;
  deliveries_per_s: number;
  server_cpu_us_per_delivery: number;
  all_frames_delivered: boolean;
}

export interface BurstPair {
  agentkit: BurstRun;
  bare: BurstRun;
  /** bare total ÷ agentkit total = agentkit deliveries/s ÷ bare deliveries/s. */
  throughput_ratio: number;
  /** agentkit ÷ bare server CPU per delivery (1 = same cost; lower is better). */
  cpu_ratio: number;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface BurstRow {
  watchers: number;
  events: number;
  pairs: number;
  /** Warm-up bursts each server served before the pairs (at min(watchers, 100) watchers). */
  warmup_bursts: number;
  agentkit_total_ms: Spread;
  bare_total_ms: Spread;
  agentkit_first_frame_ms: Spread;
  bare_first_frame_ms: Spread;
  agentkit_cpu_us_per_delivery: Spread;
  bare_cpu_us_per_delivery: Spread;
  throughput_ratio: Spread;
  cpu_ratio: Spread;
  /**
   * agentkit's server CPU per burst minus bare's, per pair (ms): what agentkit spends that the bare
   * server does not. A part that does not grow with the watchers is the task's own work (its start,
   * the engine, the store); a part that does is a cost per delivery (see `burstDecomposition`).
   */
  extra_cpu_ms_per_burst: Spread;
  all_frames_delivered: boolean;
  runs: BurstPair[];
}

/**
 * What agentkit's extra CPU per burst (over bare's) says of its two parts — what a 200-event task
 * costs whatever its watchers (its start, the engine, the store) and what a delivery costs beyond
 * bare's — as bounds, which need no fit: at the most watchers (5,000 in a full run) the whole extra,
 * were it all per delivery, bounds the per-delivery excess from above; at the fewest (100) the extra
 * less that excess bounds the task's own part from below. A split fitted to the levels was tried and
 * dropped: the levels' differences swing by tens of ms between pairs on a shared 2-vCPU VM (at 1,000
 * watchers −8.6 to 46.5 ms around a 4.4 ms median), so two levels fit a line the third contradicts,
 * and a least-squares fit over all three put the task's part above the whole extra measured at 100.
 * Medians over each level's pairs; the levels ran a minute apart.
 */
export interface BurstDecomposition {
  fewest_watchers: number;
  most_watchers: number;
  /** The extra CPU per burst at the fewest watchers (ms), and per event (µs). */
  extra_ms_at_fewest: number;
  extra_us_per_event_at_fewest: number;
  /** At most this much extra CPU per delivery (µs): the extra at the most watchers ÷ its deliveries. */
  max_extra_us_per_delivery: number;
  /** Bare's CPU per delivery at the most watchers (µs), and agentkit ÷ bare per delivery at most. */
  bare_us_per_delivery: number;
  max_per_delivery_ratio: number;
  /** At least this much of the extra at the fewest watchers is the task's own (ms per burst). */
  min_task_ms_per_burst: number;
}

export function burstDecomposition(rows: BurstRow[]): BurstDecomposition | undefined {
  const levels = [...rows].filter((row) => row.extra_cpu_ms_per_burst).sort((a, b) => a.watchers - b.watchers);
  const fewest = levels[0];
  const most = levels.at(-1);
  if (!fewest || !most || most === fewest) return undefined;
  const deliveries = (row: BurstRow) => row.watchers * row.events;
  const maxExtraUs = Math.max(0, (most.extra_cpu_ms_per_burst.median * 1000) / deliveries(most));
  const bare = most.bare_cpu_us_per_delivery.median;
  return {
    fewest_watchers: fewest.watchers,
    most_watchers: most.watchers,
    extra_ms_at_fewest: fewest.extra_cpu_ms_per_burst.median,
    extra_us_per_event_at_fewest: round((fewest.extra_cpu_ms_per_burst.median * 1000) / fewest.events, 1),
    max_extra_us_per_delivery: round(maxExtraUs, 4),
    bare_us_per_delivery: bare,
    max_per_delivery_ratio: round((bare + maxExtraUs) / bare, 3),
    min_task_ms_per_burst: round(fewest.extra_cpu_ms_per_burst.median - (maxExtraUs * deliveries(fewest)) / 1000, 2),
  };
}

export function spread(values: number[], digits = 3): Spread {
  return { median: round(median(values), digits), min: round(Math.min(...values), digits), max: round(Math.max(...values), digits) };
}

function toBurst(run: FanOutRun, triggeredToFirst: number): BurstRun {
  return {
    system: run.system,
    total_ms: run.trigger_to_last_ms,
    first_frame_ms: round(triggeredToFirst, 2),
    deliveries: run.frames,
    deliveries_per_s: Math.round(run.frames / (run.trigger_to_last_ms / 1000)),
    server_cpu_us_per_delivery: run.server_cpu_us_per_delivery,
    all_frames_delivered: run.frames_per_watcher_ok,
  };
}

async function agentkitBurst(context: Context, server: ServerHandle, watchers: number): Promise<BurstRun> {
  const gate = await holdSlot(server);
  const task = await createTask(server, "bench", { steps: BURST_STEPS, pad: context.options.pad });
  const result = await watchAll(context, `${server.ws}/ws/tasks/${task.id}?deltas=0`, watchers, 1, () => cancelTask(server, gate.id), server.pid);
  const run = toRun("agentkit", watchers, BURST_STEPS, result, server);
  const stored = await waitForEnd(server, task.id, 30_000);
  if (stored.status !== "completed" || stored.last_seq !== framesOfTask(BURST_STEPS)) run.frames_per_watcher_ok = false;
  return toBurst(run, result.stats.first_arrival - result.triggeredAt);
}

async function bareBurst(context: Context, server: ServerHandle, watchers: number): Promise<BurstRun> {
  const result = await watchAll(
    context,
    `${server.ws}/ws`,
    watchers,
    1,
    async () => {
      const response = await fetch(`${server.http}/publish?steps=${BURST_STEPS}&pad=${context.options.pad}`, { method: "POST" });
      await response.json();
    },
    server.pid,
  );
  const run = toRun("bare", watchers, BURST_STEPS, result, server);
  return toBurst(run, result.stats.first_arrival - result.triggeredAt);
}

export async function burst(context: Context): Promise<BurstRow[]> {
  const levels = context.options.quick ? [100] : [100, 1000, 5000];
  const pairs = context.options.pairs;
  const rows: BurstRow[] = [];
  for (const watchers of levels) {
    context.log(`short burst: ${watchers} watchers × ${framesOfTask(BURST_STEPS)} events, ${context.options.burstWarmup} warm-up bursts, ${pairs} interleaved pairs`);
    const agentkit = await startServer(context, { AGENTKIT_MAX_CONCURRENT_TASKS: "1" });
    const bare = await startBare(context.benchDir);
    const runs: BurstPair[] = [];
    try {
      await warmUp(agentkit, context.options.quick ? 500 : 2000);
      await bareBurst(context, bare, 10);
      await agentkitBurst(context, agentkit, 10);
      // Both servers serve the same warm-up bursts (see Options.burstWarmup), interleaved too.
      const warmWatchers = Math.min(watchers, 100);
      for (let index = 0; index < context.options.burstWarmup; index++) {
        await bareBurst(context, bare, warmWatchers);
        await agentkitBurst(context, agentkit, warmWatchers);
      }
      for (let pair = 0; pair < pairs; pair++) {
        const order = pair % 2 === 0 ? (["bare", "agentkit"] as const) : (["agentkit", "bare"] as const);
        const got: Partial<Record<"agentkit" | "bare", BurstRun>> = {};
        for (const system of order) {
          got[system] = system === "bare" ? await bareBurst(context, bare, watchers) : await agentkitBurst(context, agentkit, watchers);
        }
        const a = got.agentkit!;
        const b = got.bare!;
        const entry: BurstPair = {
          agentkit: a,
          bare: b,
          throughput_ratio: round(b.total_ms / a.total_ms, 3),
          cpu_ratio: round(a.server_cpu_us_per_delivery / b.server_cpu_us_per_delivery, 3),
        };
        runs.push(entry);
        context.log(
          `  pair ${pair + 1}: agentkit ${a.total_ms} ms (first frame ${a.first_frame_ms} ms, ${a.server_cpu_us_per_delivery} µs/delivery)  ` +
            `bare ${b.total_ms} ms (first ${b.first_frame_ms} ms, ${b.server_cpu_us_per_delivery} µs/delivery)  ` +
            `ratio ${entry.throughput_ratio}×, CPU ${entry.cpu_ratio}×${a.all_frames_delivered && b.all_frames_delivered ? "" : "  (INCOMPLETE)"}`,
        );
      }
    } finally {
      await agentkit.stop();
      await bare.stop();
    }
    const extra = spread(runs.map((run) => ((run.agentkit.server_cpu_us_per_delivery - run.bare.server_cpu_us_per_delivery) * watchers * framesOfTask(BURST_STEPS)) / 1000));
    context.log(`  agentkit − bare server CPU per burst: ${extra.median} ms (${extra.min}–${extra.max})`);
    rows.push({
      watchers,
      events: framesOfTask(BURST_STEPS),
      pairs,
      warmup_bursts: context.options.burstWarmup,
      agentkit_total_ms: spread(runs.map((run) => run.agentkit.total_ms), 2),
      bare_total_ms: spread(runs.map((run) => run.bare.total_ms), 2),
      agentkit_first_frame_ms: spread(runs.map((run) => run.agentkit.first_frame_ms), 2),
      bare_first_frame_ms: spread(runs.map((run) => run.bare.first_frame_ms), 2),
      agentkit_cpu_us_per_delivery: spread(runs.map((run) => run.agentkit.server_cpu_us_per_delivery)),
      bare_cpu_us_per_delivery: spread(runs.map((run) => run.bare.server_cpu_us_per_delivery)),
      throughput_ratio: spread(runs.map((run) => run.throughput_ratio)),
      cpu_ratio: spread(runs.map((run) => run.cpu_ratio)),
      extra_cpu_ms_per_burst: extra,
      all_frames_delivered: runs.every((run) => run.agentkit.all_frames_delivered && run.bare.all_frames_delivered),
      runs,
    });
  }
  return rows;
}
