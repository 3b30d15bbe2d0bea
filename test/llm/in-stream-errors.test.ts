/**
 * Errors a provider reports inside a 200 event stream, through the OpenAI and Anthropic adapters
 * against a loopback server, down to the task's error: the provider's own words, `stream_error`
 * (not retried) unless the error's type is a transient one (then retried before any output, and
 * classified `rate_limited` / `provider_unavailable`), and a step that has begun never replayed.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { ChatModel, ModelRequest, ModelStreamPart } from "../../src/llm/model.ts";
import { createProviderFactories, ProviderError } from "../../src/llm/providers/index.ts";
import type { TaskErrorCode } from "../../src/protocol/task.ts";
import { toTaskError } from "../../src/tasks/task-error.ts";
import {
  anthropicEvent,
  anthropicMessageStart,
  anthropicTextAnswer,
  jsonResponse,
  openAiChunk,
  openAiFrame,
  openAiTextAnswer,
  rejectionOf,
  sseResponse,
  startLoopbackProvider,
  type LoopbackProvider,
} from "./loopback-provider.ts";

let provider: LoopbackProvider | undefined;
afterEach(() => provider?.stop());

function model(kind: "openai" | "anthropic", url: string): ChatModel {
  const factories = createProviderFactories({
    env: { OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: `${url}/v1`, ANTHROPIC_API_KEY: "sk-ant-test", ANTHROPIC_BASE_URL: `${url}/v1` },
    sleep: async () => {},
    random: () => 0.5,
  });
  return kind === "openai" ? factories.openai!("gpt-test") : factories.anthropic!("claude-test");
}

const request = (): ModelRequest => ({ messages: [{ role: "user", content: "Hi" }], tools: [], abortSignal: new AbortController().signal });

/** Streams one step; the parts it gave, and the error it ended with (with the task's view of it). */
async function step(kind: "openai" | "anthropic") {
  const parts: ModelStreamPart[] = [];
  const error = await rejectionOf(
    (async () => {
      for await (const part of model(kind, provider!.url).stream(request())) parts.push(part);
    })(),
  );
  expect(error).toBeInstanceOf(ProviderError);
  return { parts, error: error as ProviderError, task: toTaskError(error), requests: provider!.requests.length };
}

const openAiError = (error: Record<string, unknown>) => openAiFrame({ error });
const anthropicError = (type: string, message: string) => anthropicEvent("error", { error: { type, message } });

describe("an error event before any output", () => {
  const opaque: Array<[string, "openai" | "anthropic", string, string]> = [
    ["OpenAI, no type at all", "openai", openAiError({ message: "no type at all" }), "no type at all"],
    ["OpenAI, a type nobody documents", "openai", openAiError({ message: "odd", type: "something_else" }), "odd"],
    ["OpenAI, a request the provider refuses", "openai", openAiError({ message: "bad thing", type: "invalid_request_error" }), "bad thing"],
    ["Anthropic, a type nobody documents", "anthropic", anthropicError("weird_error", "odd"), "odd"],
    ["Anthropic, a request the provider refuses", "anthropic", anthropicError("invalid_request_error", "nope"), "nope"],
  ];
  for (const [name, kind, frame, words] of opaque) {
    test(`${name}: stream_error with the provider's words, no status, sent once`, async () => {
      provider = startLoopbackProvider(() => sseResponse([frame]));
      const { error, task, requests } = await step(kind);
      const id = kind === "openai" ? "openai/gpt-test" : "anthropic/claude-test";
      expect({ code: error.code, status: error.status, retryable: error.retryable, attempts: error.attempts, message: error.message }).toEqual({
        code: "stream_error",
        status: undefined,
        retryable: false,
        attempts: 1,
        message: `${id}: provider error in stream: ${words}`,
      });
      expect(task).toEqual({ code: "stream_error", message: error.message, retryable: false });
      expect(requests).toBe(1);
    });
  }

  const transient: Array<[string, "openai" | "anthropic", string, string, TaskErrorCode]> = [
    ["Anthropic overloaded_error", "anthropic", anthropicError("overloaded_error", "Overloaded"), "Overloaded", "provider_unavailable"],
    ["Anthropic rate_limit_error", "anthropic", anthropicError("rate_limit_error", "Slow down"), "Slow down", "rate_limited"],
    ["Anthropic api_error", "anthropic", anthropicError("api_error", "Internal trouble"), "Internal trouble", "provider_unavailable"],
    ["OpenAI server_error", "openai", openAiError({ message: "boom inside", type: "server_error" }), "boom inside", "provider_unavailable"],
    ["OpenAI rate_limit_exceeded", "openai", openAiError({ message: "Rate limit reached", type: "requests", code: "rate_limit_exceeded" }), "Rate limit reached", "rate_limited"],
  ];
  for (const [name, kind, frame, words, code] of transient) {
    test(`${name}: transient, retried; when it persists, ${code} with the provider's words`, async () => {
      const answer = kind === "openai" ? openAiTextAnswer(["recovered"]) : anthropicTextAnswer("recovered");
      provider = startLoopbackProvider((_request, index) => sseResponse(index === 0 ? [frame] : answer));
      const parts: ModelStreamPart[] = [];
      for await (const part of model(kind, provider.url).stream(request())) parts.push(part);
      expect(parts[0]).toEqual({ type: "text-delta", text: "recovered" });
      expect(provider.requests).toHaveLength(2);
      provider.stop();

      provider = startLoopbackProvider(() => sseResponse([frame]));
      const { error, task, requests } = await step(kind);
      const id = kind === "openai" ? "openai/gpt-test" : "anthropic/claude-test";
      expect({ code: error.code, status: error.status, retryable: error.retryable, message: error.message }).toEqual({
        code: "stream_error",
        status: undefined,
        retryable: true,
        message: `${id}: provider error in stream after 4 attempts: ${words}`,
      });
      expect(task).toEqual({ code, message: error.message, retryable: true });
      expect(requests).toBe(4);
    });
  }

  test("a real HTTP 500 (a JSON error body, not an event stream) is still an HTTP error", async () => {
    provider = startLoopbackProvider(() => jsonResponse(500, { error: { message: "no type at all" } }));
    const { error, task, requests } = await step("openai");
    expect([error.code, error.status, error.message]).toEqual(["http_error", 500, "openai/gpt-test: HTTP 500 after 4 attempts: no type at all"]);
    expect(task.code).toBe("provider_unavailable");
    expect(requests).toBe(4);
  });
});

describe("an error event after the response began, before any output", () => {
  test("Anthropic: message_start, then overloaded_error (as Anthropic sends it): asked again; when it persists, provider_unavailable after 4 attempts", async () => {
    const failing = [anthropicMessageStart(10), anthropicError("overloaded_error", "Overloaded")];
    provider = startLoopbackProvider((_request, index) => sseResponse(index === 0 ? failing : anthropicTextAnswer("recovered")));
    const parts: ModelStreamPart[] = [];
    for await (const part of model("anthropic", provider.url).stream(request())) parts.push(part);
    expect(parts[0]).toEqual({ type: "text-delta", text: "recovered" });
    expect(parts.at(-1)?.type).toBe("finish");
    expect(provider.requests).toHaveLength(2);
    provider.stop();

    provider = startLoopbackProvider(() => sseResponse(failing));
    const { parts: none, error, task, requests } = await step("anthropic");
    expect(none).toEqual([]);
    expect({ code: error.code, retryable: error.retryable, attempts: error.attempts, message: error.message }).toEqual({
      code: "stream_error",
      retryable: true,
      attempts: 4,
      message: "anthropic/claude-test: provider error in stream after 4 attempts: Overloaded",
    });
    expect(task).toEqual({ code: "provider_unavailable", message: error.message, retryable: true });
    expect(requests).toBe(4);
  });

  test("a type that is not transient is not asked again, even before any output", async () => {
    provider = startLoopbackProvider(() => sseResponse([anthropicMessageStart(10), anthropicError("invalid_request_error", "nope")]));
    const { error, task, requests } = await step("anthropic");
    expect([error.code, error.retryable, requests]).toEqual(["stream_error", false, 1]);
    expect(task).toEqual({ code: "stream_error", message: "anthropic/claude-test: provider error in stream: nope", retryable: false });
  });
});

describe("an error event after output: never replayed", () => {
  test("OpenAI: text, then a server_error: one request, the text delivered once; provider_unavailable by its type", async () => {
    provider = startLoopbackProvider(() =>
      sseResponse([openAiChunk({ role: "assistant", content: "" }), openAiChunk({ content: "Half" }), openAiError({ message: "mid-stream", type: "server_error" })]),
    );
    const { parts, error, task, requests } = await step("openai");
    expect(parts).toEqual([{ type: "text-delta", text: "Half" }]);
    expect([error.code, error.message, requests]).toEqual(["stream_error", "openai/gpt-test: provider error in stream: mid-stream", 1]);
    expect(task).toEqual({ code: "provider_unavailable", message: error.message, retryable: true });
  });

  test("OpenAI: text, then an error of a type nobody documents (or none): stream_error, not the SDK's made-up 500", async () => {
    for (const error of [{ message: "odd", type: "something_else" }, { message: "odd" }]) {
      provider?.stop();
      provider = startLoopbackProvider(() => sseResponse([openAiChunk({ role: "assistant", content: "" }), openAiChunk({ content: "Half" }), openAiError(error)]));
      const said = await step("openai");
      expect(said.parts).toEqual([{ type: "text-delta", text: "Half" }]);
      expect(said.requests).toBe(1);
      expect(said.task).toEqual({ code: "stream_error", message: "openai/gpt-test: provider error in stream: odd", retryable: false });
      expect(said.error.status).toBeUndefined();
    }
  });

  test("Anthropic: text, then overloaded_error: one request; then a type nobody documents: stream_error", async () => {
    const begun = [
      anthropicMessageStart(10),
      anthropicEvent("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
      anthropicEvent("content_block_delta", { index: 0, delta: { type: "text_delta", text: "Partial" } }),
    ];
    provider = startLoopbackProvider(() => sseResponse([...begun, anthropicError("overloaded_error", "Overloaded")]));
    const overloaded = await step("anthropic");
    expect(overloaded.parts).toEqual([{ type: "text-delta", text: "Partial" }]);
    expect([overloaded.error.code, overloaded.requests]).toEqual(["stream_error", 1]);
    expect(overloaded.task).toEqual({ code: "provider_unavailable", message: "anthropic/claude-test: provider error in stream: Overloaded", retryable: true });
    provider.stop();

    provider = startLoopbackProvider(() => sseResponse([...begun, anthropicError("weird_error", "odd")]));
    const weird = await step("anthropic");
    expect(weird.requests).toBe(1);
    expect(weird.task).toEqual({ code: "stream_error", message: "anthropic/claude-test: provider error in stream: odd", retryable: false });
  });
});
