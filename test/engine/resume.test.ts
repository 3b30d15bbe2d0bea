/**
 * Resuming from the durable log: the real engine with a scripted model, its events stored as the
 * runner stores them (stepFrame JSON), the log cut at every point, the conversation rebuilt and the
 * run continued — compared with what the model got in the uninterrupted run.
 */
import { describe, expect, test } from "bun:test";
import { z } from "zod";
import { runReAct, type ReActEvent, type ReActOptions, type ReActStop } from "../../src/engine/react.ts";
import { argumentsText, pendingCallPlan, ResumeLogError, resumeFromLog, resumedEventFor, type ResumeState } from "../../src/engine/resume.ts";
import { INTERRUPTED_MESSAGE, parseToolArguments } from "../../src/engine/tool-execution.ts";
import type { ChatMessage, ModelStreamPart, ToolCallRequest } from "../../src/llm/model.ts";
import { toolCallInput } from "../../src/llm/providers/prompt-conversion.ts";
import { ResumedEvent, TaskEvent, type StepEvent } from "../../src/protocol/events.ts";
import { resultFrame, stepFrame } from "../../src/protocol/frames.ts";
import { calculatorTool } from "../../src/tools/calculator.ts";
import { defineTool, type Tool } from "../../src/tools/tool.ts";
import { answer, callTools, createScriptedModel, type ScriptStep } from "../helpers/scripted-model.ts";

const INPUT = "What is the answer?";
const AT = new Date("2026-11-26T00:00:00.000Z");

/** A model step with optional reasoning, text and calls, streamed in pieces like a provider does. */
function turn(options: { reasoning?: string; text?: string; calls?: ToolCallRequest[]; usage: [number, number] }): ScriptStep {
  return () => {
    const parts: ModelStreamPart[] = [];
    for (const piece of split(options.reasoning)) parts.push({ type: "reasoning-delta", text: piece });
    for (const piece of split(options.text)) parts.push({ type: "text-delta", text: piece });
    for (const call of options.calls ?? []) parts.push({ type: "tool-call", call });
    const [inputTokens, outputTokens] = options.usage;
    parts.push({ type: "finish", finishReason: options.calls?.length ? "tool-calls" : "stop", usage: { inputTokens, outputTokens } });
    return parts;
  };
}
const split = (text = "") => (text.length > 3 ? [text.slice(0, 3), text.slice(3)] : text ? [text] : []);

/** The scenario's tools; `effects` and `runs` record what ran, to prove nothing stored runs twice. */
function scenarioTools() {
  const effects: string[] = [];
  const runs: string[] = [];
  const lookup = defineTool({
    name: "lookup",
    description: "reads a value",
    idempotent: true,
    inputSchema: z.object({ key: z.string() }),
    execute: async ({ key }) => (runs.push(`lookup:${key}`), { key, value: key.length }),
  });
  const echo = defineTool({
    name: "echo",
    description: "repeats",
    idempotent: true,
    inputSchema: z.object({ text: z.string() }),
    execute: async ({ text }) => (runs.push(`echo:${text}`), `echo: ${text}`),
  });
  const effect = defineTool({
    name: "effect",
    description: "changes the world (not idempotent)",
    inputSchema: z.object({ label: z.string() }),
    execute: async ({ label }) => (effects.push(label), runs.push(`effect:${label}`), { done: label }),
  });
  const fail = defineTool({
    name: "fail",
    description: "throws (not idempotent)",
    inputSchema: z.object({}),
    execute: async () => {
      runs.push("fail");
      throw new Error("boom");
    },
  });
  const tools = new Map<string, Tool>([lookup, echo, effect, fail, calculatorTool].map((tool) => [tool.name, tool]));
  return { tools, effects, runs };
}

/** Five steps: parallel calls, an unknown tool, bad JSON, a throwing tool, reasoning, a final answer. */
const SCRIPT: ScriptStep[] = [
  turn({
    reasoning: "I should look things up.",
    text: "Let me look.",
    calls: [
      { id: "s1a", name: "lookup", arguments: '{"key":"alpha"}' },
      { id: "s1b", name: "echo", arguments: '{"text":"hi"}' },
      { id: "s1c", name: "nope", arguments: "{}" },
    ],
    usage: [11, 3],
  }),
  turn({ calls: [{ id: "s2a", name: "lookup", arguments: '{"key":' }], usage: [13, 4] }),
  turn({
    reasoning: "Now act.",
    calls: [
      { id: "s3a", name: "effect", arguments: '{"label":"one"}' },
      { id: "s3b", name: "fail", arguments: "{}" },
      { id: "s3c", name: "calculator", arguments: '{"expression":"2*21"}' },
    ],
    usage: [17, 5],
  }),
  turn({
    text: "Almost there.",
    calls: [
      { id: "s4a", name: "lookup", arguments: '{"key":"beta"}' },
      { id: "s4b", name: "effect", arguments: '{"label":"two"}' },
      { id: "s4c", name: "lookup", arguments: '{"key":"gamma"}' },
    ],
    usage: [19, 6],
  }),
  turn({ reasoning: "That settles it.", text: "The answer is 42.", usage: [23, 7] }),
];
const USAGE = [14, 17, 22, 25, 30]; // tokens per step of SCRIPT

// Every call of the script, and what running it records in `runs` (nothing if it cannot run).
const scriptCalls = SCRIPT.flatMap((step, index) =>
  (step({} as never) as ModelStreamPart[]).flatMap((part) => {
    if (part.type !== "tool-call") return [];
    const { id, name, arguments: text } = part.call;
    let args: Record<string, string> | undefined;
    try {
      args = JSON.parse(text);
    } catch {}
    const runs: Record<string, string | undefined> = { fail: "fail", lookup: `lookup:${args?.key}`, echo: `echo:${args?.text}`, effect: `effect:${args?.label}` };
    const run = args ? runs[name] : undefined;
    return [{ step: index + 1, id, name, label: args?.label, run }];
  }),
);

function baseOptions(tools: ReadonlyMap<string, Tool>): Omit<ReActOptions, "model"> {
  return {
    tools,
    messages: [{ role: "user", content: INPUT }],
    maxSteps: 10,
    toolTimeoutMs: 5000,
    maxToolConcurrency: 2,
    abortSignal: new AbortController().signal,
  };
}

/** Runs the engine to its end; the durable events, as the runner would see them. */
async function drain(generator: AsyncGenerator<ReActEvent, ReActStop | undefined>) {
  const events: ReActEvent[] = [];
  for (;;) {
    const next = await generator.next();
    if (next.done) return { events, stop: next.value };
    if (next.value.event_type !== "delta") events.push(next.value);
  }
}

/** Numbers and serialises events as the runner stores them: step frames, and the answer as `result`. */
function store(events: readonly (ReActEvent | StepEvent)[], firstSeq = 1): string[] {
  return events.map((event, index) => {
    const seq = firstSeq + index;
    if (event.event_type === "final_answer") {
      return JSON.stringify(resultFrame(seq, { status: "completed", task_id: "t1", stop_reason: "final_answer", output: event.data.output }));
    }
    if (event.event_type === "delta") throw new Error("deltas are not stored");
    return JSON.stringify(stepFrame(seq, event, AT));
  });
}

type Logged = { seq: number; type: string; event_type?: string; step?: number; data?: any };
const read = (frames: readonly string[]): Logged[] =>
  frames.map((text) => {
    const frame = JSON.parse(text);
    return { seq: frame.seq, type: frame.type, ...(frame.type === "step" ? frame.data : {}) };
  });

/**
 * What a log prefix says about calls, read directly (not through resume.ts): the announced calls
 * without a result, and the calls of the step before `nextStep` that were never announced (the log
 * was cut between its tool_call events): the rebuilt conversation cannot know them.
 */
function callsIn(frames: readonly string[], nextStep: number) {
  const logged = read(frames);
  const announced = new Set(logged.filter((entry) => entry.event_type === "tool_call").map((entry) => entry.data.id as string));
  const settled = new Set(logged.filter((entry) => entry.event_type === "tool_result" || entry.event_type === "tool_error").map((entry) => entry.data.id as string));
  return {
    unfinished: [...announced].filter((id) => !settled.has(id)),
    dropped: new Set(scriptCalls.filter((call) => call.step === nextStep - 1 && !announced.has(call.id)).map((call) => call.id)),
  };
}

/**
 * The messages the model got in the uninterrupted run, seen from a log prefix: calls that were
 * never announced are dropped (with their observations), the observations of unfinished calls are
 * not there yet — or, once settled, say "interrupted" for the calls not run again.
 */
function asOfLog(
  messages: readonly ChatMessage[],
  calls: { dropped: ReadonlySet<string>; unfinished: readonly string[] },
  settled: "no" | { interrupted: ReadonlySet<string> } = "no",
): ChatMessage[] {
  const unfinished = new Set(calls.unfinished);
  const out: ChatMessage[] = [];
  for (const message of messages) {
    if (message.role === "assistant" && message.toolCalls) {
      out.push({ ...message, toolCalls: message.toolCalls.filter((call) => !calls.dropped.has(call.id)) });
    } else if (message.role === "tool") {
      if (calls.dropped.has(message.toolCallId)) continue;
      if (unfinished.has(message.toolCallId)) {
        if (settled === "no") continue;
        if (settled.interrupted.has(message.toolCallId)) {
          out.push({ ...message, content: `Error (interrupted): ${INTERRUPTED_MESSAGE}`, isError: true });
          continue;
        }
      }
      out.push(message);
    } else out.push(message);
  }
  return out;
}

/** The step the log says comes next, read directly: after the last step that called tools, or that step again. */
function expectedNextStep(frames: readonly string[]): number {
  const logged = read(frames);
  const lastUsage = logged.findLast((entry) => entry.event_type === "usage");
  if (!lastUsage) return 1;
  const called = logged.some((entry) => entry.event_type === "tool_call" && entry.step === lastUsage.step);
  return called ? lastUsage.step! + 1 : lastUsage.step!;
}

function resumeRun(state: ResumeState, script: ScriptStep[], tools: ReadonlyMap<string, Tool>, extra: Partial<ReActOptions> = {}) {
  const model = createScriptedModel(script);
  const generator = runReAct({
    ...baseOptions(tools),
    model,
    messages: state.messages,
    firstStep: state.nextStep,
    usedTokens: state.totals.inputTokens + state.totals.outputTokens,
    pendingCalls: state.unfinished,
    ...extra,
  });
  return { model, run: drain(generator) };
}

describe("resumeFromLog + runReAct resume", () => {
  test("cut at every point: the rebuilt conversation is what the model got, and the run goes on as before", async () => {
    const original = scenarioTools();
    const model = createScriptedModel(SCRIPT);
    const { events, stop } = await drain(runReAct({ ...baseOptions(original.tools), model }));
    expect(stop).toBeUndefined();
    expect(events.map((event): string => event.event_type)).toEqual([
      ...["usage", "thought", "tool_call", "tool_call", "tool_call", "tool_result", "tool_result", "tool_error"],
      ...["usage", "tool_call", "tool_error"],
      ...["usage", "thought", "tool_call", "tool_call", "tool_call", "tool_result", "tool_error", "tool_result"],
      ...["usage", "thought", "tool_call", "tool_call", "tool_call", "tool_result", "tool_result", "tool_result"],
      ...["usage", "thought", "final_answer"],
    ]);
    const log = store(events);
    const answerEvent = events.at(-1)!;
    expect(answerEvent.data).toEqual({ output: "The answer is 42.", total_steps: 5, total_tokens: 108 });
    expect(model.requests.length).toBe(5);

    const effectCalls = scriptCalls.filter((call) => call.name === "effect");

    let secondLevelCuts = 0;
    for (let cut = 0; cut <= log.length; cut++) {
      const prefix = log.slice(0, cut);
      const state = resumeFromLog(INPUT, prefix);
      const where = `cut after ${cut} frames`;
      if (cut === log.length) {
        expect(state.finished, where).toBe(true);
        continue;
      }
      expect(state.finished, where).toBe(false);
      expect(state.lastSeq, where).toBe(cut);
      expect(state.nextStep, where).toBe(expectedNextStep(prefix));
      const usages = read(prefix).filter((entry) => entry.event_type === "usage");
      expect(state.totals, where).toEqual({
        steps: usages.at(-1)?.step ?? 0,
        inputTokens: usages.reduce((sum, entry) => sum + entry.data.input_tokens, 0),
        outputTokens: usages.reduce((sum, entry) => sum + entry.data.output_tokens, 0),
      });
      const calls = callsIn(prefix, state.nextStep);
      expect(state.unfinished.map((pending) => pending.call.id), where).toEqual(calls.unfinished);
      expect(state.unfinished.every((pending) => pending.step === state.nextStep - 1), where).toBe(true);

      // The conversation: exactly the messages of the model's request for step `nextStep`, as far as
      // the log knows them (and byte for byte here: compact JSON arguments, no blank text).
      expect(state.messages, where).toStrictEqual(asOfLog(model.requests[state.nextStep - 1]!.messages, calls));

      // Go on from there: the same script from step `nextStep`, tools counting what runs.
      const resumedTools = scenarioTools();
      const resumed = resumeRun(state, SCRIPT.slice(state.nextStep - 1), resumedTools.tools);
      const { events: after, stop: afterStop } = await resumed.run;
      expect(afterStop, where).toBeUndefined();
      const plan = pendingCallPlan(state.unfinished, resumedTools.tools);
      const interrupted = new Set(plan.notRerun);
      expect(new Set([...plan.rerun, ...plan.notRerun]), where).toEqual(new Set(calls.unfinished));

      // Pending calls are settled first, in call order, under their own step.
      const settlement = after.slice(0, state.unfinished.length);
      for (const [index, pending] of state.unfinished.entries()) {
        const event = settlement[index]!;
        expect(event.step, where).toBe(pending.step);
        if (interrupted.has(pending.call.id)) {
          expect(event, where).toEqual({
            event_type: "tool_error",
            step: pending.step,
            data: { id: pending.call.id, name: pending.call.name, error: { code: "interrupted", message: INTERRUPTED_MESSAGE, retryable: false } },
          });
        } else {
          // Run again: the same outcome as the first time (deterministic tools).
          const before = events.find(
            (candidate) => (candidate.event_type === "tool_result" || candidate.event_type === "tool_error") && candidate.data.id === pending.call.id,
          );
          expect(event, where).toEqual(before!);
        }
      }
      // Then the rest of the run, event for event as before (the answer's token total aside).
      const originalRest = events.filter((event) => event.step >= state.nextStep);
      expect(after.slice(state.unfinished.length, -1), where).toEqual(originalRest.slice(0, -1));
      expect(after.at(-1), where).toEqual({
        ...answerEvent,
        data: {
          ...(answerEvent.data as object),
          // A step whose output was lost is asked again: its tokens count twice.
          total_tokens: USAGE.reduce((sum, tokens) => sum + tokens, 0) + (usages.some((entry) => entry.step === state.nextStep) ? USAGE[state.nextStep - 1]! : 0),
        },
      } as ReActEvent);

      // Every model call after the resume got what it got before, as far as the log knew it.
      expect(resumed.model.requests.length, where).toBe(SCRIPT.length - state.nextStep + 1);
      for (const [index, request] of resumed.model.requests.entries()) {
        expect(request.messages, `${where}, step ${state.nextStep + index}`).toStrictEqual(
          asOfLog(model.requests[state.nextStep - 1 + index]!.messages, calls, { interrupted }),
        );
      }

      // Nothing whose result was stored ran again; a non-idempotent call never ran twice.
      const storedIds = new Set(read(prefix).filter((entry) => entry.event_type === "tool_result" || entry.event_type === "tool_error").map((entry) => entry.data.id));
      expect(resumedTools.effects, where).toEqual(effectCalls.filter((call) => call.step >= state.nextStep && !storedIds.has(call.id)).map((call) => call.label!));
      const rerun = new Set(plan.rerun);
      const expectedRuns = scriptCalls.flatMap((call) => (call.run && (rerun.has(call.id) || call.step >= state.nextStep) ? [call.run] : []));
      expect(resumedTools.runs.toSorted(), where).toEqual(expectedRuns.toSorted());

      // A second interruption, anywhere in the resumed run (after its `resumed` event): resume again.
      const resumedFrame = JSON.stringify(
        stepFrame(cut + 1, resumedEventFor(state, { tools: resumedTools.tools, node: "node-b", reason: "takeover" }), AT),
      );
      const log2 = [...prefix, resumedFrame, ...store(after, cut + 2)];
      for (let cut2 = cut + 1; cut2 <= log2.length; cut2++) {
        const prefix2 = log2.slice(0, cut2);
        const state2 = resumeFromLog(INPUT, prefix2);
        const where2 = `${where}, then after ${cut2} frames`;
        secondLevelCuts++;
        expect(state2.resumes, where2).toBe(1);
        if (cut2 === log2.length) {
          expect(state2.finished, where2).toBe(true);
          continue;
        }
        expect(state2.finished, where2).toBe(false);
        expect(state2.nextStep, where2).toBe(expectedNextStep(prefix2));
        const calls2 = callsIn(prefix2, state2.nextStep);
        expect(state2.unfinished.map((pending) => pending.call.id), where2).toEqual(calls2.unfinished);
        expect(state2.messages, where2).toStrictEqual(asOfLog(resumed.model.requests[state2.nextStep - state.nextStep]!.messages, calls2));
      }
    }
    expect(secondLevelCuts).toBeGreaterThan(400);
  });

  test("the store's events (seq + frame) read the same as the frame texts", async () => {
    const model = createScriptedModel(SCRIPT);
    const { events } = await drain(runReAct({ ...baseOptions(scenarioTools().tools), model }));
    const log = store(events).slice(0, 20);
    expect(resumeFromLog(INPUT, log.map((frame, index) => ({ seq: index + 1, frame })))).toEqual(resumeFromLog(INPUT, log));
    expect(() => resumeFromLog(INPUT, [{ seq: 2, frame: log[0]! }])).toThrow("stored under seq 2, the frame says 1");
  });

  test("what the log cannot give back byte for byte is rebuilt with the same meaning", async () => {
    const empty = defineTool({ name: "noargs", description: "", idempotent: true, inputSchema: z.object({}), execute: async () => "ok" });
    const tools = new Map<string, Tool>([["noargs", empty], ["calculator", calculatorTool]]);
    const calls: ToolCallRequest[] = [
      { id: "w", name: "calculator", arguments: '{ "expression" : "1 + 1" }' }, // whitespace
      { id: "e", name: "noargs", arguments: "" }, // empty: no arguments
      { id: "l", name: "calculator", arguments: '"abc"' }, // a JSON string literal
      { id: "n", name: "calculator", arguments: '{"expression":"1","n":1.50}' }, // number formatting
    ];
    const model = createScriptedModel([callTools(calls, "\n"), answer("done")]);
    const { events } = await drain(runReAct({ ...baseOptions(tools), model }));
    const state = resumeFromLog(INPUT, store(events).slice(0, -1)); // the answer's step was lost
    expect(state.nextStep).toBe(2);
    const sent = model.requests[1]!.messages;
    const rebuilt = state.messages;
    expect(rebuilt.length).toBe(sent.length);
    const sentAssistant = sent[1] as Extract<ChatMessage, { role: "assistant" }>;
    const rebuiltAssistant = rebuilt[1] as Extract<ChatMessage, { role: "assistant" }>;
    // Whitespace-only step text is never stored (no thought event): rebuilt as "".
    expect(sentAssistant.content).toBe("\n");
    expect(rebuiltAssistant.content).toBe("");
    expect(rebuiltAssistant.toolCalls!.map((call) => call.arguments)).toEqual(['{"expression":"1 + 1"}', "{}", "abc", '{"expression":"1","n":1.5}']);
    for (const [index, call] of rebuiltAssistant.toolCalls!.entries()) {
      const before = sentAssistant.toolCalls![index]!;
      expect({ id: call.id, name: call.name }).toEqual({ id: before.id, name: before.name });
      // What providers are sent is the same value.
      expect(toolCallInput(call.arguments)).toEqual(toolCallInput(before.arguments));
    }
    expect(parseToolArguments(rebuiltAssistant.toolCalls![0]!.arguments)).toEqual(parseToolArguments(calls[0]!.arguments));
    expect(parseToolArguments(rebuiltAssistant.toolCalls![1]!.arguments)).toEqual(parseToolArguments(calls[1]!.arguments));
    // The observations are byte for byte.
    expect(rebuilt.slice(2)).toStrictEqual(sent.slice(2));
  });

  test("argumentsText inverts what tool_call stores", () => {
    expect(argumentsText({ a: [1, "x"] })).toBe('{"a":[1,"x"]}');
    expect(argumentsText({})).toBe("{}");
    expect(argumentsText('{"key":')).toBe('{"key":'); // unparsable arguments are stored raw
    expect(argumentsText("42")).toBe('"42"'); // a string that is JSON was a JSON string literal
    expect(argumentsText(" ")).toBe('" "');
    expect(argumentsText(null)).toBe("null");
    expect(argumentsText(undefined)).toBe("");
  });

  test("pending calls: an idempotent tool runs again, the others are reported interrupted; the model sees both", async () => {
    const { tools, effects, runs } = scenarioTools();
    const log = store([
      { event_type: "usage", step: 1, data: { input_tokens: 5, output_tokens: 5 } },
      { event_type: "thought", step: 1, data: { text: "Both at once." } },
      { event_type: "tool_call", step: 1, data: { id: "x", name: "effect", arguments: { label: "pay" } } },
      { event_type: "tool_call", step: 1, data: { id: "y", name: "lookup", arguments: { key: "rate" } } },
      { event_type: "tool_call", step: 1, data: { id: "z", name: "echo", arguments: { text: "listed" } } },
    ]);
    const state = resumeFromLog(INPUT, log);
    expect(state.unfinished).toEqual([
      { step: 1, call: { id: "x", name: "effect", arguments: '{"label":"pay"}' } },
      { step: 1, call: { id: "y", name: "lookup", arguments: '{"key":"rate"}' } },
      { step: 1, call: { id: "z", name: "echo", arguments: '{"text":"listed"}' } },
    ]);
    // echo is declared idempotent by the agent here, not by itself.
    const plainEcho = defineTool({ name: "echo", description: "", inputSchema: z.object({ text: z.string() }), execute: async ({ text }) => (runs.push(`echo:${text}`), text) });
    const withPlainEcho = new Map(tools).set("echo", plainEcho);
    expect(pendingCallPlan(state.unfinished, withPlainEcho, ["echo"])).toEqual({ rerun: ["y", "z"], notRerun: ["x"] });
    const resumed = resumeRun(state, [answer("Rate found; payment state unknown.")], withPlainEcho, { idempotentTools: ["echo"] });
    const { events } = await resumed.run;
    expect(events.slice(0, 3)).toEqual([
      { event_type: "tool_error", step: 1, data: { id: "x", name: "effect", error: { code: "interrupted", message: INTERRUPTED_MESSAGE, retryable: false } } },
      { event_type: "tool_result", step: 1, data: { id: "y", name: "lookup", result: { key: "rate", value: 4 } } },
      { event_type: "tool_result", step: 1, data: { id: "z", name: "echo", result: "listed" } },
    ]);
    expect(events.slice(3).map((event) => [event.event_type, event.step])).toEqual([["usage", 2], ["final_answer", 2]]);
    expect(effects).toEqual([]); // never run again
    expect(runs).toEqual(["lookup:rate", "echo:listed"]);
    expect(resumed.model.requests[0]!.messages).toStrictEqual([
      { role: "user", content: INPUT },
      {
        role: "assistant",
        content: "Both at once.",
        toolCalls: [
          { id: "x", name: "effect", arguments: '{"label":"pay"}' },
          { id: "y", name: "lookup", arguments: '{"key":"rate"}' },
          { id: "z", name: "echo", arguments: '{"text":"listed"}' },
        ],
      },
      { role: "tool", toolCallId: "x", toolName: "effect", content: `Error (interrupted): ${INTERRUPTED_MESSAGE}`, isError: true },
      { role: "tool", toolCallId: "y", toolName: "lookup", content: '{"key":"rate","value":4}', isError: false },
      { role: "tool", toolCallId: "z", toolName: "echo", content: "listed", isError: false },
    ]);

    // The runner's `resumed` event says the same, and is a valid durable step event.
    const resumedEvent = resumedEventFor(state, { tools: withPlainEcho, idempotentTools: ["echo"], node: null, reason: "restart" });
    expect(resumedEvent).toEqual({
      event_type: "resumed",
      step: 1,
      data: { attempt: 1, node: null, after_seq: 5, not_rerun: ["x"], rerun: ["y", "z"], reason: "restart" },
    });
    expect(TaskEvent.parse(resumedEvent)).toEqual(resumedEvent);
    // Stored and read back: it counts as a resume, and changes nothing else.
    const again = resumeFromLog(INPUT, [...log, JSON.stringify(stepFrame(6, resumedEvent, AT))]);
    expect(again.resumes).toBe(1);
    expect(again.lastSeq).toBe(6);
    expect({ ...again, resumes: 0, lastSeq: 5 }).toEqual(state);
  });

  test("max_steps counts the steps before the resume", async () => {
    // Step 1's output was lost, and lost again when it was asked again: it is still step 1 (its
    // tokens were spent twice, and count).
    const lostTwice = resumeFromLog(INPUT, store([
      { event_type: "usage", step: 1, data: { input_tokens: 1, output_tokens: 1 } },
      { event_type: "thought", step: 1, data: { text: "Let me see" } },
      { event_type: "usage", step: 1, data: { input_tokens: 2, output_tokens: 2 } },
    ]));
    expect(lostTwice).toMatchObject({ nextStep: 1, totals: { steps: 1, inputTokens: 3, outputTokens: 3 }, messages: [{ role: "user", content: INPUT }] });
    const twoDone = resumeFromLog(INPUT, store([
      { event_type: "usage", step: 1, data: { input_tokens: 1, output_tokens: 1 } },
      { event_type: "tool_call", step: 1, data: { id: "a", name: "calculator", arguments: { expression: "1" } } },
      { event_type: "tool_result", step: 1, data: { id: "a", name: "calculator", result: { expression: "1", value: 1 } } },
      { event_type: "usage", step: 2, data: { input_tokens: 1, output_tokens: 1 } },
      { event_type: "tool_call", step: 2, data: { id: "b", name: "calculator", arguments: { expression: "2" } } },
      { event_type: "tool_result", step: 2, data: { id: "b", name: "calculator", result: { expression: "2", value: 2 } } },
    ]));
    expect(twoDone.nextStep).toBe(3);
    const looping = () => createScriptedModel([callTools([{ id: "c", name: "calculator", arguments: '{"expression":"3"}' }])], { repeatLast: true });
    const tools = new Map<string, Tool>([["calculator", calculatorTool]]);
    const model = looping();
    const { events, stop } = await drain(runReAct({ ...baseOptions(tools), model, messages: twoDone.messages, firstStep: twoDone.nextStep, maxSteps: 3 }));
    expect(model.requests.length).toBe(1); // steps 1 and 2 were before
    expect(stop).toMatchObject({ reason: "max_steps", totalSteps: 3 });
    expect(events.map((event) => [event.event_type, event.step])).toEqual([["usage", 3]]);

    // Resumed past the limit (lowered since): no model call at all.
    const beyond = looping();
    const result = await drain(runReAct({ ...baseOptions(tools), model: beyond, messages: twoDone.messages, firstStep: twoDone.nextStep, maxSteps: 2 }));
    expect(beyond.requests.length).toBe(0);
    expect(result.stop).toMatchObject({ reason: "max_steps", totalSteps: 2 });
  });

  test("the token budget and the totals count the tokens used before the resume", async () => {
    const tools = new Map<string, Tool>([["calculator", calculatorTool]]);
    const step = () => callTools([{ id: "c", name: "calculator", arguments: '{"expression":"3"}' }], "", { inputTokens: 10, outputTokens: 5 });
    const over = createScriptedModel([step()]);
    const stopped = await drain(runReAct({ ...baseOptions(tools), model: over, firstStep: 4, usedTokens: 100, tokenBudget: 110 }));
    expect(stopped.stop).toMatchObject({ reason: "token_budget", totalSteps: 4, totalTokens: 115 });
    expect(stopped.events.map((event) => event.event_type)).toEqual(["usage"]); // its tools never ran

    const under = createScriptedModel([step(), answer("fine", { inputTokens: 1, outputTokens: 1 })]);
    const finished = await drain(runReAct({ ...baseOptions(tools), model: under, firstStep: 4, usedTokens: 80, tokenBudget: 110 }));
    expect(finished.events.at(-1)).toEqual({ event_type: "final_answer", step: 5, data: { output: "fine", total_steps: 5, total_tokens: 97 } });
  });

  test("unknown frame and event types are skipped", async () => {
    const model = createScriptedModel(SCRIPT);
    const { events } = await drain(runReAct({ ...baseOptions(scenarioTools().tools), model }));
    const log = store(events).slice(0, 12);
    const withUnknown = [
      ...log.slice(0, 3),
      JSON.stringify({ type: "step", seq: 4, data: { event_type: "heartbeat", step: 1, data: { whatever: [1] }, timestamp: AT.toISOString() } }),
      JSON.stringify({ type: "checkpoint", seq: 5, data: { note: "from a newer version" } }),
      ...log.slice(3).map((frame) => frame.replace(/^\{"type":"step","seq":(\d+)/, (_, seq) => `{"type":"step","seq":${Number(seq) + 2}`)),
    ];
    const plain = resumeFromLog(INPUT, log);
    const tolerant = resumeFromLog(INPUT, withUnknown);
    expect(tolerant.lastSeq).toBe(14);
    expect({ ...tolerant, lastSeq: 12 }).toEqual(plain);
    expect(plain.messages.length).toBeGreaterThan(2);
  });

  test("a corrupt or contradictory log fails clearly", () => {
    const usage = (seq: number, step: number) => JSON.stringify(stepFrame(seq, { event_type: "usage", step, data: { input_tokens: 1, output_tokens: 1 } }, AT));
    const call = (seq: number, id: string) => JSON.stringify(stepFrame(seq, { event_type: "tool_call", step: 1, data: { id, name: "calculator", arguments: {} } }, AT));
    const result = (seq: number, id: string) => JSON.stringify(stepFrame(seq, { event_type: "tool_result", step: 1, data: { id, name: "calculator", result: 1 } }, AT));
    const cases: [string[], string][] = [
      [[usage(1, 1), "{not json"], "frame 2: not JSON"],
      [[usage(1, 1), JSON.stringify({ type: "step", seq: 2, data: { event_type: "tool_call", step: 1, data: { name: "calculator" }, timestamp: "x" } })], "seq 2: invalid 'tool_call' event: data.id"],
      [[usage(1, 1), JSON.stringify({ type: "step", seq: 2 })], "seq 2: invalid step frame"],
      [[usage(1, 1), usage(1, 1)], "frames out of order"],
      [[usage(1, 1), result(2, "a")], "tool_result for call 'a', which was not announced"],
      [[usage(1, 1), call(2, "a"), result(3, "a"), result(4, "a")], "already has a result"],
      [[usage(1, 1), call(2, "a"), usage(3, 2)], "step 2 began while calls of step 1 had no result (a)"],
    ];
    for (const [log, message] of cases) {
      expect(() => resumeFromLog(INPUT, log)).toThrow(ResumeLogError);
      expect(() => resumeFromLog(INPUT, log)).toThrow(message);
    }
  });

  test("a call id used twice in a step: each event goes to the first open call with it; thousands of calls replay with every decision and result in place", () => {
    let seq = 0;
    const frame = (event: Parameters<typeof stepFrame>[1]) => JSON.stringify(stepFrame(++seq, event, AT));
    const call = (id: string, expression: string) => frame({ event_type: "tool_call", step: 1, data: { id, name: "calculator", arguments: { expression } } });
    const log = [
      frame({ event_type: "usage", step: 1, data: { input_tokens: 1, output_tokens: 1 } }),
      call("c", "1"),
      call("c", "2"),
      call("d", "3"),
      frame({ event_type: "approval_requested", step: 1, data: { id: "c", name: "calculator", arguments: { expression: "1" }, expires_at: null } }),
    ];
    // While both are open, the approval is the first's.
    expect(resumeFromLog(INPUT, log).unfinished.map((pending) => [pending.call.arguments, pending.awaiting])).toEqual([
      ['{"expression":"1"}', "approval"],
      ['{"expression":"2"}', undefined],
      ['{"expression":"3"}', undefined],
    ]);
    log.push(
      frame({ event_type: "approval_decided", step: 1, data: { id: "c", name: "calculator", decision: "approved", by: "k" } }),
      frame({ event_type: "tool_result", step: 1, data: { id: "c", name: "calculator", result: 1 } }),
      frame({ event_type: "approval_requested", step: 1, data: { id: "c", name: "calculator", arguments: { expression: "2" }, expires_at: null } }),
    );
    const state = resumeFromLog(INPUT, log);
    expect(state.unfinished.map((pending) => [pending.call.id, pending.call.arguments, pending.awaiting])).toEqual([
      ["c", '{"expression":"2"}', "approval"],
      ["d", '{"expression":"3"}', undefined],
    ]);
    expect(state.messages.at(-1)).toMatchObject({ role: "tool", toolCallId: "c", content: "1" });

    // 3,000 calls in one step, each asked for approval and decided; the even ones have their result.
    seq = 0;
    const many = [frame({ event_type: "usage", step: 1, data: { input_tokens: 1, output_tokens: 1 } })];
    const ids = Array.from({ length: 3000 }, (_, index) => `call-${index}`);
    for (const id of ids) many.push(call(id, "1"));
    for (const id of ids) many.push(frame({ event_type: "approval_requested", step: 1, data: { id, name: "calculator", arguments: { expression: "1" }, expires_at: null } }));
    for (const id of ids) many.push(frame({ event_type: "approval_decided", step: 1, data: { id, name: "calculator", decision: "approved", by: "k" } }));
    for (const id of ids.filter((_, index) => index % 2 === 0)) many.push(frame({ event_type: "tool_result", step: 1, data: { id, name: "calculator", result: 1 } }));
    const big = resumeFromLog(INPUT, many);
    expect(big.unfinished.map((pending) => pending.call.id)).toEqual(ids.filter((_, index) => index % 2 === 1));
    expect(big.unfinished.every((pending) => pending.decision?.kind === "approved")).toBe(true);
    expect(big.decided.size).toBe(3000);
    expect(big.awaiting).toEqual([]);
  });

  test("a log that already has its result is finished", async () => {
    const model = createScriptedModel([answer("done")]);
    const { events } = await drain(runReAct({ ...baseOptions(new Map()), model }));
    const log = store(events);
    expect(read(log).map((entry) => entry.type)).toEqual(["step", "result"]);
    expect(resumeFromLog(INPUT, log).finished).toBe(true);
    expect(resumeFromLog(INPUT, log.slice(0, 1)).finished).toBe(false);
    // A stop (max_steps…) is a result too.
    const stopped = JSON.stringify(resultFrame(2, { status: "failed", task_id: "t1", stop_reason: "max_steps" }));
    expect(resumeFromLog(INPUT, [log[0]!, stopped]).finished).toBe(true);
  });

  test("an empty log starts the task from its input", () => {
    expect(resumeFromLog(INPUT, [])).toEqual({
      messages: [{ role: "user", content: INPUT }],
      nextStep: 1,
      totals: { steps: 0, inputTokens: 0, outputTokens: 0 },
      unfinished: [],
      finished: false,
      lastStep: 0,
      lastSeq: 0,
      resumes: 0,
      consumedInputs: new Set(),
      outputRetriesUsed: 0,
      waitedMs: 0,
      awaiting: [],
      decided: new Set(),
    });
    expect(ResumedEvent.parse(resumedEventFor(resumeFromLog(INPUT, []), { tools: new Map(), node: "n1", reason: "takeover" })).step).toBe(0);
  });
});
