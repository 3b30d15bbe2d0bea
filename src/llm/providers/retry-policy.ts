/**
 * When and how long to wait before trying a failed model request again: exponential backoff with
 * jitter, or exactly what the provider asked for in `Retry-After` / `retry-after-ms`. Pure
 * functions; the adapter owns the loop and the (injectable) sleep.
 */

export interface RetryOptions {
  /** Retries after the first attempt; 0 disables retrying. Default 3 (so at most 4 requests). */
  maxRetries?: number;
  /** Backoff before the first retry; doubles each time. Default 500 ms. */
  initialDelayMs?: number;
  /**
   * The longest single wait. Backoff is capped at it, and a provider asking (via `Retry-After`)
   * for a longer wait is not retried at all — waiting less than it asked would be pointless.
   * Default 60 s.
   */
  maxDelayMs?: number;
}

export type ResolvedRetryOptions = Required<RetryOptions>;

export const DEFAULT_RETRY: ResolvedRetryOptions = { maxRetries: 3, initialDelayMs: 500, maxDelayMs: 60_000 };

export function resolveRetryOptions(options: RetryOptions | undefined): ResolvedRetryOptions {
  return { ...DEFAULT_RETRY, ...stripUndefined(options ?? {}) };
}

/**
 * Whether an HTTP status is worth retrying: rate limits and server errors — but not 501 Not
 * Implemented or 505 HTTP Version Not Supported, which say the request will never work there.
 */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status !== 501 && status !== 505);
}

/**
 * How long the provider asked us to wait, from `retry-after-ms` (OpenAI) or `Retry-After`
 * (seconds or an HTTP date), in ms; `undefined` when absent or unreadable.
 * Header names are matched case-insensitively.
 */
export function retryAfterMs(headers: Record<string, string> | undefined, now: number = Date.now()): number | undefined {
  if (!headers) return undefined;
  const lower = new Map(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value.trim()]));
  const milliseconds = lower.get("retry-after-ms");
  if (milliseconds !== undefined && /^\d+(\.\d+)?$/.test(milliseconds)) return Math.ceil(Number(milliseconds));
  const value = lower.get("retry-after");
  if (value === undefined || value === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value) * 1000);
  const date = Date.parse(value);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/**
 * The wait before retry number `retry` (1-based), or `undefined` when the provider asked for a
 * longer wait than `maxDelayMs`. Without a provider hint: `initialDelayMs · 2^(retry-1)`, capped,
 * then "equal jitter" — a uniform pick in [half, full] so concurrent clients spread out but never
 * hammer the server with a zero delay.
 */
export function retryDelayMs(options: {
  retry: number;
  retryAfterMs: number | undefined;
  policy: ResolvedRetryOptions;
  random: () => number;
}): number | undefined {
  const { retry, policy } = options;
  if (options.retryAfterMs !== undefined) {
    return options.retryAfterMs <= policy.maxDelayMs ? options.retryAfterMs : undefined;
  }
  const exponential = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** (retry - 1));
  return Math.round(exponential / 2 + options.random() * (exponential / 2));
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined)) as Partial<T>;
}
