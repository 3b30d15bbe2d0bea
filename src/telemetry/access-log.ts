/**
 * The access log: one info line per HTTP request, written when the response (its head, for a
 * stream) is ready: `method`, `path` (never the query string, which may hold `?api_key=`),
 * `status` (101 for a WebSocket upgrade) and `duration_ms`. No size: Bun sets a response's length
 * only as it writes it, after this line (a `bytes` field read from the response was never there).
 * Headers are never logged (they hold keys). On by default; `AGENTKIT_ACCESS_LOG=0` turns it off.
 */
import type { Logger } from "../lib/logger.ts";

/** Paths longer than this are cut (a client chooses them). */
const MAX_PATH = 256;

/** The path of a request URL, without query string or fragment. */
export function pathOf(url: string): string {
  const schemeEnd = url.indexOf("://");
  const start = url.indexOf("/", schemeEnd < 0 ? 0 : schemeEnd + 3);
  if (start < 0) return "/";
  let end = url.length;
  const query = url.indexOf("?", start);
  if (query >= 0) end = query;
  const hash = url.indexOf("#", start);
  if (hash >= 0 && hash < end) end = hash;
  const path = url.slice(start, end);
  return path.length > MAX_PATH ? `${path.slice(0, MAX_PATH)}…` : path;
}

/** Wraps a `fetch` handler so every request it answers is logged. */
export function withAccessLog<S>(
  handler: (request: Request, server: S) => Response | Promise<Response>,
  logger: Logger,
): (request: Request, server: S) => Promise<Response> {
  return async (request, server) => {
    const started = performance.now();
    let status = 500;
    try {
      const response = await handler(request, server);
      status = response.status;
      // A WebSocket route answers an empty 200 once Bun has upgraded the connection.
      if (status === 200 && response.body === null && request.headers.get("upgrade")?.toLowerCase() === "websocket") status = 101;
      return response;
    } finally {
      logger.info("http request", {
        method: request.method,
        path: pathOf(request.url),
        status,
        duration_ms: Math.round((performance.now() - started) * 100) / 100,
      });
    }
  };
}
