/**
 * The live feed: what a watcher needs to join a running task with no gap and no duplicate.
 *
 * The runner pushes each durable frame here *after* storing it; the feed records its `seq` and
 * keeps a short tail of recent frames, then publishes to the bus — all in one synchronous step.
 * A joining watcher (see server/watch.ts) replays from the store, then, in one synchronous step,
 * sends whatever the tail holds beyond what it sent and subscribes. Because nothing can run between
 * "check the tail" and "subscribe", every later frame reaches it live and no earlier one twice.
 */
import { isResultFrame } from "../protocol/frames.ts";
import type { StoredEvent } from "../store/store.ts";
import { noTelemetry, type Telemetry } from "../telemetry/telemetry.ts";
import { deltaTopic, taskTopic, type EventBus } from "./bus.ts";

/** What the feed knows of one live (non-terminal) task. */
export interface LiveTail {
  /** The `seq` of the last frame published; frames after it are not yet published. */
  readonly lastSeq: number;
  /** Frames with `seq > after`, or undefined when the tail no longer reaches back that far. */
  framesAfter(after: number): StoredEvent[] | undefined;
}

/**
 * An in-process subscriber (Server-Sent Events, A2A, AG-UI, MCP). `seq` is undefined for live-only
 * frames, which only a listener added with `{deltas: true}` gets. WebSocket watchers do not use
 * this: Bun delivers to them natively.
 */
export type FeedListener = (frame: string, seq: number | undefined) => void;

export interface LiveFeed {
  /**
   * A task becomes live (queued or running); `lastSeq` is its last stored seq. Does nothing for a
   * task whose result this feed published (recently: the last `endedMemory`): an ended task never
   * publishes again, and one opened from a status read taken before its end would republish its
   * last frames to the watchers still subscribed.
   */
  open(taskId: string, lastSeq: number): void;
  /** Publishes a durable frame; must be called in `seq` order, after the frame is stored. */
  publish(taskId: string, seq: number, frame: string): void;
  /** Publishes a live-only frame (no seq, not stored, not replayed) to the task's delta topic. */
  publishTransient(taskId: string, frame: string): void;
  /** Whether anyone on this node may want the task's live-only frames (a delta nobody reads is not sent). */
  wantsDeltas(taskId: string): boolean;
  /**
   * The task parked: its `waiting` status is stored (no frame says so). Tells this node's `onParked`
   * listeners — the A2A, AG-UI and MCP streams, which end with "input required" then. In a cluster
   * the runner relays a park on another node here too (the `parked` signal).
   */
  parked(taskId: string): void;
  /** Calls `listener` whenever the task parks; returns the function that stops it. */
  onParked(taskId: string, listener: () => void): () => void;
  /** The task reached a terminal state and its result was published. */
  close(taskId: string): void;
  /**
   * The task is known to have ended (a watcher read it so): its tail never opens again, as after a
   * result this feed published. In a cluster a watcher that joined after the end replays the log
   * and subscribes with no tail; one whose status read is older must not open one below it.
   */
  ended(taskId: string): void;
  tail(taskId: string): LiveTail | undefined;
  /**
   * Adds an in-process listener for the task's durable frames — and its live-only ones with
   * `{deltas: true}` (only such a listener counts in `wantsDeltas`); returns the function that removes it.
   */
  listen(taskId: string, listener: FeedListener, options?: { deltas?: boolean }): () => void;
}

class Tail implements LiveTail {
  lastSeq: number;
  private readonly frames: StoredEvent[] = [];
  private firstSeq: number;

  constructor(lastSeq: number, private readonly capacity: number) {
    this.lastSeq = lastSeq;
    this.firstSeq = lastSeq + 1;
  }

  push(seq: number, frame: string) {
    if (seq !== this.lastSeq + 1) throw new Error(`live feed: seq ${seq} after ${this.lastSeq}`);
    this.frames.push({ seq, frame });
    this.lastSeq = seq;
    if (this.frames.length > this.capacity) {
      this.frames.shift();
      this.firstSeq++;
    }
  }

  framesAfter(after: number): StoredEvent[] | undefined {
    if (after >= this.lastSeq) return [];
    if (after < this.firstSeq - 1) return undefined;
    return this.frames.slice(after - this.firstSeq + 1);
  }
}

export function createLiveFeed(bus: EventBus, options: { tailSize?: number; endedMemory?: number; telemetry?: Telemetry } = {}): LiveFeed {
  const tailSize = options.tailSize ?? 256;
  const endedMemory = options.endedMemory ?? 4096;
  const telemetry = options.telemetry ?? noTelemetry;
  const tails = new Map<string, Tail>();
  /**
   * Tasks whose result was published, oldest first. A stale opener (in a cluster, the follower
   * asked to follow a task from a status read one round trip old) comes within moments of the end:
   * a few thousand ended tasks cover it at ~100 bytes each.
   */
  const ended = new Set<string>();
  const listeners = new Map<string, Set<FeedListener>>();
  /** The listeners that also take live-only frames (a subset of `listeners`). */
  const deltaListeners = new Map<string, Set<FeedListener>>();
  const parkListeners = new Map<string, Set<() => void>>();
  const remember = (taskId: string) => {
    if (ended.has(taskId)) return;
    ended.add(taskId);
    if (ended.size > endedMemory) ended.delete(ended.values().next().value!);
  };
  const notify = (taskId: string, frame: string, seq: number | undefined) => {
    const set = (seq === undefined ? deltaListeners : listeners).get(taskId);
    if (!set) return;
    // The listeners as they were when the frame was published: one added by a listener (a watcher
    // that subscribes right after this frame, server/watch.ts `subscribeAt`) must not get it too
    // (a Set's loop visits what is added during it), and one removed meanwhile gets nothing more.
    for (const listener of [...set]) if (set.has(listener)) listener(frame, seq);
  };
  return {
    open(taskId, lastSeq) {
      if (!tails.has(taskId) && !ended.has(taskId)) tails.set(taskId, new Tail(lastSeq, tailSize));
    },
    publish(taskId, seq, frame) {
      const tail = tails.get(taskId);
      if (!tail) throw new Error(`live feed: task ${taskId} is not open`);
      tail.push(seq, frame);
      if (isResultFrame(frame)) remember(taskId);
      bus.publish(taskTopic(taskId), frame);
      notify(taskId, frame, seq);
      telemetry.framePublished("durable");
    },
    publishTransient(taskId, frame) {
      bus.publish(deltaTopic(taskId), frame);
      notify(taskId, frame, undefined);
      telemetry.framePublished("delta");
    },
    parked(taskId) {
      const set = parkListeners.get(taskId);
      if (set) for (const listener of [...set]) listener();
    },
    onParked(taskId, listener) {
      return addListener(parkListeners, taskId, listener);
    },
    wantsDeltas(taskId) {
      return deltaListeners.has(taskId) || (bus.subscribers?.(deltaTopic(taskId)) ?? 1) > 0;
    },
    close(taskId) {
      tails.delete(taskId);
    },
    ended(taskId) {
      remember(taskId);
    },
    tail(taskId) {
      return tails.get(taskId);
    },
    listen(taskId, listener, options) {
      const remove = addListener(listeners, taskId, listener);
      if (!options?.deltas) return remove;
      const removeDeltas = addListener(deltaListeners, taskId, listener);
      return () => {
        remove();
        removeDeltas();
      };
    },
  };
}

/** Adds a task's listener; returns the function that removes it (and the task's set once empty). */
function addListener<L>(byTask: Map<string, Set<L>>, taskId: string, listener: L): () => void {
  let set = byTask.get(taskId);
  if (!set) byTask.set(taskId, (set = new Set()));
  set.add(listener);
  return () => {
    set.delete(listener);
    if (set.size === 0 && byTask.get(taskId) === set) byTask.delete(taskId);
  };
}
