/**
 * A provider reply that is large in one go (thousands of tool calls, or one huge argument, already
 * in the client's buffers): the adapter reads it in slices and gives the event loop turns between
 * them, instead of parsing it all in one chain of promises.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { createProviderFactories, ProviderError } from "../../src/llm/providers/index.ts";
import { MAX_STREAM_LINE_BYTES } from "../../src/llm/providers/bounded-lines.ts";
import { TooManyToolCallsError } from "../../src/llm/model.ts";
import { collect, controlledSseResponse, OPENAI_DONE, within, openAiChunk, openAiUsageChunk, rejectionOf, sseResponse, startLoopbackProvider, type LoopbackProvider } from "./loopback-provider.ts";

let provider: LoopbackProvider | undefined;
afterEach(() => provider?.stop());

describe("a large reply in one go", () => {
  test("thousands of tool calls: the event loop has a turn before the last one is read", async () => {
    const n = 5000;
    const body = Array.from({ length: n }, (_, index) =>
      openAiChunk({ tool_calls: [{ index, id: `call_${index}`, type: "function", function: { name: "calculator", arguments: '{"expression":"1+1"}' } }] }),
    ).join("");
    // One write: the whole reply is in the client's buffers before it reads the first part.
    provider = startLoopbackProvider(() => sseResponse([body + openAiChunk({}, "tool_calls") + openAiUsageChunk(1, 1) + OPENAI_DONE]));
    const model = createProviderFactories({ env: { OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: `${provider.url}/v1` }, retry: { maxRetries: 0 } }).openai!("gpt-test");
    let calls = 0;
    let callsAtTurn: number | undefined;
    for await (const part of model.stream({ messages: [{ role: "user", content: "go" }], tools: [], abortSignal: new AbortController().signal })) {
      if (part.type !== "tool-call") continue;
      if (++calls === 1) setImmediate(() => (callsAtTurn = calls));
    }
    expect(calls).toBe(n);
    expect(callsAtTurn).toBeDefined();
    expect(callsAtTurn!).toBeLessThan(n);
  });

  /** One tool call whose arguments come in one event of about `chars` characters. */
  function oneEventCall(chars: number): string[] {
    const args = JSON.stringify({ expression: "1".repeat(chars) });
    return [
      openAiChunk({ tool_calls: [{ index: 0, id: "call_big", type: "function", function: { name: "calculator", arguments: args } }] }),
      openAiChunk({}, "tool_calls"),
      openAiUsageChunk(1, 1),
      OPENAI_DONE,
    ];
  }
  const model = () =>
    createProviderFactories({ env: { OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: `${provider!.url}/v1` }, retry: { maxRetries: 0 } }).openai!("gpt-test");
  const request = () => ({ messages: [{ role: "user" as const, content: "go" }], tools: [], abortSignal: new AbortController().signal });

  test("an event line longer than the limit fails the stream there, naming the limit; one under it is read", async () => {
    provider = startLoopbackProvider(() => sseResponse(oneEventCall(MAX_STREAM_LINE_BYTES + 1000)));
    const error = await rejectionOf(collect(model().stream(request())));
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.code).toBe("stream_interrupted");
    expect(error.message).toContain(`a line of more than ${MAX_STREAM_LINE_BYTES} bytes`);
    provider.stop();

    provider = startLoopbackProvider(() => sseResponse(oneEventCall(MAX_STREAM_LINE_BYTES - 1000)));
    const parts = await collect(model().stream(request()));
    const call = parts.find((part) => part.type === "tool-call");
    expect(call?.type === "tool-call" && call.call.arguments.length).toBe(MAX_STREAM_LINE_BYTES - 1000 + '{"expression":""}'.length);
  });

  test("lines that end with CR alone (valid SSE) are lines: a reply of small events over 1 MiB in all is read; one long line still fails", async () => {
    const crOnly = (frames: string[]) => frames.map((frame) => frame.replaceAll("\n", "\r"));
    const events = Array.from({ length: 2000 }, () => openAiChunk({ content: "x".repeat(1000) }));
    provider = startLoopbackProvider(() => sseResponse(crOnly([...events, openAiChunk({}, "stop"), openAiUsageChunk(1, 1), OPENAI_DONE])));
    const parts = await collect(model().stream(request()));
    expect(parts.filter((part) => part.type === "text-delta")).toHaveLength(2000);
    provider.stop();

    provider = startLoopbackProvider(() => sseResponse(crOnly(oneEventCall(MAX_STREAM_LINE_BYTES + 1000))));
    const error = await rejectionOf(collect(model().stream(request())));
    expect(error.message).toContain(`a line of more than ${MAX_STREAM_LINE_BYTES} bytes`);
  });

  test("exactly the request's limit of tool calls is read whole (OpenAI: each call's start and its end count once)", async () => {
    const body = Array.from({ length: 128 }, (_, index) =>
      openAiChunk({ tool_calls: [{ index, id: `call_${index}`, type: "function", function: { name: "calculator", arguments: '{"expression":"1+1"}' } }] }),
    ).join("");
    provider = startLoopbackProvider(() => sseResponse([body + openAiChunk({}, "tool_calls") + openAiUsageChunk(1, 1) + OPENAI_DONE]));
    const parts = await collect(model().stream({ ...request(), maxToolCalls: 128 }));
    expect(parts.filter((part) => part.type === "tool-call")).toHaveLength(128);
  });

  test("one tool call over the request's limit fails the step as that call begins: the rest of the reply is not waited for", async () => {
    let gone: Promise<string> | undefined;
    provider = startLoopbackProvider((recorded) => {
      const stream = controlledSseResponse(recorded);
      gone = stream.clientGone;
      // 200 calls, and the reply stays open: OpenAI's SDK makes each `tool-call` only at its end.
      stream.send(
        Array.from({ length: 200 }, (_, index) =>
          openAiChunk({ tool_calls: [{ index, id: `call_${index}`, type: "function", function: { name: "calculator", arguments: '{"expression":"1+1"}' } }] }),
        ).join(""),
      );
      return stream.response;
    });
    const error = await within(rejectionOf(collect(model().stream({ ...request(), maxToolCalls: 128 }))), 5000, "the step to fail");
    expect(error).toBeInstanceOf(TooManyToolCallsError);
    expect(error.message).toContain("more than 128 tool calls in one step");
    expect(await within(gone!, 5000, "the provider to see the client go")).toBeString();
  });
});
