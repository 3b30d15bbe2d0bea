/**
 * The bus seam: deliver a serialised frame to every watcher of a task on this node.
 * Embedded: Bun's native pub/sub (one topic per task). At scale: Redis fan-out to every node.
 */

export interface EventBus {
  /** Sends `frame` to every connection subscribed to the task's topic. Never throws. */
  publish(taskId: string, frame: string): void;
}

/** The pub/sub topic of a task. */
export function taskTopic(taskId: string): string {
  return `task:${taskId}`;
}
