/**
 * A thread a client names (an A2A `contextId`, an AG-UI `threadId`): thread ids share one namespace
 * with task ids — a task made without a thread has its own id as its A2A context. So a named id is:
 * - the caller's thread: that thread;
 * - the caller's task that has no thread and has ended: a thread of that id, with the task as its
 *   first turn (continuing a REST task over A2A lost that turn before); one not ended yet is
 *   refused (`unfinished`): it is continued as a task (A2A `taskId`), and its thread begins after;
 * - another key's thread or task (or a task already in a thread): refused, as if unknown — a key
 *   could otherwise take another's task id as its own context, and its owner could not continue it;
 * - unknown: a new thread of that id, the caller's.
 */
import { isTerminal, type Task, type Thread } from "../protocol/task.ts";
import { canSee, canSeeThread, type Principal } from "../server/auth.ts";
import type { TaskStore } from "../store/store.ts";

export type NamedThread =
  | { thread: Thread }
  /** Not a context the caller may use (another key's, or a task already in a thread): as if unknown. */
  | { refused: "unknown" }
  /** The caller's own task, not ended yet: continue it as a task (a thread's turn starts once it ended). */
  | { refused: "unfinished"; task: Task };

export async function threadNamed(store: TaskStore, id: string, principal: Principal, now: Date): Promise<NamedThread> {
  const existing = await store.getThread(id);
  if (existing) return canSeeThread(principal, existing) ? { thread: existing } : { refused: "unknown" };
  const task = await store.getTask(id);
  if (task && (!canSee(principal, task) || task.thread_id !== null)) return { refused: "unknown" };
  // A task still running (or queued, or waiting) is not a thread's turn yet: the runner keeps a
  // thread's tasks one at a time by the thread they were made in, and this one was made in none.
  if (task && !isTerminal(task.status)) return { refused: "unfinished", task };
  try {
    return { thread: await store.createThread({ id, owner: task ? task.owner : principal.id, createdAt: now, ...(task ? { adopt: task.id } : {}) }) };
  } catch (error) {
    // Made at the same moment by another request: the caller's, or not.
    const made = await store.getThread(id);
    if (made) return canSeeThread(principal, made) ? { thread: made } : { refused: "unknown" };
    throw error;
  }
}
