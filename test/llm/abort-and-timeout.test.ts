/**
 * Cancellation and deadlines reach the HTTP request: the loopback server must see the request go
 * away promptly when the task aborts, when the consumer stops reading, or when the per-request
 * timeout fires — and no abort listener is left on the task's signal afterwards.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { ModelRequest } from "../../src/llm/model.ts";
import { createProviderFactories, ProviderError } from "../../src/llm/providers/index.ts";
import {
  collect,
  controlledSseResponse,
  deferred,
  openAiChunk,
  openAiTextAnswer,
  rejectionOf,
  sseResponse,
  startLoopbackProvider,
  within,
  type ControlledStream,
  type LoopbackProvider,
} from "./loopback-provider.ts";

let provider: LoopbackProvider | undefined;
afterEach(() => provider?.stop());

function openAiModel(url: string, options: { requestTimeoutMs?: number; maxRetries?: number } = {}) {
  const factories = createProviderFactories({
    env: { OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: `${url}/v1` },
    retry: { maxRetries: options.maxRetries ?? 0 },
    requestTimeoutMs: options.requestTimeoutMs,
    sleep: async () => {},
  });
  return factories.openai!("gpt-test");
}

function request(abortSignal: AbortSignal): ModelRequest {
  return { messages: [{ role: "user", content: "Tell me a long story" }], tools: [], abortSignal };
}

/** A server whose stream sends one text chunk, then stalls until the client goes away. */
function startSlowProvider() {
  const stream = deferred<ControlledStream>();
  const server = startLoopbackProvider((recorded) => {
    const controlled = controlledSseResponse(recorded);
    controlled.send(openAiChunk({ role: "assistant", content: "" }));
    controlled.send(openAiChunk({ content: "Once upon a time" }));
    stream.resolve(controlled);
    return controlled.response;
  });
  return { server, stream: stream.promise };
}

/** Counts abort listeners added to and removed from a signal. */
function trackListeners(signal: AbortSignal) {
  const active = new Set<unknown>();
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = ((...args: Parameters<AbortSignal["addEventListener"]>) => {
    active.add(args[1]);
    add(...args);
  }) as AbortSignal["addEventListener"];
  signal.removeEventListener = ((...args: Parameters<AbortSignal["removeEventListener"]>) => {
    active.delete(args[1]);
    remove(...args);
  }) as AbortSignal["removeEventListener"];
  return {
    get active() {
      return active.size;
    },
  };
}

describe("abort", () => {
  test("cancel during a slow stream aborts the HTTP request at once and rejects with the task's reason", async () => {
    const slow = startSlowProvider();
    provider = slow.server;
    const controller = new AbortController();
    const iterator = openAiModel(provider.url).stream(request(controller.signal))[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toEqual({ type: "text-delta", text: "Once upon a time" });
    const stream = await slow.stream;

    const pending = iterator.next();
    const reason = new Error("cancelled by user");
    controller.abort(reason);

    expect(await rejectionOf(within(pending, 2_000, "the stream to reject"))).toBe(reason);
    expect(await within(stream.clientGone, 2_000, "the server to see the request closed")).toBeString();
  });

  test("cancel before the response arrives aborts the pending request", async () => {
    const received = deferred<AbortSignal>();
    const closed = deferred<void>();
    provider = startLoopbackProvider((recorded) => {
      recorded.signal.addEventListener("abort", () => closed.resolve(), { once: true });
      received.resolve(recorded.signal);
      return new Promise<Response>(() => {}); // never answers
    });
    const controller = new AbortController();
    const pending = collect(openAiModel(provider.url).stream(request(controller.signal)));
    await received.promise;
    const reason = new Error("cancelled early");
    controller.abort(reason);
    expect(await rejectionOf(within(pending, 2_000, "the stream to reject"))).toBe(reason);
    await within(closed.promise, 2_000, "the server to see the request aborted");
  });

  test("a consumer that stops reading early closes the HTTP request", async () => {
    const slow = startSlowProvider();
    provider = slow.server;
    for await (const part of openAiModel(provider.url).stream(request(new AbortController().signal))) {
      expect(part).toEqual({ type: "text-delta", text: "Once upon a time" });
      break;
    }
    const stream = await slow.stream;
    expect(await within(stream.clientGone, 2_000, "the server to see the request closed")).toBeString();
  });

  test("an already aborted signal sends no request", async () => {
    provider = startLoopbackProvider(() => sseResponse(openAiTextAnswer(["never"])));
    const controller = new AbortController();
    const reason = new Error("gone");
    controller.abort(reason);
    expect(await rejectionOf(collect(openAiModel(provider.url).stream(request(controller.signal))))).toBe(reason);
    expect(provider.requests).toHaveLength(0);
  });

  test("no abort listener is left on the task's signal after a step, a failure or an abort", async () => {
    provider = startLoopbackProvider((_request, index) =>
      index === 1 ? new Response("{}", { status: 500 }) : sseResponse(openAiTextAnswer(["ok"])),
    );
    const controller = new AbortController();
    const listeners = trackListeners(controller.signal);
    const model = openAiModel(provider.url);
    await collect(model.stream(request(controller.signal)));
    expect(listeners.active).toBe(0);
    await rejectionOf(collect(model.stream(request(controller.signal))));
    expect(listeners.active).toBe(0);
    for await (const _part of model.stream(request(controller.signal))) break;
    expect(listeners.active).toBe(0);
  });
});

describe("per-request timeout", () => {
  test("no response in time: each attempt times out, then a clear error", async () => {
    const closed: Promise<void>[] = [];
    provider = startLoopbackProvider((recorded) => {
      const gone = deferred<void>();
      recorded.signal.addEventListener("abort", () => gone.resolve(), { once: true });
      closed.push(gone.promise);
      return new Promise<Response>(() => {}); // never answers
    });
    const error = await rejectionOf(
      collect(openAiModel(provider.url, { requestTimeoutMs: 50, maxRetries: 1 }).stream(request(new AbortController().signal))),
    );
    expect(error).toBeInstanceOf(ProviderError);
    expect(error).toMatchObject({ code: "timeout", retryable: true, attempts: 2 });
    expect(error.message).toBe("openai/gpt-test: no response within 50 ms after 2 attempts");
    expect(provider.requests).toHaveLength(2);
    await within(Promise.all(closed), 2_000, "the server to see both requests aborted");
  });

  test("a stream that stalls past the timeout is aborted and rejects", async () => {
    const slow = startSlowProvider();
    provider = slow.server;
    const parts: unknown[] = [];
    const error = await rejectionOf(
      (async () => {
        for await (const part of openAiModel(provider!.url, { requestTimeoutMs: 100 }).stream(request(new AbortController().signal))) {
          parts.push(part);
        }
      })(),
    );
    expect(parts).toEqual([{ type: "text-delta", text: "Once upon a time" }]);
    expect(error).toMatchObject({ code: "timeout", attempts: 1 });
    expect(error.message).toBe("openai/gpt-test: the response did not complete within 100 ms");
    const stream = await slow.stream;
    await within(stream.clientGone, 2_000, "the server to see the request closed");
  });
});
