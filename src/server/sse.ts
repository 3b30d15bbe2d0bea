/**
 * Server-Sent Events for `GET /tasks/:id/events` with `Accept: text/event-stream`: the same frames
 * as the WebSocket, one per `data:` line; durable frames carry `id: <seq>`, so an EventSource that
 * reconnects sends `Last-Event-ID` and resumes with no gap and no duplicate.
 *
 * A server fault mid-stream sends `{"type":"error",…}` as a normal `data:` frame (never
 * `event: error`, which an EventSource would confuse with its own connection error), then ends.
 *
 * The stream ends after the `result` frame. A request with nothing left to send for an ended task
 * gets 204, which tells an EventSource to stop reconnecting. A client that stops reading is cut
 * off once `slowClientBytes` are queued (it resumes with Last-Event-ID).
 */
import type { LiveFeed } from "../bus/live-feed.ts";
import { AgentkitError, errorMessage } from "../errors.ts";
import type { Logger } from "../lib/logger.ts";
import { errorFrame, isResultFrame } from "../protocol/frames.ts";
import { isTerminal, type Task } from "../protocol/task.ts";
import type { TaskStore } from "../store/store.ts";
import { lastSeqOf, startStream } from "./watch.ts";
import { noTelemetry, type Telemetry } from "../telemetry/telemetry.ts";
import { eventStreamResponse, type EventStreams } from "./event-stream.ts";
import type { WatcherLimits } from "./watcher-limits.ts";

export interface SseOptions {
  /** When the share token that opened it expires (ms since the epoch): the stream ends then. */
  expiresAt?: number;
  store: TaskStore;
  feed: LiveFeed;
  logger: Logger;
  task: Task;
  after: number;
  deltas: boolean;
  slowClientBytes: number;
  slowClientGraceMs?: number;
  /** The server's open event streams (a shutdown ends them). */
  streams?: EventStreams;
  /** Comment lines this often keep proxies (and Bun's idle timeout) from closing a quiet stream. */
  keepAliveMs?: number;
  /** The request's signal: the client went away. */
  signal: AbortSignal;
  /** Cluster mode: follow a task that may run on another node while this stream is open. */
  follow?: (task: Task) => () => void;
  /** Watchers connected, slow clients cut off (metrics). */
  telemetry?: Telemetry;
  /** The watcher limits, shared with WebSocket connections; `key` is the caller's (a share token's owner's). */
  watchers?: WatcherLimits;
  key?: string;
}

export function sseResponse(options: SseOptions): Response {
  const { task, feed } = options;
  if (isTerminal(task.status) && options.after >= lastSeqOf(task, feed)) return new Response(null, { status: 204 });
  const telemetry = options.telemetry ?? noTelemetry;
  let stopListening: (() => void) | undefined;
  let unfollow: (() => void) | undefined;
  // Counted with the task's and the key's WebSocket watchers: past a limit, 429 (WebSocket: 4029).
  const counted = options.watchers?.acquire(task.id, options.key ?? "");
  if (counted && "refused" in counted) throw new AgentkitError("too_many_watchers", counted.refused);

  return eventStreamResponse({
    slowClientBytes: options.slowClientBytes,
    slowGraceMs: options.slowClientGraceMs,
    registry: options.streams,
    keepAliveMs: options.keepAliveMs,
    signal: options.signal,
    expiresAt: options.expiresAt,
    onClose(end) {
      counted?.release();
      telemetry.watcherClosed("sse");
      stopListening?.();
      unfollow?.();
    },
    start(stream) {
      telemetry.watcherOpened("sse");
      unfollow = options.follow?.(task);
      let lastSent = options.after;
      const writeFrame = (frame: string, seq: number | undefined) => {
        if (seq !== undefined) lastSent = seq;
        stream.write(seq === undefined ? `data: ${frame}\n\n` : `id: ${seq}\ndata: ${frame}\n\n`);
        if (seq !== undefined && isResultFrame(frame)) stream.close();
      };
      startStream({
        store: options.store,
        feed,
        task,
        after: options.after,
        sendControl: (frame) => writeFrame(frame, undefined),
        // After a resync the stream goes on from `pruned_through`.
        onResync: (prunedThrough) => (lastSent = prunedThrough),
        watcher: {
          send: ({ seq, frame }) => writeFrame(frame, seq),
          subscribe: () => {
            if (stream.closed) return;
            stopListening = feed.listen(task.id, writeFrame, { deltas: options.deltas });
          },
          get closed() {
            return stream.closed;
          },
          // The replay goes at the client's pace (a client that never reads stays queued at half the limit until it leaves).
          backlogged: () => stream.backlogged,
          drained: () => stream.drained(),
        },
      })
        .then(() => {
          // An ended task whose log was fully sent (or pruned) has nothing more to come.
          if (isTerminal(task.status) && lastSent >= lastSeqOf(task, feed)) stream.close();
        })
        .catch((error) => {
          options.logger.error("sse: could not stream", { task: task.id, error: errorMessage(error) });
          // A plain data frame, like every other: `event: error` would collide with EventSource's
          // own `error` event (connection lost), which carries no data.
          writeFrame(errorFrame("Internal server error", "internal"), undefined);
          stream.close();
        });
    },
  });
}
