/** The ReAct engine driven by a scripted model: events, tool errors, stop conditions, abort. */
import { describe, expect, test } from "bun:test";
import { z } from "zod";
import { runReAct, type ReActEvent, type ReActOptions, type ReActStop } from "../../src/engine/react.ts";
import { builtinTools } from "../../src/tools/registry.ts";
import { defineTool, type Tool } from "../../src/tools/tool.ts";
import { answer, callTools, createScriptedModel } from "../helpers/scripted-model.ts";
import { createGateTool } from "../helpers/tools.ts";

/** Runs the engine to the end; `events` are the durable ones, `deltas` the live-only ones. */
async function collect(options: Partial<ReActOptions> & Pick<ReActOptions, "model">) {
  const events: ReActEvent[] = [];
  const deltas: ReActEvent[] = [];
  const generator = runReAct({
    tools: builtinTools(),
    messages: [{ role: "user", content: "question" }],
    maxSteps: 10,
    toolTimeoutMs: 5000,
    abortSignal: new AbortController().signal,
    ...options,
  });
  let stop: ReActStop | undefined;
  for (;;) {
    const next = await generator.next();
    if (next.done) {
      stop = next.value;
      break;
    }
    (next.value.event_type === "delta" ? deltas : events).push(next.value);
  }
  return { events, deltas, stop };
}

const types = (events: ReActEvent[]) => events.map((event) => event.event_type);

describe("runReAct", () => {
  test("thought, tool calls, results in call order, final answer with totals", async () => {
    const slowFirst = defineTool({
      name: "slow",
      description: "finishes after the fast one",
      inputSchema: z.object({ label: z.string() }),
      execute: async ({ label }) => (await Bun.sleep(20), label),
    });
    const fast = defineTool({ name: "fast", description: "", inputSchema: z.object({}), execute: async () => "fast" });
    const model = createScriptedModel([
      callTools(
        [
          { id: "a", name: "slow", arguments: '{"label":"first"}' },
          { id: "b", name: "fast", arguments: "" },
        ],
        "Let me look.",
      ),
      answer("All done.", { inputTokens: 7, outputTokens: 3 }),
    ]);
    const { events, deltas, stop } = await collect({ model, tools: new Map<string, Tool>([["slow", slowFirst], ["fast", fast]]) });
    expect(stop).toBeUndefined();
    expect(types(events)).toEqual(["usage", "thought", "tool_call", "tool_call", "tool_result", "tool_result", "usage", "final_answer"]);
    expect(events.map((event) => event.step)).toEqual([1, 1, 1, 1, 1, 1, 2, 2]);
    expect(events[0]!.data).toEqual({ input_tokens: 10, output_tokens: 5 });
    expect(events[1]!.data).toEqual({ text: "Let me look." });
    expect(events[4]!.data).toEqual({ id: "a", name: "slow", result: "first" });
    expect(events[5]!.data).toEqual({ id: "b", name: "fast", result: "fast" });
    expect(events[6]!.data).toEqual({ input_tokens: 7, output_tokens: 3 });
    expect(events[7]!.data).toEqual({ output: "All done.", total_steps: 2, total_tokens: 25 });
    // Text also streamed live, tagged with its step.
    expect(deltas).toEqual([
      { event_type: "delta", step: 1, data: { kind: "text", text: "Let me look." } },
      { event_type: "delta", step: 2, data: { kind: "text", text: "All done." } },
    ]);

    // The model saw its own calls and both observations, in call order.
    const second = model.requests[1]!.messages;
    expect(second.map((message) => message.role)).toEqual(["user", "assistant", "tool", "tool"]);
    expect(second[2]).toMatchObject({ toolCallId: "a", content: "first", isError: false });
    expect(model.requests[0]!.tools.map((tool) => tool.name)).toEqual(["slow", "fast"]);
  });

  test("unknown tool, unparsable arguments, schema failure and a throwing tool become tool_error observations", async () => {
    const thrower = defineTool({
      name: "thrower",
      description: "",
      inputSchema: z.object({}),
      execute: async () => {
        throw new Error("disk on fire");
      },
    });
    const model = createScriptedModel([
      callTools([
        { id: "1", name: "nope", arguments: "{}" },
        { id: "2", name: "calculator", arguments: "{expression: 1+" },
        { id: "3", name: "calculator", arguments: '{"expression": 42}' },
        { id: "4", name: "thrower", arguments: "{}" },
        { id: "5", name: "calculator", arguments: '{"expression": "1/0"}' },
      ]),
      answer("recovered"),
    ]);
    const tools = new Map(builtinTools());
    (tools as Map<string, Tool>).set("thrower", thrower);
    const { events } = await collect({ model, tools });
    const errors = events.filter((event) => event.event_type === "tool_error").map((event) => event.data as { error: { code: string; message: string } });
    expect(errors.map((error) => error.error.code)).toEqual(["unknown_tool", "invalid_arguments", "invalid_arguments", "execution_failed", "execution_failed"]);
    expect(errors[0]!.error.message).toContain("Available tools: calculator, current_time");
    expect(errors[1]!.error.message).toContain("not valid JSON");
    expect(errors[2]!.error.message).toContain("expression");
    expect(errors[3]!.error.message).toContain("disk on fire");
    expect(errors[4]!.error.message).toContain("Division by zero");
    const observations = model.requests[1]!.messages.filter((message) => message.role === "tool");
    expect(observations.every((message) => message.role === "tool" && message.isError)).toBe(true);
    expect(events.at(-1)).toMatchObject({ event_type: "final_answer", data: { output: "recovered" } });
  });

  test("a result longer than toolResultMaxChars is cut, the same in the event and for the model; one that is not JSON is the tool's error", async () => {
    const results: Record<string, unknown> = {
      text: "t".repeat(5000),
      object: { rows: Array.from({ length: 500 }, (_, index) => ({ index })) },
      small: { ok: true },
      exact: "e".repeat(1000),
      cycle: (() => {
        const node: Record<string, unknown> = {};
        node.self = node;
        return node;
      })(),
      big: 10n,
      fn: () => 1,
      // The 1000th unit is the first half of a pair: the cut leaves the pair whole (out).
      pair: `${"p".repeat(999)}😀${"p".repeat(100)}`,
    };
    const tools = new Map<string, Tool>(
      Object.entries(results).map(([name, result]) => [name, defineTool({ name, description: "", inputSchema: z.object({}), execute: async () => result })]),
    );
    // A tool error's message is cut the same way.
    tools.set("loud", defineTool({ name: "loud", description: "", inputSchema: z.object({}), execute: async () => { throw new Error("e".repeat(5000)); } }));
    const model = createScriptedModel([callTools([...Object.keys(results), "loud"].map((name) => ({ id: name, name, arguments: "{}" }))), answer("done")]);
    const { events } = await collect({ model, tools, toolResultMaxChars: 1000 });
    const byId = new Map(
      events.filter((event) => event.event_type === "tool_result" || event.event_type === "tool_error").map((event) => [(event.data as { id: string }).id, event]),
    );
    const note = (length: number) => `\n[truncated: the result is ${length} characters; the first 1000 are shown]`;
    const objectText = JSON.stringify(results.object);
    expect(byId.get("text")!.data).toEqual({ id: "text", name: "text", result: "t".repeat(1000) + note(5000) });
    expect(byId.get("object")!.data).toEqual({ id: "object", name: "object", result: objectText.slice(0, 1000) + note(objectText.length) });
    expect(byId.get("small")!.data).toEqual({ id: "small", name: "small", result: { ok: true } });
    expect(byId.get("exact")!.data).toEqual({ id: "exact", name: "exact", result: "e".repeat(1000) });
    expect(byId.get("fn")!.data).toEqual({ id: "fn", name: "fn", result: null });
    expect(byId.get("pair")!.data).toEqual({
      id: "pair",
      name: "pair",
      result: `${"p".repeat(999)}\n[truncated: the result is 1101 characters; the first 999 are shown]`,
    });
    for (const id of ["cycle", "big"]) {
      expect(byId.get(id)).toMatchObject({ event_type: "tool_error", data: { error: { code: "execution_failed", retryable: false } } });
      expect((byId.get(id)!.data as { error: { message: string } }).error.message).toContain(`Tool '${id}' returned a result that cannot be written as JSON`);
    }
    const loud = (byId.get("loud")!.data as { error: { code: string; message: string } }).error;
    expect(loud.code).toBe("execution_failed");
    const original = `Tool 'loud' failed: ${"e".repeat(5000)}`;
    expect(loud.message).toBe(`${original.slice(0, 1000)}\n[truncated: the result is ${original.length} characters; the first 1000 are shown]`);
    // The model reads exactly what was stored.
    const observations = new Map(
      model.requests[1]!.messages.flatMap((message) => (message.role === "tool" ? [[message.toolCallId, message.content] as const] : [])),
    );
    expect(observations.get("text")).toBe("t".repeat(1000) + note(5000));
    expect(observations.get("object")).toBe(objectText.slice(0, 1000) + note(objectText.length));
    expect(observations.get("small")).toBe('{"ok":true}');
    expect(observations.get("fn")).toBe("null");
    expect(events.at(-1)).toMatchObject({ event_type: "final_answer", data: { output: "done" } });
  });

  test("stops at max steps without a final answer", async () => {
    const model = createScriptedModel([callTools([{ id: "x", name: "calculator", arguments: '{"expression":"1+1"}' }])], { repeatLast: true });
    const { events, stop } = await collect({ model, maxSteps: 3 });
    expect(stop).toMatchObject({ reason: "max_steps", totalSteps: 3 });
    expect(model.requests.length).toBe(3);
    expect(events.some((event) => event.event_type === "final_answer")).toBe(false);
  });

  test("stops on the token budget right after the model call, without running its tools", async () => {
    const gate = createGateTool();
    const model = createScriptedModel([callTools([{ id: "w", name: "wait", arguments: "{}" }], "", { inputTokens: 20, outputTokens: 10 })]);
    const { events, stop } = await collect({ model, tools: new Map([["wait", gate.tool]]), tokenBudget: 25 });
    expect(stop).toMatchObject({ reason: "token_budget", totalSteps: 1, totalTokens: 30 });
    expect(types(events)).toEqual(["usage"]);
    expect(gate.calls).toBe(0);
  });

  test("a tool that outlives its timeout becomes a timeout tool_error and the loop goes on", async () => {
    const gate = createGateTool();
    const model = createScriptedModel([callTools([{ id: "w", name: "wait", arguments: "{}" }]), answer("moved on")]);
    const { events } = await collect({ model, tools: new Map([["wait", gate.tool]]), toolTimeoutMs: 50 });
    expect(events[2]).toMatchObject({ event_type: "tool_error", data: { error: { code: "timeout", retryable: true } } });
    expect(gate.abortedWith).toBeDefined(); // the tool's own signal fired
    expect(events.at(-1)).toMatchObject({ event_type: "final_answer", data: { output: "moved on" } });
  });

  test("a tool that never looks at its signal and never settles still times out; a cancel still ends the run", async () => {
    // The call's signal is made lazily (tool-execution.ts CallLimit): a pending tool must get it anyway.
    const deaf = defineTool({ name: "deaf", description: "never settles, never reads its signal", inputSchema: z.object({}), execute: () => new Promise<never>(() => {}) });
    const model = createScriptedModel([callTools([{ id: "d", name: "deaf", arguments: "{}" }]), answer("after the timeout")]);
    const { events } = await collect({ model, tools: new Map([["deaf", deaf]]), toolTimeoutMs: 40 });
    expect(events[2]).toMatchObject({ event_type: "tool_error", data: { error: { code: "timeout", retryable: true } } });
    expect(events.at(-1)).toMatchObject({ event_type: "final_answer", data: { output: "after the timeout" } });

    const controller = new AbortController();
    const reason = new Error("cancelled");
    const run = collect({ model: createScriptedModel([callTools([{ id: "d", name: "deaf", arguments: "{}" }])]), tools: new Map([["deaf", deaf]]), abortSignal: controller.signal, toolTimeoutMs: 60_000 });
    setTimeout(() => controller.abort(reason), 20);
    await expect(run).rejects.toBe(reason);
  });

  test("a tool that reads its signal only after a while gets one whose timeout counted from the call's start", async () => {
    const seen = Promise.withResolvers<{ aborted: boolean }>();
    const late = defineTool({
      name: "late",
      description: "reads its signal after waiting",
      inputSchema: z.object({}),
      async execute(_input, context) {
        await new Promise((resolve) => setTimeout(resolve, 80));
        seen.resolve({ aborted: context.abortSignal.aborted });
        return "late";
      },
    });
    const model = createScriptedModel([callTools([{ id: "l", name: "late", arguments: "{}" }]), answer("done")]);
    const { events } = await collect({ model, tools: new Map([["late", late]]), toolTimeoutMs: 30 });
    expect(events[2]).toMatchObject({ event_type: "tool_error", data: { error: { code: "timeout" } } });
    expect(await seen.promise).toEqual({ aborted: true }); // 30 ms from the call's start, not from the read
  });

  test("abort rejects with the signal's reason and reaches the running tool", async () => {
    const controller = new AbortController();
    const gate = createGateTool();
    const model = createScriptedModel([
      callTools([{ id: "c", name: "calculator", arguments: '{"expression":"2+2"}' }]),
      callTools([{ id: "w", name: "wait", arguments: "{}" }]),
    ]);
    const tools = new Map<string, Tool>([...builtinTools(), ["wait", gate.tool]]);
    const reason = new Error("stop now");
    const run = collect({ model, tools, abortSignal: controller.signal });
    await gate.started;
    controller.abort(reason);
    await expect(run).rejects.toBe(reason);
    expect(gate.abortedWith).toBe(reason);
    expect(model.requests.length).toBe(2);
  });
});
