/**
 * The telemetry seam: typed hooks the server's parts call as things happen (a task ends, a model
 * call returns, a frame is published, a watcher joins). Metrics (metrics.ts) and traces
 * (tracing.ts) implement them; `noTelemetry` does nothing. It is passed down as a dependency
 * (serve.ts builds it), never a global.
 *
 * Cost: the hot hooks (`framePublished`, `storeWrite`) are called per frame and per store batch —
 * tens of thousands of times a second — so an implementation must be O(1) and allocate nothing on
 * them. A hook must never throw and never block: telemetry cannot fail a task.
 */
import type { StopReason, TaskStatus } from "../protocol/task.ts";
import type { ResumeReason } from "../protocol/events.ts";

/** Where a watcher is connected. */
export type Transport = "websocket" | "sse";

/** A run of a task begins on this node (first start, a resume after a restart or a takeover, or after people decided). */
export interface RunStart {
  taskId: string;
  agent: string;
  /** Why this run resumes an earlier one; absent for a first run. */
  resume?: ResumeReason;
  /** The run's fencing token (cluster mode). */
  attempt?: number;
}

/** How a run ended: the task ended (`finished`), waits for people (`waiting`), or was left to another run (`released`). */
export type RunEndKind = "finished" | "waiting" | "released";

/** A task reached its terminal state (its result was stored) on this node. */
export interface TaskEnd {
  taskId: string;
  agent: string;
  status: Extract<TaskStatus, "completed" | "failed" | "cancelled" | "timed_out">;
  stopReason: StopReason | null;
  /** The task's error code when it failed or timed out. */
  errorCode?: string;
  /** From its first start to its end, ms; null when it never started (cancelled while queued). */
  durationMs: number | null;
  inputTokens: number;
  outputTokens: number;
}

/** One model call (one ReAct step) of a task. */
export interface ModelCall {
  taskId: string;
  agent: string;
  /** `provider/model`, e.g. `openai/gpt-4.1-mini`. */
  model: string;
  /** Epoch ms (sub-ms precision) when the call began. */
  startedAt: number;
  durationMs: number;
  inputTokens: number;
  outputTokens: number;
  /** Set when the call failed: the task error code (`rate_limited`, `timeout`, …), or `aborted` for a cancel. */
  error?: string;
}

/** One tool call of a task. */
export interface ToolCall {
  taskId: string;
  agent: string;
  tool: string;
  /** False when the model named a tool that does not exist (its name is then not a metric label). */
  known: boolean;
  callId: string;
  startedAt: number;
  durationMs: number;
  /** Set when the call failed: the tool error code (`timeout`, `invalid_arguments`, …), or `aborted` for a cancel. */
  error?: string;
}

export interface Telemetry {
  /** A task was submitted to this node's runner (queued). */
  taskSubmitted(): void;
  runStarted(run: RunStart): void;
  /** Every run that `runStarted` began ends here, once (after `taskFinished` when the task ended). */
  runEnded(taskId: string, kind: RunEndKind): void;
  taskFinished(end: TaskEnd): void;
  modelCall(call: ModelCall): void;
  toolCall(call: ToolCall): void;
  /**
   * A store write of the event log: `append` (a batch of `events`) or `finish` (the result with the
   * task's end, and the run's last `events` before it, stored with it).
   */
  storeWrite(operation: "append" | "finish", durationMs: number, events: number, failed: boolean): void;
  /** A frame went out to this node's watchers: `durable` (stored, numbered) or `delta` (live-only). */
  framePublished(kind: "durable" | "delta"): void;
  watcherOpened(transport: Transport): void;
  watcherClosed(transport: Transport): void;
  /** A watcher that did not read was cut off (WebSocket 4008; the event stream ended). */
  slowClientClosed(transport: Transport): void;
  /** Sends what is buffered (traces) and stops; at most `timeoutMs`. */
  close(timeoutMs?: number): Promise<void>;
}

/** A hook that does nothing; a sink uses it for the hooks it ignores (`combineTelemetry` then skips them). */
export const ignore = (): void => {};
const nothing = ignore;

/** Telemetry that does nothing (the default of every part that takes one). */
export const noTelemetry: Telemetry = Object.freeze({
  taskSubmitted: nothing,
  runStarted: nothing,
  runEnded: nothing,
  taskFinished: nothing,
  modelCall: nothing,
  toolCall: nothing,
  storeWrite: nothing,
  framePublished: nothing,
  watcherOpened: nothing,
  watcherClosed: nothing,
  slowClientClosed: nothing,
  close: async () => {},
});

/** Calls every sink's hooks, in order. With one sink, that sink itself. */
export function combineTelemetry(...sinks: Telemetry[]): Telemetry {
  const live = sinks.filter((sink) => sink !== noTelemetry);
  if (live.length === 0) return noTelemetry;
  if (live.length === 1) return live[0]!;
  const [a, b, ...rest] = live as [Telemetry, Telemetry, ...Telemetry[]];
  if (rest.length > 0) return combineTelemetry(combineTelemetry(a, b), ...rest);
  return {
    taskSubmitted: () => (a.taskSubmitted(), b.taskSubmitted()),
    runStarted: (run) => (a.runStarted(run), b.runStarted(run)),
    runEnded: (taskId, kind) => (a.runEnded(taskId, kind), b.runEnded(taskId, kind)),
    taskFinished: (end) => (a.taskFinished(end), b.taskFinished(end)),
    modelCall: (call) => (a.modelCall(call), b.modelCall(call)),
    toolCall: (call) => (a.toolCall(call), b.toolCall(call)),
    // The hot hooks: a sink that ignores one costs nothing.
    storeWrite:
      b.storeWrite === ignore
        ? a.storeWrite
        : a.storeWrite === ignore
          ? b.storeWrite
          : (operation, durationMs, events, failed) => (a.storeWrite(operation, durationMs, events, failed), b.storeWrite(operation, durationMs, events, failed)),
    framePublished: b.framePublished === ignore ? a.framePublished : a.framePublished === ignore ? b.framePublished : (kind) => (a.framePublished(kind), b.framePublished(kind)),
    watcherOpened: (transport) => (a.watcherOpened(transport), b.watcherOpened(transport)),
    watcherClosed: (transport) => (a.watcherClosed(transport), b.watcherClosed(transport)),
    slowClientClosed: (transport) => (a.slowClientClosed(transport), b.slowClientClosed(transport)),
    close: async (timeoutMs) => void (await Promise.all([a.close(timeoutMs), b.close(timeoutMs)])),
  };
}

/** `provider/model` → its two parts (`demo` → `demo`, `demo`). */
export function splitModelId(id: string): { provider: string; model: string } {
  const slash = id.indexOf("/");
  return slash < 0 ? { provider: id, model: id } : { provider: id.slice(0, slash), model: id.slice(slash + 1) };
}

/** Epoch ms with sub-ms precision (for span times). */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Whether the environment asks for traces (`OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, and neither `OTEL_SDK_DISABLED=true` nor
 * `OTEL_TRACES_EXPORTER=none`). Only then is tracing.ts loaded.
 */
export function tracingWanted(env: Record<string, string | undefined>): boolean {
  if (!env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() && !env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim()) return false;
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return false;
  return env.OTEL_TRACES_EXPORTER?.trim().toLowerCase() !== "none";
}
