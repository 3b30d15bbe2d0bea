/**
 * One Server-Sent Events response, the way every stream of ours needs it (`GET /tasks/:id/events`,
 * A2A's `message/stream` and `tasks/resubscribe`, AG-UI's runs): a byte stream whose queue is
 * bounded by `slowClientBytes` — a client that stops reading is cut off, what is queued still
 * drains — a comment line every `keepAliveMs` so that proxies and Bun's idle timeout leave a quiet
 * stream open, and one `onClose` for whichever way it ends.
 */

import { timerAt, type Timer } from "../lib/timer.ts";
import { DEFAULT_SLOW_CLIENT_GRACE_MS, slowClientHardLimit } from "./slow-client.ts";

/** The headers of every Server-Sent Events response: no caching, no proxy buffering. */
export const EVENT_STREAM_HEADERS: Readonly<Record<string, string>> = {
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-cache",
  Connection: "keep-alive",
  "X-Accel-Buffering": "no",
};

/**
 * How a stream ended: its owner ended it, the client went away, the client stopped reading, or the
 * server is shutting down (`EventStreams.closeAll`: the task goes on, here after a restart or on
 * another node; the client reconnects).
 */
export type EventStreamEnd = "ended" | "client" | "slow" | "shutdown" | "expired";

/**
 * A server's open long responses (event streams, MCP calls), so that a shutdown ends them rather
 * than cutting their connections.
 */
export interface EventStreams {
  /** Ends every open stream as "shutdown" (what is queued still drains), and each one opened from now on. */
  closeAll(): void;
  readonly size: number;
  /**
   * Registers an open stream's closer; returns the function that unregisters it. After `closeAll`
   * (a request that was still on its way when the server began to stop) the closer runs at once, on
   * the next microtask.
   */
  add(close: () => void): () => void;
  /** A stream was cut off for not reading (SSE, A2A, AG-UI alike): counted by the server's metrics. */
  slowClosed(): void;
}

export function createEventStreams(options: { onSlow?: () => void } = {}): EventStreams {
  const open = new Set<() => void>();
  let closing = false;
  return {
    slowClosed() {
      options.onSlow?.();
    },
    closeAll() {
      closing = true;
      for (const close of [...open]) close();
    },
    get size() {
      return open.size;
    },
    add(close) {
      if (closing) {
        queueMicrotask(close);
        return () => {};
      }
      open.add(close);
      return () => void open.delete(close);
    },
  };
}

export interface EventStream {
  /**
   * Writes SSE text as it is (one or more whole events). Nothing once the stream is closed.
   * `uncounted`: the text does not count toward `slowClientBytes` (a snapshot the stream starts
   * with, whatever its size: counted, one past the limit would end the stream right after it).
   */
  write(text: string, options?: { uncounted?: boolean }): void;
  /** Ends the stream (what is queued still drains). */
  close(): void;
  /** Closed: ended by its owner, by the client going away, or for being slow. */
  readonly closed: boolean;
  /** More than half of `slowClientBytes` is queued: a writer that can wait should (`drained`). */
  readonly backlogged: boolean;
  /** Resolves once the client has read some of what is queued, or the stream closed. */
  drained(): Promise<void>;
}

export interface EventStreamOptions {
  /**
   * Most bytes queued for the client before it counts as not reading and is cut off — once its queue
   * stays past this for `slowGraceMs`, or at once past the hard limit (`slow-client.ts`).
   */
  slowClientBytes: number;
  /**
   * How long the queue may stay past `slowClientBytes` (default 1 s). Bun hands a stream's queue to
   * the socket only between turns of the event loop, so a burst written in one turn passes the
   * limit for a client that reads at full speed too (see `slow-client.ts`).
   */
  slowGraceMs?: number;
  /** A `: keep-alive` comment this often (default 5 s). */
  keepAliveMs?: number;
  /** A writer waiting in `drained` this long (default 30 s) means the client stopped reading: it is cut off as slow. */
  stallMs?: number;
  /** The request's signal: it aborts when the client goes away. */
  signal?: AbortSignal;
  /**
   * When the credential that opened it expires (ms since the epoch; a share token's): the stream
   * ends then ("expired"), as a request made with it then would be refused.
   */
  expiresAt?: number;
  /** The server's open streams: a shutdown ends this one ("shutdown") before the connections close. */
  registry?: EventStreams;
  /** Called once the stream can be written to. */
  start(stream: EventStream): void;
  /** The server is stopping: the stream's last words, written before it is closed ("shutdown"). */
  onShutdown?(stream: EventStream): void;
  /** Called once, however the stream ends, after it is closed. */
  onClose?(end: EventStreamEnd): void;
}

export function eventStreamResponse(options: EventStreamOptions): Response {
  const hardLimit = slowClientHardLimit(options.slowClientBytes);
  const encoder = new TextEncoder();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let closed = false;
  let keepAlive: ReturnType<typeof setInterval> | undefined;
  let drainWaiters: (() => void)[] = [];
  /** Chunks written `uncounted`: their size in the queue is 0. */
  const uncounted = new WeakSet<Uint8Array>();
  /** `performance.now()` when a writer began waiting for the client to read. */
  let waitingSince = 0;
  /** Set while the queue is past the limit: the client is cut off if it still is when this fires. */
  let overLimit: ReturnType<typeof setTimeout> | undefined;
  let unregister: (() => void) | undefined;
  let expiry: Timer | undefined;
  const queuedPastLimit = () => (controller.desiredSize ?? 0) < 0;
  const wake = () => {
    const waiters = drainWaiters;
    drainWaiters = [];
    for (const resolve of waiters) resolve();
  };

  const close = (end: EventStreamEnd) => {
    if (closed) return;
    closed = true;
    wake();
    clearInterval(keepAlive);
    clearTimeout(overLimit);
    expiry?.clear();
    unregister?.();
    options.signal?.removeEventListener("abort", clientGone);
    if (end === "slow") options.registry?.slowClosed();
    try {
      controller.close();
    } catch {
      // Already closed or errored by the consumer going away: nothing left to release.
    }
    options.onClose?.(end);
  };
  const clientGone = () => close("client");

  const stream: EventStream = {
    write(text, writeOptions) {
      if (closed) return;
      const chunk = encoder.encode(text);
      if (writeOptions?.uncounted) uncounted.add(chunk);
      controller.enqueue(chunk);
      if (!queuedPastLimit()) return;
      // Past the limit: a client that does not read it back under within the grace period (or lets
      // the hard limit pile up) is not reading — the stream ends; what is queued still drains.
      if (options.slowClientBytes - (controller.desiredSize ?? 0) > hardLimit) return close("slow");
      overLimit ??= setTimeout(() => {
        overLimit = undefined;
        if (queuedPastLimit()) close("slow");
      }, options.slowGraceMs ?? DEFAULT_SLOW_CLIENT_GRACE_MS);
    },
    close: () => close("ended"),
    get closed() {
      return closed;
    },
    get backlogged() {
      return (controller.desiredSize ?? 0) < options.slowClientBytes / 2;
    },
    drained() {
      if (closed) return Promise.resolve();
      if (drainWaiters.length === 0) waitingSince = performance.now();
      return new Promise<void>((resolve) => drainWaiters.push(resolve));
    },
  };

  const body = new ReadableStream<Uint8Array>(
    {
      start(streamController) {
        controller = streamController;
        options.signal?.addEventListener("abort", clientGone, { once: true });
        unregister = options.registry?.add(() => {
          if (!closed) options.onShutdown?.(stream);
          close("shutdown");
        });
        if (options.expiresAt !== undefined) expiry = timerAt(options.expiresAt, () => close("expired"));
        keepAlive = setInterval(() => {
          // A writer has waited for the client to read for too long: it is not reading.
          if (drainWaiters.length > 0 && performance.now() - waitingSince > (options.stallMs ?? 30_000)) return close("slow");
          stream.write(": keep-alive\n\n");
        }, options.keepAliveMs ?? 5000);
        try {
          options.start(stream);
        } catch (error) {
          // Its owner could not start it: nothing will write or close it, so it ends here (no
          // keep-alive left ticking on a dead stream); the Response is not made.
          close("ended");
          throw error;
        }
        // Gone before the stream started: `start` ran all the same, so its owner learns it in `onClose`.
        if (options.signal?.aborted) clientGone();
      },
      // Called after each read by the client (and after writes) while the queue is below the limit:
      // a waiting writer goes on once less than half the limit is queued.
      pull() {
        if (overLimit && !queuedPastLimit()) {
          clearTimeout(overLimit);
          overLimit = undefined;
        }
        if ((controller.desiredSize ?? 0) >= options.slowClientBytes / 2) wake();
      },
      cancel: clientGone,
    },
    { highWaterMark: options.slowClientBytes, size: (chunk) => (chunk === undefined || uncounted.has(chunk) ? 0 : chunk.byteLength) },
  );
  return new Response(body, { headers: EVENT_STREAM_HEADERS });
}
