/**
 * The OpenAI adapter against a loopback server speaking Chat Completions streaming byte for byte:
 * what we send (messages, tool calls and results, tools as JSON Schema) and what we make of what
 * comes back (text, fragmented parallel tool calls, usage, malformed arguments, broken streams).
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { ChatMessage, ModelRequest } from "../../src/llm/model.ts";
import { createProviderFactories, ProviderError } from "../../src/llm/providers/index.ts";
import { calculatorTool } from "../../src/tools/calculator.ts";
import { toolSpec } from "../../src/tools/tool.ts";
import {
  collect,
  controlledSseResponse,
  deferred,
  OPENAI_DONE,
  openAiChunk,
  openAiFrame,
  openAiTextAnswer,
  openAiUsageChunk,
  rejectionOf,
  sseResponse,
  startLoopbackProvider,
  within,
  type LoopbackProvider,
} from "./loopback-provider.ts";

let provider: LoopbackProvider | undefined;
afterEach(() => provider?.stop());

function openAiModel(url: string, modelName = "gpt-test") {
  const factories = createProviderFactories({
    env: { OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: `${url}/v1` },
    retry: { maxRetries: 0 },
  });
  return factories.openai!(modelName);
}

function request(messages: ChatMessage[], extra: Partial<ModelRequest> = {}): ModelRequest {
  return { messages, tools: [], abortSignal: new AbortController().signal, ...extra };
}

const timeTool = { name: "current_time", description: "Current time", inputSchema: { type: "object", properties: { timezone: { type: "string" } } } };

describe("OpenAI Chat Completions streaming", () => {
  test("streams text, two parallel tool calls with fragmented arguments, and the usage chunk", async () => {
    provider = startLoopbackProvider(() =>
      sseResponse([
        openAiChunk({ role: "assistant", content: "", refusal: null }),
        openAiChunk({ content: "Let me " }),
        openAiChunk({ content: "check both." }),
        openAiChunk({ tool_calls: [{ index: 0, id: "call_a", type: "function", function: { name: "calculator", arguments: "" } }] }),
        openAiChunk({ tool_calls: [{ index: 0, function: { arguments: '{"expre' } }] }),
        openAiChunk({ tool_calls: [{ index: 1, id: "call_b", type: "function", function: { name: "current_time", arguments: "" } }] }),
        openAiChunk({ tool_calls: [{ index: 0, function: { arguments: 'ssion":"6*7"}' } }] }),
        openAiChunk({ tool_calls: [{ index: 1, function: { arguments: '{"timezone":' } }] }),
        openAiChunk({ tool_calls: [{ index: 1, function: { arguments: '"UTC"}' } }] }),
        openAiChunk({}, "tool_calls"),
        openAiUsageChunk(120, 35),
        OPENAI_DONE,
      ]),
    );
    const model = openAiModel(provider.url);
    const parts = await collect(
      model.stream(request([{ role: "user", content: "What is 6*7, and what time is it?" }], { tools: [toolSpec(calculatorTool), timeTool] })),
    );

    expect(model.id).toBe("openai/gpt-test");
    expect(parts).toEqual([
      { type: "text-delta", text: "Let me " },
      { type: "text-delta", text: "check both." },
      { type: "tool-call", call: { id: "call_a", name: "calculator", arguments: '{"expression":"6*7"}' } },
      { type: "tool-call", call: { id: "call_b", name: "current_time", arguments: '{"timezone":"UTC"}' } },
      { type: "finish", finishReason: "tool-calls", usage: { inputTokens: 120, outputTokens: 35 } },
    ]);
  });

  test("sends the conversation as OpenAI messages: assistant tool_calls, tool results, tools as JSON Schema", async () => {
    provider = startLoopbackProvider(() => sseResponse(openAiTextAnswer(["ok"])));
    const model = openAiModel(provider.url);
    await collect(
      model.stream(
        request(
          [
            { role: "user", content: "What is 1+1?" },
            {
              role: "assistant",
              content: "Using the calculator.",
              toolCalls: [
                { id: "call_0", name: "calculator", arguments: '{"expression":"1+1"}' },
                { id: "call_x", name: "calculator", arguments: '{"expression": 1+' },
              ],
            },
            { role: "tool", toolCallId: "call_0", toolName: "calculator", content: '{"expression":"1+1","value":2}', isError: false },
            { role: "tool", toolCallId: "call_x", toolName: "calculator", content: "Error (invalid_arguments): bad JSON", isError: true },
            { role: "assistant", content: "1+1 = 2" },
            { role: "user", content: "Thanks" },
          ],
          { system: "You are terse.", tools: [toolSpec(calculatorTool)], maxOutputTokens: 256 },
        ),
      ),
    );

    expect(provider.requests).toHaveLength(1);
    const sent = provider.requests[0]!;
    expect(sent.method).toBe("POST");
    expect(sent.path).toBe("/v1/chat/completions");
    expect(sent.headers.get("authorization")).toBe("Bearer sk-test");
    expect(sent.headers.get("content-type")).toStartWith("application/json");
    expect(sent.body.model).toBe("gpt-test");
    expect(sent.body.stream).toBe(true);
    expect(sent.body.stream_options).toEqual({ include_usage: true });
    expect(sent.body.max_tokens).toBe(256);
    expect(sent.body.messages).toEqual([
      { role: "system", content: "You are terse." },
      { role: "user", content: "What is 1+1?" },
      {
        role: "assistant",
        content: "Using the calculator.",
        tool_calls: [
          { id: "call_0", type: "function", function: { name: "calculator", arguments: '{"expression":"1+1"}' } },
          // Malformed arguments from an earlier step are replayed as an empty object.
          { id: "call_x", type: "function", function: { name: "calculator", arguments: "{}" } },
        ],
      },
      { role: "tool", tool_call_id: "call_0", content: '{"expression":"1+1","value":2}' },
      { role: "tool", tool_call_id: "call_x", content: JSON.stringify({ error: "Error (invalid_arguments): bad JSON" }) },
      { role: "assistant", content: "1+1 = 2" },
      { role: "user", content: "Thanks" },
    ]);
    expect(sent.body.tools).toEqual([
      { type: "function", function: { name: "calculator", description: calculatorTool.description, parameters: toolSpec(calculatorTool).inputSchema } },
    ]);
    expect(sent.body.tool_choice).toBe("auto");
  });

  test("sends no tools when the agent has none", async () => {
    provider = startLoopbackProvider(() => sseResponse(openAiTextAnswer(["Hello", " there"])));
    const parts = await collect(openAiModel(provider.url).stream(request([{ role: "user", content: "Hi" }])));
    expect(parts).toEqual([
      { type: "text-delta", text: "Hello" },
      { type: "text-delta", text: " there" },
      { type: "finish", finishReason: "stop", usage: { inputTokens: 10, outputTokens: 5 } },
    ]);
    expect(provider.requests[0]!.body.tools).toBeUndefined();
    expect(provider.requests[0]!.body.tool_choice).toBeUndefined();
  });

  test("passes malformed tool-call arguments and unknown tool names through raw", async () => {
    provider = startLoopbackProvider(() =>
      sseResponse([
        openAiChunk({ role: "assistant", content: null }),
        openAiChunk({ tool_calls: [{ index: 0, id: "call_bad", type: "function", function: { name: "calculator", arguments: '{"expression": 6*' } }] }),
        openAiChunk({ tool_calls: [{ index: 0, function: { arguments: "7" } }] }),
        openAiChunk({ tool_calls: [{ index: 1, id: "call_unknown", type: "function", function: { name: "no_such_tool", arguments: "{}" } }] }),
        openAiChunk({}, "tool_calls"),
        openAiUsageChunk(20, 9),
        OPENAI_DONE,
      ]),
    );
    const parts = await collect(openAiModel(provider.url).stream(request([{ role: "user", content: "6*7?" }], { tools: [toolSpec(calculatorTool)] })));
    expect(parts).toEqual([
      { type: "tool-call", call: { id: "call_bad", name: "calculator", arguments: '{"expression": 6*7' } },
      { type: "tool-call", call: { id: "call_unknown", name: "no_such_tool", arguments: "{}" } },
      { type: "finish", finishReason: "tool-calls", usage: { inputTokens: 20, outputTokens: 9 } },
    ]);
  });

  test("a stream that ends without a finish reason rejects as interrupted", async () => {
    provider = startLoopbackProvider(() =>
      sseResponse([openAiChunk({ role: "assistant", content: "" }), openAiChunk({ content: "Half an ans" })]),
    );
    const seen: unknown[] = [];
    const error = await rejectionOf(
      (async () => {
        for await (const part of openAiModel(provider!.url).stream(request([{ role: "user", content: "Hi" }]))) seen.push(part);
      })(),
    );
    expect(seen).toEqual([{ type: "text-delta", text: "Half an ans" }]);
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.code).toBe("stream_interrupted");
    expect(error.message).toBe("openai/gpt-test: stream interrupted: the response ended before the provider signalled completion");
  });

  test("a web page answering 200 (a wrong baseURL, a proxy's login page) is no stream: request_failed, not retried, naming its content type", async () => {
    provider = startLoopbackProvider(() => new Response("<!doctype html><html><body>Sign in</body></html>", { headers: { "content-type": "text/html; charset=utf-8" } }));
    const factories = createProviderFactories({ env: { OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: `${provider.url}/v1` }, retry: { maxRetries: 2, initialDelayMs: 1, maxDelayMs: 2 } });
    const error = await rejectionOf(collect(factories.openai!("gpt-test").stream(request([{ role: "user", content: "Hi" }]))));
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.code).toBe("request_failed");
    expect(error.retryable).toBe(false);
    expect(error.message).toBe("openai/gpt-test: the provider's URL answered with text/html; charset=utf-8, not an event stream: check the provider's baseURL");
    expect(provider.requests.length).toBe(1);

    // An event stream cut before its first chunk is still a cut stream (retryable), whatever its charset.
    provider.stop();
    provider = startLoopbackProvider(() => new Response("", { headers: { "content-type": "text/event-stream; charset=utf-8" } }));
    const cut = await rejectionOf(collect(openAiModel(provider.url).stream(request([{ role: "user", content: "Hi" }]))));
    expect(cut.code).toBe("stream_interrupted");
    expect(cut.retryable).toBe(true);

    // A stream a proxy labels text/plain that delivered some of the answer, then was cut: a cut stream, not a web page.
    provider.stop();
    const chunks = [openAiChunk({ role: "assistant", content: "" }), openAiChunk({ content: "Half an ans" })].join("");
    provider = startLoopbackProvider(() => new Response(chunks, { headers: { "content-type": "text/plain" } }));
    const labelled = await rejectionOf(collect(openAiModel(provider.url).stream(request([{ role: "user", content: "Hi" }]))));
    expect(labelled.code).toBe("stream_interrupted");
    expect(labelled.retryable).toBe(true);
  });

  test("a connection cut mid-stream rejects with a clear error", async () => {
    const sent = deferred<void>();
    provider = startLoopbackProvider((recorded) => {
      const stream = controlledSseResponse(recorded);
      stream.send(openAiChunk({ role: "assistant", content: "" }));
      stream.send(openAiChunk({ content: "The answer is" }));
      sent.resolve();
      return stream.response;
    });
    const iterator = openAiModel(provider.url).stream(request([{ role: "user", content: "Hi" }]))[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toEqual({ type: "text-delta", text: "The answer is" });
    await sent.promise;
    provider.stop(); // closes the open connection without finishing the chunked body

    const error = await rejectionOf(within(iterator.next(), 5_000, "the stream to fail"));
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.code).toBe("stream_interrupted");
    expect(error.provider).toBe("openai");
    expect(error.message).toStartWith("openai/gpt-test: stream interrupted: ");
    expect(error.message).toContain("closed");
  });

  test("a chunk that is not JSON (a proxy's glitch, not the provider's word) is an unreadable stream: stream_interrupted, retryable", async () => {
    provider = startLoopbackProvider(() =>
      sseResponse([openAiChunk({ role: "assistant", content: "" }), openAiChunk({ content: "Working" }), "data: {not json\n\n"]),
    );
    const error = await rejectionOf(collect(openAiModel(provider.url).stream(request([{ role: "user", content: "Hi" }]))));
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.code).toBe("stream_interrupted");
    expect(error.retryable).toBe(true);
    expect(error.message).toStartWith("openai/gpt-test: stream interrupted: the provider sent a chunk that cannot be read: ");
  });

  test("an error chunk after output rejects with the provider's message", async () => {
    provider = startLoopbackProvider(() =>
      sseResponse([
        openAiChunk({ role: "assistant", content: "" }),
        openAiChunk({ content: "Working" }),
        openAiFrame({ error: { message: "The model is overloaded mid-stream", type: "server_error", code: null } }),
      ]),
    );
    const error = await rejectionOf(collect(openAiModel(provider.url).stream(request([{ role: "user", content: "Hi" }]))));
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.code).toBe("stream_error");
    expect(error.message).toBe("openai/gpt-test: provider error in stream: The model is overloaded mid-stream");
  });
});

/**
 * A stream cut short is the same error whichever provider kind carries it: `openai/` (the OpenAI
 * SDK ends it with an `interrupted` finish), and a named OpenAI-compatible endpoint
 * (`providers.endpoints`) or Ollama (the OpenAI-compatible SDK reports an error part, "Response
 * stream ended without a finish reason", which was taken for the provider's word: `stream_error`,
 * not retryable).
 */
describe("a stream cut short, through each OpenAI-speaking provider kind", () => {
  function modelOf(kind: "openai" | "endpoint" | "ollama", url: string, maxRetries = 0) {
    const factories = createProviderFactories({
      env: { OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: `${url}/v1`, OLLAMA_HOST: url },
      endpoints: [{ name: "local", baseURL: `${url}/v1` }],
      retry: { maxRetries, initialDelayMs: 1 },
    });
    return kind === "openai" ? factories.openai!("gpt-test") : kind === "endpoint" ? factories.local!("gpt-test") : factories.ollama!("gpt-test");
  }
  /** An event stream that sends `frames`, then breaks the connection 100 ms later (no end of the body). */
  function cutAfter(frames: readonly string[]): Response {
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const frame of frames) controller.enqueue(encoder.encode(frame));
        setTimeout(() => controller.error(new Error("connection lost")), 100);
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  }
  const idOf = { openai: "openai/gpt-test", endpoint: "local/gpt-test", ollama: "ollama/gpt-test" } as const;

  /** Streams `model` to its end; the parts it gave and the error it ended with. */
  async function run(model: ReturnType<typeof modelOf>) {
    const seen: unknown[] = [];
    const error = await rejectionOf(
      (async () => {
        for await (const part of model.stream(request([{ role: "user", content: "Hi" }]))) seen.push(part);
      })(),
    );
    return { seen, error };
  }

  for (const kind of ["openai", "endpoint", "ollama"] as const) {
    test(`${kind}: the role chunk, then the connection breaks before any output (a reasoning model thinking): stream_interrupted, tried again — not the provider's word`, async () => {
      // The OpenAI SDK reads ahead to the first output chunk; a break there reached us wrapped as
      // "Failed to process successful response" and was taken for an error the provider reported.
      const cutFirst = (index: number) => (index > 0 ? sseResponse(openAiTextAnswer(["recovered"])) : cutAfter([openAiChunk({ role: "assistant", content: "" })]));
      provider = startLoopbackProvider((_request, index) => cutFirst(index));
      const { error } = await run(modelOf(kind, provider.url));
      expect(error).toBeInstanceOf(ProviderError);
      expect({ code: error.code, retryable: error.retryable }).toEqual({ code: "stream_interrupted", retryable: true });
      expect(error.message).toStartWith(`${idOf[kind]}: stream interrupted`);
      expect(error.message).not.toContain("provider error");
      expect(error.message).not.toContain("verbose: true"); // the runtime's advice to programmers
      provider.stop();
      // With retries: asked again, and the answer comes.
      provider = startLoopbackProvider((_request, index) => cutFirst(index));
      const parts = await collect(modelOf(kind, provider.url, 2).stream(request([{ role: "user", content: "Hi" }])));
      expect(parts[0]).toEqual({ type: "text-delta", text: "recovered" });
      expect(provider.requests).toHaveLength(2);
    });

    test(`${kind}: with retries on, a stream cut after any of the step went out — text, reasoning — is never asked again`, async () => {
      // (These SDKs hand a tool call over only at the stream's end: a cut loses it. Anthropic's, at its block's end: see anthropic-messages-stream.)
      const outputs: Array<[string, string[]]> = [["text", [openAiChunk({ role: "assistant", content: "" }), openAiChunk({ content: "Half" })]]];
      // Reasoning reaches the engine from an OpenAI-compatible server's reasoning_content (the built-in openai/ reads none).
      if (kind !== "openai") outputs.push(["reasoning", [openAiChunk({ role: "assistant", content: "", reasoning_content: "Thinking it over." })]]);
      for (const [what, frames] of outputs) {
        provider?.stop();
        provider = startLoopbackProvider(() => cutAfter(frames));
        const { seen, error } = await run(modelOf(kind, provider.url, 3));
        expect([what, seen.length > 0]).toEqual([what, true]);
        expect([what, error instanceof ProviderError && error.code]).toEqual([what, "stream_interrupted"]);
        expect([what, provider.requests.length]).toEqual([what, 1]);
      }
    });

    test(`${kind}: one chunk, then the body ends (no finish reason): stream_interrupted, retryable`, async () => {
      provider = startLoopbackProvider(() => sseResponse([openAiChunk({ role: "assistant", content: "" }), openAiChunk({ content: "Half an ans" })]));
      const { seen, error } = await run(modelOf(kind, provider.url));
      expect(seen).toEqual([{ type: "text-delta", text: "Half an ans" }]);
      expect(error).toBeInstanceOf(ProviderError);
      expect({ code: error.code, retryable: error.retryable, message: error.message }).toEqual({
        code: "stream_interrupted",
        retryable: true,
        message: `${idOf[kind]}: stream interrupted: the response ended before the provider signalled completion`,
      });
    });

    test(`${kind}: SSE headers and one chunk, then the server closes the connection (no chunked encoding, no length): stream_interrupted, retryable`, async () => {
      // A raw HTTP/1.1 answer whose body ends where the connection does, as a proxy that gave up sends it.
      const head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
      const listener = Bun.listen({
        hostname: "127.0.0.1",
        port: 0,
        socket: {
          data(socket) {
            socket.write(head + openAiChunk({ role: "assistant", content: "" }) + openAiChunk({ content: "The answer is" }));
            socket.end();
          },
        },
      });
      try {
        const { seen, error } = await run(modelOf(kind, `http://127.0.0.1:${listener.port}`));
        expect(seen).toEqual([{ type: "text-delta", text: "The answer is" }]);
        expect(error).toBeInstanceOf(ProviderError);
        expect(error.code).toBe("stream_interrupted");
        expect(error.retryable).toBe(true);
        expect(error.message).toStartWith(`${idOf[kind]}: stream interrupted: `);
      } finally {
        listener.stop(true);
      }
    });

    test(`${kind}: a connection cut mid-stream: stream_interrupted, retryable`, async () => {
      const sent = deferred<void>();
      provider = startLoopbackProvider((recorded) => {
        const stream = controlledSseResponse(recorded);
        stream.send(openAiChunk({ role: "assistant", content: "" }));
        stream.send(openAiChunk({ content: "The answer is" }));
        sent.resolve();
        return stream.response;
      });
      const iterator = modelOf(kind, provider.url).stream(request([{ role: "user", content: "Hi" }]))[Symbol.asyncIterator]();
      expect((await iterator.next()).value).toEqual({ type: "text-delta", text: "The answer is" });
      await sent.promise;
      provider.stop(); // closes the open connection without finishing the chunked body
      const error = await rejectionOf(within(iterator.next(), 5_000, "the stream to fail"));
      expect(error).toBeInstanceOf(ProviderError);
      expect(error.code).toBe("stream_interrupted");
      expect(error.retryable).toBe(true);
    });

    test(`${kind}: an event stream with no chunk at all is cut (retryable); a web page answering 200 is request_failed; the provider's error chunk stays stream_error`, async () => {
      provider = startLoopbackProvider(() => new Response("", { headers: { "content-type": "text/event-stream" } }));
      const empty = await run(modelOf(kind, provider.url));
      expect([empty.error.code, empty.error.retryable]).toEqual(["stream_interrupted", true]);
      provider.stop();

      provider = startLoopbackProvider(() => new Response("<!doctype html><html><body>Sign in</body></html>", { headers: { "content-type": "text/html" } }));
      const page = await run(modelOf(kind, provider.url));
      expect([page.error.code, page.error.retryable]).toEqual(["request_failed", false]);
      expect(page.error.message).toBe(`${idOf[kind]}: the provider's URL answered with text/html, not an event stream: check the provider's baseURL`);
      provider.stop();

      provider = startLoopbackProvider(() =>
        sseResponse([
          openAiChunk({ role: "assistant", content: "" }),
          openAiChunk({ content: "Working" }),
          openAiFrame({ error: { message: "The model is overloaded mid-stream", type: "server_error", code: null } }),
        ]),
      );
      const said = await run(modelOf(kind, provider.url));
      expect([said.error.code, said.error.retryable]).toEqual(["stream_error", false]);
      expect(said.error.message).toContain("The model is overloaded mid-stream");
    });
  }
});
