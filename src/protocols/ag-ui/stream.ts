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
import { EVENT_STREAM_HEADERS } from "../../server/sse.ts";
import { errorMessage } from "../../errors.ts";
import type { Logger } from "../../lib/logger.ts";
import { isTerminal, type Task } from "../../protocol/task.ts";
import { attachWatcher } from "../../server/watch.ts";
import { readLog, type TaskStore } from "../../store/store.ts";
import type { TaskRunner } from "../../tasks/runner.ts";
import { openCallsOf, RunTranslator, type AgUiEvent } from "./events.ts";

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
  follow?: (task: Task) => () => void;
  keepAliveMs?: number;
  /** How often a run whose task may be parking (waiting for people) reads the task's status. */
  waitPollMs?: number;
}

export function agUiStream(options: AgUiStreamOptions): Response {
  const { store, feed, runner, logger, task } = options;
  const translator = new RunTranslator({ threadId: options.threadId, runId: options.runId, taskId: task.id, model: options.model });
  const encoder = new TextEncoder();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  /** No more is written (ended, or the client left or was cut off). */
  let closed = false;
  let stopListening: (() => void) | undefined;
  let unfollow: (() => void) | undefined;
  let keepAlive: ReturnType<typeof setInterval> | undefined;
  let waitPoll: ReturnType<typeof setInterval> | undefined;
  let lastSeq = options.after;
  let mayWait = options.mayWait;
  let checking = false;
  /** A new task is submitted once the stream listens; a client gone before that cancels it right after. */
  let submitted = !options.submit;
  let cancelOnSubmit = false;

  const release = () => {
    closed = true;
    stopListening?.();
    unfollow?.();
    clearInterval(keepAlive);
    clearInterval(waitPoll);
    options.signal.removeEventListener("abort", clientGone);
  };

  /** The run's last event was written: end the response. */
  const end = () => {
    if (closed) return;
    release();
    try {
      controller.close();
    } catch {
      // The consumer went away meanwhile: nothing left to release.
    }
  };

  /** The client closed the stream before the run ended: cancel the task (AG-UI's abort). */
  function clientGone() {
    if (closed) return;
    release();
    if (translator.ending) return;
    logger.info("ag-ui: the client aborted the run; cancelling its task", { task: task.id, run: options.runId });
    if (submitted) cancel();
    else cancelOnSubmit = true;
  }

  function cancel() {
    runner.cancel(task.id).catch((error) => logger.warn("ag-ui: could not cancel an aborted run's task", { task: task.id, error: errorMessage(error) }));
  }

  const write = (events: AgUiEvent[]) => {
    if (closed || events.length === 0) return;
    controller.enqueue(encoder.encode(events.map((event) => `data: ${JSON.stringify(event)}\n\n`).join("")));
    if (translator.ending) return end();
    // Past the high-water mark the client is not reading: cut it off (what is queued still drains).
    // Not an abort: the task goes on, and can be watched or cancelled on every other endpoint.
    if ((controller.desiredSize ?? 0) < 0) {
      logger.warn("ag-ui: a client stopped reading; its stream is closed (the task goes on)", { task: task.id });
      end();
    }
  };

  const handle = (text: string, seq: number | undefined) => {
    if (closed) return;
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
   */
  async function checkWaiting() {
    if (closed || checking || !mayWait) return;
    checking = true;
    try {
      const current = await store.getTask(task.id);
      if (closed || !current) return;
      if (isTerminal(current.status)) return; // its result frame is on its way
      if (current.status !== "waiting" || current.last_seq > lastSeq) return;
      const calls = openCallsOf((await readLog(store, task.id)).map((event) => event.frame));
      if (closed) return;
      if (calls.length === 0) return;
      write(translator.interrupt(calls));
    } catch (error) {
      logger.warn("ag-ui: could not read a task's status", { task: task.id, error: errorMessage(error) });
    } finally {
      checking = false;
    }
  }

  const stream = new ReadableStream<Uint8Array>(
    {
      start(streamController) {
        controller = streamController;
        options.signal.addEventListener("abort", clientGone, { once: true });
        write(translator.start());
        keepAlive = setInterval(() => {
          if (!closed) controller.enqueue(encoder.encode(": keep-alive\n\n"));
        }, options.keepAliveMs ?? 5000);
        waitPoll = setInterval(() => void checkWaiting(), options.waitPollMs ?? 100);
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
              if (closed) return;
              stopListening = feed.listen(task.id, (frame, seq) => handle(frame, seq));
            },
            get closed() {
              return closed;
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
      cancel: clientGone,
    },
    { highWaterMark: options.slowClientBytes, size: (chunk) => chunk?.byteLength ?? 0 },
  );

  return new Response(stream, { headers: EVENT_STREAM_HEADERS });
}

function isResumed(frame: unknown): boolean {
  const data = (frame as { type?: unknown; data?: { event_type?: unknown } } | null)?.data;
  return (frame as { type?: unknown }).type === "step" && data?.event_type === "resumed";
}
