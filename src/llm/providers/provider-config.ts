/**
 * The provider part of the config file: keys and base URLs of the hosted providers, the Ollama
 * host, named OpenAI-compatible endpoints, retry and timeout, and prices per model. Environment
 * variables override the hosted providers' settings (see provider-factories.ts).
 * Every object is strict: an unknown key (`baseUrl` for `baseURL`) is an error, never dropped — a
 * dropped `baseURL` would send the key to the provider's public host.
 */
import { z } from "zod";

/** A provider or endpoint name: the `provider` in `provider/model`. */
const ProviderName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_.-]*$/i, "must be letters, digits, '.', '_' or '-' (no '/')");

/** True when fetch can send it: a header value is Latin-1 with no CR, LF or NUL (no `…`). */
export function isHeaderValue(value: string): boolean {
  try {
    new globalThis.Headers([["x", value]]);
    return true;
  } catch {
    return false;
  }
}
/**
 * True for an absolute `http:` or `https:` URL: the only kind a provider's requests can go to.
 * (`z.url()` alone takes `ftp://…` too, which then failed every task instead of start-up.)
 */
export function isHttpUrl(value: string): boolean {
  try {
    const { protocol } = new URL(value);
    return protocol === "http:" || protocol === "https:";
  } catch {
    return false;
  }
}
export const HTTP_URL_MESSAGE = "must be an http:// or https:// URL";
const HttpUrl = z.string().refine(isHttpUrl, HTTP_URL_MESSAGE);

/**
 * `OLLAMA_HOST` as Ollama itself reads it: `host` or `host:port` (http, port 11434 by default), or
 * a full http(s) URL (the scheme's own default port, e.g. behind a TLS proxy). Returns the root URL
 * without a trailing slash; `/v1` is appended by the caller. Throws for anything else.
 */
export function ollamaBaseURL(host: string): string {
  const trimmed = host.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed)) {
    if (!isHttpUrl(trimmed)) throw new Error(OLLAMA_HOST_MESSAGE);
    const url = new URL(trimmed);
    return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
  }
  const [authority = "", ...path] = trimmed.split("/");
  const withPort = /:\d+$/.test(authority) ? authority : `${authority}:11434`;
  if (!isHttpUrl(`http://${withPort}/`)) throw new Error(OLLAMA_HOST_MESSAGE);
  const url = new URL(`http://${withPort}/${path.join("/")}`);
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}
export const OLLAMA_HOST_MESSAGE = "must be host, host:port or an http:// or https:// URL";

const HEADER_VALUE_MESSAGE = "not a valid HTTP header value (Latin-1 only, no line breaks)";
const HeaderValue = z.string().refine(isHeaderValue, HEADER_VALUE_MESSAGE);
const Headers = z.record(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "not a valid HTTP header name"), HeaderValue);
/** A key: it goes into a header. */
const ApiKey = z.string().min(1).refine(isHeaderValue, HEADER_VALUE_MESSAGE);

/** Settings of a hosted provider (OpenAI, Anthropic). */
export const HostedProviderConfig = z.strictObject({
  apiKey: ApiKey.optional(),
  baseURL: HttpUrl.optional(),
  headers: Headers.optional(),
});
export type HostedProviderConfig = z.infer<typeof HostedProviderConfig>;

export const OllamaConfig = z.strictObject({
  /** Like `OLLAMA_HOST`: `http://host:port`, `host:port` or `host`. Default `http://127.0.0.1:11434`. */
  host: z
    .string()
    .min(1)
    .refine((host) => {
      try {
        ollamaBaseURL(host);
        return true;
      } catch {
        return false;
      }
    }, OLLAMA_HOST_MESSAGE)
    .optional(),
});
export type OllamaConfig = z.infer<typeof OllamaConfig>;

/** A named OpenAI-compatible endpoint (vLLM, llama.cpp server, LM Studio, OpenRouter, Groq…). */
export const EndpointConfig = z.strictObject({
  /** Used as the provider in model ids: `{ name: "groq" }` → `groq/llama-3.3-70b-versatile`. */
  name: ProviderName,
  /** The API root, with its version path: e.g. `http://127.0.0.1:8000/v1`. */
  baseURL: HttpUrl,
  apiKey: ApiKey.optional(),
  /** Name of an environment variable holding the key, to keep secrets out of the file. */
  apiKeyEnv: z.string().min(1).optional(),
  headers: Headers.optional(),
  /** Ask for token usage in the stream (`stream_options.include_usage`). Default true. */
  includeUsage: z.boolean().optional(),
});
export type EndpointConfig = z.infer<typeof EndpointConfig>;

export const RetryConfig = z.strictObject({
  maxRetries: z.number().int().min(0).max(10).optional(),
  initialDelayMs: z.number().int().min(0).max(60_000).optional(),
  maxDelayMs: z.number().int().min(0).max(600_000).optional(),
});
export type RetryConfig = z.infer<typeof RetryConfig>;

/** Price of a model in USD per million tokens. */
export const ModelPrice = z.strictObject({
  inputPerMillion: z.number().nonnegative(),
  outputPerMillion: z.number().nonnegative(),
});
export type ModelPrice = z.infer<typeof ModelPrice>;

/** Keys are `provider/model` (e.g. `openai/gpt-4.1-mini`) or `provider/*` for a whole provider. */
export const ModelPrices = z.record(z.string().regex(/^[^/]+\/.+$/, "must be 'provider/model' or 'provider/*'"), ModelPrice);
export type ModelPrices = z.infer<typeof ModelPrices>;

/** Provider names that named endpoints may not take. */
export const BUILTIN_PROVIDERS = ["demo", "openai", "anthropic", "ollama"] as const;

export const ProviderConfig = z
  .strictObject({
    openai: HostedProviderConfig.optional(),
    anthropic: HostedProviderConfig.optional(),
    ollama: OllamaConfig.optional(),
    endpoints: z.array(EndpointConfig).optional(),
    retry: RetryConfig.optional(),
    requestTimeoutMs: z.number().int().min(100).max(3_600_000).optional(),
    prices: ModelPrices.optional(),
  })
  .superRefine((config, context) => {
    const seen = new Set<string>();
    for (const [index, endpoint] of (config.endpoints ?? []).entries()) {
      const name = endpoint.name.toLowerCase();
      if ((BUILTIN_PROVIDERS as readonly string[]).includes(name)) {
        context.addIssue({ code: "custom", path: ["endpoints", index, "name"], message: `'${endpoint.name}' is a built-in provider` });
      } else if (seen.has(name)) {
        context.addIssue({ code: "custom", path: ["endpoints", index, "name"], message: `endpoint '${endpoint.name}' is defined twice` });
      }
      seen.add(name);
    }
  });
export type ProviderConfig = z.infer<typeof ProviderConfig>;
