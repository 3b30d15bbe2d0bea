/**
 * Read-only watch tokens (`POST /tasks/:id/share`): a signed, expiring credential scoped to one
 * task (or one thread) that can watch it — `GET /tasks/:id`, its events (JSON and SSE), the task
 * WebSocket — and never cancel, steer or approve.
 *
 * A token is `aks1.<payload>.<signature>`: the payload is base64url JSON
 * `{v:1, scope, id, owner, exp, jti}` and the signature base64url HMAC-SHA256 of `aks1.<payload>`
 * under the server's share secret. Every character is one an API key may have (API_KEY_PATTERN in
 * src/config/config.ts), so a token goes exactly where a key goes: a header, `?api_key=`, or the
 * WebSocket subprotocol `agentkit.key.<token>`. Nothing is stored: a token is valid until `exp`,
 * on every node that has the same secret. Its signature is compared in constant time.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import type { Principal } from "./auth.ts";

/** What every share token starts with (`s` for share, `1` for the format's version). */
export const SHARE_TOKEN_PREFIX = "aks1.";
/** The longest token accepted (and made): the longest API key. */
export const MAX_SHARE_TOKEN_LENGTH = 512;
/** The shortest secret accepted, in bytes. */
export const MIN_SHARE_SECRET_BYTES = 32;
/** `POST /tasks/:id/share`'s bounds on `ttl_seconds`, and its default. */
export const SHARE_TTL = { min: 60, max: 30 * 24 * 3600, default: 24 * 3600 } as const;

export type ShareScope = "task" | "thread";

/** What a read-only principal may watch: one task, or the tasks of one thread. */
export interface ShareGrant {
  readonly scope: ShareScope;
  /** The task id (scope `task`) or the thread id (scope `thread`). */
  readonly id: string;
  /** When the token expires (ms since the epoch): a stream it opened ends then. */
  readonly expiresAt: number;
}

/** The principal of a share token: the owner of what was shared, read-only, never admin. */
export interface SharePrincipal extends Principal {
  readonly admin: false;
  readonly readOnly: ShareGrant;
}

export interface SignedShareToken {
  token: string;
  /** ISO 8601. */
  expires_at: string;
}

export interface ShareTokens {
  /**
   * A token for `scope`/`id`, watching as `owner` (the owner of the task or thread shared: that is
   * who the token's principal is, so ownership checks keep working), valid for `ttlSeconds`.
   * Throws if `ttlSeconds` is not a positive integer or the token would be longer than
   * MAX_SHARE_TOKEN_LENGTH (ids and owners are short, so it never is).
   */
  sign(scope: ShareScope, id: string, owner: string, ttlSeconds: number): SignedShareToken;
  /** The principal of a valid, unexpired token; undefined for anything else. */
  verify(token: string | null | undefined): SharePrincipal | undefined;
}

/** The optional body of `POST /tasks/:id/share`. */
export const ShareBody = z
  .object({
    ttl_seconds: z.number().int().min(SHARE_TTL.min).max(SHARE_TTL.max).optional(),
    scope: z.enum(["task", "thread"]).optional(),
  })
  .strict();

const Payload = z.object({
  v: z.literal(1),
  scope: z.enum(["task", "thread"]),
  id: z.string().min(1).max(256),
  owner: z.string().min(1).max(256),
  exp: z.number().int().positive(),
  jti: z.string().min(1).max(64),
});

const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** 32 bytes of HMAC-SHA256 in unpadded base64url. */
const SIGNATURE_LENGTH = 43;

export function createShareTokens(options: { secret: Uint8Array; /** Milliseconds since the epoch (default Date.now). */ now?: () => number }): ShareTokens {
  if (options.secret.byteLength < MIN_SHARE_SECRET_BYTES) {
    throw new Error(`a share secret must be at least ${MIN_SHARE_SECRET_BYTES} bytes`);
  }
  const secret = Buffer.from(options.secret); // a copy: later changes to the caller's array do not matter
  const now = options.now ?? Date.now;
  const mac = (signed: string) => createHmac("sha256", secret).update(signed).digest();

  return {
    sign(scope, id, owner, ttlSeconds) {
      if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0) throw new Error(`ttlSeconds must be a positive integer (got ${ttlSeconds})`);
      const exp = Math.floor(now() / 1000) + ttlSeconds;
      const payload = { v: 1, scope, id, owner, exp, jti: Buffer.from(crypto.getRandomValues(new Uint8Array(12))).toString("base64url") };
      const signed = SHARE_TOKEN_PREFIX + Buffer.from(JSON.stringify(payload)).toString("base64url");
      const token = `${signed}.${mac(signed).toString("base64url")}`;
      if (token.length > MAX_SHARE_TOKEN_LENGTH) throw new Error(`a share token would be ${token.length} characters (at most ${MAX_SHARE_TOKEN_LENGTH})`);
      return { token, expires_at: new Date(exp * 1000).toISOString() };
    },

    verify(token) {
      if (typeof token !== "string" || token.length > MAX_SHARE_TOKEN_LENGTH || !token.startsWith(SHARE_TOKEN_PREFIX)) return undefined;
      const dot = token.lastIndexOf(".");
      const signed = token.slice(0, dot);
      const encodedPayload = signed.slice(SHARE_TOKEN_PREFIX.length);
      const encodedSignature = token.slice(dot + 1);
      if (!BASE64URL.test(encodedPayload) || encodedSignature.length !== SIGNATURE_LENGTH || !BASE64URL.test(encodedSignature)) return undefined;
      const signature = Buffer.from(encodedSignature, "base64url");
      // The last character of 32 bytes in base64url has 2 spare bits: only the canonical spelling counts.
      if (signature.length !== 32 || signature.toString("base64url") !== encodedSignature) return undefined;
      if (!timingSafeEqual(signature, mac(signed))) return undefined;
      let payload: z.infer<typeof Payload>;
      try {
        const parsed = Payload.safeParse(JSON.parse(Buffer.from(encodedPayload, "base64url").toString("utf8")));
        if (!parsed.success) return undefined;
        payload = parsed.data;
      } catch {
        return undefined;
      }
      if (payload.exp * 1000 <= now()) return undefined;
      return { id: payload.owner, admin: false, readOnly: { scope: payload.scope, id: payload.id, expiresAt: payload.exp * 1000 } };
    },
  };
}

/** Whether `value` looks like a share token (by its prefix only: nothing is verified). */
export function isShareToken(value: string | null | undefined): value is string {
  return typeof value === "string" && value.startsWith(SHARE_TOKEN_PREFIX);
}
