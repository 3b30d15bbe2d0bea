/**
 * The SQLite store's WAL file on a real data dir: it comes back to its limit after it grew (the
 * checkpointer's worker shortens it, src/store/sqlite-checkpointer.ts), the give-back after
 * retention tells the checkpointer the frames it really wrote (src/store/sqlite-wal.ts), and
 * retention waits for a write lock another connection holds (as that worker does) instead of failing.
 */
import { afterEach, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { copyFileSync, existsSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { createCheckpointer } from "../../src/store/sqlite-checkpointer.ts";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import { framesWritten, readWalLog, type WalLog } from "../../src/store/sqlite-wal.ts";
import type { TaskOutcome, TaskStore } from "../../src/store/store.ts";
import { until } from "../helpers/deferred.ts";
import { tempDir } from "../helpers/server.ts";

const dirs: string[] = [];
const stores: TaskStore[] = [];
afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function dataDir(): string {
  const dir = tempDir();
  dirs.push(dir);
  return dir;
}

const DAY = 24 * 3_600_000;
const ended = (at = new Date(Date.now() - 2 * DAY)): TaskOutcome => ({
  status: "completed",
  stopReason: "final_answer",
  output: "ok",
  error: null,
  totalSteps: 1,
  inputTokens: 1,
  outputTokens: 1,
  costUsd: null,
  finishedAt: at,
});
const frame = (seq: number, pad: number) => JSON.stringify({ type: "step", seq, data: { text: "t".repeat(pad) } });

async function startTask(store: TaskStore, id: string) {
  await store.createTask({ id, owner: "o", agent: "a", input: "{}", metadata: {}, createdAt: new Date(Date.now() - 3 * DAY) });
  await store.markRunning(id, new Date(Date.now() - 3 * DAY));
}

/** The data dir's database as a crash would leave it (the file and its WAL; SQLite recovers the log from the WAL). */
function crashCopy(dir: string): Database {
  const copy = join(dataDir(), "agentkit.sqlite");
  copyFileSync(join(dir, "agentkit.sqlite"), copy);
  if (existsSync(join(dir, "agentkit.sqlite-wal"))) copyFileSync(join(dir, "agentkit.sqlite-wal"), `${copy}-wal`);
  return new Database(copy, { readonly: true });
}

test("a WAL file grown by a large write comes back under 16 MiB after retention and its checkpoint; every event that stays is whole", async () => {
  const dir = dataDir();
  const wal = join(dir, "agentkit.sqlite-wal");
  const store = createSqliteStore({ dataDir: dir });
  stores.push(store);
  await startTask(store, "big");
  await startTask(store, "kept");
  // One commit of ~40 MB of events (a run's end stores what it holds in one): SQLite writes the WAL
  // file that large and, on its own, keeps it so until the last connection closes.
  await store.appendEvents("big", Array.from({ length: 10_000 }, (_, index) => ({ seq: index + 1, frame: frame(index + 1, 4000) })));
  expect(statSync(wal).size).toBeGreaterThan(40_000_000);
  await store.finishTask("big", ended(), 10_001, "{}");
  for (let seq = 1; seq <= 1000; seq += 100) {
    await store.appendEvents("kept", Array.from({ length: 100 }, (_, index) => ({ seq: seq + index, frame: frame(seq + index, 500) })));
  }
  expect(await store.pruneEvents(new Date(Date.now() - DAY))).toBe(1);
  await until(() => statSync(wal).size <= 16 * 1024 * 1024, "the WAL file back under 16 MiB", 15_000);
  // Nothing the store committed was cut: the events that stay read back whole, also from the file
  // and WAL as a crash would leave them now.
  const kept = await store.events("kept", 0, 2000);
  expect(kept.map((event) => event.seq)).toEqual(Array.from({ length: 1000 }, (_, index) => index + 1));
  expect(kept[499]!.frame).toBe(frame(500, 500));
  expect(await store.events("big", 0, 10)).toEqual([]);
  const copy = crashCopy(dir);
  expect(copy.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
  expect(copy.query("SELECT count(*) AS n, sum(length(frame)) AS bytes FROM events WHERE task_id = 'kept'").get()).toEqual({
    n: 1000,
    bytes: kept.reduce((sum, event) => sum + event.frame.length, 0),
  });
  expect(copy.query("SELECT last_seq, pruned_through FROM tasks WHERE id = 'big'").get()).toEqual({ last_seq: 10_001, pruned_through: 10_001 });
  copy.close();
  // The store goes on writing to the shortened WAL.
  await store.appendEvents("kept", [{ seq: 1001, frame: frame(1001, 500) }]);
  expect((await store.events("kept", 999, 10)).map((event) => event.seq)).toEqual([1000, 1001]);
}, 60_000);

test("the give-back after retention tells the checkpointer the WAL frames it wrote (read off the WAL), not an estimate from the pages it gave back", async () => {
  const dir = dataDir();
  const path = join(dir, "agentkit.sqlite");
  /** Each report the store makes to the checkpointer, with the WAL frames written since the one before. */
  const reports: { kind: "rows" | "frames"; amount: number; framesWritten: number }[] = [];
  let last: WalLog | undefined;
  const report = (kind: "rows" | "frames", amount: number) => {
    const now = readWalLog(path);
    reports.push({ kind, amount, framesWritten: last ? framesWritten(last, now) : 0 });
    last = now;
  };
  const store = createSqliteStore({
    dataDir: dir,
    checkpointer: (options) => {
      const real = createCheckpointer(options);
      return {
        ...real,
        wrote(bytes: number) {
          report("rows", bytes);
          real.wrote(bytes);
        },
        wroteFrames(frames: number) {
          report("frames", frames);
          real.wroteFrames(frames);
        },
      };
    },
  });
  stores.push(store);
  // Ten logs written side by side; five end and are pruned: the live pages after them in the file are
  // moved into the freed ones (with their parents and pointer-map pages), the file's end given back.
  const ids = Array.from({ length: 10 }, (_, index) => `t${index}`);
  for (const id of ids) await startTask(store, id);
  for (let seq = 1; seq <= 1200; seq += 50) {
    for (const id of ids) await store.appendEvents(id, Array.from({ length: 50 }, (_, index) => ({ seq: seq + index, frame: frame(seq + index, 1500) })));
  }
  for (const id of ids.slice(0, 5)) await store.finishTask(id, ended(), 1201, "{}");
  const pages = () => {
    const raw = new Database(path, { readonly: true });
    try {
      return (raw.query("PRAGMA page_count").get() as { page_count: number }).page_count;
    } finally {
      raw.close();
    }
  };
  const before = pages();
  reports.length = 0;
  expect(await store.pruneEvents(new Date(Date.now() - DAY))).toBe(5);
  expect(pages()).toBeLessThan(before * 0.7); // given back
  // The give-back comes after the last prune transaction: from its first report on, what it wrote.
  const first = reports.findIndex((entry) => entry.kind === "frames");
  expect(first).toBeGreaterThan(0);
  const giveBack = reports.slice(first);
  expect(giveBack.every((entry) => entry.kind === "frames")).toBe(true);
  expect(giveBack.length).toBeGreaterThan(3); // several steps
  for (const entry of giveBack) expect(entry.amount).toBe(entry.framesWritten);
  expect(giveBack.reduce((sum, entry) => sum + entry.amount, 0)).toBeGreaterThan(1000);
  for (const id of ids.slice(5)) expect((await store.events(id, 0, 2000)).length).toBe(1200);
}, 60_000);

test("retention waits for a write lock another connection holds (the checkpointer's worker takes it to shorten the WAL) instead of failing with SQLITE_BUSY", async () => {
  const dir = dataDir();
  const store = createSqliteStore({ dataDir: dir });
  stores.push(store);
  const ids = Array.from({ length: 30 }, (_, index) => `t${index}`);
  for (const id of ids) {
    await startTask(store, id);
    await store.appendEvents(id, Array.from({ length: 2000 }, (_, index) => ({ seq: index + 1, frame: frame(index + 1, 100) })));
    await store.finishTask(id, ended(), 2001, "{}");
  }
  // Another process takes the write lock again and again, 15 ms at a time.
  const holder = Bun.spawn(
    [
      process.execPath,
      "-e",
      `const { Database } = require("bun:sqlite");
       const db = new Database(${JSON.stringify(join(dir, "agentkit.sqlite"))});
       db.run("PRAGMA busy_timeout = 5000");
       const end = Date.now() + 4000;
       let said = false;
       while (Date.now() < end) {
         db.run("BEGIN IMMEDIATE");
         if (!said) { console.log("holding"); said = true; }
         Bun.sleepSync(15);
         db.run("ROLLBACK");
         Bun.sleepSync(3);
       }
       db.close();`,
    ],
    { stdout: "pipe", stderr: "inherit" },
  );
  const reader = holder.stdout.getReader();
  expect(new TextDecoder().decode((await reader.read()).value)).toContain("holding");
  try {
    expect(await store.pruneEvents(new Date(Date.now() - DAY))).toBe(30);
  } finally {
    holder.kill();
    await holder.exited;
  }
  for (const id of ids) expect(await store.getTask(id)).toMatchObject({ last_seq: 2001, pruned_through: 2001 });
}, 60_000);

test("readWalLog and framesWritten: the current log's frames, read off the file; a log that started over counts its own frames, not the difference", () => {
  const path = join(dataDir(), "x.sqlite");
  const db = new Database(path, { create: true });
  db.run("PRAGMA journal_mode = WAL");
  db.run("PRAGMA wal_autocheckpoint = 0");
  db.run("CREATE TABLE t (x TEXT)");
  const big = "b".repeat(3000);
  const insert = (rows: number) =>
    db.transaction(() => {
      for (let i = 0; i < rows; i++) db.query("INSERT INTO t VALUES (?)").run(big);
    })();
  insert(400);
  const grown = readWalLog(path);
  expect(grown.pageBytes).toBe(4096);
  expect(grown.frames).toBe((grown.fileBytes - 32) / (4096 + 24)); // every frame of the file is the current log's
  insert(10);
  const more = readWalLog(path);
  expect(more.salts).toBe(grown.salts);
  expect(framesWritten(grown, more)).toBe(more.frames - grown.frames);
  expect(framesWritten(grown, more)).toBeGreaterThan(0);
  // Checkpointed whole, the next commit starts the log over from the file's start: new salts, a few frames.
  db.query("PRAGMA wal_checkpoint(PASSIVE)").get();
  insert(1);
  const restarted = readWalLog(path);
  expect(restarted.salts).not.toBe(more.salts);
  expect(restarted.fileBytes).toBe(more.fileBytes); // the file keeps its size; the old frames past the new log are left over
  expect(restarted.frames).toBeGreaterThan(0);
  expect(restarted.frames).toBeLessThan(10);
  expect(framesWritten(more, restarted)).toBe(restarted.frames); // not max(0, few - many) = 0
  db.close();
});
