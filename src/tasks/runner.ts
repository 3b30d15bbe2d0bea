/**
 * The runner: every task runs exactly once, here, whether zero or a thousand clients watch it.
 *
 * - A concurrency cap with a FIFO queue (status `queued`), bounded in length.
 * - For each event the engine yields: assign the next `seq`, store it, then publish it (durable
 *   first), strictly in order — all writes of a task go through one chain. Events that come in a
 *   burst are stored in one transaction and published together (see `flush`).
 * - `cancel` is idempotent; a queued task that is cancelled never starts; the first terminal state
 *   wins (the store refuses a second one). Abort reaches the model call and every tool, and the
 *   runner does not wait for a tool that ignores it.
 */
import type { Agent, AgentPool } from "../agents/pool.ts";
import type { LiveFeed } from "../bus/live-feed.ts";
import { runReAct } from "../engine/react.ts";
import { AgentkitError } from "../errors.ts";
import { raceAbort } from "../lib/abort.ts";
import type { Logger } from "../lib/logger.ts";
import { deltaFrame, resultFrame, stepFrame } from "../protocol/frames.ts";
import type { StepEvent } from "../protocol/events.ts";
import { isTerminal, type Task } from "../protocol/task.ts";
import type { StoredEvent, TaskStore } from "../store/store.ts";
import { TaskAbort, toOutcome, toResultData, type RunEnd, type RunTotals } from "./outcome.ts";

/** Engine events handled between two turns given to the event loop. */
const YIELD_EVERY = 32;
/** Most events stored in one transaction. */
const MAX_BATCH = 16;

/** Resolves `false` at the end of this event-loop turn. */
function endOfTurn(): Promise<false> {
  return new Promise((resolve) => setImmediate(resolve, false));
}

export interface TaskRunner {
  /** Throws `queue_full` (429) when a new task could not be queued. */
  ensureCapacity(): void;
  /** Takes a freshly created (queued) task; it starts when a slot is free. */
  submit(task: Task): void;
  /** Cancels a task; idempotent. Resolves with the task as it ended, or undefined if unknown. */
  cancel(taskId: string): Promise<Task | undefined>;
  /** At start-up: queued tasks of a previous process are queued again; running ones are ended. */
  recover(): Promise<{ requeued: number; interrupted: number }>;
  /** Stops taking work; running and queued tasks end as `interrupted`. */
  shutdown(): Promise<void>;
  stats(): { running: number; queued: number };
}

export interface RunnerOptions {
  store: TaskStore;
  feed: LiveFeed;
  agents: AgentPool;
  logger: Logger;
  maxConcurrentTasks: number;
  maxQueuedTasks: number;
  /** Cost in USD of the given usage on the agent's model, or null when it has no prices. */
  costOf?: (agent: Agent, usage: { inputTokens: number; outputTokens: number }) => number | null;
  now?: () => Date;
}

interface ActiveTask {
  readonly task: Task;
  state: "queued" | "running";
  readonly controller: AbortController;
  nextSeq: number;
  /** Numbered, not yet stored: stored and published together by `flush`. */
  buffer: StoredEvent[];
  readonly totals: RunTotals;
  finished: boolean;
  /** Every durable write of this task, in seq order. */
  writes: Promise<unknown>;
  readonly done: PromiseWithResolvers<void>;
}

export function createRunner(options: RunnerOptions): TaskRunner {
  const { store, feed, agents, logger } = options;
  const now = options.now ?? (() => new Date());
  const active = new Map<string, ActiveTask>();
  const queue: ActiveTask[] = [];
  let running = 0;
  let closed = false;

  /** Appends a write to the task's chain; resolves or rejects with this write alone. */
  function write<T>(entry: ActiveTask, operation: () => Promise<T>): Promise<T> {
    const result = entry.writes.then(operation, operation);
    entry.writes = result.catch(() => {});
    return result;
  }

  function track(task: Task): ActiveTask {
    const entry: ActiveTask = {
      task,
      state: "queued",
      controller: new AbortController(),
      nextSeq: task.last_seq + 1,
      buffer: [],
      totals: { steps: task.total_steps, inputTokens: task.input_tokens, outputTokens: task.output_tokens, costUsd: task.cost_usd },
      finished: false,
      writes: Promise.resolve(),
      done: Promise.withResolvers<void>(),
    };
    active.set(task.id, entry);
    feed.open(task.id, task.last_seq);
    return entry;
  }

  function pump() {
    while (!closed && running < options.maxConcurrentTasks && queue.length > 0) {
      const entry = queue.shift()!;
      running++;
      entry.state = "running";
      void run(entry)
        .catch((error) => logger.error("runner: task crashed", { task: entry.task.id, error: String(error) }))
        .finally(() => {
          running--;
          pump();
        });
    }
  }

  /** Numbers a step event and buffers it; `flush` stores and publishes it. */
  function bufferStep(entry: ActiveTask, event: StepEvent) {
    const seq = entry.nextSeq++;
    entry.buffer.push({ seq, frame: JSON.stringify(stepFrame(seq, event, now())) });
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
      try {
        await store.appendEvents(entry.task.id, batch);
      } catch (error) {
        // Nothing of the batch was stored: number what comes next (the result) from its first seq.
        entry.buffer = [];
        entry.nextSeq = batch[0]!.seq;
        throw error;
      }
      for (const event of batch) feed.publish(entry.task.id, event.seq, event.frame);
    });
  }

  /** Ends a task once: stores outcome + result event atomically, publishes, releases. */
  async function finish(entry: ActiveTask, end: RunEnd): Promise<void> {
    if (entry.finished) return entry.done.promise;
    entry.finished = true;
    const taskId = entry.task.id;
    try {
      // What happened before the end is recorded, then the end.
      await flush(entry).catch((error) =>
        logger.error("runner: could not store a task's last events", { task: taskId, error: String(error) }),
      );
      await write(entry, async () => {
        const seq = entry.nextSeq++;
        const outcome = toOutcome(end, now());
        const frame = JSON.stringify(resultFrame(seq, toResultData(taskId, outcome)));
        if (await store.finishTask(taskId, outcome, seq, frame)) {
          feed.publish(taskId, seq, frame);
          logger.info("task finished", { task: taskId, status: outcome.status, stop_reason: outcome.stopReason });
        }
      });
    } catch (error) {
      logger.error("runner: could not store the end of a task", { task: taskId, error: String(error) });
    } finally {
      feed.close(taskId);
      active.delete(taskId);
      entry.done.resolve();
    }
  }

  async function run(entry: ActiveTask): Promise<void> {
    const { task } = entry;
    if (entry.finished) return;
    const agent = agents.get(task.agent);
    if (!agent) {
      return finish(entry, { kind: "error", error: new Error(`Agent '${task.agent}' is not configured`), totals: entry.totals });
    }
    if (!(await store.markRunning(task.id, now()))) {
      // Ended elsewhere (cancelled while queued): nothing to run.
      return finish(entry, { kind: "aborted", abort: new TaskAbort("cancelled", "cancelled"), totals: entry.totals });
    }
    const { definition } = agent;
    const deadline = setTimeout(
      () => entry.controller.abort(new TaskAbort("deadline", `Task exceeded its ${definition.timeout_ms} ms time limit`)),
      definition.timeout_ms,
    );
    const signal = entry.controller.signal;
    const events = runReAct({
      model: agent.model,
      tools: agent.tools(),
      system: definition.system_prompt,
      messages: [{ role: "user", content: task.input }],
      maxSteps: definition.max_steps,
      tokenBudget: definition.token_budget,
      toolTimeoutMs: definition.tool_timeout_ms,
      maxOutputTokens: definition.max_output_tokens,
      abortSignal: signal,
    });
    let end: RunEnd | undefined;
    let sinceYield = 0;
    try {
      for (;;) {
        // An instant model and tools would run the whole task in microtasks, starving sockets and
        // timers (a cancel frame could not even be read): give the event loop a turn now and then.
        if (++sinceYield >= YIELD_EVERY) {
          sinceYield = 0;
          await flush(entry);
          await endOfTurn();
        }
        const pending = events.next();
        if (entry.buffer.length > 0) {
          // Flush now unless the engine has its next event ready within this turn: buffered events
          // must not wait behind a slow model call or tool.
          const ready = await Promise.race([pending.then(() => true, () => true), endOfTurn()]);
          if (!ready) await flush(entry);
        }
        // Race the engine with the signal: a tool that ignores abort must not hold the task.
        const next = await raceAbort(pending, signal);
        if (next.done) {
          const stop = next.value;
          end = stop
            ? { kind: "stopped", reason: stop.reason, message: stop.message, totals: entry.totals }
            : { kind: "error", error: new Error("engine ended without an answer"), totals: entry.totals };
          break;
        }
        const event = next.value;
        if (event.event_type === "final_answer") {
          end = { kind: "answer", output: event.data.output, totals: entry.totals };
          break;
        }
        if (event.event_type === "delta") {
          // Live text goes out at once, after the durable events before it.
          if (entry.buffer.length > 0) await flush(entry);
          feed.publishTransient(task.id, deltaFrame(event));
          continue;
        }
        if (event.event_type === "usage") count(entry, agent, event.step, event.data);
        bufferStep(entry, event);
        // A tool call is stored before the tool runs (the engine runs it when asked for more).
        if (event.event_type === "tool_call" || entry.buffer.length >= MAX_BATCH) await flush(entry);
      }
    } catch (error) {
      end =
        signal.aborted && signal.reason instanceof TaskAbort
          ? { kind: "aborted", abort: signal.reason, totals: entry.totals }
          : { kind: "error", error, totals: entry.totals };
    } finally {
      clearTimeout(deadline);
      // Let the generator run its own finally blocks; it may still be awaiting an aborted call.
      events.return(undefined).catch(() => {});
    }
    await finish(entry, end);
  }

  function count(entry: ActiveTask, agent: Agent, step: number, usage: { input_tokens: number; output_tokens: number }) {
    const totals = entry.totals;
    totals.steps = Math.max(totals.steps, step);
    totals.inputTokens += usage.input_tokens;
    totals.outputTokens += usage.output_tokens;
    totals.costUsd = options.costOf?.(agent, { inputTokens: totals.inputTokens, outputTokens: totals.outputTokens }) ?? null;
  }

  return {
    ensureCapacity() {
      if (closed) throw new AgentkitError("unavailable", "The server is shutting down");
      if (queue.length >= options.maxQueuedTasks && running >= options.maxConcurrentTasks) {
        throw new AgentkitError("queue_full", `Task queue is full (${options.maxQueuedTasks} waiting)`);
      }
    },

    submit(task) {
      const entry = track(task);
      queue.push(entry);
      pump();
    },

    async cancel(taskId) {
      const entry = active.get(taskId);
      if (entry) {
        if (entry.state === "queued") {
          const index = queue.indexOf(entry);
          if (index >= 0) queue.splice(index, 1);
          await finish(entry, { kind: "aborted", abort: new TaskAbort("cancelled", "cancelled"), totals: entry.totals });
        } else {
          entry.controller.abort(new TaskAbort("cancelled", "Cancelled by a client"));
          await entry.done.promise;
        }
      }
      return store.getTask(taskId);
    },

    async recover() {
      const leftovers = await store.tasksWithStatus(["running", "queued"]);
      let requeued = 0;
      let interrupted = 0;
      for (const task of leftovers) {
        if (active.has(task.id) || isTerminal(task.status)) continue;
        if (task.status === "running") {
          interrupted++;
          const entry = track(task);
          await finish(entry, { kind: "interrupted", totals: entry.totals });
        } else {
          requeued++;
          queue.push(track(task));
        }
      }
      pump();
      return { requeued, interrupted };
    },

    async shutdown() {
      closed = true;
      const entries = [...active.values()];
      queue.length = 0;
      for (const entry of entries) {
        if (entry.state === "queued") {
          // Left queued in the store: the next start runs it.
          feed.close(entry.task.id);
          active.delete(entry.task.id);
          entry.done.resolve();
        } else {
          entry.controller.abort(new TaskAbort("shutdown", "Interrupted: the server shut down while this task was running"));
        }
      }
      await Promise.all(entries.map((entry) => entry.done.promise));
    },

    stats() {
      return { running, queued: queue.length };
    },
  };
}
