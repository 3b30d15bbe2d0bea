/**
 * How a run's end becomes a task outcome and a `result` frame: one mapping, used by the runner for
 * every way a task can end (answer, stop condition, cancel, deadline, error, interruption). A
 * failure becomes one `TaskError` object, stored on the task and sent as is in the `result` frame.
 */
import type { ResultData } from "../protocol/frames.ts";
import type { TaskOutcome } from "../store/store.ts";
import { taskError, toTaskError } from "./task-error.ts";

export { AgentNotConfiguredError } from "./task-error.ts";

/**
 * Why an abort happened; the runner passes one of these to `AbortController.abort`. `lost` (another
 * run took the task over: this one may write nothing more) and `handover` (this server stops and
 * leaves the task to be resumed) end a run without ending the task: no result is written.
 */
export class TaskAbort extends Error {
  constructor(readonly kind: "cancelled" | "deadline" | "shutdown" | "lost" | "handover", message: string) {
    super(message);
    this.name = "TaskAbort";
  }
}

/** What a run used so far; kept by the runner from the engine's `usage` events. */
export interface RunTotals {
  steps: number;
  inputTokens: number;
  outputTokens: number;
  /** USD, when the agent's model has prices; else null. */
  costUsd: number | null;
}

export type RunEnd =
  | { kind: "answer"; output: string; outputJson?: unknown; totals: RunTotals }
  /** Calls wait for people: the task is parked (`waiting`), not ended. `toOutcome` never sees it. */
  | { kind: "waiting"; totals: RunTotals }
  | { kind: "invalid_output"; message: string; totals: RunTotals }
  /** Nobody decided in time and the agent's `on_approval_timeout` is `fail`. */
  | { kind: "wait_timed_out"; message: string; totals: RunTotals }
  | { kind: "stopped"; reason: "max_steps" | "token_budget"; message: string; totals: RunTotals }
  | { kind: "aborted"; abort: TaskAbort; totals: RunTotals }
  | { kind: "error"; error: unknown; totals: RunTotals }
  | { kind: "interrupted"; totals: RunTotals; message?: string };

export function toOutcome(end: Exclude<RunEnd, { kind: "waiting" }>, finishedAt: Date): TaskOutcome {
  const { steps, inputTokens, outputTokens, costUsd } = end.totals;
  const base = { totalSteps: steps, inputTokens, outputTokens, costUsd, finishedAt };
  switch (end.kind) {
    case "answer":
      return { ...base, status: "completed", stopReason: "final_answer", output: end.output, outputJson: end.outputJson ?? null, error: null };
    case "wait_timed_out":
      return { ...base, status: "failed", stopReason: "error", output: null, error: taskError("approval_timeout", end.message) };
    case "invalid_output":
      return {
        ...base,
        status: "failed",
        stopReason: "error",
        output: null,
        error: taskError("invalid_output", end.message),
      };
    case "stopped":
      return { ...base, status: "failed", stopReason: end.reason, output: null, error: taskError(end.reason, `Stopped: ${end.message}`) };
    case "aborted":
      if (end.abort.kind === "cancelled") {
        return { ...base, status: "cancelled", stopReason: "cancelled", output: null, error: null };
      }
      if (end.abort.kind === "deadline") {
        return { ...base, status: "timed_out", stopReason: "deadline", output: null, error: taskError("deadline", end.abort.message) };
      }
      return { ...base, status: "failed", stopReason: "interrupted", output: null, error: taskError("interrupted", end.abort.message) };
    case "error":
      return { ...base, status: "failed", stopReason: "error", output: null, error: toTaskError(end.error) };
    case "interrupted":
      return {
        ...base,
        status: "failed",
        stopReason: "interrupted",
        output: null,
        error: taskError("interrupted", end.message ?? "Interrupted: the server stopped while this task was running"),
      };
  }
}

export function toResultData(taskId: string, outcome: TaskOutcome): ResultData {
  const data: ResultData = {
    status: outcome.status,
    task_id: taskId,
    stop_reason: outcome.stopReason,
    total_steps: outcome.totalSteps,
    total_tokens: outcome.inputTokens + outcome.outputTokens,
    usage: { input_tokens: outcome.inputTokens, output_tokens: outcome.outputTokens },
  };
  if (outcome.costUsd !== null) data.cost_usd = outcome.costUsd;
  if (outcome.output !== null) data.output = outcome.output;
  if (outcome.outputJson !== undefined && outcome.outputJson !== null) data.output_json = outcome.outputJson;
  if (outcome.error !== null) data.error = outcome.error;
  return data;
}
