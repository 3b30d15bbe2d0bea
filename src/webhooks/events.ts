/**
 * What a webhook says, and which webhooks a task's end or wait writes to the outbox.
 *
 * The body follows the Standard Webhooks payload shape, `{type, timestamp, data}`:
 * - `task.finished`: `data.task` is the task as `GET /tasks/:id` shows it once it has ended;
 * - `task.waiting`: `data.task` is the task, `waiting`, and `data.pending` what it waits for
 *   (`{type: "approval", call_id, tool, arguments, expires_at}` or
 *   `{type: "question", call_id, tool, question, expires_at}`), to decide with
 *   `POST /tasks/:id/approvals` or `/answers`.
 *
 * The runner calls `ended` / `waiting` just before it writes the end (`store.finishTask`) or the
 * wait (`store.waitTask`), and passes what they return to that same write: the outbox row exists
 * if and only if the task's end (or wait) does.
 */
import type { AgentPool } from "../agents/pool.ts";
import type { StepEvent } from "../protocol/events.ts";
import type { Task } from "../protocol/task.ts";
import type { NewWebhook, TaskOutcome, UsageTotals, WebhookEvent } from "../store/store.ts";

/** The webhooks of tasks (runner option `webhooks`). */
export interface TaskWebhooks {
  /** The webhooks of a task that ends now with `outcome` as its `seq`; undefined: none. */
  ended(task: Task, outcome: TaskOutcome, seq: number, startedAt: string | null): NewWebhook[] | undefined;
  /** The webhooks of a task that waits for people now; `requests`: its `approval_requested` / `question` events of this run. */
  waiting(task: Task, requests: readonly StepEvent[]): NewWebhook[] | undefined;
  /** Webhooks were written to the outbox: deliver them now. */
  written(): void;
}

export interface TaskWebhooksOptions {
  agents: Pick<AgentPool, "get">;
  /** Whether tasks may have their own webhook (an allowlist is configured). */
  perTask: boolean;
  /** Called by `written`: the delivery worker's kick. */
  onWritten?: () => void;
  now?: () => Date;
}

/** A new `webhook-id`. */
export function webhookId(): string {
  return `msg_${crypto.randomUUID().replaceAll("-", "")}`;
}

/** The task as `GET /tasks/:id` shows it once `finishTask(outcome, seq)` has stored its end. */
export function endedTask(task: Task, outcome: TaskOutcome, seq: number, startedAt: string | null): Task {
  return {
    ...task,
    status: outcome.status,
    stop_reason: outcome.stopReason,
    output: outcome.output,
    error: outcome.error,
    total_steps: outcome.totalSteps,
    total_tokens: outcome.inputTokens + outcome.outputTokens,
    input_tokens: outcome.inputTokens,
    output_tokens: outcome.outputTokens,
    cost_usd: outcome.costUsd,
    output_json: outcome.outputJson ?? null,
    wait_until: null,
    last_seq: seq,
    started_at: task.started_at ?? startedAt,
    finished_at: outcome.finishedAt.toISOString(),
  };
}

/**
 * The task as `GET /tasks/:id` shows it once `waitTask` has parked it (the store keeps a task's
 * totals from its end: while it waits they are those it was stored with).
 */
export function waitingTask(task: Task, state: { startedAt: string | null; waitUntil: Date | null; lastSeq: number; totals?: UsageTotals }): Task {
  const { totals } = state;
  return {
    ...task,
    ...(totals
      ? {
          total_steps: totals.steps,
          total_tokens: totals.inputTokens + totals.outputTokens,
          input_tokens: totals.inputTokens,
          output_tokens: totals.outputTokens,
          cost_usd: totals.costUsd,
        }
      : {}),
    status: "waiting",
    wait_until: state.waitUntil?.toISOString() ?? null,
    last_seq: state.lastSeq,
    started_at: task.started_at ?? state.startedAt,
  };
}

/** What a waiting task waits for, from its `approval_requested` and `question` events. */
export function pendingOf(requests: readonly StepEvent[]): Record<string, unknown>[] {
  const pending: Record<string, unknown>[] = [];
  for (const event of requests) {
    if (event.event_type === "approval_requested") {
      const { id, name, arguments: args, expires_at } = event.data;
      pending.push({ type: "approval", call_id: id, tool: name, arguments: args ?? null, expires_at });
    } else if (event.event_type === "question") {
      const { id, name, question, expires_at } = event.data;
      pending.push({ type: "question", call_id: id, tool: name, question, expires_at });
    }
  }
  return pending;
}

export function createTaskWebhooks(options: TaskWebhooksOptions): TaskWebhooks {
  const now = options.now ?? (() => new Date());
  /** Where `event` of a task of `agent` goes: its agent's webhook (if it takes the event), the task's own (task.finished). */
  function targets(agentName: string, event: WebhookEvent): (string | undefined)[] {
    const out: (string | undefined)[] = [];
    const webhook = options.agents.get(agentName)?.definition.webhook;
    if (webhook && webhook.events.includes(event)) out.push(webhook.url);
    if (options.perTask && event === "task.finished") out.push(undefined); // the task's own, if it has one
    return out;
  }
  function build(event: WebhookEvent, urls: (string | undefined)[], data: Record<string, unknown>): NewWebhook[] {
    const createdAt = now();
    const payload = JSON.stringify({ type: event, timestamp: createdAt.toISOString(), data });
    return urls.map((url) => ({ id: webhookId(), ...(url === undefined ? {} : { url }), event, payload, createdAt }));
  }
  return {
    ended(task, outcome, seq, startedAt) {
      const urls = targets(task.agent, "task.finished");
      if (urls.length === 0) return undefined;
      return build("task.finished", urls, { task: endedTask(task, outcome, seq, startedAt) });
    },
    waiting(task, requests) {
      const urls = targets(task.agent, "task.waiting");
      if (urls.length === 0) return undefined;
      return build("task.waiting", urls, { task, pending: pendingOf(requests) });
    },
    written() {
      options.onWritten?.();
    },
  };
}
