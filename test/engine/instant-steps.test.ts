/**
 * Steps that are ready at once — a model whose stream is a `readyStream` (demo/bench), a tool whose
 * `execute` settles without waiting — are taken without a promise hop per layer, with the same events.
 */
import { describe, expect, test } from "bun:test";
import { z } from "zod";
import { runReAct, type ReActEvent, type ReActOptions } from "../../src/engine/react.ts";
import { executeToolCall, startToolCall, type ToolCallTiming } from "../../src/engine/tool-execution.ts";
import { createBenchModel } from "../../src/llm/bench-model.ts";
import { readyStream, type ChatModel, type ModelStreamPart, type ToolCallRequest } from "../../src/llm/model.ts";
import { builtinTools } from "../../src/tools/registry.ts";
import { defineTool, type Tool } from "../../src/tools/tool.ts";
import { answer, callTools, createScriptedModel, type ScriptStep } from "../helpers/scripted-model.ts";

const options = (model: ChatModel, extra: Partial<ReActOptions> = {}): ReActOptions => ({
  model,
  tools: builtinTools(),
  messages: [{ role: "user", content: "question" }],
  maxSteps: 10,
  toolTimeoutMs: 5000,
  abortSignal: new AbortController().signal,
  ...extra,
});

async function eventsOf(model: ChatModel, extra: Partial<ReActOptions> = {}): Promise<ReActEvent[]> {
  const events: ReActEvent[] = [];
  for await (const event of runReAct(options(model, extra))) events.push(event);
  return events;
}

/**
 * The engine's events with, for each, how many microtask turns its `next()` took: a self-requeueing
 * microtask counts them until the event arrives (each event is asked for in a fresh macrotask).
 */
async function ticksPerEvent(model: ChatModel, extra: Partial<ReActOptions> = {}): Promise<{ type: string; ticks: number }[]> {
  const events = runReAct(options(model, extra));
  const seen: { type: string; ticks: number }[] = [];
  for (;;) {
    await Bun.sleep(0);
    let ticks = 0;
    let counting = true;
    const tick = () => {
      ticks++;
      if (counting) queueMicrotask(tick);
    };
    queueMicrotask(tick);
    const next = await events.next();
    counting = false;
    if (next.done) return seen;
    seen.push({ type: next.value.event_type, ticks });
  }
}

/** A model whose steps are ready streams that cannot be read as AsyncIterables. */
function readyModel(steps: ScriptStep[]): ChatModel & { reads: number } {
  const model = {
    id: "ready/test",
    reads: 0,
    stream(request: Parameters<ChatModel["stream"]>[0]) {
      const step = steps[model.reads++]!;
      const stream = readyStream(() => {
        request.abortSignal.throwIfAborted();
        return step(request) as ModelStreamPart[];
      });
      Object.defineProperty(stream, Symbol.asyncIterator, {
        value: () => {
          throw new Error("a ready stream was read as an AsyncIterable");
        },
      });
      return stream;
    },
  };
  return model;
}

const script = (): ScriptStep[] => [
  callTools([{ id: "c1", name: "calculator", arguments: '{"expression":"6*7"}' }], "Let me compute."),
  answer("It is 42."),
];

describe("instant steps", () => {
  test("a ready stream is read as an Iterable, with the same events (deltas included) as the same parts streamed", async () => {
    const streamed = await eventsOf(createScriptedModel(script()));
    const model = readyModel(script());
    const ready = await eventsOf(model);
    expect(model.reads).toBe(2);
    expect(ready).toEqual(streamed);
    expect(ready.map((event) => event.event_type)).toEqual(["delta", "usage", "thought", "tool_call", "tool_result", "delta", "usage", "final_answer"]);
  });

  test("a ready stream that throws fails the model call as a streamed one does, and the model call is reported failed", async () => {
    const failing: ScriptStep = () => {
      throw new Error("provider exploded");
    };
    const calls: { error?: unknown }[] = [];
    const model = readyModel([failing]);
    const error = await eventsOf(model, { onModelCall: (call) => calls.push(call) }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe("provider exploded");
    expect(calls).toHaveLength(1);
    expect((calls[0]!.error as Error).message).toBe("provider exploded");
  });

  test("a ready stream aborted before it is read rejects with the signal's reason", async () => {
    const controller = new AbortController();
    const reason = new Error("cancelled");
    controller.abort(reason);
    const error = await eventsOf(readyModel(script()), { abortSignal: controller.signal }).catch((caught: unknown) => caught);
    expect(error).toBe(reason);
  });

  test("a tool that settles at once is taken as a plain yield is: no promise hop per layer", async () => {
    // A streamed (async) model: only the tool's path differs between tool_call and tool_result.
    const seen = await ticksPerEvent(createScriptedModel(script()));
    const call = seen.find((event) => event.type === "tool_call")!;
    const result = seen.find((event) => event.type === "tool_result")!;
    // Before: 7 turns for the result (runBounded, executeToolCall, runToolCall, the tool, each awaited) against 2.
    expect(result.ticks).toBeLessThanOrEqual(call.ticks);
  });

  test("demo/bench is a ready model: a step's events take a few microtask turns each, with or without a delay the same events", async () => {
    const input = JSON.stringify({ steps: 3 });
    const seen = await ticksPerEvent(createBenchModel(), { messages: [{ role: "user", content: input }] });
    expect(seen.map((event) => event.type)).toEqual([
      ...["usage", "tool_call", "tool_result"],
      ...["usage", "tool_call", "tool_result"],
      ...["usage", "tool_call", "tool_result"],
      ...["delta", "usage", "final_answer"],
    ]);
    // Before: 9 turns for a step's usage (the model's async generator read part by part), 18 a step.
    const step = seen.slice(0, 3).reduce((sum, event) => sum + event.ticks, 0);
    expect(step).toBeLessThanOrEqual(8);
    const strip = (events: ReActEvent[]) =>
      events.map((event) => (event.event_type === "tool_call" ? { ...event, data: { ...event.data, arguments: { ...(event.data.arguments as object), t: 0 } } } : event));
    const ready = await eventsOf(createBenchModel(), { messages: [{ role: "user", content: input }] });
    const delayed = await eventsOf(createBenchModel(), { messages: [{ role: "user", content: JSON.stringify({ steps: 3, delay_ms: 1 }) }] });
    expect(strip(ready)).toEqual(strip(delayed));
  });
});

describe("startToolCall", () => {
  const call = (name: string, args: unknown): ToolCallRequest => ({ id: `call-${name}`, name, arguments: typeof args === "string" ? args : JSON.stringify(args) });
  const gate = Promise.withResolvers<string>();
  const tools = new Map<string, Tool>([
    ["calculator", builtinTools().get("calculator")!],
    ["waits", defineTool({ name: "waits", description: "", inputSchema: z.object({}), execute: () => gate.promise })],
    ["throws", defineTool({ name: "throws", description: "", inputSchema: z.object({}), execute: async () => Promise.reject(new Error("no")) })],
  ]);

  test("a call that settles at once gives its outcome, not a promise, and telemetry hears of it", () => {
    const timings: ToolCallTiming[] = [];
    const signal = new AbortController().signal;
    const outcome = startToolCall(call("calculator", { expression: "6*7" }), { tools, timeoutMs: 1000, abortSignal: signal, onToolCall: (timing) => timings.push(timing) });
    expect(outcome).not.toBeInstanceOf(Promise);
    expect(outcome).toMatchObject({ ok: true, result: { expression: "6*7", value: 42 }, text: '{"expression":"6*7","value":42}' });
    // Failures found before the tool runs settle at once too.
    const unknown = startToolCall(call("nope", {}), { tools, timeoutMs: 1000, abortSignal: signal, onToolCall: (timing) => timings.push(timing) });
    expect(unknown).toMatchObject({ ok: false, error: { code: "unknown_tool" } });
    const invalid = startToolCall(call("calculator", "{"), { tools, timeoutMs: 1000, abortSignal: signal });
    expect(invalid).toMatchObject({ ok: false, error: { code: "invalid_arguments" } });
    expect(timings.map((timing) => [timing.name, timing.known, timing.error])).toEqual([
      ["calculator", true, undefined],
      ["nope", false, "unknown_tool"],
    ]);
  });

  test("a call still running, or rejected, gives a promise of the same outcome executeToolCall gives", async () => {
    const timings: ToolCallTiming[] = [];
    const signal = new AbortController().signal;
    const running = startToolCall(call("waits", {}), { tools, timeoutMs: 1000, abortSignal: signal, onToolCall: (timing) => timings.push(timing) });
    expect(running).toBeInstanceOf(Promise);
    gate.resolve("later");
    expect(await running).toMatchObject({ ok: true, result: "later" });
    const rejected = startToolCall(call("throws", {}), { tools, timeoutMs: 1000, abortSignal: signal, onToolCall: (timing) => timings.push(timing) });
    expect(rejected).toBeInstanceOf(Promise);
    expect(await rejected).toEqual(await executeToolCall(call("throws", {}), { tools, timeoutMs: 1000, abortSignal: signal }));
    expect(timings.map((timing) => [timing.name, timing.error])).toEqual([
      ["waits", undefined],
      ["throws", "execution_failed"],
    ]);
  });

  test("a tool that returns a plain value, or a thenable that is not a Promise, gives that value", async () => {
    const signal = new AbortController().signal;
    const plain = defineTool({ name: "plain", description: "", inputSchema: z.object({}), execute: (() => ({ n: 1 })) as unknown as () => Promise<unknown> });
    const thenable = defineTool({
      name: "thenable",
      description: "",
      inputSchema: z.object({}),
      execute: (() => ({ then: (resolve: (value: unknown) => void) => resolve({ n: 2 }) })) as unknown as () => Promise<unknown>,
    });
    const more = new Map<string, Tool>([["plain", plain], ["thenable", thenable]]);
    expect(startToolCall(call("plain", {}), { tools: more, timeoutMs: 1000, abortSignal: signal })).toMatchObject({ ok: true, result: { n: 1 } });
    const adopted = startToolCall(call("thenable", {}), { tools: more, timeoutMs: 1000, abortSignal: signal });
    expect(adopted).toBeInstanceOf(Promise);
    expect(await adopted).toMatchObject({ ok: true, result: { n: 2 }, text: '{"n":2}' });
  });

  test("a thenable that is not a Promise and never settles is bounded by the call's timeout, like a promise", async () => {
    const signal = new AbortController().signal;
    const hangs = defineTool({
      name: "hangs",
      description: "",
      inputSchema: z.object({}),
      execute: (() => ({ then() {} })) as unknown as () => Promise<unknown>,
    });
    const outcome = await Promise.race([
      executeToolCall(call("hangs", {}), { tools: new Map([["hangs", hangs]]), timeoutMs: 50, abortSignal: signal }),
      Bun.sleep(2000).then(() => "still pending 2 s after a 50 ms timeout" as const),
    ]);
    expect(outcome).toMatchObject({ ok: false, error: { code: "timeout" } });
  });

  test("a task aborted while its call fails: the abort is thrown (executeToolCall rejects with it), and reported as aborted", async () => {
    const controller = new AbortController();
    const reason = new Error("cancelled");
    controller.abort(reason);
    const timings: ToolCallTiming[] = [];
    expect(() => startToolCall(call("nope", {}), { tools, timeoutMs: 1000, abortSignal: controller.signal, onToolCall: (timing) => timings.push(timing) })).toThrow(reason);
    expect(timings.map((timing) => timing.error)).toEqual(["aborted"]);
    await expect(executeToolCall(call("nope", {}), { tools, timeoutMs: 1000, abortSignal: controller.signal })).rejects.toBe(reason);
  });
});
