/**
 * Tasks as the API shows them: status, stop reason and the public record.
 * The schema is the single source of truth; types are inferred from it.
 */
import { z } from "zod";
import { TASK_STATUSES, TERMINAL_STATUSES, UNFINISHED_STATUSES } from "./statuses.ts";

/**
 * Lifecycle: `queued → running → completed | failed | cancelled | timed_out`, and `running → waiting
 * → queued` while a person decides (an approval, an answer to `ask_user`): nothing of the task is
 * held in memory while it waits. See src/tasks/state.ts.
 */
export const TaskStatus = z.enum(TASK_STATUSES);
export type TaskStatus = z.infer<typeof TaskStatus>;

export { TERMINAL_STATUSES, UNFINISHED_STATUSES };

export function isTerminal(status: TaskStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

/** Why a task stopped. `final_answer` is the normal end. */
export const StopReason = z.enum(["final_answer", "max_steps", "token_budget", "deadline", "cancelled", "error", "interrupted"]);
export type StopReason = z.infer<typeof StopReason>;

/**
 * Why a task failed: a closed set of codes, stable across releases. `stop_reason` says how the task
 * ended; `code` says why it failed (for `stop_reason: "error"`, which failure). The mapping from
 * what was thrown lives in `src/tasks/task-error.ts`.
 */
export const TaskErrorCode = z.enum([
  // The model provider, after retries:
  "rate_limited", // HTTP 429
  "authentication", // HTTP 401 / 403: bad or missing key, no access to the model
  "bad_request", // another HTTP 4xx: unknown model, context too long, invalid request…
  "provider_unavailable", // HTTP 5xx (or an overloaded error reported inside the stream)
  "timeout", // the per-request timeout fired (or HTTP 408)
  "network_error", // no HTTP response: connection refused or reset, DNS…
  "stream_interrupted", // the stream was cut, or ended without the provider's completion signal
  "stream_error", // the provider reported an error inside the stream
  "request_failed", // anything else the provider's SDK rejected with
  // The task itself:
  "max_steps",
  "token_budget",
  "deadline",
  "interrupted", // the server stopped while the task ran
  "approval_timeout", // nobody decided an approval (or answered a question) in time, and the agent says fail
  "invalid_output", // the final answer was empty, cut at the output token limit, or did not match the agent's output_schema, after every retry
  "too_many_tool_calls", // one model step asked for more tool calls than the agent's max_tool_calls_per_step
  "agent_not_configured", // the task's agent is not in this server's configuration
  "internal",
]);
export type TaskErrorCode = z.infer<typeof TaskErrorCode>;

/**
 * A failure, in one shape everywhere: `task.error`, the `result` frame's `data.error`, `resync`.
 * `retryable`: whether submitting the same task again may succeed.
 */
export const TaskError = z.object({ code: TaskErrorCode, message: z.string(), retryable: z.boolean() });
export type TaskError = z.infer<typeof TaskError>;

export const TaskMetadata = z.record(z.string(), z.unknown());
export type TaskMetadata = z.infer<typeof TaskMetadata>;

/** A task as returned by the REST API (snake_case on the wire, like the seed). */
export const Task = z.object({
  id: z.string(),
  /** The name of the key that created it (`anonymous` in open mode). */
  owner: z.string(),
  agent: z.string(),
  input: z.string(),
  metadata: TaskMetadata,
  status: TaskStatus,
  stop_reason: StopReason.nullable(),
  output: z.string().nullable(),
  /** Why it failed or timed out; null while it runs, and when it completed or was cancelled. */
  error: TaskError.nullable(),
  total_steps: z.number().int(),
  total_tokens: z.number().int(),
  input_tokens: z.number().int(),
  output_tokens: z.number().int(),
  /** Cost in USD when the agent's model has prices configured, else null. */
  cost_usd: z.number().nullable(),
  /** The conversation this task belongs to (its history is the thread's earlier tasks), or null. */
  thread_id: z.string().nullable(),
  /** The final answer parsed, when the agent has an `output_schema` (then `output` is its JSON text); else null. */
  output_json: z.unknown().nullable(),
  /** While `waiting`: when the wait ends on its own (the agent's approval timeout), else null. */
  wait_until: z.string().nullable(),
  last_seq: z.number().int(),
  /** Events up to this seq were pruned by retention (0: the whole log is kept). */
  pruned_through: z.number().int(),
  created_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
});
export type Task = z.infer<typeof Task>;

/** A conversation: tasks that each run with the history of the earlier ones (see src/threads). */
export const Thread = z.object({
  id: z.string(),
  owner: z.string(),
  created_at: z.string(),
  /** How many tasks it has. */
  task_count: z.number().int().nonnegative(),
  /** Its newest task's id, or null. */
  last_task_id: z.string().nullable(),
});
export type Thread = z.infer<typeof Thread>;
