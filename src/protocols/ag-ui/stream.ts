/**
 * The Server-Sent Events answer of an AG-UI run: `data: <event JSON>\n\n` per AG-UI event, as
 * `@ag-ui/client`'s `HttpAgent` parses it, built from one agentkit task's frames.
 *
 * The stream joins the task the way every agentkit watcher does (server/watch.ts `attachWatcher`:
 * stored events, then the live feed, with no gap and no duplicate; in a cluster, `follow` publishes
 * a task that runs on another node into this node's feed). A new task is submitted only once the
 * stream listens, so its live text deltas are all seen.
 *
 * It ends after the task's `result` (RUN_FINISHED / RUN_ERROR), or when the task waits for a
 * person (RUN_FINISHED with the interrupt outcome; the task stays `waiting`, and the next run
 * answers with `resume`). When the client goes away before that — `HttpAgent.abortRun()` aborts
 * its fetch — the task is cancelled (`runner.cancel`), as AG-UI means by aborting a run.
 */
import type { LiveFeed } from "../../bus/live-feed.ts";
import { eventStreamResponse, type EventStream, type EventStreams } from "../../server/event-stream.ts";
import { errorMessage } from "../../errors.ts";
import type { Logger } from "../../lib/logger.ts";
import { isTerminal, type Task } from "../../protocol/task.ts";
import { attachWatcher } from "../../server/watch.ts";
import type { TaskStore } from "../../store/store.ts";
import { coalesced } from "../../lib/turn.ts";
import type { TaskRunner } from "../../tasks/runner.ts";
import { readOpenCalls, RunTranslator, type AgUiEvent } from "./events.ts";

export interface AgUiStreamOptions {
  store: TaskStore;
  feed: LiveFeed;
  runner: TaskRunner;
  logger: Logger;
  task: Task;
  threadId: string;
  runId: string;
  /** `provider/model` of the task's agent (for `usage`). */
  model?: string;
  /** The last seq of the task this run does not show (0: all of it). */
  after: number;
  /** A new task: submitted once the stream listens. */
  submit?: () => void;
  /** The task waited for people when this run began (a resume): check whether it still does. */
  mayWait: boolean;
  /** The request's signal: the client went away. */
  signal: AbortSignal;
  slowClientBytes: number;
  slowClientGraceMs?: number;
  /** The server's open event streams (a shutdown ends them). */
  streams?: EventStreams;
  follow?: (task: Task) => () => void;
  keepAliveMs?: number;
  /**
   * How often a run whose task may be parking (waiting for people) reads the task's status
   * (default 1,000 ms): a safety net, as the feed tells of a park at once (`onParked`).
   */
  waitPollMs?: number;
}

export function agUiStream(options: AgUiStreamOptions): Response {
  const { store, feed, runner, logger, task } = options;
  const translator = new RunTranslator({ threadId: options.threadId, runId: options.runId, taskId: task.id, model: options.model });
  let stream!: EventStream;
  let stopListening: (() => void) | undefined;
  let unfollow: (() => void) | undefined;
  let waitPoll: ReturnType<typeof setInterval> | undefined;
  let unparked: (() => void) | undefined;
  let lastSeq = options.after;
  let mayWait = options.mayWait;
  /** A new task is submitted once the stream listens; a client gone before that cancels it right after. */
  let submitted = !options.submit;
  let cancelOnSubmit = false;

  function cancel() {
    runner.cancel(task.id).catch((error) => logger.warn("ag-ui: could not cancel an aborted run's task", { task: task.id, error: errorMessage(error) }));
  }

  const write = (events: AgUiEvent[]) => {
    if (stream.closed || events.length === 0) return;
    // The run's last event was written: end the response.
    const ending = translator.ending;
    stream.write(events.map((event) => `data: ${JSON.stringify(event)}\n\n`).join(""));
    if (ending) stream.close();
  };

  const handle = (text: string, seq: number | undefined) => {
    if (stream.closed) return;
    if (seq !== undefined) lastSeq = Math.max(lastSeq, seq);
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    write(translator.frame(frame));
    // Calls wait for people: the task may be parking. A `resumed` task runs again: it waits only if asked anew.
    if (isResumed(frame)) mayWait = translator.waitRequested;
    else if (translator.waitRequested) mayWait = true;
  };

  /**
   * A task parks (status `waiting`) after it stored its requests, with no frame to say so: while
   * one may be parking, read its status. Once it waits — and this stream has every event it stored
   * — the run ends with the interrupt outcome, carrying every call that waits (from the log).
   * One read at a time; a park told of during a read is read again right after it.
   */
  const checkWaiting = coalesced(async () => {
    if (stream.closed || !mayWait) return;
    try {
      const current = await store.getTask(task.id);
      if (stream.closed || !current) return;
      if (isTerminal(current.status)) return; // its result frame is on its way
      if (current.status !== "waiting" || current.last_seq > lastSeq) return;
      const calls = await readOpenCalls(store, task.id);
      if (stream.closed) return;
      if (calls.length === 0) return;
      write(translator.interrupt(calls));
    } catch (error) {
      logger.warn("ag-ui: could not read a task's status", { task: task.id, error: errorMessage(error) });
    }
  });

  return eventStreamResponse({
    slowClientBytes: options.slowClientBytes,
    slowGraceMs: options.slowClientGraceMs,
    registry: options.streams,
    keepAliveMs: options.keepAliveMs,
    signal: options.signal,
    // A run must end with RUN_FINISHED or RUN_ERROR: cut without either, a client takes what it has
    // for the whole run. The task itself goes on (after a restart, or on another node).
    onShutdown: () =>
      write(
        translator.fail(
          `The server is stopping; task ${task.id} goes on (after a restart, or on another node of a cluster): its answer will be in the thread, or at GET /tasks/${task.id}`,
          "server_stopping",
        ),
      ),
    onClose(end) {
      stopListening?.();
      unfollow?.();
      unparked?.();
      clearInterval(waitPoll);
      if (translator.ending) return; // the run's last event went out: nothing was cut short
      if (end === "slow") {
        // Not an abort: the task goes on, and can be watched or cancelled on every other endpoint.
        logger.warn("ag-ui: a client stopped reading; its stream is closed (the task goes on)", { task: task.id });
      } else if (end === "client") {
        // The client closed the stream before the run ended: cancel the task (AG-UI's abort).
        logger.info("ag-ui: the client aborted the run; cancelling its task", { task: task.id, run: options.runId });
        if (submitted) cancel();
        else cancelOnSubmit = true;
      }
      // "shutdown": this server is stopping, not the client: the task goes on (after a restart, or on another node).
    },
    start(started) {
      stream = started;
      write(translator.start());
      waitPoll = setInterval(() => void checkWaiting(), options.waitPollMs ?? 1_000);
      unparked = feed.onParked(task.id, () => void checkWaiting());
      unfollow = options.follow?.(task);
      let attached = false;
      attachWatcher({
        store,
        feed,
        taskId: task.id,
        after: options.after,
        watcher: {
          send: ({ seq, frame }) => handle(frame, seq),
          subscribe: () => {
            if (stream.closed) return;
            stopListening = feed.listen(task.id, (frame, seq) => handle(frame, seq), { deltas: true });
          },
          get closed() {
            return stream.closed;
          },
        },
      })
        .then(() => {
          attached = true;
          void checkWaiting();
        })
        .catch((error) => {
          logger.error("ag-ui: could not stream a task", { task: task.id, error: errorMessage(error) });
          write(translator.fail("Internal server error", "internal"));
        })
        .finally(() => {
          if (!options.submit) return;
          options.submit();
          submitted = true;
          // Nobody can see a new task whose stream failed to start, or whose client left already: it does not run unseen.
          if (!attached || cancelOnSubmit) cancel();
        });
    },
  });
}

function isResumed(frame: unknown): boolean {
  const data = (frame as { type?: unknown; data?: { event_type?: unknown } } | null)?.data;
  return (frame as { type?: unknown }).type === "step" && data?.event_type === "resumed";
}
