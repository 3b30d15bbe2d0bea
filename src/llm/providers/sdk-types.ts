/**
 * The AI SDK provider-contract types this folder speaks, derived from the public `ai` package.
 * `ai` re-exports the `LanguageModel` union but not `LanguageModelV4` and its parts, and
 * `@ai-sdk/provider` is only a transitive dependency — deriving them here keeps every import on a
 * declared package and breaks loudly at type-check time if the contract version moves.
 */
import type { LanguageModel } from "ai";

/** An AI SDK language model implementing the v4 provider contract (what the installed providers return). */
export type SdkLanguageModel = Extract<LanguageModel, { specificationVersion: "v4" }>;

export type SdkCallOptions = Parameters<SdkLanguageModel["doStream"]>[0];
export type SdkPrompt = SdkCallOptions["prompt"];
export type SdkMessage = SdkPrompt[number];
export type SdkFunctionTool = Extract<NonNullable<SdkCallOptions["tools"]>[number], { type: "function" }>;

type SdkStreamResult = Awaited<ReturnType<SdkLanguageModel["doStream"]>>;
export type SdkStreamPart = SdkStreamResult["stream"] extends ReadableStream<infer Part> ? Part : never;
