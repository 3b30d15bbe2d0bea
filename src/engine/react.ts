/**
 * The ReAct engine: an async generator that drives one task's conversation. Each turn it asks the
 * model for one step, yields what the model said and the tool calls it made, runs the tools
 * (concurrently, bounded), yields their results in call order and feeds them back — until the model
 * answers without calling a tool, a stop condition is met, or the signal aborts.
 *
 * It yields durable events only; the runner numbers, stores and publishes them. Abort is not an
 * event: the generator rejects with the signal's reason and the runner decides the final state.
 */
import type { FinalAnswerEvent, StepEvent } from "../protocol/events.ts";
import type { StopReason } from "../protocol/task.ts";
import type { ChatMessage, ChatModel, ToolCallRequest } from "../llm/model.ts";
import { toolSpec, type Tool } from "../tools/tool.ts";
import { stepCountIs, type StopCondition } from "./stop-conditions.ts";
import { executeToolCall, observationText, type ToolOutcome } from "./tool-execution.ts";

export interface ReActOptions {
  model: ChatModel;
  tools: ReadonlyMap<string, Tool>;
  system?: string;
  /** The conversation so far; the engine appends to a copy. */
  messages: readonly ChatMessage[];
  maxSteps: number;
  /** Extra stop conditions, checked with the max-steps one after every step. */
  stopWhen?: readonly StopCondition[];
  toolTimeoutMs: number;
  /** How many tool calls of one step run at once. */
  maxToolConcurrency?: number;
  maxOutputTokens?: number;
  abortSignal: AbortSignal;
}

/** How the run ended when it ended without a final answer. */
export interface ReActStop {
  reason: StopReason;
  message: string;
  totalSteps: number;
  totalTokens: number;
}

export type ReActEvent = StepEvent | FinalAnswerEvent;

export async function* runReAct(options: ReActOptions): AsyncGenerator<ReActEvent, ReActStop | undefined> {
  const { model, abortSignal } = options;
  const specs = [...options.tools.values()].map(toolSpec);
  const stopConditions = [stepCountIs(options.maxSteps), ...(options.stopWhen ?? [])];
  const messages: ChatMessage[] = [...options.messages];
  const state = { steps: 0, totalTokens: 0 };

  for (;;) {
    abortSignal.throwIfAborted();
    const step = ++state.steps;

    // Model phase: one streamed model call.
    let text = "";
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
          break;
        case "reasoning-delta":
          break;
        case "tool-call":
          calls.push(part.call);
          break;
        case "finish":
          state.totalTokens += part.usage.inputTokens + part.usage.outputTokens;
          break;
      }
    }
    abortSignal.throwIfAborted();

    if (calls.length === 0) {
      yield {
        event_type: "final_answer",
        step,
        data: { output: text, total_steps: step, total_tokens: state.totalTokens },
      };
      return undefined;
    }

    // Tool phase: announce every call, run them, report results in call order.
    if (text.trim() !== "") yield { event_type: "thought", step, data: { text } };
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
      messages.push({
        role: "tool",
        toolCallId: outcome.call.id,
        toolName: outcome.call.name,
        content: observationText(outcome),
        isError: !outcome.ok,
      });
    }

    const met = stopConditions.find((condition) => condition.isMet(state));
    if (met) {
      return { reason: met.reason, message: met.describe, totalSteps: state.steps, totalTokens: state.totalTokens };
    }
  }
}

function toolEvent(step: number, outcome: ToolOutcome): StepEvent {
  const { id, name } = outcome.call;
  return outcome.ok
    ? { event_type: "tool_result", step, data: { id, name, result: outcome.result ?? null } }
    : { event_type: "tool_error", step, data: { id, name, error: outcome.error } };
}

/** Shows parsed arguments when they are JSON, the raw text otherwise. */
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
