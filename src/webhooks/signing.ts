/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com): each request carries
 * `webhook-id` (the same on every attempt of one webhook), `webhook-timestamp` (Unix seconds of
 * this attempt) and `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed
 * with the secret's bytes; the secret is shown as `whsec_<base64>`, the form the scheme's libraries
 * (`standardwebhooks`, Svix) take.
 */
import { createHmac } from "node:crypto";

export const SECRET_PREFIX = "whsec_";

/** `whsec_<base64 of the bytes>`. */
export function formatWebhookSecret(key: Uint8Array): string {
  return `${SECRET_PREFIX}${Buffer.from(key).toString("base64")}`;
}

/**
 * The key of a `whsec_<base64>` secret; undefined when it is not one (at least 24 bytes, standard
 * base64 with its padding).
 */
export function parseWebhookSecret(secret: string): Uint8Array | undefined {
  if (!secret.startsWith(SECRET_PREFIX)) return undefined;
  const encoded = secret.slice(SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length % 4 !== 0) return undefined;
  const key = new Uint8Array(Buffer.from(encoded, "base64"));
  return key.length >= 24 && key.length <= 256 ? key : undefined;
}

/** `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`. */
export function signWebhook(key: Uint8Array, id: string, timestampSeconds: number, body: string): string {
  return `v1,${createHmac("sha256", key).update(`${id}.${timestampSeconds}.${body}`).digest("base64")}`;
}

/** The headers of one attempt. */
export function webhookHeaders(key: Uint8Array, id: string, timestampSeconds: number, body: string): Record<string, string> {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestampSeconds),
    "webhook-signature": signWebhook(key, id, timestampSeconds, body),
  };
}
