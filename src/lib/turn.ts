/**
 * Long loops over stored data (a replay, a whole log read back) give the event loop a turn now and
 * then: the SQLite store answers synchronously, so without a turn a loop over 60,000 events held
 * every other request and watcher for 100–270 ms (the compiled server on a 2-core VM).
 */

/** Resolves in a later turn of the event loop (after pending I/O), not among this turn's microtasks. */
export function nextTurn(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

/** A stretch of synchronous work: once it has run `ms`, the loop doing it waits for `next()`. */
export class TimeSlice {
  private started = performance.now();

  constructor(private readonly ms = 4) {}

  /** This slice has run its time: `await next()` before doing more. */
  get spent(): boolean {
    return performance.now() - this.started > this.ms;
  }

  /** Waits for a later turn of the event loop; the next slice starts then. */
  async next(): Promise<void> {
    await nextTurn();
    this.started = performance.now();
  }
}
