/**
 * `demo/bench`: an instant, scripted model for benchmarks (bench/). The task's input is JSON:
 *   {"steps": 1000, "pad": 0, "delay_ms": 0}
 * Each step calls `calculator` once, with arguments that carry `t` — the wall-clock time (ms, with
 * fractions) when the call was produced — so a client can measure yield-to-arrival latency, and
 * `pad` characters of padding to set the frame size. After `steps` steps it answers "done".
 * Without parsable input it answers at once.
 */
import { sleep } from "../lib/abort.ts";
import { readyStream, type ChatMessage, type ChatModel, type ModelRequest, type ModelStreamPart } from "./model.ts";

interface BenchPlan {
  steps: number;
  pad: number;
  delayMs: number;
}

function readPlan(text: string): BenchPlan {
  try {
    const value = JSON.parse(text) as { steps?: unknown; pad?: unknown; delay_ms?: unknown };
    const number = (input: unknown, max: number) => (typeof input === "number" && input >= 0 ? Math.min(Math.floor(input), max) : 0);
    return { steps: number(value.steps, 1_000_000), pad: number(value.pad, 1_000_000), delayMs: number(value.delay_ms, 600_000) };
  } catch {
    return { steps: 0, pad: 0, delayMs: 0 };
  }
}

export function createBenchModel(): ChatModel {
  // A task's input is read on every step: the last one read is kept (a plan is frozen, so sharing it is safe).
  let lastInput: string | undefined;
  let lastPlan: BenchPlan = Object.freeze(readPlan(""));
  const planOf = (messages: readonly ChatMessage[]): BenchPlan => {
    const first = messages.find((message) => message.role === "user");
    const input = first?.content ?? "";
    if (input !== lastInput) {
      lastPlan = Object.freeze(readPlan(input));
      lastInput = input;
    }
    return lastPlan;
  };
  return {
    id: "demo/bench",
    stream(request) {
      const plan = planOf(request.messages);
      // Without a delay a step's parts are ready at once: the engine reads them without a promise each.
      if (plan.delayMs === 0) {
        return readyStream(() => {
          request.abortSignal.throwIfAborted();
          return stepParts(plan, request);
        });
      }
      return delayedStep(plan, request);
    },
  };
}

async function* delayedStep(plan: BenchPlan, request: ModelRequest): AsyncGenerator<ModelStreamPart> {
  request.abortSignal.throwIfAborted();
  await sleep(plan.delayMs, request.abortSignal);
  yield* stepParts(plan, request);
}

function stepParts(plan: BenchPlan, request: ModelRequest): ModelStreamPart[] {
  // The conversation is user, then (assistant, tool) per step: counting is O(1), which matters
  // for a model meant to cost nothing on 100,000-step tasks.
  const done = Math.max(0, Math.floor((request.messages.length - 1) / 2));
  const usage = { inputTokens: 1, outputTokens: 1 };
  if (done >= plan.steps) {
    return [
      { type: "text-delta", text: "done" },
      { type: "finish", finishReason: "stop", usage },
    ];
  }
  const t = performance.timeOrigin + performance.now();
  const args = JSON.stringify({ expression: `${done}+1`, t, pad: "x".repeat(plan.pad) });
  return [
    { type: "tool-call", call: { id: `b${done}`, name: "calculator", arguments: args } },
    { type: "finish", finishReason: "tool-calls", usage },
  ];
}
