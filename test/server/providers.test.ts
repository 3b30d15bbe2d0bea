/**
 * The server with a real provider behind it: an OpenAI-speaking HTTP server on loopback, wired
 * through the config (agents + providers), not through test doubles.
 */
import { afterEach, expect, test } from "bun:test";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../../src/config/config.ts";
import { silentLogger } from "../../src/lib/logger.ts";
import { startServer } from "../../src/server/serve.ts";
import { within } from "../helpers/deferred.ts";
import { startTestServer, tempDir, type TestServer } from "../helpers/server.ts";
import {
  controlledSseResponse,
  jsonResponse,
  openAiChunk,
  openAiTextAnswer,
  openAiToolCallAnswer,
  sseResponse,
  startLoopbackProvider,
  type LoopbackProvider,
} from "../llm/loopback-provider.ts";

let server: TestServer | undefined;
let provider: LoopbackProvider | undefined;
afterEach(async () => {
  await server?.close();
  provider?.stop();
  server = provider = undefined;
});

function openAiAgent(extra: Record<string, unknown> = {}) {
  return {
    agents: [{ name: "default", model: "openai/gpt-test", tools: ["calculator"], ...extra }],
    config: {
      providers: {
        openai: { apiKey: "sk-test-key", baseURL: `${provider!.url}/v1` },
        retry: { maxRetries: 2, initialDelayMs: 1, maxDelayMs: 5 },
        prices: { "openai/gpt-test": { inputPerMillion: 2, outputPerMillion: 8 } },
      },
    },
  };
}

test("a task on an OpenAI-compatible provider: tool call, live deltas to every watcher, usage and cost", async () => {
  provider = startLoopbackProvider((_request, index) =>
    sseResponse(
      index === 0
        ? openAiToolCallAnswer({ id: "call_a", name: "calculator", arguments: '{"expression":"6*7"}' }, { text: "Let me compute.", usage: { input: 100, output: 20 } })
        : openAiTextAnswer(["The answer", " is 42."], { input: 150, output: 10 }),
    ),
  );
  server = await startTestServer(openAiAgent());
  const task = await server.createTask({ input: "What is 6 times 7?" });
  const watcher = await server.watch(task.id);
  const result = await watcher.result();

  expect(result.data).toMatchObject({
    status: "completed",
    output: "The answer is 42.",
    total_steps: 2,
    total_tokens: 280,
    usage: { input_tokens: 250, output_tokens: 30 },
  });
  expect((result.data as { cost_usd: number }).cost_usd).toBeCloseTo((250 * 2 + 30 * 8) / 1e6, 12);
  const steps = watcher.frames.filter((frame) => frame.type === "step").map((frame) => (frame.data as { event_type: string }).event_type);
  expect(steps).toEqual(["usage", "thought", "tool_call", "tool_result", "usage"]);
  const toolResult = watcher.frames.find((frame) => (frame.data as { event_type?: string })?.event_type === "tool_result");
  expect((toolResult!.data as { data: unknown }).data).toEqual({ id: "call_a", name: "calculator", result: { expression: "6*7", value: 42 } });

  // The provider saw our key, the system prompt, the tool, and then the tool's result.
  expect(provider.requests.length).toBe(2);
  expect(provider.requests[0]!.headers.get("authorization")).toBe("Bearer sk-test-key");
  expect(provider.requests[0]!.body.tools.map((tool: { function: { name: string } }) => tool.function.name)).toEqual(["calculator"]);
  const messages = provider.requests[1]!.body.messages as { role: string; tool_call_id?: string; content?: unknown }[];
  expect(messages.map((message) => message.role)).toEqual(["system", "user", "assistant", "tool"]);
  expect(messages[3]).toMatchObject({ tool_call_id: "call_a" });

  const stored = (await (await server.http(`/tasks/${task.id}`)).json()) as Record<string, unknown>;
  expect(stored).toMatchObject({ input_tokens: 250, output_tokens: 30, total_tokens: 280 });
  expect(stored.cost_usd as number).toBeCloseTo(0.00074, 12);
});

test("deltas arrive while the model is still streaming, tagged with their step", async () => {
  const watching = Promise.withResolvers<void>();
  const firstDeltaSeen = Promise.withResolvers<void>();
  provider = startLoopbackProvider((request) => {
    const stream = controlledSseResponse(request);
    // Deltas are live-only: start streaming once the watcher is subscribed.
    watching.promise.then(() => {
      stream.send(openAiChunk({ role: "assistant", content: "" }));
      stream.send(openAiChunk({ content: "Hello" }));
    });
    firstDeltaSeen.promise.then(() => {
      stream.send(openAiChunk({ content: " world" }));
      stream.send(openAiChunk({}, "stop"));
      stream.send("data: [DONE]\n\n");
      stream.end();
    });
    return stream.response;
  });
  server = await startTestServer(openAiAgent());
  const task = await server.createTask({ input: "hi" });
  const watcher = await server.watch(task.id);
  // A live task with nothing to replay is subscribed in the same step that sends `connected`.
  await watcher.waitFor((frame) => frame.type === "connected", "connected");
  watching.resolve();
  const delta = await watcher.waitFor((frame) => frame.type === "delta", "the first delta");
  expect(delta).toEqual({ type: "delta", step: 1, data: { kind: "text", text: "Hello" } });
  expect(watcher.frames.some((frame) => frame.type === "result")).toBe(false);
  firstDeltaSeen.resolve();
  expect((await watcher.result()).data).toMatchObject({ status: "completed", output: "Hello world" });
  // A watcher with deltas=0 gets the same durable frames and no deltas.
  const quiet = await server.watch(task.id, "deltas=0");
  await quiet.result();
  expect(quiet.frames.some((frame) => frame.type === "delta")).toBe(false);
});

test("a provider that keeps failing ends the task failed with a clear message, after retries", async () => {
  provider = startLoopbackProvider(() => jsonResponse(500, { error: { message: "the GPU is on fire", type: "server_error" } }));
  server = await startTestServer(openAiAgent());
  const task = await server.createTask({ input: "hi" });
  const watcher = await server.watch(task.id);
  const result = await watcher.result();
  expect(result.data).toMatchObject({ status: "failed", stop_reason: "error" });
  const message = (result.data as { error: { message: string } }).error.message;
  expect(message).toContain("openai/gpt-test");
  expect(message).toContain("500");
  expect(message).toContain("the GPU is on fire");
  expect(provider.requests.length).toBe(3); // one try and two retries
  expect(await (await server.http(`/tasks/${task.id}`)).json()).toMatchObject({
    status: "failed",
    error: { code: "provider_unavailable", message, retryable: true },
  });
});

test("cancel aborts the provider's HTTP request at once", async () => {
  let clientGone: Promise<string> | undefined;
  const requested = Promise.withResolvers<void>();
  provider = startLoopbackProvider((request) => {
    const stream = controlledSseResponse(request);
    stream.send(openAiChunk({ role: "assistant", content: "" }));
    stream.send(openAiChunk({ content: "thinking very slowly" }));
    clientGone = stream.clientGone;
    requested.resolve();
    return stream.response; // never finishes on its own
  });
  server = await startTestServer(openAiAgent());
  const task = await server.createTask({ input: "hi" });
  const watcher = await server.watch(task.id);
  await within(requested.promise, 5000, "the provider request");
  watcher.send({ type: "cancel" });
  expect((await watcher.result()).data).toMatchObject({ status: "cancelled" });
  expect(await within(clientGone!, 5000, "the provider to see the request go away")).toBeString();
});

test("an agent whose provider has no key stops start-up with a clear message", async () => {
  provider = startLoopbackProvider(() => jsonResponse(200, {}));
  const attempt = startTestServer({ agents: [{ name: "writer", model: "openai/gpt-test" }] });
  await expect(attempt).rejects.toThrow("agent 'writer': openai/gpt-test needs OPENAI_API_KEY");
});

test("the key check comes before anything is created or run: no SQLite file, no tools module code", async () => {
  const dir = tempDir();
  try {
    const marker = join(dir, "tools-module-ran");
    const module = join(dir, "tools.ts");
    writeFileSync(module, `import { writeFileSync } from "node:fs";\nwriteFileSync(${JSON.stringify(marker)}, "ran");\nexport default [];\n`);
    const config = loadConfig({ env: {}, readFile: false, flags: { port: 0, dataDir: join(dir, "data"), toolsModule: module, agents: [{ name: "writer", model: "openai/gpt-test" }] } });
    await expect(startServer({ config, logger: silentLogger, env: {} })).rejects.toThrow("agent 'writer': openai/gpt-test needs OPENAI_API_KEY");
    expect(existsSync(join(dir, "data", "agentkit.sqlite"))).toBe(false);
    expect(existsSync(marker)).toBe(false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
