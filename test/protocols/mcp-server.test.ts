/**
 * agentkit as an MCP server (`POST /mcp`), driven by the MCP SDK's own `Client` over its
 * `StreamableHTTPClientTransport` against a real server on 127.0.0.1: the agents as tools, a call
 * as a task (visible over REST), progress, cancel (the SDK's `notifications/cancelled`, and a
 * client that closes the call's stream), failures, waiting for a person, keys and tenants.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult, Progress } from "@modelcontextprotocol/sdk/types.js";
import type { ModelStreamPart } from "../../src/llm/model.ts";
import { AgentDefinition } from "../../src/agents/agent.ts";
import { loadConfig } from "../../src/config/config.ts";
import { silentLogger } from "../../src/lib/logger.ts";
import { callKey, createCallRegistry } from "../../src/protocols/mcp/calls.ts";
import { startServer, type RunningServer } from "../../src/server/serve.ts";
import { createPostgresStore } from "../../src/store/postgres-store.ts";
import { describePostgres } from "../helpers/postgres.ts";
import { answer, callTools, createScriptedModel } from "../helpers/scripted-model.ts";
import { startTestServer, tempDir, type TestServer, type TestServerOptions } from "../helpers/server.ts";
import { ADMIN, ALICE, BOB, SECRET, as } from "../helpers/tenants.ts";

const TYPED_SCHEMA = {
  type: "object",
  properties: { answer: { type: "integer" }, unit: { type: "string" } },
  required: ["answer"],
  additionalProperties: false,
};

const AGENTS: TestServerOptions["agents"] = [
  { name: "default", description: "Does arithmetic with a calculator" },
  { name: "slow", model: "demo/slow", description: "Types slowly" },
  { name: "typed", model: "test/typed", output_schema: TYPED_SCHEMA },
  { name: "listy", model: "test/listy", output_schema: { type: "array", items: { type: "string" } } },
  { name: "brief", max_steps: 1 },
  { name: "careful", approval: ["calculator"] },
  { name: "hold", model: "test/hold" },
];

/** Calls the calculator, then holds its second step until the task is aborted. */
function holdingModel() {
  const hold = async function* (request: { abortSignal: AbortSignal }): AsyncIterable<ModelStreamPart> {
    await new Promise((resolve) => request.abortSignal.addEventListener("abort", resolve, { once: true }));
    request.abortSignal.throwIfAborted();
  };
  return createScriptedModel([callTools([{ id: "c1", name: "calculator", arguments: JSON.stringify({ expression: "1+1" }) }], "Adding first."), hold], { repeatLast: true });
}

/** Reads a response stream until its text holds `marker`; throws if it ends first. */
async function readUntil(reader: { read(): Promise<{ done: boolean; value?: Uint8Array }> }, marker: string): Promise<string> {
  let text = "";
  while (!text.includes(marker)) {
    const chunk = await reader.read();
    if (chunk.done) throw new Error(`the stream ended: ${text}`);
    text += new TextDecoder().decode(chunk.value);
  }
  return text;
}

let server: TestServer | undefined;
const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close().catch(() => {})));
  await server?.close();
  server = undefined;
});

async function start(config: TestServerOptions["config"] = {}): Promise<TestServer> {
  server = await startTestServer({
    agents: AGENTS,
    models: {
      typed: createScriptedModel([answer('{"answer": 42, "unit": "none"}')], { repeatLast: true }),
      listy: createScriptedModel([answer('["a", "b"]')], { repeatLast: true }),
      hold: holdingModel(),
    },
    config,
  });
  return server;
}

async function connect(key?: string): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${server!.baseUrl}/mcp`), {
    requestInit: key ? { headers: as(key) } : undefined,
  });
  const client = new Client({ name: "agentkit-test", version: "1.0.0" });
  clients.push(client);
  await client.connect(transport);
  return { client, transport };
}

async function rest<T = Record<string, any>>(path: string, key?: string): Promise<{ status: number; body: T }> {
  const response = await server!.http(path, { headers: key ? as(key) : {} });
  return { status: response.status, body: (await response.json()) as T };
}

/** The task once it ended (polls REST: the end is observed, not timed). */
async function ended(taskId: string, key?: string): Promise<Record<string, any>> {
  for (;;) {
    const { body } = await rest(`/tasks/${taskId}`, key);
    if (["completed", "failed", "cancelled", "timed_out"].includes(body.status)) return body;
    await Bun.sleep(20);
  }
}

async function until<T>(check: () => T | undefined | Promise<T | undefined>): Promise<T> {
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    await Bun.sleep(10);
  }
}

const textOf = (result: CallToolResult) => result.content.map((block) => (block.type === "text" ? block.text : "")).join("");
const taskIdOf = (result: CallToolResult) => result._meta?.["agentkit/task_id"] as string;

describe("agentkit as an MCP server", () => {
  test("lists one tool per agent: name, description, the input schema, and an output schema for structured agents", async () => {
    await start();
    const { client } = await connect();
    expect(client.getServerVersion()?.name).toBe("agentkit");
    expect(client.getServerCapabilities()?.tools).toBeDefined();
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name)).toEqual(["default", "slow", "typed", "listy", "brief", "careful", "hold"]);
    const byName = Object.fromEntries(tools.map((tool) => [tool.name, tool]));
    expect(byName.default!.description).toBe("Does arithmetic with a calculator");
    expect(byName.typed!.description).toContain("typed"); // no description configured: a generated one
    for (const tool of tools) {
      expect(tool.inputSchema).toMatchObject({
        type: "object",
        properties: { input: { type: "string" }, thread_id: { type: "string" } },
        required: ["input"],
      });
    }
    expect(byName.default!.outputSchema).toBeUndefined();
    expect(byName.typed!.outputSchema).toEqual(TYPED_SCHEMA as never);
    // Not an object: wrapped, as MCP wants an object at the root.
    expect(byName.listy!.outputSchema).toMatchObject({ type: "object", properties: { result: { type: "array" } }, required: ["result"] });
  });

  test("a call runs a task on the agent and answers with its final answer; the task id is in _meta and the task is on REST", async () => {
    await start();
    const { client } = await connect();
    const result = (await client.callTool({ name: "default", arguments: { input: "What is 2*21?" } })) as CallToolResult;
    expect(result.isError).toBeFalsy();
    expect(textOf(result)).toBe("2*21 = 42");
    expect(result._meta?.["agentkit/status"]).toBe("completed");
    const taskId = taskIdOf(result);
    expect(taskId).toMatch(/^[0-9a-f-]{36}$/);
    const { status, body: task } = await rest(`/tasks/${taskId}`);
    expect(status).toBe(200);
    expect(task).toMatchObject({ id: taskId, agent: "default", input: "What is 2*21?", status: "completed", output: "2*21 = 42", owner: "anonymous" });
    // The same task, watched through the native protocol: its log has the calculator call.
    const { body: events } = await rest<{ events: { type: string; data: any }[] }>(`/tasks/${taskId}/events`);
    expect(events.events.some((frame) => frame.type === "step" && frame.data.event_type === "tool_call" && frame.data.data.name === "calculator")).toBe(true);
  });

  test("structured agents answer with structuredContent (validated by the SDK client against the output schema)", async () => {
    await start();
    const { client } = await connect();
    const typed = (await client.callTool({ name: "typed", arguments: { input: "the answer?" } })) as CallToolResult;
    expect(typed.isError).toBeFalsy();
    expect(typed.structuredContent).toEqual({ answer: 42, unit: "none" });
    expect(JSON.parse(textOf(typed))).toEqual({ answer: 42, unit: "none" });
    const listy = (await client.callTool({ name: "listy", arguments: { input: "a list" } })) as CallToolResult;
    expect(listy.structuredContent).toEqual({ result: ["a", "b"] });
  });

  test("progress notifications while a multi-step task runs: increasing, with its thoughts and tool calls", async () => {
    await start();
    const { client } = await connect();
    const progress: Progress[] = [];
    const result = (await client.callTool({ name: "slow", arguments: { input: "What is 6*7?" } }, undefined, {
      onprogress: (update) => progress.push(update),
    })) as CallToolResult;
    expect(textOf(result)).toBe("6*7 = 42");
    expect(progress.length).toBeGreaterThanOrEqual(2);
    for (let index = 1; index < progress.length; index++) expect(progress[index]!.progress).toBeGreaterThan(progress[index - 1]!.progress);
    const messages = progress.map((update) => update.message ?? "");
    expect(messages.some((message) => message.includes("calculator"))).toBe(true);
    // The last durable step event before the result is never dropped by the throttle.
    expect(messages.at(-1)).toBe('step 1: calculator → {"expression":"6*7","value":42}');
    // Without a progress token, no progress is sent (the SDK would report an unknown token).
    const errors: Error[] = [];
    client.onerror = (error) => errors.push(error);
    await client.callTool({ name: "default", arguments: { input: "What is 1+1?" } });
    expect(errors).toEqual([]);
  });

  test("aborting the call (the SDK sends notifications/cancelled) cancels the task, and it stays cancelled", async () => {
    await start();
    const { client } = await connect();
    const controller = new AbortController();
    let taskId: string | undefined;
    const call = client.callTool({ name: "slow", arguments: { input: "Tell me a long story about the sea and its ships" } }, undefined, {
      signal: controller.signal,
      onprogress: () => {},
    });
    call.catch(() => {});
    // Once the task runs (its thought is being typed): find it over REST, then abort the call.
    taskId = await until(async () => {
      const { body } = await rest<{ tasks: { id: string; agent: string; status: string }[] }>("/tasks?status=running");
      return body.tasks.find((task) => task.agent === "slow")?.id;
    });
    controller.abort("changed my mind");
    await expect(call).rejects.toThrow();
    const task = await ended(taskId);
    expect(task.status).toBe("cancelled");
    expect(task.stop_reason).toBe("cancelled");
    // A cancelled task never turns completed.
    await Bun.sleep(500);
    expect((await rest(`/tasks/${taskId}`)).body.status).toBe("cancelled");
    // The client is still usable.
    expect(textOf((await client.callTool({ name: "default", arguments: { input: "What is 2*3?" } })) as CallToolResult)).toBe("2*3 = 6");
  });

  test("a client that closes the call's response stream cancels the task", async () => {
    await start();
    const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" };
    const controller = new AbortController();
    const response = await fetch(`${server!.baseUrl}/mcp`, {
      method: "POST",
      headers: { ...headers, "mcp-protocol-version": "2025-06-18" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "hold", arguments: { input: "add, then wait" }, _meta: { progressToken: "p" } } }),
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/event-stream");
    // Read until the progress notification of the calculator's result: the task runs its second step.
    const reader = response.body!.getReader();
    const text = await readUntil(reader, "calculator →");
    expect(text).toContain('"progressToken":"p"');
    const { body } = await rest<{ tasks: { id: string; agent: string; status: string }[] }>("/tasks");
    const task = body.tasks.find((candidate) => candidate.agent === "hold")!;
    expect(task.status).toBe("running");
    controller.abort();
    expect((await ended(task.id)).status).toBe("cancelled");
  });

  test("a task that fails answers isError with the error; the task id is still in _meta", async () => {
    await start();
    const { client } = await connect();
    const result = (await client.callTool({ name: "brief", arguments: { input: "What is 2*21?" } })) as CallToolResult;
    expect(result.isError).toBe(true);
    const taskId = taskIdOf(result);
    const task = (await rest(`/tasks/${taskId}`)).body;
    expect(task.status).toBe("failed");
    expect(result._meta?.["agentkit/status"]).toBe("failed");
    expect(textOf(result)).toContain(task.error.code);
    expect(textOf(result)).toContain(task.error.message);
  });

  test("bad arguments and a task agentkit refuses are tool errors; an unknown tool is a protocol error", async () => {
    await start();
    const { client } = await connect();
    const empty = (await client.callTool({ name: "default", arguments: { input: "" } })) as CallToolResult;
    expect(empty.isError).toBe(true);
    expect(textOf(empty)).toContain("input");
    const lone = (await client.callTool({ name: "default", arguments: { input: "What is 1+1?\udc00" } })) as CallToolResult;
    expect(lone.isError).toBe(true);
    expect(textOf(lone)).toContain("not valid Unicode");
    const extra = (await client.callTool({ name: "default", arguments: { input: "hi", agent: "slow" } })) as CallToolResult;
    expect(extra.isError).toBe(true);
    const thread = (await client.callTool({ name: "default", arguments: { input: "hi", thread_id: "thr_nope" } })) as CallToolResult;
    expect(thread.isError).toBe(true);
    expect(textOf(thread)).toContain("not_found");
    // The SDK client reports it as "MCP error -32602: <message>": the message itself has no such prefix.
    const unknown = await client.callTool({ name: "nobody", arguments: { input: "hi" } }).catch((error: Error) => error);
    expect((unknown as Error).message).toStartWith("MCP error -32602: Unknown tool 'nobody'");
    // A call the protocol cannot take (no name, arguments not an object) is invalid params, not an internal error.
    for (const params of [{}, { name: 5 }, { name: "default", arguments: [1] }]) {
      const response = await server!.http("/mcp", {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/call", params }),
      });
      const text = await response.text();
      const answer = JSON.parse(text.slice(text.indexOf("{"), text.lastIndexOf("}") + 1)) as { id: number; error: { code: number } };
      expect(answer, JSON.stringify(params)).toMatchObject({ id: 9, error: { code: -32602 } });
    }
  });

  test("a call with thread_id continues the thread: the agent sees the conversation", async () => {
    await start();
    const { client } = await connect();
    const thread = (await (await server!.http("/threads", { method: "POST" })).json()) as { id: string };
    const first = (await client.callTool({ name: "default", arguments: { input: "What is 2*21?", thread_id: thread.id } })) as CallToolResult;
    const second = (await client.callTool({ name: "default", arguments: { input: "And 3*3?", thread_id: thread.id } })) as CallToolResult;
    const { body } = await rest<{ tasks: { id: string }[] }>(`/threads/${thread.id}`);
    expect(body.tasks.map((task) => task.id)).toEqual([taskIdOf(first), taskIdOf(second)]);
  });

  test("a task that waits for an approval answers isError saying where to decide; deciding there finishes the task", async () => {
    await start();
    const { client } = await connect();
    const result = (await client.callTool({ name: "careful", arguments: { input: "What is 2*21?" } })) as CallToolResult;
    expect(result.isError).toBe(true);
    expect(result._meta?.["agentkit/status"]).toBe("waiting");
    const taskId = taskIdOf(result);
    const waitingFor = result._meta?.["agentkit/waiting_for"] as { kind: string; call_id: string; name: string }[];
    expect(waitingFor).toEqual([expect.objectContaining({ kind: "approval", name: "calculator" })]);
    expect(textOf(result)).toContain(`POST /tasks/${taskId}/approvals`);
    expect(textOf(result)).toContain(waitingFor[0]!.call_id);
    expect((await rest(`/tasks/${taskId}`)).body.status).toBe("waiting");
    // The call returned: the task waits on (the closed stream does not cancel it), and goes on once decided.
    const decided = await server!.http(`/tasks/${taskId}/approvals`, { method: "POST", json: { call_id: waitingFor[0]!.call_id, decision: "approve" } });
    expect(decided.status).toBe(200);
    const task = await ended(taskId);
    expect(task).toMatchObject({ status: "completed", output: "2*21 = 42" });
  });

  test("keys: none or a wrong one is 401; a share token is refused; GET and DELETE are 405", async () => {
    await start({ apiKey: ADMIN, apiKeys: `alice:${ALICE},bob:${BOB}`, shareSecret: SECRET });
    await expect(connect()).rejects.toMatchObject({ code: 401 });
    await expect(connect("wrong-key-0001")).rejects.toMatchObject({ code: 401 });
    const raw = await server!.http("/mcp", {
      method: "POST",
      headers: { ...as("wrong-key-0001"), accept: "application/json, text/event-stream" },
      json: { jsonrpc: "2.0", id: 1, method: "tools/list" },
    });
    expect(raw.status).toBe(401);
    // A share token only watches: no tools, no tasks.
    const task = await server!.createTask({ input: "What is 1+1?" }, as(ALICE));
    const { token } = (await (await server!.http(`/tasks/${task.id}/share`, { method: "POST", headers: as(ALICE) })).json()) as { token: string };
    await expect(connect(token)).rejects.toMatchObject({ code: 403 });
    const { client } = await connect(ALICE); // GET /mcp (the SDK opens a standalone stream) answers 405: tolerated
    expect((await client.listTools()).tools.length).toBe(AGENTS!.length);
    expect((await server!.http("/mcp", { headers: { ...as(ALICE), accept: "text/event-stream" } })).status).toBe(405);
    expect((await server!.http("/mcp", { method: "DELETE", headers: as(ALICE) })).status).toBe(405);
  });

  test("tenants: a tenant's calls create tasks it owns, that another tenant cannot see; another tenant cannot cancel them", async () => {
    await start({ apiKey: ADMIN, apiKeys: `alice:${ALICE},bob:${BOB}` });
    const alice = await connect(ALICE);
    const result = (await alice.client.callTool({ name: "default", arguments: { input: "What is 2*21?" } })) as CallToolResult;
    const taskId = taskIdOf(result);
    expect((await rest(`/tasks/${taskId}`, ALICE)).body.owner).toBe("alice");
    expect((await rest(`/tasks/${taskId}`, BOB)).status).toBe(404);
    expect((await rest(`/tasks/${taskId}`, ADMIN)).status).toBe(200);
    const bobsList = (await rest<{ tasks: { id: string }[] }>("/tasks", BOB)).body.tasks;
    expect(bobsList.map((task) => task.id)).not.toContain(taskId);

    // A cancel for alice's in-flight call, sent by bob with alice's session id and request id, does nothing.
    const slow = alice.client.callTool({ name: "slow", arguments: { input: "What is 6*7?" } }, undefined, { onprogress: () => {} });
    const running = await until(async () => (await rest<{ tasks: { id: string; agent: string }[] }>("/tasks?status=running", ALICE)).body.tasks.find((task) => task.agent === "slow")?.id);
    for (let requestId = 0; requestId < 10; requestId++) {
      const cancel = await server!.http("/mcp", {
        method: "POST",
        headers: { ...as(BOB), accept: "application/json, text/event-stream", "mcp-session-id": alice.transport.sessionId!, "mcp-protocol-version": "2025-06-18" },
        json: { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId, reason: "bob says so" } },
      });
      expect(cancel.status).toBe(202);
    }
    const answered = (await slow) as CallToolResult;
    expect(answered.isError).toBeFalsy();
    expect(taskIdOf(answered)).toBe(running);
    expect((await rest(`/tasks/${running}`, ALICE)).body.status).toBe("completed");
  });

  test("a batch with two requests of one id is refused whole (-32600), no task made; one id per request passes", async () => {
    await start();
    const before = ((await (await server!.http("/tasks?limit=100")).json()) as { tasks: unknown[] }).tasks.length;
    const call = (id: number | string, expression: string) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name: AGENTS![0]!.name, arguments: { input: `What is ${expression}?` } } });
    for (const batch of [[call(7, "6*7"), call(7, "5*5")], [call("a", "1+1"), { jsonrpc: "2.0", method: "notifications/initialized" }, call("a", "2+2")]]) {
      const response = await server!.http("/mcp", { method: "POST", headers: { accept: "application/json, text/event-stream" }, json: batch });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: { code: number; message: string } }).error).toMatchObject({ code: -32600, message: expect.stringContaining("two requests with id") });
    }
    expect(((await (await server!.http("/tasks?limit=100")).json()) as { tasks: unknown[] }).tasks.length).toBe(before);
    // The same id as a number and as a string are two ids.
    const fine = await server!.http("/mcp", { method: "POST", headers: { accept: "application/json, text/event-stream" }, json: [{ jsonrpc: "2.0", id: 1, method: "tools/list" }, { jsonrpc: "2.0", id: "1", method: "tools/list" }] });
    expect(fine.status).toBe(200);
  });

  test("a cancel that overtakes its call (raced requests) still cancels it once the call registers", () => {
    const calls = createCallRegistry();
    const cancelled: string[] = [];
    expect(calls.cancel(callKey("alice", "s1", 3), "early")).toBe("unknown");
    calls.register(callKey("bob", "s1", 3), (reason) => cancelled.push(`bob:${reason}`));
    const forget = calls.register(callKey("alice", "s1", 3), (reason) => cancelled.push(`alice:${reason}`));
    return Promise.resolve().then(() => {
      expect(cancelled).toEqual(["alice:early"]);
      forget();
      expect(calls.cancel(callKey("bob", "s1", 3), "now")).toBe("cancelled");
      expect(calls.cancel(callKey("bob", "s1", "3"), "a string id is another id")).toBe("unknown");
      expect(cancelled).toEqual(["alice:early", "bob:now"]);
    });
  });

  test("a cancel that finds no call is remembered 2 s only, and a late one (its call has ended) not at all: a later call reusing the id is not cancelled", () => {
    let clock = 0;
    const calls = createCallRegistry({ now: () => clock });
    const cancelled: string[] = [];
    // A call answers; its client's cancel, racing the answer, comes 10 ms after: late, dropped —
    // and the same id's next call, 10 ms later still (well within 2 s), is not cancelled by it.
    const forget = calls.register(callKey("alice", "", 1), (reason) => cancelled.push(`first:${reason}`));
    forget();
    clock += 10;
    expect(calls.cancel(callKey("alice", "", 1), "late")).toBe("late");
    clock += 10;
    const second = calls.register(callKey("alice", "", 1), (reason) => cancelled.push(`second:${reason}`));
    // A stray cancel for an id nobody used: gone after 2 s.
    expect(calls.cancel(callKey("alice", "", 2), "stray")).toBe("unknown");
    clock += 2_001;
    calls.register(callKey("alice", "", 2), (reason) => cancelled.push(`third:${reason}`));
    return Promise.resolve().then(() => {
      expect(cancelled).toEqual([]);
      // The calls in flight are still cancelled by their own cancels; one that ended a minute ago is forgotten.
      expect(calls.cancel(callKey("alice", "", 1), "now")).toBe("cancelled");
      expect(cancelled).toEqual(["second:now"]);
      second();
      clock += 60_001;
      expect(calls.cancel(callKey("alice", "", 1), "much later")).toBe("unknown");
    });
  });

  test("a cancel that arrives while the call's task is being made (a slow store) cancels it — also when an earlier call with that id has just ended", async () => {
    let slowCreate = false;
    server = await startTestServer({
      agents: [{ name: "default", model: "demo/slow" }],
      wrapStore: (store) =>
        new Proxy(store, {
          get(target, property) {
            const value = Reflect.get(target, property, target);
            if (property !== "createTask" || typeof value !== "function") return value;
            return async (...args: unknown[]) => {
              if (slowCreate) await Bun.sleep(400);
              return (value as (...a: unknown[]) => unknown).apply(target, args);
            };
          },
        }),
    });
    const post = (body: unknown) =>
      fetch(`${server!.baseUrl}/mcp`, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18" }, body: JSON.stringify(body) });
    const call = { jsonrpc: "2.0", id: 5, method: "tools/call", params: { name: "default", arguments: { input: "hi" } } };
    // A first call with id 5 answers (a client without a session reuses its ids).
    expect(await (await post(call)).text()).toContain("hi");
    slowCreate = true;
    const second = post(call);
    await Bun.sleep(150); // the second call is being made (its task insert takes 400 ms)
    expect((await post({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 5, reason: "stop" } })).status).toBe(202);
    expect(await (await second).text()).not.toContain('"result"'); // no answer: the call was cancelled
    const { body } = await rest<{ tasks: { id: string; status: string }[] }>("/tasks");
    expect((await ended(body.tasks[0]!.id)).status).toBe("cancelled");
  });

  test("initialize hands out a session id; the SDK client sends it back", async () => {
    await start();
    const { client, transport } = await connect();
    expect(transport.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect((await client.listTools()).tools.length).toBeGreaterThan(0);
    const other = await connect();
    expect(other.transport.sessionId).not.toBe(transport.sessionId);
  });
});

describePostgres("agentkit as an MCP server in a cluster", (pg) => {
  const nodes: RunningServer[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close().catch(() => {})));
    await Promise.all(nodes.splice(0).map((node) => node.stop()));
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  async function startNode(url: string, nodeId: string, role: "api" | "worker"): Promise<RunningServer> {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const store = await createPostgresStore({ url, max: 8 });
    const agents = [{ name: "default" }, { name: "slow", model: "demo/slow" }].map((agent) => AgentDefinition.parse(agent));
    const config = loadConfig({ env: {}, readFile: false, flags: { port: 0, host: "127.0.0.1", dataDir, logLevel: "silent", nodeId, role, databaseUrl: url, pollMs: 200, leaseMs: 3000, agents } });
    const node = await startServer({ config, logger: silentLogger, env: {}, store, cluster: store });
    nodes.push(node);
    return node;
  }

  test("a call on an API node runs on a worker: progress and the answer cross nodes, and aborting the call cancels the task there", async () => {
    const url = await pg.createDatabase();
    const api = await startNode(url, "mcp-api", "api");
    await startNode(url, "mcp-worker", "worker");
    const base = `http://127.0.0.1:${api.port}`;
    const client = new Client({ name: "agentkit-test", version: "1.0.0" });
    clients.push(client);
    await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`)));

    const progress: Progress[] = [];
    const result = (await client.callTool({ name: "default", arguments: { input: "What is 2*21?" } }, undefined, { onprogress: (update) => progress.push(update) })) as CallToolResult;
    expect(textOf(result)).toBe("2*21 = 42");
    expect(progress.some((update) => update.message?.includes("calculator"))).toBe(true);
    const done = (await (await fetch(`${base}/tasks/${taskIdOf(result)}`)).json()) as { status: string };
    expect(done.status).toBe("completed");

    const controller = new AbortController();
    const started: Progress[] = [];
    const call = client.callTool({ name: "slow", arguments: { input: "What is 6*7?" } }, undefined, { signal: controller.signal, onprogress: (update) => started.push(update) });
    call.catch(() => {});
    await until(() => (started.length > 0 ? true : undefined)); // the worker runs it: its first step is stored
    controller.abort();
    const tasks = (await (await fetch(`${base}/tasks?limit=1`)).json()) as { tasks: { id: string; agent: string }[] };
    expect(tasks.tasks[0]!.agent).toBe("slow");
    const id = tasks.tasks[0]!.id;
    const ended = await until(async () => {
      const task = (await (await fetch(`${base}/tasks/${id}`)).json()) as { status: string };
      return ["completed", "failed", "cancelled", "timed_out"].includes(task.status) ? task : undefined;
    });
    expect(ended.status).toBe("cancelled");
  });

  test("a notifications/cancelled that reaches another node (any node answers any POST) cancels the call where it is held", async () => {
    const url = await pg.createDatabase();
    const first = await startNode(url, "mcp-api-a", "api");
    const second = await startNode(url, "mcp-api-b", "api");
    await startNode(url, "mcp-worker", "worker");
    const headers = { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18", "mcp-session-id": "session-1" };

    // The call's response stream is held by node A; the task runs on the worker.
    const response = await fetch(`http://127.0.0.1:${first.port}/mcp`, {
      method: "POST",
      headers,
      body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "slow", arguments: { input: "What is 6*7?" }, _meta: { progressToken: "p" } } }),
    });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    let text = await readUntil(reader, "notifications/progress");
    const id = ((await (await fetch(`http://127.0.0.1:${first.port}/tasks?limit=1`)).json()) as { tasks: { id: string }[] }).tasks[0]!.id;

    // The cancel goes to node B, which holds no call: it tells the cluster, and node A cancels its call.
    const cancel = await fetch(`http://127.0.0.1:${second.port}/mcp`, {
      method: "POST",
      headers,
      body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 7, reason: "from another node" } }),
    });
    expect(cancel.status).toBe(202);
    // Node A's stream ends without an answer (the spec's SHOULD NOT answer a cancelled request).
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      text += new TextDecoder().decode(chunk.value);
    }
    expect(text).not.toContain('"result"');
    const ended = await until(async () => {
      const task = (await (await fetch(`http://127.0.0.1:${second.port}/tasks/${id}`)).json()) as { status: string; stop_reason: string | null };
      return ["completed", "failed", "cancelled", "timed_out"].includes(task.status) ? task : undefined;
    });
    expect(ended).toMatchObject({ status: "cancelled", stop_reason: "cancelled" });
  });
});
