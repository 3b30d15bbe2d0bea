/**
 * Who is calling. Keys are compared in constant time (each is hashed, then every configured key is
 * compared, with no early exit), and never logged. A key belongs to a principal: a tenant sees only
 * the tasks it created; an admin sees all. With no key configured, everyone is an admin (open mode).
 */
import { createHash, timingSafeEqual } from "node:crypto";

export interface Principal {
  /** Recorded as the owner of the tasks this principal creates. */
  readonly id: string;
  readonly admin: boolean;
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

export function createAuthenticator(keys: readonly ApiKey[]): Authenticator {
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
