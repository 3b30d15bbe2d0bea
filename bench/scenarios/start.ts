/**
 * Start: the compiled binary from exec to the first successful GET /health (polled back to back),
 * each time with a fresh data dir; then its resident memory after a second of idling.
 */
import { statSync } from "node:fs";
import { median, round, startServer, type Context } from "../lib/context.ts";
import { memoryOf, sleep } from "../lib/processes.ts";

export interface StartResult {
  trials: number;
  start_ms: number[];
  start_p50_ms: number;
  start_max_ms: number;
  idle_rss_kb: number;
  binary_bytes: number;
}

export async function start(context: Context): Promise<StartResult> {
  const trials = context.options.quick ? 3 : 10;
  context.log(`start: ${trials} starts of ${context.binary}`);
  const times: number[] = [];
  const rss: number[] = [];
  for (let trial = 0; trial < trials; trial++) {
    const server = await startServer(context);
    try {
      times.push(server.startMs);
      await sleep(1000);
      rss.push(memoryOf(server.pid).rssKb);
    } finally {
      await server.stop();
    }
  }
  const result: StartResult = {
    trials,
    start_ms: times.map((time) => round(time, 1)),
    start_p50_ms: round(median(times), 1),
    start_max_ms: round(Math.max(...times), 1),
    idle_rss_kb: Math.round(median(rss)),
    binary_bytes: statSync(context.binary).size,
  };
  context.log(`  exec → GET /health OK: p50 ${result.start_p50_ms} ms, max ${result.start_max_ms} ms; idle RSS ${result.idle_rss_kb} KiB`);
  return result;
}
