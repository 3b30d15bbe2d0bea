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
 *
 * The WAL file keeps its largest size: SQLite writes a log that started over from the file's start
 * again, over the old frames, and never shortens the file (but with `journal_size_limit`, which
 * truncates it inside the commit that starts the log over: a 160 MB WAL held the event loop ~60 ms).
 * So after a catch-up that copied every frame, a WAL file past `walLimitBytes` is shortened by the
 * worker (`shrink` in the worker's code), ~1 MiB at a time: each piece under SQLite's write lock
 * (`BEGIN IMMEDIATE`, so that no commit writes frames while the file is cut), only ever past the
 * current log (read from the file: sqlite-wal.ts), ~0.2–0.9 ms each, a few ms apart. A commit on the
 * event loop that meets one waits in SQLite's busy handler, ~1 ms; truncating 160 MB at once took
 * 57–72 ms here. A log that has not started over since the catch-up (nothing written since) is made
 * to: the worker commits the schema's `user_version` unchanged, which starts it over.
 */
import { statSync } from "node:fs";
import type { Logger } from "../lib/logger.ts";

export interface Checkpointer {
  /** The store committed about `bytes` of new rows: checkpoints when enough has built up. */
  wrote(bytes: number): void;
  /** The store counted `frames` frames (pages) it wrote to the WAL (read off the WAL: sqlite-wal.ts). */
  wroteFrames(frames: number): void;
  /** Checkpoints what was written so far, however little (after a burst of writes: retention's end). */
  flush(): void;
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
  /**
   * After a checkpoint that copied every frame, a WAL file larger than this is shortened to it (default
   * 0: never). The worker holds SQLite's write lock for each piece it cuts: every connection that writes
   * needs a busy timeout, and a transaction that reads before it writes must begin IMMEDIATE (a deferred
   * one that has read gets SQLITE_BUSY at once, without waiting).
   */
  walLimitBytes?: number;
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

/** What a shrink of the WAL file did: its size before and after, in how many pieces, and why it stopped short of the limit, if it did. */
export interface ShrinkResult {
  from: number;
  to: number;
  steps: number;
  /** The longest the write lock was held for a piece, ms. */
  longestMs: number;
  /** Frames the worker wrote itself: its commit that starts the log over (which a reader may have kept it from doing). */
  wrote: number;
  /** "live": the current log reaches past the limit (or could not be started over: a reader uses it); else an error. */
  stopped?: string;
}

/** A worker round that copied at most this many frames is followed by the main thread's catch-up. */
const CATCH_UP_FRAMES = 64;
/** Rounds in a row before the main thread catches up whatever is left (a write rate the worker cannot outpace). */
const MAX_ROUNDS = 8;
/**
 * A catch-up that a reader kept from copying every frame, or a shrink that a reader kept from
 * starting the log over, is tried again this long after, even if nothing more is written (an idle
 * server kept the WAL, and a WAL file it grew): then twice as long after each such try that a reader
 * still kept from finishing, at most a minute.
 */
const RETRY_READER_MS = 1000;
const RETRY_READER_MAX_MS = 60_000;

type Reply =
  | { type: "opened" }
  | { type: "checkpointed"; result: CheckpointResult }
  | { type: "shrunk"; result: ShrinkResult }
  | { type: "failed"; error: string }
  | { type: "closed" };

/**
 * A piece of the WAL file cut at a time: 1 MiB took 0.2–0.9 ms here on a quiet disk (more while
 * taking less than 0.2 ms, up to 8 MiB). On a busy one a cut of any size waited 3–10 ms for the file
 * system's journal at times: smaller pieces would only mean more of them.
 */
const SHRINK_FIRST_BYTES = 1 << 20;
const SHRINK_MIN_BYTES = 1 << 20;
const SHRINK_MAX_BYTES = 1 << 23;
/**
 * The pause after a piece: a commit that met the lock sleeps in SQLite's busy handler 1, 2, 5, 10, …
 * ms between tries (1, 3, 8, 18, … after it first met it), so the lock must stay free until its next
 * try: up to 5 ms after a piece held under 8 ms, 10 ms after one held under 18 ms.
 */
const SHRINK_GAP_MS = 5;
const SHRINK_GAP_AFTER_LONG_MS = 15;

/**
 * The worker: one connection, one checkpoint per request, replies in order; and the WAL's shrink,
 * a piece at a time (checkpoints asked for meanwhile run between pieces).
 */
const WORKER_SOURCE = `
import { Database } from "bun:sqlite";
import { closeSync, openSync, readSync, statSync, truncateSync } from "node:fs";
let db;
let wal;
const walBytes = () => {
  try {
    return statSync(wal).size;
  } catch {
    return 0;
  }
};
// Where to cut a WAL file of "size" bytes: at a frame's start, "piece" bytes back but not below "limit";
// and whether the frame there belongs to the current log (its salts are the header's: the current log is a
// prefix of the file, sqlite-wal.ts), when nothing past it may go. Read under the write lock.
const cutOf = (size, limit, piece) => {
  const fd = openSync(wal, "r");
  try {
    const header = Buffer.alloc(32);
    if (readSync(fd, header, 0, 32, 0) < 32) return undefined;
    const magic = header.readUInt32BE(0);
    if (magic !== 0x377f0682 && magic !== 0x377f0683) return undefined;
    const frame = header.readUInt32BE(8) + 24;
    const boundary = (bytes) => 32 + Math.max(0, Math.floor((bytes - 32) / frame)) * frame;
    const at = Math.max(boundary(limit), boundary(size - piece));
    const salt = Buffer.alloc(8);
    const current = readSync(fd, salt, 0, 8, at + 8) === 8 && salt.readUInt32BE(0) === header.readUInt32BE(16) && salt.readUInt32BE(4) === header.readUInt32BE(20);
    return { at, current };
  } finally {
    closeSync(fd);
  }
};
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
async function shrink(limit) {
  const from = walBytes();
  let piece = ${SHRINK_FIRST_BYTES};
  let steps = 0;
  let longestMs = 0;
  let restarted = false;
  let stopped;
  try {
    for (let size = walBytes(); db && size > limit; size = walBytes()) {
      // SQLite's write lock: no commit writes frames while the file is read and cut.
      db.run("BEGIN IMMEDIATE");
      const locked = performance.now();
      let took;
      try {
        const cut = cutOf(size, limit, piece);
        if (!cut) stopped = "no WAL header";
        else if (!cut.current) {
          const started = performance.now();
          truncateSync(wal, cut.at);
          took = performance.now() - started;
          steps++;
        } else if (restarted) stopped = "live";
        else {
          // Nothing committed since the catch-up copied every frame: the log has not started over. A
          // commit does that (if no reader uses the WAL): the schema's user_version, unchanged.
          const version = db.query("PRAGMA user_version").get().user_version;
          db.run("PRAGMA user_version = " + Number(version));
          db.run("COMMIT");
          restarted = true;
        }
      } finally {
        if (db && db.inTransaction) db.run("ROLLBACK");
      }
      const held = performance.now() - locked;
      longestMs = Math.max(longestMs, held);
      if (stopped) break;
      if (took !== undefined && took < 0.2) piece = Math.min(${SHRINK_MAX_BYTES}, piece * 2);
      else if (took > 0.8) piece = Math.max(${SHRINK_MIN_BYTES}, Math.floor(piece / 2));
      // Between pieces, a commit that waited for the lock gets it at its busy handler's next try.
      await pause(held < 8 ? ${SHRINK_GAP_MS} : ${SHRINK_GAP_AFTER_LONG_MS});
    }
  } catch (error) {
    stopped = String(error && error.message || error);
  }
  postMessage({ type: "shrunk", result: { from, to: walBytes(), steps, longestMs, wrote: restarted ? 1 : 0, ...(stopped ? { stopped } : {}) } });
}
self.onmessage = (event) => {
  const message = event.data;
  try {
    if (message.type === "open") {
      db = new Database(message.path, { readwrite: true, create: false });
      wal = message.path + "-wal";
      db.run("PRAGMA busy_timeout = 5000");
      db.run("PRAGMA synchronous = NORMAL");
      postMessage({ type: "opened" });
    } else if (message.type === "checkpoint") {
      const row = db.query("PRAGMA wal_checkpoint(PASSIVE)").get();
      postMessage({ type: "checkpointed", result: row });
    } else if (message.type === "shrink") {
      void shrink(message.limit);
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

export function createCheckpointer(options: CheckpointerOptions): Checkpointer & { readonly checkpoints: CheckpointResult[]; readonly shrinks: ShrinkResult[] } {
  const threshold = options.thresholdBytes ?? 4 * 1024 * 1024;
  const pageBytes = options.pageBytes ?? 4096;
  const walLimit = options.walLimitBytes ?? 0;
  /** Bytes of rows reported since the last checkpoint was asked for (times `amplification`: WAL bytes). */
  let pending = 0;
  /** WAL frames counted since then (`wroteFrames`): no estimate to apply. */
  let pendingFrames = 0;
  /**
   * WAL bytes per byte the store reported (B-tree pages are rewritten whole, indexes too): learned
   * from each checkpoint's frame count, so that one comes after ~`threshold` bytes of WAL. It starts
   * high (an early first checkpoint rather than a large WAL); ~2–5 was measured for event logs.
   */
  let amplification = 4;
  /** What had been reported when the last checkpoint was asked for (rows, frames). */
  let requested = 0;
  let requestedFrames = 0;
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
  /** A checkpoint to try again after a reader kept the last one from finishing, and the wait before it. */
  let again: ReturnType<typeof setTimeout> | undefined;
  let againMs = RETRY_READER_MS;
  /** The last few results, newest last (tests and diagnostics). */
  const checkpoints: CheckpointResult[] = [];
  /** A shrink of the WAL file is under way in the worker. */
  let shrinking = false;
  /** The last few shrinks, newest last (tests and diagnostics). */
  const shrinks: ShrinkResult[] = [];
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
    shrinking = false;
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
    shrinking = false;
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
        // Learned from rows alone: frames counted (`wroteFrames`) need no estimate.
        if (rounds === 0 && reply.result.log > 0 && requested > 0 && requestedFrames === 0) {
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
        if (copied <= CATCH_UP_FRAMES && reply.result.log - reply.result.checkpointed > CATCH_UP_FRAMES) {
          // A reader held the round back (it copied little, much is left): the main thread must not
          // copy the rest — the reader may be gone by now, and all of it (a GB of WAL: ~0.9 s held)
          // would be copied on the event loop. The worker tries again later.
          pending += threshold / 2;
          tryAgainLater();
          settle();
          return;
        }
        try {
          const caughtUp = options.catchUp();
          record(caughtUp);
          // All of it is in the database file (what was written meanwhile too): the next commit starts
          // the WAL over, so the count starts over. Readers kept it from finishing: what is left
          // counts toward the next one.
          if (caughtUp.checkpointed >= caughtUp.log) {
            pending = 0;
            pendingFrames = 0;
            againMs = RETRY_READER_MS;
            shrinkIfLarge();
          } else {
            pending += threshold / 2;
            tryAgainLater();
          }
        } catch (error) {
          options.logger?.warn("sqlite: a WAL checkpoint failed", { error: String(error) });
        }
        settle();
      } else if (reply.type === "shrunk") {
        shrinking = false;
        shrinks.push(reply.result);
        if (shrinks.length > 16) shrinks.shift();
        // Its own commit, if a reader kept it from starting the log over, is a frame to checkpoint first.
        pendingFrames += reply.result.wrote;
        const { from, to, stopped } = reply.result;
        if (to < from) options.logger?.info("sqlite: the WAL file was shortened", { from_bytes: from, to_bytes: to });
        if (stopped && stopped !== "live") options.logger?.warn("sqlite: could not shorten the WAL file", { error: stopped });
        if (stopped === "live") tryAgainLater();
        else againMs = RETRY_READER_MS;
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

  /**
   * After a catch-up that copied every frame: a WAL file past the limit is shortened by the worker,
   * which goes on between its checkpoints (a file that grows past the limit again is shortened after
   * the next catch-up).
   */
  function shrinkIfLarge() {
    if (walLimit <= 0 || shrinking || !worker || failed || closing) return;
    let size: number;
    try {
      size = statSync(`${options.path}-wal`).size;
    } catch {
      return;
    }
    if (size <= walLimit) return;
    shrinking = true;
    worker.postMessage({ type: "shrink", limit: walLimit });
  }

  function tryAgainLater() {
    if (again || closing) return;
    again = setTimeout(() => {
      again = undefined;
      // Reset by a catch-up that copies every frame, or a shrink a reader does not stop.
      againMs = Math.min(RETRY_READER_MAX_MS, 2 * againMs);
      if (pending + pendingFrames > 0) checkpoint(true);
      else shrinkIfLarge();
    }, againMs);
    again.unref?.();
  }

  /** Asks the worker for a checkpoint when enough was written (or `now`), unless one is under way. */
  function checkpoint(now: boolean) {
    if (inFlight || failed || closing) return;
    if (now ? pending + pendingFrames === 0 : pending * amplification + pendingFrames * pageBytes < threshold) return;
    clearTimeout(again);
    again = undefined;
    requested = pending;
    requestedFrames = pendingFrames;
    pending = 0;
    pendingFrames = 0;
    try {
      worker ??= start();
    } catch (error) {
      return fail(String(error));
    }
    inFlight = true;
    worker.postMessage({ type: "checkpoint" });
  }

  return {
    checkpoints,
    shrinks,
    wrote(bytes) {
      pending += bytes;
      checkpoint(false);
    },
    wroteFrames(frames) {
      pendingFrames += frames;
      checkpoint(false);
    },
    flush() {
      checkpoint(true);
    },
    settled() {
      if (!inFlight || failed || closing) return undefined;
      return new Promise<void>((resolve) => waiting.push(resolve));
    },
    close() {
      if (closing) return closing;
      clearTimeout(retry);
      clearTimeout(again);
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
