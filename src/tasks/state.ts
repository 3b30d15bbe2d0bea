/**
 * The task state machine: `queued → running → completed | failed | cancelled | timed_out`.
 * A terminal state has no way out, so the first terminal state wins. The store derives its
 * conditional updates from this table, so a transition it does not allow can never be written.
 */
import type { TaskStatus } from "../protocol/task.ts";

export const TRANSITIONS: Readonly<Record<TaskStatus, readonly TaskStatus[]>> = {
  // A queued task can end without running: cancelled, or failed (its agent is gone, or shutdown).
  queued: ["running", "cancelled", "failed"],
  // `waiting`: the model called a tool that needs a person (an approval, `ask_user`); the run ended
  // and holds nothing in memory.
  running: ["waiting", "completed", "failed", "cancelled", "timed_out"],
  // Decided (or the wait timed out): queued again, and the next run resumes it from its log.
  waiting: ["queued", "cancelled", "failed"],
  completed: [],
  failed: [],
  cancelled: [],
  timed_out: [],
};

export function canTransition(from: TaskStatus, to: TaskStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** The states from which `to` can be reached. */
export function sourcesOf(to: TaskStatus): TaskStatus[] {
  return (Object.keys(TRANSITIONS) as TaskStatus[]).filter((from) => canTransition(from, to));
}
