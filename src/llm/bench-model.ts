/**
 * `demo/bench`: an instant, scripted model for benchmarks (bench/). The task's input is JSON:
 *   {"steps": 1000, "pad": 0, "delay_ms": 0}
 * Each step calls `calculator` once, with arguments that carry `t` — the wall-clock time (ms, with
 * fractions) when the call was produced — so a client can measure yield-to-arrival latency, and
 * `pad` characters of padding to set the frame size. After `steps` steps it answers "done".
 * Without parsable input it answers at once.
 */
import { sleep } from "../lib/abort.ts";
import type { ChatModel, ModelStreamPart } from "./model.ts";

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
  return {
    id: "demo/bench",
    async *stream(request): AsyncGenerator<ModelStreamPart> {
      request.abortSignal.throwIfAborted();
      const first = request.messages.find((message) => message.role === "user");
      const input = first?.content ?? "";
      if (input !== lastInput) {
        lastPlan = Object.freeze(readPlan(input));
        lastInput = input;
      }
      const plan = lastPlan;
      // The conversation is user, then (assistant, tool) per step: counting is O(1), which matters
      // for a model meant to cost nothing on 100,000-step tasks.
      const done = Math.max(0, Math.floor((request.messages.length - 1) / 2));
      if (plan.delayMs > 0) await sleep(plan.delayMs, request.abortSignal);
      const usage = { inputTokens: 1, outputTokens: 1 };
      if (done >= plan.steps) {
        yield { type: "text-delta", text: "done" };
        yield { type: "finish", finishReason: "stop", usage };
        return;
      }
      const t = performance.timeOrigin + performance.now();
      const args = JSON.stringify({ expression: `${done}+1`, t, pad: "x".repeat(plan.pad) });
      yield { type: "tool-call", call: { id: `b${done}`, name: "calculator", arguments: args } };
      yield { type: "finish", finishReason: "tool-calls", usage };
    },
  };
}
