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
 *   storm   open `count` watchers of a live (paced) task and follow it; at the first `go` drop them
 *           all and reconnect every one at once with `after=<last seq it had>`; report when all are
 *           re-subscribed and caught up; at the second `go` wait for the result at every watcher.
 *           Every frame's seq is checked: no gap and no duplicate, across the reconnect too.
 */
import { KIND_CONNECTED, KIND_OFFSET, KIND_RESULT, KIND_STEP } from "./lib/frames.ts";
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
      mode: "storm";
      /** The watch URL with its query string, without `after`. */
      url: string;
      count: number;
      concurrency: number;
      /** Reconnections in flight at once during the storm. */
      stormConcurrency: number;
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
  | {
      type: "storm-done";
      watchers: number;
      /** Absolute time (ms) the sockets were dropped; the rest are ms after it. */
      dropped_at: number;
      resubscribed_all_ms: number;
      resubscribed_p50_ms: number;
      caught_up_all_ms: number;
      caught_up_p50_ms: number;
      /** Frames replayed to reconnecting watchers (seq ≤ the last_seq in their `connected`). */
      replayed_frames: number;
      failed: number;
      retries: number;
      errors: string[];
      gaps: number;
      duplicates: number;
      cpu_ms: number;
      timed_out: boolean;
    }
  | { type: "storm-end"; watchers_done: number; gaps: number; duplicates: number; closed_early: number; timed_out: boolean }
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

/** The seq of a step/result frame (`"seq":N` is the second key), or -1. */
function seqOf(data: string): number {
  const at = data.indexOf('"seq":');
  if (at < 0 || at > 40) return -1;
  let value = 0;
  for (let index = at + 6; ; index++) {
    const digit = data.charCodeAt(index) - 48;
    if (digit < 0 || digit > 9) return value;
    value = value * 10 + digit;
  }
}

async function storm(spec: Extract<ClientSpec, { mode: "storm" }>) {
  const count = spec.count;
  const last = new Int32Array(count); // the last seq each watcher has
  const target = new Int32Array(count).fill(-1); // the server's last_seq when it (re)connected
  const resubscribedAt = new Float64Array(count);
  const caughtUpAt = new Float64Array(count);
  const resulted = new Uint8Array(count);
  const sockets: (WebSocket | undefined)[] = new Array(count);
  let phase: "follow" | "storm" | "end" = "follow";
  let gaps = 0;
  let duplicates = 0;
  let replayed = 0;
  let caughtUp = 0;
  let results = 0;
  let closedEarly = 0;
  let check = () => {};
  const sep = spec.url.includes("?") ? "&" : "?";

  /** Opens watcher `index` with after=<its last seq>; resolves on its `connected` frame. */
  function open(index: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(`${spec.url}${sep}after=${last[index]}`);
      let connected = false;
      socket.onmessage = (event) => {
        const data = event.data as string;
        const kind = data.charCodeAt(KIND_OFFSET);
        if (!connected) {
          if (kind !== KIND_CONNECTED) return reject(new Error(`first frame was not 'connected': ${data.slice(0, 120)}`));
          connected = true;
          const at = data.indexOf('"last_seq":');
          target[index] = at < 0 ? 0 : Number.parseInt(data.slice(at + 11), 10);
          if (phase === "storm") {
            resubscribedAt[index] = now();
            if (last[index]! >= target[index]!) {
              caughtUpAt[index] = resubscribedAt[index]!;
              caughtUp++;
              check();
            }
          }
          sockets[index] = socket;
          return resolve();
        }
        if (kind !== KIND_STEP && kind !== KIND_RESULT) return;
        const seq = seqOf(data);
        if (seq <= last[index]!) duplicates++;
        else if (seq !== last[index]! + 1) gaps++;
        if (seq > last[index]!) last[index] = seq;
        if (phase === "storm" && caughtUpAt[index] === 0) {
          replayed++;
          if (last[index]! >= target[index]!) {
            caughtUpAt[index] = now();
            caughtUp++;
            check();
          }
        }
        if (kind === KIND_RESULT && resulted[index] === 0) {
          resulted[index] = 1;
          results++;
          check();
        }
      };
      socket.onclose = (event) => {
        if (!connected) return reject(new Error(`closed before 'connected' (${event.code} ${event.reason})`));
        if (sockets[index] === socket && resulted[index] === 0) {
          closedEarly++;
          check();
        }
      };
      socket.onerror = () => {
        if (!connected) reject(new Error("connection error"));
      };
    });
  }

  const errors = new Map<string, number>();
  let retries = 0;
  async function openWithRetry(index: number) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await open(index);
      } catch (error) {
        const message = String((error as Error)?.message ?? error);
        errors.set(message, (errors.get(message) ?? 0) + 1);
        if (attempt >= 5) throw error;
        retries++;
        await new Promise((resolve) => setTimeout(resolve, 50 * (attempt + 1)));
      }
    }
  }

  const started = performance.now();
  const initial = await bounded(count, spec.concurrency, openWithRetry);
  const initialFailed = initial.filter((result) => result.status === "rejected").length;
  report({ type: "ready", connected: count - initialFailed, failed: initialFailed, connect_ms: performance.now() - started, errors: [...errors.keys()].slice(0, 5) });
  if (initialFailed > 0) return;
  await waitFor("go");

  // The storm: every connection drops at once, and every watcher comes back with after=<last seq>.
  const cpuStart = process.cpuUsage();
  phase = "storm";
  errors.clear();
  retries = 0;
  const droppedAt = now();
  for (let index = 0; index < count; index++) {
    const socket = sockets[index]!;
    sockets[index] = undefined; // its close is expected
    socket.onmessage = null; // a dropped connection delivers nothing more
    socket.close();
  }
  const { promise: allCaughtUp, resolve: stormDone } = Promise.withResolvers<boolean>();
  let failed = 0;
  check = () => {
    if (caughtUp + failed >= count) stormDone(false);
  };
  const timer = setTimeout(() => stormDone(true), spec.timeoutMs);
  void bounded(count, spec.stormConcurrency, async (index) => {
    try {
      await openWithRetry(index);
    } catch (error) {
      failed++;
      check();
      throw error;
    }
  });
  const stormTimedOut = await allCaughtUp;
  clearTimeout(timer);
  const cpu = process.cpuUsage(cpuStart);
  const sortedMs = (values: Float64Array) =>
    [...values].filter((value) => value > 0).map((value) => value - droppedAt).sort((a, b) => a - b);
  const resubscribed = sortedMs(resubscribedAt);
  const caught = sortedMs(caughtUpAt);
  const p50 = (values: number[]) => values[Math.floor(values.length / 2)] ?? Number.NaN;
  report({
    type: "storm-done",
    watchers: count,
    dropped_at: droppedAt,
    resubscribed_all_ms: resubscribed.at(-1) ?? Number.NaN,
    resubscribed_p50_ms: p50(resubscribed),
    caught_up_all_ms: caught.at(-1) ?? Number.NaN,
    caught_up_p50_ms: p50(caught),
    replayed_frames: replayed,
    failed,
    retries,
    errors: [...errors].map(([message, times]) => `${times}× ${message}`).slice(0, 5),
    gaps,
    duplicates,
    cpu_ms: (cpu.user + cpu.system) / 1000,
    timed_out: stormTimedOut,
  });

  // The end: the task ends; every watcher must get its result, still gapless.
  await waitFor("go");
  phase = "end";
  const { promise: allEnded, resolve: ended } = Promise.withResolvers<boolean>();
  check = () => {
    if (results + closedEarly + failed >= count) ended(false);
  };
  check();
  const endTimer = setTimeout(() => ended(true), spec.timeoutMs);
  const endTimedOut = await allEnded;
  clearTimeout(endTimer);
  report({ type: "storm-end", watchers_done: results, gaps, duplicates, closed_early: closedEarly, timed_out: endTimedOut });
}

const spec = JSON.parse(process.argv[2] ?? "{}") as ClientSpec;
const run =
  spec.mode === "watch" ? watch(spec) : spec.mode === "tasks" ? tasks(spec) : spec.mode === "storm" ? storm(spec) : cancel(spec);
run.catch((error) => {
  report({ type: "fatal", message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  setTimeout(() => process.exit(1), 100);
});
