import { expect, test } from "bun:test";
import { raceAbort } from "../../src/lib/abort.ts";

/** Counts listeners added to and removed from a signal. */
function countListeners(signal: AbortSignal) {
  const counts = { added: 0, removed: 0 };
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = ((...args: Parameters<typeof add>) => (counts.added++, add(...args))) as typeof add;
  signal.removeEventListener = ((...args: Parameters<typeof remove>) => (counts.removed++, remove(...args))) as typeof remove;
  return counts;
}

test("raceAbort removes its listener whenever the promise settles first", async () => {
  const controller = new AbortController();
  const counts = countListeners(controller.signal);
  for (let index = 0; index < 100; index++) {
    expect(await raceAbort(Promise.resolve(index), controller.signal)).toBe(index);
    await expect(raceAbort(Promise.reject(new Error(`no ${index}`)), controller.signal)).rejects.toThrow(`no ${index}`);
  }
  expect(counts.added).toBe(200);
  expect(counts.removed).toBe(200);
});

test("raceAbort rejects with the reason at once when the signal aborts first", async () => {
  const controller = new AbortController();
  const never = new Promise<never>(() => {});
  const raced = raceAbort(never, controller.signal);
  const reason = new Error("cancelled");
  controller.abort(reason);
  await expect(raced).rejects.toBe(reason);
  await expect(raceAbort(Promise.resolve(1), controller.signal)).rejects.toBe(reason);
});
