/**
 * The AG-UI routes on the app, `POST /ag-ui` and `POST /ag-ui/:agent` (see index.ts for what they
 * do). Only the routes and the body-size limit are set up at start-up: the body's schema and the
 * handlers (index.ts, with the event translation and the stream) are loaded on the first AG-UI
 * request, so a server that nobody asks over AG-UI does not pay for them. The checks run in the
 * same order as ever: the size limit, then the body (415, structure, JSON, schema), then the run.
 */
import type { Hono, MiddlewareHandler } from "hono";
import { limitBody } from "../../server/body-limit.ts";
import type { AppDeps } from "../../server/app.ts";
import type { AgUiHandlers, AppEnv, RunAgentInputBody } from "./index.ts";

export function registerAgUi(app: Hono<AppEnv>, deps: AppDeps): void {
  let loaded: Promise<AgUiHandlers> | undefined;
  const handlers = () => (loaded ??= import("./index.ts").then(({ createAgUiHandlers }) => createAgUiHandlers(deps)));
  const limit = limitBody(deps.maxBodyBytes);
  const body: MiddlewareHandler<AppEnv, string, { in: { json: unknown }; out: { json: RunAgentInputBody } }> = async (c, next) =>
    (await handlers()).body(c, next);
  app.post("/ag-ui", limit, body, async (c) => (await handlers()).run(c, c.req.valid("json"), undefined));
  app.post("/ag-ui/:agent", limit, body, async (c) => (await handlers()).run(c, c.req.valid("json"), c.req.param("agent")));
}
