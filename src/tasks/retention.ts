/**
 * Event-log retention: every `intervalMs`, prune the logs of tasks that ended more than
 * `retentionHours` ago. Their task rows stay; a watcher asking for pruned events gets a `resync`
 * snapshot instead (server/watch.ts).
 */
import { errorMessage } from "../errors.ts";
import type { Logger } from "../lib/logger.ts";
import type { TaskStore } from "../store/store.ts";

export function startRetention(options: {
  store: TaskStore;
  retentionHours: number;
  logger: Logger;
  intervalMs?: number;
  now?: () => Date;
}): { stop(): void; runOnce(): Promise<number> } {
  const now = options.now ?? (() => new Date());
  const runOnce = async () => {
    const cutoff = new Date(now().getTime() - options.retentionHours * 3600_000);
    const pruned = await options.store.pruneEvents(cutoff);
    if (pruned > 0) options.logger.info("retention: pruned event logs", { tasks: pruned, ended_before: cutoff.toISOString() });
    return pruned;
  };
  const tick = () =>
    runOnce().catch((error) => options.logger.error("retention: prune failed", { error: errorMessage(error) }));
  void tick();
  const timer = setInterval(tick, options.intervalMs ?? 3600_000);
  timer.unref();
  return { stop: () => clearInterval(timer), runOnce };
}
