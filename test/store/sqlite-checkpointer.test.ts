/**
 * WAL checkpoints in a worker thread (src/store/sqlite-checkpointer.ts): the WAL stays bounded
 * without SQLite's automatic checkpoint on the event loop, a worker that cannot work hands the job
 * back to SQLite, and closing leaves no WAL behind.
 */
import { afterEach, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCheckpointer, type CheckpointResult } from "../../src/store/sqlite-checkpointer.ts";
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
