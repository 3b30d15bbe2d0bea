/**
 * Steady latency: 1,000 (and 200) watchers of one task that yields ~1,000 events/s for ~10 s (the bench
 * model sleeps `delay_ms` before each step; each step is 3 frames). Latency = yield (the model's
 * `t`) → arrival, on tool_call frames, at every watcher. The bare server publishes the same frames
 * on the same timer, as the floor this machine's kernel, Bun and clients allow.
 */
import { framesOfTask } from "../lib/frames.ts";
import { LatencyHistogram, type LatencySummary } from "../lib/histogram.ts";
import { cancelTask, createTask, holdSlot, round, startServer, waitForEnd, warmUp, type Context } from "../lib/context.ts";
import { startBare } from "../lib/processes.ts";
import { watchAll } from "./fan-out.ts";

export interface SteadyRun {
  system: "agentkit" | "bare";
  watchers: number;
  steps: number;
  delay_ms: number;
  duration_s: number;
  events_per_s: number;
  deliveries_per_s: number;
  latency: LatencySummary;
  all_frames_delivered: boolean;
  server_cpu_percent: number;
  /** All client processes together (100% = one core). */
  client_cpu_percent: number;
  client_processes: number;
}

export async function steady(context: Context): Promise<SteadyRun[]> {
  // The level (1,000 watchers), and one this 2-core machine can carry without saturating
  // (clients and server share the cores), to see what agentkit itself adds over the bare floor.
  const levels = context.options.quick ? [200] : [1000, 200];
  const runs: SteadyRun[] = [];
  for (const watchers of levels) runs.push(...(await steadyLevel(context, watchers)));
  return runs;
}

async function steadyLevel(context: Context, watchers: number): Promise<SteadyRun[]> {
  // A 2 ms sleep plus the step's own work and timer slack comes to ~3 ms per step of 3 frames:
  // ~1,000 events/s. The achieved rate is measured and reported, not assumed.
  const delayMs = 2;
  const seconds = context.options.quick ? 3 : 10;
  const steps = Math.round((seconds * 1000) / 3);
  const clients = context.options.steadyClients;
  const expected = framesOfTask(steps);
  const runs: SteadyRun[] = [];
  const summarise = (system: "agentkit" | "bare", result: Awaited<ReturnType<typeof watchAll>>): SteadyRun => {
    const { stats } = result;
    const duration = (stats.last_arrival - stats.first_arrival) / 1000;
    const run: SteadyRun = {
      system,
      watchers,
      steps,
      delay_ms: delayMs,
      duration_s: round(duration, 2),
      events_per_s: Math.round(expected / duration),
      deliveries_per_s: Math.round(stats.frames / duration),
      latency: LatencyHistogram.from(stats.latency).summary(),
      all_frames_delivered: stats.per_watcher_min === expected && stats.per_watcher_max === expected && !stats.timed_out,
      server_cpu_percent: round((result.cpu / duration) * 100, 1),
      client_cpu_percent: round((result.clientCpu / duration) * 100, 1),
      client_processes: clients,
    };
    context.log(
      `  ${system.padEnd(8)} ${run.events_per_s} events/s for ${run.duration_s} s: p50 ${run.latency.p50_ms} ms, ` +
        `p99 ${run.latency.p99_ms} ms, max ${run.latency.max_ms} ms, CPU server ${run.server_cpu_percent}% clients ${run.client_cpu_percent}%`,
    );
    return run;
  };

  context.log(`steady: ${watchers} watchers, ${steps} steps of 3 frames, ${delayMs} ms model sleep each, ~${seconds} s`);
  const server = await startServer(context, { AGENTKIT_MAX_CONCURRENT_TASKS: "1" });
  try {
    await warmUp(server);
    const gate = await holdSlot(server);
    const task = await createTask(server, "bench", { steps, pad: context.options.pad, delay_ms: delayMs });
    const result = await watchAll(
      context,
      `${server.ws}/ws/tasks/${task.id}?deltas=0`,
      watchers,
      clients,
      () => cancelTask(server, gate.id),
      server.pid,
    );
    const run = summarise("agentkit", result);
    const stored = await waitForEnd(server, task.id, 30_000);
    if (stored.last_seq !== expected) run.all_frames_delivered = false;
    runs.push(run);
  } finally {
    await server.stop();
  }

  const bare = await startBare(context.benchDir);
  try {
    const result = await watchAll(
      context,
      `${bare.ws}/ws`,
      watchers,
      clients,
      async () => {
        const response = await fetch(`${bare.http}/publish?steps=${steps}&pad=${context.options.pad}&delay_ms=${delayMs}`, {
          method: "POST",
        });
        await response.json();
      },
      bare.pid,
    );
    runs.push(summarise("bare", result));
  } finally {
    await bare.stop();
  }
  return runs;
}
