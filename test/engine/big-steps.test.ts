/**
 * A model step with thousands of tool calls (a model that loops, a provider that sends garbage):
 * the agent's `max_tool_calls_per_step` refuses the step before any call is stored or run, and the
 * calls of a step under it run in slices that give the event loop turns. And a reply of a million
 * deltas: its text is kept in pieces, not one rope node per delta.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { heapStats } from "bun:jsc";
import { z } from "zod";
import { DEFAULT_MAX_TOOL_CALLS_PER_STEP, runReAct, type ReActEvent, type ReActOptions } from "../../src/engine/react.ts";
import { readyStream, TooManyToolCallsError, type ChatModel, type ToolCallRequest } from "../../src/llm/model.ts";
import { defineTool, type Tool } from "../../src/tools/tool.ts";
import { toTaskError } from "../../src/tasks/task-error.ts";
import { answer, callTools, createScriptedModel } from "../helpers/scripted-model.ts";
import { AgentDefinition } from "../../src/agents/agent.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

function counterTool(onRun: (runs: number) => void = () => {}) {
  const state = { runs: 0 };
  const tool = defineTool({
    name: "count",
    description: "counts its runs",
    inputSchema: z.object({ n: z.number() }),
    execute: async ({ n }) => (onRun(++state.runs), n),
  });
  return { state, tools: new Map<string, Tool>([["count", tool]]) };
}

const calls = (n: number): ToolCallRequest[] => Array.from({ length: n }, (_, i) => ({ id: `c${i}`, name: "count", arguments: `{"n":${i}}` }));

async function drain(options: Partial<ReActOptions> & Pick<ReActOptions, "model" | "tools">, events: ReActEvent[] = []) {
  const generator = runReAct({ messages: [{ role: "user", content: "go" }], maxSteps: 5, toolTimeoutMs: 5000, abortSignal: new AbortController().signal, ...options });
  for (;;) {
    const next = await generator.next();
    if (next.done) return { events, stop: next.value };
    events.push(next.value);
  }
}

describe("tool calls per step", () => {
  test("one call more than the limit fails the step: no call announced, none run, a clear task error", async () => {
    const { state, tools } = counterTool();
    const model = createScriptedModel([callTools(calls(4)), answer("unreachable")]);
    const events: ReActEvent[] = [];
    const failure = await drain({ model, tools, maxToolCallsPerStep: 3 }, events).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(TooManyToolCallsError);
    expect(events).toEqual([]);
    expect(state.runs).toBe(0);
    expect(model.requests).toHaveLength(1);
    const error = toTaskError(failure);
    expect(error.code).toBe("too_many_tool_calls");
    expect(error.retryable).toBe(false);
    expect(error.message).toContain("more than 3 tool calls in one step");
    expect(error.message).toContain("max_tool_calls_per_step");
  });

  test("exactly the limit runs every call; the default limit applies when the agent sets none", async () => {
    const { state, tools } = counterTool();
    const ok = await drain({ model: createScriptedModel([callTools(calls(3)), answer("done")]), tools, maxToolCallsPerStep: 3 });
    expect(ok.events.filter((event) => event.event_type === "tool_result")).toHaveLength(3);
    expect(state.runs).toBe(3);
    const failure = await drain({ model: createScriptedModel([callTools(calls(DEFAULT_MAX_TOOL_CALLS_PER_STEP + 1))]), tools }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(TooManyToolCallsError);
    expect(state.runs).toBe(3);
  });

  test("the model's stream is not read past the call over the limit", async () => {
    let partsRead = 0;
    let closed = false;
    const model = createScriptedModel([
      () =>
        (async function* () {
          try {
            for (const call of calls(1000)) {
              partsRead++;
              yield { type: "tool-call" as const, call };
            }
            yield { type: "finish" as const, finishReason: "tool-calls" as const, usage: { inputTokens: 1, outputTokens: 1 } };
          } finally {
            closed = true;
          }
        })(),
    ]);
    const failure = await drain({ model, tools: counterTool().tools, maxToolCallsPerStep: 10 }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(TooManyToolCallsError);
    expect(partsRead).toBe(11);
    expect(closed).toBe(true);
  });

  test("a step of many calls that settle at once gives the event loop turns while they run", async () => {
    // Without turns, every call ran in one chain of promises before a timer or a socket was served.
    const n = 10_000;
    let runsAtTurn: number | undefined;
    const { state, tools } = counterTool((runs) => {
      if (runs === 1) setImmediate(() => (runsAtTurn = state.runs));
    });
    const { events } = await drain({ model: createScriptedModel([callTools(calls(n)), answer("done")]), tools, maxToolCallsPerStep: n });
    expect(events.filter((event) => event.event_type === "tool_result")).toHaveLength(n);
    expect(state.runs).toBe(n);
    expect(runsAtTurn).toBeDefined();
    expect(runsAtTurn!).toBeLessThan(n);
  });

});

describe("the agent's max_tool_calls_per_step", () => {
  test("is the limit the task runs with, and the request tells the model: one call over it fails the task (too_many_tool_calls); what came before is kept", async () => {
    const model = createScriptedModel([callTools(calls(2), "first"), callTools(calls(3), "second"), answer("unreachable")]);
    server = await startTestServer({ models: { m: model }, tools: [counterTool().tools.get("count")!], agents: [{ model: "test/m", tools: ["count"], max_tool_calls_per_step: 2 }] });
    const task = await server.createTask({ input: "go" });
    const watcher = await server.watch(task.id);
    const result = (await watcher.result(10_000)) as any;
    expect(result.data.status).toBe("failed");
    expect(result.data.error).toMatchObject({ code: "too_many_tool_calls", retryable: false, message: expect.stringContaining("more than 2 tool calls") });
    expect(model.requests.map((request) => request.maxToolCalls)).toEqual([2, 2]);
    const stored = (await server.storedLog(task.id)).map((frame) => JSON.parse(frame));
    const toolCalls = stored.filter((frame) => frame.data?.event_type === "tool_call");
    expect(toolCalls.map((frame) => frame.data.step)).toEqual([1, 1]); // the first step's two, none of the second's
    expect(stored.filter((frame) => frame.type === "result")).toHaveLength(1);
    const got = (await (await server.http(`/tasks/${task.id}`)).json()) as any;
    expect(got.status).toBe("failed");
    expect(got.error.code).toBe("too_many_tool_calls");
  });

  test("config: at least 1, at most 10,000, 128 when unset", () => {
    const agent = (extra: object) => AgentDefinition.safeParse({ name: "a", model: "demo/react", ...extra });
    expect(agent({}).data?.max_tool_calls_per_step).toBe(DEFAULT_MAX_TOOL_CALLS_PER_STEP);
    expect(agent({ max_tool_calls_per_step: 1 }).success).toBe(true);
    expect(agent({ max_tool_calls_per_step: 10_000 }).success).toBe(true);
    for (const bad of [0, -1, 10_001, 1.5]) expect(agent({ max_tool_calls_per_step: bad }).success).toBe(false);
  });

  test("a model whose reply is ready at once (read without awaiting): exactly the limit runs, one more fails", async () => {
    // Each step's reply as a ReadyStream of its own (the scripted model's generator is not one).
    const ready = (...steps: number[]): ChatModel => ({
      id: "ready/test",
      stream: () => {
        const n = steps.shift() ?? 0;
        return readyStream(() => [
          ...(n > 0 ? calls(n).map((call) => ({ type: "tool-call" as const, call })) : [{ type: "text-delta" as const, text: "done" }]),
          { type: "finish" as const, finishReason: n > 0 ? ("tool-calls" as const) : ("stop" as const), usage: { inputTokens: 1, outputTokens: 1 } },
        ]);
      },
    });
    const { state, tools } = counterTool();
    const ok = await drain({ model: ready(3, 0), tools, maxToolCallsPerStep: 3 });
    expect(ok.events.filter((event) => event.event_type === "tool_result")).toHaveLength(3);
    const failure = await drain({ model: ready(4), tools, maxToolCallsPerStep: 3 }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(TooManyToolCallsError);
    expect(state.runs).toBe(3);
  });
});

describe("a long reply", () => {
  test("a reply of a million one-character deltas: the text is kept without a node per delta", async () => {
    const n = 1_000_000;
    const model = createScriptedModel([
      () =>
        (async function* () {
          for (let index = 0; index < n; index++) yield { type: "text-delta" as const, text: "x" };
          yield { type: "finish" as const, finishReason: "stop" as const, usage: { inputTokens: 1, outputTokens: 1 } };
        })(),
    ]);
    const generator = runReAct({ model, tools: new Map(), messages: [{ role: "user", content: "go" }], maxSteps: 1, toolTimeoutMs: 1000, abortSignal: new AbortController().signal });
    Bun.gc(true);
    const before = heapStats().heapSize;
    let deltas = 0;
    let grown = 0;
    for (;;) {
      const next = await generator.next();
      if (next.done) break;
      if (next.value.event_type === "delta" && ++deltas === n) {
        // The last delta: all of the text is held, none of it read yet.
        Bun.gc(true);
        grown = heapStats().heapSize - before;
      }
      if (next.value.event_type === "final_answer") expect(next.value.data.output).toBe("x".repeat(n));
    }
    expect(deltas).toBe(n);
    // `text += delta` held a rope node per delta (~32 bytes each): 32+ MB here.
    expect(grown).toBeLessThan(n * 8);
  }, 60_000);

  test("text and reasoning joined in batches are exactly what came, past many batches: pairs split across deltas, empty deltas", async () => {
    const pieces = Array.from({ length: 1000 }, (_, index) => (index % 7 === 0 ? "" : index % 3 === 0 ? "\ud83d" : index % 3 === 1 ? "\ude00" : `${index}`));
    const model = createScriptedModel([
      () =>
        (async function* () {
          for (const text of pieces) {
            yield { type: "reasoning-delta" as const, text: `r${text}` };
            yield { type: "text-delta" as const, text };
          }
          yield { type: "finish" as const, finishReason: "stop" as const, usage: { inputTokens: 1, outputTokens: 1 } };
        })(),
    ]);
    const { events } = await drain({ model, tools: new Map() });
    const deltas = events.filter((event) => event.event_type === "delta").map((event) => (event.event_type === "delta" ? event.data : undefined));
    expect(deltas.filter((data) => data?.kind === "text").map((data) => data!.text)).toEqual(pieces.filter((text) => text !== ""));
    const answerEvent = events.find((event) => event.event_type === "final_answer");
    expect(answerEvent?.event_type === "final_answer" && answerEvent.data.output).toBe(pieces.join(""));
    const thought = events.find((event) => event.event_type === "thought");
    expect(thought?.event_type === "thought" && thought.data.reasoning).toBe(pieces.map((text) => `r${text}`).join(""));
  });
});
