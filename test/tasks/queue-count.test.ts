/**
 * The cluster queue limit's count (src/tasks/runner.ts `ensureCapacity`, `refreshQueuedCount`):
 * a task is counted when accepted; a refresh of the cluster-wide count keeps the tasks whose inserts
 * are still on their way (the count's snapshot may not see them), so requests arriving while a
 * refresh is on its way never pass the limit.
 */
import { expect, test } from "bun:test";
import { silentLogger } from "../../src/lib/logger.ts";
import type { ClusterStore } from "../../src/store/store.ts";
import { createRunner } from "../../src/tasks/runner.ts";

/** A cluster runner (limit 2, counts refreshed every 50 ms) whose store's counts the test answers. */
function scripted() {
  const counts: PromiseWithResolvers<number>[] = [];
  const clusterStore = {
    countQueued: () => {
      const count = Promise.withResolvers<number>();
      counts.push(count);
      return count.promise;
    },
    signal: async () => {},
  } as unknown as ClusterStore;
  const runner = createRunner({
    store: {} as never,
    feed: {} as never,
    agents: {} as never,
    logger: silentLogger,
    maxConcurrentTasks: 1,
    maxQueuedTasks: 2,
    cluster: { store: clusterStore, node: "n1", leaseMs: 10_000, pollMs: 50, worker: false, follower: {} as never },
  });
  /** Whether a task is accepted; a request that has to wait for a count gets it when the test answers. */
  const accept = () =>
    runner.ensureCapacity().then(
      () => true,
      () => false,
    );
  return { runner, counts, accept };
}

test("tasks whose inserts are on their way when a refresh begins stay counted: the limit holds", async () => {
  const { counts, accept } = scripted();
  expect(await accept()).toBe(true); // A: a refresh begins (no count yet), A is counted; its insert is slow
  counts[0]!.resolve(0); // the snapshot did not see A
  await Bun.sleep(60); // the count is stale again; A's insert is still on its way
  expect(await accept()).toBe(true); // B: a second refresh begins, B is counted
  counts[1]!.resolve(0); // that snapshot sees neither A nor B
  await Bun.sleep(1);
  expect(await accept()).toBe(false); // A and B are queued (or about to be): 2 of 2
});

test("a task whose insert failed is released at once, and a stored one stops counting as on its way: neither refuses later tasks", async () => {
  const { runner, counts, accept } = scripted();
  expect(await accept()).toBe(true);
  expect(await accept()).toBe(true);
  counts[0]!.resolve(0);
  expect(await accept()).toBe(false); // 2 of 2 (the count it waited for saw neither: both on their way)
  runner.releaseCapacity(); // both inserts failed (the database blinked)
  runner.releaseCapacity();
  await Bun.sleep(60); // the count is stale: the next request refreshes it
  expect(await accept()).toBe(true);
  counts[1]!.resolve(0); // the first task's insert failed too: nothing stored
  runner.releaseCapacity();
  await Bun.sleep(1);
  expect(await accept()).toBe(true); // stored this time
  runner.submit({ id: "t1" } as never);
  await Bun.sleep(60);
  expect(await accept()).toBe(true); // a refresh begins; this one's insert is on its way
  counts[2]!.resolve(1); // the count has t1: t1 is not counted again as on its way
  await Bun.sleep(1);
  expect(runner.stats().queued).toBe(2); // t1 + the one on its way
  expect(await accept()).toBe(false);
});

test("full by a count that tasks have outrun (they started, or ended): counted again before refusing, and accepted", async () => {
  const { runner, counts, accept } = scripted();
  expect(await acceptAnswering(accept, counts, 0)).toBe(true);
  runner.submit({ id: "t1" } as never); // stored; it starts at once on some node
  expect(await accept()).toBe(true);
  runner.submit({ id: "t2" } as never);
  expect(runner.stats().queued).toBe(2); // this node's count: full
  await Bun.sleep(110); // the count is older than the recount interval
  const waiting = accept(); // full by the old count: counts again
  expect(counts.length).toBe(2);
  counts[1]!.resolve(0); // both have started: nothing is queued in the cluster
  expect(await waiting).toBe(true);
  // A fresh count that says full is believed: no count per refused request.
  runner.submit({ id: "t3" } as never);
  expect(await accept()).toBe(true);
  expect(await accept()).toBe(false);
  expect(counts.length).toBe(2);
});

/** `accept()`, answering the count it starts with `queued`. */
async function acceptAnswering(accept: () => Promise<boolean>, counts: PromiseWithResolvers<number>[], queued: number) {
  const accepted = accept();
  counts.at(-1)!.resolve(queued);
  return accepted;
}
