/**
 * A fake model provider on 127.0.0.1: a real `Bun.serve` that records every request (path,
 * headers, parsed JSON body) and answers with whatever the test scripts — including Server-Sent
 * Events written byte for byte in the OpenAI and Anthropic streaming formats.
 */
import { deferred } from "../helpers/deferred.ts";

// Shared with the server tests: one definition of each.
export { deferred, within } from "../helpers/deferred.ts";

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Headers;
  body: any;
  /** Aborts when the client goes away (Bun forwards the socket closing to the request's signal). */
  signal: AbortSignal;
}

export type ProviderHandler = (request: RecordedRequest, index: number) => Response | Promise<Response>;

export interface LoopbackProvider {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly requests: RecordedRequest[];
  /** Closes the listener and every open connection at once (a hard cut for streams in flight). */
  stop(): void;
}

export function startLoopbackProvider(handler: ProviderHandler): LoopbackProvider {
  const requests: RecordedRequest[] = [];
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(request) {
      const text = await request.text();
      const recorded: RecordedRequest = {
        method: request.method,
        path: new URL(request.url).pathname,
        headers: request.headers,
        body: text === "" ? undefined : JSON.parse(text),
        signal: request.signal,
      };
      requests.push(recorded);
      return handler(recorded, requests.length - 1);
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    requests,
    stop: () => void server.stop(true),
  };
}

/** Collects every part of a model stream. */
export async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const parts: T[] = [];
  for await (const part of stream) parts.push(part);
  return parts;
}

/** Waits for a promise to reject and returns the reason (fails the test if it resolves). */
export async function rejectionOf(promise: Promise<unknown>): Promise<any> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the promise to reject, but it resolved");
}

const encoder = new TextEncoder();

/** An SSE response whose body is exactly `frames`, sent as separate writes, then closed. */
export function sseResponse(frames: readonly string[]): Response {
  return new Response(
    new ReadableStream<Uint8Array>({
      start(controller) {
        for (const frame of frames) controller.enqueue(encoder.encode(frame));
        controller.close();
      },
    }),
    { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } },
  );
}

export interface ControlledStream {
  response: Response;
  send(frame: string): void;
  /** Ends the body cleanly (the server closes its side normally). */
  end(): void;
  /** Resolves when the client went away: the body was cancelled or the request's signal aborted. */
  readonly clientGone: Promise<string>;
}

/** An SSE response the test writes to frame by frame, and that reports when the client disconnects. */
export function controlledSseResponse(request: RecordedRequest): ControlledStream {
  const gone = deferred<string>();
  request.signal.addEventListener("abort", () => gone.resolve("request signal aborted"), { once: true });
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(streamController) {
      controller = streamController;
    },
    cancel() {
      gone.resolve("response body cancelled");
    },
  });
  return {
    response: new Response(body, { headers: { "content-type": "text/event-stream" } }),
    send: (frame) => controller.enqueue(encoder.encode(frame)),
    end: () => controller.close(),
    clientGone: gone.promise,
  };
}

export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

// ── OpenAI Chat Completions streaming ──────────────────────────────────────────────────────────

/** One `data: {chunk}\n\n` frame of a `chat.completion.chunk`. */
export function openAiChunk(delta: Record<string, unknown>, finishReason: string | null = null): string {
  return openAiFrame({
    id: "chatcmpl-test",
    object: "chat.completion.chunk",
    created: 1_750_000_000,
    model: "gpt-test",
    system_fingerprint: "fp_test",
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  });
}

/** The trailing usage chunk sent when `stream_options.include_usage` is set: no choices. */
export function openAiUsageChunk(promptTokens: number, completionTokens: number): string {
  return openAiFrame({
    id: "chatcmpl-test",
    object: "chat.completion.chunk",
    created: 1_750_000_000,
    model: "gpt-test",
    choices: [],
    usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
  });
}

export function openAiFrame(payload: unknown): string {
  return `data: ${JSON.stringify(payload)}\n\n`;
}

export const OPENAI_DONE = "data: [DONE]\n\n";

/** A whole OpenAI text answer: role chunk, text deltas, finish, usage, [DONE]. */
export function openAiTextAnswer(texts: readonly string[], usage = { input: 10, output: 5 }): string[] {
  return [
    openAiChunk({ role: "assistant", content: "", refusal: null }),
    ...texts.map((text) => openAiChunk({ content: text })),
    openAiChunk({}, "stop"),
    openAiUsageChunk(usage.input, usage.output),
    OPENAI_DONE,
  ];
}

/** A whole OpenAI tool-call answer: optional text, one call whose arguments arrive in two fragments. */
export function openAiToolCallAnswer(
  call: { id: string; name: string; arguments: string },
  options: { text?: string; usage?: { input: number; output: number } } = {},
): string[] {
  const cut = Math.ceil(call.arguments.length / 2);
  const usage = options.usage ?? { input: 10, output: 5 };
  return [
    openAiChunk({ role: "assistant", content: options.text ? "" : null, refusal: null }),
    ...(options.text ? [openAiChunk({ content: options.text })] : []),
    openAiChunk({ tool_calls: [{ index: 0, id: call.id, type: "function", function: { name: call.name, arguments: "" } }] }),
    openAiChunk({ tool_calls: [{ index: 0, function: { arguments: call.arguments.slice(0, cut) } }] }),
    openAiChunk({ tool_calls: [{ index: 0, function: { arguments: call.arguments.slice(cut) } }] }),
    openAiChunk({}, "tool_calls"),
    openAiUsageChunk(usage.input, usage.output),
    OPENAI_DONE,
  ];
}

// ── Anthropic Messages streaming ───────────────────────────────────────────────────────────────

/** One `event: <type>\ndata: {json}\n\n` frame. */
export function anthropicEvent(type: string, data: Record<string, unknown>): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
}

/** A whole Anthropic text answer: message_start, one text block, message_delta, message_stop. */
export function anthropicTextAnswer(text: string, usage = { input: 10, output: 5 }): string[] {
  return [
    anthropicMessageStart(usage.input),
    anthropicEvent("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
    anthropicEvent("content_block_delta", { index: 0, delta: { type: "text_delta", text } }),
    anthropicEvent("content_block_stop", { index: 0 }),
    anthropicEvent("message_delta", { delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: usage.output } }),
    anthropicEvent("message_stop", {}),
  ];
}

export function anthropicMessageStart(inputTokens: number, model = "claude-test"): string {
  return anthropicEvent("message_start", {
    message: {
      id: "msg_test_01",
      type: "message",
      role: "assistant",
      model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 },
    },
  });
}
