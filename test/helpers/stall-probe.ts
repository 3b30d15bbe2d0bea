/**
 * Measures how long the event loop is held: a 1 ms interval timer records the largest gap between
 * its ticks. The server under test runs in this process, so a request whose handler blocks shows up
 * as a gap. Measure a window with `measure(fn)`: the largest gap while `fn` runs (plus one tick after,
 * so a block that ends with the response is counted).
 */
export interface StallProbe {
  measure<T>(run: () => Promise<T>): Promise<{ value: T; stallMs: number }>;
  stop(): void;
}

export function startStallProbe(): StallProbe {
  let last = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
  }, 1);
  return {
    async measure(run) {
      await Bun.sleep(2); // a fresh window: the timer has ticked since whatever ran before
      last = performance.now();
      worst = 0;
      const value = await run();
      await Bun.sleep(3); // the timer ticks once the loop is free: a block at the very end is counted
      worst = Math.max(worst, performance.now() - last);
      return { value, stallMs: worst };
    },
    stop() {
      clearInterval(timer);
    },
  };
}
