/**
 * The A2A routes on the app (see routes.ts for what they do). Only the routes and the body-size
 * limit are set up at start-up: the handlers (routes.ts, with the card, view and wire modules) are
 * loaded on the first A2A request, so a server that nobody asks over A2A does not pay for them.
 * Call it before the app's key middleware: these routes authenticate themselves.
 */
import type { Hono } from "hono";
import { keyFromHeaders } from "../../server/auth.ts";
import { limitBody } from "../../server/body-limit.ts";
import { AgentkitError } from "../../errors.ts";
import type { A2ADeps, A2AHandlers } from "./routes.ts";

/** The agent cards' paths: open (no key), for discovery. */
export const A2A_CARD_PATHS = ["/.well-known/agent-card.json", "/a2a/:agent/.well-known/agent-card.json"] as const;

/** The paths, for app.ts's `ROUTES` (405 handling). */
export const A2A_ROUTES: Record<string, readonly string[]> = {
  ...Object.fromEntries(A2A_CARD_PATHS.map((path) => [path, ["GET", "HEAD"]])),
  "/a2a/:agent": ["POST"],
};

export function registerA2A(app: Hono<any>, deps: A2ADeps): void {
  let loaded: Promise<A2AHandlers> | undefined;
  const handlers = () => (loaded ??= import("./routes.ts").then(({ createA2AHandlers }) => createA2AHandlers(deps)));
  app.get("/.well-known/agent-card.json", async (c) => (await handlers()).defaultCard(c));
  app.get("/a2a/:agent/.well-known/agent-card.json", async (c) => (await handlers()).agentCard(c));
  app.post(
    "/a2a/:agent",
    // The key first: a client without one gets its 401 before its body is read.
    async (c, next) => {
      if (!deps.auth.authenticate(keyFromHeaders(c.req.raw.headers))) {
        throw new AgentkitError("unauthorized", "Invalid or missing API key (use Authorization: Bearer <key> or X-API-Key)");
      }
      return next();
    },
    limitBody(deps.maxBodyBytes),
    async (c) => (await handlers()).rpc(c),
  );
}
