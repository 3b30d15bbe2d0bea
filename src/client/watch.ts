/**
 * `watch(taskId)`: a task's frames as an async iterator that survives dropped connections.
 *
 * It opens `GET /ws/tasks/:id?after=<last seq seen>` (the key as the `agentkit.key.<key>`
 * subprotocol, beside `agentkit`), yields what the server sends, and when the connection ends
 * before the task's `result` it reconnects with the seq of the last durable frame it yielded, so
 * the caller sees every durable frame (`step`, `result`) exactly once and in order:
 *
 * - reconnects on 4008 (too slow), 4408 (heartbeat), 1001 (server stopping), 1006 (connection
 *   lost), any other close it does not know, network errors, and a connection that has heard
 *   nothing for twice `pingIntervalMs` (it sends `{"type":"ping"}` every `pingIntervalMs`) —
 *   after a `reconnecting` frame, with exponential backoff and full jitter (250 ms × 2ⁿ, at most
 *   10 s; back to the start once a connection delivered frames);
 * - ends with an `AgentkitClientError` on 4001 (key), 4003, 4404 (unknown task: code `not_found`),
 *   4400, 4029, 1009, 1011 and protocol errors — retrying cannot change those — and after
 *   `maxRetries` failed reconnects in a row (`retries_exhausted`);
 * - yields `resync` (events pruned by retention) and goes on after its `pruned_through`;
 * - ends after `result` (or when it is clear no more will come: the task ended and the caller
 *   has its last event, or retention pruned all of it); `signal` ends it at once.
 *
 * Frames are checked cheaply (JSON, a string `type`, an integer `seq` on durable ones), not with
 * zod. `pong` frames and `error` frames are not yielded: an `error` frame is the server's reason
 * for the close that follows it, and becomes the thrown error's message (or the reconnect reason).
 * Frame types the client does not know are skipped (the protocol may grow).
 */
import { TERMINAL_STATUSES } from "../protocol/statuses.ts";
import type { TaskStatus } from "../protocol/task.ts";
import { AgentkitClientError, describe } from "./errors.ts";
import type { ReconnectingFrame, WatchFrame, WatchOptions, WebSocketConstructor, WebSocketLike } from "./types.ts";

export interface WatchContext {
  /** The server's base URL (http or https), without a trailing slash. */
  base: string;
  apiKey?: string;
  WebSocket?: WebSocketConstructor;
}

export const BACKOFF = { initialMs: 250, factor: 2, maxMs: 10_000 } as const;
const DEFAULT_PING_INTERVAL_MS = 15_000;
/** How long to wait for `close` after an `error` event before taking the connection as lost. */
const CLOSE_AFTER_ERROR_MS = 2_000;

/** Close codes after which reconnecting cannot help: the status each mirrors, and a code if the server sent no `error` frame. */
const FATAL_CLOSES: ReadonlyMap<number, { status: number; code: string }> = new Map([
  [4001, { status: 401, code: "unauthorized" }],
  [4003, { status: 403, code: "forbidden" }],
  [4404, { status: 404, code: "not_found" }],
  [4400, { status: 400, code: "bad_request" }],
  [4029, { status: 429, code: "too_many_watchers" }],
  [1009, { status: 413, code: "payload_too_large" }],
  [1011, { status: 500, code: "internal" }],
  [1002, { status: 0, code: "protocol_error" }],
  [1003, { status: 0, code: "protocol_error" }],
  [1007, { status: 0, code: "protocol_error" }],
  [1008, { status: 0, code: "protocol_error" }],
  [1010, { status: 0, code: "protocol_error" }],
]);

const TERMINAL: ReadonlySet<string> = new Set<TaskStatus>(TERMINAL_STATUSES);

export function watchTask(context: WatchContext, taskId: string, options: WatchOptions = {}): AsyncIterable<WatchFrame> {
  return { [Symbol.asyncIterator]: () => run(context, taskId, options) };
}

/** The delay before reconnect attempt `attempt` (1, 2, …): uniformly random in [0, min(max, initial × 2^(attempt−1))]. */
export function backoffDelay(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(BACKOFF.maxMs, BACKOFF.initialMs * BACKOFF.factor ** Math.max(0, attempt - 1));
  return Math.round(random() * ceiling);
}

async function* run(context: WatchContext, taskId: string, options: WatchOptions): AsyncGenerator<WatchFrame, void, undefined> {
  const after = options.after ?? 0;
  if (!Number.isSafeInteger(after) || after < 0) {
    throw new AgentkitClientError({ status: 0, code: "bad_request", message: `watch: after must be a non-negative integer, not ${after}` });
  }
  const Impl = context.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!Impl) {
    throw new AgentkitClientError({
      status: 0,
      code: "not_supported",
      message: "No WebSocket here: pass one as createClient({ WebSocket }) (on Node 20/21: the `ws` package, or run node with --experimental-websocket)",
    });
  }
  const signal = options.signal;
  const maxRetries = options.maxRetries ?? Number.POSITIVE_INFINITY;
  const pingIntervalMs = Math.max(1, options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS);
  const wsBase = context.base.replace(/^http/, "ws");
  const protocols = context.apiKey ? ["agentkit", `agentkit.key.${context.apiKey}`] : undefined;
  let lastSeq = after;
  let failures = 0;

  while (!signal?.aborted) {
    const url = `${wsBase}/ws/tasks/${encodeURIComponent(taskId)}?after=${lastSeq}${options.deltas === false ? "&deltas=0" : ""}`;
    let socket: WebSocketLike;
    try {
      socket = protocols ? new Impl(url, protocols) : new Impl(url);
    } catch (error) {
      // A URL or subprotocol the WebSocket refuses (a key with characters a subprotocol cannot carry).
      throw new AgentkitClientError({ status: 0, code: "bad_request", message: `watch: cannot open ${url.split("?")[0]}: ${describe(error)}`, cause: error });
    }
    const connection = new Connection(socket, pingIntervalMs, signal);
    let progressed = false;
    let refusal: { message?: string; code?: string } | undefined;
    let reason: string;
    try {
      for (;;) {
        const event = await connection.next();
        if (event.kind === "abort") return;
        if (event.kind === "lost") {
          reason = event.reason;
          break;
        }
        if (event.kind === "close") {
          const fatal = FATAL_CLOSES.get(event.code);
          if (fatal) {
            throw new AgentkitClientError({
              status: fatal.status,
              code: refusal?.code ?? fatal.code,
              message: refusal?.message ?? (event.reason || `The server closed the watch of task ${taskId} with ${event.code}`),
              closeCode: event.code,
            });
          }
          reason = closeReason(event.code, event.reason, refusal?.message);
          break;
        }
        const frame = parseFrame(event.data);
        if (!frame) continue;
        switch (frame.type) {
          case "connected": {
            yield frame as WatchFrame;
            // An ended task whose last event the caller has: nothing more will come.
            if (TERMINAL.has(frame.status as string) && (frame.last_seq as number) <= lastSeq) return;
            break;
          }
          case "step":
          case "result": {
            const seq = frame.seq;
            if (typeof seq !== "number" || !Number.isSafeInteger(seq)) {
              throw new AgentkitClientError({ status: 0, code: "protocol_error", message: `watch: a '${frame.type}' frame without a seq` });
            }
            progressed = true;
            if (seq <= lastSeq) break; // already yielded (never expected: the server resumes after `after`)
            lastSeq = seq;
            yield frame as WatchFrame;
            if (frame.type === "result") return;
            break;
          }
          case "resync": {
            progressed = true;
            const data = frame.data as { status?: unknown; last_seq?: unknown; pruned_through?: unknown } | undefined;
            const prunedThrough = typeof data?.pruned_through === "number" ? data.pruned_through : lastSeq;
            lastSeq = Math.max(lastSeq, prunedThrough);
            yield frame as WatchFrame;
            // Retention pruned the whole log of an ended task (its result too): nothing more will come.
            if (TERMINAL.has(data?.status as string) && typeof data?.last_seq === "number" && data.last_seq <= lastSeq) return;
            break;
          }
          case "delta":
          case "ack":
            progressed = true;
            yield frame as WatchFrame;
            break;
          case "error": {
            const data = frame.data as { message?: unknown; code?: unknown } | undefined;
            refusal = {
              message: typeof data?.message === "string" ? data.message : undefined,
              code: typeof data?.code === "string" ? data.code : undefined,
            };
            break;
          }
          default:
            // pong (our liveness pings), or a frame type this client does not know.
            break;
        }
      }
    } finally {
      connection.dispose();
    }
    if (progressed) failures = 0;
    failures++;
    if (failures > maxRetries) {
      throw new AgentkitClientError({
        status: 0,
        code: "retries_exhausted",
        message: `Gave up watching task ${taskId} after ${maxRetries} reconnect attempt${maxRetries === 1 ? "" : "s"}; last: ${reason}`,
      });
    }
    const delay = backoffDelay(failures);
    const reconnecting: ReconnectingFrame = { type: "reconnecting", attempt: failures, delay_ms: delay, reason };
    yield reconnecting;
    if (!(await sleep(delay, signal))) return;
  }
}

type RawFrame = { type: string; [field: string]: unknown };

function parseFrame(text: string): RawFrame | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || typeof (value as { type?: unknown }).type !== "string") return undefined;
  return value as RawFrame;
}

function closeReason(code: number, reason: string, serverMessage: string | undefined): string {
  const said = serverMessage ?? reason;
  if (code === 1006) return `connection lost (1006)${said ? `: ${said}` : ""}`;
  return `close ${code}${said ? `: ${said}` : ""}`;
}

/** Resolves true after `ms`, or false as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

type ConnectionEvent =
  | { kind: "message"; data: string }
  | { kind: "close"; code: number; reason: string }
  | { kind: "lost"; reason: string }
  | { kind: "abort" };

/** One WebSocket as a queue of events, with a liveness ping; `next()` waits for the next event. */
class Connection {
  private readonly queue: ConnectionEvent[] = [];
  private wake: (() => void) | undefined;
  private aborted = false;
  private ended = false;
  private lastHeard = Date.now();
  private readonly pinger: ReturnType<typeof setInterval>;
  private errorTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly onAbort = () => {
    this.aborted = true;
    this.notify();
  };

  // Plain fields, not parameter properties: Node's type stripping (`--experimental-strip-types`)
  // runs this file as it is only if it has no syntax that emits code.
  private readonly socket: WebSocketLike;
  private readonly pingIntervalMs: number;
  private readonly signal: AbortSignal | undefined;

  constructor(socket: WebSocketLike, pingIntervalMs: number, signal: AbortSignal | undefined) {
    this.socket = socket;
    this.pingIntervalMs = pingIntervalMs;
    this.signal = signal;
    try {
      socket.binaryType = "arraybuffer";
    } catch {
      // Not every implementation lets it be set; the server sends text anyway.
    }
    socket.onopen = () => {
      this.lastHeard = Date.now();
    };
    socket.onmessage = (event: { data: unknown }) => {
      this.lastHeard = Date.now();
      const text = decode(event.data);
      if (text !== undefined) this.push({ kind: "message", data: text });
    };
    socket.onclose = (event: { code: number; reason?: string }) => this.end({ kind: "close", code: event.code, reason: event.reason ?? "" });
    socket.onerror = () => {
      // A `close` follows an `error`; in case an implementation does not send one, give up on it soon.
      this.errorTimer ??= setTimeout(() => this.end({ kind: "lost", reason: "connection error" }), CLOSE_AFTER_ERROR_MS);
    };
    this.pinger = setInterval(() => this.tick(), pingIntervalMs);
    (this.pinger as { unref?: () => void }).unref?.();
    signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  next(): Promise<ConnectionEvent> {
    if (this.aborted) return Promise.resolve({ kind: "abort" });
    const event = this.queue.shift();
    if (event) return Promise.resolve(event);
    return new Promise((resolve) => {
      this.wake = () => {
        this.wake = undefined;
        resolve(this.aborted ? { kind: "abort" } : this.queue.shift()!);
      };
    });
  }

  /** Closes the socket (if it is still open) and stops listening. */
  dispose() {
    this.ended = true;
    clearInterval(this.pinger);
    if (this.errorTimer !== undefined) clearTimeout(this.errorTimer);
    this.signal?.removeEventListener("abort", this.onAbort);
    const socket = this.socket;
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    if (socket.readyState === 0 || socket.readyState === 1) {
      try {
        socket.close(1000);
      } catch {
        // Already closing.
      }
    }
  }

  private tick() {
    const silent = Date.now() - this.lastHeard;
    if (silent > 2 * this.pingIntervalMs) {
      this.end({ kind: "lost", reason: `no answer from the server for ${silent} ms` });
    } else if (this.socket.readyState === 1) {
      try {
        this.socket.send('{"type":"ping"}');
      } catch {
        // Closing: the close event says why.
      }
    }
  }

  private end(event: ConnectionEvent) {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.pinger);
    this.push(event);
  }

  private push(event: ConnectionEvent) {
    this.queue.push(event);
    this.notify();
  }

  private notify() {
    this.wake?.();
  }
}

const decoder = new TextDecoder();

function decode(data: unknown): string | undefined {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer) return decoder.decode(data);
  if (ArrayBuffer.isView(data)) return decoder.decode(data as Uint8Array);
  return undefined; // a Blob: the server sends text only
}
