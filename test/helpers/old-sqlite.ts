/**
 * A data dir as a build before 2026-11-27 left it (schema 5): no `auto_vacuum` (a file whose first
 * page was written before any table) and the events table WITHOUT ROWID, keyed (task_id, seq) —
 * filled through the store's own code, which keeps that layout. For `agentkit compact`'s tests.
 */
import { Database } from "bun:sqlite";
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";

/** The events table as schema 5 made it until 2026-11-27 (src/store/sqlite-store.ts at 5bc8769^). */
export const OLD_EVENTS_TABLE = `CREATE TABLE IF NOT EXISTS events (
  task_id TEXT NOT NULL,
  seq     INTEGER NOT NULL,
  frame   TEXT NOT NULL,
  PRIMARY KEY (task_id, seq)
) WITHOUT ROWID`;

export interface OldDataOptions {
  /** Tasks with a log each (half of them ended 2 days ago and pruned, so the file has free pages). */
  tasks?: number;
  events?: number;
  /** Bytes of text in each frame: 1–3 KB frames are what the old layout stores worst. */
  pad?: number;
}

export async function writeOldDataDir(dataDir: string, options: OldDataOptions = {}): Promise<void> {
  const path = join(dataDir, "agentkit.sqlite");
  mkdirSync(dataDir, { recursive: true });
  const raw = new Database(path, { create: true });
  raw.run("PRAGMA journal_mode = WAL"); // the first page written: auto_vacuum can no longer be chosen
  raw.close();
  const made = createSqliteStore({ dataDir });
  await made.close();
  const convert = new Database(path);
  convert.run("DROP INDEX events_task_seq");
  convert.run("DROP TABLE events");
  convert.run(OLD_EVENTS_TABLE);
  convert.close();

  const store = createSqliteStore({ dataDir });
  const tasks = options.tasks ?? 6;
  const events = options.events ?? 400;
  const pad = options.pad ?? 1500;
  const day = 24 * 3_600_000;
  const ended = new Date(Date.now() - 2 * day);
  for (let task = 0; task < tasks; task++) {
    const id = `task-${task}`;
    await store.createTask({ id, owner: task % 2 ? "alice" : "bob", agent: "a", input: `input ${task}`, metadata: { n: task }, createdAt: ended });
    await store.markRunning(id, ended);
    for (let seq = 1; seq <= events; seq += 50) {
      const count = Math.min(50, events - seq + 1);
      await store.appendEvents(id, Array.from({ length: count }, (_, index) => ({ seq: seq + index, frame: oldFrame(id, seq + index, pad) })));
    }
    if (task % 3 !== 2) {
      await store.finishTask(id, {
        status: "completed",
        stopReason: "final_answer",
        output: `output ${task}`,
        error: null,
        totalSteps: 1,
        inputTokens: 1,
        outputTokens: 1,
        costUsd: null,
        finishedAt: task % 3 === 0 ? ended : new Date(),
      }, events + 1, `{"type":"result","seq":${events + 1}}`);
    }
  }
  await store.createThread({ id: "thread-1", owner: "alice", createdAt: ended, adopt: "task-1" });
  await store.addInput("task-2", { id: "input-1", text: "steer", by: "alice", createdAt: ended });
  await store.secret("share");
  // The logs of tasks that ended 2 days ago go: free pages the old file keeps.
  await store.pruneEvents(new Date(Date.now() - day));
  await store.close();
}

export function oldFrame(id: string, seq: number, pad: number): string {
  return JSON.stringify({ type: "step", seq, data: { task: id, text: "x".repeat(pad) } });
}

/** Every row of every table (with its rowid where it has one) and the schema version: what compacting must keep. */
export function contentsOf(path: string): { version: number; digest: string; events: number } {
  const db = new Database(path, { readonly: true });
  try {
    const hash = createHash("sha256");
    const tables = (db.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map((row) => row.name);
    let events = 0;
    for (const table of tables) {
      hash.update(`table ${table}\n`);
      // The events table: by key (its rowid, in the new layout, is nobody's); the others with their rowid (cursors, order).
      const sql = table === "events" ? "SELECT task_id, seq, frame FROM events ORDER BY task_id, seq" : `SELECT rowid AS _rowid, * FROM "${table}" ORDER BY rowid`;
      for (const row of db.query(sql).iterate() as Iterable<Record<string, unknown>>) {
        hash.update(JSON.stringify(row, (_, value) => (value instanceof Uint8Array ? Buffer.from(value).toString("hex") : value)));
        hash.update("\n");
        if (table === "events") events++;
      }
    }
    const version = (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
    return { version, digest: hash.digest("hex"), events };
  } finally {
    db.close();
  }
}

/** The file's layout: the events table's DDL, its index, auto_vacuum. */
export function layoutOf(path: string): { eventsSql: string; eventsIndex: string | null; autoVacuum: number } {
  const db = new Database(path, { readonly: true });
  try {
    const eventsSql = (db.query("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'").get() as { sql: string }).sql;
    const index = db.query("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'events_task_seq'").get() as { sql: string } | null;
    const autoVacuum = (db.query("PRAGMA auto_vacuum").get() as { auto_vacuum: number }).auto_vacuum;
    return { eventsSql, eventsIndex: index?.sql ?? null, autoVacuum };
  } finally {
    db.close();
  }
}
