/**
 * Micro-benchmark (not part of `bun run bench`): what SQLite costs per event for the event log's
 * schema (`events`, a row per event, WITHOUT ROWID, 32-row INSERTs as src/store/sqlite-store.ts
 * does) against one row per commit ("chunks": a turn's frames joined by newlines). Same PRAGMAs as
 * the store (WAL, synchronous=NORMAL, 64 MiB cache); each task is 3 commits of 64 events (~200 B
 * frames) plus its `last_seq` update; the WAL is truncated between rounds, outside the timing.
 *
 *   bun bench/sqlite-rows.ts [tasks per round = 100] [rounds = 6]
 */
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { median } from "./lib/context.ts";
import { newTaskId } from "../src/tasks/task-id.ts";

const tasks = Number(process.argv[2] ?? 100);
const rounds = Number(process.argv[3] ?? 6);
const dir = mkdtempSync(join(tmpdir(), "sqlite-rows-"));
const db = new Database(join(dir, "bench.db"));
db.run("PRAGMA journal_mode = WAL");
db.run("PRAGMA synchronous = NORMAL");
db.run("PRAGMA cache_size = -65536");
db.run("PRAGMA wal_autocheckpoint = 0");
db.run(`CREATE TABLE tasks (id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL DEFAULT 0)`);
db.run(`CREATE TABLE events (task_id TEXT NOT NULL, seq INTEGER NOT NULL, frame TEXT NOT NULL, PRIMARY KEY (task_id, seq)) WITHOUT ROWID`);
db.run(`CREATE TABLE chunks (task_id TEXT NOT NULL, last_seq INTEGER NOT NULL, first_seq INTEGER NOT NULL, frames TEXT NOT NULL, PRIMARY KEY (task_id, last_seq)) WITHOUT ROWID`);
const insertRows = db.query(`INSERT INTO events (task_id, seq, frame) VALUES ${Array.from({ length: 32 }, (_, row) => `(?1, ?${2 * row + 2}, ?${2 * row + 3})`).join(", ")}`);
const insertChunk = db.query(`INSERT INTO chunks (task_id, last_seq, first_seq, frames) VALUES (?1, ?2, ?3, ?4)`);
const moveSeq = db.query(`UPDATE tasks SET last_seq = ?2 WHERE id = ?1`);
const insertTask = db.query(`INSERT INTO tasks (id) VALUES (?1)`);

const frame = (seq: number) =>
  JSON.stringify({ type: "step", seq, task_id: "tsk_01JXXXXXXXXXXXXXXXXXXXXXXX", event_type: "tool_call", step: seq, data: { id: `b${seq}`, name: "calculator", arguments: { expression: `${seq}+1`, t: 1795707209874.123 } }, at: "2026-11-26T16:00:00.000Z" });
const turns = [0, 1, 2].map((turn) => Array.from({ length: 64 }, (_, index) => frame(turn * 64 + index + 1)));

function round(mode: "rows" | "chunks"): number {
  const before = process.cpuUsage();
  for (let task = 0; task < tasks; task++) {
    const id = newTaskId(); // time-ordered, as the store's: appends go to the B-tree's right edge
    insertTask.run(id);
    turns.forEach((frames, turn) => {
      db.transaction(() => {
        moveSeq.run(id, (turn + 1) * 64);
        if (mode === "chunks") {
          insertChunk.run(id, (turn + 1) * 64, turn * 64 + 1, frames.join("\n"));
          return;
        }
        for (let start = 0; start < 64; start += 32) {
          const values: (string | number)[] = [id];
          for (let index = start; index < start + 32; index++) values.push(turn * 64 + index + 1, frames[index]!);
          insertRows.run(...values);
        }
      })();
    });
  }
  const used = process.cpuUsage(before);
  return (used.user + used.system) / (tasks * 192);
}

const results: Record<"rows" | "chunks", number[]> = { rows: [], chunks: [] };
for (let index = 0; index < rounds; index++) {
  for (const mode of ["rows", "chunks"] as const) {
    db.query("PRAGMA wal_checkpoint(TRUNCATE)").get();
    results[mode].push(round(mode));
  }
}
for (const mode of ["rows", "chunks"] as const) {
  const values = results[mode];
  console.log(`${mode}: ${median(values).toFixed(2)} µs of CPU per event (median; ${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)} over ${rounds} rounds of ${tasks} tasks × 192 events)`);
}
db.close();
rmSync(dir, { recursive: true, force: true });
