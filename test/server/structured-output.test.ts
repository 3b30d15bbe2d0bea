/**
 * Structured final answers and per-agent model settings, end to end: a real server whose agent
 * uses a real OpenAI-compatible provider on loopback (the HTTP bodies it receives are asserted),
 * with an `output_schema` — valid at once, repaired after feedback, and invalid until the task fails.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { openAiTextAnswer, openAiToolCallAnswer, sseResponse, startLoopbackProvider, type LoopbackProvider } from "../llm/loopback-provider.ts";

let server: TestServer | undefined;
let provider: LoopbackProvider | undefined;
afterEach(async () => {
  await server?.close();
  provider?.stop();
  server = provider = undefined;
});

const SCHEMA = {
  type: "object",
  required: ["answer"],
  additionalProperties: false,
  properties: { answer: { type: "integer" }, unit: { type: "string" } },
};

/** An agent on the loopback provider with an output schema (and whatever else the test sets). */
function openAiAgent(extra: Record<string, unknown> = {}) {
  return {
    agents: [{ name: "default", model: "openai/gpt-test", tools: ["calculator"], output_schema: SCHEMA, ...extra }],
    config: {
      providers: {
        openai: { apiKey: "sk-test-key", baseURL: `${provider!.url}/v1` },
        retry: { maxRetries: 0, initialDelayMs: 1, maxDelayMs: 5 },
      },
    },
  };
}

type Message = { role: string; content?: unknown; tool_call_id?: string };
const messagesOf = (index: number) => provider!.requests[index]!.body.messages as Message[];
/** A message's text, whether the provider sent a string or content parts. */
const textOf = (message: Message | undefined): string =>
  typeof message?.content === "string"
    ? message.content
    : Array.isArray(message?.content)
      ? (message.content as { text?: string }[]).map((part) => part.text ?? "").join("")
      : "";

async function getTask(id: string): Promise<Record<string, any>> {
  const response = await server!.http(`/tasks/${id}`);
  expect(response.status).toBe(200);
  return (await response.json()) as Record<string, any>;
}

const stepTypes = (frames: { type: string; data?: unknown }[]) =>
  frames.filter((frame) => frame.type === "step").map((frame) => (frame.data as { event_type: string }).event_type);

describe("output_schema", () => {
  test("a valid answer: output is the compact JSON, output_json the value (REST and the result frame); the agent's settings reach the provider", async () => {
    provider = startLoopbackProvider((_request, index) =>
      sseResponse(
        index === 0
          ? openAiToolCallAnswer({ id: "call_a", name: "calculator", arguments: '{"expression":"6*7"}' })
          : openAiTextAnswer(['{ "answer": ', '42, "unit": "none" }']),
      ),
    );
    server = await startTestServer(openAiAgent({ temperature: 0.3, top_p: 0.8, tool_choice: "required" }));
    const task = await server.createTask({ input: "What is 6 times 7?" });
    const watcher = await server.watch(task.id);
    const result = await watcher.result();
    expect(result.data).toMatchObject({
      status: "completed",
      stop_reason: "final_answer",
      output: '{"answer":42,"unit":"none"}',
      output_json: { answer: 42, unit: "none" },
      total_steps: 2,
    });
    expect(stepTypes(watcher.frames as never)).toEqual(["usage", "tool_call", "tool_result", "usage"]);
    const stored = await getTask(task.id);
    expect(stored).toMatchObject({ status: "completed", output: '{"answer":42,"unit":"none"}', output_json: { answer: 42, unit: "none" }, error: null });

    // What the provider was sent: the settings on every request, the schema in the system prompt,
    // and the forced tool choice on the first step only (after a step that called tools: auto).
    expect(provider.requests.length).toBe(2);
    const [first, second] = provider.requests.map((request) => request.body);
    expect(first).toMatchObject({ temperature: 0.3, top_p: 0.8, tool_choice: "required" });
    expect(second).toMatchObject({ temperature: 0.3, top_p: 0.8 });
    expect(second.tool_choice).toBe("auto");
    const system = textOf(messagesOf(0)[0]);
    expect(messagesOf(0)[0]!.role).toBe("system");
    expect(system).toContain("JSON Schema");
    expect(system).toContain(JSON.stringify(SCHEMA));
    expect(messagesOf(1).map((message) => message.role)).toEqual(["system", "user", "assistant", "tool"]);
  });

  test("an agent without model settings sends none of them", async () => {
    provider = startLoopbackProvider(() => sseResponse(openAiTextAnswer(['{"answer":1}'])));
    server = await startTestServer(openAiAgent());
    const task = await server.createTask({ input: "one" });
    expect((await (await server.watch(task.id)).result()).data).toMatchObject({ status: "completed", output_json: { answer: 1 } });
    const body = provider.requests[0]!.body;
    expect(body).not.toHaveProperty("temperature");
    expect(body).not.toHaveProperty("top_p");
    expect(body.tool_choice).toBe("auto");
  });

  test("invalid, then repaired: the model gets the feedback on its second request and the task completes", async () => {
    provider = startLoopbackProvider((_request, index) =>
      sseResponse(index === 0 ? openAiTextAnswer(["The answer is ", "42."]) : openAiTextAnswer(['{"answer":42}'])),
    );
    server = await startTestServer(openAiAgent());
    const task = await server.createTask({ input: "What is 6 times 7?" });
    const watcher = await server.watch(task.id);
    const result = await watcher.result();
    expect(result.data).toMatchObject({ status: "completed", output: '{"answer":42}', output_json: { answer: 42 }, total_steps: 2 });
    expect(stepTypes(watcher.frames as never)).toEqual(["usage", "thought", "output_invalid", "usage"]);
    const invalid = watcher.frames.find((frame) => (frame.data as { event_type?: string })?.event_type === "output_invalid")!;
    const { message, attempt } = (invalid.data as { data: { message: string; attempt: number } }).data;
    expect(attempt).toBe(1);
    expect(message).toStartWith("The final answer is not valid JSON");

    expect(provider.requests.length).toBe(2);
    const second = messagesOf(1);
    expect(second.map((entry) => entry.role)).toEqual(["system", "user", "assistant", "user"]);
    expect(textOf(second[2])).toBe("The answer is 42.");
    expect(textOf(second[3])).toStartWith("Your final answer does not match the required output schema: The final answer is not valid JSON");
    expect(textOf(second[3])).toContain(message);
    expect(await getTask(task.id)).toMatchObject({ status: "completed", output_json: { answer: 42 } });
  });

  test("invalid until the retries run out: failed with invalid_output and stop_reason error", async () => {
    provider = startLoopbackProvider((_request, index) => sseResponse(openAiTextAnswer([index === 0 ? "forty-two" : '{"answer":"42"}'])));
    server = await startTestServer(openAiAgent({ output_retries: 1 }));
    const task = await server.createTask({ input: "What is 6 times 7?" });
    const watcher = await server.watch(task.id);
    const result = await watcher.result();
    expect(result.data).toMatchObject({ status: "failed", stop_reason: "error", error: { code: "invalid_output" } });
    expect(result.data).not.toHaveProperty("output");
    expect(result.data).not.toHaveProperty("output_json");
    expect((result.data as { error: { message: string } }).error.message).toContain("at $.answer: expected integer");
    expect(stepTypes(watcher.frames as never)).toEqual(["usage", "thought", "output_invalid", "usage", "thought"]);
    expect(provider.requests.length).toBe(2); // one answer and one retry, no more

    const stored = await getTask(task.id);
    expect(stored).toMatchObject({ status: "failed", stop_reason: "error", output: null, output_json: null, error: { code: "invalid_output" } });
  });
});

describe("an answer cut at the output token limit, or empty (any agent, no output_schema)", () => {
  /** What the OpenAI API streams when it stops at `max_tokens`: text, then finish_reason `length`. */
  const cutAnswer = (text: string) => openAiTextAnswer([text]).map((chunk) => chunk.replace('"finish_reason":"stop"', '"finish_reason":"length"'));

  test("a cut answer is sent back (the model is told), and a task whose every answer is cut fails with invalid_output", async () => {
    provider = startLoopbackProvider((_request, index) => sseResponse(index === 0 ? cutAnswer("The capital of France is") : cutAnswer("Par")));
    server = await startTestServer({ ...openAiAgent({ output_schema: undefined, output_retries: 1, max_output_tokens: 5 }) });
    const task = await server.createTask({ input: "What is the capital of France?" });
    const watcher = await server.watch(task.id);
    const result = await watcher.result();
    expect(provider.requests.length).toBe(2);
    expect(provider.requests[0]!.body.max_tokens ?? provider.requests[0]!.body.max_completion_tokens).toBe(5);
    expect(stepTypes(watcher.frames as never)).toEqual(["usage", "thought", "output_invalid", "usage", "thought"]);
    const invalid = watcher.frames.find((frame) => (frame.data as { event_type?: string })?.event_type === "output_invalid")!;
    expect((invalid.data as { data: unknown }).data).toEqual({ message: "the model's answer was cut off at the output token limit (max_output_tokens)", attempt: 1, kind: "truncated" });
    expect(textOf(messagesOf(1).at(-1))).toStartWith("Your answer was cut off at the output token limit.");
    expect(result.data).toMatchObject({ status: "failed", stop_reason: "error", error: { code: "invalid_output", retryable: true } });
    const stored = await getTask(task.id);
    expect(stored.output).toBeNull();
    expect(stored.error.message).toBe("The final answer was not accepted: the model's answer was cut off at the output token limit (max_output_tokens)");
  });

  test("an empty answer (here only whitespace) is not a completed task with empty output: the model is asked again", async () => {
    provider = startLoopbackProvider((_request, index) => sseResponse(openAiTextAnswer(index === 0 ? ["\n\n"] : ["Paris."])));
    server = await startTestServer({ ...openAiAgent({ output_schema: undefined }) });
    const task = await server.createTask({ input: "What is the capital of France?" });
    const watcher = await server.watch(task.id);
    const result = await watcher.result();
    expect(result.data).toMatchObject({ status: "completed", output: "Paris.", total_steps: 2 });
    expect(stepTypes(watcher.frames as never)).toEqual(["usage", "thought", "output_invalid", "usage"]);
    expect(textOf(messagesOf(1).at(-1))).toBe("Your reply was empty. Reply again with your answer.");
    // The whitespace it said is no assistant message: a provider refuses a text block of only whitespace.
    expect(messagesOf(1).map((message) => message.role)).not.toContain("assistant");
  });
});
