/**
 * Who is calling. Keys are compared in constant time (each is hashed, then every configured key is
 * compared, with no early exit), and never logged. A key belongs to a principal: a tenant sees only
 * the tasks it created; an admin sees all. With no key configured, everyone is an admin (open mode).
 *
 * A share token (share-tokens.ts) is accepted wherever a key is: its principal is the owner of what
 * was shared, read-only (`readOnly`), and sees only that task or thread. It can watch; it can never
 * create, list, cancel, steer, approve or share (`canControl`, `requireControl`).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { AgentkitError } from "../errors.ts";
import { createShareTokens, isShareToken, type ShareGrant, type ShareTokens } from "./share-tokens.ts";

export interface Principal {
  /** Recorded as the owner of the tasks this principal creates; for a share token, the owner of what was shared. */
  readonly id: string;
  readonly admin: boolean;
  /** Set for a share token: it may watch this task (or the tasks of this thread), and do nothing else. */
  readonly readOnly?: ShareGrant;
}

export interface ApiKey {
  /** A name for logs and ownership, never the key itself. */
  name: string;
  key: string;
  admin: boolean;
}

export interface Authenticator {
  /** The principal of a key, or undefined when the key is missing or wrong. */
  authenticate(provided: string | null | undefined): Principal | undefined;
  /** False in open mode (no key configured). */
  readonly required: boolean;
}

export const OPEN_PRINCIPAL: Principal = { id: "anonymous", admin: true };

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

/**
 * The authenticator of `keys`. With `shareSecret`, share tokens made with it are accepted too
 * (except in open mode, where everyone is an admin already and credentials are not read).
 */
export function createAuthenticator(keys: readonly ApiKey[], options: { shareSecret?: Uint8Array; now?: () => number } = {}): Authenticator {
  const auth = createKeyAuthenticator(keys);
  return options.shareSecret ? withShareTokens(auth, createShareTokens({ secret: options.shareSecret, now: options.now })) : auth;
}

/**
 * Wraps `auth` so that a credential that looks like a share token (`aks1.…`) is verified as one;
 * anything else — and a token that does not verify — is handled by `auth` as a key. Open mode
 * (`required: false`) is left as it is.
 */
export function withShareTokens(auth: Authenticator, shares: Pick<ShareTokens, "verify">): Authenticator {
  if (!auth.required) return auth;
  return {
    required: true,
    authenticate(provided) {
      if (isShareToken(provided)) {
        const principal = shares.verify(provided);
        if (principal) return principal;
      }
      return auth.authenticate(provided);
    },
  };
}

function createKeyAuthenticator(keys: readonly ApiKey[]): Authenticator {
  if (keys.length === 0) return { required: false, authenticate: () => OPEN_PRINCIPAL };
  const entries = keys.map((key) => ({ digest: digest(key.key), principal: { id: key.name, admin: key.admin } }));
  return {
    required: true,
    authenticate(provided) {
      // Hash and compare against every key even when nothing was provided: timing says nothing.
      const candidate = digest(provided ?? "");
      let match: Principal | undefined;
      for (const entry of entries) {
        if (timingSafeEqual(candidate, entry.digest)) match = entry.principal;
      }
      return provided ? match : undefined;
    },
  };
}

/** Whether a principal may read or watch a task (`id`, `owner`, and — for a thread's share token — `thread_id`). */
export function canSee(principal: Principal, task: { id: string; owner: string; thread_id?: string | null }): boolean {
  const grant = principal.readOnly;
  if (grant) {
    if (task.owner !== principal.id) return false;
    return grant.scope === "task" ? task.id === grant.id : task.thread_id === grant.id;
  }
  return principal.admin || principal.id === task.owner;
}

/** Whether a principal may watch a task: the same as `canSee`. */
export const canWatch = canSee;

/** Whether a principal may act on a task (cancel, steer, approve, answer, share): it sees it and is not read-only. */
export function canControl(principal: Principal, task: { id: string; owner: string; thread_id?: string | null }): boolean {
  return canSee(principal, task) && !principal.readOnly;
}

/** Whether a principal may see a thread (its owner or an admin; a share token only its own thread). */
export function canSeeThread(principal: Principal, thread: { id: string; owner: string }): boolean {
  const grant = principal.readOnly;
  if (grant) return grant.scope === "thread" && grant.id === thread.id && thread.owner === principal.id;
  return principal.admin || principal.id === thread.owner;
}

/** What a read-only principal is told when it tries anything but watching. */
export const WATCH_ONLY_MESSAGE = "this token can only watch";

/** The 403 `forbidden` for a read-only principal. */
export function watchOnlyError(): AgentkitError {
  return new AgentkitError("forbidden", WATCH_ONLY_MESSAGE);
}

/**
 * Throws 403 `forbidden` ("this token can only watch") for a read-only principal (a share token).
 * Call it before anything that changes a task or reveals more than the shared one: creating, listing,
 * cancelling, steering, approving, answering, sharing. A WebSocket frame handler sends
 * `errorFrame(WATCH_ONLY_MESSAGE, "forbidden")` instead and keeps the connection open.
 */
export function requireControl(principal: Principal): void {
  if (principal.readOnly) throw watchOnlyError();
}

/** The key of a request: `Authorization: Bearer <key>` or `X-API-Key: <key>`. */
export function keyFromHeaders(headers: Headers): string | undefined {
  const authorization = headers.get("authorization");
  if (authorization) {
    const match = /^Bearer\s+(.+)$/i.exec(authorization.trim());
    if (match) return match[1];
  }
  return headers.get("x-api-key") ?? undefined;
}

/** The subprotocol a browser offers to carry its key: `agentkit.key.<key>` (browsers cannot set headers). */
export const KEY_PROTOCOL_PREFIX = "agentkit.key.";
/** The subprotocol the server selects in its answer, so the key is never echoed back. */
export const AGENTKIT_PROTOCOL = "agentkit";

export function parseProtocols(header: string | null): string[] {
  return header ? header.split(",").map((value) => value.trim()).filter(Boolean) : [];
}

export function keyFromProtocols(protocols: readonly string[]): string | undefined {
  const offered = protocols.find((protocol) => protocol.startsWith(KEY_PROTOCOL_PREFIX));
  return offered?.slice(KEY_PROTOCOL_PREFIX.length) || undefined;
}
