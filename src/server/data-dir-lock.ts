/**
 * One server per data dir (SQLite mode). Two processes on one data dir both take the tasks of "the
 * previous run" at start-up: the second resumed a task the first was still running, the first's end
 * was refused, and the task stayed `running` with nobody running it. SQLite allows several processes
 * on one file; agentkit's runner does not. (Servers share a PostgreSQL database in cluster mode.)
 *
 * The lock is an exclusive SQLite lock (an `fcntl` lock, which the kernel drops when the process
 * ends, `kill -9` included) on `agentkit.lock` in the data dir, held until the server stops.
 */
import { Database } from "bun:sqlite";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";

export interface DataDirLock {
  release(): void;
}

/** Who holds `agentkit.lock` cannot be told from outside: a server, or an `agentkit compact` (offline, minutes at most). */
export const LOCK_HELD = "its agentkit.lock is held: a server, or an agentkit compact";

export class DataDirInUseError extends Error {
  /** `by`: what shows a server there; without it, the lock — held by a server or by `agentkit compact`. */
  constructor(
    readonly dataDir: string,
    by?: string,
  ) {
    super(
      `the data dir ${dataDir} is in use by ${by ? `another agentkit server (${by})` : `another agentkit process (${LOCK_HELD})`}: ` +
        "one data dir serves one server — stop that one, or choose another --data-dir " +
        "(servers share a PostgreSQL database instead: AGENTKIT_DATABASE_URL)",
    );
    this.name = "DataDirInUseError";
  }
}

/**
 * Takes the data dir, or throws `DataDirInUseError`. A lock file that cannot be made at all (a
 * data dir this user cannot write) is no lock: opening the database then fails, saying why.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  if (existsSync(dataDir) && !statSync(dataDir).isDirectory()) {
    throw new Error(`the data dir ${dataDir} is a file, not a directory: choose another --data-dir`);
  }
  let db: Database;
  try {
    mkdirSync(dataDir, { recursive: true });
    db = new Database(join(dataDir, "agentkit.lock"), { create: true });
  } catch {
    return { release() {} };
  }
  try {
    db.run("PRAGMA busy_timeout = 0");
    db.run("PRAGMA locking_mode = EXCLUSIVE");
    db.run("BEGIN EXCLUSIVE");
  } catch (error) {
    db.close();
    if (isBusy(error)) throw new DataDirInUseError(dataDir);
    return { release() {} };
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      try {
        db.run("ROLLBACK");
      } finally {
        db.close();
      }
    },
  };
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === "SQLITE_BUSY" || (error instanceof Error && /database is locked/i.test(error.message));
}
