/**
 * The webhooks' routes:
 * - `GET /tasks/:id/webhooks`: the task's webhooks and how their delivery goes (its owner, or the
 *   admin; a share token cannot). The URL of an agent's webhook is the operator's: a tenant sees its
 *   origin only.
 * - `GET /webhooks/secret`: the signing secret (`whsec_…`), for receivers to verify with; the admin
 *   key only (open mode: anyone, as every route).
 */
import type { Hono } from "hono";
import { z } from "zod";
import type { AgentPool } from "../agents/pool.ts";
import { AgentkitError } from "../errors.ts";
import { TaskIdParam } from "../protocol/api.ts";
import type { Task } from "../protocol/task.ts";
import type { Principal } from "../server/auth.ts";
import { validate } from "../server/validation.ts";
import { WEBHOOK_EVENTS, type TaskStore, type Webhook } from "../store/store.ts";

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

export interface WebhookRoutesDeps {
  store: Pick<TaskStore, "taskWebhooks">;
  agents: Pick<AgentPool, "get">;
  /** The signing secret (`whsec_…`); unset: webhooks are not set up here (501). */
  secret?: string;
  /** The task, if this principal may see it (else a 404). */
  requireTask(id: string, principal: Principal): Promise<Task>;
}

export function toWebhookDelivery(webhook: Webhook, source: "task" | "agent", showUrl: boolean): z.infer<typeof WebhookDelivery> {
  let url = webhook.url;
  if (!showUrl) {
    try {
      url = new URL(webhook.url).origin;
    } catch {
      url = "";
    }
  }
  return {
    id: webhook.id,
    event: webhook.event,
    source,
    url,
    status: webhook.status,
    attempts: webhook.attempts,
    last_error: webhook.lastError,
    next_attempt_at: webhook.status === "pending" ? webhook.nextAttemptAt.toISOString() : null,
    created_at: webhook.createdAt.toISOString(),
    delivered_at: webhook.deliveredAt?.toISOString() ?? null,
  };
}

export function registerWebhookRoutes(app: Hono<{ Variables: { principal: Principal } }>, deps: WebhookRoutesDeps): void {
  app.get("/tasks/:id/webhooks", validate("param", TaskIdParam), async (c) => {
    const principal = c.get("principal");
    const task = await deps.requireTask(c.req.valid("param").id, principal);
    const agentUrl = deps.agents.get(task.agent)?.definition.webhook?.url;
    const webhooks = await deps.store.taskWebhooks(task.id);
    return c.json(
      webhooks.map((webhook) => {
        const source = webhook.url === agentUrl ? "agent" : "task";
        return toWebhookDelivery(webhook, source, source === "task" || principal.admin);
      }),
    );
  });

  app.get("/webhooks/secret", (c) => {
    const principal = c.get("principal");
    if (!principal.admin || principal.readOnly) throw new AgentkitError("forbidden", "The webhook secret needs the admin key");
    if (!deps.secret) throw new AgentkitError("not_implemented", "Webhooks are not set up on this server");
    return c.json({ secret: deps.secret }, 200, { "Cache-Control": "no-store" });
  });
}
