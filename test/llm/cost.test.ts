/** Cost in USD from prices per million tokens. */
import { describe, expect, test } from "bun:test";
import { computeCostUsd, findModelPrice } from "../../src/llm/providers/index.ts";

const prices = {
  "openai/gpt-4.1-mini": { inputPerMillion: 0.4, outputPerMillion: 1.6 },
  "anthropic/claude-sonnet-4-5": { inputPerMillion: 3, outputPerMillion: 15 },
  "ollama/*": { inputPerMillion: 0, outputPerMillion: 0 },
};

describe("computeCostUsd", () => {
  test("prices input and output tokens per million", () => {
    expect(computeCostUsd(prices, "openai/gpt-4.1-mini", { inputTokens: 1_000, outputTokens: 500 })).toBe(0.0012);
    expect(computeCostUsd(prices, "anthropic/claude-sonnet-4-5", { inputTokens: 2_000_000, outputTokens: 100_000 })).toBe(7.5);
    expect(computeCostUsd(prices, "openai/gpt-4.1-mini", { inputTokens: 0, outputTokens: 0 })).toBe(0);
  });

  test("an exact entry wins over provider/*; a provider-wide entry covers the rest", () => {
    expect(findModelPrice({ ...prices, "openai/*": { inputPerMillion: 9, outputPerMillion: 9 } }, "openai/gpt-4.1-mini")).toEqual(prices["openai/gpt-4.1-mini"]);
    expect(computeCostUsd(prices, "ollama/qwen3:8b", { inputTokens: 5_000, outputTokens: 5_000 })).toBe(0);
  });

  test("an unpriced model has no cost (undefined, not 0)", () => {
    expect(computeCostUsd(prices, "openai/gpt-5", { inputTokens: 10, outputTokens: 10 })).toBeUndefined();
    expect(computeCostUsd(undefined, "openai/gpt-4.1-mini", { inputTokens: 10, outputTokens: 10 })).toBeUndefined();
  });
});
