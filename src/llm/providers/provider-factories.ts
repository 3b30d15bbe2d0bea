/**
 * Model factories for the real providers, keyed by provider name, ready to merge into
 * `createModelResolver`: `openai/<model>`, `anthropic/<model>`, `ollama/<model>` and one per named
 * OpenAI-compatible endpoint. A factory checks its configuration when the agent's model is resolved
 * (at start-up), so a missing key stops the server with one clear line instead of failing a task.
 *
 * Everything is passed in: the SDK providers would otherwise read `process.env` on their own, so
 * every key and base URL is handed to them explicitly.
 */
import { createAnthropic } from "@ai-sdk/anthropic";
import { createOpenAI } from "@ai-sdk/openai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import type { ChatModel } from "../model.ts";
import type { ModelFactory } from "../registry.ts";
import { createAiSdkChatModel, type Sleep } from "./ai-sdk-chat-model.ts";
import { boundingStreamLines } from "./bounded-lines.ts";
import { relaxingForcedToolChoice } from "./anthropic-tool-choice.ts";
import { openAiModelReasons } from "./openai-reasoning.ts";
import { BUILTIN_PROVIDERS, HTTP_URL_MESSAGE, isHeaderValue, isHttpUrl, OLLAMA_HOST_MESSAGE, ollamaBaseURL, type ProviderConfig } from "./provider-config.ts";
import { ProviderError } from "./provider-error.ts";
import type { SdkLanguageModel } from "./sdk-types.ts";

export const OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1";
export const ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com/v1";
export const OLLAMA_DEFAULT_HOST = "http://127.0.0.1:11434";

export interface ProviderFactoriesOptions extends Omit<ProviderConfig, "prices"> {
  /** Usually `process.env`. Its values win over the config file's. */
  env: Record<string, string | undefined>;
  /** The `fetch` every provider uses. Default: the global one. */
  fetch?: typeof fetch;
  /** Backoff sleep, injectable so tests need not wait. */
  sleep?: Sleep;
  /** Jitter source in [0, 1). */
  random?: () => number;
}

/**
 * Builds the provider factories.
 * @example
 * const models = createModelResolver(createProviderFactories({ env: process.env, ...config.providers }));
 * models.resolve("openai/gpt-4.1-mini"); // throws "openai/gpt-4.1-mini needs OPENAI_API_KEY …" when unset
 */
export function createProviderFactories(options: ProviderFactoriesOptions): Record<string, ModelFactory> {
  const { env } = options;
  const fetchFunction = boundingStreamLines(options.fetch);
  const wrap = (id: string, model: SdkLanguageModel, reasoningUnsupported?: boolean): ChatModel =>
    createAiSdkChatModel({
      id,
      model,
      reasoningUnsupported,
      retry: options.retry,
      requestTimeoutMs: options.requestTimeoutMs,
      sleep: options.sleep,
      random: options.random,
    });

  const factories: Record<string, ModelFactory> = {
    openai(modelName) {
      const id = `openai/${modelName}`;
      const apiKey = keyFromEnv(env, "OPENAI_API_KEY", id) ?? options.openai?.apiKey;
      if (!apiKey) throw notConfigured(id, "OPENAI_API_KEY", "openai");
      const provider = createOpenAI({
        apiKey,
        baseURL: baseURLFromEnv(env, "OPENAI_BASE_URL", id) ?? options.openai?.baseURL ?? OPENAI_DEFAULT_BASE_URL,
        headers: options.openai?.headers,
        fetch: fetchFunction,
      });
      // Chat Completions, not the Responses API: it is what OPENAI_BASE_URL proxies and
      // OpenAI-compatible servers speak, and one step maps onto one request without server state.
      // A model the SDK knows does not reason gets no reasoning_effort (OpenAI answers 400); an
      // unknown id (a fine-tune, a model behind a proxy) gets it as asked.
      return wrap(id, provider.chat(modelName), openAiModelReasons(modelName) === false);
    },

    anthropic(modelName) {
      const id = `anthropic/${modelName}`;
      const apiKey = keyFromEnv(env, "ANTHROPIC_API_KEY", id) ?? options.anthropic?.apiKey;
      if (!apiKey) throw notConfigured(id, "ANTHROPIC_API_KEY", "anthropic");
      const provider = createAnthropic({
        apiKey,
        baseURL: baseURLFromEnv(env, "ANTHROPIC_BASE_URL", id) ?? options.anthropic?.baseURL ?? ANTHROPIC_DEFAULT_BASE_URL,
        headers: options.anthropic?.headers,
        fetch: relaxingForcedToolChoice(fetchFunction),
      });
      return wrap(id, provider.messages(modelName));
    },

    ollama(modelName) {
      const id = `ollama/${modelName}`;
      const fromEnv = setting(env.OLLAMA_HOST);
      const host = ollamaHost(fromEnv ?? options.ollama?.host ?? OLLAMA_DEFAULT_HOST, fromEnv !== undefined ? "OLLAMA_HOST" : "providers.ollama.host", id);
      const provider = createOpenAICompatible({ name: "ollama", baseURL: `${host}/v1`, includeUsage: true, fetch: fetchFunction });
      return wrap(id, provider.chatModel(modelName));
    },
  };

  for (const endpoint of options.endpoints ?? []) {
    const name = endpoint.name;
    if ((BUILTIN_PROVIDERS as readonly string[]).includes(name.toLowerCase())) {
      throw new Error(`provider endpoint '${name}' collides with a built-in provider`);
    }
    if (name in factories) throw new Error(`provider endpoint '${name}' collides with another provider`);
    factories[name] = (modelName) => {
      const id = `${name}/${modelName}`;
      let apiKey = endpoint.apiKey;
      if (endpoint.apiKeyEnv !== undefined) {
        apiKey = keyFromEnv(env, endpoint.apiKeyEnv, id);
        if (!apiKey) throw notConfigured(id, endpoint.apiKeyEnv);
      }
      const provider = createOpenAICompatible({
        name,
        baseURL: endpoint.baseURL.replace(/\/+$/, ""),
        apiKey,
        headers: endpoint.headers,
        includeUsage: endpoint.includeUsage ?? true,
        fetch: fetchFunction,
      });
      return wrap(id, provider.chatModel(modelName));
    };
  }
  return factories;
}

/**
 * A key from the environment, checked as the config file's keys are: it is sent as a header, and
 * one fetch cannot send (a '…' placeholder pasted from the docs, a line break) failed every request
 * of every task, as `request_failed`, while the server looked fine.
 */
function keyFromEnv(env: Record<string, string | undefined>, variable: string, modelId: string): string | undefined {
  const key = setting(env[variable]);
  if (key !== undefined && !isHeaderValue(key)) {
    throw new ProviderError({
      code: "not_configured",
      modelId,
      message: `${variable} (for ${modelId}) is not a valid HTTP header value (Latin-1 only, no line breaks: a placeholder such as '…' copied as it is?)`,
      retryable: false,
      attempts: 0,
    });
  }
  return key;
}

/**
 * A base URL from the environment, checked as the config file's are: `notaurl` or `ftp://…` was
 * taken as it was, the server started, and every task of the provider failed.
 */
function baseURLFromEnv(env: Record<string, string | undefined>, variable: string, modelId: string): string | undefined {
  const value = setting(env[variable]);
  if (value !== undefined && !isHttpUrl(value)) throw badSetting(variable, modelId, HTTP_URL_MESSAGE, value);
  return value;
}

/** `OLLAMA_HOST` (or the file's `providers.ollama.host`) as a base URL; a bad one is named, not `Invalid URL`. */
function ollamaHost(host: string, source: string, modelId: string): string {
  try {
    return ollamaBaseURL(host);
  } catch {
    throw badSetting(source, modelId, OLLAMA_HOST_MESSAGE, host);
  }
}

/**
 * A setting that cannot work, named. The value is described by its scheme only: a URL may carry
 * a password (`https://user:secret@proxy`), and this line goes to the terminal and the logs.
 */
function badSetting(name: string, modelId: string, rule: string, value: string): ProviderError {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(value.trim())?.[1];
  const got = scheme !== undefined && !/^https?$/i.test(scheme) ? ` (the value's scheme is '${scheme}:')` : "";
  return new ProviderError({
    code: "not_configured",
    modelId,
    message: `${name} (for ${modelId}) ${rule}${got}`,
    retryable: false,
    attempts: 0,
  });
}

/** An empty environment variable counts as unset. */
function setting(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}

/** The key is missing; `configSection` names where the config file could give it instead (`providers.<section>.apiKey`). */
function notConfigured(modelId: string, variable: string, configSection?: string): ProviderError {
  const alternative = configSection ? ` (or providers.${configSection}.apiKey in the config file)` : "";
  return new ProviderError({
    code: "not_configured",
    modelId,
    message: `${modelId} needs ${variable}${alternative}`,
    retryable: false,
    attempts: 0,
  });
}
