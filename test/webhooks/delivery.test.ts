/**
 * The delivery loop on its own (src/webhooks/delivery.ts), with a store and a fetch of the test's:
 * attempts that fail at once (a refused connection) must not chain claim after claim in one turn
 * of the event loop while rows are due; and, over a real SQLite store, a slow destination never has
 * more than `perDestination` in flight, gets its next rows as its deliveries end, and all are sent;
 * a destination's count of deliveries in flight goes back to none as they end; and, over SQLite and
 * PostgreSQL, a row written after hundreds of destinations were served is sent at the kick that
 * follows its write.
 */
import { expect, test } from "bun:test";
import { silentLogger } from "../../src/lib/logger.ts";
import { createPostgresStore } from "../../src/store/postgres-store.ts";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import type { ClaimedWebhook, TaskStore, WebhookFairness } from "../../src/store/store.ts";
import { startWebhookDelivery } from "../../src/webhooks/delivery.ts";
import { nextTurn } from "../helpers/deferred.ts";
import { describePostgres } from "../helpers/postgres.ts";
import { newTask, outcome } from "../store/conformance.ts";

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

test("a destination's count of deliveries in flight goes back to none as they end: with 1 per destination, its rows go out one after another, all of them", async () => {
  const store = createSqliteStore({ dataDir: ":memory:" });
  let busy: ReadonlyMap<string, number> | undefined;
  let open = 0;
  let most = 0;
  const delivery = startWebhookDelivery({
    store: {
      claimWebhooks: (now: Date, limit: number, leaseMs: number, fairness?: WebhookFairness) => {
        busy = fairness?.busy;
        return store.claimWebhooks(now, limit, leaseMs, fairness);
      },
      intakeWebhooks: (limit: number) => store.intakeWebhooks(limit),
      recordWebhookAttempt: (...args: Parameters<TaskStore["recordWebhookAttempt"]>) => store.recordWebhookAttempt(...args),
    },
    key: new Uint8Array(32),
    logger: silentLogger,
    pollMs: 60_000,
    perDestination: 1,
    fetch: async () => {
      most = Math.max(most, ++open);
      await Bun.sleep(5);
      open--;
      return new Response(null, { status: 204 });
    },
  });
  try {
    const at = new Date(Date.now() - 60_000);
    await store.createTask(newTask("t"));
    await store.finishTask("t", outcome("cancelled"), 1, "{}", undefined, Array.from({ length: 5 }, (_, index) => ({ id: `h${index}`, url: `http://one.test/${index}`, event: "task.finished" as const, payload: "{}", createdAt: new Date(at.getTime() + index) })));
    delivery.kick();
    const started = performance.now();
    const delivered = async () => (await store.taskWebhooks("t")).filter((webhook) => webhook.status === "delivered").length;
    while ((await delivered()) < 5 && performance.now() - started < 5_000) await Bun.sleep(5);
    // A count not taken back would leave the destination full after its first delivery: 1 of 5 sent.
    expect(await delivered()).toBe(5);
    expect(most).toBe(1);
    await delivery.stop(); // every delivery has ended
    expect(busy).toBeDefined();
    expect([...busy!]).toEqual([]);
  } finally {
    await delivery.stop();
    store.close();
  }
});

/**
 * 300 destinations served once through the worker (1 s attempts: leases of 31 s), the clock moved
 * past every lease, then a row for a new destination and the kick its write gives: it is sent then,
 * not at the next poll (60 s here). Destinations left due with nothing to send, each claim reading a
 * bounded number of them, made the claim after the kick come back empty, and the worker waits for
 * the poll after an empty claim.
 */
async function freshAfterServed(store: TaskStore): Promise<void> {
  const at = new Date("2026-03-04T05:07:00.000Z");
  let clock = at.getTime();
  const sent: string[] = [];
  const delivery = startWebhookDelivery({
    store,
    key: new Uint8Array(32),
    logger: silentLogger,
    pollMs: 60_000,
    timeoutMs: 1000,
    now: () => new Date(clock),
    fetch: async (url) => {
      sent.push(url);
      return new Response(null, { status: 204 });
    },
  });
  const hook = (id: string, url: string) => ({ id, url, event: "task.finished" as const, payload: "{}", createdAt: new Date(clock) });
  try {
    await store.createTask(newTask("t"));
    await store.finishTask("t", outcome("cancelled"), 1, "{}", undefined, Array.from({ length: 300 }, (_, index) => hook(`h${index}`, `http://d${index}.test/`)));
    delivery.kick();
    const started = performance.now();
    const pending = async () => (await store.taskWebhooks("t")).filter((webhook) => webhook.status === "pending").length;
    while ((await pending()) > 0 && performance.now() - started < 20_000) await Bun.sleep(20);
    expect(await pending()).toBe(0);
    expect(sent).toHaveLength(300);
    clock += 31_000 + 1_000; // past every lease (the attempt's 1 s + 30 s)
    await store.createTask(newTask("u"));
    await store.finishTask("u", outcome("cancelled"), 1, "{}", undefined, [hook("fresh", "http://fresh.test/")]);
    delivery.kick(); // as the server does when it writes a webhook
    const kicked = performance.now();
    while (!sent.includes("http://fresh.test/") && performance.now() - kicked < 5_000) await Bun.sleep(5);
    expect(sent.slice(300)).toEqual(["http://fresh.test/"]);
  } finally {
    await delivery.stop();
  }
}

test("a row written after 300 destinations were served is sent at the kick that follows its write (SQLite)", async () => {
  const store = createSqliteStore({ dataDir: ":memory:" });
  try {
    await freshAfterServed(store);
  } finally {
    store.close();
  }
});

describePostgres("delivery over PostgreSQL", (pg) => {
  test("a row written after 300 destinations were served is sent at the kick that follows its write (PostgreSQL)", async () => {
    const store = await createPostgresStore({ url: await pg.createDatabase(), max: 4 });
    try {
      await freshAfterServed(store);
    } finally {
      await store.close();
    }
  });
});
