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
 */
import type { DeltaEvent, FinalAnswerEvent, StepEvent } from "../protocol/events.ts";
import type { StopReason } from "../protocol/task.ts";
import type { ChatMessage, ChatModel, ToolCallRequest } from "../llm/model.ts";
import { toolSpec, type Tool } from "../tools/tool.ts";
import { stepCountIs, tokenBudgetExceeded, type StopCondition } from "./stop-conditions.ts";
import { executeToolCall, interruptedOutcome, isIdempotentTool, observationText, type ToolOutcome } from "./tool-execution.ts";

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
}

/** A tool call announced in `step` whose result was never stored. */
export interface PendingToolCall {
  step: number;
  call: ToolCallRequest;
}

/** How the run ended when it ended without a final answer. */
export interface ReActStop {
  reason: Extract<StopReason, "max_steps" | "token_budget">;
  message: string;
  totalSteps: number;
  totalTokens: number;
}

export type ReActEvent = StepEvent | FinalAnswerEvent | DeltaEvent;

export async function* runReAct(options: ReActOptions): AsyncGenerator<ReActEvent, ReActStop | undefined> {
  const { model, abortSignal } = options;
  const specs = [...options.tools.values()].map(toolSpec);
  const stopConditions = [
    stepCountIs(options.maxSteps),
    ...(options.tokenBudget === undefined ? [] : [tokenBudgetExceeded(options.tokenBudget)]),
    ...(options.stopWhen ?? []),
  ];
  const messages: ChatMessage[] = [...options.messages];
  const state = { steps: (options.firstStep ?? 1) - 1, totalTokens: options.usedTokens ?? 0 };

  if (options.pendingCalls && options.pendingCalls.length > 0) {
    abortSignal.throwIfAborted();
    const pendingCalls = options.pendingCalls;
    const outcomes = runBounded(pendingCalls, options.maxToolConcurrency ?? 4, async ({ call }) =>
      isIdempotentTool(call.name, options.tools, options.idempotentTools)
        ? executeToolCall(call, { tools: options.tools, timeoutMs: options.toolTimeoutMs, abortSignal })
        : interruptedOutcome(call),
    );
    for (const pending of outcomes) pending.catch(() => {});
    for (const [index, pending] of outcomes.entries()) {
      const outcome = await pending;
      yield toolEvent(pendingCalls[index]!.step, outcome);
      messages.push(toolMessage(outcome));
    }
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

    // Model phase: one streamed model call.
    let text = "";
    let reasoning = "";
    let usage = { input_tokens: 0, output_tokens: 0 };
    const calls: ToolCallRequest[] = [];
    for await (const part of model.stream({
      system: options.system,
      messages,
      tools: specs,
      maxOutputTokens: options.maxOutputTokens,
      abortSignal,
    })) {
      switch (part.type) {
        case "text-delta":
          text += part.text;
          if (part.text) yield { event_type: "delta", step, data: { kind: "text", text: part.text } };
          break;
        case "reasoning-delta":
          reasoning += part.text;
          if (part.text) yield { event_type: "delta", step, data: { kind: "reasoning", text: part.text } };
          break;
        case "tool-call":
          calls.push(part.call);
          break;
        case "finish":
          usage = { input_tokens: part.usage.inputTokens, output_tokens: part.usage.outputTokens };
          break;
      }
    }
    abortSignal.throwIfAborted();
    state.totalTokens += usage.input_tokens + usage.output_tokens;
    yield { event_type: "usage", step, data: usage };

    if (calls.length === 0) {
      // The answer's text is in final_answer; its reasoning, if any, gets a durable thought of its own.
      if (reasoning !== "") yield { event_type: "thought", step, data: { text: "", reasoning } };
      yield {
        event_type: "final_answer",
        step,
        data: { output: text, total_steps: step, total_tokens: state.totalTokens },
      };
      return undefined;
    }

    // Tool phase: announce every call, run them, report results in call order.
    if (text.trim() !== "" || reasoning !== "") {
      yield { event_type: "thought", step, data: reasoning ? { text, reasoning } : { text } };
    }
    // Stop before running tools whose results no model call would ever read.
    const met = stopConditions.find((condition) => condition.isMet(state));
    if (met) {
      return { reason: met.reason, message: met.describe, totalSteps: state.steps, totalTokens: state.totalTokens };
    }
    messages.push({ role: "assistant", content: text, toolCalls: calls });
    for (const call of calls) {
      yield { event_type: "tool_call", step, data: { id: call.id, name: call.name, arguments: argumentsForDisplay(call) } };
    }
    const outcomes = runBounded(calls, options.maxToolConcurrency ?? 4, (call) =>
      executeToolCall(call, { tools: options.tools, timeoutMs: options.toolTimeoutMs, abortSignal }),
    );
    // Rejections (task aborted) are awaited below; observe them now so one that settles while we are
    // suspended at a yield is not reported as unhandled.
    for (const pending of outcomes) pending.catch(() => {});
    for (const pending of outcomes) {
      const outcome = await pending;
      yield toolEvent(step, outcome);
      messages.push(toolMessage(outcome));
    }
  }
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
  try {
    return call.arguments.trim() === "" ? {} : JSON.parse(call.arguments);
  } catch {
    return call.arguments;
  }
}

/** Starts `run` for each item with at most `limit` in flight; returns the promises in item order. */
function runBounded<T, R>(items: readonly T[], limit: number, run: (item: T) => Promise<R>): Promise<R>[] {
  let active = 0;
  const waiting: (() => void)[] = [];
  const acquire = () =>
    active < limit ? (active++, Promise.resolve()) : new Promise<void>((resolve) => waiting.push(resolve));
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else active--;
  };
  return items.map(async (item) => {
    await acquire();
    try {
      return await run(item);
    } finally {
      release();
    }
  });
}
