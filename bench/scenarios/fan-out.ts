/**
 * Fan-out: N watchers of one task that yields M steps as fast as the instant model allows, against
 * the bare Bun.serve pub/sub server publishing the same frames (shape, size, count) to the same
 * number of clients, with the same client code. Runs alternate bare/agentkit; each figure is the
 * median of `reps` runs.
 *
 * deliveries/s = frames received by all watchers ÷ (last arrival − first arrival), i.e. from the
 * first frame any watcher got to the `result` frame at the last watcher. On a small machine the
 * clients can be the ceiling of both servers, so the server's CPU time per delivery (all its
 * threads, ns resolution) is measured too: bare ÷ agentkit is the server-side ratio.
 */
import { framesOfTask } from "../lib/frames.ts";
import { LatencyHistogram, type LatencySummary } from "../lib/histogram.ts";
import {
  cancelTask,
  createTask,
  holdSlot,
  median,
  round,
  startServer,
  waitForEnd,
  warmUp,
  type Context,
} from "../lib/context.ts";
import { ClientProcess, cpuSecondsOf, memoryOf, startBare, type ServerHandle } from "../lib/processes.ts";
import type { FrameStats } from "../lib/watchers.ts";

export interface FanOutRun {
  system: "agentkit" | "bare";
  watchers: number;
  steps: number;
  frames: number;
  frames_per_watcher_ok: boolean;
  avg_frame_bytes: number;
  window_ms: number;
  trigger_to_last_ms: number;
  deliveries_per_s: number;
  latency: LatencySummary;
  server_cpu_s: number;
  server_cpu_us_per_delivery: number;
  server_rss_after_kb: number;
  client_cpu_ms: number;
  /** Client processes' CPU over the window (100% = one core): near 100% means client-bound. */
  client_cpu_percent: number;
  closed_early: number;
  persisted_last_seq?: number;
}

export interface FanOutRow {
  watchers: number;
  steps: number;
  frames_per_watcher: number;
  agentkit: FanOutSummary;
  bare: FanOutSummary;
  /** agentkit ÷ bare deliveries/s (the headline). */
  throughput_ratio: number;
  /** bare ÷ agentkit server CPU per delivery (1 = same cost). */
  cpu_efficiency_ratio: number;
  runs: FanOutRun[];
}

export interface FanOutSummary {
  deliveries_per_s: number;
  p50_ms: number;
  p99_ms: number;
  window_ms: number;
  server_cpu_us_per_delivery: number;
  avg_frame_bytes: number;
  client_cpu_percent: number;
  all_frames_delivered: boolean;
}

/** Steps per task for N watchers: about 0.6–4.5 M deliveries per run, short enough for 2 cores. */
export function stepsFor(watchers: number, quick: boolean): number {
  const steps = watchers <= 100 ? 2000 : watchers <= 1000 ? 1000 : 300;
  return quick ? Math.max(50, Math.round(steps / 4)) : steps;
}

/**
 * Opens `watchers` watchers of `url` spread over `clientCount` client processes, waits until all
 * are connected, calls `trigger`, and waits for the `result` frame at every watcher.
 */
export async function watchAll(
  context: Context,
  url: string,
  watchers: number,
  clientCount: number,
  trigger: () => Promise<unknown>,
  serverPid: number,
): Promise<{ stats: FrameStats; triggeredAt: number; cpu: number; clientCpu: number }> {
  const clients = Math.max(1, Math.min(clientCount, watchers));
  const share = Math.ceil(watchers / clients);
  const processes: ClientProcess[] = [];
  try {
    for (let index = 0; index < clients; index++) {
      const count = Math.min(share, watchers - index * share);
      processes.push(
        new ClientProcess(context.benchDir, { mode: "watch", url, count, concurrency: 256, expectResult: true, timeoutMs: 120_000 }),
      );
    }
    for (const client of processes) {
      const ready = await client.next("ready", 120_000);
      if (ready.failed > 0) throw new Error(`${ready.failed} watchers failed to connect: ${ready.errors.join("; ")}`);
    }
    const cpuBefore = cpuSecondsOf(serverPid);
    const clientCpuBefore = processes.reduce((sum, client) => sum + client.cpuSeconds(), 0);
    for (const client of processes) client.send({ type: "go" });
    const triggeredAt = performance.timeOrigin + performance.now();
    await trigger();
    const reports = await Promise.all(processes.map((client) => client.next("done", 180_000)));
    const cpu = cpuSecondsOf(serverPid) - cpuBefore;
    const clientCpu = processes.reduce((sum, client) => sum + client.cpuSeconds(), 0) - clientCpuBefore;
    return { stats: mergeStats(reports), triggeredAt, cpu, clientCpu };
  } finally {
    await Promise.all(processes.map((client) => client.close()));
  }
}

export function mergeStats(reports: FrameStats[]): FrameStats {
  const latency = LatencyHistogram.from(...reports.map((report) => report.latency));
  const closeCodes: Record<string, number> = {};
  for (const report of reports) {
    for (const [code, count] of Object.entries(report.close_codes)) closeCodes[code] = (closeCodes[code] ?? 0) + count;
  }
  const firsts = reports.map((report) => report.first_arrival).filter((value) => value > 0);
  return {
    frames: reports.reduce((sum, report) => sum + report.frames, 0),
    bytes: reports.reduce((sum, report) => sum + report.bytes, 0),
    first_arrival: firsts.length ? Math.min(...firsts) : 0,
    last_arrival: Math.max(...reports.map((report) => report.last_arrival)),
    latency: latency.serialize(),
    per_watcher_min: Math.min(...reports.map((report) => report.per_watcher_min)),
    per_watcher_max: Math.max(...reports.map((report) => report.per_watcher_max)),
    watchers_done: reports.reduce((sum, report) => sum + report.watchers_done, 0),
    closed_early: reports.reduce((sum, report) => sum + report.closed_early, 0),
    close_codes: closeCodes,
    error_frames: reports.reduce((sum, report) => sum + report.error_frames, 0),
    cpu_ms: reports.reduce((sum, report) => sum + report.cpu_ms, 0),
    timed_out: reports.some((report) => report.timed_out),
  };
}

export function toRun(
  system: "agentkit" | "bare",
  watchers: number,
  steps: number,
  result: Awaited<ReturnType<typeof watchAll>>,
  server: ServerHandle,
): FanOutRun {
  const { stats } = result;
  const expected = framesOfTask(steps);
  const window = stats.last_arrival - stats.first_arrival;
  return {
    system,
    watchers,
    steps,
    frames: stats.frames,
    frames_per_watcher_ok: stats.per_watcher_min === expected && stats.per_watcher_max === expected && !stats.timed_out,
    avg_frame_bytes: round(stats.bytes / Math.max(1, stats.frames), 1),
    window_ms: round(window, 1),
    trigger_to_last_ms: round(stats.last_arrival - result.triggeredAt, 1),
    deliveries_per_s: Math.round(stats.frames / (window / 1000)),
    latency: LatencyHistogram.from(stats.latency).summary(),
    server_cpu_s: round(result.cpu, 2),
    server_cpu_us_per_delivery: round((result.cpu * 1e6) / Math.max(1, stats.frames), 4),
    server_rss_after_kb: memoryOf(server.pid).rssKb,
    client_cpu_ms: Math.round(result.clientCpu * 1000),
    client_cpu_percent: round((result.clientCpu / (window / 1000)) * 100, 1),
    closed_early: stats.closed_early,
  };
}

async function agentkitRun(context: Context, server: ServerHandle, watchers: number, steps: number): Promise<FanOutRun> {
  const gate = await holdSlot(server);
  const task = await createTask(server, "bench", { steps, pad: context.options.pad });
  const result = await watchAll(
    context,
    `${server.ws}/ws/tasks/${task.id}?deltas=0`,
    watchers,
    context.options.fanoutClients,
    () => cancelTask(server, gate.id),
    server.pid,
  );
  const run = toRun("agentkit", watchers, steps, result, server);
  const stored = await waitForEnd(server, task.id, 30_000);
  run.persisted_last_seq = stored.last_seq;
  if (stored.status !== "completed" || stored.last_seq !== framesOfTask(steps)) run.frames_per_watcher_ok = false;
  return run;
}

async function bareRun(context: Context, server: ServerHandle, watchers: number, steps: number): Promise<FanOutRun> {
  const result = await watchAll(
    context,
    `${server.ws}/ws`,
    watchers,
    context.options.fanoutClients,
    async () => {
      const response = await fetch(`${server.http}/publish?steps=${steps}&pad=${context.options.pad}`, { method: "POST" });
      await response.json();
    },
    server.pid,
  );
  return toRun("bare", watchers, steps, result, server);
}

function summarise(runs: FanOutRun[]): FanOutSummary {
  return {
    deliveries_per_s: Math.round(median(runs.map((run) => run.deliveries_per_s))),
    p50_ms: round(median(runs.map((run) => run.latency.p50_ms)), 2),
    p99_ms: round(median(runs.map((run) => run.latency.p99_ms)), 2),
    window_ms: round(median(runs.map((run) => run.window_ms)), 1),
    server_cpu_us_per_delivery: round(median(runs.map((run) => run.server_cpu_us_per_delivery)), 3),
    avg_frame_bytes: round(median(runs.map((run) => run.avg_frame_bytes)), 1),
    client_cpu_percent: round(median(runs.map((run) => run.client_cpu_percent)), 1),
    all_frames_delivered: runs.every((run) => run.frames_per_watcher_ok),
  };
}

export async function fanOut(context: Context): Promise<FanOutRow[]> {
  const levels = context.options.quick ? [100, 1000] : [100, 1000, 5000];
  const rows: FanOutRow[] = [];
  for (const watchers of levels) {
    const steps = stepsFor(watchers, context.options.quick);
    context.log(`fan-out: ${watchers} watchers × ${framesOfTask(steps)} frames, ${context.options.reps} runs each`);
    const agentkit = await startServer(context, { AGENTKIT_MAX_CONCURRENT_TASKS: "1" });
    const bare = await startBare(context.benchDir);
    const runs: FanOutRun[] = [];
    try {
      await warmUp(agentkit);
      // Warm the bare server's publish path the same way (a few watchers, one burst).
      await bareRun(context, bare, 10, 2000);
      await agentkitRun(context, agentkit, 10, 300);
      for (let rep = 0; rep < context.options.reps; rep++) {
        const order = rep % 2 === 0 ? (["bare", "agentkit"] as const) : (["agentkit", "bare"] as const);
        for (const system of order) {
          const run = system === "bare" ? await bareRun(context, bare, watchers, steps) : await agentkitRun(context, agentkit, watchers, steps);
          context.log(
            `  ${system.padEnd(8)} ${run.deliveries_per_s.toLocaleString("en-US").padStart(11)} deliveries/s  ` +
              `p50 ${run.latency.p50_ms} ms  p99 ${run.latency.p99_ms} ms  window ${run.window_ms} ms  ` +
              `server CPU ${run.server_cpu_us_per_delivery} µs/delivery, client CPU ${run.client_cpu_percent}%` +
              `${run.frames_per_watcher_ok ? "" : "  (INCOMPLETE)"}`,
          );
          runs.push(run);
        }
      }
    } finally {
      await agentkit.stop();
      await bare.stop();
    }
    const agentkitSummary = summarise(runs.filter((run) => run.system === "agentkit"));
    const bareSummary = summarise(runs.filter((run) => run.system === "bare"));
    rows.push({
      watchers,
      steps,
      frames_per_watcher: framesOfTask(steps),
      agentkit: agentkitSummary,
      bare: bareSummary,
      throughput_ratio: round(agentkitSummary.deliveries_per_s / bareSummary.deliveries_per_s, 3),
      cpu_efficiency_ratio: round(bareSummary.server_cpu_us_per_delivery / agentkitSummary.server_cpu_us_per_delivery, 3),
      runs,
    });
  }
  return rows;
}

