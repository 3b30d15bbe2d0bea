/**
 * `agentkit compact` (src/cli/compact.ts, src/store/sqlite-compact.ts) on real SQLite files: a data
 * dir an older build made (no auto_vacuum, events WITHOUT ROWID) comes out in the new layout with
 * auto_vacuum, every row kept, smaller; the store opens it and gives retention's space back; a WAL
 * a crash left is kept; a server that holds the data dir (its lock, or its live address file) is refused; kill -9 anywhere
 * leaves a whole file; PostgreSQL is said not to apply (exit 2).
 */
import { afterEach, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { copyFileSync, existsSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCompact } from "../../src/cli/compact.ts";
import { lockDataDir } from "../../src/server/data-dir-lock.ts";
import { EVENTS_INDEX, EVENTS_TABLE, SCHEMA_VERSION, createSqliteStore } from "../../src/store/sqlite-store.ts";
import { contentsOf, layoutOf, oldFrame, writeOldDataDir } from "../helpers/old-sqlite.ts";
import { tempDir } from "../helpers/server.ts";

const MAIN = join(import.meta.dir, "..", "..", "src", "main.ts");
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function dataDir(): string {
  const dir = tempDir();
  dirs.push(dir);
  return dir;
}

/** A server on a free port of 43100–43199 (this test's range of loopback ports). */
function serveOnFreePort(fetch: () => Response) {
  for (let port = 43100; port < 43200; port++) {
    try {
      return Bun.serve({ hostname: "127.0.0.1", port, fetch });
    } catch {
      // taken: the next
    }
  }
  throw new Error("no free port in 43100-43199");
}

/** runCompact in this process, with what it printed. */
async function compact(flags: Record<string, string>, env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCompact({ flags, env, out: (line) => out.push(line), err: (line) => err.push(line) });
  return { code, out, err };
}

/** What a new file made by this version has for its events table (normalised as SQLite stores it). */
function newLayout(): { eventsSql: string; eventsIndex: string } {
  const dir = dataDir();
  const db = new Database(join(dir, "x.sqlite"), { create: true });
  db.run(EVENTS_TABLE);
  db.run(EVENTS_INDEX);
  const eventsSql = (db.query("SELECT sql FROM sqlite_master WHERE name = 'events'").get() as { sql: string }).sql;
  const eventsIndex = (db.query("SELECT sql FROM sqlite_master WHERE name = 'events_task_seq'").get() as { sql: string }).sql;
  db.close();
  return { eventsSql, eventsIndex };
}

test("an old build's data dir comes out in the new layout with auto_vacuum incremental, every row (and rowid) kept, the schema version unchanged, smaller; the store opens it and gives retention's space back", async () => {
  const dir = dataDir();
  const path = join(dir, "agentkit.sqlite");
  await writeOldDataDir(dir, { tasks: 6, events: 600, pad: 1500 });
  const before = layoutOf(path);
  expect(before.eventsSql).toMatch(/WITHOUT ROWID/);
  expect(before.autoVacuum).toBe(0);
  const contents = contentsOf(path);
  expect(contents.version).toBe(SCHEMA_VERSION); // the store made it (in the old layout): the version compact must keep
  expect(contents.events).toBe(2 * 601 + 2 * 600); // tasks 1 and 4 ended (600 and a result), 2 and 5 live; 0 and 3 pruned
  const bytes = statSync(path).size;

  const { code, out, err } = await compact({ dataDir: dir });
  expect(err).toEqual([]);
  expect(code).toBe(0);
  expect(out[0]).toMatch(new RegExp(`^agentkit compact: ${path}: [\\d,.]+ MB$`));
  expect(out.at(-1)).toMatch(
    new RegExp(`^agentkit compact: ${path}: [\\d,.]+ MB → [\\d,.]+ MB; auto_vacuum incremental \\(retention now gives freed space back\\); ${contents.events.toLocaleString("en-US")} events in the new layout \\([\\d.]+ s\\)$`),
  );

  const after = layoutOf(path);
  expect(after).toEqual({ ...newLayout(), autoVacuum: 2 });
  expect(contentsOf(path)).toEqual(contents);
  expect(statSync(path).size).toBeLessThan(bytes * 0.6);
  const check = new Database(path);
  expect(check.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
  expect(check.query("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
  check.close();

  // The store opens it as one of its own: reads, appends, and retention gives the space back.
  const store = createSqliteStore({ dataDir: dir });
  try {
    expect((await store.events("task-2", 598, 10)).map((event) => event.frame)).toEqual([oldFrame("task-2", 599, 1500), oldFrame("task-2", 600, 1500)]);
    await store.appendEvents("task-2", [{ seq: 601, frame: "{}" }]);
    const raw = new Database(path);
    expect(() => raw.run("INSERT INTO events (task_id, seq, frame) VALUES ('task-2', 5, '{}')")).toThrow(/UNIQUE constraint failed: events\.task_id, events\.seq/);
    raw.close();
    const pages = () => {
      const reader = new Database(path, { readonly: true });
      try {
        return (reader.query("PRAGMA page_count").get() as { page_count: number }).page_count;
      } finally {
        reader.close();
      }
    };
    const full = pages();
    expect(await store.pruneEvents(new Date(Date.now() + 60_000))).toBe(2); // tasks 1, 4 (ended now); 2, 5 never ended
    expect(pages()).toBeLessThan(full * 0.8);
  } finally {
    await store.close();
  }

  // Compacting a compacted file: a VACUUM, nothing else to change.
  const again = await compact({ dataDir: dir });
  expect(again.code).toBe(0);
  expect(again.out).toContain(`  VACUUM (${again.out[0]!.split(": ").at(-1)})`);
  expect(again.out.at(-1)).toMatch(/ MB → [\d,.]+ MB \([\d.]+ s\)$/);
}, 60_000);

test("a data dir a crash left with a WAL of commits not yet in the file: compact keeps them", async () => {
  const dir = dataDir();
  await writeOldDataDir(dir, { tasks: 3, events: 100 }); // task-0 pruned, task-1 ended, task-2 running
  const store = createSqliteStore({ dataDir: dir });
  await store.appendEvents("task-2", Array.from({ length: 50 }, (_, index) => ({ seq: 101 + index, frame: oldFrame("task-2", 101 + index, 1500) })));
  // The files as a kill -9 leaves them now (the store's WAL is not checkpointed into the file yet).
  const crashed = dataDir();
  copyFileSync(join(dir, "agentkit.sqlite"), join(crashed, "agentkit.sqlite"));
  copyFileSync(join(dir, "agentkit.sqlite-wal"), join(crashed, "agentkit.sqlite-wal"));
  await store.close();
  const path = join(crashed, "agentkit.sqlite");
  const contents = contentsOf(path);
  expect(contents.events).toBe(150 + 101); // task-2's 150 (50 of them in the WAL alone), task-1's 100 and its result
  const fileOnly = statSync(path).size;
  const { code, out } = await compact({ dataDir: crashed });
  expect(code).toBe(0);
  // The sizes count the WAL, and say so: the file alone is smaller than the first figure.
  expect(out[0]).toMatch(new RegExp(`^agentkit compact: ${path}: [\\d,.]+ MB \\(the file ${(fileOnly / 1e6).toFixed(1)} MB and its WAL [\\d,.]+ MB, folded in first\\)$`));
  expect(existsSync(`${path}-wal`)).toBe(false); // all of it in the file
  expect(contentsOf(path)).toEqual(contents);
});

test("refused, and the file untouched, while a server holds the data dir: by its lock, or (a server older than the lock) by its live address file", async () => {
  const dir = dataDir();
  const path = join(dir, "agentkit.sqlite");
  await writeOldDataDir(dir, { tasks: 2, events: 50 });
  const contents = contentsOf(path);

  const lock = lockDataDir(dir); // what a running server holds
  try {
    const held = Bun.spawnSync([process.execPath, MAIN, "compact", "--data-dir", dir], { stdout: "pipe", stderr: "pipe", env: { ...process.env, AGENTKIT_DATABASE_URL: "" } });
    expect(held.exitCode).toBe(1);
    expect(held.stdout.toString()).toBe("");
    expect(held.stderr.toString().trim()).toBe(
      `agentkit compact: the data dir ${dir} is in use by another agentkit process (its agentkit.lock is held: a server, or an agentkit compact): stop it first — compact works offline. Nothing was done.`,
    );
  } finally {
    lock.release();
  }

  // No lock, but a live server's address file: one that answers /health as agentkit.
  const server = serveOnFreePort(() => Response.json({ status: "ok", version: "0.0.1", uptime_s: 5 }));
  const url = `http://127.0.0.1:${server.port}`;
  try {
    writeFileSync(join(dir, "agentkit.addr.json"), JSON.stringify({ url, host: "127.0.0.1", port: server.port, pid: process.pid, store: "sqlite" }));
    // Spawned, not spawnSync: this process's event loop answers the /health it asks.
    const named = Bun.spawn([process.execPath, MAIN, "compact", "--data-dir", dir], { stdout: "pipe", stderr: "pipe", env: { ...process.env, AGENTKIT_DATABASE_URL: "" } });
    expect(await named.exited).toBe(1);
    expect(await new Response(named.stderr).text()).toContain(`in use by a running agentkit server (${url} answers as agentkit, pid ${process.pid} (agentkit.addr.json))`);
  } finally {
    server.stop(true);
  }
  expect(layoutOf(path).eventsSql).toMatch(/WITHOUT ROWID/);
  expect(contentsOf(path)).toEqual(contents);

  // The server gone (its address file stale), compact goes ahead.
  const free = await compact({ dataDir: dir });
  expect(free.code).toBe(0);
  expect(layoutOf(path).autoVacuum).toBe(2);
});

test("PostgreSQL: compact says it does not apply (exit 2) and touches nothing; a data dir without a database, or a bad option, is named", async () => {
  const dir = dataDir();
  const path = join(dir, "agentkit.sqlite");
  await writeOldDataDir(dir, { tasks: 1, events: 10 });
  const bytes = statSync(path).size;
  for (const [args, env, from] of [
    [["--database-url", "postgres://agentkit:secret@127.0.0.1:43101/agentkit"], {}, "--database-url"],
    [[], { AGENTKIT_DATABASE_URL: "postgres://agentkit:secret@127.0.0.1:43101/agentkit" }, "AGENTKIT_DATABASE_URL"],
  ] as const) {
    const result = Bun.spawnSync([process.execPath, MAIN, "compact", "--data-dir", dir, ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, AGENTKIT_DATABASE_URL: "", ...env } });
    expect(result.exitCode).toBe(2);
    expect(result.stdout.toString()).toBe("");
    const message = result.stderr.toString();
    expect(message).toStartWith(`agentkit compact: the store is PostgreSQL (${from}): compact works on a data dir's SQLite file only. PostgreSQL gives freed space back with its own VACUUM`);
    expect(message).not.toContain("secret");
  }
  expect(statSync(path).size).toBe(bytes);
  expect(layoutOf(path).eventsSql).toMatch(/WITHOUT ROWID/);

  const empty = dataDir();
  const none = await compact({ dataDir: empty });
  expect(none).toEqual({ code: 1, out: [], err: [`agentkit compact: there is no SQLite database at ${join(empty, "agentkit.sqlite")} (--data-dir / AGENTKIT_DATA_DIR name the data dir)`] });
  expect(existsSync(join(empty, "agentkit.lock"))).toBe(false); // nothing made there

  const bad = Bun.spawnSync([process.execPath, MAIN, "compact", "--port", "8000"], { stdout: "pipe", stderr: "pipe" });
  expect(bad.exitCode).toBe(2);
  expect(bad.stderr.toString()).toBe("agentkit: --port is not an option of compact\nRun 'agentkit compact --help' for usage.\n");
  const help = Bun.spawnSync([process.execPath, MAIN, "compact", "--help"], { stdout: "pipe", stderr: "pipe" });
  expect(help.exitCode).toBe(0);
  expect(help.stdout.toString()).toStartWith("agentkit compact — shrink a data dir's SQLite file");
});

test("kill -9 at any point leaves a whole file, as before or compacted (each step is a transaction or a VACUUM); compact run again finishes", async () => {
  const dir = dataDir();
  const path = join(dir, "agentkit.sqlite");
  // ~170 MB in the old layout (54 MB of frames): compacting takes long enough (2–5 s) to be cut in every step.
  await writeOldDataDir(dir, { tasks: 12, events: 3000, pad: 1500 });
  const contents = contentsOf(path);
  const layouts = new Set<string>();
  const seen: string[] = [];
  for (const delay of [20, 150, 400, 800, 1300, 2000]) {
    const child = Bun.spawn([process.execPath, MAIN, "compact", "--data-dir", dir], { stdout: "pipe", stderr: "pipe", env: { ...process.env, AGENTKIT_DATABASE_URL: "" } });
    await Bun.sleep(delay);
    child.kill("SIGKILL");
    await child.exited;
    // Opened as the server opens it (a hot journal is rolled back), the file is whole and holds every row.
    const db = new Database(path);
    db.run("PRAGMA journal_mode = WAL");
    expect(db.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
    db.close();
    expect(contentsOf(path)).toEqual(contents);
    const layout = layoutOf(path);
    const state = `${/WITHOUT ROWID/.test(layout.eventsSql) ? "old layout" : "new layout"}, auto_vacuum ${layout.autoVacuum}`;
    expect(["old layout, auto_vacuum 0", "old layout, auto_vacuum 2", "new layout, auto_vacuum 2"]).toContain(state);
    if (state === "new layout, auto_vacuum 2") expect(layout.eventsIndex).not.toBeNull();
    layouts.add(state);
    seen.push(`${delay} ms: ${state}`);
    if (child.exitCode === 0) break; // it finished before the kill
  }
  // A record, not a requirement (this machine's speed decides it): where each kill left the file.
  console.log(`compact killed after ${seen.join("; ")}`);
  expect(layouts.has("old layout, auto_vacuum 0")).toBe(true); // cut in its first step at least once
  const { code } = await compact({ dataDir: dir });
  expect(code).toBe(0);
  expect(layoutOf(path)).toEqual({ ...newLayout(), autoVacuum: 2 });
  expect(contentsOf(path)).toEqual(contents);
}, 120_000);

test("a file from a newer agentkit (a higher schema version) is refused, exit 1, and left as it was", async () => {
  const dir = dataDir();
  const path = join(dir, "agentkit.sqlite");
  await writeOldDataDir(dir, { tasks: 1, events: 10 });
  const db = new Database(path);
  db.run(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`);
  db.close();
  const before = contentsOf(path);
  const result = await compact({ dataDir: dir });
  expect(result.code).toBe(1);
  expect(result.err.join("\n")).toContain(`has schema version ${SCHEMA_VERSION + 1}, newer than this agentkit (${SCHEMA_VERSION}): compact it with that agentkit`);
  expect(contentsOf(path)).toEqual(before);
  expect(layoutOf(path).eventsSql).toMatch(/WITHOUT ROWID/); // not rebuilt
  expect(layoutOf(path).autoVacuum).toBe(0); // not vacuumed
});

test("a file that is not a database: exit 1, SQLite's own reason, no advice about disk space, the file untouched", async () => {
  const dir = dataDir();
  const path = join(dir, "agentkit.sqlite");
  const garbage = Buffer.alloc(100_000, 7);
  writeFileSync(path, garbage);
  const result = await compact({ dataDir: dir });
  expect(result.code).toBe(1);
  expect(result.err).toHaveLength(1);
  expect(result.err[0]).toContain("file is not a database");
  expect(result.err[0]).toContain("the data is whole, as it was before the step that failed");
  expect(result.err[0]).not.toContain("VACUUM needs");
  expect(Buffer.from(await Bun.file(path).arrayBuffer()).equals(garbage)).toBe(true);
});
