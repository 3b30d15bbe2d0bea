/**
 * A cluster node's shutdown and a claim under way (src/tasks/runner.ts `claim`, `shutdown`): a
 * claim asked for before the shutdown may be answered after it — a query that waited for a pooled
 * connection can even take the task the shutdown just handed over. The shutdown waits for it, the
 * task it got is released and the other workers are told, before the node exits; otherwise the task
 * waits for its lease to run out (seen once in `cluster.test.ts` "SIGTERM … hands it over").
 */
import { expect, test } from "bun:test";
import { silentLogger } from "../../src/lib/logger.ts";
import type { Claim, ClusterStore } from "../../src/store/store.ts";
import { createRunner } from "../../src/tasks/runner.ts";

test("a claim answered after the shutdown began: its task is released and the workers told before the shutdown ends", async () => {
  const claims: PromiseWithResolvers<Claim | undefined>[] = [];
  const releases: { taskId: string; attempt: number }[][] = [];
  const release = Promise.withResolvers<void>();
  const signals: string[] = [];
  const clusterStore = {
    claimNext: () => {
      const claim = Promise.withResolvers<Claim | undefined>();
      claims.push(claim);
      return claim.promise;
    },
    releaseLeases: (_node: string, leases: { taskId: string; attempt: number }[]) => {
      releases.push(leases);
      return release.promise;
    },
    signal: async (signal: { kind: string }) => {
      signals.push(signal.kind);
    },
  } as unknown as ClusterStore;
  const runner = createRunner({
    store: {} as never,
    feed: {} as never,
    agents: new Map() as never,
    logger: silentLogger,
    maxConcurrentTasks: 1,
    maxQueuedTasks: 10,
    cluster: { store: clusterStore, node: "n1", leaseMs: 10_000, pollMs: 10_000, worker: true, follower: {} as never },
  });
  runner.submit({ id: "t0" } as never); // a worker claims from the database at once
  await Bun.sleep(1);
  expect(claims).toHaveLength(1);
  signals.length = 0;

  let shutDown = false;
  const shutdown = runner.shutdown().then(() => (shutDown = true));
  await Bun.sleep(5);
  expect(shutDown).toBe(false); // it waits for the claim under way
  claims[0]!.resolve({ task: { id: "t1", agent: "a" }, attempt: 2, takeover: false, cancelRequested: false, inputsPending: false } as never);
  await Bun.sleep(5);
  expect(releases).toEqual([[{ taskId: "t1", attempt: 2 }]]);
  expect(shutDown).toBe(false); // … and for that task's release
  release.resolve();
  await shutdown;
  expect(signals).toEqual(["queued"]); // the other workers may claim it now, not at their next poll
  expect(claims).toHaveLength(1); // nothing claimed after the shutdown began
});

test("a task claimed just before the shutdown, still catching its watchers up when it began: not started, released and announced", async () => {
  const events = Promise.withResolvers<never[]>();
  const releases: { taskId: string; attempt: number }[][] = [];
  const signals: string[] = [];
  let claimed = false;
  const clusterStore = {
    claimNext: async () => {
      if (claimed) return undefined;
      claimed = true;
      return { task: { id: "t1", agent: "a", last_seq: 5, total_steps: 0, input_tokens: 0, output_tokens: 0, cost_usd: null }, attempt: 3, takeover: true, cancelRequested: false, inputsPending: false };
    },
    releaseLeases: async (_node: string, leases: { taskId: string; attempt: number }[]) => {
      releases.push(leases);
    },
    signal: async (signal: { kind: string }) => {
      signals.push(signal.kind);
    },
  } as unknown as ClusterStore;
  const agentsAsked: string[] = [];
  const runner = createRunner({
    // The tail this node's follower kept is behind the log: the claim catches it up first (slow here).
    store: { events: () => events.promise } as never,
    feed: { open() {}, close() {}, tail: () => ({ lastSeq: 2, framesAfter: () => [] }), publish() {} } as never,
    agents: { get: (name: string) => void agentsAsked.push(name) } as never,
    logger: silentLogger,
    maxConcurrentTasks: 1,
    maxQueuedTasks: 10,
    cluster: { store: clusterStore, node: "n1", leaseMs: 10_000, pollMs: 10_000, worker: true, follower: { release() {} } as never },
  });
  runner.submit({ id: "t0" } as never);
  await Bun.sleep(1); // claimed; catching the tail up
  signals.length = 0;
  let shutDown = false;
  const shutdown = runner.shutdown().then(() => (shutDown = true));
  await Bun.sleep(5);
  expect(shutDown).toBe(false);
  events.resolve([]);
  await shutdown;
  expect(agentsAsked).toEqual([]); // never run on the stopping node
  expect(releases).toEqual([[{ taskId: "t1", attempt: 3 }]]);
  expect(signals).toEqual(["queued"]);
});
