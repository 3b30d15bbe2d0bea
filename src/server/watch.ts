/**
 * Joining a task's stream with no gap and no duplicate: replay from the store, then switch to live.
 * Shared by the WebSocket and the Server-Sent Events endpoints.
 *
 * The switch happens in one synchronous step (check the live tail, send what it holds beyond what
 * was sent, subscribe), so no frame can be published in between. Events the store already has but
 * the feed has not yet published are left for the live path, so none arrives twice.
 */
import type { LiveFeed } from "../bus/live-feed.ts";
import type { Task } from "../protocol/task.ts";
import { PAGE_BYTES, pageMayContinue, type StoredEvent, type TaskStore } from "../store/store.ts";
import { backgroundSlice } from "../lib/turn.ts";

export interface Watcher {
  send(event: StoredEvent): void;
  /** Starts live delivery of the task's frames. */
  subscribe(): void;
  readonly closed: boolean;
  /**
   * Whether the client has so much queued (half its slow-client limit) that the replay should wait
   * for it to read. Without this, a replay sends every stored page at once, and a log larger than
   * the limit cut off even a client that reads.
   */
  backlogged?(): boolean;
  /** Resolves once the client has read some of what is queued, or its connection closed. */
  drained?(): Promise<void>;
  /**
   * Runs `sends` (synchronous `send` calls) as one write where the transport can (a WebSocket's
   * `cork`): a replay sent frame by frame made a syscall per frame.
   */
  batch?(sends: () => void): void;
}

export interface AttachOptions {
  store: TaskStore;
  feed: LiveFeed;
  taskId: string;
  /** The last seq the client already has. */
  after: number;
  watcher: Watcher;
  pageSize?: number;
  /**
   * The store has nothing right after `sent` while the task is not live (its log may have been
   * pruned while the replay waited for the client, or for a turn of the event loop): returns the
   * seq to go on after, once the watcher was told (a `resync`), or undefined when nothing is missing.
   */
  onMissing?(sent: number): Promise<number | undefined>;
}

/** Sends stored events after `after`, then subscribes; resolves once the watcher is live. */
export async function attachWatcher(options: AttachOptions): Promise<void> {
  const { store, feed, taskId, watcher } = options;
  const pageSize = options.pageSize ?? 500;
  let sent = options.after;
  // A client that reads as fast as the replay writes never makes it wait: the replay still gives
  // the event loop a turn every few ms (a 60,000-event replay held it for 270 ms), and replays at
  // once share those few ms (100 replays of 302 events held it for 150–300 ms between them).
  const slice = backgroundSlice;
  const batch = (sends: () => void) => (watcher.batch ? watcher.batch(sends) : sends());
  /** The `sent` that `onMissing` last found nothing missing after (it is asked once per point). */
  let checkedAt: number | undefined;
  for (;;) {
    if (watcher.closed) return;
    // Each pass reads a page from the store: replays that start at once read theirs in turns too.
    if (slice.spent) {
      await slice.next();
      if (watcher.closed) return;
    }
    const live = feed.tail(taskId);
    if (live && sent > live.lastSeq) {
      // The client already has frames this node has not published yet (in a cluster it saw them
      // on the node that ran the task, and this node's follower is behind). Subscribing now would
      // send them again: subscribe in the synchronous step in which the feed publishes `sent`.
      await subscribeAt(feed, taskId, sent, watcher);
      return;
    }
    const frames = live?.framesAfter(sent);
    if (frames) {
      batch(() => {
        for (const event of frames) watcher.send(event);
      });
      watcher.subscribe();
      return;
    }
    // A store that answers on a later turn (PostgreSQL) reads the log as it was when the read began:
    // the task may go live, publish frames the page lacks and end (its tail gone) before the page
    // arrives. Whatever was published meanwhile is stored: the next pass reads it.
    let publishedMeanwhile = false;
    const stopListening = feed.listen(taskId, () => (publishedMeanwhile = true));
    let page: StoredEvent[];
    try {
      page = await store.events(taskId, sent, pageSize, PAGE_BYTES);
    } finally {
      stopListening();
    }
    if (watcher.closed) return;
    // Re-read after the await: the task may have published more, or ended.
    const tail = feed.tail(taskId);
    if (!tail && options.onMissing && checkedAt !== sent && (page.length === 0 || page[0]!.seq !== sent + 1)) {
      const skipTo = await options.onMissing(sent);
      if (watcher.closed) return;
      if (skipTo !== undefined && skipTo > sent) sent = skipTo;
      else checkedAt = sent;
      // Either way, look again: the tail and the page read before that await may be stale (the task
      // may have gone live and published meanwhile), and the switch to live must be one synchronous step.
      continue;
    }
    const publishedUpTo = tail ? tail.lastSeq : Number.POSITIVE_INFINITY;
    let paused = false;
    let index = 0;
    while (index < page.length && page[index]!.seq <= publishedUpTo) {
      // Sends as one write what goes before the next pause.
      let wait: "drain" | "turn" | undefined;
      const from = index;
      batch(() => {
        for (; index < page.length && page[index]!.seq <= publishedUpTo && !watcher.closed; ) {
          const event = page[index++]!;
          watcher.send(event);
          sent = event.seq;
          if (watcher.drained && watcher.backlogged?.()) return void (wait = "drain");
          if (slice.spent) return void (wait = "turn");
        }
      });
      // Nothing went out (a transport that skipped the batch: its socket closed under it): stop here
      // rather than read the same page again.
      if (watcher.closed || index === from) return;
      if (!wait) break;
      // Replay at the client's pace: wait for it to read (or for a turn of the event loop), then go
      // on through this page (its events up to `publishedUpTo` stay valid: that only grows).
      // Re-reading the store after each pause read the page again for every ~32 KiB the client took.
      paused = true;
      await (wait === "drain" ? watcher.drained!() : slice.next());
      if (watcher.closed) return;
    }
    // After a pause the task may have gone live meanwhile, and frames published during the read may
    // be missing from the page: the next pass looks at the tail and the store again.
    if (!tail && !pageMayContinue(page, pageSize, PAGE_BYTES) && !paused && !publishedMeanwhile) {
      // Not live: the log is complete. Subscribe anyway, so the watcher hears of anything later.
      watcher.subscribe();
      return;
    }
  }
}

/**
 * Subscribes `watcher` right after the feed publishes `seq` (nothing before it reaches the
 * watcher, nothing after it is missed). Gives up when the watcher leaves; subscribes at once if
 * the task's tail is gone meanwhile (the task ended: nothing more will be published).
 */
function subscribeAt(feed: LiveFeed, taskId: string, seq: number, watcher: Watcher): Promise<void> {
  const tail = feed.tail(taskId);
  return new Promise<void>((resolve) => {
    const done = () => {
      stop();
      clearInterval(check);
      resolve();
    };
    const stop = feed.listen(taskId, (_frame, published) => {
      if (watcher.closed) return done();
      if (published === seq) {
        watcher.subscribe();
        done();
      }
    });
    const check = setInterval(() => {
      if (watcher.closed) return done();
      if (feed.tail(taskId) !== tail) {
        watcher.subscribe();
        done();
      }
    }, 250);
    check.unref();
  });
}

/** The last seq the server has for a task: stored, or published by a live task. */
export function lastSeqOf(task: Task, feed: LiveFeed): number {
  return Math.max(task.last_seq, feed.tail(task.id)?.lastSeq ?? 0);
}

export function connectedFrame(task: Task, lastSeq: number): string {
  return JSON.stringify({ type: "connected", task_id: task.id, status: task.status, last_seq: lastSeq });
}

/**
 * Sent instead of events that retention has pruned: a snapshot of the task, after which the
 * stream goes on from `pruned_through`. Never a silent gap.
 */
export function resyncFrame(task: Task): string {
  return JSON.stringify({
    type: "resync",
    data: {
      task_id: task.id,
      status: task.status,
      stop_reason: task.stop_reason,
      output: task.output,
      error: task.error,
      last_seq: task.last_seq,
      pruned_through: task.pruned_through,
      total_steps: task.total_steps,
      total_tokens: task.total_tokens,
    },
  });
}

/**
 * Starts a watcher's stream: `connected`, a `resync` snapshot if events it asks for were pruned,
 * then the stored events and the live ones.
 */
export async function startStream(options: {
  store: TaskStore;
  feed: LiveFeed;
  task: Task;
  after: number;
  watcher: Watcher;
  /** Sends a frame that has no seq (connected, resync). */
  sendControl(frame: string): void;
  /** Told when a resync made the stream skip ahead to `prunedThrough`. */
  onResync?(prunedThrough: number): void;
}): Promise<void> {
  const { task, feed } = options;
  options.sendControl(connectedFrame(task, lastSeqOf(task, feed)));
  let after = options.after;
  if (after < task.pruned_through) {
    options.sendControl(resyncFrame(task));
    after = task.pruned_through;
    options.onResync?.(after);
  }
  await attachWatcher({
    store: options.store,
    feed,
    taskId: task.id,
    after,
    watcher: options.watcher,
    // Retention pruned the log during the replay: a `resync` instead of a silent end, as at the start.
    onMissing: async (sent) => {
      const current = await options.store.getTask(task.id);
      if (!current || current.pruned_through <= sent) return undefined;
      options.sendControl(resyncFrame(current));
      options.onResync?.(current.pruned_through);
      return current.pruned_through;
    },
  });
}
