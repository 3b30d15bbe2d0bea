/** A model that plays a script, one entry per step, and records every request it gets. */
import type { ChatModel, ModelRequest, ModelStreamPart, ToolCallRequest } from "../../src/llm/model.ts";

export type ScriptStep = (request: ModelRequest) => ModelStreamPart[] | AsyncIterable<ModelStreamPart>;

export interface ScriptedModel extends ChatModel {
  readonly requests: ModelRequest[];
}

/** A step that answers with `text` and no tool call. */
export function answer(text: string, usage = { inputTokens: 10, outputTokens: 5 }): ScriptStep {
  return () => [
    { type: "text-delta", text },
    { type: "finish", finishReason: "stop", usage },
  ];
}

/** A step that says `text` and calls tools. */
export function callTools(calls: ToolCallRequest[], text = "", usage = { inputTokens: 10, outputTokens: 5 }): ScriptStep {
  return () => [
    ...(text ? [{ type: "text-delta" as const, text }] : []),
    ...calls.map((call) => ({ type: "tool-call" as const, call })),
    { type: "finish", finishReason: "tool-calls", usage },
  ];
}

export function createScriptedModel(steps: ScriptStep[], options: { repeatLast?: boolean } = {}): ScriptedModel {
  const requests: ModelRequest[] = [];
  return {
    id: "scripted/test",
    requests,
    async *stream(request) {
      requests.push({ ...request, messages: [...request.messages] });
      const index = requests.length - 1;
      const step = steps[index] ?? (options.repeatLast ? steps.at(-1) : undefined);
      if (!step) throw new Error(`scripted model: no step ${index + 1}`);
      request.abortSignal.throwIfAborted();
      yield* step(request);
    },
  };
}
