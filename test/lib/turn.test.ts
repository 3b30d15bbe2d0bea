/** src/lib/turn.ts: a turn of the event loop, time slices, and coalesced checks. */
import { expect, test } from "bun:test";
import { coalesced, nextTurn, TimeSlice } from "../../src/lib/turn.ts";

test("nextTurn resolves after what the event loop had due (a setImmediate queued before it), not among this turn's microtasks", async () => {
  const order: string[] = [];
  setImmediate(() => order.push("immediate"));
  queueMicrotask(() => order.push("microtask"));
  await nextTurn();
  order.push("after the turn");
  expect(order).toEqual(["microtask", "immediate", "after the turn"]);
});

test("a TimeSlice is spent once its time has run, and starts over after next()", async () => {
  const slice = new TimeSlice(5);
  expect(slice.spent).toBe(false);
  const until = performance.now() + 6;
  while (performance.now() < until);
  expect(slice.spent).toBe(true);
  await slice.next();
  expect(slice.spent).toBe(false);
});

test("coalesced: runs never overlap; calls during a run make exactly one more run after it; each call resolves when the runs it caused are done", async () => {
  let active = 0;
  let most = 0;
  let runs = 0;
  const gates: PromiseWithResolvers<void>[] = [];
  const check = coalesced(async () => {
    active++;
    most = Math.max(most, active);
    runs++;
    const gate = Promise.withResolvers<void>();
    gates.push(gate);
    await gate.promise;
    active--;
  });
  const first = check();
  // Three calls while the first run is on its way (a park told of during a status read): one more run.
  const during = [check(), check(), check()];
  expect(runs).toBe(1);
  gates[0]!.resolve();
  await Bun.sleep(1);
  expect(runs).toBe(2);
  gates[1]!.resolve();
  await Promise.all([first, ...during]);
  expect(runs).toBe(2);
  expect(most).toBe(1);
  // Idle again: a call runs at once.
  const later = check();
  expect(runs).toBe(3);
  gates[2]!.resolve();
  await later;
  // A run that throws lets the next call run.
  const failing = coalesced(async () => {
    throw new Error("read failed");
  });
  await expect(failing()).rejects.toThrow("read failed");
  await expect(failing()).rejects.toThrow("read failed");
});
