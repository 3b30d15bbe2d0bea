/**
 * The cluster follower (src/cluster/follower.ts) on its own, with a store of the test's that answers
 * on a later turn as PostgreSQL does: a watcher that joins with a status read taken before the task
 * ended must not make this node publish the task's last frames again.
 */
import { expect, test } from "bun:test";
import type { EventBus } from "../../src/bus/bus.ts";
import { createLiveFeed } from "../../src/bus/live-feed.ts";
import { createFollower } from "../../src/cluster/follower.ts";
import { silentLogger } from "../../src/lib/logger.ts";
import type { Task } from "../../src/protocol/task.ts";
import type { TaskStore } from "../../src/store/store.ts";
import { until } from "../helpers/deferred.ts";

test("a watcher joining with a status read from before the end: the frames a connected watcher already got are not published again", async () => {
  // What the task's topic carries: the WebSocket watcher W1 stays subscribed after the result.
  const onTopic: number[] = [];
  const feed = createLiveFeed({ publish: (_topic: string, frame: string) => onTopic.push(JSON.parse(frame).seq), bind() {} } as unknown as EventBus);
  const log = [1, 2, 3].map((seq) => ({ seq, frame: JSON.stringify(seq === 3 ? { type: "result", seq } : { type: "step", seq }) }));
  const store = {
    events: async (_id: string, after: number) => {
      await Bun.sleep(1);
      return log.filter((event) => event.seq > after);
    },
  } as unknown as TaskStore;
  const follower = createFollower({ store, feed, logger: silentLogger, isLocal: () => false, pollMs: 60_000 });
  try {
    const task = (last_seq: number) => ({ id: "t", status: "running", last_seq }) as Task;
    const stopW1 = follower.watch(task(0)); // W1 follows the task, which runs on another node
    await until(() => onTopic.length === 3, "the follower publishes 1..3");
    expect(feed.tail("t")).toBeUndefined(); // the result closed the tail
    const stopW2 = follower.watch(task(1)); // W2's read saw the task running at seq 1
    await Bun.sleep(30);
    expect(onTopic).toEqual([1, 2, 3]);
    stopW2();
    stopW1();
  } finally {
    follower.close();
  }
});

test("a node that never followed the task: a watcher that read it ended, then one whose read is older, publish nothing", async () => {
  const onTopic: number[] = [];
  const feed = createLiveFeed({ publish: (_topic: string, frame: string) => onTopic.push(JSON.parse(frame).seq), bind() {} } as unknown as EventBus);
  const log = Array.from({ length: 8 }, (_, index) => ({ seq: index + 1, frame: JSON.stringify({ type: index === 7 ? "result" : "step", seq: index + 1 }) }));
  const store = { events: async (_id: string, after: number, limit: number) => log.filter((event) => event.seq > after).slice(0, limit) } as unknown as TaskStore;
  const follower = createFollower({ store, feed, logger: silentLogger, isLocal: () => false, pollMs: 60_000 });
  try {
    // W1 read the task completed: it replays 1..8 from the store and subscribes, with no tail here.
    const stopW1 = follower.watch({ id: "t", status: "completed", last_seq: 8 } as Task);
    // W2's read, taken before the end, is answered after W1 joined.
    const stopW2 = follower.watch({ id: "t", status: "running", last_seq: 6 } as Task);
    await Bun.sleep(30);
    expect(onTopic).toEqual([]);
    expect(feed.tail("t")).toBeUndefined();
    stopW2();
    stopW1();
  } finally {
    follower.close();
  }
});
