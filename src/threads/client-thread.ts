/**
 * A thread a client names (an A2A `contextId`, an AG-UI `threadId`): thread ids share one namespace
 * with task ids — a task made without a thread has its own id as its A2A context. So a named id is:
 * - the caller's thread: that thread;
 * - the caller's task that has no thread: a thread of that id, with the task as its first turn
 *   (continuing a REST task over A2A lost that turn before);
 * - another key's thread or task (or a task already in a thread): refused, as if unknown — a key
 *   could otherwise take another's task id as its own context, and its owner could not continue it;
 * - unknown: a new thread of that id, the caller's.
 */
import type { Thread } from "../protocol/task.ts";
import { canSee, canSeeThread, type Principal } from "../server/auth.ts";
import type { TaskStore } from "../store/store.ts";

export async function threadNamed(store: TaskStore, id: string, principal: Principal, now: Date): Promise<Thread | undefined> {
  const existing = await store.getThread(id);
  if (existing) return canSeeThread(principal, existing) ? existing : undefined;
  const task = await store.getTask(id);
  if (task && (!canSee(principal, task) || task.thread_id !== null)) return undefined;
  try {
    return await store.createThread({ id, owner: task ? task.owner : principal.id, createdAt: now, ...(task ? { adopt: task.id } : {}) });
  } catch (error) {
    // Made at the same moment by another request: the caller's, or not.
    const made = await store.getThread(id);
    if (made) return canSeeThread(principal, made) ? made : undefined;
    throw error;
  }
}
