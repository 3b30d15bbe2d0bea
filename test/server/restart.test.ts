/** Restarting on the same data dir: tasks and events survive; leftovers of a crash are settled. */
import { afterEach, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import { until, within } from "../helpers/deferred.ts";
import { callTools, answer, createScriptedModel, type ScriptStep } from "../helpers/scripted-model.ts";
import { startTestServer, tempDir, type TestServer } from "../helpers/server.ts";
import { createGateTool } from "../helpers/tools.ts";

let server: TestServer | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await server?.close();
  server = undefined;
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

test("a restart on the same data dir shows the same tasks and events", async () => {
  const dataDir = tempDir();
  dirs.push(dataDir);
  server = await startTestServer({ dataDir });
  const task = await server.createTask({ input: "What is 7 * 6?" });
  await (await server.watch(task.id)).result();
  const before = await (await server.http(`/tasks/${task.id}`)).json();
  const eventsBefore = await (await server.http(`/tasks/${task.id}/events`)).text();
  await server.close();

  server = await startTestServer({ dataDir });
  expect(await (await server.http(`/tasks/${task.id}`)).json()).toEqual(before);
  expect(await (await server.http(`/tasks/${task.id}/events`)).text()).toBe(eventsBefore);
  const late = await server.watch(task.id);
  await late.result();
  expect(late.seqs).toEqual([1, 2, 3, 4, 5, 6]);
});

/** The durable frames of a task, parsed. */
async function storedFrames(server: TestServer, id: string) {
  const body = (await (await server.http(`/tasks/${id}/events?limit=1000`)).json()) as { events: { seq: number; type: string; data: Record<string, any> }[] };
  return body.events;
}

test("after a crash: a task left running resumes from its log (a 'resumed' event, no gap); a queued one runs", async () => {
  const dataDir = tempDir();
  dirs.push(dataDir);
  // Leave the store as a killed process would: one task mid-run (with events), one still queued.
  const store = createSqliteStore({ dataDir });
  await store.createTask({ id: "was-running", owner: "anonymous", agent: "default", input: "What is 1 + 1?", metadata: {}, createdAt: new Date() });
  await store.createTask({ id: "was-queued", owner: "anonymous", agent: "default", input: "What is 3 + 4?", metadata: {}, createdAt: new Date() });
  await store.markRunning("was-running", new Date());
  await store.appendEvents("was-running", [
    { seq: 1, frame: JSON.stringify({ type: "step", seq: 1, data: { event_type: "usage", step: 1, data: { input_tokens: 3, output_tokens: 4 }, timestamp: new Date().toISOString() } }) },
  ]);
  await store.close();

  server = await startTestServer({ dataDir });
  const watcher = await server.watch("was-running");
  const result = await watcher.result();
  expect(result.data).toMatchObject({ status: "completed", output: "1 + 1 = 2" });
  expect(watcher.seqs).toEqual(Array.from({ length: result.seq! }, (_, index) => index + 1));
  const frames = await storedFrames(server, "was-running");
  expect(frames[1]).toMatchObject({ seq: 2, type: "step", data: { event_type: "resumed", data: { reason: "restart", after_seq: 1, attempt: 2 } } });
  // The tokens of the step that was cut off were spent: they count.
  expect((result.data as { usage: { input_tokens: number } }).usage.input_tokens).toBeGreaterThan(3);

  const queued = await server.watch("was-queued");
  expect((await queued.result()).data).toMatchObject({ status: "completed", output: "3 + 4 = 7" });
});

test("after a crash, a task of an agent with on_interrupt 'fail' ends 'interrupted' with a result", async () => {
  const dataDir = tempDir();
  dirs.push(dataDir);
  const store = createSqliteStore({ dataDir });
  await store.createTask({ id: "was-running", owner: "anonymous", agent: "default", input: "1+1", metadata: {}, createdAt: new Date() });
  await store.markRunning("was-running", new Date());
  await store.appendEvents("was-running", [{ seq: 1, frame: JSON.stringify({ type: "step", seq: 1, data: { event_type: "thought", step: 1, data: { text: "hm" }, timestamp: new Date().toISOString() } }) }]);
  await store.close();

  server = await startTestServer({ dataDir, agents: [{ on_interrupt: "fail" }] });
  const running = (await (await server.http("/tasks/was-running")).json()) as Record<string, unknown>;
  expect(running).toMatchObject({ status: "failed", stop_reason: "interrupted", last_seq: 2 });
  const watcher = await server.watch("was-running");
  const result = await watcher.result();
  expect(result).toMatchObject({ seq: 2, data: { status: "failed", stop_reason: "interrupted", error: { code: "interrupted", retryable: true } } });
  expect(watcher.seqs).toEqual([1, 2]);
});

test("a graceful stop hands a running task over: 1001 and no result; the next start resumes it, its cut tool call reported", async () => {
  const dataDir = tempDir();
  dirs.push(dataDir);
  const gate = createGateTool();
  const agents = [{ model: "test/m", tools: ["wait"] }];
  const model = createScriptedModel([callTools([{ id: "w", name: "wait", arguments: "{}" }])]);
  server = await startTestServer({ dataDir, models: { m: model }, tools: [gate.tool], agents });
  const first = await server.createTask({ input: "first" });
  const watcher = await server.watch(first.id);
  await within(gate.started, 5000, "the first task");
  await server.close({ keepData: true });
  expect((await watcher.closed).code).toBe(1001);
  expect(watcher.frames.some((frame) => frame.type === "result")).toBe(false);

  // The next start resumes it: the model sees the interrupted call and answers.
  const after = createScriptedModel([answer("picked up where it stopped")]);
  server = await startTestServer({ dataDir, models: { m: after }, tools: [gate.tool], agents });
  const again = await server.watch(first.id);
  expect((await again.result()).data).toMatchObject({ status: "completed", output: "picked up where it stopped" });
  const frames = await storedFrames(server, first.id);
  const types = frames.map((frame) => frame.data.event_type ?? frame.type);
  expect(types).toEqual(["usage", "tool_call", "resumed", "tool_error", "usage", "result"]);
  expect(frames[2]!.data.data).toMatchObject({ reason: "restart", not_rerun: ["w"], rerun: [] });
  expect(frames[3]!.data.data).toMatchObject({ id: "w", error: { code: "interrupted" } });
  // The model was shown the interruption as the tool's observation.
  const seen = after.requests[0]!.messages.at(-1)!;
  expect(seen).toMatchObject({ role: "tool", toolCallId: "w", isError: true });
  expect(gate.calls).toBe(1); // the non-idempotent tool was not run again
});

test("with on_interrupt 'fail', a graceful stop ends running tasks for their watchers, then closes them with 1001; queued tasks run on the next start", async () => {
  const dataDir = tempDir();
  dirs.push(dataDir);
  const gate = createGateTool();
  const model = createScriptedModel([callTools([{ id: "w", name: "wait", arguments: "{}" }]), answer("second ran")]);
  const agents = [{ model: "test/m", tools: ["wait"], on_interrupt: "fail" as const }];
  server = await startTestServer({ dataDir, models: { m: model }, tools: [gate.tool], agents, config: { maxConcurrentTasks: 1 } });
  const first = await server.createTask({ input: "first" });
  const second = await server.createTask({ input: "second" });
  const watcher = await server.watch(first.id);
  await within(gate.started, 5000, "the first task");
  await server.close({ keepData: true });
  expect((await watcher.result()).data).toMatchObject({ status: "failed", stop_reason: "interrupted" });
  expect((await watcher.closed).code).toBe(1001);

  server = await startTestServer({ dataDir, models: { m: model }, tools: [gate.tool], agents });
  const again = await server.watch(second.id);
  expect((await again.result()).data).toMatchObject({ status: "completed", output: "second ran" });
});

test("a task whose log cannot be read back is not resumed: it ends 'interrupted', saying why", async () => {
  const dataDir = tempDir();
  dirs.push(dataDir);
  const store = createSqliteStore({ dataDir });
  await store.createTask({ id: "garbled", owner: "anonymous", agent: "default", input: "1+1", metadata: {}, createdAt: new Date() });
  await store.markRunning("garbled", new Date());
  // A thought before its step's usage: never written by the runner, so the log is not trusted.
  await store.appendEvents("garbled", [{ seq: 1, frame: JSON.stringify({ type: "step", seq: 1, data: { event_type: "thought", step: 1, data: { text: "hm" }, timestamp: new Date().toISOString() } }) }]);
  await store.close();

  server = await startTestServer({ dataDir });
  const watcher = await server.watch("garbled");
  const result = await watcher.result();
  expect(result).toMatchObject({ seq: 2, data: { status: "failed", stop_reason: "interrupted", error: { code: "interrupted" } } });
  expect((result.data as { error: { message: string } }).error.message).toContain("could not be resumed");
});

test("a stop that hands running tasks over ends every open event stream (SSE, A2A, AG-UI) as a whole response, answers an MCP call and a blocking A2A send that follow their tasks, and cancels none of their tasks", async () => {
  const dataDir = tempDir();
  dirs.push(dataDir);
  const gate = createGateTool();
  // Every task calls the gate (it holds them all mid-run), then answers.
  const step = (request: Parameters<ScriptStep>[0]) =>
    request.messages.some((message) => message.role === "tool") ? answer("done")(request) : callTools([{ id: "w", name: "wait", arguments: "{}" }])(request);
  const agents = [{ model: "test/m", tools: ["wait"], on_interrupt: "resume" as const }];
  server = await startTestServer({ dataDir, models: { m: createScriptedModel([step], { repeatLast: true }) }, tools: [gate.tool], agents });
  const task = await server.createTask({ input: "wait" });
  const sse = await server.http(`/tasks/${task.id}/events`, { headers: { Accept: "text/event-stream" } });
  const a2a = await server.http("/a2a/default", {
    method: "POST",
    json: { jsonrpc: "2.0", id: 1, method: "message/stream", params: { message: { role: "user", messageId: "m1", parts: [{ kind: "text", text: "wait" }] } } },
  });
  const agui = await server.http("/ag-ui/default", {
    method: "POST",
    headers: { Accept: "text/event-stream" },
    json: { threadId: "t1", runId: "r1", messages: [{ id: "u1", role: "user", content: "wait" }], tools: [], context: [], state: {}, forwardedProps: {} },
  });
  const blocking = server.http("/a2a/default", {
    method: "POST",
    json: { jsonrpc: "2.0", id: 2, method: "message/send", params: { message: { role: "user", messageId: "m2", parts: [{ kind: "text", text: "wait" }] }, configuration: { blocking: true } } },
  });
  const mcp = await server.http("/mcp", {
    method: "POST",
    headers: { accept: "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18" },
    json: { jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "default", arguments: { input: "wait" }, _meta: { progressToken: "p" } } },
  });
  for (const response of [sse, a2a, agui, mcp]) expect(response.headers.get("content-type")).toStartWith("text/event-stream");
  await until(() => gate.calls === 5, "the five tasks to reach the gate");
  const bodies = [sse, a2a, agui, mcp].map((response) => response.text());
  bodies.push(blocking.then((response) => response.text()));
  // No stream may take its end for its client leaving (AG-UI and MCP cancel their task then).
  const cancels: string[] = [];
  const cancel = server.runner.cancel.bind(server.runner);
  server.runner.cancel = (taskId) => (cancels.push(taskId), cancel(taskId));

  await server.close({ keepData: true });
  // Each response ended whole (a connection cut mid-stream rejects here), without a result.
  const [sseText = "", a2aText = "", aguiText = "", mcpText = "", blockingText = ""] = await within(Promise.all(bodies), 10_000, "the streams to end");
  expect(cancels).toEqual([]);
  // The MCP call is answered: the task goes on.
  const called = JSON.parse(mcpText.split("\n").filter((line) => line.startsWith("data: ")).at(-1)!.slice(6)) as { id: number; result: { isError: boolean; _meta: Record<string, unknown> } };
  expect(called).toMatchObject({ id: 7, result: { isError: true, _meta: { "agentkit/status": "running" } } });
  // So is the blocking A2A send: the task as it is.
  expect(JSON.parse(blockingText)).toMatchObject({ id: 2, result: { kind: "task", status: { state: "working" } } });
  expect(sseText).toContain('"event_type":"tool_call"');
  expect(sseText).not.toContain('"type":"result"');
  expect(a2aText).toContain('"state":"working"');
  expect(aguiText).toContain("RUN_STARTED");
  expect(aguiText).not.toContain("RUN_FINISHED");
  // An AG-UI run ends with RUN_ERROR (a client must not take a cut run for a whole one), the last event.
  const aguiEvents = aguiText.split("\n").filter((line) => line.startsWith("data: ")).map((line) => JSON.parse(line.slice(6)) as { type: string; code?: string; message?: string });
  expect(aguiEvents.at(-1)).toMatchObject({ type: "RUN_ERROR", code: "server_stopping" });
  expect(aguiEvents.at(-1)!.message).toContain("goes on");

  // None was cancelled: all resume at the next start and complete (the interrupted gate call is
  // answered as interrupted).
  gate.release();
  server = await startTestServer({ dataDir, models: { m: createScriptedModel([step], { repeatLast: true }) }, tools: [gate.tool], agents });
  const statuses = async () => ((await (await server!.http("/tasks?limit=10")).json()) as { tasks: { status: string }[] }).tasks.map((entry) => entry.status);
  await until(async () => (await statuses()).every((status) => status !== "running" && status !== "queued"), "the tasks to end", 10_000);
  expect(await statuses()).toEqual(["completed", "completed", "completed", "completed", "completed"]);
}, 30_000);
