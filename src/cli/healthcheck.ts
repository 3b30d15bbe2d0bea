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

export interface HealthcheckOptions {
  url?: string;
  /** serve's flags (`--port`, `--host`, `--data-dir`, …). */
  flags?: Partial<ConfigInput>;
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
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
