/**
 * Sharing the event loop. Long loops over stored data (a replay, a whole log read back, retention)
 * give it a turn now and then: the SQLite store answers synchronously, so without a turn a loop over
 * 60,000 events held every other request and watcher for 100–400 ms (the compiled server on a 2-core
 * VM; BENCHMARKS.md "Reading a long log back"). And an async check that several events may ask for
 * at once runs one at a time without losing a request (`coalesced`).
 */

/**
 * A budget of synchronous work per turn of the event loop: once `ms` have run since the turn's
 * slice began, the loops sharing it wait for `next()`. Loops that share one (`backgroundSlice`)
 * share its budget, begun once per turn for all that waited: a turn holds ~`ms` plus one unit of
 * work (a page read, a frame sent) per loop that was waiting — 100 replays at once held /health
 * 25–30 ms instead of 150–300 ms with a slice each. Every waiting loop gets its unit each turn, so
 * none starves; the one that woke first may use the rest of the budget.
 */
export class TimeSlice {
  private started = 0;
  /** A slice was begun in this turn of the event loop (cleared by the next turn). */
  private begun = false;
  private turn: Promise<void> | undefined;

  constructor(private readonly ms = 4) {}

  /** This slice has run its time: `await next()` before doing more. The first look in a turn begins one. */
  get spent(): boolean {
    if (!this.begun) this.begin();
    return performance.now() - this.started > this.ms;
  }

  /** Waits for a later turn of the event loop; the next slice begins then, once for all waiting. */
  next(): Promise<void> {
    this.turn ??= new Promise<void>((resolve) =>
      setImmediate(() => {
        this.turn = undefined;
        this.begin();
        resolve();
      }),
    );
    return this.turn;
  }

  private begin() {
    this.begun = true;
    this.started = performance.now();
    setImmediate(() => (this.begun = false));
  }
}

/**
 * The slice the server's long loops share: over stored data (replays, whole-log reads, retention),
 * and over what a model sent in one go (a reply's parts already in the client's buffers, the calls
 * of a step that settle at once): all of them together hold a turn ~4 ms.
 */
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
  const loop = async () => {
    try {
      do {
        again = false;
        await run();
      } while (again);
    } finally {
      running = undefined;
    }
  };
  return () => {
    if (running) {
      again = true;
      return running;
    }
    // Set before `run` starts: a call from inside it (before its first await) is folded in too.
    const done = Promise.withResolvers<void>();
    running = done.promise;
    loop().then(done.resolve, done.reject);
    return done.promise;
  };
}
