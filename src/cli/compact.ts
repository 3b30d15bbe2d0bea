/**
 * `agentkit compact [--data-dir DIR]`: shrinks the data dir's SQLite file offline (src/store/sqlite-compact.ts).
 * It takes the data dir as `serve` does — its `agentkit.lock`, and a live server named by its address
 * file — and refuses while a server has it; a server started meanwhile stops at once, saying the
 * lock is held. Exit codes: 0 compacted, 1 not done (in use, no database, an error: the data is whole,
 * as it was before the step that failed), 2 usage error or a PostgreSQL store.
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, loadConfig, type ConfigInput } from "../config/config.ts";
import { DataDirInUseError, LOCK_HELD, lockDataDir } from "../server/data-dir-lock.ts";
import { compactSqlite, CompactError, fileBytes, megabytes } from "../store/sqlite-compact.ts";
import { ADDRESS_FILE, liveServerOf } from "../server/address-file.ts";

export interface CompactOptions {
  /** serve's flags: `--data-dir`, `--database-url`. */
  flags: Partial<ConfigInput>;
  env?: Record<string, string | undefined>;
  out?: (line: string) => void;
  err?: (line: string) => void;
}

export async function runCompact(options: CompactOptions): Promise<number> {
  const out = options.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const err = options.err ?? ((line: string) => process.stderr.write(`${line}\n`));
  let config;
  try {
    config = loadConfig({ env: options.env ?? process.env, flags: options.flags, readFile: false });
  } catch (error) {
    if (error instanceof ConfigError) {
      err(`agentkit compact: ${error.message}`);
      return 2;
    }
    throw error;
  }
  if (config.databaseUrl) {
    const from = options.flags.databaseUrl ? "--database-url" : "AGENTKIT_DATABASE_URL";
    err(
      `agentkit compact: the store is PostgreSQL (${from}): compact works on a data dir's SQLite file only. ` +
        "PostgreSQL gives freed space back with its own VACUUM (autovacuum; VACUUM FULL rewrites a table under an exclusive lock). Nothing was done.",
    );
    return 2;
  }
  if (config.dataDir === ":memory:") {
    err("agentkit compact: the data dir is :memory: — there is no file to compact");
    return 2;
  }
  const path = join(config.dataDir, "agentkit.sqlite");
  if (!existsSync(path)) {
    err(`agentkit compact: there is no SQLite database at ${path} (--data-dir / AGENTKIT_DATA_DIR name the data dir)`);
    return 1;
  }
  const inUse = (by: string) =>
    err(`agentkit compact: the data dir ${config.dataDir} is in use by ${by}: stop it first — compact works offline. Nothing was done.`);
  let lock;
  try {
    lock = lockDataDir(config.dataDir);
  } catch (error) {
    if (error instanceof DataDirInUseError) {
      inUse(`another agentkit process (${LOCK_HELD})`);
      return 1;
    }
    throw error;
  }
  try {
    const running = await liveServerOf(config.dataDir);
    if (running) {
      inUse(`a running agentkit server (${running.url} answers as agentkit, pid ${running.pid} (${ADDRESS_FILE}))`);
      return 1;
    }
    const walBytes = fileBytes(path) - statSync(path).size;
    // A WAL a crash (or a kill) left holds commits not yet in the file: compact folds it in first, and its sizes count it.
    out(`agentkit compact: ${path}: ${megabytes(fileBytes(path))}${walBytes > 0 ? ` (the file ${megabytes(statSync(path).size)} and its WAL ${megabytes(walBytes)}, folded in first)` : ""}`);
    const started = performance.now();
    const result = compactSqlite(path, (line) => out(`  ${line}`));
    const done = [
      result.autoVacuumSet ? "auto_vacuum incremental (retention now gives freed space back)" : undefined,
      result.eventsRebuilt > 0 ? `${result.eventsRebuilt.toLocaleString("en-US")} events in the new layout` : undefined,
    ].filter(Boolean);
    out(
      `agentkit compact: ${path}: ${megabytes(result.bytesBefore)} → ${megabytes(result.bytesAfter)}` +
        `${done.length ? `; ${done.join("; ")}` : ""} (${((performance.now() - started) / 1000).toFixed(1)} s)`,
    );
    return 0;
  } catch (error) {
    if (error instanceof CompactError) err(`agentkit compact: ${error.message}`);
    else {
      const reason = error instanceof Error ? error.message : String(error);
      const full = /disk is full|SQLITE_FULL|no space/i.test(`${reason} ${(error as { code?: unknown })?.code ?? ""}`);
      err(
        `agentkit compact: failed: ${reason} — the data is whole, as it was before the step that failed` +
          (full ? " (VACUUM needs up to about twice the file's size free: its temporary copy in SQLITE_TMPDIR, TMPDIR or /var/tmp, its journal beside the file)" : ""),
      );
    }
    return 1;
  } finally {
    lock.release();
  }
}
