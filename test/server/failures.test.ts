/**
 * Why a task failed, as a client sees it: one `{code, message, retryable}` object on the REST task,
 * in the `result` frame and in a `resync` snapshot — with the provider's cause (rate limit, bad
 * key, cut stream…) kept. Real server, real provider adapter, a provider on loopback.
 */
import { afterEach, expect, test } from "bun:test";
import type { ChatModel } from "../../src/llm/model.ts";
import { TaskError, type TaskErrorCode } from "../../src/protocol/task.ts";
import { deferred, within } from "../helpers/deferred.ts";
import { callTools, createScriptedModel } from "../helpers/scripted-model.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import {
  anthropicEvent,
  anthropicMessageStart,
  controlledSseResponse,
  jsonResponse,
  openAiChunk,
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

/** OpenAI and Anthropic agents on the loopback provider; one retry, tiny delays. */
function providerConfig(agents: Record<string, unknown>[]) {
  return {
    agents,
    config: {
      providers: {
        openai: { apiKey: "sk-test-key", baseURL: `${provider!.url}/v1` },
        anthropic: { apiKey: "sk-ant-test", baseURL: `${provider!.url}/v1` },
        retry: { maxRetries: 1, initialDelayMs: 1, maxDelayMs: 5 },
      },
    },
  };
}

interface Ended {
  /** `data` of the result frame. */
  result: Record<string, unknown>;
  /** `GET /tasks/:id`. */
  task: Record<string, unknown>;
}

/** Runs a task to its end; returns its result frame's data and the REST task. */
async function run(agent?: string): Promise<Ended> {
  const created = await server!.createTask(agent ? { input: "hi", agent } : { input: "hi" });
  const result = (await (await server!.watch(created.id)).result()).data as Record<string, unknown>;
  const task = (await (await server!.http(`/tasks/${created.id}`)).json()) as Record<string, unknown>;
  return { result, task };
}

/** The error of an ended task: the same object on the REST task and in the frame, in the one shape. */
function errorOf({ result, task }: Ended) {
  expect(result.error).toEqual(task.error);
  expect(TaskError.strict().parse(task.error)).toEqual(task.error as TaskError);
  return task.error as TaskError;
}

test("a provider that rate-limits: rate_limited and retryable, the same object on the task, in the result and in resync", async () => {
  provider = startLoopbackProvider(() => jsonResponse(429, { error: { message: "Rate limit reached for gpt-test", type: "requests" } }));
  server = await startTestServer(providerConfig([{ name: "default", model: "openai/gpt-test" }]));
  const ended = await run();
  expect(provider.requests.length).toBe(2); // one try, one retry
  expect(ended.result).toMatchObject({ status: "failed", stop_reason: "error" });
  expect(ended.task).toMatchObject({ status: "failed", stop_reason: "error" });
  const error = errorOf(ended);
  expect(error).toMatchObject({ code: "rate_limited", retryable: true });
  expect(error.message).toContain("429");
  expect(error.message).toContain("Rate limit reached for gpt-test");

  // The list shows the same object.
  const listed = (await (await server.http("/tasks")).json()) as { tasks: Record<string, unknown>[] };
  expect(listed.tasks.find((task) => task.id === ended.task.id)!.error).toEqual(error);

  // A watcher whose events were pruned gets the same object in the snapshot.
  expect(await server.store.pruneEvents(new Date(Date.now() + 60_000))).toBe(1);
  const watcher = await server.watch(ended.task.id as string);
  const resync = await watcher.waitFor((frame) => frame.type === "resync", "the resync frame");
  expect((resync.data as { error: unknown }).error).toEqual(error);
});

test("HTTP statuses map to stable codes; only what may pass is retried and retryable", async () => {
  const statuses: Record<string, number> = { "gpt-401": 401, "gpt-403": 403, "gpt-404": 404, "gpt-400": 400, "gpt-503": 503 };
  provider = startLoopbackProvider((request) => {
    const status = statuses[request.body.model as string]!;
    return jsonResponse(status, { error: { message: `refused with ${status}`, type: "invalid_request_error" } });
  });
  server = await startTestServer(
    providerConfig(Object.keys(statuses).map((model, index) => ({ name: index === 0 ? "default" : model, model: `openai/${model}` }))),
  );
  const expected: [string, TaskErrorCode, boolean, number][] = [
    ["gpt-401", "authentication", false, 1],
    ["gpt-403", "authentication", false, 1],
    ["gpt-404", "bad_request", false, 1],
    ["gpt-400", "bad_request", false, 1],
    ["gpt-503", "provider_unavailable", true, 2],
  ];
  for (const [model, code, retryable, requests] of expected) {
    const before = provider.requests.length;
    const error = errorOf(await run(model === "gpt-401" ? undefined : model));
    expect({ model, code: error.code, retryable: error.retryable }).toEqual({ model, code, retryable });
    expect(error.message).toContain(`HTTP ${statuses[model]}`);
    expect(error.message).toContain(`refused with ${statuses[model]}`);
    expect(provider.requests.length - before).toBe(requests);
  }
});

test("a stream cut mid-step, or ended without completion: stream_interrupted, retryable", async () => {
  const subscribed = deferred<void>();
  let requests = 0;
  provider = startLoopbackProvider((request) => {
    if (++requests === 1) {
      // Ends cleanly, but before the provider said the answer was complete.
      return sseResponse([openAiChunk({ role: "assistant", content: "" }), openAiChunk({ content: "Half an ans" })]);
    }
    const stream = controlledSseResponse(request);
    subscribed.promise.then(() => {
      stream.send(openAiChunk({ role: "assistant", content: "" }));
      stream.send(openAiChunk({ content: "The answer is" }));
    });
    return stream.response; // never ends: cut below
  });
  server = await startTestServer(providerConfig([{ name: "default", model: "openai/gpt-test" }]));

  const ended = errorOf(await run());
  expect(ended).toMatchObject({ code: "stream_interrupted", retryable: true });
  expect(ended.message).toContain("ended before the provider signalled completion");

  const task = await server.createTask({ input: "hi" });
  const watcher = await server.watch(task.id);
  await watcher.waitFor((frame) => frame.type === "connected", "connected");
  subscribed.resolve();
  await watcher.waitFor((frame) => frame.type === "delta", "the first delta");
  provider.stop(); // closes the connection in the middle of the step
  const result = (await watcher.result()).data as Record<string, unknown>;
  const rest = (await (await server.http(`/tasks/${task.id}`)).json()) as Record<string, unknown>;
  const cut = errorOf({ result, task: rest });
  expect(cut).toMatchObject({ code: "stream_interrupted", retryable: true });
  expect(cut.message).toStartWith("openai/gpt-test: stream interrupted: ");
});

test("an overloaded error inside the stream is provider_unavailable and retryable", async () => {
  provider = startLoopbackProvider(() =>
    sseResponse([
      anthropicMessageStart(10),
      anthropicEvent("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
      anthropicEvent("content_block_delta", { index: 0, delta: { type: "text_delta", text: "Partial" } }),
      anthropicEvent("error", { error: { type: "overloaded_error", message: "Overloaded" } }),
    ]),
  );
  server = await startTestServer(providerConfig([{ name: "default", model: "anthropic/claude-test" }]));
  const error = errorOf(await run());
  expect(error).toEqual({
    code: "provider_unavailable",
    message: "anthropic/claude-test: provider error in stream: Overloaded",
    retryable: true,
  });
});

test("the task's own limits have codes of their own; a cancelled task has no error", async () => {
  const looping = createScriptedModel([callTools([{ id: "c", name: "calculator", arguments: '{"expression":"1+1"}' }])], { repeatLast: true });
  const started = deferred<void>();
  /** A model call that only ends when aborted; `onStart` is told when it begins. */
  const hanging = (onStart?: () => void): ChatModel => ({
    id: "test/hang",
    async *stream(request) {
      onStart?.();
      await new Promise((_, reject) => request.abortSignal.addEventListener("abort", () => reject(request.abortSignal.reason)));
    },
  });
  server = await startTestServer({
    models: { loop: looping, hang: hanging(), waiting: hanging(() => started.resolve()) },
    agents: [
      { model: "test/loop", max_steps: 2 },
      { model: "test/loop", token_budget: 25 },
      { model: "test/hang", timeout_ms: 100 },
      { model: "test/waiting" },
    ],
  });

  const maxSteps = await run();
  expect(maxSteps.task).toMatchObject({ status: "failed", stop_reason: "max_steps" });
  expect(errorOf(maxSteps)).toMatchObject({ code: "max_steps", retryable: false });
  expect(errorOf(maxSteps).message).toStartWith("Stopped: ");

  const budget = await run("agent1");
  expect(errorOf(budget)).toMatchObject({ code: "token_budget", retryable: false });

  const deadline = await run("agent2");
  expect(deadline.task).toMatchObject({ status: "timed_out", stop_reason: "deadline" });
  expect(errorOf(deadline)).toEqual({ code: "deadline", message: "Task exceeded its 100 ms time limit", retryable: false });

  const task = await server.createTask({ input: "hi", agent: "agent3" });
  const watcher = await server.watch(task.id);
  await within(started.promise, 5000, "the model call");
  const cancelled = await server.http(`/tasks/${task.id}/cancel`, { method: "POST" });
  expect(await cancelled.json()).toMatchObject({ status: "cancelled", stop_reason: "cancelled", error: null });
  const result = (await watcher.result()).data as Record<string, unknown>;
  expect(result).toMatchObject({ status: "cancelled" });
  expect("error" in result).toBe(false);
});
