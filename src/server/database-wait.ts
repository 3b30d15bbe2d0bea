/**
 * Cluster mode: a request must not hang on a database that hangs. A database that refuses
 * connections (down, restarting) fails each query at once, and the request gets 503
 * (`isDatabaseUnavailable` in app.ts). One that stops answering — a network partition, a stalled VM
 * or disk, a frozen process — leaves every query waiting: requests were answered 38 s later (after
 * the client gave up), or never. So a request still unanswered after `waitMs` asks the database
 * directly (a ping with its own timeout); if that does not answer either, the request gets 503
 * `unavailable` (`Retry-After: 2`) now. Its work may still land once the database answers again
 * (a task created late): the message says to read before retrying a write. The handler's request
 * signal aborts then, as if the client had gone: a stream it would open later (SSE, A2A, AG-UI)
 * ends at once instead of serving nobody.
 */
import type { MiddlewareHandler } from "hono";
import { AgentkitError } from "../errors.ts";

/** How long a request waits before the database is asked whether it answers at all. */
export const DATABASE_WAIT_MS = 2000;

export function databaseWait(reachable: () => Promise<boolean>, waitMs = DATABASE_WAIT_MS): MiddlewareHandler {
  return async (c, next) => {
    // A WebSocket upgrade must not be answered while its handler may still upgrade the connection.
    if (c.req.path.startsWith("/ws/")) return next();
    const abandon = new AbortController();
    c.req.raw = new Request(c.req.raw, { signal: AbortSignal.any([c.req.raw.signal, abandon.signal]) });
    const handled = next();
    const finished = handled.then(
      () => "finished" as const,
      () => "finished" as const,
    );
    for (;;) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const waited = new Promise<"waited">((resolve) => (timer = setTimeout(() => resolve("waited"), waitMs)));
      const first = await Promise.race([finished, waited]);
      clearTimeout(timer);
      if (first === "finished") return handled;
      const answer = await Promise.race([finished, reachable().then((up) => (up ? ("up" as const) : ("down" as const)), () => "down" as const)]);
      if (answer === "finished") return handled;
      if (answer === "down") {
        handled.catch(() => {}); // answered here; what it ends with is not the client's any more
        abandon.abort(new Error("answered 503: the database is not answering"));
        throw new AgentkitError(
          "unavailable",
          `The database is not answering; try again shortly (this request waited ${waitMs} ms; a write it made may still take effect: read before retrying it)`,
        );
      }
      // Slow, but answering: the request goes on.
    }
  };
}
