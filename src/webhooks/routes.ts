/**
 * The webhooks' routes:
 * - `GET /tasks/:id/webhooks`: the task's webhooks and how their delivery goes (its owner, or the
 *   admin; a share token cannot). The URL of an agent's webhook is the operator's: a tenant sees its
 *   origin only.
 * - `GET /webhooks/secret`: the signing secret (`whsec_…`), for receivers to verify with; the admin
 *   key only (open mode: anyone, as every route).
 * Their response schemas (for the OpenAPI document) are in schemas.ts, which nothing loads at start-up.
 */
import type { Hono } from "hono";
import type { z } from "zod";
import type { AgentPool } from "../agents/pool.ts";
import { AgentkitError } from "../errors.ts";
import { TaskIdParam } from "../protocol/api.ts";
import type { Task } from "../protocol/task.ts";
import type { Principal } from "../server/auth.ts";
import { validate } from "../server/validation.ts";
import type { TaskStore, Webhook } from "../store/store.ts";
import type { WebhookDelivery } from "./schemas.ts";

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
    const webhooks = await deps.store.taskWebhooks(task.id);
    return c.json(
      webhooks.map((webhook) => {
        // From what was stored, not from today's configuration: an agent's URL changed since
        // made its old one (token and all) look like the task's own, shown to the tenant.
        const source = webhook.toTaskUrl ? "task" : "agent";
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
