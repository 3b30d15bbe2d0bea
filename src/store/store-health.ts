/**
 * Whether the store is taking writes. SQLite can stop writing while the server runs (a full disk,
 * an I/O error, a file made read-only: `isStoreWriteFailure`); reads go on working, so nothing
 * else notices. A failed write of the runner or of a request marks the store failing — /health
 * says `degraded` with the error — until a write succeeds again. A failed read (the same errors,
 * from a read) is not a write: it is the request's 503 and a line in the log, not the store's health.
 *
 * The server's store reports its write methods here (`WATCHED_WRITES`, through `instrumentStore`, the
 * one wrapper that also times them): the runner's writes are what recovers a failing store's tasks
 * (see the runner), and their success is what clears it.
 */
import { statSync } from "node:fs";
import { isStoreWriteFailure } from "../errors.ts";

/**
 * `failing`: SQLite refuses writes. `lost`: it takes them, but into a file that is no longer the
 * data dir's (deleted or replaced under the running server): they are gone when it stops.
 */
export type StoreWrites = { writes: "ok" } | { writes: "failing" | "lost"; since: string; error: string };

export interface StoreHealth {
  /** Notes a failed write, if `error` is one of the store's write failures (others are not its health). */
  failed(error: unknown): void;
  /** Whether `error` is a failed write noted by `failed` (a request's error handler tells a failed read from it). */
  noted(error: unknown): boolean;
  /** Notes a write that succeeded. */
  wrote(): void;
  state(): StoreWrites;
}

export function createStoreHealth(now: () => Date = () => new Date(), fileCheck?: () => string | undefined): StoreHealth {
  let failing: { since: string; error: string } | undefined;
  let lost: { since: string; error: string } | undefined;
  const writeErrors = new WeakSet<Error>();
  return {
    failed(error) {
      if (!isStoreWriteFailure(error)) return;
      writeErrors.add(error as Error);
      failing = { since: failing?.since ?? now().toISOString(), error: (error as Error).message.slice(0, 200) };
    },
    noted(error) {
      return error instanceof Error && writeErrors.has(error);
    },
    wrote() {
      failing = undefined;
    },
    state() {
      const gone = fileCheck?.();
      // Once gone, always gone: a file put back at the path is not the one this server writes.
      if (gone && !lost) lost = { since: now().toISOString(), error: gone };
      if (lost) return { writes: "lost", ...lost };
      return failing ? { writes: "failing", ...failing } : { writes: "ok" };
    },
  };
}

/**
 * Says whether the database file at `path` is still the one opened (same device and inode): an
 * operator who deletes `agentkit.sqlite` under a running server loses what it writes from then on
 * (SQLite goes on writing to the file it has open); one who replaces it gets both files damaged
 * (the WAL and the checkpoint worker go by the path). Undefined if there is no file. A file
 * overwritten in place (same inode) is not seen.
 */
export function databaseFileCheck(path: string): (() => string | undefined) | undefined {
  let opened: { dev: number; ino: number };
  try {
    opened = statSync(path);
  } catch {
    return undefined;
  }
  return () => {
    let current: { dev: number; ino: number };
    try {
      current = statSync(path);
    } catch {
      return `${path} was deleted while the server runs: what it writes from now on is lost when it stops (stop it, and restore the file from a backup)`;
    }
    if (current.dev !== opened.dev || current.ino !== opened.ino) {
      return `${path} was replaced while the server runs: stop it now — SQLite still has the old file (and its WAL) open and goes on writing, into it or into the file put there (a database file must never be replaced under a running server)`;
    }
    return undefined;
  };
}

/**
 * The store methods that write whatever the data (reads go on working while writes fail): the
 * server's store reports each call of them to its health (`instrumentStore`, src/telemetry). The
 * runner's, and those a request writes with (a task, a thread, a person's decision or message):
 * only they mark the writes failing — a read that fails does not.
 */
export const WATCHED_WRITES = [
  "createTask",
  "appendEvents",
  "finishTask",
  "waitTask",
  "markRunning",
  "takeOver",
  "createThread",
  "appendWhileWaiting",
  "addInput",
] as const;
