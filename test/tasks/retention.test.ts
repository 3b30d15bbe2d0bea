/**
 * Event-log retention's schedule (src/tasks/retention.ts): a prune at start-up, then one every
 * interval with the cutoff moved on by the clock. Against a fake store that only records what
 * `pruneEvents` was asked (how a store prunes is the store tests' business), with a small interval
 * and an injected clock in place of the hourly timer and the wall clock.
 */
import { afterEach, expect, test } from "bun:test";
import { createLogger } from "../../src/lib/logger.ts";
import type { TaskStore } from "../../src/store/store.ts";
import { startRetention } from "../../src/tasks/retention.ts";
import { until } from "../helpers/deferred.ts";

const HOUR = 3600_000;
let stops: (() => void)[] = [];
afterEach(() => {
  for (const stop of stops) stop();
  stops = [];
});

/** A store with `pruneEvents` alone, recording each cutoff and answering `answer(call)`. */
function fakeStore(answer: (call: number) => number | Error = () => 0) {
  const cutoffs: number[] = [];
  const store = {
    async pruneEvents(finishedBefore: Date) {
      cutoffs.push(finishedBefore.getTime());
      const answered = answer(cutoffs.length);
      if (answered instanceof Error) throw answered;
      return answered;
    },
  };
  return { store: store as unknown as TaskStore, cutoffs };
}

test("prunes at start-up, then again every interval with the cutoff the clock has moved to; stop ends it", async () => {
  let clock = Date.parse("2030-01-01T00:00:00Z");
  const { store, cutoffs } = fakeStore((call) => (call === 2 ? 3 : 0));
  const lines: string[] = [];
  const retention = startRetention({ store, retentionHours: 24, logger: createLogger("info", (line) => lines.push(line)), intervalMs: 20, now: () => new Date(clock) });
  stops.push(retention.stop);
  // At start-up, before any interval has passed: the cutoff is retentionHours before now.
  expect(cutoffs).toEqual([clock - 24 * HOUR]);

  // An hour on: the next tick prunes up to the new cutoff.
  clock += HOUR;
  await until(() => cutoffs.includes(clock - 24 * HOUR), "a second prune, at the moved cutoff");
  expect(cutoffs.length).toBeGreaterThanOrEqual(2);
  expect(cutoffs.slice(1).every((cutoff) => cutoff === clock - 24 * HOUR)).toBe(true);
  await until(() => lines.some((line) => line.includes("retention: pruned event logs")), "the prune to be logged");
  expect(lines.find((line) => line.includes("retention: pruned event logs"))).toContain('"tasks":3');

  retention.stop();
  const after = cutoffs.length;
  await Bun.sleep(100);
  expect(cutoffs.length).toBe(after);
});

test("a prune that fails is logged, and the next tick prunes again", async () => {
  const { store, cutoffs } = fakeStore((call) => (call === 1 ? new Error("disk on fire") : 0));
  const lines: string[] = [];
  const retention = startRetention({ store, retentionHours: 1, logger: createLogger("info", (line) => lines.push(line)), intervalMs: 20 });
  stops.push(retention.stop);
  await until(() => cutoffs.length >= 2, "a prune after the failed one");
  expect(lines.filter((line) => line.includes("retention: prune failed"))).toEqual([expect.stringContaining("disk on fire")]);
  expect(lines.find((line) => line.includes("retention: prune failed"))).toContain(" error ");
});
