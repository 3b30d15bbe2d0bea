/**
 * The protocols while the store cannot be read (a cluster's database down or behind a lock, SQLite
 * failing): a request gets "unavailable, try again", as REST's 503 — not an internal error.
 */
import { afterEach, expect, test } from "bun:test";
import type { TaskStore } from "../../src/store/store.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** A store whose `methods` throw SQLite's read error while `failing.on` is set. */
function failingReads(methods: (keyof TaskStore)[]) {
  const failing = { on: false };
  const wrapStore = (store: TaskStore) =>
    new Proxy(store, {
      get(target, key) {
        const value = Reflect.get(target, key, target);
        if (typeof value !== "function" || !failing.on || !methods.includes(key as keyof TaskStore)) return value;
        return async () => {
          throw Object.assign(new Error("disk I/O error"), { name: "SQLiteError", code: "SQLITE_IOERR_READ" });
        };
      },
    });
  return { failing, wrapStore };
}

test("A2A GetTask while the store cannot be read: a JSON-RPC error saying so (try again), not `Internal error`; it works once the store answers", async () => {
  const { failing, wrapStore } = failingReads(["getTask"]);
  server = await startTestServer({ wrapStore });
  const task = await server.createTask({ input: "What is 2+2?" });
  await (await server.watch(task.id)).result();
  const get = async () => {
    const response = await server!.http("/a2a/default", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "GetTask", params: { id: task.id } }) });
    return (await response.json()) as { error?: { code: number; message: string }; result?: { status: { state: string } } };
  };
  failing.on = true;
  expect(await get()).toMatchObject({ error: { code: -32603, message: "The data store is unavailable; try again shortly" } });
  failing.on = false;
  expect((await get()).result?.status.state).toBe("TASK_STATE_COMPLETED");
});

test("an AG-UI run naming a thread while the store cannot be read: 503 `unavailable` with Retry-After, not 500 `internal`", async () => {
  const { failing, wrapStore } = failingReads(["getThread"]);
  server = await startTestServer({ wrapStore });
  const body = JSON.stringify({ threadId: "t-1", runId: "r-1", messages: [{ id: "m-1", role: "user", content: "What is 2+2?" }], tools: [], context: [], state: {}, forwardedProps: {} });
  const post = () => server!.http("/ag-ui", { method: "POST", headers: { "content-type": "application/json", accept: "text/event-stream" }, body });
  failing.on = true;
  const refused = await post();
  expect(refused.status).toBe(503);
  expect(refused.headers.get("retry-after")).toBe("2");
  expect(await refused.json()).toMatchObject({ error: { code: "unavailable", message: "Could not read thread 't-1': the data store is unavailable; try again shortly" } });
  failing.on = false;
  const ran = await post();
  expect(ran.status).toBe(200);
  expect(await ran.text()).toContain("RUN_FINISHED");
});
