/**
 * People in the loop, in the engine and in the resume logic (no server): calls held for an
 * approval or an answer, decisions read back from the log, steering inputs, structured final
 * answers and the forced tool choice — with a scripted model that records every request, so each
 * test can compare what the model was sent with what the log rebuilds.
 */
import { describe, expect, test } from "bun:test";
import { z } from "zod";
import { EMPTY_ANSWER, TRUNCATED_ANSWER, runReAct, outputFeedback, type HumanInput, type ReActEvent, type ReActOptions, type ReActStop } from "../../src/engine/react.ts";
import { pendingCallPlan, ResumeLogError, resumeFromLog, resumedEventFor, type ResumeState } from "../../src/engine/resume.ts";
import { compileOutputSchema } from "../../src/engine/structured-output.ts";
import { INTERRUPTED_MESSAGE } from "../../src/engine/tool-execution.ts";
import type { ChatMessage, ModelRequest, ModelStreamPart, ToolCallRequest } from "../../src/llm/model.ts";
import { TaskEvent, type StepEvent } from "../../src/protocol/events.ts";
import { resultFrame, stepFrame } from "../../src/protocol/frames.ts";
import { askUserTool, QUESTION_TOOLS } from "../../src/tools/ask-user.ts";
import { defineTool, type Tool } from "../../src/tools/tool.ts";
import { answer, callTools, createScriptedModel, type ScriptStep } from "../helpers/scripted-model.ts";

const INPUT = "Pay the invoice.";
const AT = new Date("2026-11-26T00:00:00.000Z");
const EXPIRES = "2026-11-27T00:00:00.000Z";
/** Tools that wait for an approval in these tests. */
const GATED = new Set(["pay", "refresh"]);

/**
 * `pay` changes the world (not idempotent) and needs approval; `refresh` needs approval too but is
 * idempotent; `lookup` is idempotent and runs freely; `ask_user` is the real question tool.
 * `effects` records what `pay` did, `runs` every tool that ran.
 */
function peopleTools() {
  const effects: string[] = [];
  const runs: string[] = [];
  const pay = defineTool({
    name: "pay",
    description: "pays an amount (not idempotent)",
    inputSchema: z.object({ amount: z.number() }),
    execute: async ({ amount }) => (effects.push(`pay:${amount}`), runs.push(`pay:${amount}`), { paid: amount }),
  });
  const refresh = defineTool({
    name: "refresh",
    description: "refreshes a cache (idempotent)",
    idempotent: true,
    inputSchema: z.object({ key: z.string() }),
    execute: async ({ key }) => (runs.push(`refresh:${key}`), `refreshed ${key}`),
  });
  const lookup = defineTool({
    name: "lookup",
    description: "reads a value",
    idempotent: true,
    inputSchema: z.object({ key: z.string() }),
    execute: async ({ key }) => (runs.push(`lookup:${key}`), { key, value: key.length }),
  });
  const tools = new Map<string, Tool>([pay, refresh, lookup, askUserTool].map((tool) => [tool.name, tool]));
  return { tools, effects, runs };
}

function baseOptions(tools: ReadonlyMap<string, Tool>, extra: Partial<ReActOptions> = {}): Omit<ReActOptions, "model"> {
  return {
    tools,
    messages: [{ role: "user", content: INPUT }],
    maxSteps: 10,
    toolTimeoutMs: 5000,
    abortSignal: new AbortController().signal,
    needsApproval: (name) => GATED.has(name),
    questionTools: QUESTION_TOOLS,
    waitExpiresAt: () => EXPIRES,
    ...extra,
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
function store(events: readonly (ReActEvent | StepEvent)[], firstSeq = 1, at: (index: number) => Date = () => AT): string[] {
  return events.map((event, index) => {
    const seq = firstSeq + index;
    if (event.event_type === "final_answer") {
      return JSON.stringify(resultFrame(seq, { status: "completed", task_id: "t1", stop_reason: "final_answer", output: event.data.output }));
    }
    if (event.event_type === "delta") throw new Error("deltas are not stored");
    return JSON.stringify(stepFrame(seq, event, at(index)));
  });
}

const types = (events: readonly ReActEvent[]) => events.map((event): string => event.event_type);

function approvalDecided(id: string, name: string, decision: "approved" | "rejected" | "timed_out", reason?: string): StepEvent {
  return {
    event_type: "approval_decided",
    step: 1,
    data: { id, name, decision, ...(reason ? { reason } : {}), by: decision === "timed_out" ? "system" : "alice" },
  };
}
const answered = (id: string, text: string | null): StepEvent => ({ event_type: "answer", step: 1, data: { id, name: "ask_user", text, by: text === null ? "system" : "alice" } });

/** The options to go on from a rebuilt state, as the runner passes them. */
function resumeOptions(state: ResumeState): Partial<ReActOptions> {
  return {
    messages: state.messages,
    firstStep: state.nextStep,
    usedTokens: state.totals.inputTokens + state.totals.outputTokens,
    pendingCalls: state.unfinished,
    outputRetriesUsed: state.outputRetriesUsed,
  };
}

/** A durable inbox like the store's: inputs that arrived, each handed over once (`consumed`). */
function createInbox(arrived: readonly HumanInput[] = [], consumed: ReadonlySet<string> = new Set()) {
  const inputs = [...arrived];
  const taken = new Set(consumed);
  return {
    arrive(input: HumanInput) {
      if (!inputs.some((candidate) => candidate.id === input.id)) inputs.push(input);
    },
    async take(): Promise<HumanInput[]> {
      const fresh = inputs.filter((input) => !taken.has(input.id));
      for (const input of fresh) taken.add(input.id);
      return fresh;
    },
  };
}

/** Step 1 of most tests: a gated `pay` and a free `lookup` in one step. */
const PAY: ToolCallRequest = { id: "p1", name: "pay", arguments: '{"amount":5}' };
const LOOKUP: ToolCallRequest = { id: "l1", name: "lookup", arguments: '{"key":"inv"}' };
const ASK: ToolCallRequest = { id: "q1", name: "ask_user", arguments: '{"question":"Which account?"}' };

/** Runs step 1 (the given calls) to its wait; returns the stored log and the run. */
async function heldRun(calls: ToolCallRequest[], text = "Paying.") {
  const world = peopleTools();
  const model = createScriptedModel([callTools(calls, text)]);
  const run = await drain(runReAct({ ...baseOptions(world.tools), model }));
  return { ...run, world, model, log: store(run.events) };
}

describe("calls held for people", () => {
  test("a gated call is announced, then requested with its expiry, and not run; the step's other calls run; the run waits", async () => {
    let expiries = 0;
    const world = peopleTools();
    const model = createScriptedModel([callTools([PAY, LOOKUP], "Paying.")]);
    const { events, stop } = await drain(runReAct({ ...baseOptions(world.tools), model, waitExpiresAt: () => (expiries++, EXPIRES) }));
    expect(stop).toEqual({ reason: "waiting", totalSteps: 1, totalTokens: 15 });
    expect(events).toEqual([
      { event_type: "usage", step: 1, data: { input_tokens: 10, output_tokens: 5 } },
      { event_type: "thought", step: 1, data: { text: "Paying." } },
      { event_type: "tool_call", step: 1, data: { id: "p1", name: "pay", arguments: { amount: 5 } } },
      { event_type: "tool_call", step: 1, data: { id: "l1", name: "lookup", arguments: { key: "inv" } } },
      { event_type: "approval_requested", step: 1, data: { id: "p1", name: "pay", arguments: { amount: 5 }, expires_at: EXPIRES } },
      { event_type: "tool_result", step: 1, data: { id: "l1", name: "lookup", result: { key: "inv", value: 3 } } },
    ]);
    for (const event of events) expect(TaskEvent.parse(event)).toEqual(event as TaskEvent);
    expect(world.effects).toEqual([]);
    expect(world.runs).toEqual(["lookup:inv"]);
    expect(expiries).toBe(1);
    expect(model.requests.length).toBe(1); // no model step after the wait began

    // Without an expiry (no timeout), the request says null.
    const again = peopleTools();
    const open = await drain(runReAct({ ...baseOptions(again.tools), model: createScriptedModel([callTools([PAY])]), waitExpiresAt: undefined }));
    expect(open.events.find((event) => event.event_type === "approval_requested")!.data).toMatchObject({ id: "p1", expires_at: null });
    expect(open.stop).toMatchObject({ reason: "waiting" });
  });

  test("a gated call with invalid arguments, or to an unknown tool, is not held: it fails as an observation and the loop goes on", async () => {
    const world = peopleTools();
    const model = createScriptedModel([
      callTools([
        { id: "bad-type", name: "pay", arguments: '{"amount":"five"}' },
        { id: "bad-json", name: "pay", arguments: '{"amount":' },
        { id: "unknown", name: "wire_money", arguments: "{}" },
        { id: "empty-question", name: "ask_user", arguments: '{"question":""}' },
      ]),
      answer("I could not pay."),
    ]);
    // Everything needs approval here, even a tool that does not exist.
    const { events, stop } = await drain(runReAct({ ...baseOptions(world.tools), model, needsApproval: () => true }));
    expect(stop).toBeUndefined();
    expect(types(events)).toEqual(["usage", "tool_call", "tool_call", "tool_call", "tool_call", "tool_error", "tool_error", "tool_error", "tool_error", "usage", "final_answer"]);
    const codes = events.filter((event) => event.event_type === "tool_error").map((event) => [event.data.id, (event.data as { error: { code: string } }).error.code]);
    expect(codes).toEqual([
      ["bad-type", "invalid_arguments"],
      ["bad-json", "invalid_arguments"],
      ["unknown", "unknown_tool"],
      ["empty-question", "invalid_arguments"],
    ]);
    expect(world.effects).toEqual([]);
    // The model read the four errors and answered.
    expect(model.requests[1]!.messages.filter((message) => message.role === "tool").map((message) => (message as { isError: boolean }).isError)).toEqual([true, true, true, true]);
  });

  test("ask_user is a question: announced, asked with its text and expiry, never run", async () => {
    const { events, stop, world } = await heldRun([ASK, LOOKUP], "");
    expect(stop).toEqual({ reason: "waiting", totalSteps: 1, totalTokens: 15 });
    expect(events.slice(1)).toEqual([
      { event_type: "tool_call", step: 1, data: { id: "q1", name: "ask_user", arguments: { question: "Which account?" } } },
      { event_type: "tool_call", step: 1, data: { id: "l1", name: "lookup", arguments: { key: "inv" } } },
      { event_type: "question", step: 1, data: { id: "q1", name: "ask_user", question: "Which account?", expires_at: EXPIRES } },
      { event_type: "tool_result", step: 1, data: { id: "l1", name: "lookup", result: { key: "inv", value: 3 } } },
    ]);
    expect(world.runs).toEqual(["lookup:inv"]);
  });

  test("resumed before anyone decided: awaiting = the held calls, and the run waits again without yielding or calling anything", async () => {
    const { log } = await heldRun([PAY, ASK, LOOKUP]);
    const state = resumeFromLog(INPUT, log);
    expect(state.awaiting.map((pending) => [pending.call.id, pending.awaiting])).toEqual([
      ["p1", "approval"],
      ["q1", "question"],
    ]);
    expect(state.unfinished.map((pending) => pending.call.id)).toEqual(["p1", "q1"]); // lookup's result is stored
    expect(state.nextStep).toBe(2);
    expect(pendingCallPlan(state.unfinished, peopleTools().tools)).toEqual({ rerun: [], notRerun: [] });

    const world = peopleTools();
    const model = createScriptedModel([answer("should never be asked")]);
    const inbox = createInbox([{ id: "i1", text: "hurry", by: "bob" }]);
    const resumed = await drain(runReAct({ ...baseOptions(world.tools), model, takeInputs: inbox.take, ...resumeOptions(state) }));
    expect(resumed).toEqual({ events: [], stop: { reason: "waiting", totalSteps: 1, totalTokens: 15 } });
    expect(model.requests.length).toBe(0);
    expect(world.runs).toEqual([]);
    expect(await inbox.take()).toHaveLength(1); // the input was not taken while the task waits

    // One of the two decided: still waiting (for the other).
    const half = resumeFromLog(INPUT, [...log, ...store([approvalDecided("p1", "pay", "approved")], log.length + 1)]);
    expect(half.awaiting.map((pending) => pending.call.id)).toEqual(["q1"]);
    const stillWaiting = await drain(runReAct({ ...baseOptions(world.tools), model, ...resumeOptions(half) }));
    expect(stillWaiting.events).toEqual([]);
    expect(stillWaiting.stop).toMatchObject({ reason: "waiting" });
    expect(world.effects).toEqual([]);
  });
});

describe("decisions, read back from the log", () => {
  /** The held run, the decisions appended, resumed and run to the end with a model that answers "done". */
  async function decideAndResume(calls: ToolCallRequest[], decisions: StepEvent[], extraFrames: (firstSeq: number) => string[] = () => []) {
    const { log } = await heldRun(calls);
    const decided = [...log, ...store(decisions, log.length + 1)];
    const full = [...decided, ...extraFrames(decided.length + 1)];
    const state = resumeFromLog(INPUT, full);
    const world = peopleTools();
    const model = createScriptedModel([answer("done")]);
    const run = await drain(runReAct({ ...baseOptions(world.tools), model, ...resumeOptions(state) }));
    return { state, world, model, run, log: full };
  }

  test("approved: the call runs exactly once, and the model reads its result", async () => {
    const { state, world, model, run, log } = await decideAndResume([PAY, LOOKUP], [approvalDecided("p1", "pay", "approved")]);
    expect(state.awaiting).toEqual([]);
    expect(state.unfinished).toEqual([{ step: 1, call: PAY, awaiting: "approval", decision: { kind: "approved", by: "alice" } }]);
    expect(pendingCallPlan(state.unfinished, world.tools)).toEqual({ rerun: [], notRerun: [] }); // runs as decided, not as a rerun
    expect(run.stop).toBeUndefined();
    expect(run.events[0]).toEqual({ event_type: "tool_result", step: 1, data: { id: "p1", name: "pay", result: { paid: 5 } } });
    expect(types(run.events)).toEqual(["tool_result", "usage", "final_answer"]);
    expect(world.effects).toEqual(["pay:5"]);
    expect(model.requests[0]!.messages).toStrictEqual([
      { role: "user", content: INPUT },
      { role: "assistant", content: "Paying.", toolCalls: [PAY, LOOKUP] },
      { role: "tool", toolCallId: "l1", toolName: "lookup", content: '{"key":"inv","value":3}', isError: false },
      { role: "tool", toolCallId: "p1", toolName: "pay", content: '{"paid":5}', isError: false },
    ]);

    // Its result stored, a later resume never runs it again.
    const after = [...log, ...store(run.events.slice(0, 1), log.length + 1)];
    const later = resumeFromLog(INPUT, after);
    expect(later.unfinished).toEqual([]);
    const again = peopleTools();
    const rerun = await drain(runReAct({ ...baseOptions(again.tools), model: createScriptedModel([answer("done")]), ...resumeOptions(later) }));
    expect(types(rerun.events)).toEqual(["usage", "final_answer"]);
    expect(again.effects).toEqual([]);
  });

  test("rejected: a tool_error `rejected` with the reason; the call never runs", async () => {
    const { world, model, run } = await decideAndResume([PAY], [approvalDecided("p1", "pay", "rejected", "too much")]);
    expect(run.events[0]).toEqual({
      event_type: "tool_error",
      step: 1,
      data: { id: "p1", name: "pay", error: { code: "rejected", message: "The user rejected this call to 'pay': too much", retryable: false } },
    });
    expect(world.runs).toEqual([]);
    expect(model.requests[0]!.messages.at(-1)).toEqual({
      role: "tool",
      toolCallId: "p1",
      toolName: "pay",
      content: "Error (rejected): The user rejected this call to 'pay': too much",
      isError: true,
    });
    // Without a reason, the message says only who.
    const plain = await decideAndResume([PAY], [approvalDecided("p1", "pay", "rejected")]);
    expect(plain.run.events[0]!.data).toMatchObject({ error: { code: "rejected", message: "The user rejected this call to 'pay'" } });
  });

  test("timed out: a tool_error `approval_timeout`; the call never runs", async () => {
    const { world, run } = await decideAndResume([PAY], [approvalDecided("p1", "pay", "timed_out")]);
    expect(run.events[0]).toEqual({
      event_type: "tool_error",
      step: 1,
      data: { id: "p1", name: "pay", error: { code: "approval_timeout", message: "Nobody approved this call to 'pay' in time", retryable: false } },
    });
    expect(world.runs).toEqual([]);
  });

  test("answered: the answer is the question's result; unanswered (null): a tool_error `no_answer`", async () => {
    const { model, run } = await decideAndResume([ASK], [answered("q1", "The savings account")]);
    expect(run.events[0]).toEqual({ event_type: "tool_result", step: 1, data: { id: "q1", name: "ask_user", result: "The savings account" } });
    expect(model.requests[0]!.messages.at(-1)).toEqual({ role: "tool", toolCallId: "q1", toolName: "ask_user", content: "The savings account", isError: false });

    const none = await decideAndResume([ASK], [answered("q1", null)]);
    expect(none.run.events[0]).toEqual({
      event_type: "tool_error",
      step: 1,
      data: { id: "q1", name: "ask_user", error: { code: "no_answer", message: "The user did not answer in time", retryable: false } },
    });
  });

  test("both calls of a step decided: settled in call order, then the model goes on", async () => {
    const { run, model, world } = await decideAndResume([PAY, ASK, LOOKUP], [answered("q1", "Savings"), approvalDecided("p1", "pay", "approved")]);
    expect(run.events.slice(0, 2).map((event) => [event.event_type, (event.data as { id: string }).id])).toEqual([
      ["tool_result", "p1"],
      ["tool_result", "q1"],
    ]);
    expect(world.effects).toEqual(["pay:5"]);
    expect(model.requests[0]!.messages.slice(2).map((message) => (message as { toolCallId: string }).toolCallId)).toEqual(["l1", "p1", "q1"]);
  });

  test("approved, then a run began (`resumed`) and died before the result: interrupted when not idempotent, run again when idempotent", async () => {
    const refresh: ToolCallRequest = { id: "r1", name: "refresh", arguments: '{"key":"rates"}' };
    const decisions = [approvalDecided("p1", "pay", "approved"), approvalDecided("r1", "refresh", "approved")];
    // The runner's own `resumed` event, as it wrote it when the continued run began.
    const { log: decided } = await decideAndResume([PAY, refresh], decisions);
    const before = resumeFromLog(INPUT, decided);
    const continued = resumedEventFor(before, { tools: peopleTools().tools, node: null, reason: "continued" });
    expect(continued.data).toMatchObject({ not_rerun: [], rerun: [], reason: "continued" });

    const { state, world, run, model } = await decideAndResume([PAY, refresh], decisions, (seq) => store([continued], seq));
    expect(state.unfinished.map((pending) => [pending.call.id, pending.started])).toEqual([
      ["p1", true],
      ["r1", true],
    ]);
    expect(pendingCallPlan(state.unfinished, world.tools)).toEqual({ rerun: ["r1"], notRerun: ["p1"] });
    const next = resumedEventFor(state, { tools: world.tools, node: "n2", reason: "restart" });
    expect(next.data).toMatchObject({ attempt: 2, rerun: ["r1"], not_rerun: ["p1"], reason: "restart" });
    expect(run.events.slice(0, 2)).toEqual([
      { event_type: "tool_error", step: 1, data: { id: "p1", name: "pay", error: { code: "interrupted", message: INTERRUPTED_MESSAGE, retryable: false } } },
      { event_type: "tool_result", step: 1, data: { id: "r1", name: "refresh", result: "refreshed rates" } },
    ]);
    expect(world.effects).toEqual([]); // never paid twice (nor once, here: it may have been)
    expect(world.runs).toEqual(["refresh:rates"]);
    expect(model.requests[0]!.messages.at(-2)).toMatchObject({ toolCallId: "p1", content: `Error (interrupted): ${INTERRUPTED_MESSAGE}`, isError: true });
  });

  test("rejected or answered, then a run began and died: the person's decision still stands (nothing could have run)", async () => {
    const decisions = [approvalDecided("p1", "pay", "rejected", "no"), answered("q1", "Savings")];
    const { log: decided } = await decideAndResume([PAY, ASK], decisions);
    const continued = resumedEventFor(resumeFromLog(INPUT, decided), { tools: peopleTools().tools, node: null, reason: "continued" });
    const { state, world, run } = await decideAndResume([PAY, ASK], decisions, (seq) => store([continued], seq));
    expect(pendingCallPlan(state.unfinished, world.tools)).toEqual({ rerun: [], notRerun: [] });
    expect(resumedEventFor(state, { tools: world.tools, node: null, reason: "restart" }).data).toMatchObject({ rerun: [], not_rerun: [] });
    expect(run.events.slice(0, 2)).toEqual([
      { event_type: "tool_error", step: 1, data: { id: "p1", name: "pay", error: { code: "rejected", message: "The user rejected this call to 'pay': no", retryable: false } } },
      { event_type: "tool_result", step: 1, data: { id: "q1", name: "ask_user", result: "Savings" } },
    ]);
  });

  test("decisions that contradict the log fail clearly", async () => {
    const { log } = await heldRun([PAY, ASK, LOOKUP]);
    const append = (...events: StepEvent[]) => [...log, ...store(events, log.length + 1)];
    const cases: [string[], string][] = [
      [append(approvalDecided("nope", "pay", "approved")), "approval_decided for call 'nope', which was not announced"],
      [append(approvalDecided("q1", "ask_user", "approved")), "approval_decided for call 'q1', which awaits no approval"],
      [append(answered("p1", "yes")), "answer for call 'p1', which awaits no answer"],
      [append(approvalDecided("p1", "pay", "approved"), approvalDecided("p1", "pay", "rejected")), "approval_decided for call 'p1', which awaits no approval"],
      [append(approvalDecided("l1", "lookup", "approved")), "approval_decided for call 'l1', which was not announced or already has a result"],
    ];
    for (const [frames, message] of cases) {
      expect(() => resumeFromLog(INPUT, frames)).toThrow(ResumeLogError);
      expect(() => resumeFromLog(INPUT, frames)).toThrow(message);
    }
  });

  test("waitedMs: from each request event to the `resumed` event that continued the task", () => {
    const t = (seconds: number) => new Date(AT.getTime() + seconds * 1000);
    const resumed = (reason: "restart" | "continued", attempt: number): StepEvent => ({
      event_type: "resumed",
      step: 1,
      data: { attempt, node: null, after_seq: 0, not_rerun: [], rerun: [], reason },
    });
    const timeline: [StepEvent, Date][] = [
      [{ event_type: "usage", step: 1, data: { input_tokens: 1, output_tokens: 1 } }, t(0)],
      [{ event_type: "tool_call", step: 1, data: { id: "p1", name: "pay", arguments: { amount: 5 } } }, t(1)],
      [{ event_type: "approval_requested", step: 1, data: { id: "p1", name: "pay", arguments: { amount: 5 }, expires_at: null } }, t(2)],
      [resumed("restart", 1), t(4)], // the server restarted while the task waited: still waiting
      [approvalDecided("p1", "pay", "approved"), t(6)],
      [resumed("continued", 2), t(9)], // waited 7 s
      [{ event_type: "tool_result", step: 1, data: { id: "p1", name: "pay", result: { paid: 5 } } }, t(10)],
      [{ event_type: "usage", step: 2, data: { input_tokens: 1, output_tokens: 1 } }, t(11)],
      [{ event_type: "tool_call", step: 2, data: { id: "q1", name: "ask_user", arguments: { question: "Sure?" } } }, t(12)],
      [{ event_type: "question", step: 2, data: { id: "q1", name: "ask_user", question: "Sure?", expires_at: null } }, t(12.5)],
      [answered("q1", "yes"), t(13)],
      [resumed("continued", 3), t(14.5)], // waited 2 s
      [{ event_type: "tool_result", step: 2, data: { id: "q1", name: "ask_user", result: "yes" } }, t(15)],
      [{ event_type: "usage", step: 3, data: { input_tokens: 1, output_tokens: 1 } }, t(16)],
      [{ event_type: "tool_call", step: 3, data: { id: "r1", name: "refresh", arguments: { key: "x" } } }, t(17)],
      [{ event_type: "approval_requested", step: 3, data: { id: "r1", name: "refresh", arguments: { key: "x" }, expires_at: null } }, t(18)],
      [resumed("restart", 4), t(30)], // still waiting: not counted until it is continued
    ];
    const log = store(timeline.map(([event]) => event), 1, (index) => timeline[index]![1]);
    const waited = (count: number) => resumeFromLog(INPUT, log.slice(0, count)).waitedMs;
    expect(waited(5)).toBe(0); // requested, restarted, decided: not continued yet
    expect(waited(6)).toBe(7000);
    expect(waited(11)).toBe(7000);
    expect(waited(12)).toBe(9000);
    expect(waited(log.length)).toBe(9000); // the wait in progress does not count yet
    expect(resumeFromLog(INPUT, log).awaiting.map((pending) => pending.call.id)).toEqual(["r1"]);
  });
});

describe("steering: people's inputs join the conversation", () => {
  test("inputs are taken before every model step, yielded as user_input under the coming step, and the model reads them", async () => {
    const world = peopleTools();
    const inbox = createInbox([{ id: "i1", text: "Invoice 7, please.", by: "bob" }]);
    const late: HumanInput = { id: "i2", text: "Also in euros.", by: "carol" };
    const model = createScriptedModel([
      (request) => (inbox.arrive(late), callTools([LOOKUP])(request)), // i2 arrives while step 1 runs
      answer("Done."),
    ]);
    const { events, stop } = await drain(runReAct({ ...baseOptions(world.tools), model, takeInputs: inbox.take }));
    expect(stop).toBeUndefined();
    expect(events.map((event) => [event.event_type, event.step])).toEqual([
      ["user_input", 1],
      ["usage", 1],
      ["tool_call", 1],
      ["tool_result", 1],
      ["user_input", 2],
      ["usage", 2],
      ["final_answer", 2],
    ]);
    expect(events[0]!.data).toEqual({ id: "i1", text: "Invoice 7, please.", by: "bob" });
    expect(events[4]!.data).toEqual({ id: "i2", text: "Also in euros.", by: "carol" });
    expect(model.requests[0]!.messages).toEqual([
      { role: "user", content: INPUT },
      { role: "user", content: "Invoice 7, please." },
    ]);
    expect(model.requests[1]!.messages.at(-1)).toEqual({ role: "user", content: "Also in euros." });
    expect(model.requests[1]!.messages.at(-2)).toMatchObject({ role: "tool", toolCallId: "l1" });
  });

  test("an input that arrives while the model answers: the answer becomes a thought, the input follows, and the model answers again", async () => {
    const world = peopleTools();
    const inbox = createInbox();
    const model = createScriptedModel([
      (request) => (inbox.arrive({ id: "i1", text: "In French, please.", by: "bob" }), answer("Paid.")(request)),
      answer("Payé."),
    ]);
    const { events, stop } = await drain(runReAct({ ...baseOptions(world.tools), model, takeInputs: inbox.take }));
    expect(stop).toBeUndefined();
    expect(events).toEqual([
      { event_type: "usage", step: 1, data: { input_tokens: 10, output_tokens: 5 } },
      { event_type: "thought", step: 1, data: { text: "Paid." } },
      { event_type: "user_input", step: 1, data: { id: "i1", text: "In French, please.", by: "bob" } },
      { event_type: "usage", step: 2, data: { input_tokens: 10, output_tokens: 5 } },
      { event_type: "final_answer", step: 2, data: { output: "Payé.", total_steps: 2, total_tokens: 30 } },
    ]);
    expect(model.requests[1]!.messages).toEqual([
      { role: "user", content: INPUT },
      { role: "assistant", content: "Paid." },
      { role: "user", content: "In French, please." },
    ]);
    // The log of it rebuilds that conversation.
    const state = resumeFromLog(INPUT, store(events.slice(0, 3)));
    expect(state.messages).toStrictEqual(model.requests[1]!.messages as ChatMessage[]);
    expect(state.nextStep).toBe(2);
    expect(state.consumedInputs).toEqual(new Set(["i1"]));
  });

  test("a user_input while a call has no result contradicts the log", () => {
    const log = store([
      { event_type: "usage", step: 1, data: { input_tokens: 1, output_tokens: 1 } },
      { event_type: "tool_call", step: 1, data: { id: "x", name: "lookup", arguments: { key: "a" } } },
      { event_type: "user_input", step: 2, data: { id: "i1", text: "hi", by: "bob" } },
    ]);
    expect(() => resumeFromLog(INPUT, log)).toThrow(ResumeLogError);
    expect(() => resumeFromLog(INPUT, log)).toThrow("seq 3: user_input while calls had no result (x)");
  });
});

// ── One run with everything: an approval, a steering input, a bad final answer, a late input ──

const OUTPUT_SCHEMA = {
  type: "object",
  required: ["total"],
  additionalProperties: false,
  properties: { total: { type: "number" }, note: { type: "string" } },
};
const INPUT_A: HumanInput = { id: "in-a", text: "Use euros, please.", by: "bob" };
const INPUT_B: HumanInput = { id: "in-b", text: "Add a note.", by: "carol" };

/** A model step streamed in pieces, like a provider. */
function turn(options: { text?: string; calls?: ToolCallRequest[]; usage: [number, number] }): ScriptStep {
  return () => {
    const parts: ModelStreamPart[] = [];
    const text = options.text ?? "";
    if (text) parts.push({ type: "text-delta", text: text.slice(0, 4) }, { type: "text-delta", text: text.slice(4) });
    for (const call of options.calls ?? []) parts.push({ type: "tool-call", call });
    parts.push({ type: "finish", finishReason: options.calls?.length ? "tool-calls" : "stop", usage: { inputTokens: options.usage[0], outputTokens: options.usage[1] } });
    return parts;
  };
}

/** Step 1 calls pay (held) and lookup; step 2 answers prose (invalid); step 3 answers JSON while input B arrives; step 4 answers. */
function scenarioScript(inbox: ReturnType<typeof createInbox>): ScriptStep[] {
  return [
    turn({ text: "Paying.", calls: [PAY, LOOKUP], usage: [11, 3] }),
    turn({ text: "Paid 5 euros.", usage: [13, 4] }),
    (request) => (inbox.arrive(INPUT_B), turn({ text: '{"total":5}', usage: [17, 5] })(request)),
    turn({ text: '{ "total": 5, "note": "in euros" }', usage: [19, 6] }),
  ];
}

function scenarioOptions(tools: ReadonlyMap<string, Tool>, inbox: ReturnType<typeof createInbox>): Omit<ReActOptions, "model"> {
  return baseOptions(tools, { takeInputs: inbox.take, outputCheck: compileOutputSchema(OUTPUT_SCHEMA), outputRetries: 2 });
}

describe("resume at every point of a run with an approval, inputs and a bad final answer", () => {
  test("the next model call after any resume gets the messages of the uninterrupted run", async () => {
    // ---- The uninterrupted run: step 1 waits; the approval and input A come; the run goes on. ----
    const world = peopleTools();
    const inbox = createInbox();
    const first = createScriptedModel(scenarioScript(inbox));
    const run1 = await drain(runReAct({ ...scenarioOptions(world.tools, inbox), model: first }));
    expect(run1.stop).toMatchObject({ reason: "waiting" });
    const log1 = store(run1.events);
    const decisionFrames = store([approvalDecided("p1", "pay", "approved")], log1.length + 1);
    inbox.arrive(INPUT_A);
    const decidedState = resumeFromLog(INPUT, [...log1, ...decisionFrames]);
    const continuedFrames = store([resumedEventFor(decidedState, { tools: world.tools, node: null, reason: "continued" })], log1.length + 2);
    const second = createScriptedModel(scenarioScript(inbox).slice(decidedState.nextStep - 1));
    const run2 = await drain(runReAct({ ...scenarioOptions(world.tools, inbox), model: second, ...resumeOptions(decidedState) }));
    expect(run2.stop).toBeUndefined();
    const log = [...log1, ...decisionFrames, ...continuedFrames, ...store(run2.events, log1.length + 3)];
    const stored = log.map((frame) => JSON.parse(frame) as { type: string; data: { event_type?: string; step?: number } });
    expect(stored.map((frame) => (frame.type === "step" ? `${frame.data.event_type}@${frame.data.step}` : frame.type))).toEqual([
      ...["usage@1", "thought@1", "tool_call@1", "tool_call@1", "approval_requested@1", "tool_result@1"],
      ...["approval_decided@1", "resumed@1"],
      ...["tool_result@1", "user_input@2", "usage@2", "thought@2", "output_invalid@2"],
      ...["usage@3", "thought@3", "user_input@3", "usage@4", "result"],
    ]);
    expect(world.effects).toEqual(["pay:5"]);
    expect(run2.events.at(-1)!.data).toEqual({ output: '{"total":5,"note":"in euros"}', output_json: { total: 5, note: "in euros" }, total_steps: 4, total_tokens: 78 });
    /** What the model got for each step in the uninterrupted run. */
    const reference = new Map<number, ModelRequest>([[1, first.requests[0]!], ...second.requests.map((request, index) => [decidedState.nextStep + index, request] as const)]);
    expect([...reference.keys()]).toEqual([1, 2, 3, 4]);
    const messagesOf = (step: number) => reference.get(step)!.messages as ChatMessage[];
    expect(messagesOf(3).at(-1)).toEqual({ role: "user", content: outputFeedback((run2.events.find((event) => event.event_type === "output_invalid")!.data as { message: string }).message) });
    expect(messagesOf(4).slice(-2)).toEqual([
      { role: "assistant", content: '{"total":5}' },
      { role: "user", content: INPUT_B.text },
    ]);

    const index = (type: string, from = 0) => stored.findIndex((frame, at) => at >= from && (frame.type === type || frame.data.event_type === type)) + 1; // frames through it
    const cuts = {
      partialAnnouncement: [index("tool_call"), index("tool_call") + 1],
      waiting: [index("approval_requested"), index("approval_requested") + 1],
      startedThenDied: index("resumed"),
      inputAArrived: index("approval_decided"),
      inputBArrived: index("usage", index("output_invalid")),
      inputBConsumed: index("user_input", index("output_invalid")),
    };
    expect(cuts).toEqual({ partialAnnouncement: [3, 4], waiting: [5, 6], startedThenDied: 8, inputAArrived: 7, inputBArrived: 14, inputBConsumed: 16 });
    const expectedNextStep = [1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 4, 4];

    for (let cut = 0; cut <= log.length; cut++) {
      const where = `cut after ${cut} frames`;
      const prefix = log.slice(0, cut);
      const state = resumeFromLog(INPUT, prefix);
      if (cut === log.length) {
        expect(state.finished, where).toBe(true);
        continue;
      }
      expect(state.finished, where).toBe(false);
      expect(state.nextStep, where).toBe(expectedNextStep[cut]!);
      const logged = stored.slice(0, cut).filter((frame) => frame.type === "step");
      expect(state.outputRetriesUsed, where).toBe(logged.filter((frame) => frame.data.event_type === "output_invalid").length);
      expect([...state.consumedInputs], where).toEqual(logged.filter((frame) => frame.data.event_type === "user_input").map((frame) => (frame.data as unknown as { data: { id: string } }).data.id));

      // Go on from there, with the inputs that had arrived by then (each delivered once).
      const arrived = [...(cut >= cuts.inputAArrived ? [INPUT_A] : []), ...(cut >= cuts.inputBArrived ? [INPUT_B] : [])];
      const resumedInbox = createInbox(arrived, state.consumedInputs);
      const resumedWorld = peopleTools();
      const model = createScriptedModel(scenarioScript(resumedInbox).slice(state.nextStep - 1));
      const { events, stop } = await drain(runReAct({ ...scenarioOptions(resumedWorld.tools, resumedInbox), model, ...resumeOptions(state) }));

      if (cuts.waiting.includes(cut)) {
        // Nobody decided yet: the run settles the step's other open calls (the idempotent lookup,
        // cut before its result was stored, runs again — as its `resumed` event says) and waits again.
        expect(state.awaiting.map((pending) => pending.call.id), where).toEqual(["p1"]);
        const settled = cut === cuts.waiting[0] ? ["tool_result l1"] : [];
        expect(events.map((event) => `${event.event_type} ${(event.data as { id?: string }).id}`), where).toEqual(settled);
        expect(resumedEventFor(state, { tools: resumedWorld.tools, node: null, reason: "restart" }).data.rerun, where).toEqual(cut === cuts.waiting[0] ? ["l1"] : []);
        expect({ stop, requests: model.requests.length }, where).toEqual({ stop: { reason: "waiting", totalSteps: 1, totalTokens: 14 }, requests: 0 });
        continue;
      }
      expect(state.awaiting, where).toEqual([]);
      const sent = model.requests[0]!.messages as ChatMessage[];

      if (cuts.partialAnnouncement.includes(cut)) {
        // Cut before the approval was requested: the announced pay is interrupted (never run), lookup runs again.
        const announced = [PAY, LOOKUP].slice(0, cut - 2);
        expect(sent, where).toStrictEqual([
          { role: "user", content: INPUT },
          { role: "assistant", content: "Paying.", toolCalls: announced },
          { role: "tool", toolCallId: "p1", toolName: "pay", content: `Error (interrupted): ${INTERRUPTED_MESSAGE}`, isError: true },
          ...(announced.length > 1 ? [{ role: "tool" as const, toolCallId: "l1", toolName: "lookup", content: '{"key":"inv","value":3}', isError: false }] : []),
        ]);
        expect(resumedWorld.effects, where).toEqual([]);
        continue;
      }
      if (cut === cuts.startedThenDied) {
        // The approved call's run began and died: not run again, the model is told it was interrupted.
        expect(sent, where).toStrictEqual(
          messagesOf(2).map((message) =>
            message.role === "tool" && message.toolCallId === "p1" ? { ...message, content: `Error (interrupted): ${INTERRUPTED_MESSAGE}`, isError: true } : message,
          ),
        );
        expect(resumedWorld.effects, where).toEqual([]);
        continue;
      }
      if (cut >= cuts.inputBArrived && cut < cuts.inputBConsumed) {
        // Step 3 is asked again, and input B, already in the inbox, comes before it rather than late.
        expect(sent, where).toStrictEqual([...messagesOf(3), { role: "user", content: INPUT_B.text }]);
        expect(events.at(-1), where).toMatchObject({ event_type: "final_answer", data: { output: '{"total":5}', output_json: { total: 5 } } });
        continue;
      }
      // Everywhere else: every model call from here on gets exactly what it got in the uninterrupted run.
      expect(model.requests.length, where).toBe(cut <= 2 ? 1 : 5 - state.nextStep);
      for (const [offset, request] of model.requests.entries()) {
        expect(request.messages, `${where}, step ${state.nextStep + offset}`).toStrictEqual(messagesOf(state.nextStep + offset));
      }
      if (cut <= 2) {
        expect(stop, where).toMatchObject({ reason: "waiting" }); // step 1 again, and its wait
      } else {
        expect(stop, where).toBeUndefined();
        expect(events.at(-1)!.data, where).toMatchObject({ output: '{"total":5,"note":"in euros"}', output_json: { total: 5, note: "in euros" } });
        // The approved pay runs once in all: here only when its result was not stored yet.
        expect(resumedWorld.effects, where).toEqual(cut === cuts.inputAArrived ? ["pay:5"] : []);
      }
    }
  });
});

describe("output schema", () => {
  const check = compileOutputSchema(OUTPUT_SCHEMA);
  const run = (script: ScriptStep[], extra: Partial<ReActOptions> = {}) => {
    const model = createScriptedModel(script);
    return { model, result: drain(runReAct({ ...baseOptions(new Map()), model, outputCheck: check, ...extra })) };
  };

  test("a valid first answer: final_answer with the compact JSON as output, and the value", async () => {
    const { result } = run([answer('```json\n{ "total" : 12.5 }\n```')]);
    const { events, stop } = await result;
    expect(stop).toBeUndefined();
    expect(events.at(-1)).toEqual({ event_type: "final_answer", step: 1, data: { output: '{"total":12.5}', output_json: { total: 12.5 }, total_steps: 1, total_tokens: 15 } });
    expect(TaskEvent.parse(events.at(-1))).toEqual(events.at(-1) as TaskEvent);
  });

  test("invalid, then valid: thought + output_invalid {attempt 1}, the feedback reaches the model, then final_answer", async () => {
    const { model, result } = run([answer("Twelve and a half."), answer('{"total":12.5}')]);
    const { events, stop } = await result;
    expect(stop).toBeUndefined();
    expect(types(events)).toEqual(["usage", "thought", "output_invalid", "usage", "final_answer"]);
    expect(events[1]).toEqual({ event_type: "thought", step: 1, data: { text: "Twelve and a half." } });
    const invalid = events[2]!.data as { message: string; attempt: number };
    expect(invalid.attempt).toBe(1);
    expect(invalid.message).toStartWith("The final answer is not valid JSON");
    expect(model.requests[1]!.messages).toEqual([
      { role: "user", content: INPUT },
      { role: "assistant", content: "Twelve and a half." },
      { role: "user", content: outputFeedback(invalid.message) },
    ]);
    expect(events.at(-1)!.data).toMatchObject({ output: '{"total":12.5}', total_steps: 2 });
  });

  test("invalid beyond outputRetries: the run stops with invalid_output; the last answer is a thought", async () => {
    const { model, result } = run([answer("no"), answer('{"total":"x"}')], { outputRetries: 1 });
    const { events, stop } = await result;
    expect(types(events)).toEqual(["usage", "thought", "output_invalid", "usage", "thought"]);
    expect(stop).toMatchObject({ reason: "invalid_output", totalSteps: 2, totalTokens: 30 });
    expect((stop as { message: string }).message).toBe(`The final answer does not match the output schema: at $.total: expected number, got string "x".`);
    expect(model.requests.length).toBe(2);

    const none = run([answer("no")], { outputRetries: 0 });
    const zero = await none.result;
    expect(types(zero.events)).toEqual(["usage", "thought"]);
    expect(zero.stop).toMatchObject({ reason: "invalid_output", totalSteps: 1 });
  });

  test("a resumed run counts the retries already used", async () => {
    const first = run([answer("no"), answer("still no"), answer('{"total":1}')]);
    const { events } = await first.result;
    const log = store(events.slice(0, 3)); // usage, thought, output_invalid; the next step was lost
    const state = resumeFromLog(INPUT, log);
    expect(state.outputRetriesUsed).toBe(1);
    expect(state.nextStep).toBe(2);
    expect(state.messages).toStrictEqual(first.model.requests[1]!.messages as ChatMessage[]);

    const oneLeft = run([answer("still no"), answer('{"total":1}')], { ...resumeOptions(state), outputRetries: 2 });
    const resumed = await oneLeft.result;
    expect(resumed.events.find((event) => event.event_type === "output_invalid")).toMatchObject({ step: 2, data: { attempt: 2 } });

    const noneLeft = run([answer("still no")], { ...resumeOptions(state), outputRetries: 1 });
    const stopped = await noneLeft.result;
    expect(types(stopped.events)).toEqual(["usage", "thought"]);
    expect(stopped.stop).toMatchObject({ reason: "invalid_output", totalSteps: 2 });
  });
});

describe("an empty or cut final answer is sent back, not taken", () => {
  /** A step that answers `text` and stops for `finishReason`. */
  const ends = (text: string, finishReason: "stop" | "length"): ScriptStep => () => [
    ...(text ? [{ type: "text-delta" as const, text }] : []),
    { type: "finish", finishReason, usage: { inputTokens: 10, outputTokens: 5 } },
  ];
  const run = (script: ScriptStep[], extra: Partial<ReActOptions> = {}) => {
    const model = createScriptedModel(script);
    return { model, result: drain(runReAct({ ...baseOptions(new Map()), model, ...extra })) };
  };

  test("empty (no text, or only whitespace): output_invalid {kind: empty}, the model is asked again, no empty thought", async () => {
    const { model, result } = run([ends("", "stop"), ends(" \n", "stop"), answer("Paid.")]);
    const { events, stop } = await result;
    expect(stop).toBeUndefined();
    expect(types(events)).toEqual(["usage", "output_invalid", "usage", "thought", "output_invalid", "usage", "final_answer"]);
    expect(events[1]!.data).toEqual({ message: EMPTY_ANSWER, attempt: 1, kind: "empty" });
    expect(events[4]!.data).toEqual({ message: EMPTY_ANSWER, attempt: 2, kind: "empty" });
    expect(events.at(-1)!.data).toEqual({ output: "Paid.", total_steps: 3, total_tokens: 45 });
    const nudge: ChatMessage = { role: "user", content: outputFeedback(EMPTY_ANSWER, "empty") };
    expect(nudge.content).toBe("Your reply was empty. Reply again with your answer.");
    expect(model.requests[2]!.messages).toEqual([
      { role: "user", content: INPUT },
      { role: "assistant", content: "" },
      nudge,
      { role: "assistant", content: " \n" },
      nudge,
    ]);
    for (const event of events) TaskEvent.parse(event);
  });

  test("cut at the output token limit: output_invalid {kind: truncated}; beyond output_retries the run stops with invalid_output", async () => {
    const { model, result } = run([ends("The invoice of 5 euros was pa", "length"), ends("Paid 5 e", "length")], { outputRetries: 1 });
    const { events, stop } = await result;
    expect(types(events)).toEqual(["usage", "thought", "output_invalid", "usage", "thought"]);
    expect(events[2]!.data).toEqual({ message: TRUNCATED_ANSWER, attempt: 1, kind: "truncated" });
    expect(events[4]!.data).toEqual({ text: "Paid 5 e" });
    expect(stop).toEqual({ reason: "invalid_output", message: `The final answer was not accepted: ${TRUNCATED_ANSWER}`, totalSteps: 2, totalTokens: 30 });
    expect(model.requests[1]!.messages.at(-1)).toEqual({ role: "user", content: outputFeedback(TRUNCATED_ANSWER, "truncated") });

    // A whole answer after a cut one is the final answer; a cut one with tool calls is not an answer at all.
    const second = run([ends("The invoice of 5 euros was pa", "length"), answer("Paid.")]);
    expect((await second.result).events.at(-1)).toMatchObject({ event_type: "final_answer", data: { output: "Paid." } });
  });

  test("with an output schema, an empty answer is reported as empty (not as invalid JSON)", async () => {
    const { result } = run([ends("", "stop"), answer('{"total":3}')], { outputCheck: compileOutputSchema(OUTPUT_SCHEMA) });
    const { events } = await result;
    expect(events.find((event) => event.event_type === "output_invalid")!.data).toEqual({ message: EMPTY_ANSWER, attempt: 1, kind: "empty" });
    expect(events.at(-1)!.data).toMatchObject({ output: '{"total":3}' });
  });

  test("resuming rebuilds the same conversation from the log (the kind picks the feedback)", async () => {
    for (const [first, kind] of [[ends("", "stop"), "empty"], [ends("Cut sh", "length"), "truncated"]] as const) {
      const original = run([first, answer("Paid.")]);
      const { events } = await original.result;
      const cutAt = events.findIndex((event) => event.event_type === "output_invalid") + 1;
      const state = resumeFromLog(INPUT, store(events.slice(0, cutAt)));
      expect(state.outputRetriesUsed, kind).toBe(1);
      expect(state.nextStep, kind).toBe(2);
      expect(state.messages, kind).toStrictEqual(original.model.requests[1]!.messages as ChatMessage[]);
    }
  });
});

describe("tool_choice", () => {
  const settings = { temperature: 0.2, topP: 0.9 };
  async function choices(toolChoice: NonNullable<ModelRequest["toolChoice"]>, extra: Partial<ReActOptions> = {}, script?: ScriptStep[]) {
    const world = peopleTools();
    const model = createScriptedModel(script ?? [callTools([LOOKUP]), callTools([{ ...LOOKUP, id: "l2" }]), answer("done")]);
    const { stop } = await drain(runReAct({ ...baseOptions(world.tools), model, modelSettings: { ...settings, toolChoice }, ...extra }));
    expect(stop).toBeUndefined();
    for (const request of model.requests) expect(request).toMatchObject(settings); // the other settings stay
    return model.requests.map((request) => request.toolChoice);
  }

  test("a forced choice (required, or one tool) is sent on the first step only; auto and none on every step", async () => {
    expect(await choices("required")).toEqual(["required", undefined, undefined]);
    expect(await choices({ type: "tool", toolName: "lookup" })).toEqual([{ type: "tool", toolName: "lookup" }, undefined, undefined]);
    expect(await choices("auto")).toEqual(["auto", "auto", "auto"]);
    expect(await choices("none", {}, [answer("done")])).toEqual(["none"]);
  });

  test("it stays forced until a step calls tools (a step that only talked keeps it)", async () => {
    const inbox = createInbox();
    const script: ScriptStep[] = [
      (request) => (inbox.arrive({ id: "i1", text: "use the tool", by: "bob" }), answer("I'd rather not.")(request)),
      callTools([LOOKUP]),
      answer("done"),
    ];
    expect(await choices("required", { takeInputs: inbox.take }, script)).toEqual(["required", "required", undefined]);
  });

  test("a resumed run past its first step does not force it", async () => {
    expect(await choices("required", { firstStep: 2 }, [callTools([LOOKUP]), answer("done")])).toEqual([undefined, undefined]);
    expect(await choices("auto", { firstStep: 2 }, [answer("done")])).toEqual(["auto"]);
  });
});
