/**
 * Cancel: a task sleeping in its model call (demo/bench, delay_ms 10 min) with W watchers; one
 * watcher sends {"type":"cancel"}; time from that send to `result{cancelled}` at every watcher.
 * Repeated over `trials` tasks (one client process: one clock for send and arrival).
 */
import { LatencyHistogram, type LatencySummary } from "../lib/histogram.ts";
import { median, round, SLEEPER, startServer, type Context } from "../lib/context.ts";
import { ClientProcess } from "../lib/processes.ts";

export interface CancelResult {
  trials: number;
  watchers: number;
  /** Over every watcher of every trial. */
  latency: LatencySummary;
  /** Per trial, the time until the last watcher had its result: median and max. */
  last_watcher_p50_ms: number;
  last_watcher_max_ms: number;
  all_cancelled: boolean;
}

export async function cancel(context: Context): Promise<CancelResult> {
  const trials = context.options.quick ? 5 : 20;
  const watchers = 100;
  context.log(`cancel: ${trials} tasks in a slow model call, ${watchers} watchers each`);
  const server = await startServer(context);
  try {
    const client = new ClientProcess(context.benchDir, {
      mode: "cancel",
      http: server.http,
      ws: server.ws,
      trials,
      watchers,
      agent: "bench",
      input: JSON.stringify(SLEEPER),
      timeoutMs: 60_000,
    });
    try {
      await client.next("ready", 30_000);
      client.send({ type: "go" });
      const done = await client.next("cancel-done", 120_000);
      const latency = LatencyHistogram.from(done.latency).summary();
      const result: CancelResult = {
        trials: done.trial_max_ms.length,
        watchers,
        latency,
        last_watcher_p50_ms: round(median(done.trial_max_ms), 3),
        last_watcher_max_ms: round(Math.max(...done.trial_max_ms), 3),
        all_cancelled: done.not_cancelled === 0 && done.closed_early === 0 && !done.timed_out && done.trial_max_ms.length === trials,
      };
      context.log(
        `  cancel → result at every watcher: p50 ${latency.p50_ms} ms, max ${latency.max_ms} ms ` +
          `(last watcher per trial: median ${result.last_watcher_p50_ms} ms)`,
      );
      return result;
    } finally {
      await client.close();
    }
  } finally {
    await server.stop();
  }
}
