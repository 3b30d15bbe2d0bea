/**
 * The delivery loop on its own (src/webhooks/delivery.ts), with a store and a fetch of the test's:
 * attempts that fail at once (a refused connection) must not chain claim after claim in one turn
 * of the event loop while rows are due.
 */
import { expect, test } from "bun:test";
import { silentLogger } from "../../src/lib/logger.ts";
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
