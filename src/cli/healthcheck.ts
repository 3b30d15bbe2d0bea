/**
 * `agentkit healthcheck`: finds the server the way `serve` was told to and asks `GET /health`.
 *
 * `serve` writes the address it actually listens on to `<data dir>/agentkit.addr.json` (removed on a
 * clean stop), so a plain `agentkit healthcheck` with the same environment follows a
 * `serve --port 9000` too — the Docker image's HEALTHCHECK relies on it. Order of precedence:
 * `--url`; `--port`/`--host` given to healthcheck; the address file, when the process that wrote it
 * is alive; `PORT`/`AGENTKIT_HOST` (and their defaults).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, loadConfig, type ConfigInput } from "../config/config.ts";

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

function readAddressFile(path: string): AddressRecord | undefined {
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

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"; // alive, another user's
  }
}

export interface HealthcheckOptions {
  url?: string;
  /** serve's flags (`--port`, `--host`, `--data-dir`, …). */
  flags?: Partial<ConfigInput>;
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
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

/** What to check and why: `from` says where the address came from. */
export function healthcheckTarget(options: HealthcheckOptions): { url: string; from: string } {
  if (options.url) return { url: options.url, from: "--url" };
  const flags = options.flags ?? {};
  // The same environment and flags as serve; the config file holds no address, so it is not read.
  const config = loadConfig({ env: options.env ?? process.env, flags, readFile: false });
  const given = [flags.port !== undefined && "--port", flags.host !== undefined && "--host"].filter(Boolean);
  if (given.length === 0) {
    const path = join(config.dataDir, ADDRESS_FILE);
    const record = existsSync(path) ? readAddressFile(path) : undefined;
    if (record && isAlive(record.pid)) {
      return { url: healthUrl(record.host, record.port), from: `${path}, written by pid ${record.pid}` };
    }
  }
  const from = given.length > 0 ? given.join(" and ") : `PORT/AGENTKIT_HOST or defaults (no live ${join(config.dataDir, ADDRESS_FILE)})`;
  if (config.port === 0) throw new ConfigError(`port 0 (from ${from}) names no port to check`);
  return { url: healthUrl(config.host, config.port), from };
}

/** Runs the check; `line` is the one line to print, saying what was tried. */
export async function healthcheck(options: HealthcheckOptions): Promise<{ healthy: boolean; line: string }> {
  let target;
  try {
    target = healthcheckTarget(options);
  } catch (error) {
    if (error instanceof ConfigError) return { healthy: false, line: `unhealthy: ${error.message}` };
    throw error;
  }
  const tried = `GET ${target.url} (address from ${target.from})`;
  try {
    const response = await fetch(target.url, { signal: AbortSignal.timeout(options.timeoutMs ?? 3000), redirect: "manual" });
    await response.body?.cancel();
    return response.ok
      ? { healthy: true, line: `healthy: ${tried}: ${response.status}` }
      : { healthy: false, line: `unhealthy: ${tried}: HTTP ${response.status}` };
  } catch (error) {
    const reason = error instanceof Error ? ((error as NodeJS.ErrnoException).code ?? error.message) : String(error);
    return { healthy: false, line: `unhealthy: ${tried}: ${reason}` };
  }
}
