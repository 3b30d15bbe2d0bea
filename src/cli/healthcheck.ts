/**
 * `agentkit healthcheck`: finds the server the way `serve` was told to and asks `GET /health`.
 *
 * `serve` writes the address it actually listens on to `<data dir>/agentkit.addr.json` (removed on a
 * clean stop), so a plain `agentkit healthcheck` with the same environment follows a
 * `serve --port 9000` too — the Docker image's HEALTHCHECK relies on it. Order of precedence:
 * `--url`; `--port`/`--host` given to healthcheck; the address file, when the process that wrote it
 * is alive; `PORT`/`AGENTKIT_HOST` (and their defaults).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, loadConfig, type ConfigInput } from "../config/config.ts";
import { ADDRESS_FILE, healthUrl, isAlive, readAddressFile } from "../server/address-file.ts";
import { readAtMost } from "../lib/bounded-read.ts";

export interface HealthcheckOptions {
  url?: string;
  /** serve's flags (`--port`, `--host`, `--data-dir`, …). */
  flags?: Partial<ConfigInput>;
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
}

/** What to check and why: `from` says where the address came from. */
export function healthcheckTarget(options: HealthcheckOptions): { url: string; from: string } {
  if (options.url) return { url: withHealthPath(options.url), from: "--url" };
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

/**
 * `--url` is the server's base URL, as client commands take it (a proxy's path prefix included):
 * its `/health` is checked. A URL that already ends in `/health` is checked as given.
 */
function withHealthPath(url: string): string {
  const parsed = new URL(url);
  if (/\/health\/?$/.test(parsed.pathname)) return url;
  parsed.pathname = `${parsed.pathname.replace(/\/+$/, "")}/health`;
  return parsed.href;
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
    const signal = AbortSignal.timeout(options.timeoutMs ?? 3000);
    const response = await fetch(target.url, { signal, redirect: "manual" });
    if (!response.ok) {
      await response.body?.cancel();
      return { healthy: false, line: `unhealthy: ${tried}: HTTP ${response.status}` };
    }
    // Another server on that port (or a proxy's page) answering 2xx is not agentkit being healthy.
    const body = await readSmallText(response, 64 * 1024);
    let status: unknown;
    try {
      status = (JSON.parse(body ?? "") as { status?: unknown } | null)?.status;
    } catch {}
    return typeof status === "string"
      ? { healthy: true, line: `healthy: ${tried}: ${response.status}` }
      : { healthy: false, line: `unhealthy: ${tried}: HTTP ${response.status}, but not agentkit's /health (no JSON with a status)` };
  } catch (error) {
    const reason = error instanceof Error ? ((error as NodeJS.ErrnoException).code ?? error.message) : String(error);
    return { healthy: false, line: `unhealthy: ${tried}: ${reason}` };
  }
}

/** The body as text, or undefined past `limit` bytes (the rest is not read). */
async function readSmallText(response: Response, limit: number): Promise<string | undefined> {
  if (!response.body) return "";
  const bytes = await readAtMost(response.body, limit);
  return bytes === undefined ? undefined : Buffer.from(bytes).toString("utf8");
}
