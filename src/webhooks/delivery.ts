/**
 * The delivery worker: sends the outbox's webhooks (the `webhooks` table), durably and at least once.
 *
 * - It claims due rows (`store.claimWebhooks`: each claimed row is due again a lease later, so a
 *   node that dies mid-delivery leaves it to be claimed again; in PostgreSQL several nodes claim
 *   with `FOR UPDATE SKIP LOCKED` and each row goes to one of them), POSTs each with a timeout and
 *   records the attempt: a 2xx is `delivered`; anything else (an error status, a redirect, a
 *   timeout, no connection) is retried with exponential backoff and jitter (`retryMs`, ×3 each
 *   time, at most `maxRetryMs`; a `Retry-After` is honoured, within the same bound) until
 *   `maxAttempts`, then `failed`. A 410 Gone is `failed` at once.
 * - Fair by destination (the URL's origin: `webhookDestination`): one destination has at most
 *   `perDestination` deliveries in flight (of `concurrency`), and a claim passes over a full one —
 *   a receiver that hangs until the deadline, with thousands of rows due, holds its share of the
 *   slots and no more, while the other destinations' rows are claimed and sent. The claim's cost
 *   does not grow with the rows due (see `claimWebhooks`). Per node: in a cluster, each node keeps
 *   its own count.
 * - Every attempt of a webhook has the same `webhook-id` (receivers dedupe on it) and a fresh
 *   timestamp and signature (see signing.ts).
 * - A restart loses nothing: pending rows are claimed again once due.
 */
import { errorMessage } from "../errors.ts";
import type { Logger } from "../lib/logger.ts";
import { backgroundSlice } from "../lib/turn.ts";
import type { TaskStore, Webhook, WebhookAttempt } from "../store/store.ts";
import { VERSION } from "../version.ts";
import { webhookHeaders } from "./signing.ts";

export interface WebhookDeliveryOptions {
  store: Pick<TaskStore, "claimWebhooks" | "intakeWebhooks" | "recordWebhookAttempt">;
  /** The signing key (the bytes of the `whsec_` secret). */
  key: Uint8Array;
  logger: Logger;
  /** One attempt's deadline (connect, send, response headers). Default 10 s. */
  timeoutMs?: number;
  /** Attempts before a webhook is `failed`. Default 10. */
  maxAttempts?: number;
  /** The delay before the first retry; ×3 for each next one. Default 5 s. */
  retryMs?: number;
  /** The longest delay between two attempts (a `Retry-After` included). Default 1 h. */
  maxRetryMs?: number;
  /** How often due rows are looked for without a kick (rows written by other nodes, retries). Default 1 s. */
  pollMs?: number;
  /** Deliveries in flight at once. Default 16. */
  concurrency?: number;
  /** Deliveries to one destination (a URL's origin) in flight at once. Default 4 (at most `concurrency`). */
  perDestination?: number;
  now?: () => Date;
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
  random?: () => number;
}

export interface WebhookDelivery {
  /** Looks for due rows now (a webhook was just written). */
  kick(): void;
  /** Stops: attempts under way get a second to finish, then are aborted (recorded as failed attempts, retried later). */
  stop(): Promise<void>;
}

/** Milliseconds a `Retry-After` asks for (seconds or an HTTP date); undefined when absent or unreadable. */
export function retryAfterMs(header: string | null, now: Date): number | undefined {
  if (!header) return undefined;
  const text = header.trim();
  if (/^\d{1,10}$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now.getTime());
}

/** The delay before attempt `attempts + 1` after `attempts` failed ones: `retryMs · 3^(attempts-1)`, ±20 % jitter, at most `maxRetryMs`. */
export function backoffMs(attempts: number, retryMs: number, maxRetryMs: number, random: () => number = Math.random): number {
  const base = Math.min(maxRetryMs, retryMs * 3 ** Math.max(0, attempts - 1));
  return Math.round(Math.min(maxRetryMs, base * (0.8 + 0.4 * random())));
}

/** How long `stop` lets attempts under way finish before it aborts them. */
const STOP_GRACE_MS = 1000;
/** Rows written since taken in per call of `intakeWebhooks` (~1 ms of SQLite: bench/webhook-claim.ts). */
const INTAKE_BATCH = 128;

export function startWebhookDelivery(options: WebhookDeliveryOptions): WebhookDelivery {
  const { store, key, logger } = options;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxAttempts = options.maxAttempts ?? 10;
  const retryMs = options.retryMs ?? 5_000;
  const maxRetryMs = options.maxRetryMs ?? 3_600_000;
  const concurrency = options.concurrency ?? 16;
  const perDestination = Math.max(1, Math.min(concurrency, options.perDestination ?? 4));
  const now = options.now ?? (() => new Date());
  const send = options.fetch ?? ((url: string, init: RequestInit) => fetch(url, init));
  const random = options.random ?? Math.random;
  // A claimed row is due again after this: well past one attempt's deadline.
  const leaseMs = timeoutMs + 30_000;
  const stopping = new AbortController();
  const inFlight = new Set<Promise<void>>();
  /** Deliveries in flight by destination (none: absent). */
  const busy = new Map<string, number>();
  let filling = false;
  let again = false;
  let stopped = false;

  async function fill(): Promise<void> {
    if (stopped) return;
    if (filling) {
      again = true;
      return;
    }
    filling = true;
    try {
      do {
        again = false;
        // Attempts that fail at once (a refused connection) end within the turn and ask for more:
        // claim after claim would run in one turn while rows are due (35-48 ms held with 500-15,000
        // due). The claims take their share of the background slice instead.
        if (backgroundSlice.spent) await backgroundSlice.next();
        if (stopped) break;
        // Rows written since (a backlog: thousands at once, or pending from before an upgrade) are
        // taken in first, a batch at a time: a claim passes over none that is due.
        if ((await store.intakeWebhooks(INTAKE_BATCH)) === INTAKE_BATCH) {
          again = true;
          continue;
        }
        const room = concurrency - inFlight.size;
        if (room <= 0) break;
        const rows = await store.claimWebhooks(now(), room, leaseMs, { perDestination, busy });
        for (const row of rows) {
          const destination = row.destination;
          busy.set(destination, (busy.get(destination) ?? 0) + 1);
          const delivery = deliver(row).finally(() => {
            inFlight.delete(delivery);
            const left = (busy.get(destination) ?? 1) - 1;
            if (left > 0) busy.set(destination, left);
            else busy.delete(destination);
            kick();
          });
          inFlight.add(delivery);
        }
        // There may be more: the claim read a bounded number of destinations. An empty claim ends
        // the round until the next kick (a write, a delivery's end) or poll: the store keeps each
        // destination's next due time exact (claims and records set it, intakes lower it), so a
        // claim that found nothing had nothing due it could take, not a due row behind destinations
        // with nothing to send (destinations another node holds are that node's to serve).
        if (rows.length > 0) again = true;
      } while (again && !stopped);
    } catch (error) {
      if (!stopped) logger.warn("webhooks: could not claim deliveries", { error: errorMessage(error) });
    } finally {
      filling = false;
    }
  }

  async function deliver(row: Webhook): Promise<void> {
    const attempt = row.attempts + 1;
    let status: number | undefined;
    let error: string;
    let retryAfter: number | undefined;
    const timestamp = Math.floor(now().getTime() / 1000);
    try {
      const response = await send(row.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": `agentkit/${VERSION}`,
          ...webhookHeaders(key, row.id, timestamp, row.payload),
        },
        body: row.payload,
        // A redirect is not followed (it could lead anywhere): it counts as a failed attempt.
        redirect: "manual",
        signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), stopping.signal]),
      });
      status = response.status;
      retryAfter = retryAfterMs(response.headers.get("retry-after"), now());
      await response.body?.cancel().catch(() => {});
      if (status >= 200 && status < 300) {
        await record(row, { outcome: "delivered", at: now() }, attempt);
        return;
      }
      error = `HTTP ${status}`;
    } catch (thrown) {
      const name = (thrown as { name?: string }).name;
      error = stopping.signal.aborted
        ? "interrupted: the server stopped during the attempt"
        : name === "TimeoutError" || name === "AbortError"
          ? `timed out after ${timeoutMs} ms`
          : errorMessage(thrown);
    }
    error = error.replaceAll("\u0000", "").slice(0, 500);
    if (status === 410 || attempt >= maxAttempts) {
      await record(row, { outcome: "failed", error }, attempt);
      return;
    }
    const delay = retryAfter !== undefined ? Math.min(maxRetryMs, retryAfter) : backoffMs(attempt, retryMs, maxRetryMs, random);
    await record(row, { outcome: "retry", error, nextAttemptAt: new Date(now().getTime() + delay) }, attempt);
  }

  async function record(row: Webhook, result: WebhookAttempt, attempt: number): Promise<void> {
    try {
      await store.recordWebhookAttempt(row.id, result, now());
    } catch (error) {
      // The row stays claimed: it is due again when its lease runs out, and is attempted again then.
      logger.warn("webhooks: could not record a delivery attempt", { webhook: row.id, error: errorMessage(error) });
      return;
    }
    const fields = { webhook: row.id, task: row.taskId, event: row.event, attempt };
    if (result.outcome === "delivered") logger.debug("webhook delivered", fields);
    else if (result.outcome === "failed") logger.warn("webhook failed for good", { ...fields, error: result.error });
    else logger.info("webhook attempt failed; retrying", { ...fields, error: result.error, next_attempt_at: result.nextAttemptAt.toISOString() });
  }

  function kick() {
    void fill();
  }

  const timer = setInterval(kick, options.pollMs ?? 1000);
  timer.unref?.();
  kick();

  return {
    kick,
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      // Attempts under way get a moment to finish (an aborted one may have reached the receiver,
      // and is then sent again after the restart), then are aborted.
      await Promise.race([Promise.all([...inFlight]), Bun.sleep(STOP_GRACE_MS)]);
      stopping.abort();
      while (filling || inFlight.size > 0) {
        await Promise.all([...inFlight]);
        if (filling) await Bun.sleep(5);
      }
    },
  };
}
