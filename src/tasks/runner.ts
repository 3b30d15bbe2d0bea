/**
 * The runner: every task runs exactly once, whether zero or a thousand clients watch it.
 *
 * - One node (SQLite): a concurrency cap with a FIFO queue in memory (status `queued`), bounded.
 * - A cluster (PostgreSQL, `cluster` option): the queue is the database's; every worker node claims
 *   tasks with a lease and a fencing token (`attempt`), renews its leases, and stops a run at once
 *   when its lease is lost — every write of a run is fenced, so a run that was taken over can
 *   neither store nor publish anything more. A task whose node died is taken over and resumed from
 *   its log (see src/engine/resume.ts), or ended `interrupted`, per its agent's `on_interrupt`.
 * - For each event the engine yields: assign the next `seq`, store it, then publish it (durable
 *   first), strictly in order — all writes of a task go through one chain. Events that come in a
 *   burst are stored in one transaction and published together (see `flush`).
 * - `cancel` is idempotent; a queued task that is cancelled never starts; the first terminal state
 *   wins (the store refuses a second one). Abort reaches the model call and every tool, and the
 *   runner does not wait for a tool that ignores it.
 */
import type { Agent, AgentPool } from "../agents/pool.ts";
import { modelSettingsOf, needsApproval, type AgentDefinition } from "../agents/agent.ts";
import { compileOutputSchema } from "../engine/structured-output.ts";
import { QUESTION_TOOLS } from "../tools/ask-user.ts";
import type { Tool } from "../tools/tool.ts";
import type { LiveFeed } from "../bus/live-feed.ts";
import type { Follower } from "../cluster/follower.ts";
import { runReAct, type FinalAnswerCheck, type HumanInput, type ReActEvent, type ReActOptions, type ReActStop } from "../engine/react.ts";
import { resumeFromStore, resumedEventFor } from "../engine/resume.ts";
import { isIdempotentTool } from "../engine/tool-execution.ts";
import { AgentkitError, errorMessage, isTransientStoreFailure } from "../errors.ts";
import { raceAbort } from "../lib/abort.ts";
import type { Logger } from "../lib/logger.ts";
import { deltaFrame, resultFrame, stepFrame } from "../protocol/frames.ts";
import { createTurnCache, threadHistory } from "../threads/history.ts";
import type { ResumeReason, StepEvent } from "../protocol/events.ts";
import { isTerminal, type Task } from "../protocol/task.ts";
import { FencedError, type Claim, type ClusterSignal, type ClusterStore, type StoredEvent, type TaskOutcome, type TaskStore } from "../store/store.ts";
import { AgentNotConfiguredError, TaskAbort, toOutcome, toResultData, type RunEnd, type RunTotals } from "./outcome.ts";
import { RunQueue } from "./run-queue.ts";
import { toTaskError } from "./task-error.ts";
import { noTelemetry, type RunEndKind, type Telemetry } from "../telemetry/telemetry.ts";
import { waitingTask, type TaskWebhooks } from "../webhooks/events.ts";

/**
 * Engine events handled between two turns given to the event loop. (A time budget per turn was
 * tried instead: it cut turns at 100 watchers but multiplied them at 1,000–5,000, where one publish
 * alone takes milliseconds — +20–40% server CPU per delivery in the short-burst bench.) 64 events of
 * an instant model take well under a millisecond; each turn ends with a flush (one commit).
 */
const YIELD_EVERY = 64;
/**
 * …or fewer, once the events since the last turn made this many characters of frames: big frames
 * cost in proportion (stringified, stored, published; a model's megabyte of tool-call arguments is
 * parsed too) — 64 steps of 1 MB frames held the loop 200–460 ms between turns.
 */
const YIELD_CHARS = 1 << 20;
/**
 * Most events stored in one transaction. A commit's cost here is mostly per page written to the
 * WAL, not per event: 16 per commit spent ~40% of an event's CPU in COMMIT on a 2-vCPU VM, 64 about
 * a quarter less in all (bench/inprocess.ts, 200-event tasks).
 */
const MAX_BATCH = 64;

/**
 * A run cut because the store could not write (a full disk) is taken up again after this, then
 * after twice as long each time the store still refuses, up to `STORE_RETRY_MAX_MS`.
 */
const STORE_RETRY_FIRST_MS = 1000;
const STORE_RETRY_MAX_MS = 30_000;

/** How long a task counted for the queue limit may take to be submitted before the count forgets it (`admissionTtlMs`). */
const IN_FLIGHT_MS = 30_000;
/** How long a shutdown waits for a claim under way (a database that does not answer: the lease runs out instead). */
const SHUTDOWN_CLAIM_WAIT_MS = 5000;
/** A cluster node that finds the queue full by a count older than this counts again before it refuses. */
const RECOUNT_MS = 100;

/**
 * A promise that resolves `false` when the current event-loop turn ends: one `setImmediate` per
 * turn, shared by every task, instead of one per engine event (the runner races each event against
 * it to decide whether to flush now).
 */
let turnEnd: Promise<false> | undefined;

/** Resolves `false` at the end of this event-loop turn. */
function endOfTurn(): Promise<false> {
  if (!turnEnd) {
    const { promise, resolve } = Promise.withResolvers<false>();
    turnEnd = promise;
    setImmediate(() => {
      turnEnd = undefined;
      resolve(false);
    });
  }
  return turnEnd;
}

/**
 * Stores a new task under the queue's limit: `ensureCapacity` (429 when full), then `create`; one
 * that could not be stored is released from the count (`releaseCapacity`). The caller submits it.
 */
export async function admitTask<T>(runner: Pick<TaskRunner, "ensureCapacity" | "releaseCapacity">, create: () => Promise<T>): Promise<T> {
  await runner.ensureCapacity();
  try {
    return await create();
  } catch (error) {
    runner.releaseCapacity(); // not stored: not queued
    throw error;
  }
}

export interface TaskRunner {
  /**
   * Rejects with `queue_full` (429) when a new task could not be queued; otherwise (in a cluster)
   * counts it as queued at once. Call it right before storing a new task, and `submit` the task once
   * stored — or `releaseCapacity` if storing it failed.
   */
  ensureCapacity(): Promise<void>;
  /** A task `ensureCapacity` counted was not stored after all: it is not counted any more. */
  releaseCapacity(): void;
  /** Takes a freshly created (queued) task; it starts when a slot is free (on any worker node). */
  submit(task: Task): void;
  /**
   * The task as this runner holds it while it is queued or running (status, started_at, last_seq,
   * totals kept current), or undefined once it ended or if this runner does not have it. Synchronous
   * and without a store read: a watcher's connect (WebSocket, SSE) needs no `store.getTask` — nor
   * its row validation — for a live task. `last_seq` is the last *published* seq.
   */
  liveTask(taskId: string): Task | undefined;
  /**
   * Whether this runner publishes the task's frames now: from the moment it holds the task until its
   * end is published (or, in a cluster, its watchers are handed to the follower) — also while the
   * run is ending, when `liveTask` no longer has it. The follower must not take such a task's tail.
   */
  publishes(taskId: string): boolean;
  /**
   * A waiting task was decided and queued again (`store.appendWhileWaiting` with `requeue`): run it
   * (on any worker node); the run resumes it from its log.
   */
  resubmit(task: Task): void;
  /** A person sent a message to this task (stored with `store.addInput`): its run reads it before its next model step. */
  notifyInput(taskId: string): void;
  /**
   * Ends a `waiting` task that no run holds (cancelled, or failed when its wait timed out): false,
   * writing nothing, when it is no longer waiting (decided meanwhile).
   */
  endWaiting(task: Task, end: Exclude<RunEnd, { kind: "waiting" }>): Promise<boolean>;
  /**
   * Cancels a task; idempotent. Resolves with the task as it ended (or, in a cluster, as it is
   * once the node running it has ended it), or undefined if unknown.
   */
  cancel(taskId: string): Promise<Task | undefined>;
  /**
   * At start-up (one node): queued tasks of a previous process are queued again; running ones are
   * resumed from their log, or ended `interrupted` (per their agent's `on_interrupt`). In a
   * cluster this starts claiming: other nodes' tasks are taken over only when their lease expires.
   */
  recover(): Promise<{ requeued: number; interrupted: number; resumed: number }>;
  /**
   * Stops taking work. A running task whose agent resumes (`on_interrupt: "resume"`) is handed
   * over: its run stops with what it stored, and it resumes on another node (or at the next start);
   * otherwise it ends `interrupted`.
   */
  shutdown(): Promise<void>;
  stats(): { running: number; queued: number };
  /**
   * Cluster: tells every node (this one too) that a client cancelled the MCP call with this
   * registry key, for the node that holds it; on one node it does nothing (the call is local).
   */
  announceCallCancel(key: string, reason: string): void;
  /** Listens for `announceCallCancel` from any node; returns the function that stops listening. */
  onCallCancel(listener: (key: string, reason: string) => void): () => void;
}

/** Cluster mode: the queue, leases and signals live in the database. */
export interface ClusterRunnerOptions {
  store: ClusterStore;
  /** This node's id (lease owner). */
  node: string;
  /** How long a claim or a renewal holds a task; renewed every third of it. */
  leaseMs: number;
  /** Safety net for lost notifications: try to claim (and catch followed tasks up) this often. */
  pollMs: number;
  /** Whether this node runs tasks (`--role all|worker`); an API node only queues and watches them. */
  worker: boolean;
  /** Watchers of tasks run elsewhere; the runner hands tails to it and takes them back. */
  follower: Follower;
}

export interface RunnerOptions {
  store: TaskStore;
  feed: LiveFeed;
  agents: AgentPool;
  logger: Logger;
  maxConcurrentTasks: number;
  maxQueuedTasks: number;
  /** How long a task admitted (`ensureCapacity`) and never submitted or released still counts as queued (default 30 s). */
  admissionTtlMs?: number;
  /** Cost in USD of the given usage on the agent's model, or null when it has no prices. */
  costOf?: (agent: Agent, usage: { inputTokens: number; outputTokens: number }) => number | null;
  now?: () => Date;
  cluster?: ClusterRunnerOptions;
  /** Task lifecycle, model and tool calls (metrics, traces). Default: none. */
  telemetry?: Telemetry;
  /** Webhooks written to the outbox with each task's end or wait (src/webhooks). Default: none. */
  webhooks?: TaskWebhooks;
}

interface ActiveTask {
  readonly task: Task;
  state: "queued" | "running";
  /** When it started running (what `markRunning` stored), or null while queued. */
  startedAt: string | null;
  readonly controller: AbortController;
  nextSeq: number;
  /** Numbered, not yet stored: stored and published together by `flush`. */
  buffer: StoredEvent[];
  readonly totals: RunTotals;
  finished: boolean;
  /** Every durable write of this task, in seq order. */
  writes: Promise<unknown>;
  readonly done: PromiseWithResolvers<void>;
  /** The run's fencing token: its writes are refused once another run has the task. */
  attempt?: number;
  /** Why this run resumes a task that an earlier run left (its events are in the log). */
  resume?: ResumeReason;
  /** The run was cut because the store could not write: it is taken up again once it can. */
  storeFailed?: boolean;
  /** People's inputs may be waiting in the store for this run (see `takeInputs`). */
  inputsPending: boolean;
  /** Inputs already in the conversation (never delivered twice). */
  consumedInputs: Set<string>;
  /** Inputs stored as `user_input` events, to delete from the store's inbox. */
  inputsToForget: string[];
  /** The run lost the task (fenced, or its lease could not be renewed): it writes nothing more. */
  lost: boolean;
  /** `performance.now()` until which the run's lease is known to hold (cluster mode). */
  leaseValidUntil: number;
  /** This run's `approval_requested` / `question` events (for a `task.waiting` webhook). */
  requests?: StepEvent[];
}

/** How a run ended, for telemetry. */
function runEndKind(published: boolean, runOnly: boolean, end: RunEnd | undefined): RunEndKind {
  if (published) return "finished";
  return !runOnly && end?.kind === "waiting" ? "waiting" : "released";
}

/** An abort that ends the run but not the task: no result is written. */
function endsRunOnly(end: RunEnd | undefined): boolean {
  return end?.kind === "aborted" && (end.abort.kind === "lost" || end.abort.kind === "handover");
}

const NO_INPUTS: readonly HumanInput[] = [];

/** What the model is told when its agent has an `output_schema`. */
function outputInstruction(check: FinalAnswerCheck & { schema?: unknown }): string {
  return `When you give your final answer, reply with only a JSON value (no prose, no code fence) that matches this JSON Schema:\n${JSON.stringify(check.schema ?? {})}`;
}

export function createRunner(options: RunnerOptions): TaskRunner {
  const { store, feed, agents, logger, cluster, webhooks } = options;
  const telemetry = options.telemetry ?? noTelemetry;
  const now = options.now ?? (() => new Date());
  const admissionTtlMs = options.admissionTtlMs ?? IN_FLIGHT_MS;
  const active = new Map<string, ActiveTask>();
  /** The turns of threads' completed tasks, rebuilt from their logs once (see `threadHistory`). */
  const turnCache = createTurnCache();
  /** Who hears of MCP calls cancelled on another node (`onCallCancel`). */
  const callCancelListeners = new Set<(key: string, reason: string) => void>();
  const queue = new RunQueue<ActiveTask>((entry) => entry.task.thread_id !== null && threadHeads.get(entry.task.thread_id) === entry.task.id);
  let running = 0;
  let closed = false;

  /** Appends a write to the task's chain; resolves or rejects with this write alone. */
  function write<T>(entry: ActiveTask, operation: () => Promise<T>): Promise<T> {
    const result = entry.writes.then(operation, operation);
    entry.writes = result.catch(() => {});
    return result;
  }

  /**
   * Starts holding a task. `inputsPending`: people's messages may already wait in the store for it
   * (a task that waited, or one this process did not see queued): its run reads the inbox before
   * its first step. A fresh task has none, so its start costs no inbox read; a message sent later
   * sets the flag (`notifyInput`, the `input` signal, a lease renewal).
   */
  function track(task: Task, inputsPending: boolean): ActiveTask {
    const entry: ActiveTask = {
      task,
      state: "queued",
      startedAt: task.started_at,
      controller: new AbortController(),
      nextSeq: task.last_seq + 1,
      buffer: [],
      totals: { steps: task.total_steps, inputTokens: task.input_tokens, outputTokens: task.output_tokens, costUsd: task.cost_usd },
      finished: false,
      writes: Promise.resolve(),
      done: Promise.withResolvers<void>(),
      lost: false,
      leaseValidUntil: Number.POSITIVE_INFINITY,
      inputsPending,
      consumedInputs: new Set(),
      inputsToForget: [],
    };
    active.set(task.id, entry);
    feed.open(task.id, task.last_seq);
    return entry;
  }

  /**
   * One node: the task each busy thread is on (running or waiting): a thread's tasks run one at a
   * time, in order (a cluster's claim query does the same across nodes).
   */
  const threadHeads = new Map<string, string>();

  /** Its thread is busy with another task (running, or waiting for people). */
  const threadBusy = (entry: ActiveTask) => {
    const head = entry.task.thread_id === null ? undefined : threadHeads.get(entry.task.thread_id);
    return head !== undefined && head !== entry.task.id;
  };

  function pump() {
    if (cluster) return void claim();
    while (!closed && running < options.maxConcurrentTasks) {
      const entry = queue.take(threadBusy);
      if (!entry) return;
      if (entry.task.thread_id !== null) threadHeads.set(entry.task.thread_id, entry.task.id);
      start(entry);
    }
  }

  /** A thread's task ended (or is gone): the thread's next task may start. */
  function releaseThread(task: { id: string; thread_id: string | null }) {
    if (task.thread_id === null) return;
    if (threadHeads.get(task.thread_id) === task.id) {
      threadHeads.delete(task.thread_id);
      queue.threadFree(task.thread_id);
    }
    if (cluster) {
      // Its next task may be queued, claimable now on any worker.
      cluster.store.signal({ kind: "queued" }).catch(() => {});
    }
  }

  function start(entry: ActiveTask) {
    running++;
    entry.state = "running";
    // A queued task with events in its log waited for people and was decided: it goes on.
    if (!entry.resume && entry.task.last_seq > 0) entry.resume = "continued";
    telemetry.runStarted({ taskId: entry.task.id, agent: entry.task.agent, resume: entry.resume, attempt: entry.attempt });
    void run(entry)
      .catch((error) => {
        logger.error("runner: task crashed", { task: entry.task.id, error: String(error) });
        // Never left in `active` with nobody to end it (a cancel, a shutdown would wait on it forever).
        if (!entry.finished) return finish(entry, { kind: "error", error, totals: entry.totals });
      })
      .finally(() => {
        running--;
        pump();
      });
  }

  /** Numbers a step event and buffers it; `flush` stores and publishes it. */
  function bufferStep(entry: ActiveTask, event: StepEvent) {
    const seq = entry.nextSeq;
    const frame = JSON.stringify(stepFrame(seq, event, now()));
    // Taken once the frame is made: an event that cannot be written as JSON (it throws, and the run
    // fails) leaves no gap in the numbering, which would make the store refuse the task's end and
    // leave it `running` for good.
    entry.nextSeq++;
    entry.buffer.push({ seq, frame });
    if (event.event_type === "user_input") entry.inputsToForget.push(event.data.id);
    else if (webhooks && (event.event_type === "approval_requested" || event.event_type === "question")) (entry.requests ??= []).push(event);
  }

  /** The inputs people sent since the run last looked (read from the store only when told of some). */
  function takeInputs(entry: ActiveTask): readonly HumanInput[] | Promise<HumanInput[]> {
    if (!entry.inputsPending || entry.lost) return NO_INPUTS;
    entry.inputsPending = false;
    return readInputs(entry);
  }
  async function readInputs(entry: ActiveTask): Promise<HumanInput[]> {
    const inputs = await store.pendingInputs(entry.task.id);
    const fresh = inputs.filter((input) => !entry.consumedInputs.has(input.id));
    for (const input of fresh) entry.consumedInputs.add(input.id);
    return fresh.map((input) => ({ id: input.id, text: input.text, by: input.by }));
  }

  /** The run lost its task: abort it at once, and have it write nothing more. */
  function lose(entry: ActiveTask, why: string) {
    if (entry.lost) return;
    entry.lost = true;
    logger.warn("runner: this node lost a task; its run stops", { task: entry.task.id, attempt: entry.attempt, why });
    entry.controller.abort(new TaskAbort("lost", why));
  }

  /**
   * Stores the buffered events in one transaction, then publishes them: durable first, in order.
   * Batching matters: a transaction per event made SQLite's COMMIT most of the cost of an event,
   * and publishing a burst in one event-loop turn lets Bun coalesce the writes to each socket.
   */
  function flush(entry: ActiveTask): Promise<void> {
    if (entry.buffer.length === 0) return entry.writes.then(() => {});
    const batch = entry.buffer;
    entry.buffer = [];
    return write(entry, async () => {
      if (entry.lost) throw new FencedError(entry.task.id, entry.attempt ?? 0);
      try {
        await store.appendEvents(entry.task.id, batch, entry.attempt);
      } catch (error) {
        if (error instanceof FencedError) lose(entry, error.message);
        // Nothing of the batch was stored: number what comes next (the result) from its first seq.
        entry.buffer = [];
        entry.nextSeq = batch[0]!.seq;
        throw error;
      }
      for (const event of batch) feed.publish(entry.task.id, event.seq, event.frame);
      // The store writes (a task taken up again after it refused one, or started after it refused
      // its start): the next cut waits 1 s again.
      if (storeRetryDelays.size > 0) storeRetryDelays.delete(entry.task.id);
      if (entry.inputsToForget.length > 0) {
        // Stored as user_input events: the inbox may forget them (a resume skips them by id anyway).
        const ids = entry.inputsToForget;
        entry.inputsToForget = [];
        store.deleteInputs(entry.task.id, ids).catch(() => {});
      }
    });
  }

  /** Ends a run once. A task's end is stored with its result event atomically, then published. */
  async function finish(entry: ActiveTask, end: RunEnd | undefined): Promise<void> {
    if (entry.finished) return entry.done.promise;
    entry.finished = true;
    const taskId = entry.task.id;
    const runOnly = entry.lost || endsRunOnly(end);
    /** Whether this run stored and published the task's result; if not (cluster), the follower takes its watchers. */
    let published = false;
    /** The run's last events go into the store with its result (one commit); before any other end, alone. */
    const endsTask = !runOnly && end !== undefined && end.kind !== "waiting";
    try {
      // What happened before the end is recorded, then the end — unless the task is not ours.
      if (!entry.lost && !endsTask) {
        await flush(entry).catch((error) => {
          // The store could not write (a full disk): the task is taken up again from its log, and
          // is not parked without the request it waits for.
          if (isTransientStoreFailure(error)) entry.storeFailed = true;
          if (!(error instanceof FencedError)) logger.error("runner: could not store a task's last events", { task: taskId, error: String(error) });
        });
      }
      if (!runOnly && end?.kind === "waiting" && !entry.storeFailed) {
        // Nothing more runs until people decide: the task is parked, its run ends, no result.
        await write(entry, async () => {
          const agent = agents.get(entry.task.agent);
          const waitUntil = agent ? new Date(now().getTime() + agent.definition.approval_timeout_ms) : null;
          const hooks = webhooks?.waiting(
            waitingTask(entry.task, { startedAt: entry.startedAt, waitUntil, lastSeq: entry.nextSeq - 1, totals: entry.totals }),
            entry.requests ?? [],
          );
          if (await store.waitTask(taskId, waitUntil, entry.attempt, hooks, entry.totals)) {
            if (hooks) webhooks!.written();
            // Streams that end at "input required" hear of it now, here and (cluster) on every node.
            feed.parked(taskId);
            if (cluster) cluster.store.signal({ kind: "parked", taskId }).catch(() => {});
            logger.info("task waits for a person", { task: taskId, until: waitUntil?.toISOString() });
          }
        });
      } else if (endsTask) {
        await write(entry, async () => {
          // Taken once earlier writes have settled: one that failed dropped what was buffered after it.
          const before = entry.buffer;
          entry.buffer = [];
          const seq = entry.nextSeq++;
          const outcome = toOutcome(end as Exclude<RunEnd, { kind: "waiting" }>, now());
          const frame = JSON.stringify(resultFrame(seq, toResultData(taskId, outcome)));
          const hooks = webhooks?.ended(entry.task, outcome, seq, entry.startedAt);
          // The task's inbox is emptied with its end (`finishTask`): no `inputsToForget` to delete.
          if (await store.finishTask(taskId, outcome, seq, frame, entry.attempt, hooks, before)) {
            if (hooks) webhooks!.written();
            for (const event of before) feed.publish(taskId, event.seq, event.frame);
            feed.publish(taskId, seq, frame);
            published = true;
            reportEnd(entry.task, outcome, entry.startedAt);
            releaseThread(entry.task);
            logger.info("task finished", { task: taskId, status: outcome.status, stop_reason: outcome.stopReason });
          } else await reportRefusedEnd(taskId, seq);
        });
      }
    } catch (error) {
      if (error instanceof FencedError) lose(entry, error.message);
      else {
        if (isTransientStoreFailure(error)) entry.storeFailed = true;
        logger.error("runner: could not store the end of a task", { task: taskId, error: String(error) });
      }
    } finally {
      if (entry.state === "running") telemetry.runEnded(taskId, runEndKind(published, runOnly, end));
      active.delete(taskId);
      // A run that ended without ending the task leaves its watchers to the follower (cluster).
      if (cluster && !published) cluster.follower.adopt(taskId);
      else feed.close(taskId);
      if (entry.storeFailed && !entry.lost) {
        retryAfterStoreFailure(taskId, isCancelled(entry) || (end?.kind === "aborted" && end.abort.kind === "cancelled"));
      } else storeRetryDelays.delete(taskId);
      entry.done.resolve();
    }
  }

  /** A cancel whose end the store could not write: it is written once the store writes again. */
  function storeCannotEnd(): AgentkitError {
    return new AgentkitError("unavailable", "The data store cannot write; the task is cancelled once it can (try again later to see it)");
  }

  /** Whether a client's cancel is what stopped this run. */
  function isCancelled(entry: ActiveTask): boolean {
    const reason = entry.controller.signal.reason;
    return reason instanceof TaskAbort && reason.kind === "cancelled";
  }

  /**
   * Tasks whose run the store cut (one node: SQLite could not write — a full disk, an I/O error).
   * The store still says `running` and no run has them: each is taken up again from its log, as
   * after a restart (a `resumed` event with reason `store_failure`), once the store takes a write;
   * tried after 1 s, then twice as long each time (at most 30 s). One cancelled meanwhile (or
   * before its end could be stored) ends `cancelled` instead. A cluster needs none of this: the
   * task's lease runs out and a node takes it over.
   */
  const storeRetries = new Map<string, { timer: ReturnType<typeof setTimeout>; cancelled: boolean }>();
  /** The last wait before taking each such task up again (the backoff), until its end is stored. */
  const storeRetryDelays = new Map<string, number>();

  function retryAfterStoreFailure(taskId: string, cancelled: boolean) {
    if (closed || cluster) return;
    const pending = storeRetries.get(taskId);
    if (pending) {
      pending.cancelled ||= cancelled;
      return;
    }
    const last = storeRetryDelays.get(taskId);
    const delay = last === undefined ? STORE_RETRY_FIRST_MS : Math.min(STORE_RETRY_MAX_MS, last * 2);
    storeRetryDelays.set(taskId, delay);
    const timer = setTimeout(() => void retryStored(taskId), delay);
    storeRetries.set(taskId, { timer, cancelled });
    logger.warn("runner: the store could not write a task's events; it is taken up again once it can", { task: taskId, retry_in_ms: delay });
  }

  async function retryStored(taskId: string): Promise<void> {
    const pending = storeRetries.get(taskId);
    storeRetries.delete(taskId);
    if (!pending || closed || active.has(taskId)) return;
    let task: Task | undefined;
    try {
      task = await store.getTask(taskId);
    } catch {
      return retryAfterStoreFailure(taskId, pending.cancelled);
    }
    if (!task || active.has(taskId) || (task.status !== "running" && task.status !== "queued")) {
      storeRetryDelays.delete(taskId);
      return;
    }
    if (pending.cancelled) {
      // Its end as the client asked; if the store still refuses, `finish` schedules another try.
      const entry = track(task, true);
      entry.controller.abort(new TaskAbort("cancelled", "Cancelled by a client"));
      await finish(entry, { kind: "aborted", abort: new TaskAbort("cancelled", "Cancelled by a client"), totals: entry.totals });
      return pump(); // its thread's next task may start
    }
    if (task.status === "queued") {
      // Its start was refused (markRunning): it was next, and is again.
      queue.unshift(track(task, true));
      return pump();
    }
    const resumes = agents.get(task.agent)?.definition.on_interrupt === "resume";
    let attempt: number | undefined;
    if (resumes) {
      try {
        attempt = await store.takeOver(taskId);
      } catch (error) {
        if (!isTransientStoreFailure(error)) logger.error("runner: could not take a task up again", { task: taskId, error: errorMessage(error) });
        return retryAfterStoreFailure(taskId, false);
      }
      if (attempt === undefined) return void storeRetryDelays.delete(taskId); // not running any more
    }
    if (closed || active.has(taskId)) return;
    const entry = track(task, true);
    if (attempt === undefined) {
      await finish(entry, {
        kind: "interrupted",
        totals: entry.totals,
        message: "Interrupted: the store could not write this task's events while it ran",
      });
      return pump();
    }
    entry.attempt = attempt;
    entry.resume = "store_failure";
    logger.info("runner: the store writes again; a task it cut is taken up again", { task: taskId });
    // It waits for a slot like any task (its own went to the next one when it was cut), first in line.
    queue.unshift(entry);
    pump();
  }

  /**
   * The store kept a run's end out. Normal when the task had ended otherwise first (the first end
   * stands); otherwise its log does not end where the run's does, the task stays as the store has
   * it until a restart resumes it, and that is said at error level.
   */
  async function reportRefusedEnd(taskId: string, seq: number) {
    const stored = await store.getTask(taskId).catch(() => undefined);
    if (!stored || isTerminal(stored.status)) return;
    logger.error("runner: the store refused a task's end: its log does not end where the run's does", {
      task: taskId,
      result_seq: seq,
      stored_last_seq: stored.last_seq,
      status: stored.status,
    });
  }

  /** Tells telemetry a task ended (its result is stored); `startedAt` is its first start, if it started. */
  function reportEnd(task: Task, outcome: TaskOutcome, startedAt: string | null) {
    if (telemetry === noTelemetry) return;
    telemetry.taskFinished({
      taskId: task.id,
      agent: task.agent,
      status: outcome.status,
      stopReason: outcome.stopReason,
      ...(outcome.error ? { errorCode: outcome.error.code } : {}),
      durationMs: startedAt ? outcome.finishedAt.getTime() - Date.parse(startedAt) : null,
      inputTokens: outcome.inputTokens,
      outputTokens: outcome.outputTokens,
    });
  }

  /** Publishes the stored events the feed's tail has not published yet (a tail a follower kept). */
  async function catchUpTail(taskId: string, upTo: number) {
    for (;;) {
      const tail = feed.tail(taskId);
      if (!tail || tail.lastSeq >= upTo) return;
      const page = await store.events(taskId, tail.lastSeq, Math.min(500, upTo - tail.lastSeq));
      if (page.length === 0) return;
      for (const event of page) if (event.seq === (feed.tail(taskId)?.lastSeq ?? -1) + 1) feed.publish(taskId, event.seq, event.frame);
    }
  }


  async function run(entry: ActiveTask): Promise<void> {
    const { task } = entry;
    if (entry.finished) return;
    const agent = agents.get(task.agent);
    if (!agent) {
      return finish(entry, { kind: "error", error: new AgentNotConfiguredError(task.agent), totals: entry.totals });
    }
    const { definition } = agent;
    // Aborted before it began (a cancel recorded before the claim): end it as such, doing nothing.
    if (entry.controller.signal.reason instanceof TaskAbort) {
      return finish(entry, { kind: "aborted", abort: entry.controller.signal.reason, totals: entry.totals });
    }
    if (entry.attempt === undefined) {
      // One node: the claim is markRunning (queued → running).
      const startedAt = now();
      let marked: boolean;
      try {
        marked = await store.markRunning(task.id, startedAt);
      } catch (error) {
        if (!isTransientStoreFailure(error)) throw error;
        // It stays queued in the store: it starts once the store writes again.
        entry.storeFailed = true;
        logger.error("runner: the store could not start a task", { task: task.id, error: errorMessage(error) });
        return finish(entry, undefined);
      }
      if (!marked) {
        // Ended elsewhere (cancelled while queued): nothing to run.
        return finish(entry, { kind: "aborted", abort: new TaskAbort("cancelled", "cancelled"), totals: entry.totals });
      }
      entry.startedAt = startedAt.toISOString();
    }
    const tools = agent.tools();
    const outputCheck = outputCheckOf(definition);
    const reactOptions: ReActOptions = {
      model: agent.model,
      tools,
      system: outputCheck ? `${definition.system_prompt}\n\n${outputInstruction(outputCheck)}` : definition.system_prompt,
      messages: [{ role: "user", content: task.input }],
      maxSteps: definition.max_steps,
      tokenBudget: definition.token_budget,
      toolTimeoutMs: definition.tool_timeout_ms,
      toolResultMaxChars: definition.tool_result_max_chars,
      maxToolCallsPerStep: definition.max_tool_calls_per_step,
      taskId: task.id,
      maxOutputTokens: definition.max_output_tokens,
      idempotentTools: definition.idempotent_tools,
      abortSignal: entry.controller.signal,
      needsApproval: (name) => needsApproval(definition, name),
      questionTools: QUESTION_TOOLS,
      waitExpiresAt: () => new Date(now().getTime() + definition.approval_timeout_ms).toISOString(),
      takeInputs: () => takeInputs(entry),
      modelSettings: modelSettingsOf(definition),
      outputCheck,
      outputRetries: definition.output_retries,
    };
    if (telemetry !== noTelemetry) {
      const signal = entry.controller.signal;
      reactOptions.onModelCall = (call) =>
        telemetry.modelCall({
          taskId: task.id,
          agent: task.agent,
          model: call.model,
          startedAt: call.startedAt,
          durationMs: call.durationMs,
          inputTokens: call.inputTokens,
          outputTokens: call.outputTokens,
          error: call.error === undefined ? undefined : signal.aborted ? "aborted" : toTaskError(call.error).code,
        });
      reactOptions.onToolCall = (call) =>
        telemetry.toolCall({
          taskId: task.id,
          agent: task.agent,
          tool: call.name,
          known: call.known,
          callId: call.id,
          startedAt: call.startedAt,
          durationMs: call.durationMs,
          error: call.error,
        });
    }
    /** Time this task spent waiting for people: not counted against its time limit. */
    let waitedMs = 0;
    try {
      // A thread's task sees the thread's earlier tasks as the conversation before its input.
      const history = task.thread_id === null ? [] : await threadHistory(store, task, definition.history, turnCache);
      reactOptions.messages = [...history, ...reactOptions.messages];
      if (entry.resume) {
        // An earlier run of this task was cut off (its node died, or this server restarted), or it
        // waited for people who have now decided.
        if (entry.resume !== "continued" && definition.on_interrupt === "fail") return finish(entry, { kind: "interrupted", totals: entry.totals });
        const state = await resumeFromStore(store, task);
        if (state.finished) return finish(entry, undefined);
        entry.nextSeq = state.lastSeq + 1;
        entry.totals.steps = state.totals.steps;
        entry.totals.inputTokens = state.totals.inputTokens;
        entry.totals.outputTokens = state.totals.outputTokens;
        entry.totals.costUsd = options.costOf?.(agent, entry.totals) ?? entry.totals.costUsd;
        for (const id of state.consumedInputs) entry.consumedInputs.add(id);
        waitedMs = state.waitedMs;
        const resumed = resumedEventFor(state, { tools, idempotentTools: definition.idempotent_tools, node: cluster?.node ?? null, reason: entry.resume });
        // The run's own number (its fencing token) says which run this is.
        if (entry.attempt !== undefined) resumed.data.attempt = entry.attempt;
        bufferStep(entry, resumed);
        await flush(entry);
        Object.assign(reactOptions, {
          messages: [...history, ...state.messages],
          firstStep: state.nextStep,
          usedTokens: state.totals.inputTokens + state.totals.outputTokens,
          pendingCalls: state.unfinished,
          outputRetriesUsed: state.outputRetriesUsed,
        });
        logger.info("task resumed from its log", { task: task.id, reason: entry.resume, after_seq: state.lastSeq, attempt: entry.attempt });
      }
    } catch (error) {
      if (entry.lost || error instanceof FencedError) return finish(entry, undefined);
      if (isTransientStoreFailure(error)) {
        entry.storeFailed = true;
        return finish(entry, undefined);
      }
      logger.error("runner: could not resume a task", { task: task.id, error: errorMessage(error) });
      return finish(entry, {
        kind: "interrupted",
        totals: entry.totals,
        message: `Interrupted: the server stopped while this task was running, and it could not be resumed (${errorMessage(error)})`,
      });
    }
    // The time limit counts from the task's first start, across resumes — not the time it waited for people.
    const started = (entry.startedAt ? Date.parse(entry.startedAt) : Date.now()) + waitedMs;
    const deadline = setTimeout(
      () => entry.controller.abort(new TaskAbort("deadline", `Task exceeded its ${definition.timeout_ms} ms time limit`)),
      Math.max(0, definition.timeout_ms - (Date.now() - started)),
    );
    const end = await drive(entry, agent, tools, runReAct(reactOptions), deadline);
    await finish(entry, end);
  }

  /**
   * The run's hot loop: takes each engine event, stores it (batched) and publishes it; returns how
   * the run ended. Kept apart from `run`'s once-per-task setup: JavaScriptCore optimises a small
   * function sooner and compiles it faster (as one 9,000-bytecode function, `run` was compiled
   * with DFG three times and FTL once, ~100 ms of JIT time, between a server's ~100th and ~400th task).
   */
  async function drive(
    entry: ActiveTask,
    agent: Agent,
    tools: ReadonlyMap<string, Tool>,
    events: AsyncGenerator<ReActEvent, ReActStop | undefined>,
    deadline: ReturnType<typeof setTimeout>,
  ): Promise<RunEnd | undefined> {
    const { task } = entry;
    const idempotentTools = agent.definition.idempotent_tools;
    const signal = entry.controller.signal;
    let end: RunEnd | undefined;
    let sinceYield = 0;
    let charsSinceYield = 0;
    try {
      for (;;) {
        // An instant model and tools would run the whole task in microtasks, starving sockets and
        // timers (a cancel frame could not even be read): give the event loop a turn now and then.
        if (++sinceYield >= YIELD_EVERY || charsSinceYield >= YIELD_CHARS) {
          sinceYield = 0;
          charsSinceYield = 0;
          await flush(entry);
          await endOfTurn();
        }
        const pending = events.next();
        // Most engine events are ready within this turn (an instant model, a fast tool): then the
        // event is taken as it is (the race settles with it, or with its rejection). Otherwise
        // (`false`: the turn ended first) buffered events must not wait behind a slow model call or
        // tool — flush them — and the engine is raced with the signal, so that a tool that ignores
        // abort cannot hold the task.
        let next = await Promise.race([pending, endOfTurn()]);
        if (next === false) {
          if (entry.buffer.length > 0) await flush(entry);
          next = await raceAbort(pending, signal);
        }
        if (next.done) {
          const stop = next.value;
          end = !stop
            ? { kind: "error", error: new Error("engine ended without an answer"), totals: entry.totals }
            : stop.reason === "waiting"
              ? { kind: "waiting", totals: entry.totals }
              : stop.reason === "invalid_output"
                ? { kind: "invalid_output", message: stop.message, totals: entry.totals }
                : { kind: "stopped", reason: stop.reason, message: stop.message, totals: entry.totals };
          break;
        }
        const event = next.value;
        if (event.event_type === "final_answer") {
          end = { kind: "answer", output: event.data.output, outputJson: event.data.output_json, totals: entry.totals };
          break;
        }
        if (event.event_type === "delta") {
          // Live text goes out at once, after the durable events before it — only while the run
          // knows its lease holds (a run that stalled past it may have been taken over), and only
          // to someone: with no audience it is dropped here, and commits nothing early.
          if (!feed.wantsDeltas(task.id)) continue;
          if (entry.buffer.length > 0) await flush(entry);
          if (!entry.lost && performance.now() < entry.leaseValidUntil) feed.publishTransient(task.id, deltaFrame(event));
          continue;
        }
        if (event.event_type === "usage") count(entry, agent, event.step, event.data);
        bufferStep(entry, event);
        charsSinceYield += entry.buffer[entry.buffer.length - 1]!.frame.length;
        // A tool call is stored before the tool runs (the engine runs it when asked for more) —
        // unless the tool is idempotent: running it again changes nothing, so its call may share a
        // commit with its result when the result comes within the same turn (a slow one is flushed
        // by the "ready within this turn" check above, so watchers still see the call at once).
        if (
          entry.buffer.length >= MAX_BATCH ||
          (event.event_type === "tool_call" && !isIdempotentTool(event.data.name, tools, idempotentTools))
        ) {
          await flush(entry);
        }
      }
    } catch (error) {
      if (isTransientStoreFailure(error)) {
        // The store could not write (a full disk): the run stops here, the task does not end —
        // it is taken up again from its log once the store writes (see `retryAfterStoreFailure`).
        entry.storeFailed = true;
        logger.error("runner: the store could not write a task's events", { task: task.id, error: errorMessage(error) });
        return undefined;
      }
      end =
        signal.aborted && signal.reason instanceof TaskAbort
          ? { kind: "aborted", abort: signal.reason, totals: entry.totals }
          : error instanceof FencedError
            ? { kind: "aborted", abort: new TaskAbort("lost", error.message), totals: entry.totals }
            : { kind: "error", error, totals: entry.totals };
    } finally {
      clearTimeout(deadline);
      // Let the generator run its own finally blocks; it may still be awaiting an aborted call.
      events.return(undefined).catch(() => {});
    }
    return end;
  }

  /** The agent's output schema, compiled once per definition (validated at start-up already). */
  const outputChecks = new WeakMap<AgentDefinition, FinalAnswerCheck | null>();
  function outputCheckOf(definition: AgentDefinition): FinalAnswerCheck | undefined {
    let check = outputChecks.get(definition);
    if (check === undefined) {
      check = definition.output_schema ? compileOutputSchema(definition.output_schema) : null;
      outputChecks.set(definition, check);
    }
    return check ?? undefined;
  }

  function count(entry: ActiveTask, agent: Agent, step: number, usage: { input_tokens: number; output_tokens: number }) {
    const totals = entry.totals;
    totals.steps = Math.max(totals.steps, step);
    totals.inputTokens += usage.input_tokens;
    totals.outputTokens += usage.output_tokens;
    totals.costUsd = options.costOf?.(agent, { inputTokens: totals.inputTokens, outputTokens: totals.outputTokens }) ?? null;
  }

  // ---- cluster mode ---------------------------------------------------------------------------
  let claiming = false;
  /** Settles when the claim under way ends: a shutdown waits for it (a task it claims then is released). */
  let claimEnded: Promise<void> | undefined;
  let claimAgain = false;
  let claimFailing = false;
  let queuedCount = 0;
  let queuedCountAt = Number.NEGATIVE_INFINITY;
  /** Tasks `ensureCapacity` counted since the last refresh of `queuedCount` began. */
  let countedSinceRefresh = 0;
  /**
   * When each task `ensureCapacity` counted and `submit` has not yet taken was counted (oldest
   * first): its insert (and on one node, an AG-UI run's stream) is on its way. One that never comes
   * (the insert failed) is forgotten after `admissionTtlMs`.
   */
  const inFlight: number[] = [];
  let refreshingCount: Promise<void> | undefined;
  let stopListening: (() => Promise<void>) | undefined;
  const timers: ReturnType<typeof setInterval>[] = [];

  /** Claims tasks from the database while this worker has free slots. */
  async function claim(): Promise<void> {
    if (!cluster?.worker || closed) return;
    if (claiming) {
      claimAgain = true;
      return;
    }
    claiming = true;
    const ended = Promise.withResolvers<void>();
    claimEnded = ended.promise;
    try {
      do {
        claimAgain = false;
        while (!closed && running < options.maxConcurrentTasks) {
          const claimed = await cluster.store.claimNext(cluster.node, cluster.leaseMs, now());
          if (!claimed) break;
          if (closed) {
            // Asked for before the shutdown, answered after it (a query that waited for a pooled
            // connection may even take a task the shutdown just handed over): given back at once,
            // before this node exits (the shutdown waits for it).
            await giveBack(claimed);
            break;
          }
          await startClaimed(claimed);
        }
      } while (claimAgain && !closed);
      if (claimFailing) logger.info("cluster: claiming works again");
      claimFailing = false;
    } catch (error) {
      // Once per outage, not once per poll.
      if (!claimFailing) logger.warn("cluster: could not claim tasks (retrying on every signal and poll)", { error: errorMessage(error) });
      claimFailing = true;
    } finally {
      claiming = false;
      claimEnded = undefined;
      ended.resolve();
    }
  }

  /** A task this node claimed while it began to stop: its lease released, and the other workers told it is claimable now. */
  async function giveBack(claimed: Claim) {
    await cluster!.store.releaseLeases(cluster!.node, [{ taskId: claimed.task.id, attempt: claimed.attempt }]);
    await cluster!.store.signal({ kind: "queued" }).catch(() => {});
  }

  async function startClaimed(claimed: Claim) {
    const { task } = claimed;
    // Watchers here may have been following it: the runner takes its tail over, caught up to the
    // log as claimed, before publishing anything of its own.
    cluster!.follower.release(task.id);
    // A claim reads whether the task has messages waiting (a queued task gets no `input` signal heard).
    const entry = track(task, claimed.inputsPending);
    entry.attempt = claimed.attempt;
    entry.leaseValidUntil = performance.now() + cluster!.leaseMs;
    if (claimed.takeover) entry.resume = "takeover";
    try {
      await catchUpTail(task.id, task.last_seq);
    } catch (error) {
      logger.warn("cluster: could not catch a taken-over task's watchers up", { task: task.id, error: errorMessage(error) });
    }
    if (closed) {
      // The node began to stop meanwhile (its shutdown waits for this claim): not started here,
      // given back for another node to take now, as a shutdown hands its running tasks over.
      feed.close(task.id);
      active.delete(task.id);
      entry.done.resolve();
      await giveBack(claimed);
      return;
    }
    // A cancel asked for before the claim ends the run before it does anything (see `run`).
    if (claimed.cancelRequested) entry.controller.abort(new TaskAbort("cancelled", "Cancelled by a client"));
    start(entry);
  }

  /** Renews this node's leases; a run whose lease is gone, or cannot be renewed in time, stops. */
  let renewing = false;
  let renewFailures = 0;
  async function renew(): Promise<void> {
    if (!cluster || renewing) return;
    const entries = [...active.values()].filter((entry) => entry.state === "running" && entry.attempt !== undefined && !entry.finished && !entry.lost);
    if (entries.length === 0) return;
    renewing = true;
    const sentAt = performance.now();
    try {
      const { held, cancelRequested, inputsPending } = await cluster.store.renewLeases(
        cluster.node,
        entries.map((entry) => ({ taskId: entry.task.id, attempt: entry.attempt! })),
        cluster.leaseMs,
      );
      renewFailures = 0;
      for (const entry of entries) {
        if (!held.has(entry.task.id)) {
          if (!entry.finished) lose(entry, "its lease was taken over or ended");
          continue;
        }
        entry.leaseValidUntil = sentAt + cluster.leaseMs;
        if (cancelRequested.has(entry.task.id)) entry.controller.abort(new TaskAbort("cancelled", "Cancelled by a client"));
        // A lost `input` notification: the renewal says so too.
        if (inputsPending.has(entry.task.id)) entry.inputsPending = true;
      }
    } catch (error) {
      // Transient database trouble: retry soon, with backoff, while the leases still hold; a run
      // whose lease runs out before a renewal gets through stops itself (another node may take it).
      renewFailures++;
      const at = performance.now();
      for (const entry of entries) if (at >= entry.leaseValidUntil - cluster.leaseMs / 10) lose(entry, "its lease could not be renewed in time");
      const retryIn = Math.min(cluster.leaseMs / 6, 50 * 2 ** Math.min(renewFailures, 8));
      logger.warn("cluster: could not renew leases; retrying", { error: errorMessage(error), retry_in_ms: Math.round(retryIn) });
      setTimeout(() => void renew(), retryIn).unref();
    } finally {
      renewing = false;
    }
  }

  function onSignal(signal: ClusterSignal) {
    switch (signal.kind) {
      case "cancel_call":
        for (const listener of callCancelListeners) listener(signal.key, signal.reason);
        return;
      case "parked":
        // Its own NOTIFY comes back to the node that parked it too: listeners check the status anyway.
        feed.parked(signal.taskId);
        return;
      case "queued":
        void claim();
        return;
      case "cancel": {
        const entry = active.get(signal.taskId);
        if (entry && !entry.finished) entry.controller.abort(new TaskAbort("cancelled", "Cancelled by a client"));
        return;
      }
      case "input": {
        const entry = active.get(signal.taskId);
        if (entry) entry.inputsPending = true;
        return;
      }
      case "events":
        cluster!.follower.hint(signal.taskId, signal.lastSeq);
        cancelWaiters.get(signal.taskId)?.();
        return;
      case "probe":
        if (signal.node === cluster!.node && signal.nonce === probe.nonce) probe.heardAt = performance.now();
        return;
    }
  }

  /** Counts the cluster's queued tasks again (one count at a time: a caller while one runs shares it). */
  function refreshQueuedCount(): Promise<void> {
    if (!cluster) return Promise.resolve();
    if (refreshingCount) return refreshingCount;
    // Tasks whose inserts are on their way may be stored after the count's snapshot: they stay counted.
    const now = performance.now();
    while (inFlight.length > 0 && now - inFlight[0]! > admissionTtlMs) inFlight.shift();
    countedSinceRefresh = inFlight.length;
    refreshingCount = cluster.store
      .countQueued()
      .then((count) => {
        // Tasks this node counted while the count was on its way may be stored after the count's
        // snapshot: they stay counted (one stored before it is counted twice until the next
        // refresh — too few accepted for a moment, never too many).
        queuedCount = count + countedSinceRefresh;
        queuedCountAt = performance.now();
      })
      .catch(() => {})
      .finally(() => (refreshingCount = undefined));
    return refreshingCount;
  }

  /**
   * The LISTEN connection is probed: this node notifies itself every few polls and expects to hear
   * it back. A connection that went half-open (no error, no notifications — wake-ups silently lost
   * for minutes) is replaced, and what was missed is caught up from the database.
   */
  const probe = { nonce: "", sentAt: 0, heardAt: 0 };
  /** Cancels waiting for another node to end a task: woken by the task's `events` signal. */
  const cancelWaiters = new Map<string, () => void>();

  /**
   * Wakes this node when the soonest lease of another node's task runs out, so a dead node's task
   * is taken over then — not up to a poll interval later.
   */
  let expiryTimer: ReturnType<typeof setTimeout> | undefined;
  async function watchLeaseExpiry(): Promise<void> {
    if (!cluster?.worker || closed) return;
    const inMs = await cluster.store.nextLeaseExpiry(cluster.node).catch(() => undefined);
    if (inMs === undefined || inMs > cluster.pollMs + cluster.leaseMs || closed) return;
    clearTimeout(expiryTimer);
    expiryTimer = setTimeout(() => void claim(), Math.max(0, inMs) + 5);
    expiryTimer.unref();
  }
  async function listen(): Promise<void> {
    stopListening = await cluster!.store.listen(onSignal, () => {
      // Listening (again): what was announced meanwhile is caught up from the database.
      void claim();
      cluster!.follower.catchUpAll();
    });
  }
  async function checkListening(): Promise<void> {
    if (!cluster || closed) return;
    if (probe.nonce && probe.heardAt < probe.sentAt && performance.now() - probe.sentAt > Math.max(1000, cluster.pollMs)) {
      logger.warn("cluster: the LISTEN connection did not hear this node's own probe; reconnecting it");
      const stop = stopListening;
      stopListening = undefined;
      await stop?.().catch(() => {});
      try {
        await listen();
      } catch (error) {
        logger.warn("cluster: could not LISTEN again (retrying)", { error: errorMessage(error) });
      }
      probe.nonce = "";
      return;
    }
    if (!probe.nonce || probe.heardAt >= probe.sentAt) {
      probe.nonce = crypto.randomUUID().slice(0, 8);
      probe.sentAt = performance.now();
      await cluster.store.signal({ kind: "probe", node: cluster.node, nonce: probe.nonce }).catch(() => {});
    }
  }

  async function startCluster(): Promise<void> {
    if (!cluster) return;
    await listen();
    const poll = setInterval(() => {
      void claim();
      void refreshQueuedCount();
      void checkListening();
      void watchLeaseExpiry();
    }, cluster.pollMs);
    const keeper = setInterval(() => {
      // A run whose lease is past (a renewal hung, or this process was stopped) stops now, even
      // while a renewal is still in flight: another node may already have the task.
      const at = performance.now();
      for (const entry of active.values()) if (entry.state === "running" && !entry.finished && at >= entry.leaseValidUntil) lose(entry, "its lease ran out before a renewal got through");
      void renew();
    }, Math.max(10, Math.floor(cluster.leaseMs / 3)));
    poll.unref();
    keeper.unref();
    timers.push(poll, keeper);
    void refreshQueuedCount();
    void claim();
  }

  function totalsOf(task: Task): RunTotals {
    return { steps: task.total_steps, inputTokens: task.input_tokens, outputTokens: task.output_tokens, costUsd: task.cost_usd };
  }

  /**
   * Ends a waiting task (no run holds it): cancelled, or failed when its wait timed out and its agent
   * says so. Conditional on its last seq, so a decision that queued it again (or a run that took it
   * since) wins and this writes nothing (false). One node publishes the result
   * itself; in a cluster the nodes' followers publish it from the log.
   */
  async function endWaiting(task: Task, end: Exclude<RunEnd, { kind: "waiting" }>): Promise<boolean> {
    const seq = task.last_seq + 1;
    const outcome = toOutcome(end, now());
    const frame = JSON.stringify(resultFrame(seq, toResultData(task.id, outcome)));
    const local = !cluster && !feed.tail(task.id);
    if (local) feed.open(task.id, task.last_seq);
    let ended = false;
    try {
      // No fence needed: a waiting task leaves `waiting` only by a decision (which appends: its
      // last seq moves) or by ending — either way `last_seq = seq - 1` no longer holds.
      const hooks = webhooks?.ended(task, outcome, seq, task.started_at);
      ended = await store.finishTask(task.id, outcome, seq, frame, undefined, hooks);
      if (ended && hooks) webhooks!.written();
      if (ended && !cluster) feed.publish(task.id, seq, frame);
    } catch (error) {
      if (!(error instanceof FencedError) && !(error instanceof AgentkitError)) throw error;
    } finally {
      if (local) feed.close(task.id);
    }
    if (ended) {
      reportEnd(task, outcome, task.started_at);
      logger.info("task finished while waiting", { task: task.id, status: outcome.status });
      releaseThread(task);
      pump();
    }
    return ended;
  }

  /** Cancels a task this node does not run (cluster): directly if queued, else via its node. */
  async function cancelElsewhere(taskId: string): Promise<Task | undefined> {
    const clusterStore = cluster!.store;
    const task = await store.getTask(taskId);
    if (!task || isTerminal(task.status)) return task;
    if (task.status === "queued") {
      const seq = task.last_seq + 1;
      const outcome = toOutcome({ kind: "aborted", abort: new TaskAbort("cancelled", "cancelled"), totals: { steps: 0, inputTokens: 0, outputTokens: 0, costUsd: null } }, now());
      try {
        // Fenced on attempt 0 (a queued task was never claimed — tasks never go back to the
        // queue): a node that claims it first wins, and then the cancel goes to that node instead.
        const hooks = webhooks?.ended(task, outcome, seq, null);
        if (await store.finishTask(taskId, outcome, seq, JSON.stringify(resultFrame(seq, toResultData(taskId, outcome))), 0, hooks)) {
          if (hooks) webhooks!.written();
          reportEnd(task, outcome, null);
          return store.getTask(taskId);
        }
      } catch (error) {
        if (!(error instanceof FencedError) && !(error instanceof AgentkitError)) throw error;
      }
    }
    // The node running it aborts within milliseconds (its result announces itself with an
    // `events` signal, which wakes this wait); a dead node's task is cancelled when taken over.
    const deadline = Date.now() + Math.max(10_000, cluster!.leaseMs + 2000);
    const woken = () => {
      const { promise, resolve } = Promise.withResolvers<void>();
      cancelWaiters.set(taskId, resolve);
      return promise;
    };
    let wake = woken();
    await clusterStore.requestCancel(taskId);
    try {
      for (let wait = 50; Date.now() < deadline; wait = Math.min(wait * 2, 500)) {
        const current = await store.getTask(taskId);
        if (!current || isTerminal(current.status)) return current;
        // Its run parked it (waiting for a person) before the cancel reached it: end the wait here.
        if (current.status === "waiting") {
          const aborted = { kind: "aborted" as const, abort: new TaskAbort("cancelled", "cancelled"), totals: totalsOf(current) };
          if (await endWaiting(current, aborted)) return store.getTask(taskId);
          continue;
        }
        await Promise.race([wake, Bun.sleep(wait)]);
        wake = woken();
      }
    } finally {
      cancelWaiters.delete(taskId);
    }
    return store.getTask(taskId);
  }

  return {
    async ensureCapacity() {
      if (closed) throw new AgentkitError("unavailable", "The server is shutting down");
      if (cluster) {
        // Cluster-wide, from a count at most a poll interval old (plus what this node queued since).
        if (performance.now() - queuedCountAt > cluster.pollMs) void refreshQueuedCount();
        // Full by that count: tasks it has counted since may have started (or ended) meanwhile —
        // a node that counted on alone took its limit's worth per poll interval and refused the
        // rest, with nothing queued. Counted again before refusing (at most every RECOUNT_MS).
        if (queuedCount >= options.maxQueuedTasks && performance.now() - queuedCountAt > RECOUNT_MS) await refreshQueuedCount();
        if (closed) throw new AgentkitError("unavailable", "The server is shutting down");
        if (queuedCount >= options.maxQueuedTasks) {
          throw new AgentkitError("queue_full", `Task queue is full (${options.maxQueuedTasks} waiting in the cluster)`);
        }
        // Counted now, not once stored: requests on this node that check while this one's insert
        // is on its way (an await) see it. One that then fails to store is released by its caller
        // (`releaseCapacity`), or forgotten after admissionTtlMs.
        queuedCount++;
        countedSinceRefresh++;
        inFlight.push(performance.now());
        return;
      }
      // Full: the queue holds its limit. A free slot does not make room: what is queued then waits for
      // its thread's earlier task (a busy thread let a client queue without bound). A limit of 0
      // takes a task only while nothing is queued and a slot is free (it starts at once, unless its
      // thread is busy: then it is the one task queued).
      // Tasks admitted and not yet submitted count too: an AG-UI run is submitted only once its
      // stream is attached (after a replay's wait), and 60 runs admitted meanwhile all got in. Those
      // that a free slot will start are not queued.
      const now = performance.now();
      while (inFlight.length > 0 && now - inFlight[0]! > admissionTtlMs) inFlight.shift();
      const admitting = inFlight.length;
      const waiting = queue.size + Math.max(0, admitting - Math.max(0, options.maxConcurrentTasks - running));
      if (waiting >= options.maxQueuedTasks && (running + admitting >= options.maxConcurrentTasks || waiting > 0)) {
        throw new AgentkitError("queue_full", `Task queue is full (${options.maxQueuedTasks} waiting)`);
      }
      inFlight.push(now);
    },

    releaseCapacity() {
      if (inFlight.length === 0) return;
      inFlight.pop();
      if (!cluster) return;
      queuedCount = Math.max(0, queuedCount - 1);
      countedSinceRefresh = Math.max(0, countedSinceRefresh - 1);
    },

    submit(task) {
      telemetry.taskSubmitted();
      if (cluster) {
        // Counted by `ensureCapacity` already; its insert has landed.
        inFlight.shift();
        // Every worker hears of it (this one included) and the first free one claims it.
        cluster.store.signal({ kind: "queued" }).catch((error) => logger.warn("cluster: could not announce a task", { error: errorMessage(error) }));
        void claim();
        return;
      }
      inFlight.shift(); // counted by `ensureCapacity`: now in the queue (or running)
      const entry = track(task, false);
      queue.push(entry);
      pump();
    },

    resubmit(task) {
      if (closed) return; // queued in the store: the next start (or another node) runs it
      if (cluster) {
        cluster.store.signal({ kind: "queued" }).catch((error) => logger.warn("cluster: could not announce a task", { error: errorMessage(error) }));
        void claim();
        return;
      }
      if (active.has(task.id)) return;
      queue.push(track(task, true));
      pump();
    },

    endWaiting,

    notifyInput(taskId) {
      const entry = active.get(taskId);
      if (entry) {
        entry.inputsPending = true;
        return;
      }
      // Run by another node (or not running: its next run reads the store anyway).
      if (cluster) cluster.store.signal({ kind: "input", taskId }).catch(() => {});
    },

    publishes(taskId) {
      return active.has(taskId);
    },
    liveTask(taskId) {
      const entry = active.get(taskId);
      if (!entry || entry.finished) return undefined;
      const { task, totals } = entry;
      return {
        ...task,
        status: entry.state,
        started_at: entry.state === "running" ? entry.startedAt : task.started_at,
        last_seq: feed.tail(taskId)?.lastSeq ?? task.last_seq,
        total_steps: totals.steps,
        total_tokens: totals.inputTokens + totals.outputTokens,
        input_tokens: totals.inputTokens,
        output_tokens: totals.outputTokens,
        cost_usd: totals.costUsd,
      };
    },

    async cancel(taskId) {
      const entry = active.get(taskId);
      if (entry) {
        if (entry.state === "queued") {
          queue.remove(entry);
          await finish(entry, { kind: "aborted", abort: new TaskAbort("cancelled", "cancelled"), totals: entry.totals });
        } else {
          entry.controller.abort(new TaskAbort("cancelled", "Cancelled by a client"));
          await entry.done.promise;
          if (entry.lost && cluster) return cancelElsewhere(taskId);
        }
        if (storeRetries.has(taskId)) throw storeCannotEnd();
        const ended = await store.getTask(taskId);
        // The run had just parked the task when the cancel came: end the wait.
        if (ended?.status !== "waiting") return ended;
      }
      const task = await store.getTask(taskId);
      if (task?.status === "waiting") {
        const ended = await endWaiting(task, { kind: "aborted", abort: new TaskAbort("cancelled", "cancelled"), totals: totalsOf(task) });
        if (ended) return store.getTask(taskId);
        // Decided (and queued again, maybe running) meanwhile: cancel it where it is now.
        return this.cancel(taskId);
      }
      if (cluster) return cancelElsewhere(taskId);
      const cut = storeRetries.get(taskId);
      if (cut && (task?.status === "running" || task?.status === "queued")) {
        // No run has it: the store could not write its events (or start it). It ends now, if the store takes it.
        clearTimeout(cut.timer);
        storeRetries.delete(taskId);
        const entry = track(task, true);
        entry.controller.abort(new TaskAbort("cancelled", "Cancelled by a client"));
        await finish(entry, { kind: "aborted", abort: new TaskAbort("cancelled", "Cancelled by a client"), totals: entry.totals });
        pump();
        if (storeRetries.has(taskId)) throw storeCannotEnd();
        return store.getTask(taskId);
      }
      return task;
    },

    async recover() {
      if (cluster) {
        await startCluster();
        return { requeued: 0, interrupted: 0, resumed: 0 };
      }
      for (const task of await store.tasksWithStatus(["waiting", "running"])) {
        if (task.thread_id !== null) threadHeads.set(task.thread_id, task.id);
      }
      const leftovers = await store.tasksWithStatus(["running", "queued"]);
      let requeued = 0;
      let interrupted = 0;
      let resumed = 0;
      for (const task of leftovers) {
        if (active.has(task.id) || isTerminal(task.status)) continue;
        if (task.status === "running") {
          const agent = agents.get(task.agent);
          const attempt = agent?.definition.on_interrupt === "resume" ? await store.takeOver(task.id) : undefined;
          const entry = track(task, true);
          if (attempt === undefined) {
            interrupted++;
            await finish(entry, { kind: "interrupted", totals: entry.totals });
            continue;
          }
          resumed++;
          entry.attempt = attempt;
          entry.resume = "restart";
          start(entry);
        } else {
          requeued++;
          queue.push(track(task, true));
        }
      }
      pump();
      return { requeued, interrupted, resumed };
    },

    async shutdown() {
      closed = true;
      for (const timer of timers) clearInterval(timer);
      // Tasks the store cut stay `running` in it: the next start resumes them.
      for (const { timer } of storeRetries.values()) clearTimeout(timer);
      storeRetries.clear();
      clearTimeout(expiryTimer);
      await stopListening?.().catch(() => {});
      // A claim under way first: a task it gets now is released by it — and it must not take one
      // this shutdown hands over below (its leases released, the task claimable by any node).
      if (claimEnded) {
        let bound: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([claimEnded, new Promise<void>((resolve) => (bound = setTimeout(resolve, SHUTDOWN_CLAIM_WAIT_MS)))]);
        clearTimeout(bound);
      }
      const entries = [...active.values()];
      queue.clear();
      const handedOver: ActiveTask[] = [];
      for (const entry of entries) {
        if (entry.state === "queued") {
          // Left queued in the store: the next start runs it.
          feed.close(entry.task.id);
          active.delete(entry.task.id);
          entry.done.resolve();
          continue;
        }
        const resumes = agents.get(entry.task.agent)?.definition.on_interrupt === "resume";
        if (resumes) {
          handedOver.push(entry);
          entry.controller.abort(new TaskAbort("handover", "This server is stopping: the task resumes elsewhere or at the next start"));
        } else {
          entry.controller.abort(new TaskAbort("shutdown", "Interrupted: the server shut down while this task was running"));
        }
      }
      await Promise.all(entries.map((entry) => entry.done.promise));
      const leases = handedOver.filter((entry) => entry.attempt !== undefined && !entry.lost).map((entry) => ({ taskId: entry.task.id, attempt: entry.attempt! }));
      if (cluster && leases.length > 0) {
        // Other nodes may take them over now, not when the leases would have run out.
        await cluster.store.releaseLeases(cluster.node, leases).catch((error) =>
          logger.warn("cluster: could not release leases (they expire on their own)", { error: errorMessage(error) }),
        );
        // Wake the other workers now: a released task is claimable at once.
        await cluster.store.signal({ kind: "queued" }).catch(() => {});
      }
      if (handedOver.length > 0) logger.info("running tasks handed over", { tasks: handedOver.length });
    },

    stats() {
      return { running, queued: cluster ? queuedCount : queue.size };
    },

    announceCallCancel(key, reason) {
      if (!cluster) return;
      cluster.store
        .signal({ kind: "cancel_call", key, reason: reason.slice(0, 500) })
        .catch((error) => logger.warn("cluster: could not announce a cancelled call", { error: errorMessage(error) }));
    },

    onCallCancel(listener) {
      callCancelListeners.add(listener);
      return () => callCancelListeners.delete(listener);
    },
  };
}
