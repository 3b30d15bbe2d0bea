/**
 * The `fetch` agentkit hands the MCP SDK's Streamable HTTP client transport. The SDK reads what a
 * server sends without any limit and keeps a request's response open after the request is given up:
 *
 * - a JSON body is read whole (`response.json()`): a 200 MB body took agentkit to 468 MB and held
 *   the event loop 186 ms, and a body that never ends grew it past 1 GB within seconds, on and on
 *   after the call had timed out;
 * - an SSE event is buffered whole before it is parsed: one 200 MB event, 695 MB and 370 ms;
 * - an error status's body is read whole into the error message (100 MB read, 200 KB of it shown to
 *   the model);
 * - a response stream is closed only with the whole connection: a call that timed out or was
 *   cancelled left its stream open, still delivering whatever the server sent.
 *
 * So here: one message (a JSON body, a batch, one SSE event) may be at most MAX_HTTP_MESSAGE_BYTES
 * (10 MiB, the SDK's stdio limit); past it the request gets a JSON-RPC error in place of its response
 * and the rest is not read (on a stream without a request, the stream ends with an error). An error
 * status's body is cut to MAX_ERROR_BODY_BYTES. And when the client cancels a request (a timeout, an
 * abort: the SDK sends `notifications/cancelled`), the HTTP request that carries its response is
 * aborted.
 */
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js";
import { readAtMost } from "../../lib/bounded-read.ts";

/** The most one message from an HTTP server may hold: the MCP SDK's limit for a stdio message. */
export const MAX_HTTP_MESSAGE_BYTES = 10 * 1024 * 1024;
/** How much of an error response (4xx, 5xx) is read, for the error message. */
export const MAX_ERROR_BODY_BYTES = 1024;
/** The JSON-RPC error code of a response agentkit did not read because it was too large. */
export const MESSAGE_TOO_LARGE_CODE = -32603;
export const MESSAGE_TOO_LARGE_REASON = "agentkit_message_too_large";

type RequestId = string | number;

export interface GuardedFetchOptions {
  maxMessageBytes?: number;
  /** Told when a message was cut off (for the log). */
  onMessageTooLarge?(detail: { kind: "json" | "sse"; limitBytes: number }): void;
}

export function tooLargeMessage(limitBytes: number): string {
  return `the server sent a message larger than ${formatBytes(limitBytes)} (agentkit's limit for one MCP message); the rest was not read`;
}

/** A fetch for one transport: it keeps the in-flight requests' abort controllers by JSON-RPC id. */
export function createGuardedFetch(options: GuardedFetchOptions = {}, baseFetch: FetchLike = fetch): FetchLike {
  const limit = options.maxMessageBytes ?? MAX_HTTP_MESSAGE_BYTES;
  const inFlight = new Map<RequestId, AbortController>();

  return async (url, init) => {
    const outgoing = readOutgoing(init);
    for (const id of outgoing.cancels) {
      inFlight.get(id)?.abort(new Error(`MCP request ${id} was cancelled`));
      inFlight.delete(id);
    }

    const controller = new AbortController();
    const parent = init?.signal;
    const forward = () => controller.abort(parent?.reason);
    if (parent?.aborted) forward();
    else parent?.addEventListener("abort", forward, { once: true });
    for (const id of outgoing.requestIds) inFlight.set(id, controller);
    const done = () => {
      parent?.removeEventListener("abort", forward);
      for (const id of outgoing.requestIds) if (inFlight.get(id) === controller) inFlight.delete(id);
    };

    let response: Response;
    try {
      response = await baseFetch(url, { ...init, signal: controller.signal });
    } catch (error) {
      done();
      throw error;
    }
    try {
      if (!response.body) {
        done();
        return response;
      }
      // Not 2xx (a 3xx fetch did not follow too): the SDK reads the whole body into its error.
      if (!response.ok) {
        const text = await readPrefix(response.body, MAX_ERROR_BODY_BYTES);
        done();
        return new Response(text, { status: response.status, statusText: response.statusText, headers: response.headers });
      }
      const type = mediaType(response.headers.get("content-type"));
      if (type === "application/json") {
        const body = await readAtMost(response.body, limit);
        done();
        if (body === undefined) {
          options.onMessageTooLarge?.({ kind: "json", limitBytes: limit });
          return jsonResponse(response, JSON.stringify(tooLargeErrors(outgoing.requestIds, limit)));
        }
        return jsonResponse(response, body);
      }
      if (type === "text/event-stream") {
        const guarded = guardSseStream(
          response.body,
          limit,
          () => {
            options.onMessageTooLarge?.({ kind: "sse", limitBytes: limit });
            return outgoing.requestIds.map((id) => `data: ${JSON.stringify(tooLargeError(id, limit))}\n\n`).join("");
          },
          done,
        );
        return new Response(guarded, { status: response.status, statusText: response.statusText, headers: response.headers });
      }
      done();
      return response;
    } catch (error) {
      done();
      throw error;
    }
  };
}

function jsonResponse(response: Response, body: string | Uint8Array): Response {
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
}

function tooLargeError(id: RequestId, limit: number) {
  return { jsonrpc: "2.0", id, error: { code: MESSAGE_TOO_LARGE_CODE, message: tooLargeMessage(limit), data: { reason: MESSAGE_TOO_LARGE_REASON } } };
}

function tooLargeErrors(ids: RequestId[], limit: number): unknown {
  if (ids.length === 1) return tooLargeError(ids[0]!, limit);
  return ids.map((id) => tooLargeError(id, limit));
}

/** The JSON-RPC requests (by id) and cancellations in an outgoing POST body. */
function readOutgoing(init: RequestInit | undefined): { requestIds: RequestId[]; cancels: RequestId[] } {
  const requestIds: RequestId[] = [];
  const cancels: RequestId[] = [];
  if (init?.method !== "POST" || typeof init.body !== "string") return { requestIds, cancels };
  let parsed: unknown;
  try {
    parsed = JSON.parse(init.body);
  } catch {
    return { requestIds, cancels };
  }
  for (const message of Array.isArray(parsed) ? parsed : [parsed]) {
    if (typeof message !== "object" || message === null) continue;
    const { id, method, params } = message as { id?: unknown; method?: unknown; params?: { requestId?: unknown } };
    if (typeof method !== "string") continue;
    if (typeof id === "string" || typeof id === "number") requestIds.push(id);
    else if (method === "notifications/cancelled") {
      const requestId = params?.requestId;
      if (typeof requestId === "string" || typeof requestId === "number") cancels.push(requestId);
    }
  }
  return { requestIds, cancels };
}

function mediaType(contentType: string | null): string {
  return (contentType ?? "").split(";")[0]!.trim().toLowerCase();
}

/** At most `limit` bytes of the body as text (with "…" when there was more); the rest is not read. */
async function readPrefix(body: ReadableStream<Uint8Array>, limit: number): Promise<string> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let more = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
      if (size > limit) {
        more = true;
        break;
      }
    }
  } catch {
    // A body cut mid-way: what arrived is the message.
  } finally {
    await reader.cancel().catch(() => {});
  }
  const text = new TextDecoder().decode(Buffer.concat(chunks, size).subarray(0, limit));
  return more ? `${text}…` : text;
}

/**
 * An SSE stream is handed on in slices of at most this many bytes, with a turn of the event loop
 * between them: the SDK parses (JSON, then its schema) every event of what it is given at once, and a
 * flood of small notifications read in one big chunk held /health 50–110 ms before the flood guard
 * (MAX_MESSAGES_PER_SECOND) could cut it.
 */
const SSE_SLICE_BYTES = 16 * 1024;

const LF = 10;
const CR = 13;

/**
 * Passes an SSE stream through, as it is read, while no event (the bytes between blank lines) exceeds
 * `limit`. Past it: ends the event in progress, appends `replacement()` (the too-large errors of the
 * POST's requests) and ends; with no replacement (a stream without requests) it errors instead.
 */
function guardSseStream(body: ReadableStream<Uint8Array>, limit: number, replacement: () => string, done: () => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const overflowAt = sseEventCounter(limit);
  let rest: Uint8Array | undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let value: Uint8Array;
        if (rest) {
          // The SDK parses the events of a slice without yielding; the loop gets a turn between slices.
          await new Promise((resolve) => setImmediate(resolve));
          value = rest;
          rest = undefined;
        } else {
          let chunk: Awaited<ReturnType<typeof reader.read>>;
          try {
            chunk = await reader.read();
          } catch (error) {
            done();
            controller.error(error);
            return;
          }
          if (chunk.done) {
            done();
            controller.close();
            return;
          }
          value = chunk.value;
        }
        if (value.length > SSE_SLICE_BYTES) {
          rest = value.subarray(SSE_SLICE_BYTES);
          value = value.subarray(0, SSE_SLICE_BYTES);
        }
        const cut = overflowAt(value);
        if (cut === -1) {
          controller.enqueue(value);
          return;
        }
        rest = undefined;
        if (cut > 0) controller.enqueue(value.subarray(0, cut));
        const errors = replacement();
        done();
        void reader.cancel().catch(() => {});
        if (errors === "") {
          controller.error(new Error(tooLargeMessage(limit)));
          return;
        }
        controller.enqueue(new TextEncoder().encode(`\n\n${errors}`));
        controller.close();
      },
      cancel(reason) {
        done();
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * Counts the bytes of the SSE event in progress across chunks; returns, for a chunk, the offset at
 * which its event passes `limit` bytes, or -1. Every line end SSE allows (CRLF, LF, CR) is honoured,
 * so a big event cannot hide behind CRLFs.
 */
function sseEventCounter(limit: number): (chunk: Uint8Array) => number {
  let eventBytes = 0;
  let lineBytes = 0;
  let afterCR = false;
  return (chunk) => {
    // Where the next LF and CR are, found once each and reused until passed: searched afresh for
    // every line, a slice of many short lines and no CR was searched to its end once per line.
    let nextLF = -1;
    let nextCR = -1;
    const find = (byte: number, from: number) => {
      const at = chunk.indexOf(byte, from);
      return at === -1 ? chunk.length : at;
    };
    for (let index = 0; index < chunk.length; index++) {
      const byte = chunk[index];
      if (byte === LF || byte === CR) {
        if (byte === LF && afterCR) {
          afterCR = false; // the LF of a CRLF: the line ended at its CR
          continue;
        }
        afterCR = byte === CR;
        if (lineBytes === 0) eventBytes = 0; // a blank line: the event is complete
        lineBytes = 0;
        continue;
      }
      afterCR = false;
      // The rest of the line at once: this must not walk megabytes byte by byte.
      if (nextLF < index) nextLF = find(LF, index);
      if (nextCR < index) nextCR = find(CR, index);
      const end = Math.min(nextLF, nextCR);
      const room = limit - eventBytes;
      if (end - index > room) return index + room;
      lineBytes += end - index;
      eventBytes += end - index;
      index = end - 1;
    }
    return -1;
  };
}

function formatBytes(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes} bytes`;
}
