/**
 * `GET /metrics`: a strict Prometheus exposition (see exposition.ts) whose values move as tasks
 * run, watchers come and go and the store writes; the admin key only.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { ProviderError } from "../../src/llm/providers/provider-error.ts";
import { createMetrics, MAX_SERIES } from "../../src/telemetry/metrics.ts";
import { until } from "../helpers/deferred.ts";
import { answer, callTools, createScriptedModel } from "../helpers/scripted-model.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { parseExposition, valueOf, type MetricFamily } from "./exposition.ts";

const ADMIN = "admin-key-0123456789";
const TENANT = "tenant-key-0123456789";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function scrape(target: TestServer, key: string | undefined = ADMIN): Promise<Map<string, MetricFamily>> {
  const response = await target.http("/metrics", key ? { headers: { Authorization: `Bearer ${key}` } } : {});
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  return parseExposition(await response.text());
}

async function runTask(target: TestServer, body: Record<string, unknown>, key = ADMIN) {
  const task = await target.createTask(body, { Authorization: `Bearer ${key}` });
  const socket = await target.watch(task.id, `api_key=${key}`);
  const result = await socket.result();
  socket.close();
  await socket.closed;
  return { task, socket, result };
}

describe("GET /metrics", () => {
  test("is a valid exposition whose values move as tasks run, watchers connect and the store writes", async () => {
    server = await startTestServer({
      config: { apiKey: ADMIN },
      agents: [{ model: "demo/react", tools: ["calculator"] }, { model: "demo/react", tools: ["calculator"], max_steps: 1 }],
    });
    const before = await scrape(server);
    for (const name of [
      "agentkit_tasks_finished_total",
      "agentkit_tasks_queued",
      "agentkit_tasks_running",
      "agentkit_watchers",
      "agentkit_frames_published_total",
      "agentkit_slow_client_closes_total",
      "agentkit_model_requests_total",
      "agentkit_model_request_errors_total",
      "agentkit_model_request_duration_seconds",
      "agentkit_model_tokens_total",
      "agentkit_tool_calls_total",
      "agentkit_tool_errors_total",
      "agentkit_tool_call_duration_seconds",
      "agentkit_store_write_duration_seconds",
    ]) {
      expect(before.has(name)).toBe(true);
    }
    expect(before.get("agentkit_tasks_finished_total")!.type).toBe("counter");
    expect(before.get("agentkit_model_request_duration_seconds")!.type).toBe("histogram");
    expect(before.get("agentkit_watchers")!.type).toBe("gauge");
    expect(valueOf(before, "agentkit_tasks_finished_total", { status: "completed", stop_reason: "final_answer" })).toBe(0);

    // A task with a calculator call, watched over WebSocket; its usage is the tokens' increase.
    const task = await server.createTask({ input: "What is 17*23?" }, { Authorization: `Bearer ${ADMIN}` });
    const socket = await server.watch(task.id, `api_key=${ADMIN}`);
    const result = await socket.result();
    const watching = await scrape(server);
    expect(valueOf(watching, "agentkit_watchers", { transport: "websocket" })).toBe(1);
    socket.close();
    await socket.closed;
    await until(async () => valueOf(await scrape(server!), "agentkit_watchers", { transport: "websocket" }) === 0, "the watcher gauge drops");

    // A task stopped by max_steps (the second agent allows one step, and the demo model calls a tool first).
    const stopped = await runTask(server, { input: "What is 2+2?", agent: "agent1" });
    expect((stopped.result.data as { status: string }).status).toBe("failed");

    const after = await scrape(server);
    const usage = (result.data as { usage: { input_tokens: number; output_tokens: number } }).usage;
    const stoppedUsage = (stopped.result.data as { usage: { input_tokens: number; output_tokens: number } }).usage;
    expect(valueOf(after, "agentkit_tasks_submitted_total")).toBe(2);
    expect(valueOf(after, "agentkit_tasks_finished_total", { status: "completed", stop_reason: "final_answer" })).toBe(1);
    expect(valueOf(after, "agentkit_tasks_finished_total", { status: "failed", stop_reason: "max_steps" })).toBe(1);
    expect(valueOf(after, "agentkit_task_duration_seconds_count", { status: "completed" })).toBe(1);
    const model = { provider: "demo", model: "react" };
    expect(valueOf(after, "agentkit_model_requests_total", model)).toBe(3); // two steps + one
    expect(valueOf(after, "agentkit_model_request_duration_seconds_count", model)).toBe(3);
    expect(valueOf(after, "agentkit_model_tokens_total", { ...model, type: "input" })).toBe(usage.input_tokens + stoppedUsage.input_tokens);
    expect(valueOf(after, "agentkit_model_tokens_total", { ...model, type: "output" })).toBe(usage.output_tokens + stoppedUsage.output_tokens);
    expect(valueOf(after, "agentkit_tool_calls_total", { tool: "calculator" })).toBe(1); // max_steps stops before the second task's tool runs
    expect(valueOf(after, "agentkit_tool_call_duration_seconds_count", { tool: "calculator" })).toBe(1);
    // Every durable frame of both tasks went through the store, then out.
    const firstLog = (result as { seq: number }).seq;
    const secondLog = (stopped.result as { seq: number }).seq;
    expect(valueOf(after, "agentkit_frames_published_total", { kind: "durable" })).toBe(firstLog + secondLog);
    // Live-only frames go out only to an audience: exactly the deltas the one watcher received
    // (an instant model may stream some before it subscribed; the second task had no watcher).
    const deltasSeen = socket.frames.filter((frame) => frame.type === "delta").length;
    expect(valueOf(after, "agentkit_frames_published_total", { kind: "delta" })).toBe(deltasSeen);
    expect(valueOf(after, "agentkit_store_appended_events_total")).toBe(firstLog - 1 + secondLog - 1);
    expect(valueOf(after, "agentkit_store_write_duration_seconds_count", { operation: "finish" })).toBe(2);
    expect(valueOf(after, "agentkit_tasks_running")).toBe(0);
    expect(valueOf(after, "agentkit_tasks_queued")).toBe(0);
    expect(valueOf(after, "agentkit_task_runs_started_total", { reason: "first" })).toBe(2);
    expect(valueOf(after, "agentkit_task_runs_ended_total", { outcome: "finished" })).toBe(2);
  });

  test("model errors by code, tool errors by tool and code; a tool the model made up is _unknown", async () => {
    const failing = {
      id: "scripted/failing",
      async *stream() {
        throw new ProviderError({ code: "http_error", modelId: "scripted/failing", message: "HTTP 429: slow down", status: 429, retryable: true, attempts: 4 });
      },
    };
    const tools = createScriptedModel([
      callTools([
        { id: "c1", name: "calculator", arguments: '{"expression":"1+"}' },
        { id: "c2", name: "made_up_tool_8f3a", arguments: "{}" },
        { id: "c3", name: "calculator", arguments: '{"expression":"2*3"}' },
      ]),
      answer("done"),
    ]);
    server = await startTestServer({
      models: { failing: failing as never, tools },
      agents: [{ model: "test/failing" }, { model: "test/tools", tools: ["calculator"] }],
    });
    const failed = await runTask(server, { input: "hi" });
    expect((failed.result.data as { status: string; error: { code: string } }).error.code).toBe("rate_limited");
    await runTask(server, { input: "hi", agent: "agent1" });

    const metrics = await scrape(server, undefined);
    expect(valueOf(metrics, "agentkit_model_request_errors_total", { provider: "scripted", model: "failing", code: "rate_limited" })).toBe(1);
    expect(valueOf(metrics, "agentkit_model_requests_total", { provider: "scripted", model: "failing" })).toBe(1);
    expect(valueOf(metrics, "agentkit_model_requests_total", { provider: "scripted", model: "test" })).toBe(2);
    expect(valueOf(metrics, "agentkit_tasks_finished_total", { status: "failed", stop_reason: "error" })).toBe(1);
    expect(valueOf(metrics, "agentkit_tool_calls_total", { tool: "calculator" })).toBe(2);
    expect(valueOf(metrics, "agentkit_tool_calls_total", { tool: "_unknown" })).toBe(1);
    expect(valueOf(metrics, "agentkit_tool_errors_total", { tool: "calculator", code: "execution_failed" }) + valueOf(metrics, "agentkit_tool_errors_total", { tool: "calculator", code: "invalid_arguments" })).toBe(1);
    expect(valueOf(metrics, "agentkit_tool_errors_total", { tool: "_unknown", code: "unknown_tool" })).toBe(1);
    const text = await (await server.http("/metrics")).text();
    expect(text).not.toContain("made_up_tool");
  });

  test("live-only frames are counted as they go out to someone: a watcher's deltas, and none for a task nobody watches for them", async () => {
    server = await startTestServer({ config: { apiKey: ADMIN }, agents: [{ model: "demo/slow" }] });
    // A watcher that takes deltas, on a task that types for a while: it gets deltas, and each was counted once.
    const watched = await runTask(server, { input: "What is 2+2?" });
    const deltasSeen = watched.socket.frames.filter((frame) => frame.type === "delta").length;
    expect(deltasSeen).toBeGreaterThan(0);
    expect(valueOf(await scrape(server), "agentkit_frames_published_total", { kind: "delta" })).toBe(deltasSeen);
    // A watcher that opted out (deltas=0): the task still types, but no delta goes out.
    const task = await server.createTask({ input: "What is 2+2?" }, { Authorization: `Bearer ${ADMIN}` });
    const quiet = await server.watch(task.id, `api_key=${ADMIN}&deltas=0`);
    await quiet.result();
    quiet.close();
    await quiet.closed;
    expect(quiet.frames.filter((frame) => frame.type === "delta")).toEqual([]);
    expect(valueOf(await scrape(server), "agentkit_frames_published_total", { kind: "delta" })).toBe(deltasSeen);
  });

  test("a run that goes on after a person decided is counted as `continued`, not as a first run", async () => {
    server = await startTestServer({ agents: [{ name: "ops", model: "demo/react", tools: ["calculator"], approval: ["calculator"] }] });
    const task = await server.createTask({ input: "What is 6*7?", agent: "ops" });
    const statusOf = async () => ((await (await server!.http(`/tasks/${task.id}`)).json()) as { status: string }).status;
    await until(async () => (await statusOf()) === "waiting", "the task waits for approval");
    const events = (await (await server.http(`/tasks/${task.id}/events`)).json()) as { events: { data?: { event_type: string; data: { id: string } } }[] };
    const asked = events.events.find((frame) => frame.data?.event_type === "approval_requested")!;
    const decided = await server.http(`/tasks/${task.id}/approvals`, { method: "POST", json: { call_id: asked.data!.data.id, decision: "approve" } });
    expect(decided.status).toBe(200);
    await until(async () => (await statusOf()) === "completed", "the task completes");
    const after = await scrape(server, undefined);
    expect(valueOf(after, "agentkit_task_runs_started_total", { reason: "first" })).toBe(1);
    expect(valueOf(after, "agentkit_task_runs_started_total", { reason: "continued" })).toBe(1);
  });

  test("SSE watchers are counted too", async () => {
    const slow = createScriptedModel([
      async function* () {
        await Bun.sleep(300);
        yield { type: "text-delta", text: "ok" };
        yield { type: "finish", finishReason: "stop", usage: { inputTokens: 1, outputTokens: 1 } };
      },
    ]);
    server = await startTestServer({ models: { slow }, agents: [{ model: "test/slow" }] });
    const task = await server.createTask({ input: "hi" });
    const controller = new AbortController();
    const response = await server.http(`/tasks/${task.id}/events`, { headers: { accept: "text/event-stream" }, signal: controller.signal });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    await reader.read();
    expect(valueOf(await scrape(server, undefined), "agentkit_watchers", { transport: "sse" })).toBe(1);
    controller.abort();
    await reader.cancel().catch(() => {});
    await until(async () => valueOf(await scrape(server!, undefined), "agentkit_watchers", { transport: "sse" }) === 0, "the SSE watcher gauge drops");
  });

  test("needs the admin key when keys are set: none 401, a tenant key or a share token 403, never from the URL", async () => {
    server = await startTestServer({ config: { apiKey: ADMIN, apiKeys: `alice:${TENANT}` } });
    expect((await server.http("/metrics")).status).toBe(401);
    expect((await server.http("/metrics", { headers: { Authorization: "Bearer wrong-key-000000" } })).status).toBe(401);
    expect((await server.http(`/metrics?api_key=${ADMIN}`)).status).toBe(401);
    const tenant = await server.http("/metrics", { headers: { "X-API-Key": TENANT } });
    expect(tenant.status).toBe(403);
    expect(((await tenant.json()) as { error: { code: string } }).error.code).toBe("forbidden");
    const task = await server.createTask({ input: "What is 1+1?" }, { Authorization: `Bearer ${TENANT}` });
    const share = await server.http(`/tasks/${task.id}/share`, { method: "POST", headers: { Authorization: `Bearer ${TENANT}` } });
    expect(share.status).toBe(201);
    const { token } = (await share.json()) as { token: string };
    expect((await server.http("/metrics", { headers: { Authorization: `Bearer ${token}` } })).status).toBe(403);
    expect((await server.http("/metrics", { headers: { "X-API-Key": ADMIN } })).status).toBe(200);
    expect((await server.http("/metrics", { method: "POST", headers: { "X-API-Key": ADMIN } })).status).toBe(405);
  });

  test("is open in open mode", async () => {
    server = await startTestServer();
    const response = await server.http("/metrics");
    expect(response.status).toBe(200);
    parseExposition(await response.text());
  });
});

describe("the exposition", () => {
  test("escapes label values (backslash, quote, line feed) and caps a family's series", () => {
    const metrics = createMetrics({ version: 'v"1\\2\n3' });
    const weird = 'we"ird\\name\nx';
    metrics.telemetry.modelCall({ taskId: "t", agent: "a", model: `prov/${weird}`, startedAt: 0, durationMs: 12, inputTokens: 3, outputTokens: 4, error: "rate_limited" });
    for (let index = 0; index < MAX_SERIES + 50; index++) {
      metrics.telemetry.toolCall({ taskId: "t", agent: "a", tool: `tool_${index}`, known: true, callId: "c", startedAt: 0, durationMs: 1 });
    }
    const families = parseExposition(metrics.render());
    expect(valueOf(families, "agentkit_build_info", { version: 'v"1\\2\n3' })).toBe(1);
    expect(valueOf(families, "agentkit_model_tokens_total", { provider: "prov", model: weird, type: "output" })).toBe(4);
    expect(valueOf(families, "agentkit_model_request_errors_total", { provider: "prov", model: weird, code: "rate_limited" })).toBe(1);
    expect(valueOf(families, "agentkit_model_request_duration_seconds_sum", { provider: "prov", model: weird })).toBeCloseTo(0.012);
    const calls = families.get("agentkit_tool_calls_total")!.samples;
    expect(calls.length).toBe(MAX_SERIES + 1);
    expect(valueOf(families, "agentkit_tool_calls_total", { tool: "_other" })).toBe(50);
  });

  test("the parser rejects what a scraper would", () => {
    const ok = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n";
    expect(parseExposition(ok).get("a_total")!.samples[0]!.value).toBe(1);
    const bad = [
      "a_total 1\n", // no HELP/TYPE
      ok.replace("a_total 1", 'a_total{x="\\q"} 1'), // bad escape
      ok.replace("a_total 1", "a_total one"), // not a float
      ok.replace("a_total 1", "a_total -1"), // a negative counter
      ok + "a_total 2\n".replace("a_total", "a_total"), // duplicate series
      ok.slice(0, -1), // no final line feed
      "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", // not cumulative
      "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", // no +Inf
      "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n", // +Inf != count
    ];
    for (const text of bad) expect(() => parseExposition(text)).toThrow();
  });
});
