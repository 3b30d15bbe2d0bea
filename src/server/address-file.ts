/**
 * The address file: `serve` writes the address it actually listens on to
 * `<data dir>/agentkit.addr.json` (removed on a clean stop). `agentkit healthcheck` (src/cli) finds
 * the server through it, and a starting server checks that no live agentkit already serves its
 * data dir (`liveServerOf`, beside the data-dir lock).
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** The file, in the data dir, where `serve` records the address it listens on. */
export const ADDRESS_FILE = "agentkit.addr.json";

export interface AddressRecord {
  /** The URL as bound, e.g. `http://0.0.0.0:9000`. */
  url: string;
  host: string;
  port: number;
  pid: number;
  /** The store that server uses (absent in files older builds wrote): only a SQLite one owns the data dir. */
  store?: "sqlite" | "postgres";
}

/** Where to connect to reach a server bound to `host`: a wildcard bind is checked on loopback. */
export function connectHost(host: string): string {
  const bare = host.replace(/^\[(.*)\]$/, "$1");
  if (bare === "0.0.0.0" || bare === "") return "127.0.0.1";
  if (bare === "::") return "[::1]";
  return bare.includes(":") ? `[${bare}]` : bare;
}

export function healthUrl(host: string, port: number): string {
  return `http://${connectHost(host)}:${port}/health`;
}

/** Records the address `serve` listens on; atomic (write, then rename), so a reader never sees half. */
export function writeAddressFile(dataDir: string, record: AddressRecord): string {
  const path = join(dataDir, ADDRESS_FILE);
  const temporary = `${path}.${process.pid}.tmp`;
  // With PostgreSQL nothing else creates the data dir.
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(temporary, `${JSON.stringify(record)}\n`);
  renameSync(temporary, path);
  return path;
}

/** Removes the address file if this process wrote it (a newer server may have replaced it). */
export function removeAddressFile(dataDir: string, pid = process.pid): void {
  const path = join(dataDir, ADDRESS_FILE);
  if (readAddressFile(path)?.pid === pid) rmSync(path, { force: true });
}

/** The record in the address file at `path`; undefined if it is missing or not one. */
export function readAddressFile(path: string): AddressRecord | undefined {
  try {
    const record = JSON.parse(readFileSync(path, "utf8")) as Partial<AddressRecord>;
    if (typeof record.host === "string" && Number.isInteger(record.port) && Number.isInteger(record.pid)) {
      return record as AddressRecord;
    }
  } catch {
    // missing or unreadable: as if there were none
  }
  return undefined;
}

/** Whether a process with this pid exists (another user's too). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"; // alive, another user's
  }
}

/**
 * The server another process runs on `dataDir`, if its address file names one that is alive and
 * answers `GET /health` as agentkit does (a stale file, a reused pid, an address nobody serves: none).
 * The data-dir lock's second check: a server older than the lock, or one whose lock file was
 * deleted, still writes this file.
 */
export async function liveServerOf(dataDir: string, timeoutMs = 1000): Promise<AddressRecord | undefined> {
  const record = readAddressFile(join(dataDir, ADDRESS_FILE));
  // A PostgreSQL-mode server writes its address here too, but the SQLite file is not its.
  if (!record || record.store === "postgres" || record.pid === process.pid || !isAlive(record.pid)) return undefined;
  try {
    const response = await fetch(healthUrl(record.host, record.port), { signal: AbortSignal.timeout(timeoutMs), redirect: "manual" });
    const body = (await response.json().catch(() => undefined)) as { version?: unknown; uptime_s?: unknown } | undefined;
    return typeof body?.version === "string" && typeof body.uptime_s === "number" ? record : undefined;
  } catch {
    return undefined;
  }
}
