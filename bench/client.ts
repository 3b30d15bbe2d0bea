/**
 * A client load process: Bun `WebSocket` clients that count frames and timestamp them, driven by
 * the orchestrator (bench/main.ts) over IPC. The same code watches agentkit and the bare server.
 *
 * Kept cheap (2 cores are shared with the server): per frame one `charCodeAt` for the kind, a
 * length for the bytes, one clock read; only for a frame carrying `"t":` (tool_call) an `indexOf`
 * and a `parseFloat` for the latency — never JSON.parse.
 *
 * Modes (the spec is argv[2], JSON):
 *   watch   open `count` watchers of one URL; after `go`, report when each has its `result`
 *           (or keep them idle until `close`, for the connection count)
 *   tasks   after `go`, create `tasks` tasks (POST /tasks) and watch each with `watchersPerTask`
 *   cancel  `trials` times: create a task stuck in a slow model call, open `watchers` watchers,
 *           send {"type":"cancel"} on one, time `result` arriving at every one
 */
import { KIND_OFFSET, KIND_RESULT } from "./lib/frames.ts";
import { LatencyHistogram, type SerializedHistogram } from "./lib/histogram.ts";
import { exitWithParent } from "./lib/orphan.ts";
import { bounded, now, openWatcher, Tally, type FrameStats } from "./lib/watchers.ts";

export type { FrameStats };

export type ClientSpec =
  | {
      mode: "watch";
      url: string;
      count: number;
      /** Connections opened at once (kept under the listen backlog). */
      concurrency: number;
      /** After `go`: report `done` when every watcher has its result (false: stay idle). */
      expectResult: boolean;
      timeoutMs: number;
    }
  | {
      mode: "tasks";
      http: string;
      ws: string;
      tasks: number;
      watchersPerTask: number;
      agent: string;
      input: string;
      postConcurrency: number;
      timeoutMs: number;
    }
  | {
      mode: "cancel";
      http: string;
      ws: string;
      trials: number;
      watchers: number;
      agent: string;
      input: string;
      timeoutMs: number;
    };

export type ClientReport =
  | { type: "ready"; connected: number; failed: number; connect_ms: number; errors: string[] }
  | ({ type: "done" } & FrameStats)
  | { type: "tasks-done"; started_at: number; task_ids: string[]; post_failures: number; post_ms_max: number } & FrameStats
  | {
      type: "cancel-done";
      latency: SerializedHistogram;
      trial_max_ms: number[];
      not_cancelled: number;
      closed_early: number;
      cpu_ms: number;
      timed_out: boolean;
    }
  | { type: "clock"; now: number }
  | { type: "fatal"; message: string };

const report = (message: ClientReport) => process.send!(message);

// ---- IPC ----------------------------------------------------------------------------------

type Command = { type: "go" } | { type: "close" } | { type: "clock" };
const commands: Command[] = [];
let wake: (() => void) | undefined;
process.on("message", (message: Command) => {
  if (message.type === "clock") return report({ type: "clock", now: now() });
  if (message.type === "close") process.exit(0);
  commands.push(message);
  wake?.();
});
process.on("disconnect", () => process.exit(3));
exitWithParent();

async function waitFor(type: Command["type"]): Promise<void> {
  for (;;) {
    const index = commands.findIndex((command) => command.type === type);
    if (index >= 0) {
      commands.splice(index, 1);
      return;
    }
    await new Promise<void>((resolve) => (wake = resolve));
  }
}

// ---- modes --------------------------------------------------------------------------------

async function watch(spec: Extract<ClientSpec, { mode: "watch" }>) {
  const tally = new Tally(spec.count);
  const sockets: WebSocket[] = [];
  const errors = new Map<string, number>();
  let finished = false;
  let check = () => {};
  const started = performance.now();
  const results = await bounded(spec.count, spec.concurrency, async (index) => {
    const opened = await openWatcher(
      spec.url,
      (data) => {
        if (tally.frame(index, data)) check();
      },
      (code) => {
        tally.closed(index, code);
        check();
      },
    );
    sockets.push(opened.socket);
  });
  let failed = 0;
  for (const result of results) {
    if (result.status === "rejected") {
      failed++;
      const message = String((result.reason as Error)?.message ?? result.reason);
      errors.set(message, (errors.get(message) ?? 0) + 1);
    }
  }
  const connected = spec.count - failed;
  report({
    type: "ready",
    connected,
    failed,
    connect_ms: performance.now() - started,
    errors: [...errors].map(([message, count]) => `${count}× ${message}`).slice(0, 5),
  });
  await waitFor("go");
  tally.arm();
  if (!spec.expectResult) return; // idle until `close`
  const { promise, resolve } = Promise.withResolvers<boolean>();
  check = () => {
    if (!finished && tally.watchersDone + tally.closedEarly >= connected) resolve(false);
  };
  check();
  const timer = setTimeout(() => resolve(true), spec.timeoutMs);
  const timedOut = await promise;
  finished = true;
  clearTimeout(timer);
  report({ type: "done", ...tally.stats(spec.count, timedOut) });
}

async function createTask(http: string, agent: string, input: string): Promise<string> {
  const response = await fetch(`${http}/tasks`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ agent, input }),
  });
  const body = (await response.json()) as { id?: string; error?: { message: string } };
  if (response.status !== 201 || !body.id) throw new Error(`POST /tasks: ${response.status} ${JSON.stringify(body).slice(0, 200)}`);
  return body.id;
}

async function tasks(spec: Extract<ClientSpec, { mode: "tasks" }>) {
  const watchers = spec.tasks * spec.watchersPerTask;
  const tally = new Tally(watchers);
  report({ type: "ready", connected: 0, failed: 0, connect_ms: 0, errors: [] });
  await waitFor("go");
  tally.arm();
  const startedAt = now();
  const { promise, resolve } = Promise.withResolvers<boolean>();
  let settled = 0;
  const check = () => {
    if (settled + tally.watchersDone + tally.closedEarly >= watchers) resolve(false);
  };
  const taskIds: string[] = new Array(spec.tasks);
  let postFailures = 0;
  let postMsMax = 0;
  const timer = setTimeout(() => resolve(true), spec.timeoutMs);
  void bounded(spec.tasks, spec.postConcurrency, async (taskIndex) => {
    const posted = performance.now();
    let id: string;
    try {
      id = await createTask(spec.http, spec.agent, spec.input);
    } catch (error) {
      postFailures++;
      settled += spec.watchersPerTask; // these watchers will never exist
      check();
      throw error;
    }
    postMsMax = Math.max(postMsMax, performance.now() - posted);
    taskIds[taskIndex] = id;
    for (let offset = 0; offset < spec.watchersPerTask; offset++) {
      const index = taskIndex * spec.watchersPerTask + offset;
      openWatcher(
        `${spec.ws}/ws/tasks/${id}?deltas=0`,
        (data) => {
          if (tally.frame(index, data)) check();
        },
        (code) => {
          tally.closed(index, code);
          check();
        },
      ).catch(() => {
        settled++;
        check();
      });
    }
  });
  const timedOut = await promise;
  clearTimeout(timer);
  report({
    type: "tasks-done",
    started_at: startedAt,
    task_ids: taskIds.filter(Boolean),
    post_failures: postFailures,
    post_ms_max: postMsMax,
    ...tally.stats(watchers, timedOut),
  });
}

async function cancel(spec: Extract<ClientSpec, { mode: "cancel" }>) {
  report({ type: "ready", connected: 0, failed: 0, connect_ms: 0, errors: [] });
  await waitFor("go");
  const cpuStart = process.cpuUsage();
  const latency = new LatencyHistogram();
  const trialMax: number[] = [];
  let notCancelled = 0;
  let closedEarly = 0;
  const deadline = performance.now() + spec.timeoutMs;
  let timedOut = false;
  for (let trial = 0; trial < spec.trials; trial++) {
    if (performance.now() > deadline) {
      timedOut = true;
      break;
    }
    const id = await createTask(spec.http, spec.agent, spec.input);
    let sentAt = 0;
    let received = 0;
    let slowest = 0;
    const { promise: allReceived, resolve } = Promise.withResolvers<void>();
    const opened = await Promise.all(
      Array.from({ length: spec.watchers }, () =>
        openWatcher(
          `${spec.ws}/ws/tasks/${id}?deltas=0`,
          (data) => {
            if (data.charCodeAt(KIND_OFFSET) !== KIND_RESULT) return;
            const elapsed = performance.now() - sentAt;
            latency.record(elapsed);
            if (elapsed > slowest) slowest = elapsed;
            if (!data.includes('"status":"cancelled"')) notCancelled++;
            if (++received === spec.watchers) resolve();
          },
          () => {
            if (sentAt === 0 || received < spec.watchers) closedEarly++;
          },
        ),
      ),
    );
    // The model call must be in flight: the task is running and sleeping in its first step.
    if (!opened.every((watcher) => watcher.connected.includes('"status":"running"'))) {
      await new Promise((done) => setTimeout(done, 50));
    }
    await new Promise((done) => setTimeout(done, 20));
    sentAt = performance.now();
    opened[0]!.socket.send('{"type":"cancel"}');
    const finished = await Promise.race([
      allReceived.then(() => true),
      new Promise<boolean>((done) => setTimeout(() => done(false), 10_000)),
    ]);
    if (!finished) {
      timedOut = true;
      break;
    }
    trialMax.push(slowest);
    for (const watcher of opened) watcher.socket.close();
  }
  const cpu = process.cpuUsage(cpuStart);
  report({
    type: "cancel-done",
    latency: latency.serialize(),
    trial_max_ms: trialMax,
    not_cancelled: notCancelled,
    closed_early: closedEarly,
    cpu_ms: (cpu.user + cpu.system) / 1000,
    timed_out: timedOut,
  });
}

const spec = JSON.parse(process.argv[2] ?? "{}") as ClientSpec;
const run = spec.mode === "watch" ? watch(spec) : spec.mode === "tasks" ? tasks(spec) : cancel(spec);
run.catch((error) => {
  report({ type: "fatal", message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  setTimeout(() => process.exit(1), 100);
});
