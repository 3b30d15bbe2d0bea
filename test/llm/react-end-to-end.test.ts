/**
 * End to end: the ReAct engine drives the OpenAI adapter against a loopback Chat Completions
 * server, with the built-in calculator. Step 1 the model calls the calculator; step 2 it reads the
 * result and answers. The server sees the tool result come back as a `tool` message.
 */
import { afterEach, expect, test } from "bun:test";
import { runReAct, type ReActEvent } from "../../src/engine/react.ts";
import { createProviderFactories } from "../../src/llm/providers/index.ts";
import { calculatorTool } from "../../src/tools/calculator.ts";
import { openAiTextAnswer, openAiToolCallAnswer, sseResponse, startLoopbackProvider, type LoopbackProvider } from "./loopback-provider.ts";

let provider: LoopbackProvider | undefined;
afterEach(() => provider?.stop());

test("runReAct + OpenAI adapter + calculator: tool call, tool result, final answer", async () => {
  const steps = [
    openAiToolCallAnswer(
      { id: "call_calc_1", name: "calculator", arguments: '{"expression":"12 * (3 + 4)"}' },
      { text: "I'll compute that.", usage: { input: 150, output: 20 } },
    ),
    openAiTextAnswer(["12 * (3 + 4) ", "= 84"], { input: 190, output: 12 }),
  ];
  provider = startLoopbackProvider((_request, index) => sseResponse(steps[index] ?? openAiTextAnswer(["unexpected extra step"])));
  const model = createProviderFactories({ env: { OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: `${provider.url}/v1` } }).openai!("gpt-test");

  const events: ReActEvent[] = [];
  const run = runReAct({
    model,
    tools: new Map([[calculatorTool.name, calculatorTool]]),
    system: "Use the calculator for arithmetic.",
    messages: [{ role: "user", content: "What is 12 * (3 + 4)?" }],
    maxSteps: 5,
    toolTimeoutMs: 5_000,
    abortSignal: new AbortController().signal,
  });
  // Iterate by hand to also capture the generator's return value.
  for (let next = await run.next(); ; next = await run.next()) {
    if (next.done) {
      expect(next.value).toBeUndefined(); // ended with a final answer, not a stop condition
      break;
    }
    events.push(next.value);
  }
  // The whole sequence, live-only deltas included: text streams through as it arrives.
  expect(events).toEqual([
    { event_type: "delta", step: 1, data: { kind: "text", text: "I'll compute that." } },
    { event_type: "usage", step: 1, data: { input_tokens: 150, output_tokens: 20 } },
    { event_type: "thought", step: 1, data: { text: "I'll compute that." } },
    { event_type: "tool_call", step: 1, data: { id: "call_calc_1", name: "calculator", arguments: { expression: "12 * (3 + 4)" } } },
    { event_type: "tool_result", step: 1, data: { id: "call_calc_1", name: "calculator", result: { expression: "12 * (3 + 4)", value: 84 } } },
    { event_type: "delta", step: 2, data: { kind: "text", text: "12 * (3 + 4) " } },
    { event_type: "delta", step: 2, data: { kind: "text", text: "= 84" } },
    { event_type: "usage", step: 2, data: { input_tokens: 190, output_tokens: 12 } },
    { event_type: "final_answer", step: 2, data: { output: "12 * (3 + 4) = 84", total_steps: 2, total_tokens: 150 + 20 + 190 + 12 } },
  ]);

  expect(provider.requests).toHaveLength(2);
  expect(provider.requests[1]!.body.messages).toEqual([
    { role: "system", content: "Use the calculator for arithmetic." },
    { role: "user", content: "What is 12 * (3 + 4)?" },
    {
      role: "assistant",
      content: "I'll compute that.",
      tool_calls: [{ id: "call_calc_1", type: "function", function: { name: "calculator", arguments: '{"expression":"12 * (3 + 4)"}' } }],
    },
    { role: "tool", tool_call_id: "call_calc_1", content: '{"expression":"12 * (3 + 4)","value":84}' },
  ]);
});
