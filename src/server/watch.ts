/**
 * Joining a task's stream with no gap and no duplicate: replay from the store, then switch to live.
 *
 * The switch happens in one synchronous step (check the live tail, send what it holds beyond what
 * was sent, subscribe), so no frame can be published in between. Events the store already has but
 * the feed has not yet published are left for the live path, so none arrives twice.
 */
import type { LiveFeed } from "../bus/live-feed.ts";
import type { TaskStore } from "../store/store.ts";

export interface Watcher {
  send(frame: string): void;
  /** Starts live delivery of the task's topic. */
  subscribe(): void;
  readonly closed: boolean;
}

export interface AttachOptions {
  store: TaskStore;
  feed: LiveFeed;
  taskId: string;
  /** The last seq the client already has. */
  after: number;
  watcher: Watcher;
  pageSize?: number;
}

/** Sends stored events after `after`, then subscribes; resolves once the watcher is live. */
export async function attachWatcher(options: AttachOptions): Promise<void> {
  const { store, feed, taskId, watcher } = options;
  const pageSize = options.pageSize ?? 500;
  let sent = options.after;
  for (;;) {
    if (watcher.closed) return;
    const frames = feed.tail(taskId)?.framesAfter(sent);
    if (frames) {
      for (const frame of frames) watcher.send(frame);
      watcher.subscribe();
      return;
    }
    const page = await store.events(taskId, sent, pageSize);
    if (watcher.closed) return;
    // Re-read after the await: the task may have published more, or ended.
    const tail = feed.tail(taskId);
    const publishedUpTo = tail ? tail.lastSeq : Number.POSITIVE_INFINITY;
    for (const event of page) {
      if (event.seq > publishedUpTo) break;
      watcher.send(event.frame);
      sent = event.seq;
    }
    if (!tail && page.length < pageSize) {
      // Not live: the log is complete. Subscribe anyway, so the watcher hears of anything later.
      watcher.subscribe();
      return;
    }
  }
}
