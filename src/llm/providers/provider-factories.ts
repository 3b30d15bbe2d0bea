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
import { BUILTIN_PROVIDERS, isHeaderValue, type ProviderConfig } from "./provider-config.ts";
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
  const fetchFunction = options.fetch;
  const wrap = (id: string, model: SdkLanguageModel): ChatModel =>
    createAiSdkChatModel({
      id,
      model,
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
        baseURL: setting(env.OPENAI_BASE_URL) ?? options.openai?.baseURL ?? OPENAI_DEFAULT_BASE_URL,
        headers: options.openai?.headers,
        fetch: fetchFunction,
      });
      // Chat Completions, not the Responses API: it is what OPENAI_BASE_URL proxies and
      // OpenAI-compatible servers speak, and one step maps onto one request without server state.
      return wrap(id, provider.chat(modelName));
    },

    anthropic(modelName) {
      const id = `anthropic/${modelName}`;
      const apiKey = keyFromEnv(env, "ANTHROPIC_API_KEY", id) ?? options.anthropic?.apiKey;
      if (!apiKey) throw notConfigured(id, "ANTHROPIC_API_KEY", "anthropic");
      const provider = createAnthropic({
        apiKey,
        baseURL: setting(env.ANTHROPIC_BASE_URL) ?? options.anthropic?.baseURL ?? ANTHROPIC_DEFAULT_BASE_URL,
        headers: options.anthropic?.headers,
        fetch: fetchFunction,
      });
      return wrap(id, provider.messages(modelName));
    },

    ollama(modelName) {
      const host = ollamaBaseURL(setting(env.OLLAMA_HOST) ?? options.ollama?.host ?? OLLAMA_DEFAULT_HOST);
      const provider = createOpenAICompatible({ name: "ollama", baseURL: `${host}/v1`, includeUsage: true, fetch: fetchFunction });
      return wrap(`ollama/${modelName}`, provider.chatModel(modelName));
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
 * `OLLAMA_HOST` as Ollama itself reads it: `host` or `host:port` (http, port 11434 by default), or
 * a full URL (the scheme's own default port, e.g. behind a TLS proxy). Returns the root URL
 * without a trailing slash; `/v1` is appended by the caller.
 */
export function ollamaBaseURL(host: string): string {
  const trimmed = host.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed)) {
    const url = new URL(trimmed);
    return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
  }
  const [authority = "", ...path] = trimmed.split("/");
  const withPort = /:\d+$/.test(authority) ? authority : `${authority}:11434`;
  const url = new URL(`http://${withPort}/${path.join("/")}`);
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
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
