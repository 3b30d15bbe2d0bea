/**
 * API key checks, in constant time. Keys are hashed first so that comparing keys of different
 * lengths takes the same time too.
 */
import { createHash, timingSafeEqual } from "node:crypto";

export interface KeyChecker {
  /** True when no key is configured (open mode) or `provided` matches it. */
  check(provided: string | null | undefined): boolean;
  readonly required: boolean;
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

export function createKeyChecker(apiKey: string | undefined): KeyChecker {
  if (!apiKey) return { required: false, check: () => true };
  const expected = digest(apiKey);
  return {
    required: true,
    check(provided) {
      // Always hash and compare, even for a missing key, so the timing says nothing.
      const ok = timingSafeEqual(digest(provided ?? ""), expected);
      return ok && provided !== undefined && provided !== null;
    },
  };
}

/** The key of a REST request: `Authorization: Bearer <key>` or `X-API-Key: <key>`. */
export function keyFromHeaders(headers: Headers): string | undefined {
  const authorization = headers.get("authorization");
  if (authorization) {
    const match = /^Bearer\s+(.+)$/i.exec(authorization.trim());
    if (match) return match[1];
  }
  return headers.get("x-api-key") ?? undefined;
}
