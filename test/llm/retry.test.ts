/**
 * Retries before the first stream byte: 429 with Retry-After, 5xx until attempts run out, network
 * errors, non-retryable statuses, and the backoff maths. Sleeps are injected and recorded, so no
 * test waits for a real backoff.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { ModelRequest } from "../../src/llm/model.ts";
import {
  createProviderFactories,
  DEFAULT_RETRY,
  ProviderError,
  retryAfterMs,
  retryDelayMs,
  type RetryOptions,
  type Sleep,
} from "../../src/llm/providers/index.ts";
import { sleep as abortableSleep } from "../../src/lib/abort.ts";
import {
  collect,
  deferred,
  jsonResponse,
  openAiTextAnswer,
  rejectionOf,
  sseResponse,
  startLoopbackProvider,
  within,
  type LoopbackProvider,
} from "./loopback-provider.ts";

let provider: LoopbackProvider | undefined;
afterEach(() => provider?.stop());

const serverError = { error: { message: "The server had an error while processing your request.", type: "server_error", param: null, code: null } };

function openAiModel(url: string, options: { sleep?: Sleep; sleeps?: number[]; retry?: RetryOptions } = {}) {
  const sleeps = options.sleeps ?? [];
  const factories = createProviderFactories({
    env: { OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: `${url}/v1` },
    retry: options.retry,
    sleep: options.sleep ?? (async (ms) => void sleeps.push(ms)),
    random: () => 0.5,
  });
  return factories.openai!("gpt-test");
}

function request(abortSignal = new AbortController().signal): ModelRequest {
  return { messages: [{ role: "user", content: "Hi" }], tools: [], abortSignal };
}

describe("retries", () => {
  test("429 with Retry-After (seconds) waits as asked, then succeeds", async () => {
    provider = startLoopbackProvider((_request, index) =>
      index === 0
        ? jsonResponse(429, { error: { message: "Rate limit reached", type: "requests", code: "rate_limit_exceeded" } }, { "retry-after": "2" })
        : sseResponse(openAiTextAnswer(["Hello"])),
    );
    const sleeps: number[] = [];
    const parts = await collect(openAiModel(provider.url, { sleeps }).stream(request()));
    expect(provider.requests).toHaveLength(2);
    expect(sleeps).toEqual([2000]);
    expect(parts).toEqual([
      { type: "text-delta", text: "Hello" },
      { type: "finish", finishReason: "stop", usage: { inputTokens: 10, outputTokens: 5 } },
    ]);
    // The retried request is the same request.
    expect(provider.requests[1]!.body).toEqual(provider.requests[0]!.body);
  });

  test("429 with Retry-After as an HTTP date waits until that date", async () => {
    const retryAt = new Date(Date.now() + 30_000).toUTCString();
    provider = startLoopbackProvider((_request, index) =>
      index === 0 ? jsonResponse(429, { error: { message: "slow down" } }, { "retry-after": retryAt }) : sseResponse(openAiTextAnswer(["ok"])),
    );
    const sleeps: number[] = [];
    await collect(openAiModel(provider.url, { sleeps }).stream(request()));
    expect(sleeps).toHaveLength(1);
    // HTTP dates have one-second resolution.
    expect(sleeps[0]!).toBeGreaterThan(28_000);
    expect(sleeps[0]!).toBeLessThanOrEqual(30_000);
  });

  test("500 on every attempt: rejects after 4 attempts with status, provider message and backoff", async () => {
    provider = startLoopbackProvider(() => jsonResponse(500, serverError));
    const sleeps: number[] = [];
    const error = await rejectionOf(collect(openAiModel(provider.url, { sleeps }).stream(request())));

    expect(provider.requests).toHaveLength(4);
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.message).toBe("openai/gpt-test: HTTP 500 after 4 attempts: The server had an error while processing your request.");
    expect(error).toMatchObject({ code: "http_error", status: 500, retryable: true, attempts: 4, provider: "openai", modelId: "openai/gpt-test" });
    // initialDelayMs 500, doubling, equal jitter at random() = 0.5 → 75 % of each exponential step.
    expect(sleeps).toEqual([375, 750, 1500]);
  });

  test("a non-retryable status (400) fails at once, with the provider's message", async () => {
    provider = startLoopbackProvider(() =>
      jsonResponse(400, { error: { message: "Invalid schema for function 'calculator'", type: "invalid_request_error", param: "tools[0]", code: null } }),
    );
    const sleeps: number[] = [];
    const error = await rejectionOf(collect(openAiModel(provider.url, { sleeps }).stream(request())));
    expect(provider.requests).toHaveLength(1);
    expect(sleeps).toEqual([]);
    expect(error.message).toBe("openai/gpt-test: HTTP 400 after 1 attempt: Invalid schema for function 'calculator'");
    expect(error).toMatchObject({ code: "http_error", status: 400, retryable: false, attempts: 1 });
  });

  test("501 Not Implemented (and 505) is not retried: the request will never work there", async () => {
    for (const status of [501, 505]) {
      provider?.stop();
      provider = startLoopbackProvider(() => jsonResponse(status, { error: { message: "Streaming is not implemented here", type: "server_error", param: null, code: null } }));
      const sleeps: number[] = [];
      const error = await rejectionOf(collect(openAiModel(provider.url, { sleeps }).stream(request())));
      expect(provider.requests).toHaveLength(1);
      expect(sleeps).toEqual([]);
      expect(error).toMatchObject({ code: "http_error", status, retryable: false, attempts: 1 });
    }
  });

  test("an error body that is not the provider's JSON (a proxy's HTML page) is quoted", async () => {
    provider = startLoopbackProvider(
      () => new Response("<html><body>upstream connect error</body></html>", { status: 502, statusText: "Bad Gateway", headers: { "content-type": "text/html" } }),
    );
    const error = await rejectionOf(collect(openAiModel(provider.url, { retry: { maxRetries: 0 } }).stream(request())));
    expect(error.message).toBe("openai/gpt-test: HTTP 502 after 1 attempt: Bad Gateway: <html><body>upstream connect error</body></html>");
  });

  test("network errors (connection refused) are retried, then reported", async () => {
    const closed = startLoopbackProvider(() => new Response("unused"));
    closed.stop(); // nothing listens on this port any more
    const sleeps: number[] = [];
    const error = await rejectionOf(collect(openAiModel(closed.url, { sleeps, retry: { maxRetries: 2 } }).stream(request())));
    expect(error).toBeInstanceOf(ProviderError);
    expect(error).toMatchObject({ code: "network_error", status: undefined, retryable: true, attempts: 3 });
    expect(error.message).toStartWith("openai/gpt-test: network error after 3 attempts: ");
    expect(sleeps).toHaveLength(2);
  });

  test("a Retry-After longer than maxDelayMs is not waited for", async () => {
    provider = startLoopbackProvider(() => jsonResponse(429, { error: { message: "quota exhausted" } }, { "retry-after": "3600" }));
    const sleeps: number[] = [];
    const error = await rejectionOf(collect(openAiModel(provider.url, { sleeps }).stream(request())));
    expect(provider.requests).toHaveLength(1);
    expect(sleeps).toEqual([]);
    expect(error).toMatchObject({ status: 429, retryable: true, attempts: 1 });
    expect(error.message).toBe("openai/gpt-test: HTTP 429 after 1 attempt: quota exhausted");
  });

  test("abort during the backoff wait rejects at once with the task's reason and sends nothing more", async () => {
    provider = startLoopbackProvider(() => jsonResponse(503, { error: { message: "unavailable" } }));
    const waiting = deferred<void>();
    const sleep: Sleep = (ms, signal) => {
      waiting.resolve();
      return abortableSleep(ms, signal);
    };
    const controller = new AbortController();
    const pending = collect(openAiModel(provider.url, { sleep, retry: { initialDelayMs: 60_000 } }).stream(request(controller.signal)));
    await waiting.promise;
    const reason = new Error("task cancelled");
    controller.abort(reason);
    expect(await rejectionOf(within(pending, 2_000, "the stream to reject"))).toBe(reason);
    expect(provider.requests).toHaveLength(1);
  });
});

describe("retry policy", () => {
  test("Retry-After: seconds, HTTP date, retry-after-ms, absent or unreadable", () => {
    const now = Date.parse("Wed, 21 Oct 2025 07:28:00 GMT");
    expect(retryAfterMs({ "retry-after": "7" }, now)).toBe(7000);
    expect(retryAfterMs({ "Retry-After": "1.5" }, now)).toBe(1500);
    expect(retryAfterMs({ "retry-after": "Wed, 21 Oct 2025 07:28:10 GMT" }, now)).toBe(10_000);
    expect(retryAfterMs({ "retry-after": "Wed, 21 Oct 2025 07:27:00 GMT" }, now)).toBe(0);
    expect(retryAfterMs({ "retry-after-ms": "250", "retry-after": "9" }, now)).toBe(250);
    expect(retryAfterMs({ "retry-after": "soon" }, now)).toBeUndefined();
    expect(retryAfterMs({}, now)).toBeUndefined();
    expect(retryAfterMs(undefined, now)).toBeUndefined();
  });

  test("backoff doubles, is capped by maxDelayMs, and jitters within [half, full]", () => {
    const policy = { ...DEFAULT_RETRY, initialDelayMs: 1000, maxDelayMs: 5000 };
    const delay = (retry: number, random: number) => retryDelayMs({ retry, retryAfterMs: undefined, policy, random: () => random });
    expect([1, 2, 3, 4, 5].map((retry) => delay(retry, 0.999_999))).toEqual([1000, 2000, 4000, 5000, 5000]);
    expect([1, 2, 3, 4].map((retry) => delay(retry, 0))).toEqual([500, 1000, 2000, 2500]);
  });

  test("a provider's Retry-After wins over backoff, unless it exceeds maxDelayMs", () => {
    const policy = { ...DEFAULT_RETRY, maxDelayMs: 10_000 };
    expect(retryDelayMs({ retry: 1, retryAfterMs: 4_000, policy, random: () => 0 })).toBe(4_000);
    expect(retryDelayMs({ retry: 1, retryAfterMs: 10_001, policy, random: () => 0 })).toBeUndefined();
  });
});
