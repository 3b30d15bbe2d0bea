/**
 * The API's own documentation routes, open like `/health` (register them before the auth
 * middleware): `GET /openapi.json` (openapi.ts), `GET /asyncapi.json` (asyncapi.ts) and the
 * interactive page `GET /docs` (docs-page.ts). Each document is built once, on first request, and
 * its module is loaded then too: they describe every schema of the API, and a server that nobody
 * asks for its docs should not pay for them at start-up.
 */
import type { Env, Hono } from "hono";

export const DOCS_PATHS = ["/openapi.json", "/asyncapi.json", "/docs"] as const;

export function registerDocs<E extends Env>(app: Hono<E>, version: string): void {
  let openapi: string | undefined;
  let asyncapi: string | undefined;
  const json = { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-cache" };
  app.get("/openapi.json", async (c) => {
    openapi ??= JSON.stringify((await import("./openapi.ts")).buildOpenApiDocument({ version }));
    return c.body(openapi, 200, json);
  });
  app.get("/asyncapi.json", async (c) => {
    asyncapi ??= JSON.stringify((await import("./asyncapi.ts")).buildAsyncApiDocument({ version }));
    return c.body(asyncapi, 200, json);
  });
  app.get("/docs", async (c) => {
    const { DOCS_PAGE } = await import("./docs-page.ts");
    return c.body(DOCS_PAGE.html, 200, DOCS_PAGE.headers);
  });
}
