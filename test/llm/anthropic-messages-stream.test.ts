/**
 * The Anthropic adapter against a loopback server speaking the Messages streaming format byte for
 * byte: message_start, content blocks (thinking, text, tool_use with input_json_delta fragments),
 * pings, message_delta with usage and stop_reason, message_stop — and error events.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { ModelRequest, ModelStreamPart } from "../../src/llm/model.ts";
import { createProviderFactories, ProviderError } from "../../src/llm/providers/index.ts";
import { calculatorTool } from "../../src/tools/calculator.ts";
import { toolSpec } from "../../src/tools/tool.ts";
import {
  anthropicEvent,
  anthropicMessageStart,
  anthropicTextAnswer,
  collect,
  jsonResponse,
  rejectionOf,
  sseResponse,
  startLoopbackProvider,
  type LoopbackProvider,
} from "./loopback-provider.ts";

let provider: LoopbackProvider | undefined;
afterEach(() => provider?.stop());

function anthropicModel(url: string, sleeps: number[] = []) {
  const factories = createProviderFactories({
    env: { ANTHROPIC_API_KEY: "sk-ant-test", ANTHROPIC_BASE_URL: `${url}/v1` },
    sleep: async (ms) => void sleeps.push(ms),
    random: () => 0.5,
  });
  return factories.anthropic!("claude-test");
}

const toolUseStream = [
  anthropicMessageStart(25),
  anthropicEvent("content_block_start", { index: 0, content_block: { type: "thinking", thinking: "" } }),
  anthropicEvent("content_block_delta", { index: 0, delta: { type: "thinking_delta", thinking: "The user wants " } }),
  anthropicEvent("content_block_delta", { index: 0, delta: { type: "thinking_delta", thinking: "a product." } }),
  anthropicEvent("content_block_delta", { index: 0, delta: { type: "signature_delta", signature: "c2lnbmF0dXJl" } }),
  anthropicEvent("content_block_stop", { index: 0 }),
  anthropicEvent("content_block_start", { index: 1, content_block: { type: "text", text: "" } }),
  anthropicEvent("ping", {}),
  anthropicEvent("content_block_delta", { index: 1, delta: { type: "text_delta", text: "I'll use " } }),
  anthropicEvent("content_block_delta", { index: 1, delta: { type: "text_delta", text: "the calculator." } }),
  anthropicEvent("content_block_stop", { index: 1 }),
  anthropicEvent("content_block_start", { index: 2, content_block: { type: "tool_use", id: "toolu_01A", name: "calculator", input: {} } }),
  anthropicEvent("content_block_delta", { index: 2, delta: { type: "input_json_delta", partial_json: "" } }),
  anthropicEvent("content_block_delta", { index: 2, delta: { type: "input_json_delta", partial_json: '{"expres' } }),
  anthropicEvent("content_block_delta", { index: 2, delta: { type: "input_json_delta", partial_json: 'sion": "6 * 7"}' } }),
  anthropicEvent("content_block_stop", { index: 2 }),
  anthropicEvent("message_delta", { delta: { stop_reason: "tool_use", stop_sequence: null }, usage: { output_tokens: 89 } }),
  anthropicEvent("message_stop", {}),
];

function request(extra: Partial<ModelRequest> = {}): ModelRequest {
  return {
    messages: [{ role: "user", content: "What is 6 * 7?" }],
    tools: [toolSpec(calculatorTool)],
    abortSignal: new AbortController().signal,
    ...extra,
  };
}

describe("Anthropic Messages streaming", () => {
  test("streams thinking, text and a tool_use whose input arrives as partial_json fragments", async () => {
    provider = startLoopbackProvider(() => sseResponse(toolUseStream));
    const model = anthropicModel(provider.url);
    const parts = await collect(model.stream(request()));

    expect(model.id).toBe("anthropic/claude-test");
    expect(parts).toEqual([
      { type: "reasoning-delta", text: "The user wants " },
      { type: "reasoning-delta", text: "a product." },
      { type: "text-delta", text: "I'll use " },
      { type: "text-delta", text: "the calculator." },
      { type: "tool-call", call: { id: "toolu_01A", name: "calculator", arguments: '{"expression": "6 * 7"}' } },
      { type: "finish", finishReason: "tool-calls", usage: { inputTokens: 25, outputTokens: 89 } },
    ]);
  });

  test("sends the system prompt, tool_use / tool_result blocks (is_error) and tools with input_schema", async () => {
    provider = startLoopbackProvider(() =>
      sseResponse(anthropicTextAnswer("42", { input: 40, output: 3 })),
    );
    const parts = await collect(
      anthropicModel(provider.url).stream(
        request({
          system: "Be exact.",
          maxOutputTokens: 512,
          messages: [
            { role: "user", content: "What is 6 * 7?" },
            {
              role: "assistant",
              content: "Computing.",
              toolCalls: [
                { id: "toolu_1", name: "calculator", arguments: '{"expression":"6*7"}' },
                { id: "toolu_2", name: "calculator", arguments: "{oops" },
              ],
            },
            { role: "tool", toolCallId: "toolu_1", toolName: "calculator", content: '{"expression":"6*7","value":42}', isError: false },
            { role: "tool", toolCallId: "toolu_2", toolName: "calculator", content: "Error (invalid_arguments): not JSON", isError: true },
          ],
        }),
      ),
    );
    expect(parts.at(-1)).toEqual({ type: "finish", finishReason: "stop", usage: { inputTokens: 40, outputTokens: 3 } });

    const sent = provider.requests[0]!;
    expect(sent.path).toBe("/v1/messages");
    expect(sent.headers.get("x-api-key")).toBe("sk-ant-test");
    expect(sent.headers.get("anthropic-version")).toBe("2023-06-01");
    expect(sent.body.model).toBe("claude-test");
    expect(sent.body.stream).toBe(true);
    expect(sent.body.max_tokens).toBe(512);
    expect(sent.body.system).toEqual([{ type: "text", text: "Be exact." }]);
    expect(sent.body.messages).toEqual([
      { role: "user", content: [{ type: "text", text: "What is 6 * 7?" }] },
      {
        role: "assistant",
        content: [
          { type: "text", text: "Computing." },
          { type: "tool_use", id: "toolu_1", name: "calculator", input: { expression: "6*7" } },
          { type: "tool_use", id: "toolu_2", name: "calculator", input: {} },
        ],
      },
      {
        role: "user",
        content: [
          { type: "tool_result", tool_use_id: "toolu_1", content: '{"expression":"6*7","value":42}' },
          { type: "tool_result", tool_use_id: "toolu_2", content: "Error (invalid_arguments): not JSON", is_error: true },
        ],
      },
    ]);
    // The SDK may add its own tool flags (e.g. eager_input_streaming); the schema is ours, exactly.
    expect(sent.body.tools).toEqual([
      expect.objectContaining({ name: "calculator", description: calculatorTool.description, input_schema: toolSpec(calculatorTool).inputSchema }),
    ]);
    expect(sent.body.tool_choice).toEqual({ type: "auto" });
  });

  test("an error event after output rejects with the provider's message", async () => {
    provider = startLoopbackProvider(() =>
      sseResponse([
        anthropicMessageStart(10),
        anthropicEvent("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
        anthropicEvent("content_block_delta", { index: 0, delta: { type: "text_delta", text: "Partial" } }),
        anthropicEvent("error", { error: { type: "overloaded_error", message: "Overloaded" } }),
      ]),
    );
    const error = await rejectionOf(collect(anthropicModel(provider.url).stream(request())));
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.code).toBe("stream_error");
    expect(error.message).toBe("anthropic/claude-test: provider error in stream: Overloaded");
  });

  test("a transient error after a tool call or reasoning went out (nothing else) is not asked again: the step is never replayed", async () => {
    const toolUse = [
      anthropicEvent("content_block_start", { index: 0, content_block: { type: "tool_use", id: "toolu_01A", name: "calculator", input: {} } }),
      anthropicEvent("content_block_delta", { index: 0, delta: { type: "input_json_delta", partial_json: '{"expression": "6 * 7"}' } }),
      anthropicEvent("content_block_stop", { index: 0 }),
    ];
    const thinking = [
      anthropicEvent("content_block_start", { index: 0, content_block: { type: "thinking", thinking: "" } }),
      anthropicEvent("content_block_delta", { index: 0, delta: { type: "thinking_delta", thinking: "Let me think." } }),
    ];
    for (const [what, blocks, part] of [["a tool call", toolUse, "tool-call"], ["reasoning", thinking, "reasoning-delta"]] as const) {
      provider?.stop();
      provider = startLoopbackProvider(() => sseResponse([anthropicMessageStart(10), ...blocks, anthropicEvent("error", { error: { type: "overloaded_error", message: "Overloaded" } })]));
      const seen: ModelStreamPart[] = [];
      const error = await rejectionOf(
        (async () => {
          for await (const streamed of anthropicModel(provider.url).stream(request())) seen.push(streamed);
        })(),
      );
      expect([what, seen.map((streamed) => streamed.type)]).toEqual([what, [part]]);
      expect([what, error instanceof ProviderError && error.code, provider.requests.length]).toEqual([what, "stream_error", 1]);
    }
  });

  test("a stream cut after output (no message_stop) rejects as interrupted", async () => {
    provider = startLoopbackProvider(() => sseResponse(toolUseStream.slice(0, 9)));
    const error = await rejectionOf(collect(anthropicModel(provider.url).stream(request())));
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.code).toBe("stream_interrupted");
  });

  test("a 529 overloaded answer is retried, and the Anthropic error message is kept on failure", async () => {
    const overloaded = { type: "error", error: { type: "overloaded_error", message: "Overloaded" } };
    provider = startLoopbackProvider((_request, index) => (index === 0 ? jsonResponse(529, overloaded) : sseResponse(toolUseStream)));
    const sleeps: number[] = [];
    const parts = await collect(anthropicModel(provider.url, sleeps).stream(request()));
    expect(provider.requests).toHaveLength(2);
    expect(sleeps).toEqual([375]);
    expect(parts.at(-1)).toMatchObject({ type: "finish", finishReason: "tool-calls" });

    provider.stop();
    provider = startLoopbackProvider(() => jsonResponse(529, overloaded));
    const error = await rejectionOf(collect(anthropicModel(provider.url).stream(request())));
    expect(error.message).toBe("anthropic/claude-test: HTTP 529 after 4 attempts: Overloaded");
    expect(provider.requests).toHaveLength(4);
  });
});
