/**
 * The events table's two layouts side by side (not part of `bun run bench`): the WITHOUT ROWID
 * table keyed (task_id, seq) that files made before 2026-11-27 have, and the plain table with a
 * unique (task_id, seq) index that new files get (src/store/sqlite-store.ts). 16 tasks write their
 * logs interleaved, 3 events per commit (WAL, synchronous=NORMAL, as the store), then each log is
 * read back whole on a fresh connection with a small cache:
 *
 *   bun bench/sqlite-layout.ts [events per task=600] [rounds=2]
 *
 * Prints, per frame size and layout: the file's size after a checkpoint, the CPU per event written,
 * and the time to read one log.
 */
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const steps = Number(process.argv[2] ?? 600);
const rounds = Number(process.argv[3] ?? 2);
const TASKS = 16;
const LAYOUTS = {
  "without rowid": ["CREATE TABLE events (task_id TEXT NOT NULL, seq INTEGER NOT NULL, frame TEXT NOT NULL, PRIMARY KEY (task_id, seq)) WITHOUT ROWID"],
  "plain + index": ["CREATE TABLE events (task_id TEXT NOT NULL, seq INTEGER NOT NULL, frame TEXT NOT NULL)", "CREATE UNIQUE INDEX events_task_seq ON events(task_id, seq)"],
};

for (let round = 1; round <= rounds; round++) {
  for (const pad of [300, 1500, 3000]) {
    for (const [layout, ddl] of Object.entries(LAYOUTS)) {
      const dir = mkdtempSync(join(tmpdir(), "sqlite-layout-"));
      const path = join(dir, "a.sqlite");
      const db = new Database(path, { create: true });
      db.run("PRAGMA journal_mode = WAL");
      db.run("PRAGMA synchronous = NORMAL");
      for (const statement of ddl) db.run(statement);
      const insert = db.query("INSERT INTO events (task_id, seq, frame) VALUES (?, ?, ?)");
      const commit = db.transaction((task: string, from: number) => {
        for (let seq = from; seq < from + 3; seq++) insert.run(task, seq, `{"type":"step","seq":${seq},"data":{"text":"${"x".repeat(pad)}"}}`);
      });
      const ids = Array.from({ length: TASKS }, () => crypto.randomUUID());
      const before = process.cpuUsage();
      for (let seq = 1; seq <= steps; seq += 3) for (const id of ids) commit(id, seq);
      const cpu = process.cpuUsage(before);
      db.run("PRAGMA wal_checkpoint(TRUNCATE)");
      const bytes = statSync(path).size;
      db.close();
      const reader = new Database(path, { readonly: true });
      reader.run("PRAGMA cache_size = -2000");
      const read = reader.query("SELECT seq, frame FROM events WHERE task_id = ? AND seq > 0 ORDER BY seq");
      const started = performance.now();
      for (const id of ids) read.all(id);
      const readMs = (performance.now() - started) / TASKS;
      reader.close();
      rmSync(dir, { recursive: true, force: true });
      const data = TASKS * steps * (pad + 50);
      console.log(
        `round ${round}  frames of ~${pad + 50} B  ${layout.padEnd(13)}  file ${(bytes / 1e6).toFixed(1)} MB (${(bytes / data).toFixed(2)}× the frames)  ` +
          `write ${((cpu.user + cpu.system) / (TASKS * steps)).toFixed(2)} µs CPU/event  read one ${steps}-event log ${readMs.toFixed(2)} ms`,
      );
    }
  }
}
