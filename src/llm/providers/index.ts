export { createAiSdkChatModel, DEFAULT_REQUEST_TIMEOUT_MS, type AiSdkChatModelOptions, type Sleep } from "./ai-sdk-chat-model.ts";
export { computeCostUsd, findModelPrice, type TokenUsage } from "./cost.ts";
export * from "./provider-config.ts";
export { ProviderError, type ProviderErrorCode } from "./provider-error.ts";
export {
  ANTHROPIC_DEFAULT_BASE_URL,
  createProviderFactories,
  OLLAMA_DEFAULT_HOST,
  OPENAI_DEFAULT_BASE_URL,
  type ProviderFactoriesOptions,
} from "./provider-factories.ts";
export { DEFAULT_RETRY, retryAfterMs, retryDelayMs, type RetryOptions } from "./retry-policy.ts";
export type { SdkLanguageModel } from "./sdk-types.ts";
