/**
 * Provider factories and their configuration: start-up errors for missing keys, environment over
 * config, Ollama's host rules, named OpenAI-compatible endpoints, the injected fetch, and the
 * config schema.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { AgentDefinition } from "../../src/agents/agent.ts";
import { createAgentPool } from "../../src/agents/pool.ts";
import type { ModelRequest } from "../../src/llm/model.ts";
import {
  createProviderFactories,
  ollamaBaseURL,
  ProviderConfig,
  ProviderError,
  type ProviderFactoriesOptions,
} from "../../src/llm/providers/index.ts";
import { createModelResolver } from "../../src/llm/registry.ts";
import { builtinTools } from "../../src/tools/registry.ts";
import {
  anthropicEvent,
  anthropicMessageStart,
  anthropicTextAnswer,
  collect,
  OPENAI_DONE,
  openAiChunk,
  openAiTextAnswer,
  openAiUsageChunk,
  sseResponse,
  startLoopbackProvider,
  type LoopbackProvider,
} from "./loopback-provider.ts";

let provider: LoopbackProvider | undefined;
afterEach(() => provider?.stop());

const hi = (): ModelRequest => ({ messages: [{ role: "user", content: "Hi" }], tools: [], abortSignal: new AbortController().signal });

function resolver(options: ProviderFactoriesOptions) {
  return createModelResolver(createProviderFactories(options));
}

function thrown(run: () => unknown): any {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error("expected a throw");
}

describe("missing configuration fails at resolve time", () => {
  test("openai and anthropic name the variable they need, and the config file's path to the key (providers.<name>.apiKey)", () => {
    const models = resolver({ env: {} });
    const openai = thrown(() => models.resolve("openai/gpt-4.1-mini"));
    expect(openai).toBeInstanceOf(ProviderError);
    expect(openai.message).toBe("openai/gpt-4.1-mini needs OPENAI_API_KEY (or providers.openai.apiKey in the config file)");
    expect(openai).toMatchObject({ code: "not_configured", provider: "openai", retryable: false, attempts: 0 });
    expect(thrown(() => models.resolve("anthropic/claude-sonnet-4-5")).message).toBe(
      "anthropic/claude-sonnet-4-5 needs ANTHROPIC_API_KEY (or providers.anthropic.apiKey in the config file)",
    );
  });

  test("an empty variable counts as unset", () => {
    expect(thrown(() => resolver({ env: { OPENAI_API_KEY: "" } }).resolve("openai/gpt-4.1")).code).toBe("not_configured");
  });

  test("the agent pool refuses to start with an unconfigured provider", () => {
    const error = thrown(() =>
      createAgentPool({
        definitions: [AgentDefinition.parse({ name: "writer", model: "openai/gpt-4.1-mini" })],
        models: resolver({ env: {} }),
        tools: builtinTools(),
      }),
    );
    expect(error.message).toBe("agent 'writer': openai/gpt-4.1-mini needs OPENAI_API_KEY (or providers.openai.apiKey in the config file)");
  });

  test("a key in the environment that fetch cannot send as a header (a '…' placeholder, a line break) is refused at resolve time, as in the file", () => {
    const models = resolver({ env: { OPENAI_API_KEY: "sk-…", ANTHROPIC_API_KEY: "sk-ant-a\nb", GROQ_API_KEY: "gsk_…" }, endpoints: [{ name: "groq", baseURL: "https://api.groq.com/openai/v1", apiKeyEnv: "GROQ_API_KEY" }] });
    for (const [model, variable] of [["openai/gpt-4.1-mini", "OPENAI_API_KEY"], ["anthropic/claude-sonnet-4-5", "ANTHROPIC_API_KEY"], ["groq/llama-3.3-70b-versatile", "GROQ_API_KEY"]]) {
      const error = thrown(() => models.resolve(model!));
      expect(error).toMatchObject({ code: "not_configured", retryable: false });
      expect(error.message).toStartWith(`${variable} (for ${model}) is not a valid HTTP header value`);
    }
    expect(() => resolver({ env: { OPENAI_API_KEY: "sk-proj-abc123" } }).resolve("openai/gpt-4.1-mini")).not.toThrow();
  });

  test("a base URL in the environment that is not an http(s) URL stops start-up naming the variable (not a failure of every task)", () => {
    for (const [variable, model] of [["OPENAI_BASE_URL", "openai/gpt-4.1-mini"], ["ANTHROPIC_BASE_URL", "anthropic/claude-sonnet-4-5"]] as const) {
      for (const [value, after] of [["notaurl", ""], ["ftp://127.0.0.1:42001/v1", " (the value's scheme is 'ftp:')"], ["http://[bad", ""]]) {
        const models = resolver({ env: { OPENAI_API_KEY: "sk-x", ANTHROPIC_API_KEY: "sk-ant-x", [variable]: value } });
        const error = thrown(() => models.resolve(model));
        expect(error).toMatchObject({ code: "not_configured", retryable: false });
        expect(error.message).toBe(`${variable} (for ${model}) must be an http:// or https:// URL${after}`);
      }
    }
    // The password of a URL is never echoed: only the scheme is.
    const secret = thrown(() => resolver({ env: { OPENAI_API_KEY: "sk-x", OPENAI_BASE_URL: "ftp://user:hunter2@proxy/v1" } }).resolve("openai/gpt-4.1"));
    expect(secret.message).not.toContain("hunter2");
    expect(() => resolver({ env: { OPENAI_API_KEY: "sk-x", OPENAI_BASE_URL: "https://gateway.example.com/v1" } }).resolve("openai/gpt-4.1")).not.toThrow();
  });

  test("an OLLAMA_HOST that is no host and no http(s) URL stops start-up naming the variable, not 'Invalid URL'", () => {
    for (const value of ["http://[bad", "ftp://gpu-box", "gpu box:11434"]) {
      const error = thrown(() =>
        createAgentPool({
          definitions: [AgentDefinition.parse({ name: "ol", model: "ollama/qwen3:8b" })],
          models: resolver({ env: { OLLAMA_HOST: value } }),
          tools: builtinTools(),
        }),
      );
      expect(error.message).toStartWith("agent 'ol': OLLAMA_HOST (for ollama/qwen3:8b) must be host, host:port or an http:// or https:// URL");
    }
    // From the file (when the schema was bypassed: embedding), the field is named instead.
    expect(thrown(() => resolver({ env: {}, ollama: { host: "http://[bad" } }).resolve("ollama/qwen3:8b")).message).toBe(
      "providers.ollama.host (for ollama/qwen3:8b) must be host, host:port or an http:// or https:// URL",
    );
  });

  test("a named endpoint with apiKeyEnv needs that variable", () => {
    const models = resolver({ env: {}, endpoints: [{ name: "groq", baseURL: "https://api.groq.com/openai/v1", apiKeyEnv: "GROQ_API_KEY" }] });
    expect(thrown(() => models.resolve("groq/llama-3.3-70b-versatile")).message).toBe("groq/llama-3.3-70b-versatile needs GROQ_API_KEY");
  });

  test("the demo provider still resolves, and providers are listed", () => {
    const models = resolver({ env: {}, endpoints: [{ name: "lmstudio", baseURL: "http://127.0.0.1:1234/v1" }] });
    expect(models.resolve("demo/react").id).toBe("demo/react");
    expect(models.providers).toEqual(["demo", "openai", "anthropic", "ollama", "lmstudio"]);
  });

  test("an unknown demo model stops start-up naming the demo models, as an unknown provider does", () => {
    const models = createModelResolver();
    for (const name of ["demo", "demo/react", "demo/slow", "demo/bench"]) expect(() => models.resolve(name)).not.toThrow();
    expect(thrown(() => models.resolve("demo/nope")).message).toBe("Unknown demo model 'demo/nope'; known: demo/react, demo/slow, demo/bench");
    const error = thrown(() =>
      createAgentPool({ definitions: [AgentDefinition.parse({ name: "typo", model: "demo/slwo" })], models, tools: builtinTools() }),
    );
    expect(error.message).toBe("agent 'typo': Unknown demo model 'demo/slwo'; known: demo/react, demo/slow, demo/bench");
  });
});

describe("hosted providers", () => {
  test("environment wins over the config file for key and base URL", async () => {
    provider = startLoopbackProvider(() => sseResponse(openAiTextAnswer(["ok"])));
    const model = resolver({
      env: { OPENAI_API_KEY: "sk-from-env", OPENAI_BASE_URL: `${provider.url}/v1` },
      openai: { apiKey: "sk-from-file", baseURL: "http://127.0.0.1:9/unused", headers: { "x-team": "search" } },
    }).resolve("openai/gpt-4.1-mini");
    await collect(model.stream(hi()));
    expect(provider.requests[0]!.headers.get("authorization")).toBe("Bearer sk-from-env");
    expect(provider.requests[0]!.headers.get("x-team")).toBe("search");
  });

  test("the config file's key and base URL are used when the environment has none", async () => {
    provider = startLoopbackProvider(() =>
      sseResponse(anthropicTextAnswer("hello", { input: 5, output: 2 })),
    );
    const model = resolver({ env: {}, anthropic: { apiKey: "sk-ant-file", baseURL: `${provider.url}/v1` } }).resolve("anthropic/claude-test");
    expect(await collect(model.stream(hi()))).toEqual([
      { type: "text-delta", text: "hello" },
      { type: "finish", finishReason: "stop", usage: { inputTokens: 5, outputTokens: 2 } },
    ]);
    expect(provider.requests[0]!.path).toBe("/v1/messages");
    expect(provider.requests[0]!.headers.get("x-api-key")).toBe("sk-ant-file");
  });

  test("the injected fetch carries every request", async () => {
    provider = startLoopbackProvider(() => sseResponse(openAiTextAnswer(["ok"])));
    const fetched: string[] = [];
    const countingFetch = Object.assign(
      (...args: Parameters<typeof fetch>) => {
        fetched.push(String(args[0]));
        return fetch(...args);
      },
      { preconnect: fetch.preconnect },
    ) as typeof fetch;
    const model = resolver({ env: { OPENAI_API_KEY: "sk", OPENAI_BASE_URL: `${provider.url}/v1` }, fetch: countingFetch }).resolve("openai/gpt-x");
    await collect(model.stream(hi()));
    expect(fetched).toEqual([`${provider.url}/v1/chat/completions`]);
  });
});

describe("ollama", () => {
  test("talks OpenAI-compatible Chat Completions at OLLAMA_HOST/v1, without a key, and maps reasoning", async () => {
    provider = startLoopbackProvider(() =>
      sseResponse([
        openAiChunk({ role: "assistant", content: "", reasoning_content: "Thinking it over. " }),
        openAiChunk({ reasoning_content: "Done." }),
        openAiChunk({ content: "Hi!" }),
        openAiChunk({}, "stop"),
        openAiUsageChunk(12, 4),
        OPENAI_DONE,
      ]),
    );
    const host = provider.url.replace("http://", ""); // host:port, as OLLAMA_HOST is usually written
    const model = resolver({ env: { OLLAMA_HOST: host } }).resolve("ollama/qwen3:8b");
    expect(model.id).toBe("ollama/qwen3:8b");
    expect(await collect(model.stream(hi()))).toEqual([
      { type: "reasoning-delta", text: "Thinking it over. " },
      { type: "reasoning-delta", text: "Done." },
      { type: "text-delta", text: "Hi!" },
      { type: "finish", finishReason: "stop", usage: { inputTokens: 12, outputTokens: 4 } },
    ]);
    const sent = provider.requests[0]!;
    expect(sent.path).toBe("/v1/chat/completions");
    expect(sent.headers.get("authorization")).toBeNull();
    expect(sent.body).toMatchObject({ model: "qwen3:8b", stream: true, stream_options: { include_usage: true } });
  });

  test("OLLAMA_HOST forms: host, host:port, URL; default 127.0.0.1:11434", () => {
    expect(ollamaBaseURL("http://127.0.0.1:11434")).toBe("http://127.0.0.1:11434");
    expect(ollamaBaseURL("gpu-box")).toBe("http://gpu-box:11434");
    expect(ollamaBaseURL("0.0.0.0:8080")).toBe("http://0.0.0.0:8080");
    expect(ollamaBaseURL("https://ollama.example.com/")).toBe("https://ollama.example.com");
    expect(ollamaBaseURL("http://proxy.local/ollama/")).toBe("http://proxy.local/ollama");
    expect(() => ollamaBaseURL("ftp://gpu-box")).toThrow("must be host, host:port or an http:// or https:// URL");
  });
});

describe("named OpenAI-compatible endpoints", () => {
  test("use their base URL, key, headers and model names with slashes", async () => {
    provider = startLoopbackProvider(() => sseResponse(openAiTextAnswer(["served"])));
    const model = resolver({
      env: { VLLM_TOKEN: "token-from-env" },
      endpoints: [{ name: "vllm", baseURL: `${provider.url}/v1/`, apiKeyEnv: "VLLM_TOKEN", headers: { "x-route": "gpu-a" } }],
    }).resolve("vllm/meta-llama/Llama-3.1-8B-Instruct");
    expect(model.id).toBe("vllm/meta-llama/Llama-3.1-8B-Instruct");
    await collect(model.stream(hi()));
    const sent = provider.requests[0]!;
    expect(sent.path).toBe("/v1/chat/completions");
    expect(sent.headers.get("authorization")).toBe("Bearer token-from-env");
    expect(sent.headers.get("x-route")).toBe("gpu-a");
    expect(sent.body.model).toBe("meta-llama/Llama-3.1-8B-Instruct");
    expect(sent.body.stream_options).toEqual({ include_usage: true });
  });

  test("includeUsage: false leaves stream_options out (for servers that reject it)", async () => {
    provider = startLoopbackProvider(() => sseResponse(openAiTextAnswer(["ok"])));
    const model = resolver({ env: {}, endpoints: [{ name: "llamacpp", baseURL: `${provider.url}/v1`, includeUsage: false }] }).resolve("llamacpp/local");
    await collect(model.stream(hi()));
    expect(provider.requests[0]!.body.stream_options).toBeUndefined();
    expect(provider.requests[0]!.headers.get("authorization")).toBeNull();
  });

  test("may not shadow a built-in provider or each other", () => {
    expect(() => createProviderFactories({ env: {}, endpoints: [{ name: "openai", baseURL: "http://127.0.0.1:1/v1" }] })).toThrow(
      "provider endpoint 'openai' collides with a built-in provider",
    );
    expect(() =>
      createProviderFactories({
        env: {},
        endpoints: [
          { name: "local", baseURL: "http://127.0.0.1:1/v1" },
          { name: "local", baseURL: "http://127.0.0.1:2/v1" },
        ],
      }),
    ).toThrow("provider endpoint 'local' collides with another provider");
  });
});

describe("ProviderConfig schema", () => {
  test("accepts a full provider section", () => {
    const parsed = ProviderConfig.parse({
      openai: { apiKey: "sk-x", baseURL: "https://gateway.example.com/v1", headers: { "x-org": "a" } },
      anthropic: { baseURL: "https://api.anthropic.com/v1" },
      ollama: { host: "127.0.0.1:11434" },
      endpoints: [
        { name: "openrouter", baseURL: "https://openrouter.ai/api/v1", apiKeyEnv: "OPENROUTER_API_KEY", headers: { "X-Title": "agentkit" } },
        { name: "lm-studio", baseURL: "http://127.0.0.1:1234/v1" },
      ],
      retry: { maxRetries: 5, initialDelayMs: 250, maxDelayMs: 20_000 },
      requestTimeoutMs: 60_000,
      prices: { "openai/gpt-4.1-mini": { inputPerMillion: 0.4, outputPerMillion: 1.6 }, "ollama/*": { inputPerMillion: 0, outputPerMillion: 0 } },
    });
    expect(parsed.endpoints).toHaveLength(2);
    expect(ProviderConfig.parse({})).toEqual({});
  });

  test("rejects bad names, duplicates, shadowed built-ins, bad URLs and bad price keys", () => {
    const issues = (input: unknown) => ProviderConfig.safeParse(input).error?.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
    expect(issues({ endpoints: [{ name: "ollama", baseURL: "http://127.0.0.1:1/v1" }] })).toEqual(["endpoints.0.name: 'ollama' is a built-in provider"]);
    expect(issues({ endpoints: [{ name: "a", baseURL: "http://x/v1" }, { name: "A", baseURL: "http://y/v1" }] })).toEqual([
      "endpoints.1.name: endpoint 'A' is defined twice",
    ]);
    expect(issues({ endpoints: [{ name: "a/b", baseURL: "http://x/v1" }] })?.[0]).toStartWith("endpoints.0.name: must be letters");
    expect(issues({ endpoints: [{ name: "a", baseURL: "not a url" }] })?.[0]).toStartWith("endpoints.0.baseURL:");
    // A URL fetch cannot send a request to is no base URL either.
    expect(issues({ endpoints: [{ name: "a", baseURL: "ftp://x/v1" }] })).toEqual(["endpoints.0.baseURL: must be an http:// or https:// URL"]);
    expect(issues({ openai: { baseURL: "ftp://127.0.0.1:42001/v1" }, anthropic: { baseURL: "notaurl" } })).toEqual([
      "openai.baseURL: must be an http:// or https:// URL",
      "anthropic.baseURL: must be an http:// or https:// URL",
    ]);
    expect(issues({ ollama: { host: "http://[bad" } })).toEqual(["ollama.host: must be host, host:port or an http:// or https:// URL"]);
    expect(issues({ prices: { "gpt-4": { inputPerMillion: 1, outputPerMillion: 2 } } })?.[0]).toStartWith("prices.gpt-4:");
    expect(issues({ prices: { "openai/gpt-4": { inputPerMillion: -1, outputPerMillion: 2 } } })?.[0]).toStartWith("prices.openai/gpt-4.inputPerMillion:");
  });
});
