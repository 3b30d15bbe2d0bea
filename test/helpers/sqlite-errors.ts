/**
 * Real errors of bun:sqlite, made on the spot, for tests that make a store's call fail as SQLite
 * fails (a Proxy over the real store throws one): the server tells them apart by name and code.
 */
import { Database } from "bun:sqlite";
import { rmSync } from "node:fs";
import { join } from "node:path";

/** The error bun:sqlite throws when the disk is full (SQLITE_FULL: an in-memory database at its page limit). */
export function diskFullError(): Error {
  const db = new Database(":memory:");
  db.run("CREATE TABLE t (x BLOB)");
  const { page_count } = db.query("PRAGMA page_count").get() as { page_count: number };
  db.run(`PRAGMA max_page_count = ${page_count}`);
  try {
    db.run("INSERT INTO t VALUES (zeroblob(100000))");
  } catch (error) {
    return error as Error;
  } finally {
    db.close();
  }
  throw new Error("SQLite took the row past its page limit");
}

/**
 * The error bun:sqlite throws when a read finds the database locked past its busy timeout
 * (SQLITE_BUSY: another connection holds an exclusive lock on a rollback-journal file in `dir`).
 */
export function busyReadError(dir: string): Error {
  const path = join(dir, `busy-${crypto.randomUUID()}.sqlite`);
  const holder = new Database(path);
  const reader = new Database(path);
  try {
    holder.run("CREATE TABLE t (x)");
    reader.run("PRAGMA busy_timeout = 0");
    holder.run("BEGIN EXCLUSIVE");
    try {
      reader.query("SELECT * FROM t").all();
    } catch (error) {
      return error as Error;
    }
    throw new Error("SQLite read a database another connection holds exclusively");
  } finally {
    reader.close();
    holder.close();
    for (const suffix of ["", "-journal"]) rmSync(path + suffix, { force: true });
  }
}
