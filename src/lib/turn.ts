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

/**
 * A budget of synchronous work per turn of the event loop: once `ms` have run since the turn's
 * slice began, the loops sharing it wait for `next()`. Loops that share one (`backgroundSlice`)
 * share its budget: 100 replays at once take ~4 ms of a turn between them, not 4 ms each — and
 * they take turns, as a loop that waited goes on after those already waiting.
 */
export class TimeSlice {
  private started = performance.now();
  private turn: Promise<void> | undefined;

  constructor(private readonly ms = 4) {}

  /** This slice has run its time: `await next()` before doing more. */
  get spent(): boolean {
    return performance.now() - this.started > this.ms;
  }

  /** Waits for a later turn of the event loop; the next slice begins then, once for all waiting. */
  next(): Promise<void> {
    this.turn ??= new Promise<void>((resolve) =>
      setImmediate(() => {
        this.turn = undefined;
        this.started = performance.now();
        resolve();
      }),
    );
    return this.turn;
  }
}

/** The slice the server's loops over stored data share (replays, whole-log reads, retention). */
export const backgroundSlice = new TimeSlice();

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
