/** Share tokens: what sign makes, and everything verify refuses. */
import { describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { API_KEY_PATTERN } from "../../src/config/config.ts";
import { canControl, canSee, canSeeThread, createAuthenticator, requireControl } from "../../src/server/auth.ts";
import { createShareTokens, MAX_SHARE_TOKEN_LENGTH, SHARE_TOKEN_PREFIX } from "../../src/server/share-tokens.ts";

const SECRET = new TextEncoder().encode("0123456789abcdef0123456789abcdef");
const OTHER = new TextEncoder().encode("fedcba9876543210fedcba9876543210");
const T0 = Date.parse("2030-01-01T00:00:00Z");

function clock(start = T0) {
  let time = start;
  return { now: () => time, advance: (ms: number) => (time += ms) };
}

/** `token` with the character at `index` replaced by another base64url character. */
function flip(token: string, index: number): string {
  const replacement = token[index] === "A" ? "B" : "A";
  return token.slice(0, index) + replacement + token.slice(index + 1);
}

describe("share tokens", () => {
  test("sign makes a token a key could be, that verify turns into a read-only principal", () => {
    const shares = createShareTokens({ secret: SECRET, now: clock().now });
    const { token, expires_at } = shares.sign("task", "4a1d7c9e-0000-4000-8000-000000000001", "alice", 3600);
    expect(token.startsWith(SHARE_TOKEN_PREFIX)).toBe(true);
    expect(token).toMatch(API_KEY_PATTERN);
    expect(expires_at).toBe("2030-01-01T01:00:00.000Z");
    expect(shares.verify(token)).toEqual({ id: "alice", admin: false, readOnly: { scope: "task", id: "4a1d7c9e-0000-4000-8000-000000000001", expiresAt: Date.parse("2030-01-01T01:00:00.000Z") } });
    // Each token is unique (jti), even for the same grant at the same instant.
    expect(shares.sign("task", "t", "alice", 3600).token).not.toBe(shares.sign("task", "t", "alice", 3600).token);
    expect(shares.sign("thread", "th-1", "bob", 60).token).toMatch(API_KEY_PATTERN);
    expect(shares.verify(shares.sign("thread", "th-1", "bob", 60).token)).toMatchObject({ readOnly: { scope: "thread", id: "th-1" } });
  });

  test("a token is valid until its expiry, not a millisecond longer", () => {
    const time = clock();
    const shares = createShareTokens({ secret: SECRET, now: time.now });
    const { token } = shares.sign("task", "t", "alice", 60);
    time.advance(59_999);
    expect(shares.verify(token)).toBeDefined();
    time.advance(1);
    expect(shares.verify(token)).toBeUndefined();
  });

  test("a token made with another secret, or changed anywhere, does not verify", () => {
    const shares = createShareTokens({ secret: SECRET, now: clock().now });
    const { token } = shares.sign("task", "t", "alice", 3600);
    expect(createShareTokens({ secret: OTHER, now: clock().now }).verify(token)).toBeUndefined();
    const [, payload, signature] = token.split(".");
    for (let index = SHARE_TOKEN_PREFIX.length; index < token.length; index++) {
      if (token[index] === ".") continue;
      expect(shares.verify(flip(token, index))).toBeUndefined();
    }
    // The signature's last character has 2 spare bits: a different spelling of the same bytes is refused too.
    const last = signature!.at(-1)!;
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const sibling = alphabet[alphabet.indexOf(last) ^ 1]!;
    expect(shares.verify(`${SHARE_TOKEN_PREFIX}${payload}.${signature!.slice(0, -1)}${sibling}`)).toBeUndefined();
    // Pieces missing, swapped or added.
    for (const bad of [
      `${SHARE_TOKEN_PREFIX}${payload}`,
      `${SHARE_TOKEN_PREFIX}${payload}.`,
      `${SHARE_TOKEN_PREFIX}.${signature}`,
      `${SHARE_TOKEN_PREFIX}${signature}.${payload}`,
      `${token}.${signature}`,
      `aks2.${payload}.${signature}`,
      token.slice(0, -1),
      `${token}A`,
      "",
      SHARE_TOKEN_PREFIX,
    ]) {
      expect(shares.verify(bad)).toBeUndefined();
    }
    expect(shares.verify(undefined)).toBeUndefined();
    expect(shares.verify(null)).toBeUndefined();
    expect(shares.verify(`${token}${"A".repeat(MAX_SHARE_TOKEN_LENGTH)}`)).toBeUndefined();
  });

  test("a correctly signed payload that is not a grant is refused", () => {
    const shares = createShareTokens({ secret: SECRET, now: clock().now });
    const forge = (payload: unknown) => {
      const signed = SHARE_TOKEN_PREFIX + Buffer.from(JSON.stringify(payload)).toString("base64url");
      return `${signed}.${createHmac("sha256", SECRET).update(signed).digest("base64url")}`;
    };
    const exp = T0 / 1000 + 3600;
    const good = { v: 1, scope: "task", id: "t", owner: "alice", exp, jti: "x" };
    expect(shares.verify(forge(good))).toMatchObject({ id: "alice" });
    for (const bad of [
      { ...good, v: 2 },
      { ...good, scope: "everything" },
      { ...good, id: "" },
      { ...good, owner: 7 },
      { ...good, exp: "never" },
      { ...good, exp: T0 / 1000 },
      { scope: "task", id: "t", owner: "alice", exp, jti: "x" },
      [good],
      "alice",
    ]) {
      expect(shares.verify(forge(bad))).toBeUndefined();
    }
    // Not JSON at all, however well signed.
    const signed = SHARE_TOKEN_PREFIX + Buffer.from("{not json").toString("base64url");
    expect(shares.verify(`${signed}.${createHmac("sha256", SECRET).update(signed).digest("base64url")}`)).toBeUndefined();
  });

  test("sign refuses a bad ttl or a grant too long for a token; a short secret is refused", () => {
    const shares = createShareTokens({ secret: SECRET });
    for (const ttl of [0, -1, 1.5, Number.NaN, Infinity]) expect(() => shares.sign("task", "t", "alice", ttl)).toThrow();
    expect(() => shares.sign("task", "t".repeat(400), "alice", 60)).toThrow(/at most 512/);
    // The longest task id (128) with the longest tenant name (64) fits.
    expect(shares.sign("task", "t".repeat(128), "a".repeat(64), 30 * 24 * 3600).token.length).toBeLessThanOrEqual(MAX_SHARE_TOKEN_LENGTH);
    expect(() => createShareTokens({ secret: new Uint8Array(31) })).toThrow(/at least 32 bytes/);
  });
});

describe("read-only principals", () => {
  const task = { id: "t1", owner: "alice", thread_id: "th1" };
  const taskGrant = { id: "alice", admin: false, readOnly: { scope: "task" as const, id: "t1", expiresAt: Number.MAX_SAFE_INTEGER } };
  const threadGrant = { id: "alice", admin: false, readOnly: { scope: "thread" as const, id: "th1", expiresAt: Number.MAX_SAFE_INTEGER } };

  test("see only what was shared, of its owner, and control nothing", () => {
    expect(canSee(taskGrant, task)).toBe(true);
    expect(canSee(taskGrant, { ...task, id: "t2" })).toBe(false);
    expect(canSee(taskGrant, { ...task, owner: "bob" })).toBe(false);
    expect(canSee(threadGrant, task)).toBe(true);
    expect(canSee(threadGrant, { id: "t2", owner: "alice", thread_id: "th1" })).toBe(true);
    expect(canSee(threadGrant, { id: "t1", owner: "alice", thread_id: null })).toBe(false);
    expect(canSee(threadGrant, { id: "t1", owner: "alice" })).toBe(false);
    expect(canSee(threadGrant, { id: "t3", owner: "alice", thread_id: "th2" })).toBe(false);
    expect(canControl(taskGrant, task)).toBe(false);
    expect(canControl({ id: "alice", admin: false }, task)).toBe(true);
    expect(canControl({ id: "root", admin: true }, task)).toBe(true);
    expect(canControl({ id: "bob", admin: false }, task)).toBe(false);
    expect(() => requireControl(taskGrant)).toThrow("this token can only watch");
    expect(() => requireControl({ id: "alice", admin: false })).not.toThrow();
    expect(canSeeThread(threadGrant, { id: "th1", owner: "alice" })).toBe(true);
    expect(canSeeThread(taskGrant, { id: "th1", owner: "alice" })).toBe(false);
    expect(canSeeThread(threadGrant, { id: "th2", owner: "alice" })).toBe(false);
  });

  test("the authenticator takes a share token where it takes a key; without a secret, a token is just a wrong key", () => {
    const keys = [{ name: "alice", key: "alice-key-0001", admin: false }];
    const shares = createShareTokens({ secret: SECRET });
    const { token } = shares.sign("task", "t1", "alice", 60);
    const auth = createAuthenticator(keys, { shareSecret: SECRET });
    expect(auth.authenticate(token)).toMatchObject({ id: "alice", admin: false, readOnly: { scope: "task", id: "t1" } });
    expect(auth.authenticate("alice-key-0001")).toEqual({ id: "alice", admin: false });
    expect(auth.authenticate(flip(token, 10))).toBeUndefined();
    expect(createAuthenticator(keys).authenticate(token)).toBeUndefined();
    expect(createAuthenticator(keys, { shareSecret: OTHER }).authenticate(token)).toBeUndefined();
    // A configured key that happens to start like a token still works as a key.
    const odd = createAuthenticator([{ name: "odd", key: "aks1.my-own-key", admin: false }], { shareSecret: SECRET });
    expect(odd.authenticate("aks1.my-own-key")).toEqual({ id: "odd", admin: false });
    // Open mode reads no credentials: everyone is the admin.
    expect(createAuthenticator([], { shareSecret: SECRET }).authenticate(token)).toMatchObject({ admin: true });
  });
});
