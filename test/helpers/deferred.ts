/** Test helpers for waiting on things instead of sleeping. */

export function deferred<T = void>() {
  return Promise.withResolvers<T>();
}

/** Rejects if `promise` takes longer than `ms` — a guard so a broken test fails instead of hanging. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `check` until it returns true (for state that has no event to wait on). */
export async function until(check: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    await Bun.sleep(5);
  }
}

/**
 * Waits for a later turn of the event loop. The server's loops over stored data share one budget
 * per turn (`backgroundSlice`, src/lib/turn.ts); a test that checks where those loops give way must
 * begin in a turn of its own, or the budget the test before it spent (on a loaded machine, all of
 * it) makes the loop yield before its first unit of work.
 */
export function nextTurn(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}
