/**
 * `agentkit compact`: makes a SQLite file as small as its data, offline (src/cli/compact.ts takes the
 * data dir's lock first). A file made by an older build never shrinks: it has no `auto_vacuum` (that
 * can only be chosen before the first page, or by `VACUUM`), and its `events` table is WITHOUT ROWID,
 * which keeps each frame's first ~1,000 bytes on its page and the rest on an overflow page of its own
 * (1–3 KB frames took 2–3× their size). Up to three steps, each one transaction or one `VACUUM`, so
 * that a file interrupted anywhere (kill -9, power loss: rollback journal, `synchronous = FULL`) is
 * whole, as it was before that step or after it:
 *
 * 1. `PRAGMA auto_vacuum = INCREMENTAL; VACUUM` — a file without it (VACUUM rewrites the file: it
 *    then gives its free pages back, as a new file does after retention);
 * 2. the events table rebuilt in the new layout (a plain table and a unique (task_id, seq) index,
 *    as a new file has them) in one transaction that copies every row in (task_id, seq) order,
 *    checks the count, drops the old table and gives its pages back (`incremental_vacuum`);
 * 3. `VACUUM` — a file that needed neither (it defragments it and gives back every free page).
 *
 * The schema version (`user_version`) is kept: the events table's layout is no part of it (both
 * layouts came with schema 5), so an agentkit of the same schema opens the file as before, and a
 * newer one migrates it as usual (a compacted schema-5 file stays schema 5). `VACUUM` writes a
 * temporary copy of the database in SQLite's temporary directory (SQLITE_TMPDIR, else TMPDIR, else
 * /var/tmp) and a journal beside the file: it needs up to about twice the file's size free.
 */
import { Database } from "bun:sqlite";
import { existsSync, statSync } from "node:fs";
import { EVENTS_INDEX, EVENTS_TABLE, SCHEMA_VERSION } from "./sqlite-store.ts";

export interface CompactResult {
  /** The file's size before (its WAL, if it had one, included) and after, in bytes. */
  bytesBefore: number;
  bytesAfter: number;
  /** Events rebuilt in the new layout (0: the file had it already). */
  eventsRebuilt: number;
  /** `auto_vacuum` was turned on (the file gives retention's freed space back from now on). */
  autoVacuumSet: boolean;
}

/** A file that cannot be compacted (not agentkit's, from a newer agentkit, in use): said so that an operator can act. */
export class CompactError extends Error {
  override name = "CompactError";
}

/** The database file's size with its WAL, in bytes (0 for either that is not there). */
export function fileBytes(path: string): number {
  const size = (file: string) => (existsSync(file) ? statSync(file).size : 0);
  return size(path) + size(`${path}-wal`);
}

const INCREMENTAL = 2;

/**
 * Compacts the SQLite file at `path`, which nothing else may be using (the caller holds the data
 * dir's lock). `say` gets a line before each step (they can take minutes on a large file).
 */
export function compactSqlite(path: string, say: (line: string) => void = () => {}): CompactResult {
  if (!existsSync(path)) throw new CompactError(`there is no SQLite database at ${path}`);
  const bytesBefore = fileBytes(path);
  let db: Database;
  try {
    db = new Database(path, { readwrite: true, create: false });
  } catch (error) {
    throw new CompactError(`cannot open ${path} (${error instanceof Error ? error.message : String(error)})`);
  }
  try {
    db.run("PRAGMA busy_timeout = 2000");
    const tables = new Set((db.query("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((row) => row.name));
    if (!tables.has("tasks") || !tables.has("events")) throw new CompactError(`${path} is not an agentkit database (it has no tasks and events tables)`);
    const version = (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
    if (version > SCHEMA_VERSION) {
      throw new CompactError(`${path} has schema version ${version}, newer than this agentkit (${SCHEMA_VERSION}): compact it with that agentkit`);
    }
    // A rollback journal while it works: it takes the whole file (as VACUUM does), and a WAL would
    // hold a second copy of everything written. Leaving WAL mode checkpoints what the WAL holds; it
    // fails if another connection has the file open. The file is put back in WAL mode at the end
    // (the server sets it at every start anyway).
    let mode: string;
    try {
      mode = (db.query("PRAGMA journal_mode = DELETE").get() as { journal_mode: string }).journal_mode;
    } catch (error) {
      throw new CompactError(`${path} is in use by another process (${error instanceof Error ? error.message : String(error)})`);
    }
    if (mode !== "delete") throw new CompactError(`${path} is in use by another process (it stays in ${mode} mode)`);
    db.run("PRAGMA synchronous = FULL");
    db.run("PRAGMA cache_size = -65536");

    let vacuumed = false;
    const autoVacuumSet = (db.query("PRAGMA auto_vacuum").get() as { auto_vacuum: number }).auto_vacuum !== INCREMENTAL;
    if (autoVacuumSet) {
      say(`setting auto_vacuum = incremental: VACUUM rewrites the file (${megabytes(statSync(path).size)})`);
      db.run("PRAGMA auto_vacuum = INCREMENTAL");
      db.run("VACUUM");
      vacuumed = true;
      if ((db.query("PRAGMA auto_vacuum").get() as { auto_vacuum: number }).auto_vacuum !== INCREMENTAL) {
        throw new CompactError(`SQLite did not turn auto_vacuum on for ${path}`);
      }
    }

    let eventsRebuilt = 0;
    const events = db.query("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'").get() as { sql: string };
    if (/WITHOUT\s+ROWID/i.test(events.sql)) {
      const rows = (db.query("SELECT count(*) AS n FROM events").get() as { n: number }).n;
      say(`rebuilding the events table in the new layout (${rows.toLocaleString("en-US")} events), in one transaction`);
      db.transaction(() => {
        if (tables.has("events_without_rowid")) db.run("DROP TABLE events_without_rowid"); // never expected: a rolled-back rebuild leaves nothing
        db.run("ALTER TABLE events RENAME TO events_without_rowid");
        db.run(EVENTS_TABLE);
        db.run(EVENTS_INDEX);
        // In key order: the new table's rows and its index are appended to, never split.
        db.run("INSERT INTO events (task_id, seq, frame) SELECT task_id, seq, frame FROM events_without_rowid ORDER BY task_id, seq");
        const copied = (db.query("SELECT count(*) AS n FROM events").get() as { n: number }).n;
        if (copied !== rows) throw new CompactError(`the events table's rebuild copied ${copied} of ${rows} rows: nothing was changed`);
        db.run("DROP TABLE events_without_rowid");
        db.run("PRAGMA incremental_vacuum"); // the old table's pages, given back in the same transaction
      }).immediate();
      eventsRebuilt = rows;
    }

    if (!vacuumed && eventsRebuilt === 0) {
      say(`VACUUM (${megabytes(statSync(path).size)})`);
      db.run("VACUUM");
    }
    db.run("PRAGMA journal_mode = WAL");
    db.close();
    return { bytesBefore, bytesAfter: fileBytes(path), eventsRebuilt, autoVacuumSet };
  } catch (error) {
    try {
      db.run("PRAGMA journal_mode = WAL"); // as it was (a rolled-back step changed nothing else that matters)
    } catch {
      // the server sets it at every start anyway
    }
    try {
      db.close();
    } catch {
      // closing after a failure: the error that matters is the first
    }
    throw error;
  }
}

export function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toLocaleString("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 })} MB`;
}
