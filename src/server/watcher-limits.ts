/**
 * The watcher limits (`AGENTKIT_MAX_WATCHERS_PER_TASK`, `AGENTKIT_MAX_WATCHERS_PER_KEY`), one count
 * for every way of watching a task: WebSocket connections, SSE streams (`GET /tasks/:id/events`),
 * A2A subscriptions and the streams of A2A messages to an existing task alike — a key past its limit on one could otherwise open as many of another as it
 * liked. Counted per node (in a cluster, each node counts its own connections).
 */

export interface WatcherLimits {
  /**
   * Counts one watcher of `taskId` for `key`: the function that uncounts it (call it once, when the
   * watcher leaves), or — past a limit — the message that says which.
   */
  acquire(taskId: string, key: string): { release: () => void } | { refused: string };
}

export function createWatcherLimits(limits: { perTask: number; perKey: number }): WatcherLimits {
  const byTask = new Map<string, number>();
  const byKey = new Map<string, number>();
  const decrement = (counts: Map<string, number>, id: string) => {
    const count = (counts.get(id) ?? 1) - 1;
    if (count > 0) counts.set(id, count);
    else counts.delete(id);
  };
  return {
    acquire(taskId, key) {
      const ofTask = byTask.get(taskId) ?? 0;
      const ofKey = byKey.get(key) ?? 0;
      if (ofTask >= limits.perTask) return { refused: `Too many watchers (limit ${limits.perTask} per task)` };
      if (ofKey >= limits.perKey) return { refused: `Too many watchers (limit ${limits.perKey} per key)` };
      byTask.set(taskId, ofTask + 1);
      byKey.set(key, ofKey + 1);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          decrement(byTask, taskId);
          decrement(byKey, key);
        },
      };
    },
  };
}
