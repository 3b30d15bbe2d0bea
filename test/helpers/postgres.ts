/**
 * Real PostgreSQL for tests, never a mock.
 *
 * - `AGENTKIT_TEST_DATABASE_URL` set (CI: `.ci/run` starts one throwaway cluster for the run): that
 *   server is used; its user needs CREATEDB.
 * - Else, when PostgreSQL's binaries are installed (`/usr/lib/postgresql/<v>/bin`, or `initdb` on
 *   the PATH), each test file that asks starts a throwaway cluster of its own in a temp dir, on a
 *   free loopback port, with durability off for speed — as a non-root user when running as root
 *   (initdb refuses root) — and stops it after its tests.
 * - Else the PostgreSQL tests report themselves skipped, with the reason in the test's name; with
 *   `AGENTKIT_REQUIRE_POSTGRES=1` (CI) that is an error instead.
 *
 * Every test gets databases of its own (`CREATE DATABASE t_<random>`), so files and tests can run
 * in parallel; they are dropped at the end of the file.
 */
import { SQL } from "bun";
import { afterAll, beforeAll, describe, test } from "bun:test";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

type Availability = { ok: true; url?: string; bin?: string } | { ok: false; reason: string };

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

/** As root, the user to run PostgreSQL as (initdb refuses root): `postgres` if it exists, else `nobody`. */
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

function availability(): Availability {
  const url = process.env.AGENTKIT_TEST_DATABASE_URL;
  if (url) return { ok: true, url };
  const bin = findBinDir();
  if (!bin) return { ok: false, reason: "AGENTKIT_TEST_DATABASE_URL is not set and PostgreSQL is not installed (no initdb)" };
  if (process.getuid?.() === 0) {
    if (!Bun.which("setpriv")) return { ok: false, reason: "running as root without setpriv to start PostgreSQL as another user" };
    if (!serviceUser()) return { ok: false, reason: "running as root and there is no 'postgres' or 'nobody' user to start PostgreSQL as" };
  }
  return { ok: true, bin };
}

export const postgres: Availability = availability();
if (!postgres.ok && process.env.AGENTKIT_REQUIRE_POSTGRES === "1") {
  throw new Error(`AGENTKIT_REQUIRE_POSTGRES=1, but the PostgreSQL tests cannot run: ${postgres.reason}`);
}

interface Cluster {
  /** The `postgres` database of the server, as its superuser (or the given URL). */
  url: string;
  stop(): Promise<void>;
}

/** A throwaway cluster this process started: it can also be stopped and started again. */
export interface OwnCluster extends Cluster {
  /**
   * Stops the server (fast shutdown: sessions are ended, committed data is kept) and keeps it
   * stopped until `start`; its data directory and port stay. For tests of a database outage.
   */
  halt(): Promise<void>;
  /** Starts the halted server again on the same port and data; resolves once it accepts connections. */
  start(): Promise<void>;
  /** `halt`, then `start`. */
  restart(): Promise<void>;
}

/** Where PostgreSQL's binaries are (undefined when it is not installed): for tests that start their own server. */
export const postgresBinDir: string | undefined = findBinDir();

async function freePort(): Promise<number> {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

/** Starts a throwaway cluster; resolves once it accepts connections. */
export async function startCluster(bin: string): Promise<OwnCluster> {
  const dir = mkdtempSync(join(tmpdir(), "agentkit-pg-"));
  const user = process.getuid?.() === 0 ? serviceUser() : undefined;
  if (user) chownSync(dir, user.uid, user.gid);
  // setpriv execs the command itself (no intermediate process), so --pdeathsig reaches PostgreSQL:
  // a test process that dies (kill -9) takes its cluster with it.
  const setpriv = Bun.which("setpriv");
  const prefix = setpriv
    ? [setpriv, ...(user ? [`--reuid=${user.uid}`, `--regid=${user.gid}`, "--clear-groups"] : []), "--pdeathsig=SIGINT", "--"]
    : [];
  const env = { ...process.env, LC_ALL: "C", LANG: "C" };
  const initdb = Bun.spawn(
    [...prefix, join(bin, "initdb"), "-D", join(dir, "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"],
    { stdout: "pipe", stderr: "pipe", env, cwd: dir },
  );
  if ((await initdb.exited) !== 0) {
    const output = (await new Response(initdb.stderr).text()).trim();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${output}`);
  }
  /** Runs the server on `port`; resolves with it once ready, or with the log if it exited first. */
  async function run(port: number): Promise<{ server: Bun.Subprocess; log?: undefined } | { server?: undefined; log: string }> {
    const server = Bun.spawn(
      [
        ...prefix,
        join(bin, "postgres"),
        "-D", join(dir, "data"),
        "-p", String(port),
        "-k", dir, // the unix socket stays in the temp dir
        "-c", "listen_addresses=127.0.0.1",
        "-c", "fsync=off",
        "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off",
        "-c", "max_connections=200",
        "-c", "shared_buffers=32MB",
      ],
      { stdout: "ignore", stderr: "pipe", env, cwd: dir },
    );
    // Read the log until PostgreSQL says it is ready (or exits); keep draining it afterwards.
    let log = "";
    const reader = server.stderr.getReader();
    const ready = (async () => {
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return false;
        log = (log + decoder.decode(value)).slice(-20_000);
        if (log.includes("database system is ready to accept connections")) return true;
      }
    })();
    const timeout = setTimeout(() => server.kill("SIGQUIT"), 30_000);
    const started = await ready;
    clearTimeout(timeout);
    if (started) {
      void (async () => {
        while (!(await reader.read()).done);
      })().catch(() => {});
      return { server };
    }
    await server.exited;
    return { log };
  }
  async function shutdown(server: Bun.Subprocess) {
    server.kill("SIGINT"); // fast shutdown: ends sessions, no checkpoint wait worth speaking of
    const killer = setTimeout(() => server.kill("SIGQUIT"), 10_000);
    await server.exited;
    clearTimeout(killer);
  }
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const first = await run(port);
    if (first.server) {
      let current: Bun.Subprocess | undefined = first.server;
      const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
      const cluster: OwnCluster = {
        url,
        async halt() {
          const server = current;
          current = undefined;
          if (server) await shutdown(server);
        },
        async start() {
          if (current) return;
          // The same port: a server that just stopped leaves it free (PostgreSQL binds with SO_REUSEADDR).
          for (let tries = 1; ; tries++) {
            const again = await run(port);
            if (again.server) {
              current = again.server;
              return;
            }
            if (tries >= 20 || !/could not bind|Address already in use|lock file/.test(again.log)) {
              throw new Error(`PostgreSQL did not start again: ${again.log.trim()}`);
            }
            await Bun.sleep(250);
          }
        },
        async restart() {
          await cluster.halt();
          await cluster.start();
        },
        async stop() {
          await cluster.halt();
          rmSync(dir, { recursive: true, force: true });
        },
      };
      return cluster;
    }
    if (attempt < 3 && /could not bind|Address already in use/.test(first.log)) continue; // the port was taken meanwhile
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`PostgreSQL did not start: ${first.log.trim()}`);
  }
}

/** Runs `body` with a connection of its own to `url` (one at most), closed afterwards. */
export async function withSql<T>(url: string, body: (sql: SQL) => Promise<T>): Promise<T> {
  const sql = new SQL(url, { max: 1 });
  try {
    return await body(sql);
  } finally {
    await sql.close();
  }
}

export interface TestPostgres {
  /** A new empty database (dropped at the end of the file); its URL. */
  createDatabase(): Promise<string>;
  /** The server's admin URL (its `postgres` database or the given one). */
  readonly adminUrl: string;
}

/**
 * A describe block whose tests run against PostgreSQL: the server is ready in its `beforeAll`.
 * When PostgreSQL is not available it reports a skipped test saying why, and skips the block.
 */
export function describePostgres(name: string, body: (pg: TestPostgres) => void): void {
  if (!postgres.ok) test.skip(`postgres tests: skipped because ${postgres.reason}`, () => {});
  describe.skipIf(!postgres.ok)(name, () => {
    let cluster: Cluster | undefined;
    let admin: SQL | undefined;
    const databases: string[] = [];
    // Only when it can run: Bun reports the hooks of a skipped block as skipped "(unnamed)" tests.
    if (postgres.ok) {
      const { url, bin } = postgres;
      beforeAll(async () => {
        cluster = url ? { url, stop: async () => {} } : await startCluster(bin!);
        admin = new SQL(cluster.url, { max: 2 });
      }, 60_000);
      afterAll(async () => {
        for (const database of databases.splice(0)) {
          await admin?.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => {});
        }
        await admin?.close();
        await cluster?.stop();
      }, 30_000);
    }
    body({
      get adminUrl() {
        return cluster!.url;
      },
      async createDatabase() {
        const database = `t_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
        await admin!.unsafe(`CREATE DATABASE ${database}`);
        databases.push(database);
        const url = new URL(cluster!.url);
        url.pathname = `/${database}`;
        return url.href;
      },
    });
  });
}
