/**
 * The client side of the cluster scenarios (bench/scenarios/cluster.ts): one process, one clock for
 * every send and arrival, driven over IPC like bench/client.ts. argv[2] is the spec (JSON).
 *
 *   claim     `trials` times, one at a time: POST a 1-step demo/bench task to the next target node,
 *             watch it there until its result; per task: POST sent → 201, and POST sent / 201 →
 *             the first tool_call's `t` (the model call of the node that claimed it: its clock).
 *   cross     one paced task running on the `run` node, `watchers` watchers on it and as many on
 *             the `other` node (which reads the task's frames from the log): per durable frame the
 *             arrival at the other node minus at the running node (first watcher of each), and
 *             yield → arrival of tool_call frames on each node. Every watcher must get every frame
 *             exactly once, in order.
 *   cancel    `trials` times: a task sleeping in its model call on the `run` node, one watcher on
 *             each node; POST /tasks/:id/cancel to the `other` node; send → result{cancelled} at
 *             each watcher, and → the POST's response.
 *   takeover  POST a paced task; report `created`; on `watch` (the URL of the node that will
 *             survive) open a watcher there and report `watching` after a few live frames; then
 *             record the arrival of every frame until the result (the orchestrator kills the task's
 *             node meanwhile); report every frame's seq, arrival and whether it is the `resumed` event.
 */
import { KIND_CONNECTED, KIND_OFFSET, KIND_RESULT, KIND_STEP, stampOf } from "./lib/frames.ts";
import { LatencyHistogram, type SerializedHistogram } from "./lib/histogram.ts";
import { exitWithParent } from "./lib/orphan.ts";
import { now } from "./lib/watchers.ts";

export type ClusterSpec =
  | { mode: "claim"; targets: { http: string; ws: string }[]; trials: number; timeoutMs: number }
  | { mode: "cross"; post: string; run: string; other: string; watchers: number; steps: number; delayMs: number; timeoutMs: number }
  | { mode: "cancel"; post: string; run: string; other: string; cancelAt: string; trials: number; timeoutMs: number }
  | { mode: "takeover"; post: string; steps: number; delayMs: number; timeoutMs: number };

export type ClusterReport =
  | { type: "ready" }
  | { type: "clock"; now: number }
  | { type: "fatal"; message: string }
  | { type: "claim-done"; post_ms: number[]; sent_to_first_ms: number[]; created_to_first_ms: number[]; failures: string[] }
  | {
      type: "cross-done";
      frames: number;
      compared: number;
      added: SerializedHistogram;
      run_latency: SerializedHistogram;
      other_latency: SerializedHistogram;
      complete: boolean;
      problems: string[];
    }
  | { type: "cancel-done"; run_ms: number[]; other_ms: number[]; post_ms: number[]; not_cancelled: number; failures: string[] }
  | { type: "created"; task_id: string }
  | { type: "watching"; last_seq: number }
  | { type: "takeover-done"; frames: { seq: number; at: number; resumed: boolean }[]; gaps: number; duplicates: number; results: number; timed_out: boolean };

type Command = { type: "go" } | { type: "close" } | { type: "clock" } | { type: "watch"; url: string };

const report = (message: ClusterReport) => process.send!(message);
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

async function waitFor<T extends Command["type"]>(type: T): Promise<Extract<Command, { type: T }>> {
  for (;;) {
    const index = commands.findIndex((command) => command.type === type);
    if (index >= 0) return commands.splice(index, 1)[0] as Extract<Command, { type: T }>;
    await new Promise<void>((resolve) => (wake = resolve));
  }
}

async function createTask(http: string, agent: string, input: unknown): Promise<string> {
  const response = await fetch(`${http}/tasks`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ agent, input: JSON.stringify(input) }),
  });
  const body = (await response.json()) as { id?: string };
  if (response.status !== 201 || !body.id) throw new Error(`POST /tasks: ${response.status} ${JSON.stringify(body).slice(0, 200)}`);
  return body.id;
}

const seqOf = (frame: string) => {
  const at = frame.indexOf('"seq":');
  return at === -1 ? -1 : Number.parseInt(frame.substring(at + 6, at + 20), 10);
};

/** A watcher that records every durable frame (seq, arrival) and resolves `done` on the result. */
class Recorder {
  readonly socket: WebSocket;
  readonly opened: Promise<number>;
  readonly done: Promise<void>;
  readonly frames: { seq: number; at: number; frame: string }[] = [];
  resultAt = 0;
  result = "";
  private resolveDone!: () => void;

  constructor(url: string, private readonly keepText = false) {
    this.socket = new WebSocket(url);
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.opened = new Promise((resolve, reject) => {
      let open = false;
      this.socket.onmessage = (event) => {
        const at = now();
        const data = event.data as string;
        const kind = data.charCodeAt(KIND_OFFSET);
        if (!open) {
          if (kind !== KIND_CONNECTED) return reject(new Error(`first frame was not 'connected': ${data.slice(0, 200)}`));
          open = true;
          const lastSeq = /"last_seq":(\d+)/.exec(data)?.[1];
          return resolve(Number(lastSeq ?? 0));
        }
        if (kind !== KIND_STEP && kind !== KIND_RESULT) return;
        this.frames.push({ seq: seqOf(data), at, frame: this.keepText || kind === KIND_RESULT || data.includes('"t":') || data.includes('"resumed"') ? data : "" });
        if (kind === KIND_RESULT) {
          this.resultAt = at;
          this.result = data;
          this.resolveDone();
        }
      };
      this.socket.onclose = (event) => {
        if (!open) reject(new Error(`closed before 'connected' (${event.code} ${event.reason})`));
        this.resolveDone();
      };
      this.socket.onerror = () => {
        if (!open) reject(new Error(`connection error: ${url}`));
      };
    });
  }

  close() {
    try {
      this.socket.close();
    } catch {
      // closed
    }
  }
}

function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms))),
  ]);
}

async function claim(spec: Extract<ClusterSpec, { mode: "claim" }>) {
  const post: number[] = [];
  const sentToFirst: number[] = [];
  const createdToFirst: number[] = [];
  const failures: string[] = [];
  report({ type: "ready" });
  await waitFor("go");
  for (let trial = 0; trial < spec.trials; trial++) {
    const target = spec.targets[trial % spec.targets.length]!;
    try {
      const sent = now();
      const id = await createTask(target.http, "bench", { steps: 1 });
      const created = now();
      const watcher = new Recorder(`${target.ws}/ws/tasks/${id}?deltas=0`);
      await deadline(watcher.opened, spec.timeoutMs, "connected");
      await deadline(watcher.done, spec.timeoutMs, "result");
      watcher.close();
      const stamp = watcher.frames.map((frame) => stampOf(frame.frame)).find((value) => value === value);
      if (stamp === undefined) throw new Error(`task ${id}: no tool_call frame with a stamp`);
      post.push(created - sent);
      sentToFirst.push(stamp - sent);
      createdToFirst.push(stamp - created);
    } catch (error) {
      failures.push(error instanceof Error ? error.message : String(error));
      if (failures.length > 5) break;
    }
  }
  report({ type: "claim-done", post_ms: post, sent_to_first_ms: sentToFirst, created_to_first_ms: createdToFirst, failures });
}

async function cross(spec: Extract<ClusterSpec, { mode: "cross" }>) {
  report({ type: "ready" });
  await waitFor("go");
  const id = await createTask(spec.post, "bench", { steps: spec.steps, delay_ms: spec.delayMs });
  const runWatchers = Array.from({ length: spec.watchers }, () => new Recorder(`${spec.run}/ws/tasks/${id}?deltas=0`));
  const otherWatchers = Array.from({ length: spec.watchers }, () => new Recorder(`${spec.other}/ws/tasks/${id}?deltas=0`));
  const connected = await deadline(Promise.all([...runWatchers, ...otherWatchers].map((watcher) => watcher.opened)), 10_000, "connected");
  // Frames stored before the last watcher joined were replayed to some: compare only live ones.
  const liveFrom = Math.max(...connected) + 1;
  await deadline(Promise.all([...runWatchers, ...otherWatchers].map((watcher) => watcher.done)), spec.timeoutMs, "result at every watcher");
  const expected = spec.steps * 3 + 2;
  const problems: string[] = [];
  const firstArrival = (watchers: Recorder[]) => {
    const first = new Float64Array(expected + 1).fill(Number.POSITIVE_INFINITY);
    for (const watcher of watchers) {
      let previous = 0;
      for (const frame of watcher.frames) {
        if (frame.seq !== previous + 1 && !(previous === 0 && frame.seq > 0)) problems.push(`seq ${frame.seq} after ${previous}`);
        previous = frame.seq;
        if (frame.seq <= expected && frame.at < first[frame.seq]!) first[frame.seq] = frame.at;
      }
      if (previous !== expected) problems.push(`a watcher ended at seq ${previous} of ${expected}`);
    }
    return first;
  };
  const runFirst = firstArrival(runWatchers);
  const otherFirst = firstArrival(otherWatchers);
  const added = new LatencyHistogram();
  let compared = 0;
  for (let seq = liveFrom; seq <= expected; seq++) {
    if (Number.isFinite(runFirst[seq]!) && Number.isFinite(otherFirst[seq]!)) {
      added.record(otherFirst[seq]! - runFirst[seq]!);
      compared++;
    }
  }
  const latency = (watchers: Recorder[]) => {
    const histogram = new LatencyHistogram();
    for (const watcher of watchers) {
      for (const frame of watcher.frames) {
        if (frame.seq < liveFrom || !frame.frame) continue;
        const stamp = stampOf(frame.frame);
        if (stamp === stamp) histogram.record(frame.at - stamp);
      }
    }
    return histogram.serialize();
  };
  for (const watcher of [...runWatchers, ...otherWatchers]) watcher.close();
  report({
    type: "cross-done",
    frames: expected,
    compared,
    added: added.serialize(),
    run_latency: latency(runWatchers),
    other_latency: latency(otherWatchers),
    complete: problems.length === 0,
    problems: problems.slice(0, 10),
  });
}

async function waitRunning(http: string, id: string, timeoutMs: number) {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const response = await fetch(`${http}/tasks/${id}`);
    const task = (await response.json()) as { status: string };
    if (task.status === "running") return;
    if (performance.now() > end) throw new Error(`task ${id} still ${task.status}`);
    await Bun.sleep(5);
  }
}

async function cancel(spec: Extract<ClusterSpec, { mode: "cancel" }>) {
  const runMs: number[] = [];
  const otherMs: number[] = [];
  const postMs: number[] = [];
  const failures: string[] = [];
  let notCancelled = 0;
  report({ type: "ready" });
  await waitFor("go");
  for (let trial = 0; trial < spec.trials; trial++) {
    try {
      const id = await createTask(spec.post, "bench", { steps: 1, delay_ms: 600_000 });
      await waitRunning(spec.post, id, 10_000);
      const onRun = new Recorder(`${spec.run}/ws/tasks/${id}?deltas=0`);
      const onOther = new Recorder(`${spec.other}/ws/tasks/${id}?deltas=0`);
      await deadline(Promise.all([onRun.opened, onOther.opened]), 10_000, "connected");
      await Bun.sleep(20); // the task sleeps in its model call; the follower on the other node is set up
      const sent = now();
      const response = fetch(`${spec.cancelAt}/tasks/${id}/cancel`, { method: "POST" }).then(async (reply) => {
        await reply.arrayBuffer();
        return now();
      });
      await deadline(Promise.all([onRun.done, onOther.done]), spec.timeoutMs, "result at both watchers");
      const answered = await deadline(response, spec.timeoutMs, "the cancel's response");
      for (const watcher of [onRun, onOther]) if (!watcher.result.includes('"cancelled"')) notCancelled++;
      runMs.push(onRun.resultAt - sent);
      otherMs.push(onOther.resultAt - sent);
      postMs.push(answered - sent);
      onRun.close();
      onOther.close();
    } catch (error) {
      failures.push(error instanceof Error ? error.message : String(error));
      if (failures.length > 3) break;
    }
  }
  report({ type: "cancel-done", run_ms: runMs, other_ms: otherMs, post_ms: postMs, not_cancelled: notCancelled, failures });
}

async function takeover(spec: Extract<ClusterSpec, { mode: "takeover" }>) {
  report({ type: "ready" });
  await waitFor("go");
  const id = await createTask(spec.post, "bench", { steps: spec.steps, delay_ms: spec.delayMs });
  report({ type: "created", task_id: id });
  const { url } = await waitFor("watch");
  const watcher = new Recorder(`${url}/ws/tasks/${id}?deltas=0`);
  await deadline(watcher.opened, 10_000, "connected");
  const liveFrames = watcher.frames.length + 6;
  while (watcher.frames.length < liveFrames) await Bun.sleep(2);
  report({ type: "watching", last_seq: watcher.frames.at(-1)!.seq });
  let timedOut = false;
  await deadline(watcher.done, spec.timeoutMs, "result").catch(() => (timedOut = true));
  watcher.close();
  let gaps = 0;
  let duplicates = 0;
  let previous = watcher.frames[0]?.seq ? watcher.frames[0].seq - 1 : 0;
  for (const frame of watcher.frames) {
    if (frame.seq <= previous) duplicates++;
    else if (frame.seq !== previous + 1) gaps++;
    previous = Math.max(previous, frame.seq);
  }
  report({
    type: "takeover-done",
    frames: watcher.frames.map((frame) => ({ seq: frame.seq, at: frame.at, resumed: frame.frame.includes('"event_type":"resumed"') })),
    gaps,
    duplicates,
    results: watcher.frames.filter((frame) => frame.frame.startsWith('{"type":"result"')).length,
    timed_out: timedOut,
  });
}

const spec = JSON.parse(process.argv[2]!) as ClusterSpec;
const modes = { claim, cross, cancel, takeover } as Record<ClusterSpec["mode"], (spec: never) => Promise<void>>;
modes[spec.mode](spec as never).catch((error) => {
  report({ type: "fatal", message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  setTimeout(() => process.exit(1), 100);
});
