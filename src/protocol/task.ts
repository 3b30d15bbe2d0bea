/**
 * Tasks as the API shows them: status, stop reason and the public record.
 * The schema is the single source of truth; types are inferred from it.
 */
import { z } from "zod";

/** Lifecycle: `queued → running → completed | failed | cancelled | timed_out`. */
export const TaskStatus = z.enum(["queued", "running", "completed", "failed", "cancelled", "timed_out"]);
export type TaskStatus = z.infer<typeof TaskStatus>;

export const TERMINAL_STATUSES: readonly TaskStatus[] = ["completed", "failed", "cancelled", "timed_out"];

export function isTerminal(status: TaskStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

/** Why a task stopped. `final_answer` is the normal end. */
export const StopReason = z.enum(["final_answer", "max_steps", "token_budget", "deadline", "cancelled", "error", "interrupted"]);
export type StopReason = z.infer<typeof StopReason>;

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
  error: z.string().nullable(),
  total_steps: z.number().int(),
  total_tokens: z.number().int(),
  input_tokens: z.number().int(),
  output_tokens: z.number().int(),
  /** Cost in USD when the agent's model has prices configured, else null. */
  cost_usd: z.number().nullable(),
  last_seq: z.number().int(),
  /** Events up to this seq were pruned by retention (0: the whole log is kept). */
  pruned_through: z.number().int(),
  created_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
});
export type Task = z.infer<typeof Task>;
