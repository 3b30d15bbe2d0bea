/**
 * Cluster mode on PostgreSQL (issue 9): the compiled binary as several nodes on one database
 * (bench/lib/postgres.ts: a throwaway cluster with durability on, or AGENTKIT_BENCH_DATABASE_URL).
 * Clients in a separate process (bench/cluster-client.ts): one clock for every send and arrival.
 *
 *   events/s   one node, many tasks (the many-tasks scenario), PostgreSQL and SQLite interleaved
 *   claim      idle workers on two nodes, tasks created one at a time → the claiming node's first
 *              model call (the `t` of the first tool_call): (a) two `all` nodes, POSTs alternating
 *              (the node that takes the POST claims without a notification — or the other wins
 *              through NOTIFY); (b) an `api` node taking the POSTs and two `worker` nodes with a
 *              10 s poll: every claim must come through LISTEN/NOTIFY (a claim that waited for the
 *              poll would show as seconds)
 *   cross      a paced task (~200 events/s) on node B, watchers on B and on A (api): added
 *              latency per durable frame at A over B
 *   cancel     a task in a slow model call on B; POST /tasks/:id/cancel to A → result at both
 *   takeover   lease 2,000 ms: kill -9 of the node running a paced task → the `resumed` event (the
 *              new run's first frame) at a watcher on the surviving node
 *
 * Each figure is repeated (`reps`, at least 3 unless --quick) with fresh nodes; reported as the
 * median with min–max over the repetitions.
 */
import { LatencyHistogram } from "../lib/histogram.ts";
import { round, startServer, type Context } from "../lib/context.ts";
import type { BenchPostgres } from "../lib/postgres.ts";
import { ClientProcess, sleep, type ServerHandle } from "../lib/processes.ts";
import { spread, type Spread } from "./burst.ts";
import { manyTasks, type ManyTasksResult } from "./many-tasks.ts";

export interface ClaimRun {
  config: string;
  poll_ms: number;
  tasks: number;
  /** Over the repetitions: p50 and p99 of POST sent → first model call on the claiming node. */
  sent_to_first_p50_ms: Spread;
  sent_to_first_p99_ms: Spread;
  /** 201 received → first model call (the claim alone, roughly; negative when the claim won the race with the response). */
  created_to_first_p50_ms: Spread;
  created_to_first_p99_ms: Spread;
  /** POST /tasks round trip (the task's INSERT committed). */
  post_p50_ms: Spread;
  max_ms: number;
  failures: string[];
  /** Raw samples per repetition (ms): POST sent → first model call. */
  samples_ms: number[][];
}

export interface ClusterResult {
  postgres: { description: string; settings: Record<string, string>; data_disk: string | null };
  reps: number;
  events: {
    postgres: ManyTasksResult[];
    sqlite: ManyTasksResult[];
    postgres_events_per_s: Spread;
    sqlite_events_per_s: Spread;
    /** --baseline: the older build on SQLite, interleaved with the others. */
    baseline_sqlite?: ManyTasksResult[];
    baseline_sqlite_events_per_s?: Spread;
    baseline_binary?: string;
  } | null;
  claim: ClaimRun[];
  cross: {
    steps: number;
    delay_ms: number;
    events_per_s: number;
    watchers_per_node: number;
    added_p50_ms: Spread;
    added_p99_ms: Spread;
    same_node_p50_ms: Spread;
    same_node_p99_ms: Spread;
    other_node_p50_ms: Spread;
    other_node_p99_ms: Spread;
    frames_compared: number;
    complete: boolean;
    problems: string[];
  } | null;
  cancel: {
    trials: number;
    running_node_p50_ms: Spread;
    running_node_p99_ms: Spread;
    other_node_p50_ms: Spread;
    other_node_p99_ms: Spread;
    post_p50_ms: Spread;
    max_ms: number;
    all_cancelled: boolean;
    failures: string[];
    /** Raw samples per repetition (ms): cancel sent → result at the running node, at the cancelling node. */
    samples_ms: { running: number[]; other: number[] }[];
  } | null;
  takeover: {
    lease_ms: number;
    poll_ms: number;
    trials: number;
    /** kill → the `resumed` event at the watcher, per trial. */
    kill_to_resumed_ms: number[];
    spread_ms: Spread;
    all_resumed_logged: boolean;
    gapless: boolean;
    problems: string[];
  } | null;
  errors: Record<string, string>;
}

/** The nearest-rank quantile of raw samples (exact: these are a few hundred; negatives kept). */
const percentile = (values: number[], q: number) => {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return round(sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!, 3);
};

async function withNodes<T>(context: Context, specs: { id: string; env: Record<string, string> }[], body: (nodes: ServerHandle[]) => Promise<T>): Promise<T> {
  const nodes: ServerHandle[] = [];
  try {
    for (const spec of specs) nodes.push(await startServer(context, { AGENTKIT_NODE_ID: spec.id, ...spec.env }));
    return await body(nodes);
  } finally {
    await Promise.all(nodes.map((node) => node.stop().catch(() => {})));
  }
}

function clusterEnv(url: string, extra: Record<string, string> = {}): Record<string, string> {
  return { AGENTKIT_DATABASE_URL: url, AGENTKIT_MAX_CONCURRENT_TASKS: "16", ...extra };
}

async function runClient<T>(context: Context, spec: ConstructorParameters<typeof ClientProcess>[1], type: string, timeoutMs: number): Promise<T> {
  const client = new ClientProcess(context.benchDir, spec, "cluster-client.ts");
  try {
    await client.nextCluster("ready", 30_000);
    client.send({ type: "go" });
    return (await client.nextCluster(type as never, timeoutMs)) as T;
  } finally {
    await client.close();
  }
}

async function claimRuns(context: Context, pg: BenchPostgres, reps: number, result: ClusterResult) {
  const trials = context.options.quick ? 30 : 200;
  const configs = [
    { config: "2 nodes `all`, POSTs alternating", poll: 2000, roles: ["all", "all"], targets: [0, 1] },
    { config: "1 `api` node takes the POSTs, 2 `worker` nodes (claims only through NOTIFY)", poll: 10_000, roles: ["api", "worker", "worker"], targets: [0] },
  ];
  for (const config of configs) {
    const runs: { post: number[]; sent: number[]; created: number[]; failures: string[] }[] = [];
    for (let rep = 0; rep < reps; rep++) {
      const url = await pg.createDatabase();
      context.log(`cluster claim (${config.config}, poll ${config.poll} ms), rep ${rep + 1}/${reps}: ${trials} tasks one at a time`);
      const specs = config.roles.map((role, index) => ({
        id: `${role}-${index}`,
        env: clusterEnv(url, { AGENTKIT_ROLE: role, AGENTKIT_POLL_MS: String(config.poll) }),
      }));
      const done = await withNodes(context, specs, async (nodes) => {
        await sleep(300); // every node listening
        return runClient<{ post_ms: number[]; sent_to_first_ms: number[]; created_to_first_ms: number[]; failures: string[] }>(
          context,
          { mode: "claim", targets: config.targets.map((index) => ({ http: nodes[index]!.http, ws: nodes[index]!.ws })), trials, timeoutMs: 30_000 },
          "claim-done",
          trials * 30_000,
        );
      });
      runs.push({ post: done.post_ms, sent: done.sent_to_first_ms, created: done.created_to_first_ms, failures: done.failures });
      context.log(
        `  sent → first model call p50 ${percentile(done.sent_to_first_ms, 0.5)} ms, p99 ${percentile(done.sent_to_first_ms, 0.99)} ms; ` +
          `201 → first p50 ${percentile(done.created_to_first_ms, 0.5)} ms, p99 ${percentile(done.created_to_first_ms, 0.99)} ms; ` +
          `POST p50 ${percentile(done.post_ms, 0.5)} ms` +
          (done.failures.length ? `; ${done.failures.length} failures: ${done.failures[0]}` : ""),
      );
    }
    result.claim.push({
      config: config.config,
      poll_ms: config.poll,
      tasks: trials,
      sent_to_first_p50_ms: spread(runs.map((run) => percentile(run.sent, 0.5))),
      sent_to_first_p99_ms: spread(runs.map((run) => percentile(run.sent, 0.99))),
      created_to_first_p50_ms: spread(runs.map((run) => percentile(run.created, 0.5))),
      created_to_first_p99_ms: spread(runs.map((run) => percentile(run.created, 0.99))),
      post_p50_ms: spread(runs.map((run) => percentile(run.post, 0.5))),
      max_ms: round(Math.max(...runs.flatMap((run) => run.sent)), 1),
      failures: runs.flatMap((run) => run.failures).slice(0, 5),
      samples_ms: runs.map((run) => run.sent.map((value) => round(value, 3))),
    });
  }
}

async function crossRuns(context: Context, pg: BenchPostgres, reps: number, result: ClusterResult) {
  const steps = context.options.quick ? 200 : 600;
  const delayMs = 15; // 3 durable events per step: ~200 events/s
  const watchers = 5;
  const runs: { added: LatencyHistogram; run: LatencyHistogram; other: LatencyHistogram; compared: number; complete: boolean; problems: string[] }[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const url = await pg.createDatabase();
    context.log(`cluster cross-node delivery, rep ${rep + 1}/${reps}: ${steps} steps × ${delayMs} ms on node B, ${watchers} watchers on B and on A (api)`);
    const done = await withNodes(
      context,
      [
        { id: "a-api", env: clusterEnv(url, { AGENTKIT_ROLE: "api" }) },
        { id: "b-all", env: clusterEnv(url) },
      ],
      async ([a, b]) => {
        await sleep(300);
        return runClient<{ compared: number; added: never; run_latency: never; other_latency: never; complete: boolean; problems: string[] }>(
          context,
          { mode: "cross", post: a!.http, run: b!.ws, other: a!.ws, watchers, steps, delayMs, timeoutMs: 120_000 },
          "cross-done",
          180_000,
        );
      },
    );
    const run = { added: LatencyHistogram.from(done.added), run: LatencyHistogram.from(done.run_latency), other: LatencyHistogram.from(done.other_latency), compared: done.compared, complete: done.complete, problems: done.problems };
    runs.push(run);
    context.log(
      `  added at A over B per frame: p50 ${round(run.added.quantile(0.5), 3)} ms, p99 ${round(run.added.quantile(0.99), 3)} ms over ${done.compared} frames; ` +
        `yield → arrival p99 B ${round(run.run.quantile(0.99), 2)} ms, A ${round(run.other.quantile(0.99), 2)} ms` +
        (done.complete ? "" : `; PROBLEMS: ${done.problems.join("; ")}`),
    );
  }
  result.cross = {
    steps,
    delay_ms: delayMs,
    events_per_s: Math.round(3000 / delayMs),
    watchers_per_node: watchers,
    added_p50_ms: spread(runs.map((run) => run.added.quantile(0.5))),
    added_p99_ms: spread(runs.map((run) => run.added.quantile(0.99))),
    same_node_p50_ms: spread(runs.map((run) => run.run.quantile(0.5))),
    same_node_p99_ms: spread(runs.map((run) => run.run.quantile(0.99))),
    other_node_p50_ms: spread(runs.map((run) => run.other.quantile(0.5))),
    other_node_p99_ms: spread(runs.map((run) => run.other.quantile(0.99))),
    frames_compared: runs.reduce((sum, run) => sum + run.compared, 0),
    complete: runs.every((run) => run.complete),
    problems: runs.flatMap((run) => run.problems).slice(0, 10),
  };
}

async function cancelRuns(context: Context, pg: BenchPostgres, reps: number, result: ClusterResult) {
  const trials = context.options.quick ? 5 : 30;
  const runs: { run: number[]; other: number[]; post: number[]; notCancelled: number; failures: string[] }[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const url = await pg.createDatabase();
    context.log(`cluster cancel across nodes, rep ${rep + 1}/${reps}: ${trials} tasks in a slow model call on B, cancelled by POST on A`);
    const done = await withNodes(
      context,
      [
        { id: "a-api", env: clusterEnv(url, { AGENTKIT_ROLE: "api" }) },
        { id: "b-all", env: clusterEnv(url) },
      ],
      async ([a, b]) => {
        await sleep(300);
        return runClient<{ run_ms: number[]; other_ms: number[]; post_ms: number[]; not_cancelled: number; failures: string[] }>(
          context,
          { mode: "cancel", post: a!.http, run: b!.ws, other: a!.ws, cancelAt: a!.http, trials, timeoutMs: 20_000 },
          "cancel-done",
          trials * 30_000,
        );
      },
    );
    runs.push({ run: done.run_ms, other: done.other_ms, post: done.post_ms, notCancelled: done.not_cancelled, failures: done.failures });
    context.log(
      `  cancel on A → result at B p50 ${percentile(done.run_ms, 0.5)} / p99 ${percentile(done.run_ms, 0.99)} ms, at A p50 ${percentile(done.other_ms, 0.5)} / p99 ${percentile(done.other_ms, 0.99)} ms; ` +
        `POST answered p50 ${percentile(done.post_ms, 0.5)} ms` +
        (done.failures.length ? `; failures: ${done.failures.join("; ")}` : ""),
    );
  }
  result.cancel = {
    trials,
    running_node_p50_ms: spread(runs.map((run) => percentile(run.run, 0.5))),
    running_node_p99_ms: spread(runs.map((run) => percentile(run.run, 0.99))),
    other_node_p50_ms: spread(runs.map((run) => percentile(run.other, 0.5))),
    other_node_p99_ms: spread(runs.map((run) => percentile(run.other, 0.99))),
    post_p50_ms: spread(runs.map((run) => percentile(run.post, 0.5))),
    max_ms: round(Math.max(...runs.flatMap((run) => [...run.run, ...run.other])), 1),
    all_cancelled: runs.every((run) => run.notCancelled === 0 && run.failures.length === 0 && run.run.length === trials),
    failures: runs.flatMap((run) => run.failures).slice(0, 5),
    samples_ms: runs.map((run) => ({ running: run.run.map((value) => round(value, 3)), other: run.other.map((value) => round(value, 3)) })),
  };
}

async function takeoverRuns(context: Context, pg: BenchPostgres, reps: number, result: ClusterResult) {
  const trials = context.options.quick ? 1 : Math.max(reps, 5);
  const leaseMs = 2000;
  const pollMs = 2000;
  const times: number[] = [];
  const problems: string[] = [];
  let allLogged = true;
  let gapless = true;
  const url = await pg.createDatabase();
  for (let trial = 0; trial < trials; trial++) {
    context.log(`cluster takeover, trial ${trial + 1}/${trials}: lease ${leaseMs} ms, poll ${pollMs} ms, kill -9 of the node running a paced task`);
    const env = clusterEnv(url, { AGENTKIT_LEASE_MS: String(leaseMs), AGENTKIT_POLL_MS: String(pollMs), AGENTKIT_LOG_LEVEL: "info" });
    await withNodes(
      context,
      [
        { id: `t${trial}-a`, env },
        { id: `t${trial}-b`, env },
      ],
      async (nodes) => {
        await sleep(300);
        const client = new ClientProcess(context.benchDir, { mode: "takeover", post: nodes[trial % 2]!.http, steps: 300, delayMs: 10, timeoutMs: 60_000 }, "cluster-client.ts");
        try {
          await client.nextCluster("ready", 30_000);
          client.send({ type: "go" });
          const { task_id } = await client.nextCluster("created", 10_000);
          let owner: string | undefined;
          const deadline = performance.now() + 10_000;
          while (!owner && performance.now() < deadline) {
            const [row] = await pg.query<{ lease_owner: string | null }>(url, "SELECT lease_owner FROM tasks WHERE id = $1", [task_id]);
            owner = row?.lease_owner ?? undefined;
            if (!owner) await sleep(5);
          }
          const ownerIndex = nodes.findIndex((_, index) => owner === `t${trial}-${index === 0 ? "a" : "b"}`);
          if (ownerIndex < 0) throw new Error(`task ${task_id}: lease owner ${owner} is not one of the nodes`);
          const owning = nodes[ownerIndex]!;
          const survivor = nodes[1 - ownerIndex]!;
          client.send({ type: "watch", url: survivor.ws });
          await client.nextCluster("watching", 10_000);
          await sleep(200);
          const killedAt = performance.timeOrigin + performance.now();
          process.kill(owning.pid, "SIGKILL");
          const done = await client.nextCluster("takeover-done", 90_000);
          const resumed = done.frames.find((frame) => frame.resumed);
          if (!resumed) problems.push(`trial ${trial + 1}: no resumed event at the watcher${done.timed_out ? " (timed out)" : ""}`);
          else times.push(round(resumed.at - killedAt, 1));
          if (done.gaps || done.duplicates || done.results !== 1) {
            gapless = false;
            problems.push(`trial ${trial + 1}: ${done.gaps} gaps, ${done.duplicates} duplicates, ${done.results} results at the surviving watcher`);
          }
          const [row] = await pg.query<{ status: string; attempt: string }>(url, "SELECT status, attempt FROM tasks WHERE id = $1", [task_id]);
          const logged = survivor.stderr().includes("task resumed from its log");
          if (!logged) allLogged = false;
          context.log(
            `  owner ${owner} killed; resumed event at the watcher on the survivor after ${resumed ? round(resumed.at - killedAt, 1) : "—"} ms; ` +
              `task ${row?.status}, attempt ${row?.attempt}; survivor logged "task resumed from its log": ${logged ? "yes" : "NO"}`,
          );
        } finally {
          await client.close();
        }
      },
    );
  }
  result.takeover = {
    lease_ms: leaseMs,
    poll_ms: pollMs,
    trials,
    kill_to_resumed_ms: times,
    spread_ms: spread(times, 1),
    all_resumed_logged: allLogged,
    gapless,
    problems,
  };
}

export async function cluster(context: Context, pg: BenchPostgres, dataDisk: string | null): Promise<ClusterResult> {
  const reps = context.options.quick ? 1 : Math.max(3, Math.min(context.options.reps, 5));
  const result: ClusterResult = {
    postgres: { description: pg.description, settings: pg.settings, data_disk: dataDisk },
    reps,
    events: null,
    claim: [],
    cross: null,
    cancel: null,
    takeover: null,
    errors: {},
  };
  const parts: [string, () => Promise<void>][] = [
    [
      "events",
      async () => {
        const postgres: ManyTasksResult[] = [];
        const sqlite: ManyTasksResult[] = [];
        const baseline: ManyTasksResult[] = [];
        const baselineBinary = context.options.baseline;
        for (let rep = 0; rep < reps; rep++) {
          const url = await pg.createDatabase();
          postgres.push(await manyTasks(context, 0, { AGENTKIT_DATABASE_URL: url }, "PostgreSQL"));
          sqlite.push(await manyTasks(context, 0, {}, "SQLite"));
          if (baselineBinary) baseline.push(await manyTasks({ ...context, binary: baselineBinary }, 0, {}, "SQLite, the baseline build"));
        }
        result.events = {
          postgres,
          sqlite,
          postgres_events_per_s: spread(postgres.map((run) => run.persisted_events_per_s), 0),
          sqlite_events_per_s: spread(sqlite.map((run) => run.persisted_events_per_s), 0),
          ...(baselineBinary
            ? { baseline_sqlite: baseline, baseline_sqlite_events_per_s: spread(baseline.map((run) => run.persisted_events_per_s), 0), baseline_binary: baselineBinary }
            : {}),
        };
      },
    ],
    ["claim", () => claimRuns(context, pg, reps, result)],
    ["cross", () => crossRuns(context, pg, reps, result)],
    ["cancel", () => cancelRuns(context, pg, reps, result)],
    ["takeover", () => takeoverRuns(context, pg, reps, result)],
  ];
  const only = process.env.BENCH_CLUSTER_ONLY?.split(",");
  for (const [name, part] of parts) {
    if (only && !only.includes(name)) continue;
    try {
      await part();
    } catch (error) {
      result.errors[name] = error instanceof Error ? error.message : String(error);
      context.log(`cluster ${name} FAILED: ${result.errors[name]}`);
    }
  }
  return result;
}
