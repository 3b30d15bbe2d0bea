/**
 * Sharing the event loop. Long loops over stored data (a replay, a whole log read back, retention)
 * give it a turn now and then: the SQLite store answers synchronously, so without a turn a loop over
 * 60,000 events held every other request and watcher for 100–400 ms (the compiled server on a 2-core
 * VM; BENCHMARKS.md "Reading a long log back"). And an async check that several events may ask for
 * at once runs one at a time without losing a request (`coalesced`).
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

/**
 * Wraps an async check so that runs never overlap and no call is lost: a call while one runs makes
 * exactly one more run after it, however many came meanwhile (a park announced while a status read
 * was on its way used to be dropped, and waited for the next poll). Resolves when the runs it
 * caused are done. `run` handles its own errors.
 */
export function coalesced(run: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let again = false;
  return () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await run();
        } while (again);
      } finally {
        running = undefined;
      }
    })();
    return running;
  };
}
