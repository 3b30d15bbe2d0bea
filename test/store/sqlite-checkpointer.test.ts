/**
 * WAL checkpoints in a worker thread (src/store/sqlite-checkpointer.ts): the WAL stays bounded
 * without SQLite's automatic checkpoint on the event loop, a worker that cannot work hands the job
 * back to SQLite, closing leaves no WAL behind, and a WAL file that grew is shortened again by the
 * worker — never into the current log.
 */
import { afterEach, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCheckpointer, type CheckpointResult } from "../../src/store/sqlite-checkpointer.ts";
import { readWalLog, WAL_FRAME_HEADER_BYTES, WAL_HEADER_BYTES } from "../../src/store/sqlite-wal.ts";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import { createLogger } from "../../src/lib/logger.ts";
import { until } from "../helpers/deferred.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "agentkit-ckpt-"));
  dirs.push(dir);
  return dir;
}

test("the worker checkpoints the whole WAL when enough was written; the next commits start the WAL over", async () => {
  const path = join(tempDir(), "x.sqlite");
  const db = new Database(path, { create: true });
  db.run("PRAGMA journal_mode = WAL");
  db.run("PRAGMA wal_autocheckpoint = 0");
  db.run("CREATE TABLE t (x TEXT)");
  let fellBack = false;
  const checkpointer = createCheckpointer({
    path,
    thresholdBytes: 256 * 1024,
    onFallback: () => (fellBack = true),
    catchUp: () => (caughtUp = db.query("PRAGMA wal_checkpoint(PASSIVE)").get() as CheckpointResult),
  });
  let caughtUp: CheckpointResult | undefined;
  const row = "x".repeat(1000);
  const insert = db.query("INSERT INTO t VALUES (?)");
  // Written first, reported after: the worker's round then runs with no write beside it, so it copies
  // the whole WAL (a PASSIVE round that overlaps writes may leave the newest frames to the next one).
  for (let index = 0; index < 300; index++) insert.run(row);
  checkpointer.wrote(300 * row.length);
  await until(() => caughtUp !== undefined, "the main thread's catch-up");
  // The worker's round(s) copied the WAL first; then the catch-up: the whole WAL is in the database file.
  const rounds = checkpointer.checkpoints.slice(0, -1);
  expect(rounds.length).toBeGreaterThan(0);
  expect(rounds[0]!.log).toBeGreaterThan(0);
  expect(rounds[0]!.checkpointed).toBe(rounds[0]!.log);
  expect(checkpointer.checkpoints.at(-1)).toEqual(caughtUp!);
  expect(caughtUp!.checkpointed).toBe(caughtUp!.log);
  const walBytes = statSync(`${path}-wal`).size;
  // The WAL was checkpointed: writing as much again reuses the file instead of growing it.
  for (let index = 0; index < 200; index++) {
    insert.run(row);
    checkpointer.wrote(row.length);
  }
  expect(statSync(`${path}-wal`).size).toBeLessThanOrEqual(walBytes);
  expect((db.query("SELECT count(*) AS n FROM t").get() as { n: number }).n).toBe(500);
  expect(fellBack).toBe(false);
  await checkpointer.close();
  db.close();
  expect(existsSync(`${path}-wal`)).toBe(false);
});

test("settled(): nothing to wait for when no checkpoint is under way; else a promise of its end (the catch-up done), or of close", async () => {
  const path = join(tempDir(), "x.sqlite");
  const db = new Database(path, { create: true });
  db.run("PRAGMA journal_mode = WAL");
  db.run("PRAGMA wal_autocheckpoint = 0");
  db.run("CREATE TABLE t (x TEXT)");
  let caughtUp = 0;
  const checkpointer = createCheckpointer({
    path,
    thresholdBytes: 64 * 1024,
    onFallback: () => {},
    catchUp: () => {
      caughtUp++;
      return db.query("PRAGMA wal_checkpoint(PASSIVE)").get() as CheckpointResult;
    },
  });
  expect(checkpointer.settled()).toBeUndefined();
  const row = "x".repeat(1000);
  for (let index = 0; index < 100; index++) db.query("INSERT INTO t VALUES (?)").run(row);
  checkpointer.wrote(100 * row.length);
  const settled = checkpointer.settled();
  expect(settled).toBeInstanceOf(Promise);
  expect(caughtUp).toBe(0);
  await settled;
  expect(caughtUp).toBe(1); // the rounds in the worker, then the main thread's catch-up, then settled
  expect(checkpointer.settled()).toBeUndefined();
  // One under way when the checkpointer closes: settled at once.
  for (let index = 0; index < 100; index++) db.query("INSERT INTO t VALUES (?)").run(row);
  checkpointer.wrote(100 * row.length);
  const closing = checkpointer.settled();
  expect(closing).toBeInstanceOf(Promise);
  const closed = checkpointer.close();
  await closing;
  await closed;
  expect(checkpointer.settled()).toBeUndefined();
  db.close();
});

test("a worker that cannot checkpoint (no such file) hands checkpoints back to SQLite, once, with a warning", async () => {
  const lines: string[] = [];
  const logger = createLogger("warn", (line: string) => lines.push(line));
  let fallbacks = 0;
  const checkpointer = createCheckpointer({
    path: join(tempDir(), "missing.sqlite"),
    thresholdBytes: 10,
    logger,
    onFallback: () => fallbacks++,
    catchUp: () => ({ busy: 0, log: 0, checkpointed: 0 }),
  });
  checkpointer.wrote(100);
  await until(() => fallbacks > 0, "the fallback");
  checkpointer.wrote(100);
  checkpointer.wrote(100);
  await Bun.sleep(50);
  expect(fallbacks).toBe(1);
  expect(lines.join("\n")).toContain("WAL checkpoints go back to the main thread");
  await checkpointer.close();
});

test("after a fallback a new worker is tried later (a failure may pass, e.g. a full disk): the store turns its own checkpoints off again, and the worker checkpoints", async () => {
  const lines: string[] = [];
  const logger = createLogger("info", (line: string) => lines.push(line));
  const path = join(tempDir(), "later.sqlite");
  let fallbacks = 0;
  let resumes = 0;
  const checkpointer = createCheckpointer({
    path, // not there yet: the first worker cannot open it
    thresholdBytes: 10,
    retryMs: 50,
    logger,
    onFallback: () => fallbacks++,
    onResume: () => resumes++,
    catchUp: () => ({ busy: 0, log: 0, checkpointed: 0 }),
  });
  checkpointer.wrote(100);
  await until(() => fallbacks === 1, "the fallback");
  const db = new Database(path, { create: true });
  db.run("PRAGMA journal_mode = WAL");
  db.run("CREATE TABLE t (x TEXT)");
  await until(() => resumes === 1, "the retry");
  const before = checkpointer.checkpoints.length;
  checkpointer.wrote(100);
  await until(() => checkpointer.checkpoints.length > before, "a checkpoint by the new worker");
  expect(fallbacks).toBe(1);
  expect(lines.join("\n")).toContain("WAL checkpoints go to a worker thread again");
  await checkpointer.close();
  db.close();
});

test("a worker that fails wakes whoever waits for its checkpoint (retention waits on settled()), each time it fails again", async () => {
  let fallbacks = 0;
  let resumes = 0;
  const checkpointer = createCheckpointer({
    path: join(tempDir(), "missing.sqlite"),
    thresholdBytes: 1024,
    retryMs: 30,
    onFallback: () => fallbacks++,
    onResume: () => resumes++,
    catchUp: () => ({ busy: 0, log: 0, checkpointed: 0 }),
  });
  for (let round = 0; round < 3; round++) {
    checkpointer.wrote(1 << 20);
    const settled = checkpointer.settled();
    expect(settled).toBeInstanceOf(Promise);
    expect(await Promise.race([settled!.then(() => "settled"), Bun.sleep(3000).then(() => "stuck")])).toBe("settled");
    expect(fallbacks).toBe(round + 1);
    expect(checkpointer.settled()).toBeUndefined(); // nothing under way
    await until(() => resumes === round + 1, "the retry");
  }
  await checkpointer.close();
  const before = resumes;
  await Bun.sleep(300);
  expect(resumes).toBe(before); // no retry after close
});

test("the SQLite store: 13 MB of events leave a bounded WAL (checkpointed off the event loop); close removes it", async () => {
  const dir = tempDir();
  const lines: string[] = [];
  const store = createSqliteStore({ dataDir: dir, logger: createLogger("warn", (line: string) => lines.push(line)) });
  const wal = join(dir, "agentkit.sqlite-wal");
  await store.createTask({ id: "t", owner: "o", agent: "a", input: "hi", metadata: {}, createdAt: new Date() });
  await store.markRunning("t", new Date());
  const frame = JSON.stringify({ type: "step", pad: "y".repeat(1000) });
  let seq = 1;
  const sizes: number[] = [];
  for (let batch = 0; batch < 200; batch++) {
    await store.appendEvents("t", Array.from({ length: 64 }, () => ({ seq: seq++, frame })));
    if (batch % 20 === 19) {
      sizes.push(statSync(wal).size);
      await Bun.sleep(20); // the worker's replies arrive between bursts
    }
  }
  expect(seq - 1).toBe(12_800);
  // Without checkpoints this WAL grows to ~69 MB (1 KB rows: ~5 bytes of WAL per byte of frame).
  // Checkpointed, it stays within about three of these bursts (~7 MB of WAL each, written without a
  // turn of the event loop, where the worker's answers are read: a round, a second one that did not
  // shrink, then the main thread's catch-up).
  expect(Math.max(...sizes)).toBeLessThan(32 * 1024 * 1024);
  expect((await store.events("t", 12_790, 100)).map((event) => event.seq)).toEqual([12_791, 12_792, 12_793, 12_794, 12_795, 12_796, 12_797, 12_798, 12_799, 12_800]);
  expect(lines).toEqual([]);
  await store.close();
  expect(existsSync(wal)).toBe(false);
});

/** A database in WAL mode as the store has it: no automatic checkpoint, a table of rows. */
function walDatabase(): { path: string; db: Database } {
  const path = join(tempDir(), "x.sqlite");
  const db = new Database(path, { create: true });
  db.run("PRAGMA journal_mode = WAL");
  db.run("PRAGMA synchronous = NORMAL");
  db.run("PRAGMA busy_timeout = 5000");
  db.run("PRAGMA wal_autocheckpoint = 0");
  db.run("CREATE TABLE t (x TEXT)");
  return { path, db };
}

/** `rows` rows of ~4 KB in one transaction: about a page each into the WAL. */
function insertBig(db: Database, rows: number) {
  const big = "b".repeat(4000);
  db.transaction(() => {
    for (let index = 0; index < rows; index++) db.query("INSERT INTO t VALUES (?)").run(big);
  })();
}

/** The database as a crash would leave it: a copy of the file and its WAL (no -shm: SQLite recovers the log from the WAL). */
function crashCopy(path: string): Database {
  const copy = join(tempDir(), "copy.sqlite");
  copyFileSync(path, copy);
  copyFileSync(`${path}-wal`, `${copy}-wal`);
  return new Database(copy, { readonly: true });
}

test("a WAL file that grew past the limit is shortened to it by the worker after a catch-up (the log started over first), while commits go on; no committed frame is cut", async () => {
  const { path, db } = walDatabase();
  const wal = `${path}-wal`;
  const checkpointer = createCheckpointer({
    path,
    thresholdBytes: 256 * 1024,
    walLimitBytes: 1024 * 1024,
    onFallback: () => {},
    catchUp: () => db.query("PRAGMA wal_checkpoint(PASSIVE)").get() as CheckpointResult,
  });
  // One large transaction: ~10 MB of WAL, which SQLite would keep at that size until the last connection closes.
  insertBig(db, 2500);
  const grown = statSync(wal).size;
  expect(grown).toBeGreaterThan(10_000_000);
  // Commits go on on this thread, one a millisecond, while the worker checkpoints and cuts.
  let written = 0;
  let writing = true;
  const writer = (async () => {
    const row = "w".repeat(1000);
    while (writing) {
      db.query("INSERT INTO t VALUES (?)").run(row);
      written++;
      checkpointer.wrote(row.length);
      await Bun.sleep(1);
    }
  })();
  checkpointer.wrote(grown);
  await until(() => checkpointer.shrinks.length > 0, "the WAL file shortened", 15_000);
  const [shrink] = checkpointer.shrinks;
  expect(shrink!.from).toBeGreaterThanOrEqual(grown);
  expect(shrink!.stopped).toBeUndefined();
  expect(shrink!.to).toBeLessThanOrEqual(1024 * 1024);
  expect(shrink!.steps).toBeGreaterThan(1); // a piece at a time
  // A crash now loses nothing: the file as it is holds the whole current log.
  writing = false;
  await writer;
  const log = readWalLog(path);
  expect(WAL_HEADER_BYTES + log.frames * (log.pageBytes + WAL_FRAME_HEADER_BYTES)).toBeLessThanOrEqual(statSync(wal).size);
  const copy = crashCopy(path);
  expect(copy.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
  expect((copy.query("SELECT count(*) AS n FROM t").get() as { n: number }).n).toBe(2500 + written);
  copy.close();
  expect((db.query("SELECT count(*) AS n FROM t").get() as { n: number }).n).toBe(2500 + written);
  await checkpointer.close();
  db.close();
});

test("a shrink never cuts into a log a reader keeps from starting over: it stops, the reader reads its snapshot, and once the reader is gone it is tried again (nothing written meanwhile)", async () => {
  const { path, db } = walDatabase();
  const wal = `${path}-wal`;
  const checkpointer = createCheckpointer({
    path,
    thresholdBytes: 256 * 1024,
    walLimitBytes: 1024 * 1024,
    onFallback: () => {},
    catchUp: () => db.query("PRAGMA wal_checkpoint(PASSIVE)").get() as CheckpointResult,
  });
  insertBig(db, 1000);
  // A reader whose snapshot is in the WAL: the log cannot start over while it reads.
  const reader = new Database(path, { readonly: true });
  reader.run("BEGIN");
  expect((reader.query("SELECT count(*) AS n FROM t").get() as { n: number }).n).toBe(1000);
  const grown = statSync(wal).size;
  checkpointer.wrote(grown);
  await until(() => checkpointer.shrinks.length > 0, "the shrink's answer", 15_000);
  expect(checkpointer.shrinks[0]!.stopped).toBe("live");
  expect(statSync(wal).size).toBeGreaterThanOrEqual(grown);
  expect((reader.query("SELECT count(*) AS n FROM t").get() as { n: number }).n).toBe(1000);
  expect((reader.query("SELECT sum(length(x)) AS n FROM t").get() as { n: number }).n).toBe(4_000_000);
  reader.run("COMMIT");
  reader.close();
  // The reader gone, the shrink is tried again a second later, with nothing more written (an idle server).
  await until(() => checkpointer.shrinks.length > 1, "the second shrink", 15_000);
  expect(checkpointer.shrinks[1]!.stopped).toBeUndefined();
  expect(statSync(wal).size).toBeLessThanOrEqual(1024 * 1024);
  const copy = crashCopy(path);
  expect(copy.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
  expect((copy.query("SELECT count(*) AS n FROM t").get() as { n: number }).n).toBe(1000);
  copy.close();
  await checkpointer.close();
  db.close();
});

test("a shrink cuts only under SQLite's write lock: while another connection holds a write transaction nothing is cut, once it ends the file is shortened", async () => {
  const { path, db } = walDatabase();
  insertBig(db, 2500);
  // All of it into the file, then a small commit starts the log over: the file is mostly frames of the old log.
  db.query("PRAGMA wal_checkpoint(PASSIVE)").get();
  db.query("INSERT INTO t VALUES ('x')").run();
  const grown = statSync(`${path}-wal`).size;
  expect(grown).toBeGreaterThan(10_000_000);
  const checkpointer = createCheckpointer({
    path,
    thresholdBytes: 256 * 1024,
    walLimitBytes: 1024 * 1024,
    onFallback: () => {},
    catchUp: () => db.query("PRAGMA wal_checkpoint(PASSIVE)").get() as CheckpointResult,
  });
  const writer = new Database(path);
  writer.run("PRAGMA busy_timeout = 5000");
  writer.run("BEGIN IMMEDIATE"); // another connection holds the write lock
  checkpointer.wrote(grown);
  await until(() => checkpointer.checkpoints.length >= 2, "the checkpoint and its catch-up", 10_000);
  await Bun.sleep(300);
  const whileLocked = statSync(`${path}-wal`).size;
  writer.run("ROLLBACK");
  await until(() => checkpointer.shrinks.length > 0, "the shrink", 15_000);
  expect(whileLocked).toBe(grown);
  expect(statSync(`${path}-wal`).size).toBeLessThanOrEqual(1024 * 1024);
  expect((db.query("SELECT count(*) AS n FROM t").get() as { n: number }).n).toBe(2501);
  writer.close();
  await checkpointer.close();
  db.close();
});

test("a worker round that a reader held back is not finished on the event loop: the main thread catches up only a few frames, the worker copies the rest once the reader is gone", async () => {
  const { path, db } = walDatabase();
  /** Frames the worker's last round left uncopied, each time the main thread was asked to catch up. */
  const leftAtCatchUp: number[] = [];
  const checkpointer = createCheckpointer({
    path,
    thresholdBytes: 256 * 1024,
    onFallback: () => {},
    retryMs: 60_000,
    catchUp: () => {
      const last = checkpointer.checkpoints.at(-1)!;
      leftAtCatchUp.push(last.log - last.checkpointed);
      return db.query("PRAGMA wal_checkpoint(PASSIVE)").get() as CheckpointResult;
    },
  });
  // A reader (another connection: a backup, an operator's query) holds a snapshot from before the writes.
  const reader = new Database(path, { readonly: true });
  reader.run("BEGIN");
  reader.query("SELECT count(*) FROM t").get();
  insertBig(db, 1500);
  checkpointer.wrote(6_000_000);
  await until(() => checkpointer.checkpoints.length >= 1, "the worker's round, held back by the reader", 10_000);
  await Bun.sleep(100);
  // The reader lets go now: a main-thread catch-up would copy all of it (~1,500 pages) on the event loop.
  reader.run("COMMIT");
  reader.close();
  await until(() => checkpointer.checkpoints.some((result) => result.log > 0 && result.checkpointed >= result.log), "every frame copied", 10_000);
  expect(leftAtCatchUp.every((left) => left <= 64)).toBe(true);
  expect((db.query("SELECT count(*) AS n FROM t").get() as { n: number }).n).toBe(1500);
  await checkpointer.close();
  db.close();
});
