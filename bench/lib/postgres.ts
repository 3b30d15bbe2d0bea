/**
 * PostgreSQL for the cluster scenarios (issue 9).
 *
 * - `AGENTKIT_BENCH_DATABASE_URL` set: that server is used (its user needs CREATEDB); the bench
 *   creates a database of its own per scenario run (`agentkit_bench_<random>`) and drops it after.
 * - Else, when PostgreSQL's binaries are installed (`/usr/lib/postgresql/<v>/bin`, or `initdb` on
 *   the PATH): a throwaway cluster in a temp dir (initdb + postgres), on a free loopback port, as
 *   the `postgres` (or `nobody`) user when the bench runs as root (initdb refuses root), stopped at
 *   the end — on failure and Ctrl-C too (and, through setpriv's --pdeathsig, if the bench itself
 *   is killed). **Durability is left on** (`fsync`, `synchronous_commit`, `full_page_writes`: the
 *   defaults), unlike the tests' cluster: every append's COMMIT waits for the WAL flush, so the
 *   figures are what a production server on this disk would give.
 * - Else the cluster scenarios are skipped, with the reason.
 */
import { SQL } from "bun";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { freePort } from "./processes.ts";

export interface BenchPostgres {
  /** Where it came from: "throwaway cluster (PostgreSQL 15.x, …)" or "AGENTKIT_BENCH_DATABASE_URL". */
  readonly description: string;
  /** The data directory of a throwaway cluster (for the disk it is on), else null. */
  readonly dataDir: string | null;
  /** Settings that matter for the figures, as the server reports them. */
  readonly settings: Record<string, string>;
  /** A new empty database; its URL. Dropped by `stop`. */
  createDatabase(): Promise<string>;
  /** Runs a query on a database (by URL): e.g. who holds a task's lease. */
  query<T = Record<string, unknown>>(url: string, text: string, params?: unknown[]): Promise<T[]>;
  /** Drops the databases it created and stops a throwaway cluster; idempotent. */
  stop(): Promise<void>;
  /** Synchronous last resort on process exit: signals the server to stop (fast shutdown). */
  killNow(): void;
}

export type Availability = { ok: true; url?: string; bin?: string } | { ok: false; reason: string };

function findBinDir(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((version) => existsSync(join(root, version, "bin", "initdb")))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(root, versions[0], "bin");
  }
  const initdb = Bun.which("initdb");
  return initdb && existsSync(join(dirname(initdb), "postgres")) ? dirname(initdb) : undefined;
}

function serviceUser(): { name: string; uid: number; gid: number } | undefined {
  for (const name of ["postgres", "nobody"]) {
    const uid = Bun.spawnSync(["id", "-u", name], { stderr: "ignore" });
    const gid = Bun.spawnSync(["id", "-g", name], { stderr: "ignore" });
    if (uid.exitCode === 0 && gid.exitCode === 0) {
      return { name, uid: Number(uid.stdout.toString().trim()), gid: Number(gid.stdout.toString().trim()) };
    }
  }
  return undefined;
}

/** Whether the cluster scenarios can run here, and with which PostgreSQL. */
export function postgresAvailability(): Availability {
  const url = process.env.AGENTKIT_BENCH_DATABASE_URL;
  if (url) return { ok: true, url };
  const bin = findBinDir();
  if (!bin) return { ok: false, reason: "AGENTKIT_BENCH_DATABASE_URL is not set and PostgreSQL is not installed (no initdb)" };
  if (process.getuid?.() === 0) {
    if (!Bun.which("setpriv")) return { ok: false, reason: "running as root without setpriv to start PostgreSQL as another user" };
    if (!serviceUser()) return { ok: false, reason: "running as root and there is no 'postgres' or 'nobody' user to start PostgreSQL as" };
  }
  return { ok: true, bin };
}

const SHOWN = ["server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_sync_method", "shared_buffers", "max_connections"];

async function settingsOf(url: string): Promise<Record<string, string>> {
  const sql = new SQL(url, { max: 1 });
  try {
    const settings: Record<string, string> = {};
    for (const name of SHOWN) {
      const [row] = await sql.unsafe(`SHOW ${name}`);
      settings[name] = String(Object.values(row as Record<string, unknown>)[0]);
    }
    return settings;
  } finally {
    await sql.close();
  }
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.href;
}

function wrap(adminUrl: string, description: string, dataDir: string | null, settings: Record<string, string>, stopServer: () => Promise<void>, killNow: () => void): BenchPostgres {
  const admin = new SQL(adminUrl, { max: 2 });
  const databases: string[] = [];
  const pools = new Map<string, SQL>();
  let stopped: Promise<void> | undefined;
  return {
    description,
    dataDir,
    settings,
    async createDatabase() {
      const name = `agentkit_bench_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
      await admin.unsafe(`CREATE DATABASE ${name}`);
      databases.push(name);
      return withDatabase(adminUrl, name);
    },
    async query(url, text, params = []) {
      let pool = pools.get(url);
      if (!pool) pools.set(url, (pool = new SQL(url, { max: 2 })));
      return (await pool.unsafe(text, params as never[])) as never;
    },
    stop() {
      stopped ??= (async () => {
        for (const pool of pools.values()) await pool.close().catch(() => {});
        for (const name of databases.splice(0)) await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
        await admin.close().catch(() => {});
        await stopServer();
      })();
      return stopped;
    },
    killNow,
  };
}

/** Starts a throwaway cluster (or connects to the given one); resolves once it accepts connections. */
export async function startBenchPostgres(availability: Extract<Availability, { ok: true }>, log: (message: string) => void): Promise<BenchPostgres> {
  if (availability.url) {
    const settings = await settingsOf(availability.url);
    return wrap(availability.url, `AGENTKIT_BENCH_DATABASE_URL (PostgreSQL ${settings.server_version})`, null, settings, async () => {}, () => {});
  }
  const bin = availability.bin!;
  // Not under the bench's temp dir: that one is root's, mode 0700, and PostgreSQL runs as another user.
  const dir = mkdtempSync(join(tmpdir(), "agentkit-bench-pg-"));
  const user = process.getuid?.() === 0 ? serviceUser() : undefined;
  if (user) chownSync(dir, user.uid, user.gid);
  const setpriv = Bun.which("setpriv");
  // setpriv execs PostgreSQL itself, so --pdeathsig reaches it: a bench killed hard takes its cluster along.
  const prefix = setpriv
    ? [setpriv, ...(user ? [`--reuid=${user.uid}`, `--regid=${user.gid}`, "--clear-groups"] : []), "--pdeathsig=SIGINT", "--"]
    : [];
  const env = { ...process.env, LC_ALL: "C", LANG: "C" };
  const dataDir = join(dir, "data");
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  const initdb = Bun.spawnSync([...prefix, join(bin, "initdb"), "-D", dataDir, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"], {
    stdout: "pipe",
    stderr: "pipe",
    env,
    cwd: dir,
  });
  if (initdb.exitCode !== 0) {
    removeDir();
    throw new Error(`initdb failed: ${initdb.stderr.toString().trim()}`);
  }
  for (let attempt = 1; ; attempt++) {
    const port = freePort();
    const server = Bun.spawn(
      [
        ...prefix,
        join(bin, "postgres"),
        "-D", dataDir,
        "-p", String(port),
        "-k", dir,
        "-c", "listen_addresses=127.0.0.1",
        // Durability stays at the defaults (fsync, synchronous_commit, full_page_writes on).
        "-c", "max_connections=300",
      ],
      { stdout: "ignore", stderr: "pipe", env, cwd: dir },
    );
    let text = "";
    const reader = server.stderr.getReader();
    const ready = (async () => {
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return false;
        text = (text + decoder.decode(value)).slice(-20_000);
        if (text.includes("database system is ready to accept connections")) return true;
      }
    })();
    const timeout = setTimeout(() => server.kill("SIGQUIT"), 30_000);
    const started = await ready;
    clearTimeout(timeout);
    if (started) {
      void (async () => {
        while (!(await reader.read()).done);
      })().catch(() => {});
      const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
      const stopServer = async () => {
        if (server.exitCode === null && server.signalCode === null) {
          server.kill("SIGINT"); // fast shutdown
          const killer = setTimeout(() => server.kill("SIGQUIT"), 10_000);
          await server.exited;
          clearTimeout(killer);
        }
        removeDir();
      };
      const killNow = () => {
        try {
          if (server.exitCode === null) server.kill("SIGINT");
        } catch {
          // gone
        }
        // The data dir goes once the server is gone; on a hard exit, the server may still hold it.
        try {
          removeDir();
        } catch {
          // best effort
        }
      };
      const settings = await settingsOf(url);
      log(`PostgreSQL ${settings.server_version}: throwaway cluster on 127.0.0.1:${port} as ${user?.name ?? "this user"} (fsync ${settings.fsync}, synchronous_commit ${settings.synchronous_commit})`);
      return wrap(url, `throwaway cluster (PostgreSQL ${settings.server_version}, initdb defaults, durability on)`, dataDir, settings, stopServer, killNow);
    }
    await server.exited;
    if (attempt < 3 && /could not bind|Address already in use/.test(text)) continue;
    removeDir();
    throw new Error(`PostgreSQL did not start: ${text.trim().slice(-2000)}`);
  }
}
