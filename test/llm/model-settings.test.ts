/**
 * Per-agent model settings reach the wire: temperature, top_p, tool_choice, max tokens, reasoning
 * effort and provider options, as the real providers put them in the HTTP request body they send to
 * a loopback server — and a setting left out is absent from the body, not sent as null.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { openaiModelCatalog } from "@ai-sdk/openai/internal";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentDefinition, modelSettingsOf } from "../../src/agents/agent.ts";
import { loadConfig } from "../../src/config/config.ts";
import { silentLogger } from "../../src/lib/logger.ts";
import { openAiModelReasons } from "../../src/llm/providers/openai-reasoning.ts";
import { startServer } from "../../src/server/serve.ts";
import type { ModelRequest } from "../../src/llm/model.ts";
import { createProviderFactories } from "../../src/llm/providers/index.ts";
import { calculatorTool } from "../../src/tools/calculator.ts";
import { toolSpec } from "../../src/tools/tool.ts";
import { anthropicTextAnswer, collect, openAiTextAnswer, sseResponse, startLoopbackProvider, type LoopbackProvider } from "./loopback-provider.ts";

let provider: LoopbackProvider | undefined;
afterEach(() => provider?.stop());

function factories(url: string) {
  return createProviderFactories({
    env: { OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: `${url}/v1`, ANTHROPIC_API_KEY: "sk-ant-test", ANTHROPIC_BASE_URL: `${url}/v1` },
    endpoints: [{ name: "local", baseURL: `${url}/v1` }],
    retry: { maxRetries: 0 },
  });
}

function request(extra: Partial<ModelRequest> = {}): ModelRequest {
  return { messages: [{ role: "user", content: "hi" }], tools: [toolSpec(calculatorTool)], abortSignal: new AbortController().signal, ...extra };
}

/** Sends one OpenAI Chat Completions request through `providerName/model` and returns its JSON body. */
async function openAiBody(providerName: "openai" | "local", extra: Partial<ModelRequest>): Promise<Record<string, unknown>> {
  provider = startLoopbackProvider(() => sseResponse(openAiTextAnswer(["ok"])));
  const model = factories(provider.url)[providerName]!("gpt-test");
  await collect(model.stream(request(extra)));
  expect(provider.requests).toHaveLength(1);
  expect(provider.requests[0]!.path).toBe("/v1/chat/completions");
  return provider.requests[0]!.body;
}

const SETTING_KEYS = ["temperature", "top_p", "max_tokens", "max_completion_tokens", "reasoning_effort", "user", "response_format", "seed"];

describe("OpenAI (Chat Completions)", () => {
  test("every setting of an agent arrives in the request body", async () => {
    const agent = AgentDefinition.parse({
      name: "tuned",
      temperature: 0.3,
      top_p: 0.9,
      tool_choice: { tool: "calculator" },
      reasoning_effort: "low",
      provider_options: { openai: { user: "user-42", parallelToolCalls: false } },
      max_output_tokens: 256,
    });
    const body = await openAiBody("openai", { ...modelSettingsOf(agent), maxOutputTokens: agent.max_output_tokens });
    expect(body).toMatchObject({
      temperature: 0.3,
      top_p: 0.9,
      tool_choice: { type: "function", function: { name: "calculator" } },
      max_tokens: 256,
      reasoning_effort: "low",
      user: "user-42",
      parallel_tool_calls: false,
    });
  });

  test("absent settings are absent from the body; tools get tool_choice auto", async () => {
    const body = await openAiBody("openai", {});
    for (const key of SETTING_KEYS) expect(body).not.toHaveProperty(key);
    expect(body).not.toHaveProperty("parallel_tool_calls");
    expect(body.tool_choice).toBe("auto");
  });

  test("without tools, no tool_choice is sent even when one is set", async () => {
    const body = await openAiBody("openai", { tools: [], toolChoice: "required" });
    expect(body).not.toHaveProperty("tool_choice");
    expect(body).not.toHaveProperty("tools");
  });

  test("tool_choice required and none", async () => {
    expect((await openAiBody("openai", { toolChoice: "required" })).tool_choice).toBe("required");
    provider?.stop();
    expect((await openAiBody("openai", { toolChoice: "none" })).tool_choice).toBe("none");
  });

  test("the user's own providerOptions.openai.reasoningEffort wins over reasoning_effort", async () => {
    const body = await openAiBody("openai", { reasoningEffort: "low", providerOptions: { openai: { reasoningEffort: "high" } } });
    expect(body.reasoning_effort).toBe("high");
  });

  test("a JSON response format is sent as response_format json_schema", async () => {
    const schema = { type: "object", properties: { answer: { type: "string" } }, required: ["answer"], additionalProperties: false };
    const body = await openAiBody("openai", { tools: [], responseFormat: { type: "json", schema } });
    expect(body.response_format).toMatchObject({ type: "json_schema", json_schema: { name: "response", strict: true, schema } });
  });
});

describe("OpenAI: reasoning_effort only on models that reason", () => {
  async function bodyOf(modelName: string, extra: Partial<ModelRequest>): Promise<Record<string, unknown>> {
    provider?.stop();
    provider = startLoopbackProvider(() => sseResponse(openAiTextAnswer(["ok"])));
    await collect(factories(provider.url).openai!(modelName).stream(request(extra)));
    return provider.requests[0]!.body;
  }

  test("a model the SDK knows does not reason (gpt-4.1-mini) gets no reasoning_effort, and keeps its temperature", async () => {
    const body = await bodyOf("gpt-4.1-mini", { reasoningEffort: "high", temperature: 0.3 });
    expect(body).not.toHaveProperty("reasoning_effort");
    expect(body.temperature).toBe(0.3);
    // A reasoning model gets it; so does an id nobody knows (a fine-tune, a model behind a proxy).
    expect((await bodyOf("o4-mini", { reasoningEffort: "high" })).reasoning_effort).toBe("high");
    expect((await bodyOf("ft:gpt-4.1-mini:acme::abc123", { reasoningEffort: "high" })).reasoning_effort).toBe("high");
    // The SDK's own "treat it as a reasoning model" puts it back.
    const forced = await bodyOf("gpt-4.1-mini", { reasoningEffort: "low", providerOptions: { openai: { forceReasoning: true } } });
    expect(forced.reasoning_effort).toBe("low");
  });

  test("the model says what it will not send, for the start-up warning; nothing when it sends it all", () => {
    const openai = factories("http://127.0.0.1:1");
    expect(openai.openai!("gpt-4.1-mini").unsentSettings?.({ reasoningEffort: "high" })).toEqual([
      "reasoning_effort 'high' is not sent to openai/gpt-4.1-mini: it is not a reasoning model, and the provider refuses the parameter for it " +
        "(remove it, or set provider_options.openai.forceReasoning: true if the model does reason)",
    ]);
    expect(openai.openai!("gpt-4.1-mini").unsentSettings?.({})).toEqual([]);
    expect(openai.openai!("gpt-4.1-mini").unsentSettings?.({ reasoningEffort: "high", providerOptions: { openai: { forceReasoning: true } } })).toEqual([]);
    for (const name of ["o4-mini", "gpt-5-mini", "ft:gpt-4.1-mini:acme::abc123"]) expect(openai.openai!(name).unsentSettings?.({ reasoningEffort: "high" })).toEqual([]);
  });

  test("start-up warns naming the agent and the model", async () => {
    provider = startLoopbackProvider(() => sseResponse(openAiTextAnswer(["ok"])));
    const warnings: Array<{ message: string; fields?: Record<string, unknown> }> = [];
    const logger = { ...silentLogger, warn: (message: string, fields?: Record<string, unknown>) => void warnings.push({ message, fields }) };
    const dir = mkdtempSync(join(tmpdir(), "agentkit-reasoning-"));
    try {
      const config = loadConfig({
        env: {},
        readFile: false,
        flags: {
          port: 0,
          dataDir: dir,
          agents: [
            { name: "mini", model: "openai/gpt-4.1-mini", reasoning_effort: "medium" },
            { name: "thinker", model: "openai/o4-mini", reasoning_effort: "medium" },
          ],
        },
      });
      const server = await startServer({ config, logger, env: { OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: `${provider.url}/v1` } });
      await server.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const about = warnings.filter((warning) => warning.message.includes("reasoning_effort"));
    expect(about).toEqual([
      {
        message: expect.stringContaining("agent 'mini': reasoning_effort 'medium' is not sent to openai/gpt-4.1-mini: it is not a reasoning model"),
        fields: { agent: "mini", model: "openai/gpt-4.1-mini" },
      },
    ]);
  });

  test("tells reasoning models apart exactly as the SDK's catalog does", () => {
    const entries = Object.entries(openaiModelCatalog).filter(([, entry]) => entry.capabilities.language !== undefined);
    expect(entries.length).toBeGreaterThan(10);
    // `support` is true, false, "unknown" or a condition; for a catalogued chat model it is true or false.
    for (const [modelId, entry] of entries) expect([modelId, openAiModelReasons(modelId)]).toEqual([modelId, entry.capabilities.language!.reasoning!.support as boolean]);
    for (const modelId of ["gpt-4.1-mini-2025-04-14", "gpt-4o-mini", "gpt-5-chat-latest"]) expect([modelId, openAiModelReasons(modelId)]).toEqual([modelId, false]);
    for (const modelId of ["o3", "o4-mini-2025-04-16", "gpt-5.1-chat-latest"]) expect([modelId, openAiModelReasons(modelId)]).toEqual([modelId, true]);
    for (const modelId of ["ft:gpt-4.1-mini:acme::abc123", "chatgpt-4o-latest", "llama-3.3-70b", "gpt-test"]) expect(openAiModelReasons(modelId)).toBeUndefined();
  });
});

describe("OpenAI-compatible endpoint", () => {
  test("settings, reasoning effort and a raw provider option keyed by the endpoint's name", async () => {
    const body = await openAiBody("local", {
      temperature: 0,
      topP: 0.5,
      toolChoice: { type: "tool", toolName: "calculator" },
      maxOutputTokens: 100,
      reasoningEffort: "medium",
      providerOptions: { local: { top_k: 40 } },
    });
    expect(body).toMatchObject({
      temperature: 0,
      top_p: 0.5,
      tool_choice: { type: "function", function: { name: "calculator" } },
      max_tokens: 100,
      reasoning_effort: "medium",
      top_k: 40,
    });
  });

  test("absent settings are absent", async () => {
    const body = await openAiBody("local", {});
    for (const key of [...SETTING_KEYS, "top_k"]) expect(body).not.toHaveProperty(key);
  });
});

describe("Anthropic (Messages)", () => {
  async function anthropicBody(extra: Partial<ModelRequest>, modelName = "claude-sonnet-4-5"): Promise<Record<string, any>> {
    provider?.stop();
    provider = startLoopbackProvider(() => sseResponse(anthropicTextAnswer("ok")));
    const model = factories(provider.url).anthropic!(modelName);
    await collect(model.stream(request(extra)));
    return provider.requests[0]!.body;
  }

  test("temperature, tool_choice and max tokens arrive; absent ones are absent", async () => {
    const body = await anthropicBody({ temperature: 0.2, toolChoice: { type: "tool", toolName: "calculator" }, maxOutputTokens: 300 });
    expect(body).toMatchObject({ temperature: 0.2, tool_choice: { type: "tool", name: "calculator" }, max_tokens: 300 });
    provider?.stop();
    const plain = await anthropicBody({});
    expect(plain).not.toHaveProperty("temperature");
    expect(plain).not.toHaveProperty("top_p");
    expect(plain).not.toHaveProperty("thinking");
  });

  test("with thinking of any kind, a forced tool choice is sent as auto (Anthropic refuses it); without, it is kept", async () => {
    const timeTool = { name: "current_time", description: "Current time", inputSchema: { type: "object", properties: {} } };
    const tools = [toolSpec(calculatorTool), timeTool];
    const thinkingOf = {
      // Adaptive thinking: a model of that generation, and a claude id the SDK does not know.
      "claude-opus-4-6": "adaptive",
      "claude-next-1": "adaptive",
      // A thinking budget: an older model.
      "claude-sonnet-4-5": "enabled",
    };
    for (const [modelName, thinking] of Object.entries(thinkingOf)) {
      const required = await anthropicBody({ tools, reasoningEffort: "medium", toolChoice: "required" }, modelName);
      expect([modelName, required.thinking.type, required.tool_choice]).toEqual([modelName, thinking, { type: "auto" }]);
      expect(required.tools.map((tool: { name: string }) => tool.name)).toEqual(["calculator", "current_time"]);
      // A named tool: `auto`, with only that tool offered (as the SDK does for a thinking budget).
      const named = await anthropicBody({ tools, reasoningEffort: "medium", toolChoice: { type: "tool", toolName: "current_time" } }, modelName);
      expect([modelName, named.tool_choice, named.tools.map((tool: { name: string }) => tool.name)]).toEqual([modelName, { type: "auto" }, ["current_time"]]);
      // No thinking: the forced choice goes out as it is.
      const plain = await anthropicBody({ tools, toolChoice: "required" }, modelName);
      expect([modelName, plain.thinking, plain.tool_choice]).toEqual([modelName, undefined, { type: "any" }]);
    }
    // Thinking asked for through provider_options rather than reasoning_effort counts too.
    const viaOptions = await anthropicBody({ toolChoice: "required", providerOptions: { anthropic: { thinking: { type: "adaptive" } } } }, "claude-opus-4-6");
    expect([viaOptions.thinking, viaOptions.tool_choice]).toEqual([{ type: "adaptive" }, { type: "auto" }]);
    const disabled = await anthropicBody({ toolChoice: "required", providerOptions: { anthropic: { thinking: { type: "disabled" } } } }, "claude-opus-4-6");
    expect([disabled.thinking, disabled.tool_choice]).toEqual([{ type: "disabled" }, { type: "any" }]);
  });

  test("adaptive thinking adds no token budget (thinking counts within max_tokens); a thinking budget is added to it", async () => {
    const adaptive = await anthropicBody({ reasoningEffort: "high", maxOutputTokens: 1000 }, "claude-opus-4-6");
    expect([adaptive.max_tokens, adaptive.thinking, adaptive.output_config]).toEqual([1000, { type: "adaptive", display: "summarized" }, { effort: "high" }]);
    // `minimal` has no adaptive effort of its own: the SDK sends the lowest, `low`.
    expect((await anthropicBody({ reasoningEffort: "minimal" }, "claude-opus-4-6")).output_config).toEqual({ effort: "low" });
    // A budget: 2/10/30/60 % of the model's own output limit (64,000 here), at least 1024, added on top.
    const budget = await anthropicBody({ reasoningEffort: "low", maxOutputTokens: 1000 }, "claude-sonnet-4-5");
    expect([budget.max_tokens, budget.thinking]).toEqual([7400, { type: "enabled", budget_tokens: 6400 }]);
  });

  test("reasoning effort becomes extended thinking", async () => {
    const body = await anthropicBody({ reasoningEffort: "medium", maxOutputTokens: 20_000 });
    expect(body.thinking).toMatchObject({ type: "enabled" });
    expect((body.thinking as { budget_tokens: number }).budget_tokens).toBeGreaterThanOrEqual(1024);
  });
});
