/**
 * Watching a task that runs on another node (cluster mode). The node where a watcher is connected
 * publishes the task's frames to its own Bun topic, read from the durable log — never from the
 * notification, which is only a hint that there is more to read: a lost or late notification can
 * delay a frame (until the next hint or the poll), never lose or reorder one.
 *
 * Each followed task has one live tail (the same `LiveFeed` tail a local run has), so a watcher
 * joins a remote task exactly as it joins a local one (replay from the store, then the tail, then
 * live) — and each node reads a task's new events once, however many local watchers it has.
 *
 * Ownership of a task's tail passes between the runner and the follower: when this node claims a
 * task its watchers were following, the runner takes the tail over (`release`); when this node
 * loses a task it ran (taken over elsewhere, or handed over at shutdown), the follower goes on
 * publishing it from the log for the watchers still here (`adopt`).
 */
import type { LiveFeed } from "../bus/live-feed.ts";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../lib/logger.ts";
import { isResultFrame } from "../protocol/frames.ts";
import { isTerminal, type Task } from "../protocol/task.ts";
import { PAGE_BYTES, pageMayContinue, type TaskStore } from "../store/store.ts";

const PAGE = 500;

export interface Follower {
  /**
   * A local watcher joins `task`: follow it from the log while it is watched, unless this node
   * runs it. Call before attaching the watcher; call the returned function when it leaves.
   */
  watch(task: Task): () => void;
  /** A hint: the task's events up to `lastSeq` are stored. */
  hint(taskId: string, lastSeq: number): void;
  /** This node runs the task from now on: stop publishing it (the runner owns the tail). */
  release(taskId: string): void;
  /** This node no longer runs the task: go on publishing it from the log if it is watched here. */
  adopt(taskId: string): void;
  /** Fetches every followed task (after a LISTEN reconnect, and on every poll). */
  catchUpAll(): void;
  /** Tasks followed now (for /health and tests). */
  readonly size: number;
  close(): void;
}

interface Followed {
  watchers: number;
  /** This follower publishes the task's frames (not the local runner). */
  following: boolean;
  fetching: boolean;
  again: boolean;
}

export interface FollowerOptions {
  store: TaskStore;
  feed: LiveFeed;
  logger: Logger;
  /** Whether this node's runner runs the task now. */
  isLocal(taskId: string): boolean;
  /** The safety net: every followed task is read this often even without a hint. */
  pollMs: number;
}

export function createFollower(options: FollowerOptions): Follower {
  const { store, feed, logger } = options;
  const followed = new Map<string, Followed>();

  function stopFollowing(taskId: string, entry: Followed) {
    entry.following = false;
    feed.close(taskId);
  }

  async function fetch(taskId: string): Promise<void> {
    const entry = followed.get(taskId);
    if (!entry?.following) return;
    if (entry.fetching) {
      entry.again = true;
      return;
    }
    entry.fetching = true;
    try {
      do {
        entry.again = false;
        for (;;) {
          const tail = feed.tail(taskId);
          if (!entry.following || !tail) return;
          // A page of at most ~1 MiB: all of it is published in one turn, and an event stream (SSE,
          // A2A) hands its queue to the socket only between turns.
          const page = await store.events(taskId, tail.lastSeq, PAGE, PAGE_BYTES);
          // Re-check after the await: the runner may have claimed the task, or the watchers left.
          if (!entry.following || feed.tail(taskId) !== tail) return;
          for (const event of page) {
            if (event.seq <= tail.lastSeq) continue;
            if (event.seq !== tail.lastSeq + 1) break; // never publish past a hole; read again
            feed.publish(taskId, event.seq, event.frame);
            if (isResultFrame(event.frame)) return stopFollowing(taskId, entry);
          }
          if (!pageMayContinue(page, PAGE, PAGE_BYTES)) break;
        }
      } while (entry.again && entry.following);
    } catch (error) {
      // The poll tries again; nothing was published out of order.
      logger.warn("cluster: could not read a followed task's events", { task: taskId, error: errorMessage(error) });
    } finally {
      entry.fetching = false;
    }
  }

  function follow(taskId: string, entry: Followed, lastSeq: number) {
    if (!feed.tail(taskId)) feed.open(taskId, lastSeq);
    if (!feed.tail(taskId)) return; // the feed knows the task ended: nothing to follow
    entry.following = true;
    void fetch(taskId);
  }

  const poll = setInterval(() => {
    for (const [taskId, entry] of followed) if (entry.following) void fetch(taskId);
  }, options.pollMs);
  poll.unref();

  return {
    watch(task) {
      let entry = followed.get(task.id);
      if (!entry) followed.set(task.id, (entry = { watchers: 0, following: false, fetching: false, again: false }));
      entry.watchers++;
      // An ended task is remembered as such: a watcher whose status read is older (still running)
      // must not make this node follow it again from there, republishing what others here have.
      if (isTerminal(task.status)) feed.ended(task.id);
      else if (!entry.following && !options.isLocal(task.id)) follow(task.id, entry, task.last_seq);
      let released = false;
      const current = entry;
      return () => {
        if (released) return;
        released = true;
        current.watchers--;
        if (current.watchers > 0 || followed.get(task.id) !== current) return;
        followed.delete(task.id);
        if (current.following) stopFollowing(task.id, current);
      };
    },
    hint(taskId, lastSeq) {
      const entry = followed.get(taskId);
      if (entry?.following && (feed.tail(taskId)?.lastSeq ?? 0) < lastSeq) void fetch(taskId);
    },
    release(taskId) {
      const entry = followed.get(taskId);
      if (entry) entry.following = false;
    },
    adopt(taskId) {
      const entry = followed.get(taskId);
      const tail = feed.tail(taskId);
      if (entry && entry.watchers > 0 && tail) follow(taskId, entry, tail.lastSeq);
      else feed.close(taskId);
    },
    catchUpAll() {
      for (const [taskId, entry] of followed) if (entry.following) void fetch(taskId);
    },
    get size() {
      let count = 0;
      for (const entry of followed.values()) if (entry.following) count++;
      return count;
    },
    close() {
      clearInterval(poll);
      for (const [taskId, entry] of followed) if (entry.following) stopFollowing(taskId, entry);
      followed.clear();
    },
  };
}
