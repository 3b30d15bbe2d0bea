/**
 * The database-wait middleware (src/server/database-wait.ts) on a Hono app of its own: a request
 * still waiting after `waitMs` asks whether the database answers; not answering, the request gets
 * 503 at once and its handler's signal aborts; answering (slow), the request goes on.
 */
import { expect, test } from "bun:test";
import { Hono } from "hono";
import { AgentkitError } from "../../src/errors.ts";
import { databaseWait } from "../../src/server/database-wait.ts";

function appWith(reachable: () => Promise<boolean>) {
  const gate = Promise.withResolvers<void>();
  const seen: { aborted?: boolean; body?: unknown } = {};
  const app = new Hono();
  app.onError((error, c) => {
    const failure = error instanceof AgentkitError ? error : new AgentkitError("internal", String(error));
    return c.json(failure.toJSON(), failure.httpStatus, failure.code === "unavailable" ? { "Retry-After": "2" } : {});
  });
  app.use("*", databaseWait(reachable, 50));
  app.post("/held", async (c) => {
    seen.body = await c.req.json();
    const signal = c.req.raw.signal;
    await gate.promise;
    seen.aborted = signal.aborted;
    return c.json({ ok: true });
  });
  app.get("/fast", (c) => c.json({ fast: true }));
  return { app, gate, seen };
}

const post = (app: Hono) => app.request("/held", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input: "x" }) });

test("a database that does not answer: 503 with Retry-After, and the handler's signal aborts (what it would still open ends)", async () => {
  const { app, gate, seen } = appWith(async () => false);
  const response = await post(app);
  expect(response.status).toBe(503);
  expect(response.headers.get("retry-after")).toBe("2");
  expect(((await response.json()) as { error: { code: string } }).error.code).toBe("unavailable");
  expect(seen.body).toEqual({ input: "x" }); // the body reached the handler
  gate.resolve();
  await Bun.sleep(10);
  expect(seen.aborted).toBe(true);
});

test("a database that answers (slow, not down): the request waits for its handler", async () => {
  let asked = 0;
  const { app, gate, seen } = appWith(async () => (asked++, true));
  const pending = post(app);
  await Bun.sleep(200); // several waits of 50 ms, each followed by a ping that answers
  gate.resolve();
  const response = await pending;
  expect(response.status).toBe(200);
  expect(asked).toBeGreaterThan(1);
  expect(seen.aborted).toBe(false);
});

test("a request answered within the wait never asks the database", async () => {
  let asked = 0;
  const { app } = appWith(async () => (asked++, false));
  expect(await (await app.request("/fast")).json()).toEqual({ fast: true });
  await Bun.sleep(100);
  expect(asked).toBe(0);
});
