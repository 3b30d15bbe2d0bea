/**
 * People in the loop: deciding approvals, answering questions, and sending a task messages
 * (steering) — from the WebSocket or REST, on any node, with nothing held in memory in between.
 *
 * - A decision (`approve`, `reject`, `answer`, or a wait that timed out) is written by whichever
 *   node receives it, straight into the waiting task's log (`store.appendWhileWaiting`): a durable
 *   `approval_decided` / `answer` event, who decided, and — once no call of the task waits any
 *   more — the task is queued again in the same transaction. The next run (any worker) resumes it
 *   from its log with the decisions (src/engine/resume.ts). Two people deciding at once: one write
 *   lands, the other re-reads the log and gets "already decided".
 * - A message for the task is kept in the store's inbox (`store.addInput`) and its run is told;
 *   the run adds it to the conversation before its next model step, as a durable `user_input`.
 * - A wait that times out (the agent's `approval_timeout_ms`) is decided `timed_out` (the model
 *   reads a `tool_error` and goes on) or fails the task, per the agent's `on_approval_timeout`.
 *
 * Rights are checked by the caller (the task is one the principal may control).
 */
import type { AgentPool } from "../agents/pool.ts";
import type { LiveFeed } from "../bus/live-feed.ts";
import { resumeFromStore } from "../engine/resume.ts";
import type { PendingToolCall } from "../engine/react.ts";
import { AgentkitError, errorMessage } from "../errors.ts";
import type { Logger } from "../lib/logger.ts";
import type { StepEvent } from "../protocol/events.ts";
import { MAX_HUMAN_TEXT_CHARS, MAX_REASON_CHARS, stepFrame } from "../protocol/frames.ts";
import { INVALID_TEXT, isValidText } from "../protocol/limits.ts";
import { isTerminal, type Task } from "../protocol/task.ts";
import type { StoredEvent, TaskStore } from "../store/store.ts";
import type { TaskRunner } from "./runner.ts";

export type Decision =
  | { kind: "approve"; callId: string }
  | { kind: "reject"; callId: string; reason?: string }
  | { kind: "answer"; callId: string; text: string };

export interface Interaction {
  /** Decides one waiting call of `task` as `by`. Throws `not_found`, `conflict` or `bad_request`. */
  decide(taskId: string, by: string, decision: Decision): Promise<Task>;
  /** Sends the task a message; returns the input's id. Throws `conflict` when the task has ended. */
  input(taskId: string, by: string, text: string): Promise<{ inputId: string }>;
  /** Decides (or fails) the waits that timed out. Called every few seconds. */
  expireWaits(): Promise<void>;
}

export interface InteractionOptions {
  store: TaskStore;
  feed: LiveFeed;
  runner: TaskRunner;
  agents: AgentPool;
  logger: Logger;
  /** Cluster mode: the nodes' followers publish what is written here (from the log). */
  cluster: boolean;
  now?: () => Date;
}

/** Messages that may wait for a task's next model step (`input`); more get 429 `queue_full`. */
export const MAX_PENDING_INPUTS = 32;

/** How long a decision for a task that is about to wait (its run is parking it) is retried. */
const SETTLE_MS = 5000;

export function createInteraction(options: InteractionOptions): Interaction {
  const { store, feed, runner, agents, logger } = options;
  const now = options.now ?? (() => new Date());
  /** One decision at a time per task on this node (other nodes race through the store's condition). */
  const chains = new Map<string, Promise<unknown>>();
  function serialised<T>(taskId: string, operation: () => Promise<T>): Promise<T> {
    const previous = chains.get(taskId) ?? Promise.resolve();
    const result = previous.then(operation, operation);
    const settled = result.catch(() => {});
    chains.set(taskId, settled);
    void settled.then(() => {
      if (chains.get(taskId) === settled) chains.delete(taskId);
    });
    return result;
  }

  /**
   * Writes `events` (built once the next seq is known) to a waiting task: queued again when
   * `requeue`. On one node the frames are published here (the tail opened first, so a watcher
   * joining meanwhile gets each once); in a cluster the followers publish them from the log.
   */
  async function write(task: Task, build: (firstSeq: number) => StoredEvent[], requeue: boolean): Promise<boolean> {
    const events = build(task.last_seq + 1);
    const local = !options.cluster && !feed.tail(task.id);
    if (local) feed.open(task.id, task.last_seq);
    let written = false;
    try {
      written = await store.appendWhileWaiting(task.id, events, requeue);
      if (written && !options.cluster) for (const event of events) feed.publish(task.id, event.seq, event.frame);
    } finally {
      // Queued again: the runner takes the tail over (`track` keeps an open one) — on one node the
      // resubmit below runs before anything else can publish.
      if (local && !(written && requeue)) feed.close(task.id);
    }
    if (written && requeue) {
      const queued = await store.getTask(task.id);
      if (queued?.status === "queued") runner.resubmit(queued);
      else if (local) feed.close(task.id);
    }
    return written;
  }

  function frames(firstSeq: number, events: readonly StepEvent[]): StoredEvent[] {
    return events.map((event, index) => ({ seq: firstSeq + index, frame: JSON.stringify(stepFrame(firstSeq + index, event, now())) }));
  }

  /** The calls of `task` that wait for a person, from its log (undefined: the log says it has ended). */
  async function awaitingCalls(task: Task): Promise<{ awaiting: PendingToolCall[]; decided: ReadonlySet<string> } | undefined> {
    const state = await resumeFromStore(store, task);
    if (state.finished) return undefined;
    // Decided calls, those still running and those whose result is stored (a decision racing
    // another one may read the log after the winner's call has run).
    return { awaiting: state.awaiting, decided: state.decided };
  }

  async function decideOnce(taskId: string, by: string, decision: Decision): Promise<Task> {
    const deadline = performance.now() + SETTLE_MS;
    for (let attempt = 0; ; attempt++) {
      const task = await store.getTask(taskId);
      if (!task) throw new AgentkitError("not_found", `No task with id '${taskId}'`);
      if (isTerminal(task.status)) throw new AgentkitError("conflict", `Task ${taskId} has ended (${task.status}); nothing waits for a decision`);
      const calls = await awaitingCalls(task);
      if (!calls) throw new AgentkitError("conflict", `Task ${taskId} has ended; nothing waits for a decision`);
      const pending = calls.awaiting.find((candidate) => candidate.call.id === decision.callId);
      if (!pending) {
        if (calls.decided.has(decision.callId)) {
          throw new AgentkitError("conflict", `Call '${decision.callId}' of task ${taskId} is already decided`);
        }
        throw new AgentkitError("not_found", `No call '${decision.callId}' of task ${taskId} waits for a decision`);
      }
      const wanted = decision.kind === "answer" ? "question" : "approval";
      if (pending.awaiting !== wanted) {
        throw new AgentkitError(
          "bad_request",
          pending.awaiting === "question"
            ? `Call '${decision.callId}' is a question: answer it ({"type":"answer","call_id","text"})`
            : `Call '${decision.callId}' waits for an approval: approve or reject it`,
        );
      }
      if (task.status !== "waiting") {
        // The run that asked is parking the task right now (or it is being resumed to wait again).
        if (performance.now() > deadline) throw new AgentkitError("conflict", `Task ${taskId} is ${task.status}, not waiting; try again`);
        await Bun.sleep(Math.min(25 * (attempt + 1), 200));
        continue;
      }
      const step = pending.step;
      const { call } = pending;
      const event: StepEvent =
        decision.kind === "answer"
          ? { event_type: "answer", step, data: { id: call.id, name: call.name, text: decision.text, by } }
          : {
              event_type: "approval_decided",
              step,
              data: {
                id: call.id,
                name: call.name,
                decision: decision.kind === "approve" ? "approved" : "rejected",
                ...(decision.kind === "reject" && decision.reason ? { reason: decision.reason } : {}),
                by,
              },
            };
      const requeue = calls.awaiting.length === 1;
      if (await write(task, (seq) => frames(seq, [event]), requeue)) {
        logger.info("decided", { task: taskId, call: call.id, decision: decision.kind, by });
        return (await store.getTask(taskId)) ?? task;
      }
      // Someone else wrote first (another decision, a cancel): read again.
      if (attempt > 20) throw new AgentkitError("conflict", `Task ${taskId} changed while deciding; try again`);
    }
  }

  async function expireOne(task: Task): Promise<void> {
    const agent = agents.get(task.agent);
    const calls = await awaitingCalls(task);
    if (!calls) return;
    if (!agent || agent.definition.on_approval_timeout === "fail" || calls.awaiting.length === 0) {
      const totals = { steps: task.total_steps, inputTokens: task.input_tokens, outputTokens: task.output_tokens, costUsd: task.cost_usd };
      const waited = agent ? `${agent.definition.approval_timeout_ms} ms` : "its time";
      await runner.endWaiting(task, {
        kind: "wait_timed_out",
        message: `Nobody decided ${calls.awaiting.map((pending) => `'${pending.call.name}' (${pending.call.id})`).join(", ") || "the waiting calls"} within ${waited}`,
        totals,
      });
      return;
    }
    const events: StepEvent[] = calls.awaiting.map(({ step, call, awaiting }) =>
      awaiting === "question"
        ? { event_type: "answer", step, data: { id: call.id, name: call.name, text: null, by: "system" } }
        : { event_type: "approval_decided", step, data: { id: call.id, name: call.name, decision: "timed_out", by: "system" } },
    );
    if (await write(task, (seq) => frames(seq, events), true)) logger.info("wait timed out", { task: task.id, calls: events.length });
  }

  let expiring = false;
  return {
    async decide(taskId, by, decision) {
      // The bounds REST and the WebSocket check in their schemas hold for A2A and AG-UI too (a
      // rejection, not a throw: a WebSocket frame's answer is an error frame, not a dead socket).
      if (decision.kind === "answer") checkHumanText(decision.text, "answer", MAX_HUMAN_TEXT_CHARS);
      if (decision.kind === "reject" && decision.reason !== undefined) checkHumanText(decision.reason, "reason", MAX_REASON_CHARS);
      return serialised(taskId, () => decideOnce(taskId, by, decision));
    },

    async input(taskId, by, text) {
      checkHumanText(text, "text", MAX_HUMAN_TEXT_CHARS);
      if (text === "") throw new AgentkitError("validation_failed", "A message must not be empty", { details: [{ path: "text", message: "must not be empty" }] });
      const task = await store.getTask(taskId);
      if (!task) throw new AgentkitError("not_found", `No task with id '${taskId}'`);
      const inputId = `in_${crypto.randomUUID()}`;
      const ended = (status?: string) => new AgentkitError("conflict", `Task ${taskId} has ended${status ? ` (${status})` : ""}; start a new task (in its thread) instead`);
      if (isTerminal(task.status)) throw ended(task.status);
      // What a client can store is bounded: messages wait at most MAX_PENDING_INPUTS deep (a
      // client sending faster than the model reads is told to slow down, nothing is dropped).
      if ((await store.pendingInputCount(taskId)) >= MAX_PENDING_INPUTS) {
        throw new AgentkitError("queue_full", `Task ${taskId} already has ${MAX_PENDING_INPUTS} messages waiting for its next step; try again later`);
      }
      if (!(await store.addInput(taskId, { id: inputId, text, by, createdAt: now() }))) {
        // It ended after the read above: say how, as the store has it now.
        const current = await store.getTask(taskId).catch(() => undefined);
        throw ended(current && isTerminal(current.status) ? current.status : undefined);
      }
      runner.notifyInput(taskId);
      return { inputId };
    },

    async expireWaits() {
      if (expiring) return;
      expiring = true;
      try {
        for (const task of await store.expiredWaits(now(), 50)) {
          await serialised(task.id, () => expireOne(task)).catch((error) =>
            logger.warn("could not end a wait that timed out", { task: task.id, error: errorMessage(error) }),
          );
        }
      } catch (error) {
        logger.warn("could not look for waits that timed out", { error: errorMessage(error) });
      } finally {
        expiring = false;
      }
    },
  };
}

/** A person's text within its bound and valid Unicode, else 400 `validation_failed` naming it. */
function checkHumanText(text: string, path: string, maxChars: number): void {
  if (text.length > maxChars) {
    throw new AgentkitError("validation_failed", `'${path}' is longer than ${maxChars} characters`, { details: [{ path, message: `at most ${maxChars} characters` }] });
  }
  if (!isValidText(text)) throw new AgentkitError("validation_failed", `'${path}' ${INVALID_TEXT}`, { details: [{ path, message: "not valid Unicode" }] });
}
