/**
 * The API's own documentation routes, open like `/health` (register them before the auth
 * middleware): `GET /openapi.json` (openapi.ts), `GET /asyncapi.json` (asyncapi.ts) and the
 * interactive page `GET /docs` (docs-page.ts). Each document is built once, on first request.
 */
import type { Env, Hono } from "hono";
import { buildAsyncApiDocument } from "./asyncapi.ts";
import { DOCS_PAGE } from "./docs-page.ts";
import { buildOpenApiDocument } from "./openapi.ts";

export const DOCS_PATHS = ["/openapi.json", "/asyncapi.json", "/docs"] as const;

export function registerDocs<E extends Env>(app: Hono<E>, version: string): void {
  let openapi: string | undefined;
  let asyncapi: string | undefined;
  const json = { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-cache" };
  app.get("/openapi.json", (c) => c.body((openapi ??= JSON.stringify(buildOpenApiDocument({ version }))), 200, json));
  app.get("/asyncapi.json", (c) => c.body((asyncapi ??= JSON.stringify(buildAsyncApiDocument({ version }))), 200, json));
  app.get("/docs", (c) => c.body(DOCS_PAGE.html, 200, DOCS_PAGE.headers));
}
