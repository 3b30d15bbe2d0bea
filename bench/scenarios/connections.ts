/**
 * Connections: 10,000 and 50,000 idle watchers of one running task (sleeping in its model call),
 * server VmRSS before and after → memory per connection. Then the task is cancelled and every
 * watcher must get its `result`, which proves each one was a live, subscribed watcher.
 *
 * Limits met on the way, handled honestly:
 * - every process's open-file limit (RLIMIT_NOFILE): one fd per connection in the server, so a
 *   count the server cannot hold is clamped to what it can, and the reason is recorded;
 *   clients are spread over as many processes as their own limit needs;
 * - one source address has `ip_local_port_range` ephemeral ports towards one server port (28,232
 *   by default): above that the range is widened with the sysctl when this user may write it
 *   (and restored afterwards), else the count is clamped and the reason recorded.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { cancelTask, createTask, getTask, round, SLEEPER, startServer, type Context } from "../lib/context.ts";
import { ClientProcess, memoryOf, openFilesOf, sleep, type ServerHandle } from "../lib/processes.ts";
import { mergeStats } from "./fan-out.ts";

export interface ConnectionLevel {
  requested: number;
  measured: number;
  limited_by: string | null;
  client_processes: number;
  connect_s: number;
  server_rss_kb: number;
  server_open_fds: number;
  rss_per_connection_kb: number;
  /** RSS growth per connection since the previous level (the fixed start-up cost left out). */
  marginal_rss_per_connection_kb: number | null;
  /**
   * Kernel memory outside any process's RSS: the machine-wide growth of slab memory (sockets,
   * epoll items, files) per connection — both ends, since the clients run here too. Indicative.
   */
  kernel_slab_per_connection_kb: number;
}

export interface ConnectionsResult {
  baseline_rss_kb: number;
  levels: ConnectionLevel[];
  /** Cancelling the watched task afterwards: did every watcher get its result, and how fast. */
  final_cancel: { watchers: number; all_received: boolean; last_watcher_ms: number } | null;
  port_range: { original: string; used: string };
}

const PORT_RANGE = "/proc/sys/net/ipv4/ip_local_port_range";
const FD_MARGIN = 300;

/** Machine-wide slab memory (KiB), from /proc/meminfo. */
function slabKb(): number {
  return Number(/^Slab:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"))?.[1] ?? Number.NaN);
}

function readPortRange(): [number, number] {
  const [low, high] = readFileSync(PORT_RANGE, "utf8").trim().split(/\s+/).map(Number);
  return [low!, high!];
}

/** Widens the ephemeral port range if `needed` ports do not fit; returns how to restore it. */
function ensurePorts(needed: number, context: Context, restore: (() => void)[]): number {
  const [low, high] = readPortRange();
  const available = high - low + 1 - 1000;
  if (needed <= available) return available;
  try {
    const original = `${low} ${high}`;
    writeFileSync(PORT_RANGE, "1024 65535");
    restore.push(() => writeFileSync(PORT_RANGE, original));
    context.log(`  widened ${PORT_RANGE} from "${original}" to "1024 65535" (restored afterwards)`);
    return 65535 - 1024 + 1 - 1000;
  } catch {
    return available;
  }
}

export async function connections(context: Context, restore: (() => void)[]): Promise<ConnectionsResult> {
  const levels = context.options.quick ? [2000, 5000] : [10_000, 50_000];
  const perProcess = Math.max(100, context.nofile - FD_MARGIN);
  const originalRange = readPortRange().join(" ");
  const serverLimit = context.nofile - FD_MARGIN;
  // Only as many ports as the server could take: no system setting is touched for nothing.
  const ports = ensurePorts(Math.min(Math.max(...levels), serverLimit), context, restore);
  context.log(`connections: ${levels.join(", ")} idle watchers (open-file limit ${context.nofile}, ${ports} ephemeral ports usable)`);

  const server: ServerHandle = await startServer(context);
  const clients: ClientProcess[] = [];
  try {
    const idle = await createTask(server, "bench", SLEEPER);
    while ((await getTask(server, idle.id)).status !== "running") await sleep(5);
    await sleep(1000);
    const baseline = memoryOf(server.pid).rssKb;
    const baselineSlab = slabKb();
    const url = `${server.ws}/ws/tasks/${idle.id}?deltas=0`;
    const results: ConnectionLevel[] = [];
    let open = 0;
    for (const requested of levels) {
      let target = requested;
      const reasons: string[] = [];
      if (target > serverLimit) {
        target = serverLimit;
        reasons.push(
          `the server's open-file limit (RLIMIT_NOFILE ${context.nofile}; raising the hard limit needs CAP_SYS_RESOURCE) holds at most ~${serverLimit} sockets`,
        );
      }
      if (target > ports) {
        target = ports;
        reasons.push(`ephemeral ports of one source address (${ports} usable; the sysctl could not be widened)`);
      }
      if (target <= open) {
        results.push({
          requested,
          measured: open,
          limited_by: reasons.join("; "),
          client_processes: clients.length,
          connect_s: 0,
          server_rss_kb: memoryOf(server.pid).rssKb,
          server_open_fds: openFilesOf(server.pid),
          rss_per_connection_kb: round((memoryOf(server.pid).rssKb - baseline) / open, 2),
          marginal_rss_per_connection_kb: null,
          kernel_slab_per_connection_kb: round((slabKb() - baselineSlab) / open, 2),
        });
        continue;
      }
      const started = performance.now();
      const added: ClientProcess[] = [];
      for (let remaining = target - open; remaining > 0; remaining -= perProcess) {
        const count = Math.min(perProcess, remaining);
        added.push(new ClientProcess(context.benchDir, { mode: "watch", url, count, concurrency: 256, expectResult: true, timeoutMs: 60_000 }));
      }
      clients.push(...added);
      let connected = 0;
      let failed = 0;
      const errors: string[] = [];
      for (const client of added) {
        const ready = await client.next("ready", 300_000);
        connected += ready.connected;
        failed += ready.failed;
        errors.push(...ready.errors);
      }
      open += connected;
      if (failed > 0) reasons.push(`${failed} connections failed: ${errors.slice(0, 3).join("; ")}`);
      const connectSeconds = (performance.now() - started) / 1000;
      await sleep(2000);
      const rss = memoryOf(server.pid).rssKb;
      const previous = results.at(-1);
      const level: ConnectionLevel = {
        requested,
        measured: open,
        limited_by: reasons.length ? reasons.join("; ") : null,
        client_processes: clients.length,
        connect_s: round(connectSeconds, 1),
        server_rss_kb: rss,
        server_open_fds: openFilesOf(server.pid),
        rss_per_connection_kb: round((rss - baseline) / open, 2),
        marginal_rss_per_connection_kb: previous ? round((rss - previous.server_rss_kb) / (open - previous.measured), 2) : null,
        kernel_slab_per_connection_kb: round((slabKb() - baselineSlab) / open, 2),
      };
      results.push(level);
      context.log(
        `  ${open} watchers (asked ${requested}) in ${level.connect_s} s: server RSS ${baseline} → ${rss} KiB = ` +
          `${level.rss_per_connection_kb} KiB per connection${level.limited_by ? ` — limited by ${level.limited_by}` : ""}`,
      );
    }

    // Every one of them is live: cancel the task, and each watcher must get result{cancelled}.
    let finalCancel: ConnectionsResult["final_cancel"] = null;
    if (open > 0) {
      for (const client of clients) client.send({ type: "go" });
      const sent = performance.timeOrigin + performance.now();
      await cancelTask(server, idle.id);
      const reports = await Promise.all(clients.map((client) => client.next("done", 120_000)));
      const stats = mergeStats(reports);
      finalCancel = {
        watchers: stats.watchers_done,
        all_received: stats.watchers_done === open && stats.closed_early === 0,
        last_watcher_ms: round(stats.last_arrival - sent, 1),
      };
      context.log(`  cancel → result at all ${stats.watchers_done} watchers within ${finalCancel.last_watcher_ms} ms`);
    }
    return {
      baseline_rss_kb: baseline,
      levels: results,
      final_cancel: finalCancel,
      port_range: { original: originalRange, used: readPortRange().join(" ") },
    };
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await server.stop();
    while (restore.length) restore.pop()!();
  }
}
