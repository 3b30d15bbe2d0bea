/**
 * The delivery loop on its own (src/webhooks/delivery.ts), with a store and a fetch of the test's:
 * attempts that fail at once (a refused connection) must not chain claim after claim in one turn
 * of the event loop while rows are due; and, over a real SQLite store, a slow destination never has
 * more than `perDestination` in flight, gets its next rows as its deliveries end, and all are sent.
 */
import { expect, test } from "bun:test";
import { silentLogger } from "../../src/lib/logger.ts";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import type { ClaimedWebhook } from "../../src/store/store.ts";
import { startWebhookDelivery } from "../../src/webhooks/delivery.ts";
import { nextTurn } from "../helpers/deferred.ts";

test("deliveries that fail at once give the event loop turns while many rows are due; every row is attempted and recorded once", async () => {
  const due: ClaimedWebhook[] = Array.from({ length: 3_000 }, (_, index) => ({
    id: `w${index}`,
    taskId: "t",
    url: "http://127.0.0.1:9/hook",
    destination: "http://127.0.0.1:9",
    event: "task.finished",
    payload: "{}",
    attempts: 0,
    nextAttemptAt: new Date(0),
    status: "pending",
    lastError: null,
    createdAt: new Date(0),
    deliveredAt: null,
  }));
  const recorded: string[] = [];
  const busy = () => {
    const until = performance.now() + 0.02; // a claim's and a record's cost, on a synchronous store
    while (performance.now() < until);
  };
  const store = {
    claimWebhooks: async (_now: Date, limit: number) => {
      busy();
      return due.splice(0, limit);
    },
    intakeWebhooks: async () => 0,
    recordWebhookAttempt: async (id: string) => {
      busy();
      recorded.push(id);
      return true;
    },
  };
  let recordedWhenDue: number | undefined;
  await nextTurn(); // the delivery begins with the shared budget whole, not with what earlier tests spent
  setImmediate(() => (recordedWhenDue = recorded.length));
  const delivery = startWebhookDelivery({
    store,
    key: new Uint8Array(32),
    logger: silentLogger,
    pollMs: 60_000,
    // A refused connection: the attempt fails within the turn.
    fetch: () => Promise.reject(new Error("connection refused")),
  });
  const started = performance.now();
  while (recorded.length < 3_000 && performance.now() - started < 10_000) await Bun.sleep(5);
  await delivery.stop();
  expect(recorded).toHaveLength(3_000);
  expect(new Set(recorded).size).toBe(3_000);
  // A turn came while the rows were being attempted, not only after all of them.
  expect(recordedWhenDue).toBeGreaterThan(0);
  expect(recordedWhenDue).toBeLessThan(3_000);
});

test("a slow destination has at most perDestination deliveries in flight, gets its next rows as they end, and every row of every destination is sent once", async () => {
  const store = createSqliteStore({ dataDir: ":memory:" });
  try {
    const at = new Date(Date.now() - 60_000);
    const hooks = (prefix: string, url: string, count: number, from: number) =>
      Array.from({ length: count }, (_, index) => ({ id: `${prefix}${index}`, url: `${url}/${index}`, event: "task.finished" as const, payload: "{}", createdAt: new Date(at.getTime() + from + index) }));
    await store.createTask({ id: "t", owner: "anonymous", agent: "default", input: "i", metadata: {}, createdAt: at });
    // The slow one's 30 rows are due before the quick ones' 10.
    await store.finishTask("t", { status: "cancelled", stopReason: "cancelled", output: null, error: null, totalSteps: 0, inputTokens: 0, outputTokens: 0, costUsd: null, finishedAt: at }, 1, "{}", undefined, [
      ...hooks("slow", "http://slow.test:8080/hook", 30, 0),
      ...hooks("quick", "http://quick.test/hook", 10, 1000),
    ]);
    const open = new Map<string, number>();
    const most = new Map<string, number>();
    const sent: string[] = [];
    let quickDoneWhileSlowOpen = 0;
    const delivery = startWebhookDelivery({
      store,
      key: new Uint8Array(32),
      logger: silentLogger,
      pollMs: 60_000,
      perDestination: 2,
      fetch: async (url, init) => {
        const origin = new URL(url).origin;
        open.set(origin, (open.get(origin) ?? 0) + 1);
        most.set(origin, Math.max(most.get(origin) ?? 0, open.get(origin)!));
        await Bun.sleep(origin === "http://slow.test:8080" ? 200 : 1);
        open.set(origin, open.get(origin)! - 1);
        sent.push((init.headers as Record<string, string>)["webhook-id"]!);
        if (origin === "http://quick.test" && (open.get("http://slow.test:8080") ?? 0) > 0) quickDoneWhileSlowOpen++;
        return new Response(null, { status: 204 });
      },
    });
    const started = performance.now();
    while (sent.length < 40 && performance.now() - started < 15_000) await Bun.sleep(5);
    await delivery.stop();
    expect(sent.toSorted()).toEqual([...Array.from({ length: 30 }, (_, index) => `slow${index}`), ...Array.from({ length: 10 }, (_, index) => `quick${index}`)].toSorted());
    expect(most.get("http://slow.test:8080")).toBe(2);
    // The quick destination was served while the slow one's were open, not after its backlog.
    expect(quickDoneWhileSlowOpen).toBe(10);
    expect((await store.taskWebhooks("t")).every((webhook) => webhook.status === "delivered")).toBe(true);
  } finally {
    store.close();
  }
});
