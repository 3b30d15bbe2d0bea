/**
 * WAL checkpoints off the event loop, for the SQLite store.
 *
 * SQLite's automatic checkpoint runs inside the commit that crosses ~1,000 WAL pages: it copies
 * those pages into the database file and, with `synchronous=NORMAL`, fsyncs the WAL and the
 * database — 6–8 ms on the main thread here (a 2-vCPU VM, virtio disk), during which no watcher gets
 * a frame and no request is answered. Instead, the store's connection has `wal_autocheckpoint=0`
 * and tells this module how much it wrote; past `thresholdBytes` a second connection, in a worker
 * thread, runs `PRAGMA wal_checkpoint(PASSIVE)`, which never blocks a writer.
 *
 * The WAL starts over only when a commit begins with every frame checkpointed; the event loop keeps
 * committing while the worker copies, so the worker alone would never catch up and the WAL would
 * grow without end. So the worker goes again while its rounds shrink (each copies what was written
 * during the one before), and once a round copied at most `CATCH_UP_FRAMES` — or stopped shrinking:
 * the writer outpaces it — the main thread checkpoints what is left (`catchUp`), and the next commit
 * starts the WAL over. That catch-up copies a few pages in ~0.2 ms, then fsyncs the WAL and the
 * database: ~2–3 ms on this VM's disk, against 6–10 ms for SQLite's own checkpoint of ~1,000 pages.
 * Commits themselves never fsync (WAL, `synchronous=NORMAL`).
 *
 * A writer that can wait (retention: it deletes as fast as the event loop lets it, ~1.5 MB of WAL
 * per 4 ms piece) waits for `settled()` while a checkpoint is under way: writing on, it outpaced the
 * worker, and the main thread's catch-up copied the rest and fsynced it — 10–130 ms at a time.
 *
 * The worker starts at the first checkpoint (a server that writes little never starts one), is
 * unref'd, and is given its code as a Blob URL, so the compiled binary needs no extra entry point.
 * If it cannot start or fails, the store falls back to SQLite's automatic checkpoint on the main
 * thread (`onFallback`), as before — durability does not depend on this module. A failure may
 * pass (a checkpoint cannot grow the database file on a full disk): with `onResume`, a new worker
 * is tried a minute later (then after twice as long each time it fails again, at most an hour).
 */
import type { Logger } from "../lib/logger.ts";

export interface Checkpointer {
  /** The store committed about `bytes` of new rows: checkpoints when enough has built up. */
  wrote(bytes: number): void;
  /**
   * While a checkpoint is under way: a promise of its end (the WAL caught up, or the worker given up
   * on). Undefined when none is. For writers that can wait, so that the worker keeps up.
   */
  settled(): Promise<void> | undefined;
  /** Stops the worker (its connection closed first, so the store's own close is the last one). */
  close(): Promise<void>;
}

export interface CheckpointerOptions {
  /** The database file (its WAL is `<path>-wal`). */
  path: string;
  /** WAL bytes between checkpoints (SQLite's default interval is 1,000 pages, ~4 MiB). */
  thresholdBytes?: number;
  /** The database's page size (a WAL frame is one page). */
  pageBytes?: number;
  logger?: Logger;
  /** The worker cannot be used: the store turns SQLite's automatic checkpoint back on. */
  onFallback(): void;
  /** A new worker is about to be tried after a fallback: the store turns SQLite's automatic checkpoint off again. */
  onResume?(): void;
  /** The first wait before trying a worker again after a fallback (default 60 s). */
  retryMs?: number;
  /** On the main thread, after the worker's checkpoint: `PRAGMA wal_checkpoint(PASSIVE)` on the store's connection. */
  catchUp(): CheckpointResult;
}

/** What a checkpoint reported: frames in the WAL and frames copied (PRAGMA wal_checkpoint). */
export interface CheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}

/** A worker round that copied at most this many frames is followed by the main thread's catch-up. */
const CATCH_UP_FRAMES = 64;
/** Rounds in a row before the main thread catches up whatever is left (a write rate the worker cannot outpace). */
const MAX_ROUNDS = 8;

type Reply = { type: "opened" } | { type: "checkpointed"; result: CheckpointResult } | { type: "failed"; error: string } | { type: "closed" };

/** The worker: one connection, one checkpoint per request, replies in order. */
const WORKER_SOURCE = `
import { Database } from "bun:sqlite";
let db;
self.onmessage = (event) => {
  const message = event.data;
  try {
    if (message.type === "open") {
      db = new Database(message.path, { readwrite: true, create: false });
      db.run("PRAGMA busy_timeout = 5000");
      db.run("PRAGMA synchronous = NORMAL");
      postMessage({ type: "opened" });
    } else if (message.type === "checkpoint") {
      const row = db.query("PRAGMA wal_checkpoint(PASSIVE)").get();
      postMessage({ type: "checkpointed", result: row });
    } else if (message.type === "close") {
      db?.close();
      db = undefined;
      postMessage({ type: "closed" });
      self.close();
    }
  } catch (error) {
    postMessage({ type: "failed", error: String(error && error.message || error) });
  }
};
`;

export function createCheckpointer(options: CheckpointerOptions): Checkpointer & { readonly checkpoints: CheckpointResult[] } {
  const threshold = options.thresholdBytes ?? 4 * 1024 * 1024;
  const pageBytes = options.pageBytes ?? 4096;
  let pending = 0;
  /**
   * WAL bytes per byte the store reported (B-tree pages are rewritten whole, indexes too): learned
   * from each checkpoint's frame count, so that one comes after ~`threshold` bytes of WAL. It starts
   * high (an early first checkpoint rather than a large WAL); ~2–5 was measured for event logs.
   */
  let amplification = 4;
  /** What had been reported when the last checkpoint was asked for. */
  let requested = 0;
  let worker: Worker | undefined;
  let url: string | undefined;
  /** A checkpoint was asked for and has not been answered. */
  let inFlight = false;
  /** Frames of the current WAL already in the database file (the last round's `checkpointed`). */
  let backfilled = 0;
  /** Worker rounds since the last catch-up, and what the last one copied. */
  let rounds = 0;
  let lastCopied = Number.POSITIVE_INFINITY;
  let failed = false;
  const firstRetryMs = options.retryMs ?? 60_000;
  let retryMs = firstRetryMs;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let closing: Promise<void> | undefined;
  let onClosed: (() => void) | undefined;
  /** The last few results, newest last (tests and diagnostics). */
  const checkpoints: CheckpointResult[] = [];
  /** Those waiting for the checkpoint under way to end (`settled`). */
  let waiting: (() => void)[] = [];

  function settle() {
    const waiters = waiting;
    waiting = [];
    for (const resolve of waiters) resolve();
  }

  function record(result: CheckpointResult) {
    checkpoints.push(result);
    if (checkpoints.length > 16) checkpoints.shift();
  }

  function fail(why: string) {
    if (failed || closing) return;
    failed = true;
    inFlight = false;
    settle();
    options.logger?.warn("sqlite: WAL checkpoints go back to the main thread", { why });
    try {
      options.onFallback();
    } catch (error) {
      options.logger?.warn("sqlite: could not turn SQLite's own checkpoints back on", { error: String(error) });
    }
    stop();
    if (!options.onResume) return;
    retry = setTimeout(() => {
      retry = undefined;
      if (closing) return;
      try {
        options.onResume!();
      } catch (error) {
        options.logger?.warn("sqlite: WAL checkpoints stay on the main thread", { error: String(error) });
        return;
      }
      failed = false;
      pending = threshold; // a checkpoint at the next write, which starts the worker (or fails again)
      options.logger?.info("sqlite: WAL checkpoints go to a worker thread again");
    }, retryMs);
    retry.unref?.();
    retryMs = Math.min(3_600_000, retryMs * 2);
  }

  /** `closed`: the worker closed itself (no `terminate`, which waits for its VM to go). */
  function stop(closed = false) {
    if (!closed) worker?.terminate();
    worker = undefined;
    if (url) URL.revokeObjectURL(url);
    url = undefined;
    settle();
    onClosed?.();
  }

  function start(): Worker {
    url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "application/javascript" }));
    const started = new Worker(url);
    started.unref();
    started.onmessage = (event: MessageEvent<Reply>) => {
      const reply = event.data;
      if (reply.type === "checkpointed") {
        inFlight = false;
        record(reply.result);
        retryMs = firstRetryMs;
        if (closing) return settle();
        if (rounds === 0 && reply.result.log > 0 && requested > 0) {
          const measured = (reply.result.log * pageBytes) / requested;
          amplification = Math.min(64, Math.max(0.25, (amplification + measured) / 2));
        }
        const copied = reply.result.checkpointed - backfilled;
        backfilled = reply.result.checkpointed;
        const shrinking = copied <= lastCopied / 2;
        lastCopied = copied;
        if (++rounds < MAX_ROUNDS && copied > CATCH_UP_FRAMES && shrinking && !failed) {
          // Much was written while it copied: another round in the worker, not on the event loop.
          inFlight = true;
          worker?.postMessage({ type: "checkpoint" });
          return;
        }
        rounds = 0;
        backfilled = 0;
        lastCopied = Number.POSITIVE_INFINITY;
        try {
          const caughtUp = options.catchUp();
          record(caughtUp);
          // All of it is in the database file (what was written meanwhile too): the next commit starts
          // the WAL over, so the count starts over. Readers kept it from finishing: what is left
          // counts toward the next one.
          if (caughtUp.checkpointed >= caughtUp.log) pending = 0;
          else pending += threshold / 2;
        } catch (error) {
          options.logger?.warn("sqlite: a WAL checkpoint failed", { error: String(error) });
        }
        settle();
      } else if (reply.type === "failed") {
        fail(reply.error);
      } else if (reply.type === "closed") {
        stop(true);
      }
    };
    started.onerror = (event) => fail(event.message || "worker error");
    started.postMessage({ type: "open", path: options.path });
    return started;
  }

  return {
    checkpoints,
    wrote(bytes) {
      pending += bytes;
      if (pending * amplification < threshold || inFlight || failed || closing) return;
      requested = pending;
      pending = 0;
      try {
        worker ??= start();
      } catch (error) {
        return fail(String(error));
      }
      inFlight = true;
      worker.postMessage({ type: "checkpoint" });
    },
    settled() {
      if (!inFlight || failed || closing) return undefined;
      return new Promise<void>((resolve) => waiting.push(resolve));
    },
    close() {
      if (closing) return closing;
      clearTimeout(retry);
      settle();
      if (!worker) return (closing = Promise.resolve());
      const closingWorker = worker;
      closing = new Promise<void>((resolve) => {
        const timer = setTimeout(stop, 2000);
        onClosed = () => {
          clearTimeout(timer);
          onClosed = undefined;
          resolve();
        };
        closingWorker.postMessage({ type: "close" });
      });
      return closing;
    },
  };
}
