/**
 * The task WebSocket's handshake, read before Bun upgrades the request: the browser origin, the
 * key (query, header or subprotocol), the subprotocol to answer with, and the query.
 *
 * - **Origin**: when allowed origins are configured (`AGENTKIT_CORS_ORIGINS`, not `*`), a request
 *   that carries an `Origin` header (every browser sends one) from elsewhere is refused with 403
 *   before the upgrade. This server's own pages (the console, /docs: the Origin's host is the
 *   request's Host) and clients that send no `Origin` (servers, CLIs) are not affected.
 * - **Subprotocol**: the answer is `agentkit` when the client offered it, and otherwise no
 *   `Sec-WebSocket-Protocol` at all (RFC 6455 §4.2.2: a server that selects none sends none; Bun
 *   would otherwise select the first one offered — which could be the key-carrying one).
 * - **Query**: a bad query is not refused here: the socket is upgraded and gets an `error` frame
 *   and close 4400, as documented, after the key has been checked (4001 comes first).
 */
import { AgentkitError } from "../errors.ts";
import { WatchQuery } from "../protocol/api.ts";
import { normalizeOrigin } from "../lib/origin.ts";
import { AGENTKIT_PROTOCOL, keyFromHeaders, keyFromProtocols, parseProtocols, type Authenticator, type Principal } from "./auth.ts";

/** What the WebSocket adapter needs to know about a connection it is asked to upgrade. */
export interface WatchRequest {
  taskId: string;
  after: number;
  /** Whether the watcher wants live `delta` frames. */
  deltas: boolean;
  /** Undefined when the key was missing or wrong: the socket gets an error frame and close 4001. */
  principal: Principal | undefined;
  /** Set when the task id or the query is invalid: the socket gets an error frame and close 4400. */
  badRequest?: string;
}

export interface Handshake {
  watch: WatchRequest;
  /** Headers for the 101 answer. */
  headers: Record<string, string>;
}

const MAX_TASK_ID_LENGTH = 128;


/**
 * Whether a browser origin may open a task WebSocket; `allowed` empty or `*`: any. A page of this
 * server itself (its web console, /docs) always may: the Origin's host is the request's Host (the
 * scheme is not compared: behind a TLS proxy the page is https and the server sees http).
 */
export function originAllowed(origin: string | null, allowed: ReadonlySet<string> | "any", host?: string | null): boolean {
  if (allowed === "any" || origin === null) return true;
  if (host && sameHost(origin, host)) return true;
  return allowed.has(normalizeOrigin(origin));
}

function sameHost(origin: string, host: string): boolean {
  try {
    return new URL(origin).host === new URL(`http://${host}`).host;
  } catch {
    return false;
  }
}

/** Builds the origin check from the configured list once (at start-up). */
export function allowedOrigins(configured: readonly string[]): ReadonlySet<string> | "any" {
  if (configured.length === 0 || configured.includes("*")) return "any";
  return new Set(configured.map(normalizeOrigin));
}

/**
 * Reads a task WebSocket handshake. Throws `forbidden` (403) for a browser origin that is not
 * allowed; everything else is answered on the socket after the upgrade.
 */
export function readHandshake(
  request: Request,
  taskId: string,
  query: Record<string, string>,
  options: { auth: Authenticator; origins: ReadonlySet<string> | "any" },
): Handshake {
  const origin = request.headers.get("origin");
  if (!originAllowed(origin, options.origins, request.headers.get("host"))) {
    throw new AgentkitError("forbidden", `Origin '${origin!.slice(0, 200)}' is not allowed to open a WebSocket here (AGENTKIT_CORS_ORIGINS)`);
  }
  const protocols = parseProtocols(request.headers.get("sec-websocket-protocol"));
  const key = query.api_key ?? keyFromHeaders(request.headers) ?? keyFromProtocols(protocols);
  const parsed = WatchQuery.safeParse(query);
  const watch: WatchRequest = {
    taskId,
    after: parsed.success ? parsed.data.after : 0,
    deltas: parsed.success ? parsed.data.deltas : true,
    principal: options.auth.authenticate(key),
  };
  if (taskId.length === 0 || taskId.length > MAX_TASK_ID_LENGTH) {
    watch.badRequest = `Invalid task id (1 to ${MAX_TASK_ID_LENGTH} characters)`;
  } else if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    watch.badRequest = `Invalid query: ${issue.path.join(".") || "query"}: ${issue.message}`;
  }
  // Select ours, or none: an empty value makes Bun send no Sec-WebSocket-Protocol at all.
  const headers = { "Sec-WebSocket-Protocol": protocols.includes(AGENTKIT_PROTOCOL) ? AGENTKIT_PROTOCOL : "" };
  return { watch, headers };
}
