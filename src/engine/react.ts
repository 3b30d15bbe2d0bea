/**
 * The ReAct engine: an async generator that drives one task's conversation. Each turn it asks the
 * model for one step, yields what the model said and the tool calls it made, runs the tools
 * (concurrently, bounded), yields their results in call order and feeds them back — until the model
 * answers without calling a tool, a stop condition is met, or the signal aborts.
 *
 * Durable events (usage, thought, tool_call, tool_result / tool_error, final_answer) are numbered,
 * stored and published by the runner; `delta` events (text as it streams) are live-only. Abort is
 * not an event: the generator rejects with the signal's reason and the runner decides the final state.
 *
 * Resuming (see resume.ts): given `firstStep`, `usedTokens` and `pendingCalls` rebuilt from a task's
 * stored events, the engine first settles the calls that were announced but have no stored result
 * (idempotent tools run again; the others become `interrupted` tool errors), then goes on with step
 * `firstStep`; `maxSteps` and `tokenBudget` count the earlier steps too.
 *
 * People take part (see src/tasks/interaction.ts):
 * - a call to a tool that needs approval (`needsApproval`), or to a question tool (`ask_user`), is
 *   not run: the engine yields `approval_requested` / `question`, runs the step's other calls, and
 *   returns `{reason: "waiting"}`. The runner parks the task (`waiting`); once decided, the next run
 *   resumes from the log with the decision in `pendingCalls`.
 * - `takeInputs` is asked before every model step (and before a final answer is accepted): each
 *   message a person sent meanwhile is yielded as a durable `user_input` and joins the conversation.
 * - with an `outputSchema`, the final answer must be JSON matching it; a bad one is sent back to
 *   the model (`output_invalid`) up to `outputRetries` times.
 */
import type { DeltaEvent, FinalAnswerEvent, StepEvent } from "../protocol/events.ts";
import { nestsTooDeep } from "../protocol/limits.ts";
import type { StopReason } from "../protocol/task.ts";
import { isReadyStream, TooManyToolCallsError, type ChatMessage, type ChatModel, type ModelRequest, type ModelStreamPart, type ToolCallRequest } from "../llm/model.ts";
import { backgroundSlice } from "../lib/turn.ts";
import { toolSpec, type Tool } from "../tools/tool.ts";
import { stepCountIs, tokenBudgetExceeded, type StopCondition } from "./stop-conditions.ts";
import {
  decidedOutcome,
  interruptedOutcome,
  isIdempotentTool,
  observationText,
  parseToolArguments,
  startToolCall,
  type CallDecision,
  type ToolCallTiming,
  type ToolOutcome,
} from "./tool-execution.ts";

/** Checks a final answer against the agent's `output_schema` (src/engine/structured-output.ts). */
export interface FinalAnswerCheck {
  check(text: string): { ok: true; value: unknown; json: string } | { ok: false; message: string };
}

/**
 * Why a final answer was sent back: it did not match the output schema (`schema`, the default of
 * logs written before the others existed), it was empty, or the provider cut it at the output token
 * limit (`truncated`).
 */
export type OutputProblem = "schema" | "empty" | "truncated";

/** What the model is told when its final answer was sent back (resume.ts rebuilds it from the log). */
export function outputFeedback(message: string, kind: OutputProblem = "schema"): string {
  switch (kind) {
    case "empty":
      return "Your reply was empty. Reply again with your answer.";
    case "truncated":
      return "Your answer was cut off at the output token limit. Reply again with a complete answer that fits: shorter, or in fewer words.";
    case "schema":
      return `Your final answer does not match the required output schema: ${message}\nReply again with only the JSON value, matching the schema, no prose around it.`;
  }
}

/** The messages of `output_invalid` (and of the `invalid_output` failure) for an empty or a cut answer. */
export const EMPTY_ANSWER = "the model's answer was empty";
export const TRUNCATED_ANSWER = "the model's answer was cut off at the output token limit (max_output_tokens)";

/** The agent's `max_tool_calls_per_step` when it sets none, and the most it may set (see `TooManyToolCallsError`). */
export const DEFAULT_MAX_TOOL_CALLS_PER_STEP = 128;
export const MAX_TOOL_CALLS_PER_STEP_LIMIT = 10_000;

/** A person's message for the conversation (steering), as `takeInputs` hands it over. */
export interface HumanInput {
  id: string;
  text: string;
  by: string;
}

export interface ReActOptions {
  model: ChatModel;
  tools: ReadonlyMap<string, Tool>;
  system?: string;
  /** The conversation so far; the engine appends to a copy. */
  messages: readonly ChatMessage[];
  maxSteps: number;
  /** Stop (reason `token_budget`) once the run has used more tokens than this. */
  tokenBudget?: number;
  /** Extra stop conditions, checked with the built-in ones after every model call that asks for tools. */
  stopWhen?: readonly StopCondition[];
  toolTimeoutMs: number;
  /** A tool result longer than this (as text) is cut to it; default DEFAULT_TOOL_RESULT_MAX_CHARS. */
  toolResultMaxChars?: number;
  /** The task's id, passed on to every tool call (`ToolContext.taskId`). */
  taskId?: string;
  /** The most tool calls one model step may make (more: `TooManyToolCallsError`, from the model or here). Default DEFAULT_MAX_TOOL_CALLS_PER_STEP. */
  maxToolCallsPerStep?: number;
  /** How many tool calls of one step run at once. */
  maxToolConcurrency?: number;
  maxOutputTokens?: number;
  abortSignal: AbortSignal;
  // ---- resume point (all optional; absent = a fresh task) ----
  /** The number of the first model step this run makes; the steps before it are in `messages`. Default 1. */
  firstStep?: number;
  /** Tokens the task used before this run (they count toward `tokenBudget` and the totals). Default 0. */
  usedTokens?: number;
  /**
   * Calls announced before this run (their `tool_call` stored, and their assistant message in
   * `messages`) that have no result yet. Settled, in order, before the next model step: an
   * idempotent tool runs again, any other call gets a `tool_error` with code `interrupted`.
   */
  pendingCalls?: readonly PendingToolCall[];
  /** More tool names to treat as idempotent (the agent's `idempotent_tools`). */
  idempotentTools?: readonly string[];
  // ---- people in the loop (all optional) ----
  /** Whether a call of this tool waits for a person's approval before it runs. */
  needsApproval?: (toolName: string) => boolean;
  /** Tools whose call is a question to the user (`ask_user`): the answer becomes the result. */
  questionTools?: ReadonlySet<string>;
  /** When a wait that starts now ends on its own (ISO time), or null: shown in the wait events. */
  waitExpiresAt?: () => string | null;
  /**
   * Messages people sent since the last call, to join the conversation now (steering). May answer
   * synchronously (nothing pending: no await, no promise per step).
   */
  takeInputs?: () => readonly HumanInput[] | Promise<readonly HumanInput[]>;
  // ---- model settings and the final answer ----
  /** Passed to every model call as they are (temperature, top_p, tool choice…). */
  modelSettings?: Pick<ModelRequest, "temperature" | "topP" | "toolChoice" | "reasoningEffort" | "providerOptions">;
  /** The final answer must pass this check (the agent's `output_schema`). */
  outputCheck?: FinalAnswerCheck;
  /** How many bad final answers are sent back to the model before the run fails. Default 2. */
  outputRetries?: number;
  /** Bad final answers already sent back before this run (resume). */
  outputRetriesUsed?: number;
  // ---- telemetry (optional; absent costs nothing) ----
  /** Told of every model call once it ended: its latency, usage, and what it threw if it failed. */
  onModelCall?: (call: ModelCallTiming) => void;
  /** Told of every tool call once it settled (see `executeToolCall`). */
  onToolCall?: (call: ToolCallTiming) => void;
}

/** What `onModelCall` is told. */
export interface ModelCallTiming {
  /** `provider/model`. */
  model: string;
  /** Epoch ms when the call began. */
  startedAt: number;
  durationMs: number;
  inputTokens: number;
  outputTokens: number;
  /** What the call threw (the task's abort included), when it failed. */
  error?: unknown;
}

/** A tool call announced in `step` whose result was never stored. */
export interface PendingToolCall {
  step: number;
  call: ToolCallRequest;
  /** It waits for a person: an approval (`approval_requested`) or an answer (`question`). */
  awaiting?: "approval" | "question";
  /** What the person (or the timeout) decided, when they have. */
  decision?: CallDecision;
  /** A run began after the decision: the call may have started (treated like any interrupted call). */
  started?: boolean;
}

/** How the run ended when it ended without a final answer. */
export type ReActStop =
  | {
      reason: Extract<StopReason, "max_steps" | "token_budget">;
      message: string;
      totalSteps: number;
      totalTokens: number;
    }
  /** Calls wait for people: the task waits (nothing more runs until they decide). */
  | { reason: "waiting"; totalSteps: number; totalTokens: number }
  /** The final answer was sent back `outputRetries` times and was still not acceptable (`message` says why, as a sentence). */
  | { reason: "invalid_output"; message: string; totalSteps: number; totalTokens: number };

export type ReActEvent = StepEvent | FinalAnswerEvent | DeltaEvent;

/**
 * The engine's state across one run's steps. `runReAct` is a small loop over helpers that take it:
 * JavaScriptCore optimises small functions sooner and compiles them faster (as one async generator
 * of ~15,500 bytecodes, the engine was compiled with DFG three times and FTL once, ~140 ms of JIT
 * time, between a server's ~100th and ~400th task).
 */
interface Run {
  readonly options: ReActOptions;
  readonly specs: ReturnType<typeof toolSpec>[];
  readonly stopConditions: StopCondition[];
  readonly messages: ChatMessage[];
  readonly state: { steps: number; totalTokens: number };
  /** Runs a call: its outcome at once when it settled at once, a promise otherwise (see `startToolCall`). */
  readonly execute: (call: ToolCallRequest) => ToolOutcome | Promise<ToolOutcome>;
  outputRetriesUsed: number;
  modelSettings: ReActOptions["modelSettings"];
}

/** What one model call produced. */
interface ModelTurn {
  text: string;
  reasoning: string;
  /** Deltas not yet in `text` / `reasoning` (see `takePart`). */
  textParts: string[];
  reasoningParts: string[];
  usage: { input_tokens: number; output_tokens: number };
  calls: ToolCallRequest[];
  /** The provider stopped at the output token limit (`finish` with reason `length`). */
  cut: boolean;
}

export async function* runReAct(options: ReActOptions): AsyncGenerator<ReActEvent, ReActStop | undefined> {
  const { abortSignal } = options;
  const run: Run = {
    options,
    specs: [...options.tools.values()].map(toolSpec),
    stopConditions: [
      stepCountIs(options.maxSteps),
      ...(options.tokenBudget === undefined ? [] : [tokenBudgetExceeded(options.tokenBudget)]),
      ...(options.stopWhen ?? []),
    ],
    messages: [...options.messages],
    state: { steps: (options.firstStep ?? 1) - 1, totalTokens: options.usedTokens ?? 0 },
    execute: (call) =>
      startToolCall(call, {
        tools: options.tools,
        timeoutMs: options.toolTimeoutMs,
        maxResultChars: options.toolResultMaxChars,
        abortSignal,
        taskId: options.taskId,
        onToolCall: options.onToolCall,
      }),
    outputRetriesUsed: options.outputRetriesUsed ?? 0,
    // A forced tool choice (`required`, or one tool) holds for the first model step only: once the
    // model has called tools it must be free to answer (the OpenAI Agents SDK's reset_tool_choice).
    modelSettings: options.modelSettings,
  };
  const { messages, state } = run;
  if ((options.firstStep ?? 1) > 1 && forcesTools(run.modelSettings?.toolChoice)) run.modelSettings = { ...run.modelSettings, toolChoice: undefined };

  if (options.pendingCalls && options.pendingCalls.length > 0) {
    const waiting = yield* settlePendingCalls(run, options.pendingCalls);
    if (waiting) return { reason: "waiting", totalSteps: state.steps, totalTokens: state.totalTokens };
  }

  for (;;) {
    abortSignal.throwIfAborted();
    // Only when resuming past the limit (e.g. max_steps lowered since): a fresh run never gets here
    // with steps left over, as the check after each model call stops it first.
    if (state.steps > 0 && state.steps >= options.maxSteps) {
      const limit = stepCountIs(options.maxSteps);
      return { reason: limit.reason, message: limit.describe, totalSteps: state.steps, totalTokens: state.totalTokens };
    }
    const step = ++state.steps;
    // What people said since the last step joins the conversation before the model reads it.
    const taken = inputsOf(options);
    for (const input of taken instanceof Promise ? await taken : taken) {
      abortSignal.throwIfAborted();
      yield { event_type: "user_input", step, data: { id: input.id, text: input.text, by: input.by } };
      messages.push({ role: "user", content: input.text });
    }
    abortSignal.throwIfAborted();

    // Model phase: one streamed model call (its text deltas are yielded as they come).
    const { text, reasoning, usage, calls, cut } = yield* modelTurn(run, step);
    state.totalTokens += usage.input_tokens + usage.output_tokens;
    yield { event_type: "usage", step, data: usage };

    if (calls.length === 0) {
      // No tool call: a final answer, or (people spoke meanwhile, or the output did not match its
      // schema) a turn of the conversation, after which the model answers again.
      const end = yield* answerTurn(run, step, text, reasoning, cut);
      if (end !== CONTINUE) return end;
      continue;
    }

    // Tool phase: announce every call, run them, report results in call order.
    if (text.trim() !== "" || reasoning !== "") {
      yield { event_type: "thought", step, data: reasoning ? { text, reasoning } : { text } };
    }
    // Stop before running tools whose results no model call would ever read.
    const met = run.stopConditions.find((condition) => condition.isMet(state));
    if (met) {
      return { reason: met.reason, message: met.describe, totalSteps: state.steps, totalTokens: state.totalTokens };
    }
    messages.push({ role: "assistant", content: text, toolCalls: calls });
    if (forcesTools(run.modelSettings?.toolChoice)) run.modelSettings = { ...run.modelSettings, toolChoice: undefined };
    for (const call of calls) {
      yield { event_type: "tool_call", step, data: { id: call.id, name: call.name, arguments: argumentsForDisplay(call) } };
    }
    // Calls that wait for a person are announced now (so they hear of it at once), and not run.
    const held = options.needsApproval || options.questionTools ? heldCalls(calls, step, options) : NONE_HELD;
    for (const event of held.events) yield event;
    const runNow = held.calls.size === 0 ? calls : calls.filter((call) => !held.calls.has(call));
    const outcomes = runBounded(runNow, options.maxToolConcurrency ?? 4, run.execute);
    // Rejections (task aborted) are awaited below; observe them now so one that settles while we are
    // suspended at a yield is not reported as unhandled.
    for (const pending of outcomes) if (pending instanceof Promise) pending.catch(() => {});
    for (const pending of outcomes) {
      // A call that settled at once is taken as it is: no promise hop per call.
      const outcome = pending instanceof Promise ? await pending : pending;
      yield toolEvent(step, outcome);
      messages.push(toolMessage(outcome));
    }
    if (held.calls.size > 0) return { reason: "waiting", totalSteps: state.steps, totalTokens: state.totalTokens };
  }
}

const forcesTools = (choice: unknown) => choice === "required" || (typeof choice === "object" && choice !== null);

/**
 * Resuming: calls still waiting for a person stay open; the others are settled now (what `resumed`
 * announced). Returns whether the run must wait again (a call is still open).
 */
async function* settlePendingCalls(run: Run, pendingCalls: readonly PendingToolCall[]): AsyncGenerator<ReActEvent, boolean> {
  const { options } = run;
  options.abortSignal.throwIfAborted();
  const waiting = pendingCalls.some((pending) => pending.awaiting && !pending.decision);
  const settled = waiting ? pendingCalls.filter((pending) => !pending.awaiting) : pendingCalls;
  const outcomes = runBounded(settled, options.maxToolConcurrency ?? 4, ({ call, decision, started }) => {
    // Decided and never started: what the person decided (an approved call runs now).
    if (decision && !started) return decision.kind === "approved" ? run.execute(call) : decidedOutcome(call, decision);
    return isIdempotentTool(call.name, options.tools, options.idempotentTools) ? run.execute(call) : interruptedOutcome(call);
  });
  for (const pending of outcomes) if (pending instanceof Promise) pending.catch(() => {});
  for (const [index, pending] of outcomes.entries()) {
    const outcome = pending instanceof Promise ? await pending : pending;
    yield toolEvent(settled[index]!.step, outcome);
    run.messages.push(toolMessage(outcome));
  }
  return waiting;
}

/** One streamed model call: yields its text and reasoning deltas, returns what it said and asked for. */
async function* modelTurn(run: Run, step: number): AsyncGenerator<ReActEvent, ModelTurn> {
  const { options } = run;
  const { model, abortSignal } = options;
  const turn: ModelTurn = { text: "", reasoning: "", textParts: [], reasoningParts: [], usage: { input_tokens: 0, output_tokens: 0 }, calls: [], cut: false };
  const observeModel = options.onModelCall;
  const modelStarted = observeModel ? performance.now() : 0;
  let modelFailure: unknown = STOPPED;
  const maxCalls = options.maxToolCallsPerStep ?? DEFAULT_MAX_TOOL_CALLS_PER_STEP;
  try {
    const stream = model.stream({
      system: options.system,
      messages: run.messages,
      tools: run.specs,
      maxOutputTokens: options.maxOutputTokens,
      maxToolCalls: maxCalls,
      ...run.modelSettings,
      abortSignal,
    });
    if (isReadyStream(stream)) {
      // All there already (an instant local model): read without a promise per part.
      for (const part of stream) {
        const delta = takePart(turn, part, step);
        if (delta) yield delta;
        else if (turn.calls.length > maxCalls) throw new TooManyToolCallsError(maxCalls);
      }
    } else {
      for await (const part of stream) {
        const delta = takePart(turn, part, step);
        if (delta) yield delta;
        // Leaving the loop ends the stream: the provider's request is aborted, the rest never read.
        else if (turn.calls.length > maxCalls) throw new TooManyToolCallsError(maxCalls);
      }
    }
    abortSignal.throwIfAborted();
    foldParts(turn);
    modelFailure = undefined;
  } catch (error) {
    modelFailure = error ?? modelFailure;
    throw error;
  } finally {
    // Also when the run stops the engine (`return()`) while it waits at a delta: then the call was aborted.
    observeModel?.(modelTiming(model.id, modelStarted, turn.usage, modelFailure === STOPPED ? (abortSignal.reason ?? STOPPED) : modelFailure));
  }
  return turn;
}

/**
 * Deltas are joined this many at a time before they join the turn's text: `text += delta` per delta
 * made a rope of one node per delta — 5 M one-character deltas were ~170 MB of nodes, flattened in
 * one go (~40 ms) when the answer was first read.
 */
const FOLD_PARTS = 256;

function foldParts(turn: ModelTurn) {
  if (turn.textParts.length > 0) {
    turn.text += turn.textParts.join("");
    turn.textParts.length = 0;
  }
  if (turn.reasoningParts.length > 0) {
    turn.reasoning += turn.reasoningParts.join("");
    turn.reasoningParts.length = 0;
  }
}

/** Adds a part of the model's stream to the turn; returns the delta event to yield, if any. */
function takePart(turn: ModelTurn, part: ModelStreamPart, step: number): DeltaEvent | undefined {
  switch (part.type) {
    case "text-delta":
      if (turn.textParts.push(part.text) >= FOLD_PARTS) foldParts(turn);
      return part.text ? { event_type: "delta", step, data: { kind: "text", text: part.text } } : undefined;
    case "reasoning-delta":
      if (turn.reasoningParts.push(part.text) >= FOLD_PARTS) foldParts(turn);
      return part.text ? { event_type: "delta", step, data: { kind: "reasoning", text: part.text } } : undefined;
    case "tool-call":
      turn.calls.push(part.call);
      return undefined;
    case "finish":
      turn.usage = { input_tokens: part.usage.inputTokens, output_tokens: part.usage.outputTokens };
      turn.cut = part.finishReason === "length";
      return undefined;
  }
}

/** `answerTurn` goes on with another model step. */
const CONTINUE = Symbol("continue");

/**
 * A model step without tool calls: the final answer (yielded; `undefined`), a stop (`ReActStop`),
 * or a turn of the conversation after which the model answers again (`CONTINUE`): a person said
 * something while the model was answering, or the answer did not match the output schema.
 */
async function* answerTurn(run: Run, step: number, text: string, reasoning: string, cut: boolean): AsyncGenerator<ReActEvent, ReActStop | undefined | typeof CONTINUE> {
  const { options, messages, state } = run;
  const lateTaken = inputsOf(options);
  const late = lateTaken instanceof Promise ? await lateTaken : lateTaken;
  const checked = late.length === 0 ? checkAnswer(text, cut, options.outputCheck) : undefined;
  if (late.length === 0 && (checked === undefined || checked.ok)) {
    // The answer's text is in final_answer; its reasoning, if any, gets a durable thought of its own.
    if (reasoning !== "") yield { event_type: "thought", step, data: { text: "", reasoning } };
    const data: FinalAnswerEvent["data"] = { output: text, total_steps: step, total_tokens: state.totalTokens };
    if (checked?.ok) Object.assign(data, { output: checked.json, output_json: checked.value });
    yield { event_type: "final_answer", step, data };
    return undefined;
  }
  if (checked && !checked.ok && run.outputRetriesUsed >= (options.outputRetries ?? 2)) {
    if (reasoning !== "" || text.trim() !== "") yield { event_type: "thought", step, data: reasoning ? { text, reasoning } : { text } };
    // A schema check's message already says what was wrong with the answer ("The final answer does not match …").
    const message = checked.kind === "schema" ? checked.message : `The final answer was not accepted: ${checked.message}`;
    return { reason: "invalid_output", message, totalSteps: state.steps, totalTokens: state.totalTokens };
  }
  // The text stays in the conversation as what the model said (resume.ts: a thought that a
  // user_input or an output_invalid follows is a whole turn; an empty one is no message to a provider).
  if (text !== "" || reasoning !== "") yield { event_type: "thought", step, data: reasoning ? { text, reasoning } : { text } };
  messages.push({ role: "assistant", content: text });
  if (checked && !checked.ok) {
    run.outputRetriesUsed++;
    const data = { message: checked.message, attempt: run.outputRetriesUsed };
    yield { event_type: "output_invalid", step, data: checked.kind === "schema" ? data : { ...data, kind: checked.kind } };
    messages.push({ role: "user", content: outputFeedback(checked.message, checked.kind) });
  }
  for (const input of late) {
    yield { event_type: "user_input", step, data: { id: input.id, text: input.text, by: input.by } };
    messages.push({ role: "user", content: input.text });
  }
  const met = run.stopConditions.find((condition) => condition.isMet(state));
  if (met) return { reason: met.reason, message: met.describe, totalSteps: state.steps, totalTokens: state.totalTokens };
  return CONTINUE;
}

type AnswerCheck = { ok: true; value: unknown; json: string } | { ok: false; kind: OutputProblem; message: string };

/**
 * Whether a final answer can end the task: not empty, not cut at the output token limit (a provider
 * that stops there ends the text mid-sentence — or mid-JSON), and matching the output schema if the
 * agent has one. `undefined`: no schema, and the answer is whole.
 */
function checkAnswer(text: string, cut: boolean, outputCheck: FinalAnswerCheck | undefined): AnswerCheck | undefined {
  if (text.trim() === "") return { ok: false, kind: "empty", message: EMPTY_ANSWER };
  if (cut) return { ok: false, kind: "truncated", message: TRUNCATED_ANSWER };
  if (!outputCheck) return undefined;
  const checked = outputCheck.check(text);
  return checked.ok ? checked : { ok: false, kind: "schema", message: checked.message };
}

/** A step's calls that wait for a person (approval or question), and the events announcing them. */
interface HeldCalls {
  calls: ReadonlySet<ToolCallRequest>;
  events: StepEvent[];
}
const NONE_HELD: HeldCalls = { calls: new Set(), events: [] };

function heldCalls(calls: readonly ToolCallRequest[], step: number, options: ReActOptions): HeldCalls {
  const held = new Set<ToolCallRequest>();
  const events: StepEvent[] = [];
  for (const call of calls) {
    const kind = holdKind(call, options);
    if (!kind) continue;
    held.add(call);
    const expiresAt = options.waitExpiresAt?.() ?? null;
    if (kind === "approval") {
      events.push({ event_type: "approval_requested", step, data: { id: call.id, name: call.name, arguments: argumentsForDisplay(call), expires_at: expiresAt } });
    } else {
      const question = String((parseToolArguments(call.arguments) as { question?: unknown }).question ?? "");
      events.push({ event_type: "question", step, data: { id: call.id, name: call.name, question, expires_at: expiresAt } });
    }
  }
  return held.size === 0 ? NONE_HELD : { calls: held, events };
}

const NO_INPUTS: readonly HumanInput[] = [];

/** A model call that ended neither with its stream's end nor with an error: the run stopped the engine. */
const STOPPED = new Error("the run stopped the engine during the model call");

function modelTiming(model: string, started: number, usage: { input_tokens: number; output_tokens: number }, error?: unknown): ModelCallTiming {
  const timing: ModelCallTiming = {
    model,
    startedAt: performance.timeOrigin + started,
    durationMs: performance.now() - started,
    inputTokens: usage.input_tokens,
    outputTokens: usage.output_tokens,
  };
  if (error !== undefined) timing.error = error;
  return timing;
}

/** What `takeInputs` has, awaiting it only when it answers with a promise. */
function inputsOf(options: ReActOptions): readonly HumanInput[] | Promise<readonly HumanInput[]> {
  return options.takeInputs?.() ?? NO_INPUTS;
}

/**
 * Whether a call waits for a person, and for what. Only a call that would run: the tool exists and
 * its arguments are valid (a call that would fail anyway fails now, as an observation).
 */
function holdKind(call: ToolCallRequest, options: ReActOptions): "approval" | "question" | undefined {
  const isQuestion = options.questionTools?.has(call.name) === true;
  if (!isQuestion && options.needsApproval?.(call.name) !== true) return undefined;
  const tool = options.tools.get(call.name);
  if (!tool) return undefined;
  try {
    if (!tool.inputSchema.safeParse(parseToolArguments(call.arguments)).success) return undefined;
  } catch {
    return undefined;
  }
  return isQuestion ? "question" : "approval";
}

/** The observation the model reads for a settled call (resume.ts rebuilds the same from the log). */
function toolMessage(outcome: ToolOutcome): ChatMessage {
  return {
    role: "tool",
    toolCallId: outcome.call.id,
    toolName: outcome.call.name,
    content: observationText(outcome),
    isError: !outcome.ok,
  };
}

function toolEvent(step: number, outcome: ToolOutcome): StepEvent {
  const { id, name } = outcome.call;
  return outcome.ok
    ? { event_type: "tool_result", step, data: { id, name, result: outcome.result ?? null } }
    : { event_type: "tool_error", step, data: { id, name, error: outcome.error } };
}

/**
 * Shows parsed arguments when they are JSON, the raw text otherwise (empty text: `{}`).
 * `argumentsText` in resume.ts is its inverse, up to formatting.
 */
function argumentsForDisplay(call: ToolCallRequest): unknown {
  // Too deep to write back as JSON: the text as it came (`argumentsText` in resume.ts knows).
  if (nestsTooDeep(call.arguments)) return call.arguments;
  try {
    return call.arguments.trim() === "" ? {} : JSON.parse(call.arguments);
  } catch {
    return call.arguments;
  }
}

/**
 * Starts `run` for each item with at most `limit` in flight; returns their outcomes in item order. When
 * every item fits under the limit (a step's one or few calls), each starts now, and one that settled
 * at once is its outcome itself, not a promise; a call that throws becomes a rejected promise, so it
 * is reported in its turn, after the calls before it.
 */
function runBounded<T, R>(items: readonly T[], limit: number, run: (item: T) => R | Promise<R>): (R | Promise<R>)[] {
  if (items.length <= limit) {
    return items.map((item) => {
      try {
        return run(item);
      } catch (error) {
        return Promise.reject(error);
      }
    });
  }
  let active = 0;
  // Waiters in order, taken from `first` on (`shift` moves the whole array: quadratic in a step's calls).
  const waiting: ((() => void) | undefined)[] = [];
  let first = 0;
  const acquire = () =>
    active < limit ? (active++, Promise.resolve()) : new Promise<void>((resolve) => waiting.push(resolve));
  const release = () => {
    const next = waiting[first];
    if (next) {
      waiting[first++] = undefined;
      next();
    } else active--;
  };
  return items.map(async (item) => {
    await acquire();
    try {
      // Calls that settle at once run as one chain of promises, whatever the engine's reader does:
      // give the event loop a turn between slices of them (5,000 calculator calls held it ~45 ms).
      if (backgroundSlice.spent) await backgroundSlice.next();
      return await run(item);
    } finally {
      release();
    }
  });
}
