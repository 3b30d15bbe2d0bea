/** Records things as they happen (log entries, status changes) and lets a test wait for one. */

export interface EventLog<T> {
  readonly entries: readonly T[];
  push(entry: T): void;
  /**
   * Resolves with the first entry at index `since` or later that matches; rejects after `timeoutMs`
   * so a broken test fails instead of hanging. Take `since = log.entries.length` before the action.
   */
  waitFor(matches: (entry: T) => boolean, options?: { since?: number; timeoutMs?: number; what?: string }): Promise<T>;
}

export function createEventLog<T>(): EventLog<T> {
  const entries: T[] = [];
  const waiters = new Set<() => void>();
  return {
    entries,
    push(entry) {
      entries.push(entry);
      for (const wake of [...waiters]) wake();
    },
    waitFor(matches, options = {}) {
      const { since = 0, timeoutMs = 10_000, what = "an expected event" } = options;
      return new Promise<T>((resolve, reject) => {
        const check = () => {
          const found = entries.slice(since).find(matches);
          if (found === undefined) return;
          cleanup();
          resolve(found);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
}
