/**
 * AG-UI (`@ag-ui/core` / `@ag-ui/client` 1.0): `POST /ag-ui/:agent` (and `POST /ag-ui`, the
 * default agent) takes a `RunAgentInput` and answers with the run's AG-UI events over Server-Sent
 * Events, so an AG-UI front-end (CopilotKit, `HttpAgent`, …) drives an agentkit agent.
 *
 * A thin adapter over the runner, the store and the live feed: a run is an agentkit task (or, for
 * a run that resumes an interrupt, the continuation of one), watchable and cancellable on every
 * other endpoint, under the same keys and tenants.
 *
 * - `threadId` is an agentkit thread of the same id, made on first use and owned by the caller
 *   (another key's thread is a 404). Its history is the server's: the run's input is the *last*
 *   message, which must be a user message; earlier messages (a front-end resends the whole
 *   conversation every time) are not read, so nothing is doubled.
 * - A task that waits for a person ends the run with `RUN_FINISHED` and the interrupt outcome; the
 *   next run on the thread answers with `resume` entries (approve/reject, or an answer), and streams
 *   the same task going on.
 * - `tools` (front-end tools), `context`, `state` and `forwardedProps` are accepted and not used:
 *   an agent runs with its own configured tools.
 *
 * register.ts puts the routes on the app; this module, their handlers, is loaded on the first
 * AG-UI request.
 */
import type { Context, MiddlewareHandler } from "hono";
import type { Agent } from "../../agents/pool.ts";
import { AgentkitError, errorMessage, isTransientStoreFailure } from "../../errors.ts";
import { INVALID_TEXT, isValidText, MAX_INPUT_CHARS } from "../../protocol/limits.ts";
import { type Task, type Thread, UNFINISHED_STATUSES } from "../../protocol/task.ts";
import { admitTask } from "../../tasks/runner.ts";
import type { AppDeps } from "../../server/app.ts";
import { canControl, canSeeThread, requireControl, type Principal } from "../../server/auth.ts";
import { jsonBody } from "../../server/validation.ts";
import { RunAgentInputBody } from "./schemas.ts";
import type { Decision } from "../../tasks/interaction.ts";
import { readOpenCalls, toolCallIdOf, type OpenCall } from "./events.ts";
import { agUiStream } from "./stream.ts";
import { newTaskId } from "../../tasks/task-id.ts";
import { threadNamed } from "../../threads/client-thread.ts";

export { RunTranslator, openCallsOf, toolCallIdOf } from "./events.ts";
export { RunAgentInputBody } from "./schemas.ts";

// The body's schema (RunAgentInputBody) is in schemas.ts, beside its documented form.

/** A conversation resent in full: deeper and larger than a task body, bounded all the same. */
const STRUCTURE = { maxDepth: 64, maxTokens: 200_000 };
/** The most tasks of a thread looked at for a busy or waiting one. */
const THREAD_TASKS = 200;
/** What an abandoned question is answered with (the model reads it as the tool's result). */
const DISMISSED_ANSWER = "(no answer: the user dismissed the question)";

export type AppEnv = { Variables: { principal: Principal } };

/** The handlers of `POST /ag-ui` and `POST /ag-ui/:agent` (register.ts registers them, and loads this module on the first AG-UI request). */
export interface AgUiHandlers {
  /** The body: a `RunAgentInput`, read and checked (after the body-size limit), as `c.req.valid("json")`. */
  body: MiddlewareHandler<AppEnv, string, { in: { json: unknown }; out: { json: RunAgentInputBody } }>;
  /** The run, on `agentName` (undefined: the default agent). */
  run(c: Context<AppEnv>, input: RunAgentInputBody, agentName: string | undefined): Promise<Response>;
}

export function createAgUiHandlers(deps: AppDeps): AgUiHandlers {
  const { store, runner, agents, logger } = deps;
  const now = deps.now ?? (() => new Date());
  const body = jsonBody<typeof RunAgentInputBody, AppEnv>(RunAgentInputBody, { ...STRUCTURE, hint: "a RunAgentInput" });
  return { body, run };

  async function run(c: Context<AppEnv>, input: RunAgentInputBody, agentName: string | undefined): Promise<Response> {
    const principal = c.get("principal");
    requireControl(principal);
    const agent = agentName === undefined ? agents.defaultAgent : agents.get(agentName);
    if (!agent) {
      const known = agents.list().map((candidate) => candidate.definition.name).join(", ");
      throw new AgentkitError("not_found", `No agent '${agentName}'; known agents: ${known}`);
    }
    const resume = input.resume ?? [];
    if (resume.length > 0) return resumeRun(c, principal, input, resume);

    const text = lastUserText(input);
    // An existing thread is read and its busy policy applied first, as REST does (an `interrupt`
    // frees the queue before the new run is counted); a new thread is made only once the run is
    // admitted, so a refused first run (queue full) leaves no thread behind.
    const existing = await existingThread(input.threadId, principal);
    if (existing) {
      const unfinished = await store.threadTasks(existing.id, { limit: THREAD_TASKS, statuses: UNFINISHED_STATUSES });
      const waiting = unfinished.find((task) => task.status === "waiting");
      if (waiting) {
        throw new AgentkitError(
          "conflict",
          `Thread ${existing.id} waits for a person (task ${waiting.id}): answer its interrupts with RunAgentInput.resume first`,
        );
      }
      if (unfinished.length > 0) {
        // A thread's tasks run one at a time: by default this one runs after (enqueue; `steer` too —
        // an AG-UI run is a run of its own). `reject` refuses; `interrupt` cancels the earlier ones.
        const policy = agent.definition.on_busy;
        if (policy === "reject") {
          throw new AgentkitError("conflict", `Thread ${existing.id} is busy: task ${unfinished[0]!.id} is ${unfinished[0]!.status} (on_busy: reject)`);
        }
        if (policy === "interrupt") for (const task of [...unfinished].reverse()) await runner.cancel(task.id);
      }
    }
    let thread = existing;
    const task = await admitTask(runner, async () => {
      thread ??= await threadFor(input.threadId, principal);
      return store.createTask({
        id: newTaskId(),
        owner: principal.id,
        agent: agent.definition.name,
        input: text,
        metadata: { ag_ui: { thread_id: input.threadId, run_id: input.runId } },
        createdAt: now(),
        threadId: thread.id,
      });
    });
    logger.info("ag-ui: run started", { task: task.id, thread: thread!.id, run: input.runId, agent: agent.definition.name });
    return stream(c, input, task, agent, { after: 0, submit: () => runner.submit(task), mayWait: false });
  }

  /**
   * A run that answers the interrupts of the thread's waiting task: each entry decides one of its
   * calls (as `POST /tasks/:id/approvals|answers` would), and the run streams the task from there.
   * Entries that name no open call are skipped (AG-UI: an unrecognised entry is not a failure); a
   * call left without an entry keeps waiting, and the run ends with the interrupt outcome again.
   */
  async function resumeRun(c: Context<AppEnv>, principal: Principal, input: RunAgentInputBody, resume: NonNullable<RunAgentInputBody["resume"]>) {
    if (!deps.interaction) throw new AgentkitError("not_implemented", "Approvals and answers are not available on this server");
    const thread = await store.getThread(input.threadId);
    if (!thread || !canSeeThread(principal, thread)) throw new AgentkitError("not_found", `No thread with id '${input.threadId}'`);
    const unfinished = await store.threadTasks(thread.id, { limit: THREAD_TASKS, statuses: UNFINISHED_STATUSES });
    const task = unfinished.find((candidate) => candidate.status === "waiting");
    if (!task || !canControl(principal, task)) {
      throw new AgentkitError("conflict", `Nothing on thread ${thread.id} waits for a decision${unfinished[0] ? ` (task ${unfinished[0].id} is ${unfinished[0].status})` : ""}`);
    }
    const agent = agents.get(task.agent);
    const after = task.last_seq;
    const open = await readOpenCalls(store, task.id);
    const byInterrupt = new Map<string, OpenCall>();
    for (const call of open) {
      byInterrupt.set(toolCallIdOf(task.id, call.callId), call);
      byInterrupt.set(call.callId, call); // a client that kept the plain call id
    }
    // One warn line per request for what was skipped, however many entries: a resume of 1,000
    // made-up interrupts wrote 1,000 lines. A call decided by an earlier entry is not decided again.
    const skipped: string[] = [];
    const refused: string[] = [];
    const decided = new Set<string>();
    for (const entry of resume) {
      const call = byInterrupt.get(entry.interruptId);
      if (!call || decided.has(call.callId)) {
        skipped.push(entry.interruptId);
        continue;
      }
      decided.add(call.callId);
      try {
        await deps.interaction.decide(task.id, principal.id, decisionOf(call, entry));
      } catch (error) {
        // Decided meanwhile by someone else (409), or no longer waiting (404): the stream shows what happened.
        if (error instanceof AgentkitError && (error.code === "conflict" || error.code === "not_found")) {
          refused.push(`${entry.interruptId}: ${error.message}`);
          continue;
        }
        throw error;
      }
    }
    if (skipped.length > 0) {
      logger.warn("ag-ui: resume entries name no open interrupt (or one already decided); skipped", { task: task.id, count: skipped.length, first: skipped.slice(0, 3) });
    }
    if (refused.length > 0) logger.warn("ag-ui: resume entries could not be applied", { task: task.id, count: refused.length, first: refused.slice(0, 3) });
    logger.info("ag-ui: run resumed", { task: task.id, thread: thread.id, run: input.runId });
    return stream(c, input, task, agent, { after, mayWait: true });
  }

  function stream(c: Context<AppEnv>, input: RunAgentInputBody, task: Task, agent: Agent | undefined, how: { after: number; submit?: () => void; mayWait: boolean }) {
    return agUiStream({
      store,
      feed: deps.feed,
      runner,
      logger,
      task,
      threadId: input.threadId,
      runId: input.runId,
      model: agent?.definition.model,
      after: how.after,
      submit: how.submit,
      mayWait: how.mayWait,
      signal: c.req.raw.signal,
      slowClientBytes: deps.slowClientBytes,
      slowClientGraceMs: deps.slowClientGraceMs,
      streams: deps.streams,
      follow: deps.follow,
    });
  }

  /** The caller's thread `threadId` if it exists (another key's is a 404); undefined if there is none yet. */
  async function existingThread(threadId: string, principal: Principal): Promise<Thread | undefined> {
    let thread: Thread | undefined;
    try {
      thread = await store.getThread(threadId);
    } catch (error) {
      if (isTransientStoreFailure(error)) throw new AgentkitError("unavailable", `Could not read thread '${threadId}': the data store is unavailable; try again shortly`);
      throw error;
    }
    if (thread && !canSeeThread(principal, thread)) throw new AgentkitError("not_found", `No thread with id '${threadId}'`);
    return thread;
  }

  /** The thread of `threadId`, made for the caller on first use; another key's thread (or task id) is a 404. */
  async function threadFor(threadId: string, principal: Principal): Promise<Thread> {
    let named: Awaited<ReturnType<typeof threadNamed>>;
    try {
      named = await threadNamed(store, threadId, principal, now());
    } catch (error) {
      if (isTransientStoreFailure(error)) throw new AgentkitError("unavailable", `Could not read or create thread '${threadId}': the data store is unavailable; try again shortly`);
      throw new AgentkitError("internal", `Could not create thread '${threadId}': ${errorMessage(error)}`);
    }
    if ("thread" in named) return named.thread;
    if (named.refused === "unfinished") {
      throw new AgentkitError("conflict", `threadId '${threadId}' is task ${named.task.id}, which has not ended (${named.task.status}): run again once it has`);
    }
    throw new AgentkitError("not_found", `No thread with id '${threadId}'`);
  }
}

/** The input of a run: the last message, a user message, as text (the text parts of a multi-part one). */
function lastUserText(input: RunAgentInputBody): string {
  const last = input.messages.at(-1);
  if (!last || last.role !== "user") {
    throw new AgentkitError("validation_failed", "The last message must be a user message (the run's input); or answer interrupts with resume", {
      details: [{ path: "messages", message: "must end with a user message" }],
    });
  }
  const content = last.content;
  const text = typeof content === "string" ? content : (content ?? []).filter((part) => part.type === "text").map((part) => part.text ?? "").join("");
  if (text.trim() === "") {
    throw new AgentkitError("validation_failed", "The last user message has no text", { details: [{ path: `messages.${input.messages.length - 1}.content`, message: "must have text" }] });
  }
  if (text.length > MAX_INPUT_CHARS) {
    throw new AgentkitError("validation_failed", `The last user message is longer than ${MAX_INPUT_CHARS} characters`, {
      details: [{ path: `messages.${input.messages.length - 1}.content`, message: "too long" }],
    });
  }
  if (!isValidText(text)) {
    throw new AgentkitError("validation_failed", `The last user message ${INVALID_TEXT}`, { details: [{ path: `messages.${input.messages.length - 1}.content`, message: "not valid Unicode" }] });
  }
  return text;
}

/**
 * What a resume entry decides. An approval: `resolved` approves unless the payload says
 * `approved: false` (or is `false`), which rejects with the payload's `reason`; `cancelled`
 * rejects. A question: `resolved` answers with the payload (a string, or `{text}`); `cancelled`
 * answers that the user dismissed it.
 */
export function decisionOf(call: OpenCall, entry: { status: "resolved" | "cancelled"; payload?: unknown }): Decision {
  const payload = entry.payload;
  const object = typeof payload === "object" && payload !== null ? (payload as Record<string, unknown>) : {};
  if (call.kind === "approval") {
    if (entry.status === "cancelled") return { kind: "reject", callId: call.callId, reason: "The user dismissed the approval" };
    const approved = payload === false ? false : object.approved !== false;
    if (approved) return { kind: "approve", callId: call.callId };
    const reason = typeof object.reason === "string" && object.reason !== "" ? object.reason : undefined;
    return { kind: "reject", callId: call.callId, ...(reason ? { reason } : {}) };
  }
  if (entry.status === "cancelled") return { kind: "answer", callId: call.callId, text: DISMISSED_ANSWER };
  const text = typeof payload === "string" ? payload : typeof object.text === "string" ? object.text : typeof object.answer === "string" ? object.answer : JSON.stringify(payload ?? "");
  return { kind: "answer", callId: call.callId, text };
}
