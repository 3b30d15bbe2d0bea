/**
 * What a model call cost, in USD, from the configured prices (USD per million tokens) and the
 * usage the model reported. Unknown models have no price: the cost is `undefined`, not 0.
 */
import type { ModelPrice, ModelPrices } from "./provider-config.ts";

export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
}

/** The price of `modelId` (`provider/model`): an exact entry first, then `provider/*`. */
export function findModelPrice(prices: ModelPrices | undefined, modelId: string): ModelPrice | undefined {
  if (!prices) return undefined;
  const exact = prices[modelId];
  if (exact) return exact;
  const provider = modelId.split("/")[0];
  return provider ? prices[`${provider}/*`] : undefined;
}

/**
 * Cost in USD of `usage` on `modelId`, or `undefined` when no price is configured for it.
 * @example
 * computeCostUsd({ "openai/gpt-4.1-mini": { inputPerMillion: 0.4, outputPerMillion: 1.6 } },
 *   "openai/gpt-4.1-mini", { inputTokens: 1_000, outputTokens: 500 }); // 0.0012
 */
export function computeCostUsd(prices: ModelPrices | undefined, modelId: string, usage: TokenUsage): number | undefined {
  const price = findModelPrice(prices, modelId);
  if (!price) return undefined;
  const cost = (usage.inputTokens * price.inputPerMillion + usage.outputTokens * price.outputPerMillion) / 1_000_000;
  // Round away binary floating-point noise (0.1 + 0.2) at a precision far below a cent.
  return Math.round(cost * 1e12) / 1e12;
}
