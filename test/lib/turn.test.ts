/** src/lib/turn.ts: time slices, and coalesced checks. */
import { expect, test } from "bun:test";
import { coalesced, TimeSlice } from "../../src/lib/turn.ts";

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

test("loops that share a TimeSlice share its budget per turn, and take turns: five busy loops hold a turn ~4 ms between them, not ~4 ms each", async () => {
  const shared = new TimeSlice(4);
  const busy = (ms: number) => {
    const until = performance.now() + ms;
    while (performance.now() < until);
  };
  const steps = [0, 0, 0, 0, 0];
  const order: number[] = [];
  const loop = async (id: number) => {
    for (let step = 0; step < 30; step++) {
      busy(0.5);
      steps[id]!++;
      order.push(id);
      if (shared.spent) await shared.next();
    }
  };
  // A ticker on its own turns: the steps the loops made between two of its ticks are what one turn
  // held. Counted in steps, not milliseconds: a machine that preempts this process makes a step take
  // longer and so fewer fit in a slice — never more.
  const perTurn: number[] = [];
  let running = true;
  let stepsSoFar = 0;
  const tick = () => {
    const total = steps.reduce((sum, value) => sum + value, 0);
    perTurn.push(total - stepsSoFar);
    stepsSoFar = total;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  await Promise.all([0, 1, 2, 3, 4].map(loop));
  running = false;
  expect(steps).toEqual([30, 30, 30, 30, 30]);
  const busyTurns = perTurn.filter((count) => count > 0).sort((a, b) => a - b);
  const median = busyTurns[busyTurns.length >> 1]!;
  // Shared: ~4 ms of 0.5 ms steps, plus one step per loop that waited: at most ~13 a turn. Five
  // slices of their own would make ~8 steps each, ~40 a turn.
  expect(median).toBeLessThanOrEqual(16);
  // They take turns: no loop runs all of its steps before another starts.
  expect(order.slice(0, 30).some((id) => id !== order[0])).toBe(true);
});
