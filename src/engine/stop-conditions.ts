/**
 * When the loop stops without a final answer. Each condition is a predicate over the run so far;
 * the engine checks them all after every step (the Vercel AI SDK's stop-condition idea).
 */
import type { StopReason } from "../protocol/task.ts";

export interface RunState {
  steps: number;
  totalTokens: number;
}

export interface StopCondition {
  reason: Extract<StopReason, "max_steps" | "token_budget">;
  describe: string;
  isMet(state: RunState): boolean;
}

export function tokenBudgetExceeded(budget: number): StopCondition {
  return {
    reason: "token_budget",
    describe: `used more than its budget of ${budget} tokens`,
    isMet: (state) => state.totalTokens > budget,
  };
}

export function stepCountIs(maxSteps: number): StopCondition {
  return {
    reason: "max_steps",
    describe: `reached the limit of ${maxSteps} steps without a final answer`,
    isMet: (state) => state.steps >= maxSteps,
  };
}
