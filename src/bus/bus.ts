/**
 * The bus seam: deliver a serialised frame to every watcher of a task on this node.
 * Embedded: Bun's native pub/sub (one topic per task). At scale: Redis fan-out to every node.
 */

export interface EventBus {
  /** Sends `frame` to every connection subscribed to `topic`. Never throws. */
  publish(topic: string, frame: string): void;
  /** How many connections of this node are subscribed to `topic` (a bus that cannot tell: absent). */
  subscribers?(topic: string): number;
}

/** The pub/sub topic of a task's durable frames (step, result). */
export function taskTopic(taskId: string): string {
  return `task:${taskId}`;
}

/** The task id of a durable-frame topic, or undefined for any other topic. */
export function taskOfTopic(topic: string): string | undefined {
  return topic.startsWith("task:") ? topic.slice("task:".length) : undefined;
}

/** The pub/sub topic of a task's live-only `delta` frames (watchers may opt out). */
export function deltaTopic(taskId: string): string {
  return `delta:${taskId}`;
}
