/** The webhooks' response bodies (routes.ts), as zod schemas: for the OpenAPI document (server/openapi.ts). */
import { z } from "zod";
import { WEBHOOK_EVENTS } from "../store/store.ts";

/** One webhook of a task, as `GET /tasks/:id/webhooks` shows it. */
export const WebhookDelivery = z.object({
  /** `webhook-id`: the same on every attempt. */
  id: z.string(),
  event: z.enum(WEBHOOK_EVENTS),
  /** `task`: the task's own `webhook_url`; `agent`: its agent's `webhook`. */
  source: z.enum(["task", "agent"]),
  /** Where it goes (an agent's: its origin only, unless the admin asks). */
  url: z.string(),
  status: z.enum(["pending", "delivered", "failed"]),
  /** Attempts made so far. */
  attempts: z.number().int().nonnegative(),
  /** Why the last failed attempt failed (`HTTP 500`, `timed out after 10000 ms`, …), or null. */
  last_error: z.string().nullable(),
  /** While pending: when the next attempt is due; else null. */
  next_attempt_at: z.string().nullable(),
  created_at: z.string(),
  delivered_at: z.string().nullable(),
});
export const WebhookDeliveryList = z.array(WebhookDelivery);
export const WebhookSecretResponse = z.object({
  /** `whsec_<base64>`: give it to `standardwebhooks`' `new Webhook(secret).verify(body, headers)`. */
  secret: z.string(),
});
