/**
 * The run's results: the JSON written to bench/results/, the targets of issue 5 judged against the
 * measured figures, and the readable tables (Markdown, so they paste into BENCHMARKS.md as is).
 */
import { burstDecomposition, type BurstRow, type Spread } from "../scenarios/burst.ts";
import type { CancelResult } from "../scenarios/cancel.ts";
import type { ClusterResult } from "../scenarios/cluster.ts";
import type { ConnectionsResult } from "../scenarios/connections.ts";
import type { FanOutRow } from "../scenarios/fan-out.ts";
import type { ManyTasksResult } from "../scenarios/many-tasks.ts";
import type { StartResult } from "../scenarios/start.ts";
import type { SteadyRun } from "../scenarios/steady.ts";
import type { StormResult } from "../scenarios/storm.ts";

export interface Machine {
  nproc: number;
  cpu_model: string;
  memory_gib: number;
  kernel: string;
  bun: string;
  commit: string;
  open_file_limit: number;
  /** Where the servers' data dirs (the SQLite files) live. */
  data_dir: {
    path: string;
    device: string;
    fstype: string;
    mount_options: string;
    rotational: boolean | null;
    model: string | null;
  };
  /** /proc/loadavg (1, 5, 15 min) when the run started and when it ended. */
  loadavg_start: [number, number, number];
  loadavg_end: [number, number, number];
}

export interface Results {
  date: string;
  command: string;
  machine: Machine;
  /** The binary measured (a private copy of it): where it came from and its hash. */
  binary: { path: string; sha1: string; bytes: number };
  options: Record<string, unknown>;
  duration_s: number;
  clock_offset_ms: number | null;
  /** CPU used by processes outside this run during each scenario (a busy machine skews figures). */
  other_load: Record<string, { cpu_s: number; wall_s: number; loadavg_before?: number[]; loadavg_after?: number[] }>;
  start?: StartResult;
  burst?: BurstRow[];
  fan_out?: FanOutRow[];
  storm?: StormResult;
  steady?: SteadyRun[];
  many_tasks?: ManyTasksResult;
  many_tasks_paced?: ManyTasksResult;
  cancel?: CancelResult;
  connections?: ConnectionsResult;
  cluster?: ClusterResult;
  /** Why the cluster scenarios did not run (no PostgreSQL). */
  cluster_skipped?: string;
  errors: Record<string, string>;
  targets: Target[];
}

export interface Target {
  target: string;
  measured: string;
  status: "met" | "not met" | "not verified" | "not run";
}

const fmt = (value: number, digits = 0) =>
  Number.isFinite(value) ? value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }) : "—";
const ms = (value: number) => (Number.isFinite(value) ? (value < 10 ? fmt(value, 2) : value < 100 ? fmt(value, 1) : fmt(value, 0)) : "—");

const range = (value: Spread, digits = 2) =>
  `${fmt(value.median, digits)} (${fmt(value.min, digits)}–${fmt(value.max, digits)})`;

export function judgeTargets(results: Results): Target[] {
  const targets: Target[] = [];
  const bursts = results.burst?.filter((row) => row.watchers <= 1000);
  if (bursts?.length) {
    targets.push({
      target: "short bursts (200 events, from the trigger): ≥ 0.9× bare at 100 and 1,000 watchers",
      measured: bursts.map((row) => `${range(row.throughput_ratio)}× at ${fmt(row.watchers)}`).join("; ") + " (median (min–max) over pairs)",
      status: bursts.every((row) => row.throughput_ratio.median >= 0.9 && row.all_frames_delivered) ? "met" : "not met",
    });
    targets.push({
      target: "short bursts: server CPU per delivery ≤ 1.3× bare",
      measured: bursts.map((row) => `${range(row.cpu_ratio)}× at ${fmt(row.watchers)}`).join("; "),
      status: bursts.every((row) => row.cpu_ratio.median <= 1.3) ? "met" : "not met",
    });
  } else targets.push({ target: "short bursts ≥ 0.9× bare", measured: "—", status: "not run" });
  const fan = results.fan_out;
  if (fan?.length) {
    // Both ratios must hold: end to end (deliveries/s, which the clients may cap) and server-side
    // (CPU per delivery, which they cannot).
    const worst = Math.min(...fan.map((row) => Math.min(row.throughput_ratio, row.cpu_efficiency_ratio)));
    targets.push({
      target: "fan-out ≥ 0.8× the bare Bun pub/sub ceiling",
      measured:
        `deliveries/s ${fan.map((row) => `${row.throughput_ratio.toFixed(2)}×`).join(" / ")}; ` +
        `server CPU per delivery ${fan.map((row) => `${row.cpu_efficiency_ratio.toFixed(2)}×`).join(" / ")} ` +
        `(at ${fan.map((row) => fmt(row.watchers)).join(" / ")} watchers)`,
      status: worst >= 0.8 && fan.every((row) => row.agentkit.all_frames_delivered) ? "met" : "not met",
    });
  } else targets.push({ target: "fan-out ≥ 0.8× the bare Bun pub/sub ceiling", measured: "—", status: "not run" });

  const steady = results.steady?.find((run) => run.system === "agentkit" && run.watchers >= 1000);
  const steadySmaller = results.steady?.find((run) => run.system === "agentkit");
  targets.push(
    steady
      ? {
          target: "steady latency p99 < 5 ms (1,000 watchers, ~1,000 events/s)",
          measured: `p99 ${ms(steady.latency.p99_ms)} ms at ${fmt(steady.watchers)} watchers, ${fmt(steady.events_per_s)} events/s`,
          status: steady.latency.p99_ms < 5 && steady.all_frames_delivered ? "met" : "not met",
        }
      : steadySmaller
        ? {
            target: "steady latency p99 < 5 ms (1,000 watchers, ~1,000 events/s)",
            measured: `only ${fmt(steadySmaller.watchers)} watchers run: p99 ${ms(steadySmaller.latency.p99_ms)} ms at ${fmt(steadySmaller.events_per_s)} events/s`,
            status: "not verified",
          }
        : { target: "steady latency p99 < 5 ms", measured: "—", status: "not run" },
  );

  const many = results.many_tasks;
  targets.push(
    many
      ? {
          target: "≥ 20,000 persisted steps/s (instant model)",
          measured: `${fmt(many.persisted_events_per_s)} step frames/s end to end (${fmt(many.react_steps_per_s)} ReAct steps/s)`,
          status: many.persisted_events_per_s >= 20_000 && many.all_persisted ? "met" : "not met",
        }
      : { target: "≥ 20,000 persisted steps/s", measured: "—", status: "not run" },
  );

  const storm = results.storm;
  targets.push(
    storm
      ? {
          target: `reconnect storm (${fmt(storm.watchers)} watchers, after=<last seq>) measured against bare subscribe`,
          measured:
            `all caught up ${range(storm.agentkit_caught_up_ms, 0)} ms vs bare ${range(storm.bare_caught_up_ms, 0)} ms; ` +
            `server CPU ${range(storm.agentkit_cpu_us_per_watcher, 1)} vs ${range(storm.bare_cpu_us_per_watcher, 1)} µs/watcher; ` +
            `gapless, no duplicates, every result: ${storm.correct ? "yes" : "NO"}`,
          status: storm.correct ? "met" : "not met",
        }
      : { target: "reconnect storm measured against bare subscribe", measured: "—", status: "not run" },
  );

  const connections = results.connections;
  if (connections?.levels.length) {
    const largest = connections.levels.at(-1)!;
    const perConnection = `${fmt(largest.rss_per_connection_kb, 2)} KiB/connection at ${fmt(largest.measured)}`;
    const reached = largest.measured >= 50_000;
    let why = "";
    if (!reached) {
      const marginal = largest.marginal_rss_per_connection_kb;
      const projected =
        marginal === null
          ? ""
          : `; projected at 50,000 from the marginal ${fmt(marginal, 2)} KiB: ` +
            `${fmt((largest.server_rss_kb + (50_000 - largest.measured) * marginal - connections.baseline_rss_kb) / 50_000, 2)} KiB/connection`;
      why = ` (50,000 not ${largest.limited_by ? `reachable here: ${largest.limited_by}` : "attempted"}${projected})`;
    }
    targets.push({
      target: "50,000 idle watchers at ≤ 10 KB each",
      measured: perConnection + why,
      status: !reached ? "not verified" : largest.rss_per_connection_kb <= 10 ? "met" : "not met",
    });
  } else targets.push({ target: "50,000 idle watchers at ≤ 10 KB each", measured: "—", status: "not run" });

  const cancel = results.cancel;
  targets.push(
    cancel
      ? {
          target: "cancel < 10 ms (to result{cancelled} at every watcher)",
          measured: `p50 ${ms(cancel.latency.p50_ms)} ms, max ${ms(cancel.latency.max_ms)} ms over ${cancel.trials}×${cancel.watchers} watchers`,
          status: cancel.latency.max_ms < 10 && cancel.all_cancelled ? "met" : "not met",
        }
      : { target: "cancel < 10 ms", measured: "—", status: "not run" },
  );

  const start = results.start;
  targets.push(
    start
      ? {
          target: "start < 100 ms (exec → first GET /health OK)",
          measured: `p50 ${ms(start.start_p50_ms)} ms, max ${ms(start.start_max_ms)} ms`,
          status: start.start_p50_ms < 100 ? "met" : "not met",
        }
      : { target: "start < 100 ms", measured: "—", status: "not run" },
  );
  targets.push(...clusterTargets(results));
  return targets;
}

function clusterTargets(results: Results): Target[] {
  const cluster = results.cluster;
  const skipped = results.cluster_skipped ? `skipped: ${results.cluster_skipped}` : "—";
  const targets: Target[] = [];
  const notify = cluster?.claim.find((run) => run.poll_ms >= 10_000) ?? cluster?.claim[0];
  targets.push(
    notify
      ? {
          target: "cluster: claim p99 < 50 ms (idle workers, task created → first model call)",
          measured: cluster!.claim.map((run) => `p99 ${range(run.sent_to_first_p99_ms, 1)} ms (p50 ${range(run.sent_to_first_p50_ms, 1)}) with ${run.config}, poll ${fmt(run.poll_ms)} ms`).join("; "),
          status: cluster!.claim.every((run) => run.sent_to_first_p99_ms.median < 50 && run.failures.length === 0) ? "met" : "not met",
        }
      : { target: "cluster: claim p99 < 50 ms", measured: skipped, status: "not run" },
  );
  const cross = cluster?.cross;
  targets.push(
    cross
      ? {
          target: "cluster: cross-node delivery adds < 5 ms at p99",
          measured: `+${range(cross.added_p99_ms, 2)} ms at p99 (p50 +${range(cross.added_p50_ms, 2)} ms), ${fmt(cross.events_per_s)} events/s` + (cross.complete ? "" : " — FRAMES MISSING OR OUT OF ORDER"),
          status: cross.added_p99_ms.median < 5 && cross.complete ? "met" : "not met",
        }
      : { target: "cluster: cross-node delivery adds < 5 ms at p99", measured: skipped, status: "not run" },
  );
  const cancel = cluster?.cancel;
  targets.push(
    cancel
      ? {
          target: "cluster: cancel across nodes < 100 ms",
          measured: `result at the running node p99 ${range(cancel.running_node_p99_ms, 1)} ms, at the cancelling node p99 ${range(cancel.other_node_p99_ms, 1)} ms (max ${ms(cancel.max_ms)} ms)`,
          status: cancel.other_node_p99_ms.median < 100 && cancel.running_node_p99_ms.median < 100 && cancel.all_cancelled ? "met" : "not met",
        }
      : { target: "cluster: cancel across nodes < 100 ms", measured: skipped, status: "not run" },
  );
  const takeover = cluster?.takeover;
  targets.push(
    takeover && takeover.kill_to_resumed_ms.length
      ? {
          target: `cluster: takeover < lease + 2 s (lease ${fmt(takeover.lease_ms)} ms: < ${fmt(takeover.lease_ms + 2000)} ms)`,
          measured: `kill -9 → resumed event at a watcher ${range(takeover.spread_ms, 0)} ms over ${takeover.kill_to_resumed_ms.length} kills (poll ${fmt(takeover.poll_ms)} ms)`,
          status: Math.max(...takeover.kill_to_resumed_ms) < takeover.lease_ms + 2000 && takeover.gapless && takeover.kill_to_resumed_ms.length === takeover.trials ? "met" : "not met",
        }
      : { target: "cluster: takeover < lease + 2 s", measured: takeover ? takeover.problems.join("; ") : skipped, status: takeover ? "not met" : "not run" },
  );
  return targets;
}

function table(header: string[], rows: string[][]): string {
  const lines = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`];
  for (const row of rows) lines.push(`| ${row.join(" | ")} |`);
  return lines.join("\n");
}

export function renderTables(results: Results): string {
  const out: string[] = [];
  const { machine } = results;
  out.push(
    `agentkit bench — ${results.date} — ${machine.nproc}× ${machine.cpu_model}, ${machine.memory_gib} GiB, Linux ${machine.kernel}, ` +
      `Bun ${machine.bun}; repo HEAD ${machine.commit}; measured binary ${results.binary.path} (sha1 ${results.binary.sha1})`,
  );

  const disk = machine.data_dir;
  out.push(
    `data dirs: ${disk.path} on ${disk.device} (${disk.fstype}, ${disk.mount_options}` +
      `${disk.rotational === null ? "" : disk.rotational ? "; the disk reports rotational" : "; non-rotational"}${disk.model ? `; ${disk.model}` : ""}); ` +
      `open files ${fmt(machine.open_file_limit)}; load average ${machine.loadavg_start.join(" ")} at the start, ${machine.loadavg_end.join(" ")} at the end`,
  );

  if (results.burst?.length) {
    out.push("", "### Short bursts: a 200-event task, trigger → result at the last watcher (median (min–max) over interleaved pairs)");
    out.push(
      table(
        ["watchers", "warm-up bursts", "pairs", "agentkit ms", "bare ms", "ratio (bare ÷ agentkit time)", "first frame ms agentkit / bare", "server CPU µs/delivery agentkit", "bare", "CPU ratio (agentkit ÷ bare)", "agentkit − bare CPU ms/burst"],
        results.burst.map((row) => [
          fmt(row.watchers),
          fmt(row.warmup_bursts ?? 0),
          fmt(row.pairs),
          range(row.agentkit_total_ms, 1),
          range(row.bare_total_ms, 1),
          `**${range(row.throughput_ratio)}×**` + (row.all_frames_delivered ? "" : " (INCOMPLETE)"),
          `${fmt(row.agentkit_first_frame_ms.median, 2)} / ${fmt(row.bare_first_frame_ms.median, 2)}`,
          range(row.agentkit_cpu_us_per_delivery, 3),
          range(row.bare_cpu_us_per_delivery, 3),
          `**${range(row.cpu_ratio)}×**`,
          row.extra_cpu_ms_per_burst ? range(row.extra_cpu_ms_per_burst, 2) : "—",
        ]),
      ),
    );
    const part = burstDecomposition(results.burst);
    if (part) {
      out.push(
        "",
        `agentkit's extra CPU over bare: ${fmt(part.extra_ms_at_fewest, 2)} ms per 200-event burst at ${fmt(part.fewest_watchers)} watchers ` +
          `(${fmt(part.extra_us_per_event_at_fewest, 1)} µs per event). Per delivery it costs at most ${fmt(part.max_extra_us_per_delivery, 4)} µs more than bare ` +
          `(${fmt(part.max_per_delivery_ratio, 2)}× bare's ${fmt(part.bare_us_per_delivery, 3)}: the whole extra at ${fmt(part.most_watchers)} watchers, were it all per delivery), ` +
          `so at least ${fmt(part.min_task_ms_per_burst, 2)} ms of the extra at ${fmt(part.fewest_watchers)} is the task's own (its start, the engine, the store).`,
      );
    }
  }

  if (results.fan_out?.length) {
    out.push("", "### Fan-out: one task, instant model, frames published as fast as possible (median of the runs)");
    out.push(
      table(
        ["watchers", "frames/watcher", "bytes/frame", "agentkit deliveries/s", "bare deliveries/s", "ratio", "server CPU µs/delivery agentkit / bare", "CPU ratio", "agentkit p50 / p99 ms", "bare p50 / p99 ms", "client CPU agentkit / bare"],
        results.fan_out.map((row) => [
          fmt(row.watchers),
          fmt(row.frames_per_watcher),
          `${fmt(row.agentkit.avg_frame_bytes)} / ${fmt(row.bare.avg_frame_bytes)}`,
          fmt(row.agentkit.deliveries_per_s) + (row.agentkit.all_frames_delivered ? "" : " (incomplete)"),
          fmt(row.bare.deliveries_per_s) + (row.bare.all_frames_delivered ? "" : " (incomplete)"),
          `**${row.throughput_ratio.toFixed(2)}×**`,
          `${fmt(row.agentkit.server_cpu_us_per_delivery, 3)} / ${fmt(row.bare.server_cpu_us_per_delivery, 3)}`,
          `**${row.cpu_efficiency_ratio.toFixed(2)}×**`,
          `${ms(row.agentkit.p50_ms)} / ${ms(row.agentkit.p99_ms)}`,
          `${ms(row.bare.p50_ms)} / ${ms(row.bare.p99_ms)}`,
          `${fmt(row.agentkit.client_cpu_percent)}% / ${fmt(row.bare.client_cpu_percent)}%`,
        ]),
      ),
    );
  }

  if (results.storm) {
    const storm = results.storm;
    out.push(
      "",
      `### Reconnect storm: ${fmt(storm.watchers)} watchers of a live task (a step every ${storm.step_ms} ms) drop and reconnect with after=<last seq> at once ` +
        `(${fmt(storm.reconnects_in_flight)} in flight; median (min–max) of ${storm.pairs} pairs)` +
        (storm.limited_by ? ` — count limited by ${storm.limited_by}` : ""),
    );
    out.push(
      table(
        ["server", "all re-subscribed ms", "all caught up ms", "server CPU µs/watcher", "time ratio agentkit ÷ bare", "CPU ratio agentkit ÷ bare", "no gap, no duplicate, every result"],
        [
          ["agentkit", range(storm.agentkit_resubscribed_ms, 0), range(storm.agentkit_caught_up_ms, 0), range(storm.agentkit_cpu_us_per_watcher, 1), `**${range(storm.time_ratio)}×**`, `**${range(storm.cpu_ratio)}×**`, storm.correct ? "yes" : "**NO**"],
          ["bare", range(storm.bare_resubscribed_ms, 0), range(storm.bare_caught_up_ms, 0), range(storm.bare_cpu_us_per_watcher, 1), "", "", ""],
        ],
      ),
    );
  }

  if (results.steady?.length) {
    out.push("", "### Steady latency (yield → arrival of tool_call frames, every watcher)");
    out.push(
      table(
        ["watchers", "server", "events/s", "duration s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "CPU server / clients"],
        results.steady.map((run) => [
          fmt(run.watchers),
          run.system,
          fmt(run.events_per_s),
          fmt(run.duration_s, 1),
          ms(run.latency.p50_ms),
          ms(run.latency.p99_ms),
          ms(run.latency.p999_ms),
          ms(run.latency.max_ms),
          `${fmt(run.server_cpu_percent)}% / ${fmt(run.client_cpu_percent)}%` + (run.all_frames_delivered ? "" : " (incomplete)"),
        ]),
      ),
    );
  }

  const manyRuns = [results.many_tasks, results.many_tasks_paced].filter((run): run is ManyTasksResult => run !== undefined);
  if (manyRuns.length) {
    out.push("", "### Many tasks (end to end: first POST → result at the last watcher)");
    out.push(
      table(
        ["model", "tasks × steps", "watchers/task", "tasks/s", "persisted step frames/s", "ReAct steps/s", "by server timestamps", "server CPU", "persisted (last_seq checked)"],
        manyRuns.map((many) => [
            many.step_delay_ms ? `paced: ${many.step_delay_ms} ms sleep per step` : "instant",
            `${fmt(many.tasks)} × ${fmt(many.steps_per_task)}`,
            fmt(many.watchers_per_task),
            fmt(many.tasks_per_s),
            fmt(many.persisted_events_per_s),
            fmt(many.react_steps_per_s),
            `${fmt(many.server_persisted_events_per_s)} frames/s`,
            `${fmt(many.server_cpu_percent)}%`,
            `${many.tasks_verified}/${many.tasks}` + (many.all_frames_delivered ? ", all watchers complete" : ", WATCHERS INCOMPLETE"),
          ]),
      ),
    );
  }

  if (results.connections) {
    const connections = results.connections;
    out.push("", `### Idle connections (server VmRSS; baseline ${fmt(connections.baseline_rss_kb)} KiB)`);
    out.push(
      table(
        ["asked", "measured", "server RSS KiB", "server RSS KiB / connection", "marginal KiB / connection", "kernel slab KiB / connection (both ends)", "connect s", "limited by"],
        connections.levels.map((level) => [
          fmt(level.requested),
          fmt(level.measured),
          fmt(level.server_rss_kb),
          `**${fmt(level.rss_per_connection_kb, 2)}**`,
          level.marginal_rss_per_connection_kb === null ? "—" : fmt(level.marginal_rss_per_connection_kb, 2),
          fmt(level.kernel_slab_per_connection_kb, 1),
          fmt(level.connect_s, 1),
          level.limited_by ?? "—",
        ]),
      ),
    );
    if (connections.final_cancel) {
      out.push(
        `Afterwards, cancel → result at all ${fmt(connections.final_cancel.watchers)} watchers: ` +
          `${ms(connections.final_cancel.last_watcher_ms)} ms (${connections.final_cancel.all_received ? "every watcher" : "NOT every watcher"}).`,
      );
    }
  }

  if (results.cancel) {
    const cancel = results.cancel;
    out.push("", "### Cancel (task in a slow model call; {\"type\":\"cancel\"} → result{cancelled})");
    out.push(
      table(
        ["trials × watchers", "p50 ms", "p99 ms", "max ms", "last watcher per trial: median / max ms", "all cancelled"],
        [[`${cancel.trials} × ${cancel.watchers}`, ms(cancel.latency.p50_ms), ms(cancel.latency.p99_ms), ms(cancel.latency.max_ms), `${ms(cancel.last_watcher_p50_ms)} / ${ms(cancel.last_watcher_max_ms)}`, cancel.all_cancelled ? "yes" : "NO"]],
      ),
    );
  }

  if (results.start) {
    const start = results.start;
    out.push("", "### Start");
    out.push(
      table(
        ["trials", "exec → GET /health p50 ms", "max ms", "idle RSS MiB", "binary MiB"],
        [[fmt(start.trials), ms(start.start_p50_ms), ms(start.start_max_ms), fmt(start.idle_rss_kb / 1024, 1), fmt(start.binary_bytes / 1024 / 1024, 1)]],
      ),
    );
  }

  if (results.cluster_skipped) out.push("", `### Cluster (PostgreSQL): skipped — ${results.cluster_skipped}`);
  if (results.cluster) out.push("", renderCluster(results.cluster));

  out.push("", "### Targets (issues 5, 8 and 9)");
  out.push(table(["target", "measured", "status"], results.targets.map((target) => [target.target, target.measured, `**${target.status}**`])));
  out.push(
    "",
    "Load per scenario (other processes' CPU; load average before → after): " +
      Object.entries(results.other_load)
        .map(([name, load]) => `${name} ${load.cpu_s} CPU-s in ${load.wall_s} s, ${load.loadavg_before?.[0] ?? "?"} → ${load.loadavg_after?.[0] ?? "?"}`)
        .join("; "),
  );
  const busy = Object.entries(results.other_load).filter(([, load]) => load.cpu_s > 0.05 * load.wall_s);
  out.push(
    "",
    busy.length === 0
      ? "Other processes on the machine used < 5% of a core during every scenario."
      : `Other processes on the machine were busy during: ${busy
          .map(([name, load]) => `${name} (${load.cpu_s} CPU-s in ${load.wall_s} s)`)
          .join(", ")} — those figures are skewed; run again on a quiet machine.`,
  );
  for (const [scenario, message] of Object.entries(results.errors)) out.push(`\nERROR in ${scenario}: ${message}`);
  return out.join("\n");
}

function renderCluster(cluster: ClusterResult): string {
  const out: string[] = [];
  const settings = cluster.postgres.settings;
  out.push(
    `### Cluster (PostgreSQL): ${cluster.postgres.description}; fsync ${settings.fsync}, synchronous_commit ${settings.synchronous_commit}, ` +
      `full_page_writes ${settings.full_page_writes}, wal_sync_method ${settings.wal_sync_method}, shared_buffers ${settings.shared_buffers}` +
      (cluster.postgres.data_disk ? `; its data dir on ${cluster.postgres.data_disk}` : "") +
      `; median (min–max) over ${cluster.reps} repetition(s)`,
  );
  if (cluster.events) {
    const events = cluster.events;
    const first = events.postgres[0] ?? events.sqlite[0];
    out.push(
      "",
      `One node, many tasks (${first ? `${fmt(first.tasks)} tasks × ${fmt(first.steps_per_task)} steps, ${first.watchers_per_task} watchers each, instant model` : ""}; PostgreSQL and SQLite runs interleaved):`,
      table(
        ["store", "persisted events/s (end to end)", "by server timestamps", "server CPU", "persisted (last_seq checked)"],
        [
          ["PostgreSQL", `**${range(events.postgres_events_per_s, 0)}**`, events.postgres.map((run) => fmt(run.server_persisted_events_per_s)).join(" / "), events.postgres.map((run) => `${fmt(run.server_cpu_percent)}%`).join(" / "), events.postgres.every((run) => run.all_persisted && run.all_frames_delivered) ? "all" : "**NOT ALL**"],
          ["SQLite", `**${range(events.sqlite_events_per_s, 0)}**`, events.sqlite.map((run) => fmt(run.server_persisted_events_per_s)).join(" / "), events.sqlite.map((run) => `${fmt(run.server_cpu_percent)}%`).join(" / "), events.sqlite.every((run) => run.all_persisted && run.all_frames_delivered) ? "all" : "**NOT ALL**"],
          ...(events.baseline_sqlite && events.baseline_sqlite_events_per_s
            ? [["SQLite, baseline build (--baseline)", `**${range(events.baseline_sqlite_events_per_s, 0)}**`, events.baseline_sqlite.map((run) => fmt(run.server_persisted_events_per_s)).join(" / "), events.baseline_sqlite.map((run) => `${fmt(run.server_cpu_percent)}%`).join(" / "), events.baseline_sqlite.every((run) => run.all_persisted && run.all_frames_delivered) ? "all" : "**NOT ALL**"]]
            : []),
        ],
      ),
    );
  }
  if (cluster.claim.length) {
    out.push(
      "",
      "Claim latency: idle workers, tasks created one at a time (POST sent → the claiming node's first model call, the `t` of the first tool_call):",
      table(
        ["nodes", "poll ms", "tasks/rep", "p50 ms", "p99 ms", "max ms", "201 → first call p50 / p99 ms", "POST round trip p50 ms"],
        cluster.claim.map((run) => [
          run.config,
          fmt(run.poll_ms),
          fmt(run.tasks),
          range(run.sent_to_first_p50_ms, 2),
          `**${range(run.sent_to_first_p99_ms, 1)}**`,
          ms(run.max_ms),
          `${range(run.created_to_first_p50_ms, 2)} / ${range(run.created_to_first_p99_ms, 1)}`,
          range(run.post_p50_ms, 2) + (run.failures.length ? ` (failures: ${run.failures[0]})` : ""),
        ]),
      ),
    );
  }
  if (cluster.cross) {
    const cross = cluster.cross;
    out.push(
      "",
      `Cross-node delivery: one task paced at ~${fmt(cross.events_per_s)} events/s (${fmt(cross.steps)} steps × ${cross.delay_ms} ms) on node B, ${cross.watchers_per_node} watchers on B and on A (\`api\`, reads the log after each \`events\` notification):`,
      table(
        ["added at A per frame p50 ms", "p99 ms", "yield → arrival on B p50 / p99 ms", "on A p50 / p99 ms", "frames compared", "every frame once, in order"],
        [[
          range(cross.added_p50_ms, 2),
          `**${range(cross.added_p99_ms, 2)}**`,
          `${range(cross.same_node_p50_ms, 2)} / ${range(cross.same_node_p99_ms, 2)}`,
          `${range(cross.other_node_p50_ms, 2)} / ${range(cross.other_node_p99_ms, 2)}`,
          fmt(cross.frames_compared),
          cross.complete ? "yes" : `**NO**: ${cross.problems.join("; ")}`,
        ]],
      ),
    );
  }
  if (cluster.cancel) {
    const cancel = cluster.cancel;
    out.push(
      "",
      `Cancel across nodes: a task in a slow model call on B, \`POST /tasks/:id/cancel\` to A (${fmt(cancel.trials)} trials per repetition):`,
      table(
        ["result at B (running) p50 / p99 ms", "result at A (cancelling) p50 / p99 ms", "max ms", "POST answered p50 ms", "all cancelled"],
        [[
          `${range(cancel.running_node_p50_ms, 1)} / **${range(cancel.running_node_p99_ms, 1)}**`,
          `${range(cancel.other_node_p50_ms, 1)} / **${range(cancel.other_node_p99_ms, 1)}**`,
          ms(cancel.max_ms),
          range(cancel.post_p50_ms, 1),
          cancel.all_cancelled ? "yes" : `**NO** ${cancel.failures.join("; ")}`,
        ]],
      ),
    );
  }
  if (cluster.takeover) {
    const takeover = cluster.takeover;
    out.push(
      "",
      `Takeover: lease ${fmt(takeover.lease_ms)} ms, poll ${fmt(takeover.poll_ms)} ms; kill -9 of the node running a paced task → its \`resumed\` event at a watcher on the surviving node:`,
      table(
        ["kills", "kill → resumed ms, median (min–max)", "each", "no gap, no duplicate, one result", "survivor logged \"task resumed from its log\""],
        [[
          fmt(takeover.trials),
          `**${range(takeover.spread_ms, 0)}**`,
          takeover.kill_to_resumed_ms.map((value) => fmt(value)).join(", "),
          takeover.gapless ? "yes" : `**NO**: ${takeover.problems.join("; ")}`,
          takeover.all_resumed_logged ? "yes" : "**NO**",
        ]],
      ),
    );
  }
  for (const [part, message] of Object.entries(cluster.errors)) out.push(`\nERROR in cluster ${part}: ${message}`);
  return out.join("\n");
}
