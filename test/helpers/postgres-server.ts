/**
 * `startTestServer` on the PostgreSQL store instead of SQLite: the store is opened on `url` and
 * handed to the server through `wrapStore` (the SQLite store the helper opens is closed unused).
 * The server closes the store when it stops.
 */
import { createPostgresStore } from "../../src/store/postgres-store.ts";
import { startTestServer, type TestServer, type TestServerOptions } from "./server.ts";

export async function startPostgresTestServer(url: string, options: TestServerOptions = {}, storeOptions: { statementTimeoutMs?: number } = {}): Promise<TestServer> {
  const store = await createPostgresStore({ url, max: 8, ...storeOptions });
  try {
    return await startTestServer({
      ...options,
      wrapStore: (sqlite) => {
        void sqlite.close();
        return options.wrapStore ? options.wrapStore(store) : store;
      },
    });
  } catch (error) {
    await store.close();
    throw error;
  }
}
