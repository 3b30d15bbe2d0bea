/**
 * Joining a task's stream (src/server/watch.ts) when the client is ahead of this node's live tail:
 * in a cluster a client that saw frames on the node running a task may reconnect to a node whose
 * follower has not published them yet. It must get nothing twice and miss nothing.
 */
import { expect, test } from "bun:test";
import { taskTopic, type EventBus } from "../../src/bus/bus.ts";
import { createLiveFeed } from "../../src/bus/live-feed.ts";
import { attachWatcher, type Watcher } from "../../src/server/watch.ts";
import type { StoredEvent, TaskStore } from "../../src/store/store.ts";
import { nextTurn } from "../helpers/deferred.ts";

function rig(stored: number, tailSize?: number) {
  const subscribed = new Set<string>();
  const received: number[] = [];
  const bus = {
    publish(topic: string, frame: string) {
      if (subscribed.has(topic)) received.push((JSON.parse(frame) as { seq: number }).seq);
    },
    bind() {},
  } as unknown as EventBus;
  const feed = createLiveFeed(bus, { tailSize });
  const events: StoredEvent[] = Array.from({ length: stored }, (_, index) => ({ seq: index + 1, frame: JSON.stringify({ type: "step", seq: index + 1 }) }));
  const store = { events: async (_id: string, after: number, limit: number) => events.filter((event) => event.seq > after).slice(0, limit) } as unknown as TaskStore;
  const watcher: Watcher & { closed: boolean } = {
    closed: false as boolean,
    send: (event: StoredEvent) => received.push(event.seq),
    subscribe: () => subscribed.add(taskTopic("t")),
  };
  return { feed, store, events, watcher, received, subscribed };
}

/** A watcher whose client has `every` frames queued ("half full") until `onDrained` runs (it reads them). */
function paced(watcher: Watcher & { closed: boolean }, every: number, onDrained: () => void = () => {}): Watcher {
  let queued = 0;
  return {
    get closed() {
      return watcher.closed;
    },
    send: (event) => {
      queued++;
      watcher.send(event);
    },
    subscribe: () => watcher.subscribe(),
    backlogged: () => queued >= every,
    drained: async () => {
      onDrained();
      queued = 0;
    },
  };
}

test("a watcher that joins with after= beyond what this node's tail has published gets no frame twice, and the rest live", async () => {
  const { feed, store, events, watcher, received } = rig(67);
  feed.open("t", 63); // the follower here has published up to 63
  // The client already has 1..66 (from the node that ran the task).
  const attaching = attachWatcher({ store, feed, taskId: "t", after: 66, watcher });
  for (const event of events.slice(63)) feed.publish("t", event.seq, event.frame); // the follower catches up: 64..67
  await attaching;
  expect(received).toEqual([67]);
});

test("a watcher that leaves while it waits for this node to catch up is let go; one whose task's tail closes is subscribed", async () => {
  const first = rig(10);
  first.feed.open("t", 5);
  const leaving = attachWatcher({ store: first.store, feed: first.feed, taskId: "t", after: 8, watcher: first.watcher });
  first.watcher.closed = true;
  first.feed.publish("t", 6, first.events[5]!.frame);
  await leaving;
  expect(first.subscribed.size).toBe(0);

  const second = rig(10);
  second.feed.open("t", 5);
  const ending = attachWatcher({ store: second.store, feed: second.feed, taskId: "t", after: 8, watcher: second.watcher });
  second.feed.close("t");
  await ending; // within the 250 ms check
  expect(second.subscribed.size).toBe(1);
  expect(second.received).toEqual([]);
});

test("a paced replay goes on through the page it read after each pause: the store is read once per page, not once per pause", async () => {
  const { feed, events, watcher, received, subscribed } = rig(1_200);
  let reads = 0;
  const store = {
    events: async (_id: string, after: number, limit: number) => {
      reads++;
      return events.filter((event) => event.seq > after).slice(0, limit);
    },
  } as unknown as TaskStore;
  // The client's queue is "half full" after every 10 frames; it reads them before the next pass.
  let pauses = 0;
  await attachWatcher({ store, feed, taskId: "t", after: 0, watcher: paced(watcher, 10, () => pauses++), pageSize: 500 });
  expect(received).toEqual(events.map((event) => event.seq)); // every event once, in order
  expect(subscribed.size).toBe(1);
  expect(pauses).toBe(120);
  // Three pages (500, 500, 200), and one more look after the last pause: not one per pause.
  expect(reads).toBe(4);
});

/** Busy for `ms`: the cost of a send, a parse, on a loop that would otherwise never let go. */
function busy(ms: number) {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

test("a replay to a client that keeps up gives the event loop a turn every few ms: what was due meanwhile runs before it ends", async () => {
  const { feed, store, events, watcher, received, subscribed } = rig(3_000);
  // The SQLite store answers at once: without a turn of its own, the replay's ~60 ms would hold the loop.
  const keepingUp: Watcher = {
    get closed() {
      return watcher.closed;
    },
    send: (event) => {
      busy(0.02);
      watcher.send(event);
    },
    subscribe: () => watcher.subscribe(),
    backlogged: () => false,
    drained: async () => {},
  };
  let sentWhenDue: number | undefined;
  await nextTurn(); // the replay begins with the shared budget whole, not with what earlier tests spent
  setImmediate(() => (sentWhenDue = received.length));
  await attachWatcher({ store, feed, taskId: "t", after: 0, watcher: keepingUp, pageSize: 500 });
  expect(received).toEqual(events.map((event) => event.seq)); // every event once, in order
  expect(subscribed.size).toBe(1);
  expect(sentWhenDue).toBeGreaterThan(0);
  expect(sentWhenDue).toBeLessThan(events.length / 2); // within the first slices, not after the replay
});

test("a log that retention prunes while a replay waits for the client: the replay ends with a `resync` (not silently short of the result)", async () => {
  const { startStream } = await import("../../src/server/watch.ts");
  const { feed, watcher, received, subscribed } = rig(0);
  let events: StoredEvent[] = Array.from({ length: 1_200 }, (_, index) => ({ seq: index + 1, frame: JSON.stringify({ type: "step", seq: index + 1 }) }));
  const task = { id: "t", status: "completed", last_seq: 1_200, pruned_through: 0, stop_reason: "final_answer", output: "done", error: null, total_steps: 100, total_tokens: 10 };
  const store = {
    events: async (_id: string, after: number, limit: number) => events.filter((event) => event.seq > after).slice(0, limit),
    getTask: async () => ({ ...task }),
  } as unknown as TaskStore;
  const controls: string[] = [];
  const resyncs: number[] = [];
  // Retention runs while the client reads (after 50 frames): the whole log goes.
  const slowReader = paced(watcher, 50, () => {
    events = [];
    task.pruned_through = 1_200;
  });
  await startStream({ store, feed, task: task as never, after: 0, watcher: slowReader, sendControl: (frame) => controls.push(frame), onResync: (seq) => resyncs.push(seq) });
  // The page it had read (500) still goes out; the pages after it were pruned: a resync says so.
  expect(received).toEqual(Array.from({ length: 500 }, (_, index) => index + 1));
  expect(controls.map((frame) => JSON.parse(frame).type)).toEqual(["connected", "resync"]);
  expect(JSON.parse(controls[1]!).data).toMatchObject({ status: "completed", output: "done", last_seq: 1_200, pruned_through: 1_200 });
  expect(resyncs).toEqual([1_200]);
  expect(subscribed.size).toBe(1);
});

test("a task that goes live while the replay asks the store whether its log was pruned: the frame published meanwhile arrives once, then the live ones", async () => {
  const { startStream } = await import("../../src/server/watch.ts");
  const { feed, events, watcher, received } = rig(5);
  // A waiting task (no live tail), and a watcher that has all of its log.
  const task = { id: "t", status: "waiting", last_seq: 5, pruned_through: 0, stop_reason: null, output: null, error: null, total_steps: 2, total_tokens: 0 };
  const store = {
    events: async (_id: string, after: number, limit: number) => events.filter((event) => event.seq > after).slice(0, limit),
    getTask: async () => {
      // While the store is asked, a decision requeues the task: its tail opens and seq 6 is published.
      feed.open("t", 5);
      events.push({ seq: 6, frame: JSON.stringify({ type: "step", seq: 6 }) });
      feed.publish("t", 6, events[5]!.frame);
      return { ...task };
    },
  } as unknown as TaskStore;
  const controls: string[] = [];
  await startStream({ store, feed, task: task as never, after: 5, watcher, sendControl: (frame) => controls.push(frame) });
  events.push({ seq: 7, frame: JSON.stringify({ type: "step", seq: 7 }) });
  feed.publish("t", 7, events[6]!.frame);
  expect(received).toEqual([6, 7]);
  expect(controls.map((frame) => JSON.parse(frame).type)).toEqual(["connected"]);
});

test("a task that goes on and ends while the replay's page is read (a store that answers on a later turn): what it published meanwhile is read from the store, none lost", async () => {
  // Not live when the read starts, and live with a tail too short to reach back to the client.
  for (const liveBefore of [false, true]) {
    const { feed, events, watcher, received, subscribed } = rig(2, 1);
    const frame = (seq: number) => JSON.stringify({ type: "step", seq });
    if (liveBefore) {
      feed.open("t", 0);
      feed.publish("t", 1, frame(1));
      feed.publish("t", 2, frame(2)); // the tail now holds seq 2 only
    }
    let reads = 0;
    const store = {
      events: async (_id: string, after: number, limit: number) => {
        // The read sees the log as it is when it starts; its answer comes after the run has
        // stored and published the rest of its frames and ended.
        const page = events.filter((event) => event.seq > after).slice(0, limit);
        if (reads++ === 0) {
          if (!liveBefore) feed.open("t", 2);
          for (let seq = 3; seq <= 40; seq++) {
            events.push({ seq, frame: frame(seq) });
            feed.publish("t", seq, frame(seq));
          }
          feed.close("t");
        }
        await Bun.sleep(1);
        return page;
      },
    } as unknown as TaskStore;
    await attachWatcher({ store, feed, taskId: "t", after: 0, watcher });
    expect({ liveBefore, received }).toEqual({ liveBefore, received: Array.from({ length: 40 }, (_, index) => index + 1) });
    expect(subscribed.size).toBe(1);
  }
});

test("an in-process watcher (SSE, A2A, AG-UI, MCP) that subscribes right after the frame it already has: that frame once, from the client, not again from the feed", async () => {
  const feed = createLiveFeed({ publish() {}, bind() {} } as unknown as EventBus);
  const frame = (seq: number) => JSON.stringify({ type: "step", seq });
  await nextTurn(); // the join subscribes at once, not after a turn the frames would be published in
  // In a cluster this node's follower has published up to 3; the client already has 1..5.
  feed.open("t", 3);
  const received: number[] = [];
  let stop: (() => void) | undefined;
  const attaching = attachWatcher({
    store: { events: async () => [] } as unknown as TaskStore,
    feed,
    taskId: "t",
    after: 5,
    watcher: {
      closed: false,
      send: (event) => received.push(event.seq),
      // As the in-process streams do: a feed listener.
      subscribe: () => (stop = feed.listen("t", (_frame, seq) => received.push(seq!))),
    },
  });
  let listening = false;
  for (let seq = 4; seq <= 7; seq++) {
    feed.publish("t", seq, frame(seq));
    if (seq === 5) listening = stop !== undefined; // subscribed inside the publish of 5
  }
  await attaching;
  expect(listening).toBe(true);
  expect(received).toEqual([6, 7]);
  stop?.();
});
