/** The built-in demo model drives the real engine through the built-in tools. */
import { expect, test } from "bun:test";
import { runReAct, type ReActEvent } from "../../src/engine/react.ts";
import { createDemoModel, findArithmetic } from "../../src/llm/demo-model.ts";
import { builtinTools } from "../../src/tools/registry.ts";

async function run(question: string) {
  const events: ReActEvent[] = [];
  for await (const event of runReAct({
    model: createDemoModel(),
    tools: builtinTools(),
    messages: [{ role: "user", content: question }],
    maxSteps: 5,
    toolTimeoutMs: 1000,
    abortSignal: new AbortController().signal,
  })) {
    if (event.event_type !== "delta" && event.event_type !== "usage") events.push(event);
  }
  return events;
}

test("arithmetic goes through the calculator", async () => {
  const events = await run("Please, what is 12 * (3 + 4) - 2^3?");
  expect(events.map((event) => event.event_type)).toEqual(["thought", "tool_call", "tool_result", "final_answer"]);
  expect(events[1]!.data).toMatchObject({ name: "calculator", arguments: { expression: "12 * (3 + 4) - 2^3" } });
  expect(events.at(-1)!.data).toMatchObject({ output: "12 * (3 + 4) - 2^3 = 76", total_steps: 2 });
});

test("date and time go through current_time, with a zone when one is named", async () => {
  const events = await run("What time is it in Europe/Paris?");
  expect(events[1]!.data).toMatchObject({ name: "current_time", arguments: { timezone: "Europe/Paris" } });
  expect(String((events.at(-1)!.data as { output: string }).output)).toStartWith("It is ");
});

test("anything else is answered directly, in one step", async () => {
  const events = await run("Tell me a story");
  expect(events.map((event) => event.event_type)).toEqual(["final_answer"]);
  expect((events[0]!.data as { output: string }).output).toContain("Tell me a story");
});

test("findArithmetic picks the expression out of prose", () => {
  expect(findArithmetic("what is 2+2?")).toBe("2+2");
  expect(findArithmetic("compute sqrt(81) please")).toBe("sqrt(81)");
  expect(findArithmetic("I have 3 apples")).toBeUndefined();
  expect(findArithmetic("hello")).toBeUndefined();
});

test("call ids are unique within a task, also in a fresh model (a restarted server resuming it): they count the calls already made", async () => {
  const events: ReActEvent[] = [];
  for await (const event of runReAct({
    model: createDemoModel(),
    tools: builtinTools(),
    messages: [
      { role: "user", content: "What is 2 + 2?" },
      { role: "assistant", content: "", toolCalls: [{ id: "call_1", name: "calculator", arguments: '{"expression":"2 + 2"}' }] },
      { role: "tool", toolCallId: "call_1", toolName: "calculator", content: '{"expression":"2 + 2","value":4}', isError: false },
      { role: "assistant", content: "2 + 2 = 4" },
      { role: "user", content: "And what is 3 * 3?" },
    ],
    maxSteps: 5,
    toolTimeoutMs: 1000,
    abortSignal: new AbortController().signal,
  })) {
    if (event.event_type === "tool_call") events.push(event);
  }
  expect(events.map((event) => (event.data as { id: string }).id)).toEqual(["call_2"]);
  // Two models (two server processes) number the same conversation alike.
  expect((await run("What is 6 * 7?"))[1]!.data).toMatchObject({ id: "call_1" });
  expect((await run("What is 6 * 7?"))[1]!.data).toMatchObject({ id: "call_1" });
});
