/**
 * Picks the store the configuration asks for: PostgreSQL when a database URL is set (cluster
 * mode, issue 9), else the embedded SQLite file in the data dir. The PostgreSQL store (and Bun's
 * SQL client under it) is loaded only then: a server on the SQLite file does not evaluate it at start.
 */
import type { Config } from "../config/config.ts";
import type { Logger } from "../lib/logger.ts";
import { createSqliteStore } from "./sqlite-store.ts";
import type { ClusterStore, TaskStore } from "./store.ts";

/**
 * The store, and its cluster side when it has one (PostgreSQL: the same object, so `cluster` is
 * closed by closing `store`). SQLite has no cluster side: one process owns its file.
 */
export interface OpenedStore {
  store: TaskStore;
  cluster?: ClusterStore;
}

export async function openStore(
  config: Pick<Config, "dataDir" | "databaseUrl" | "databasePool" | "databaseStatementTimeoutMs">,
  logger?: Logger,
): Promise<OpenedStore> {
  if (!config.databaseUrl) return { store: createSqliteStore({ dataDir: config.dataDir, logger }) };
  const { createPostgresStore, POSTGRES_SCHEMA_VERSION, redactDatabaseUrl } = await import("./postgres-store.ts");
  // Throws one line (never the password) when the server cannot be reached or its schema is newer.
  const store = await createPostgresStore({
    url: config.databaseUrl,
    max: config.databasePool,
    statementTimeoutMs: config.databaseStatementTimeoutMs,
    logger,
  });
  logger?.info("store: PostgreSQL", {
    database: redactDatabaseUrl(config.databaseUrl),
    pool: config.databasePool,
    schema_version: POSTGRES_SCHEMA_VERSION,
    ...(store.migratedFrom < POSTGRES_SCHEMA_VERSION ? { migrated_from: store.migratedFrom } : {}),
  });
  return { store, cluster: store };
}
