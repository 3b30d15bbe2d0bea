/**
 * Released migrations never change: a database (or SQLite file) that ran a migration's old text
 * never runs it again, so an edit reaches new databases only and the two kinds drift apart
 * silently. Commit 53244cc did exactly that: it added `tasks_thread_status` to PostgreSQL
 * migration 5 after d0ec4fa had released it, and databases migrated by d0ec4fa never got the index.
 *
 * Each released text is pinned by its SHA-256. A failure here means a released migration changed:
 * put the text back and add a new migration (PostgreSQL: a new version in MIGRATIONS, or for an
 * index alone an entry of POSTGRES_INDEXES; SQLite: a new step of the user_version migration).
 * A new migration gets its hash added here in the commit that releases it.
 */
import { describe, expect, test } from "bun:test";
import { indexStatements, MIGRATIONS, POSTGRES_INDEXES, POSTGRES_SCHEMA_VERSION } from "../../src/store/postgres-store.ts";
import { SQLITE_MIGRATIONS } from "../../src/store/sqlite-store.ts";

const sha256 = (text: string) => new Bun.CryptoHasher("sha256").update(text).digest("hex");

const MESSAGE = "released migrations must not change; add a new one";

/** PostgreSQL: each version's SQL, as released. */
const POSTGRES_PINNED: Record<number, string> = {
  1: "a8c4a721bf276d43a12994df88872e4079463e8f81e3d26cf92f278c696f87e4",
  2: "7f098fe1acf592a58408cb97228621dd4b8a921cf5e36babb16c4b79a609135d",
  3: "6ab328c32b3992282f0de60a433ddefde590487d4c1fe485ff57fd499c470da0",
  4: "efaec9fc8d9ed3a12cf1d755a25064a56a23033bb015d307dcd8702f256d78dc",
  // As 53244cc left it (both indexes): the text new databases have run since. d0ec4fa's differs (below).
  5: "d28bc0c43f52a6903b3339bf9984ca85da94322713861345b8a17b0d1f45dcb8",
  6: "21a36741d6aed91e7e4660403b4c2acc8ea87d85494577a85c714785b7eb8c01",
  7: "1e963af31dce533e6d8ecc2cf454564a19fe2611db11449fc3678e1adddde5d2",
  8: "750213bf46260061ef8f577403e9498d9a6dc6e38e7bc370011836362725ab5d",
};

/** PostgreSQL indexes without a schema version: a changed definition never reaches a database that has the name. */
const POSTGRES_INDEXES_PINNED: Record<string, string> = {
  tasks_thread_status: "29a6f87cee7b4933a1699508e6ffd2ee43b8a3018522b9006db56310fc3075ca",
};

/** SQLite: the steps an older file runs to reach the current user_version. */
const SQLITE_PINNED: Record<string, string> = {
  "1 to 2": "494fb7b396b63384a8083d37d53c56d2c14029aa80e00a976a4c52ada50601d6",
  "2 to 3": "3a3f6f928787a5d8872407be6faf9608f69c0aca38fa90d6e90d0eccfc512569",
  "4 and 5: columns": "accc95246d3499ae6c899640f98cd73b5bcb811fe67a01ae8b266fde74c483a3",
  "4: tables": "f5dc255140eaded90e4381764d2537979fbd72b0085ed3953436017f940a92a0",
  "5: webhooks": "0d367642e7c3cd4ad8c5b01006cc26098f50ba5a99f25e4848bfd84839075a62",
  "6: webhooks.destination": "777f226168cf9be9b227b0b261db466617eddaaa1491bb3c55602b1694aab7db",
  "6: webhook destinations": "42b0cec72d2867f5afefb3c9deca4aa2c331d589aec720373720c27610fb058f",
};

/** The names whose text no longer has its pinned hash (or has none pinned). */
function changed(current: Record<string, string>, pinned: Record<string, string>): string[] {
  const names = new Set([...Object.keys(current), ...Object.keys(pinned)]);
  return [...names].filter((name) => current[name] === undefined || sha256(current[name]!) !== pinned[name]);
}

const postgresTexts = () => Object.fromEntries(MIGRATIONS.map((migration) => [String(migration.version), migration.sql]));

describe("released migrations are pinned", () => {
  test("PostgreSQL: every version's SQL is the one released", () => {
    expect(MIGRATIONS.map((migration) => migration.version), "versions run 1, 2, 3, … in order").toEqual(
      MIGRATIONS.map((_, index) => index + 1),
    );
    expect(POSTGRES_SCHEMA_VERSION).toBe(MIGRATIONS.length);
    expect(changed(postgresTexts(), POSTGRES_PINNED), MESSAGE).toEqual([]);
  });

  test("PostgreSQL: the indexes added without a version keep their definitions", () => {
    const current = Object.fromEntries(POSTGRES_INDEXES.map((index) => [index.name, index.sql]));
    expect(changed(current, POSTGRES_INDEXES_PINNED), MESSAGE).toEqual([]);
    for (const index of POSTGRES_INDEXES) expect(indexStatements(index.sql).map((statement) => statement.name)).toEqual([index.name]);
  });

  test("PostgreSQL: an index-only migration is CREATE INDEX statements alone (what runs them CONCURRENTLY reads)", () => {
    for (const migration of MIGRATIONS.filter((migration) => migration.concurrently)) {
      expect(indexStatements(migration.sql).length).toBeGreaterThan(0);
    }
    expect(indexStatements(MIGRATIONS[4]!.sql).map((statement) => statement.name)).toEqual(["tasks_owner_status", "tasks_thread_status"]);
    expect(indexStatements(MIGRATIONS[6]!.sql).map((statement) => statement.name)).toEqual(["webhooks_destination_due", "webhooks_intake"]);
    expect(() => indexStatements("CREATE INDEX a ON tasks (x);\nALTER TABLE tasks ADD COLUMN y text;")).toThrow("not an index-only statement");
  });

  test("SQLite: every step of the user_version migration is the one released", () => {
    expect(changed({ ...SQLITE_MIGRATIONS }, SQLITE_PINNED), MESSAGE).toEqual([]);
  });

  test("the check would have caught 53244cc's edit of PostgreSQL migration 5 (released by d0ec4fa)", () => {
    // Migration 5 as d0ec4fa released it (git show d0ec4fa:src/store/postgres-store.ts).
    const released = `
CREATE INDEX tasks_owner_status ON tasks (owner, status, row_id);
`;
    // The pin d0ec4fa would have added with it; the text 53244cc left does not match it.
    const pinnedByD0ec4fa = "66fd5b6a7b9687dc5bbcb62e5dce9e26e9fb424dbe43cfa4f522efa720134c8d";
    expect(sha256(released)).toBe(pinnedByD0ec4fa);
    expect(pinnedByD0ec4fa).not.toBe(POSTGRES_PINNED[5]);
    expect(changed(postgresTexts(), { ...POSTGRES_PINNED, 5: pinnedByD0ec4fa })).toEqual(["5"]);
  });
});
