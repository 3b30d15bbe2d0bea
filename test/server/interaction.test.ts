/**
 * People in the loop against a real server on loopback (SQLite store): approvals, rejections,
 * answers to `ask_user`, steering inputs — over the WebSocket and over REST — every refusal (with
 * the task and its log left as they were), approval timeouts, and cancelling a waiting task.
 * The scripted models record every request, so what the model was told is asserted directly.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { AgentDefinition } from "../../src/agents/agent.ts";
import type { ChatMessage, ModelStreamPart, ToolCallRequest } from "../../src/llm/model.ts";
import type { Task } from "../../src/protocol/task.ts";
import { deferred, until } from "../helpers/deferred.ts";
import { answer, callTools, createScriptedModel, type ScriptedModel, type ScriptStep } from "../helpers/scripted-model.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { connect, type Frame, type TestSocket } from "../helpers/ws-client.ts";
import { ADMIN, ALICE, BOB, SECRET, as } from "../helpers/tenants.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const calc = (id: string, expression: string): ToolCallRequest => ({ id, name: "calculator", arguments: JSON.stringify({ expression }) });
const ask = (id: string, question: string): ToolCallRequest => ({ id, name: "ask_user", arguments: JSON.stringify({ question }) });

/** A step that waits for `gate` before the model says anything. */
function gated(gate: Promise<void>, parts: ModelStreamPart[]): ScriptStep {
  return async function* () {
    await gate;
    yield* parts;
  };
}

async function start(model: ScriptedModel, agent: Partial<AgentDefinition> = {}): Promise<TestServer> {
  server = await startTestServer({
    models: { m: model },
    agents: [{ model: "test/m", tools: ["calculator", "ask_user"], ...agent }],
    config: { apiKey: ADMIN, apiKeys: `alice:${ALICE},bob:${BOB}`, shareSecret: SECRET },
  });
  return server;
}

async function getTask(id: string, key = ALICE): Promise<Task> {
  const response = await server!.http(`/tasks/${id}`, { headers: as(key) });
  expect(response.status).toBe(200);
  return (await response.json()) as Task;
}

/** The stored log (REST), each frame as its JSON text. */
async function storedFrames(id: string): Promise<string[]> {
  const response = await server!.http(`/tasks/${id}/events`, { headers: as(ALICE) });
  expect(response.status).toBe(200);
  return ((await response.json()) as { events: unknown[] }).events.map((event) => JSON.stringify(event));
}

interface LogEvent {
  seq: number;
  type: string;
  event: string;
  step: number;
  data: Record<string, unknown>;
}

async function log(id: string): Promise<LogEvent[]> {
  return (await storedFrames(id)).map((text) => {
    const frame = JSON.parse(text) as { type: string; seq: number; data: { event_type?: string; step?: number; data?: Record<string, unknown> } & Record<string, unknown> };
    return frame.type === "result"
      ? { seq: frame.seq, type: "result", event: "result", step: 0, data: frame.data }
      : { seq: frame.seq, type: frame.type, event: frame.data.event_type!, step: frame.data.step!, data: frame.data.data! };
  });
}

const kinds = (events: LogEvent[]) => events.map((event) => event.event);

async function waitStatus(id: string, status: Task["status"]): Promise<Task> {
  let task: Task | undefined;
  await until(async () => (task = await getTask(id)).status === status, `task ${id} is ${status}`, 10_000);
  return task!;
}

/** Watches as Alice (or `key`). */
function watch(id: string, key = ALICE): Promise<TestSocket> {
  return server!.watch(id, `api_key=${key}`);
}

let requestCounter = 0;
/** Sends a request frame and returns the `ack` or `error` frame that answers it. */
async function request(socket: TestSocket, frame: Record<string, unknown>): Promise<Frame> {
  const requestId = `r${++requestCounter}`;
  socket.send({ ...frame, request_id: requestId });
  return socket.waitFor(
    (reply) =>
      (reply.type === "ack" && reply.request_id === requestId) ||
      (reply.type === "error" && (reply.data as { request_id?: string }).request_id === requestId),
    `the reply to ${frame.type} ${requestId}`,
  );
}

type Via = "ws" | "rest";
type Decision = { type: "approve"; call_id: string } | { type: "reject"; call_id: string; reason?: string } | { type: "answer"; call_id: string; text: string };

/**
 * Decides over the WebSocket (`socket`) or REST. Returns `{ok}` and, on failure, the error's code
 * (and the HTTP status for REST).
 */
async function decide(via: Via, taskId: string, decision: Decision, socket?: TestSocket, key = ALICE): Promise<{ ok: boolean; code?: string; status?: number; task?: Task; reply?: Frame }> {
  if (via === "ws") {
    const reply = await request(socket!, decision);
    if (reply.type === "ack") {
      expect(reply).toEqual({ type: "ack", of: decision.type, request_id: `r${requestCounter}` });
      return { ok: true, reply };
    }
    return { ok: false, code: (reply.data as { code: string }).code, reply };
  }
  const response =
    decision.type === "answer"
      ? await server!.http(`/tasks/${taskId}/answers`, { method: "POST", headers: as(key), json: { call_id: decision.call_id, text: decision.text } })
      : await server!.http(`/tasks/${taskId}/approvals`, {
          method: "POST",
          headers: as(key),
          json: { call_id: decision.call_id, decision: decision.type, ...(decision.type === "reject" && decision.reason ? { reason: decision.reason } : {}) },
        });
  const body = (await response.json()) as Task & { error: { code: string } };
  if (response.status === 200) return { ok: true, status: 200, task: body };
  return { ok: false, status: response.status, code: body.error.code };
}

/** Sends a steering input over the WebSocket or REST; returns its input id. */
async function sendInput(via: Via, taskId: string, text: string, socket?: TestSocket): Promise<string> {
  if (via === "ws") {
    const reply = await request(socket!, { type: "input", text });
    expect(reply).toMatchObject({ type: "ack", of: "input", request_id: `r${requestCounter}` });
    expect(typeof reply.input_id).toBe("string");
    return reply.input_id as string;
  }
  const response = await server!.http(`/tasks/${taskId}/input`, { method: "POST", headers: as(ALICE), json: { text } });
  expect(response.status).toBe(202);
  const body = (await response.json()) as { task_id: string; input_id: string };
  expect(body.task_id).toBe(taskId);
  expect(typeof body.input_id).toBe("string");
  return body.input_id;
}

/** Every watcher got the stored log once, in order, with seqs 1..N and no gap. */
async function expectWholeLog(taskId: string, ...sockets: TestSocket[]) {
  const stored = await storedFrames(taskId);
  const seqs = stored.map((_, index) => index + 1);
  expect(stored.map((text) => (JSON.parse(text) as { seq: number }).seq)).toEqual(seqs);
  for (const socket of sockets) {
    expect(socket.seqs).toEqual(seqs);
    expect(socket.durable).toEqual(stored);
  }
}

/** The tool messages of a model request, as [id, isError, content]. */
function toolMessages(messages: readonly ChatMessage[]): [string, boolean, string][] {
  return messages.filter((message) => message.role === "tool").map((message) => {
    const tool = message as Extract<ChatMessage, { role: "tool" }>;
    return [tool.toolCallId, tool.isError, tool.content];
  });
}

for (const via of ["ws", "rest"] as const) {
  describe(`deciding over ${via === "ws" ? "the WebSocket" : "REST"}`, () => {
    test("approve: the call runs after approval, the task goes waiting → completed, connected watchers get every frame once", async () => {
      const model = createScriptedModel([callTools([calc("c1", "6*7")], "let me compute"), answer("it is 42")]);
      await start(model, { approval: ["calculator"] });
      const task = await server!.createTask({ input: "what is 6*7?" }, as(ALICE));
      const first = await watch(task.id);
      const second = await watch(task.id);
      const requested = await first.waitFor((frame) => (frame.data as { event_type?: string })?.event_type === "approval_requested", "approval_requested");
      expect((requested.data as { data: unknown }).data).toMatchObject({ id: "c1", name: "calculator", arguments: { expression: "6*7" } });
      expect(typeof ((requested.data as { data: { expires_at: unknown } }).data.expires_at)).toBe("string");

      const waiting = await waitStatus(task.id, "waiting");
      expect(waiting.wait_until).not.toBeNull();
      expect(model.requests.length).toBe(1); // nothing ran while it waited
      expect(kinds(await log(task.id))).toEqual(["usage", "thought", "tool_call", "approval_requested"]);
      // A watcher joining during the wait gets the log so far, then the rest live.
      const late = await watch(task.id);
      expect(await late.waitFor((frame) => frame.type === "connected")).toMatchObject({ status: "waiting", last_seq: 4 });
      await late.waitFor((frame) => frame.seq === 4, "the replayed approval_requested");

      const decided = await decide(via, task.id, { type: "approve", call_id: "c1" }, first);
      expect(decided.ok).toBe(true);
      if (via === "rest") {
        expect(decided.task!.id).toBe(task.id);
        expect(decided.task!.status).not.toBe("waiting");
      }
      const [result, secondResult] = await Promise.all([first.result(), second.result()]);
      expect(result.data).toMatchObject({ status: "completed", output: "it is 42", total_steps: 2 });
      expect(secondResult).toEqual(result);

      const events = await log(task.id);
      expect(kinds(events)).toEqual(["usage", "thought", "tool_call", "approval_requested", "approval_decided", "resumed", "tool_result", "usage", "result"]);
      expect(events[4]!.data).toEqual({ id: "c1", name: "calculator", decision: "approved", by: "alice" });
      expect(events[5]!.data).toMatchObject({ reason: "continued", attempt: 1, rerun: [], not_rerun: [] });
      expect(events[6]!.data).toEqual({ id: "c1", name: "calculator", result: { expression: "6*7", value: 42 } });
      expect(await late.result()).toEqual(result);
      await expectWholeLog(task.id, first, second, late);
      expect((await getTask(task.id)).status).toBe("completed");

      // The model read the tool's real result.
      expect(model.requests.length).toBe(2);
      expect(toolMessages(model.requests[1]!.messages)).toEqual([["c1", false, JSON.stringify({ expression: "6*7", value: 42 })]]);
    });

    test("a decision sent the moment the request is seen (the run may still be parking the task) is applied once", async () => {
      const model = createScriptedModel([callTools([calc("c1", "8*8")]), answer("64")]);
      await start(model, { approval: ["calculator"] });
      const task = await server!.createTask({ input: "quick" }, as(ALICE));
      const socket = await watch(task.id);
      await socket.waitFor((frame) => (frame.data as { event_type?: string })?.event_type === "approval_requested", "approval_requested");
      expect((await decide(via, task.id, { type: "approve", call_id: "c1" }, socket)).ok).toBe(true);
      expect((await socket.result()).data).toMatchObject({ status: "completed", output: "64" });
      expect(kinds(await log(task.id))).toEqual(["usage", "tool_call", "approval_requested", "approval_decided", "resumed", "tool_result", "usage", "result"]);
      expect(model.requests).toHaveLength(2);
      await expectWholeLog(task.id, socket);
    });

    test("reject with a reason: the model reads a `rejected` tool error with the reason; the tool never runs", async () => {
      const model = createScriptedModel([callTools([calc("c1", "1/0")]), answer("fine, I won't")]);
      await start(model, { approval: ["calculator"] });
      const task = await server!.createTask({ input: "divide" }, as(ALICE));
      const socket = await watch(task.id);
      await waitStatus(task.id, "waiting");

      const decided = await decide(via, task.id, { type: "reject", call_id: "c1", reason: "not on my budget" }, socket);
      expect(decided.ok).toBe(true);
      const result = await socket.result();
      expect(result.data).toMatchObject({ status: "completed", output: "fine, I won't" });

      const events = await log(task.id);
      expect(kinds(events)).toEqual(["usage", "tool_call", "approval_requested", "approval_decided", "resumed", "tool_error", "usage", "result"]);
      expect(events[3]!.data).toEqual({ id: "c1", name: "calculator", decision: "rejected", reason: "not on my budget", by: "alice" });
      expect(events[5]!.data).toEqual({
        id: "c1",
        name: "calculator",
        error: { code: "rejected", message: "The user rejected this call to 'calculator': not on my budget", retryable: false },
      });
      const tools = toolMessages(model.requests[1]!.messages);
      expect(tools).toHaveLength(1);
      expect(tools[0]![0]).toBe("c1");
      expect(tools[0]![1]).toBe(true);
      expect(tools[0]![2]).toContain("rejected");
      expect(tools[0]![2]).toContain("not on my budget");
      await expectWholeLog(task.id, socket);
    });

    test("answer to ask_user: the answer text is the tool result the model receives", async () => {
      const model = createScriptedModel([callTools([ask("q1", "Which colour?")]), answer("you like blue")]);
      await start(model);
      const task = await server!.createTask({ input: "ask me about colours" }, as(ALICE));
      const socket = await watch(task.id);
      const question = await socket.waitFor((frame) => (frame.data as { event_type?: string })?.event_type === "question", "the question");
      expect((question.data as { data: unknown }).data).toMatchObject({ id: "q1", name: "ask_user", question: "Which colour?" });
      await waitStatus(task.id, "waiting");

      expect((await decide(via, task.id, { type: "answer", call_id: "q1", text: "blue, obviously" }, socket)).ok).toBe(true);
      expect((await socket.result()).data).toMatchObject({ status: "completed", output: "you like blue" });

      const events = await log(task.id);
      expect(kinds(events)).toEqual(["usage", "tool_call", "question", "answer", "resumed", "tool_result", "usage", "result"]);
      expect(events[3]!.data).toEqual({ id: "q1", name: "ask_user", text: "blue, obviously", by: "alice" });
      expect(events[5]!.data).toEqual({ id: "q1", name: "ask_user", result: "blue, obviously" });
      expect(toolMessages(model.requests[1]!.messages)).toEqual([["q1", false, "blue, obviously"]]);
      await expectWholeLog(task.id, socket);
    });

    test("two gated calls in one step: still waiting after the first decision, goes on after the second", async () => {
      const model = createScriptedModel([callTools([calc("c1", "1+1"), calc("c2", "2+2")]), answer("both decided")]);
      await start(model, { approval: ["calculator"] });
      const task = await server!.createTask({ input: "two sums" }, as(ALICE));
      const socket = await watch(task.id);
      await waitStatus(task.id, "waiting");
      expect(kinds(await log(task.id))).toEqual(["usage", "tool_call", "tool_call", "approval_requested", "approval_requested"]);

      const firstDecision = await decide(via, task.id, { type: "approve", call_id: "c2" }, socket);
      expect(firstDecision.ok).toBe(true);
      if (via === "rest") expect(firstDecision.task!.status).toBe("waiting");
      const afterFirst = await getTask(task.id);
      expect(afterFirst.status).toBe("waiting");
      expect(kinds(await log(task.id))).toEqual(["usage", "tool_call", "tool_call", "approval_requested", "approval_requested", "approval_decided"]);
      expect(model.requests.length).toBe(1);

      expect((await decide(via, task.id, { type: "reject", call_id: "c1" }, socket)).ok).toBe(true);
      expect((await socket.result()).data).toMatchObject({ status: "completed", output: "both decided" });
      const events = await log(task.id);
      expect(kinds(events)).toEqual([
        "usage",
        "tool_call",
        "tool_call",
        "approval_requested",
        "approval_requested",
        "approval_decided",
        "approval_decided",
        "resumed",
        "tool_error",
        "tool_result",
        "usage",
        "result",
      ]);
      expect(events[5]!.data).toMatchObject({ id: "c2", decision: "approved" });
      expect(events[6]!.data).toMatchObject({ id: "c1", decision: "rejected" });
      // The model reads both observations, in call order.
      expect(toolMessages(model.requests[1]!.messages)).toEqual([
        ["c1", true, "Error (rejected): The user rejected this call to 'calculator'"],
        ["c2", false, JSON.stringify({ expression: "2+2", value: 4 })],
      ]);
      await expectWholeLog(task.id, socket);
    });
  });

  describe(`steering over ${via === "ws" ? "the WebSocket" : "REST"}`, () => {
    test("an input sent while the model works reaches its next request, logged as user_input before that step's usage", async () => {
      const gate = deferred();
      const model = createScriptedModel([
        gated(gate.promise, [
          { type: "tool-call", call: calc("c1", "3*3") },
          { type: "finish", finishReason: "tool-calls", usage: { inputTokens: 5, outputTokens: 5 } },
        ]),
        answer("nine, and cats"),
      ]);
      await start(model);
      const task = await server!.createTask({ input: "compute 3*3" }, as(ALICE));
      const socket = await watch(task.id);
      await until(() => model.requests.length === 1, "the first model step");

      const inputId = await sendInput(via, task.id, "also mention cats", socket);
      gate.resolve(); // the step goes on only once the input was accepted
      expect((await socket.result()).data).toMatchObject({ status: "completed", output: "nine, and cats" });

      const events = await log(task.id);
      expect(kinds(events)).toEqual(["usage", "tool_call", "tool_result", "user_input", "usage", "result"]);
      expect(events[3]).toMatchObject({ step: 2, data: { id: inputId, text: "also mention cats", by: "alice" } });
      expect(events[4]!.step).toBe(2);
      const second = model.requests[1]!.messages;
      expect(second.at(-1)).toEqual({ role: "user", content: "also mention cats" });
      expect(second.at(-2)).toMatchObject({ role: "tool", toolCallId: "c1" });
      // The first request had no such message.
      expect(model.requests[0]!.messages).toEqual([{ role: "user", content: "compute 3*3" }]);
      await expectWholeLog(task.id, socket);
    });

    test("an input that arrives while the model gives its final answer: the answer becomes a thought and the model answers again", async () => {
      const gate = deferred();
      const model = createScriptedModel([
        gated(gate.promise, [
          { type: "text-delta", text: "a first draft" },
          { type: "finish", finishReason: "stop", usage: { inputTokens: 5, outputTokens: 5 } },
        ]),
        answer("the revised answer"),
      ]);
      await start(model);
      const task = await server!.createTask({ input: "write something" }, as(ALICE));
      const socket = await watch(task.id);
      await until(() => model.requests.length === 1, "the first model step");

      const inputId = await sendInput(via, task.id, "make it shorter", socket);
      gate.resolve();
      expect((await socket.result()).data).toMatchObject({ status: "completed", output: "the revised answer", total_steps: 2 });

      const events = await log(task.id);
      expect(kinds(events)).toEqual(["usage", "thought", "user_input", "usage", "result"]);
      expect(events[1]!.data).toEqual({ text: "a first draft" });
      expect(events[2]!.data).toEqual({ id: inputId, text: "make it shorter", by: "alice" });
      expect(model.requests[1]!.messages).toEqual([
        { role: "user", content: "write something" },
        { role: "assistant", content: "a first draft" },
        { role: "user", content: "make it shorter" },
      ]);
      await expectWholeLog(task.id, socket);
    });

    test("an input sent while the task waits is delivered after the decision, before the next model step", async () => {
      const model = createScriptedModel([callTools([calc("c1", "5+5")]), answer("ten")]);
      await start(model, { approval: ["calculator"] });
      const task = await server!.createTask({ input: "add" }, as(ALICE));
      const socket = await watch(task.id);
      await waitStatus(task.id, "waiting");
      const before = await storedFrames(task.id);

      const inputId = await sendInput(via, task.id, "and be brief", socket);
      // Accepted, but the task still waits and its log is unchanged: the model reads it after the decision.
      expect((await getTask(task.id)).status).toBe("waiting");
      expect(await storedFrames(task.id)).toEqual(before);

      expect((await decide(via, task.id, { type: "approve", call_id: "c1" }, socket)).ok).toBe(true);
      await socket.result();
      const events = await log(task.id);
      expect(kinds(events)).toEqual(["usage", "tool_call", "approval_requested", "approval_decided", "resumed", "tool_result", "user_input", "usage", "result"]);
      expect(events[6]).toMatchObject({ step: 2, data: { id: inputId, text: "and be brief", by: "alice" } });
      const messages = model.requests[1]!.messages;
      expect(messages.at(-2)).toMatchObject({ role: "tool", toolCallId: "c1", isError: false });
      expect(messages.at(-1)).toEqual({ role: "user", content: "and be brief" });
      await expectWholeLog(task.id, socket);
    });
  });
}

describe("refusals change nothing", () => {
  /** A task waiting on an approval (`c1`, calculator) and a question (`q1`), watched by Alice. */
  async function waitingTask() {
    const model = createScriptedModel([callTools([calc("c1", "2*2"), ask("q1", "Sure?")]), answer("done")]);
    await start(model, { approval: ["calculator"] });
    const task = await server!.createTask({ input: "gated" }, as(ALICE));
    const socket = await watch(task.id);
    await waitStatus(task.id, "waiting");
    const snapshot = async () => ({ task: await getTask(task.id), log: await storedFrames(task.id) });
    return { model, task, socket, snapshot, before: await snapshot() };
  }

  test("deciding twice: 409 over REST, error `conflict` over the WebSocket (connection stays open)", async () => {
    const { task, socket, snapshot } = await waitingTask();
    expect((await decide("rest", task.id, { type: "approve", call_id: "c1" })).ok).toBe(true);
    const afterFirst = await snapshot();
    expect(afterFirst.task.status).toBe("waiting"); // q1 still waits

    for (const decision of [{ type: "approve", call_id: "c1" }, { type: "reject", call_id: "c1", reason: "changed my mind" }] as const) {
      const rest = await decide("rest", task.id, decision);
      expect(rest).toMatchObject({ ok: false, status: 409, code: "conflict" });
      const ws = await decide("ws", task.id, decision, socket);
      expect(ws).toMatchObject({ ok: false, code: "conflict" });
      expect(((ws.reply!.data as { message: string }).message)).toContain("already decided");
    }
    expect(await snapshot()).toEqual(afterFirst);
    socket.send({ type: "ping" });
    await socket.waitFor((frame) => frame.type === "pong");
  });

  test("deciding a call that was decided and has run since (a decision that lost a race, read after the winner's call ran): 409 already decided, not 404", async () => {
    const model = createScriptedModel([callTools([calc("c1", "2*2")]), callTools([calc("c2", "3*3")]), answer("done")]);
    await start(model, { approval: ["calculator"] });
    const task = await server!.createTask({ input: "gated twice" }, as(ALICE));
    await waitStatus(task.id, "waiting");
    expect((await decide("rest", task.id, { type: "approve", call_id: "c1" })).ok).toBe(true);
    // c1 runs (its result is stored), then the task waits on c2.
    await until(async () => (await log(task.id)).filter((event) => event.event === "approval_requested").length === 2 && (await getTask(task.id)).status === "waiting", "the second park");
    const before = await storedFrames(task.id);
    for (const decision of [{ type: "approve", call_id: "c1" }, { type: "reject", call_id: "c1" }] as const) {
      const rest = await decide("rest", task.id, decision);
      expect(rest).toMatchObject({ ok: false, status: 409, code: "conflict" });
    }
    expect(await storedFrames(task.id)).toEqual(before);
    expect((await decide("rest", task.id, { type: "approve", call_id: "c2" })).ok).toBe(true);
    await waitStatus(task.id, "completed");
  });

  test("a message to a running task that ends before the message is stored: 409 naming how it ended, not the status read before", async () => {
    let cancelling: (() => Promise<unknown>) | undefined;
    const slow = createScriptedModel([
      async function* (request: { abortSignal: AbortSignal }) {
        // Runs until it is cancelled.
        await new Promise((_, reject) => request.abortSignal.addEventListener("abort", () => reject(request.abortSignal.reason), { once: true }));
      } as unknown as ScriptStep,
    ]);
    const own = await startTestServer({
      models: { m: slow },
      agents: [{ name: "default", model: "test/m" }],
      config: { apiKey: ADMIN },
      wrapStore: (store) =>
        new Proxy(store, {
          get(target, key) {
            const value = (target as any)[key];
            if (key !== "addInput") return typeof value === "function" ? value.bind(target) : value;
            // The task ends between the route's status read and the store's write.
            return async (...args: unknown[]) => {
              await cancelling?.();
              return value.apply(target, args);
            };
          },
        }),
    });
    try {
      const task = await own.createTask({ input: "run" }, as(ADMIN));
      await until(async () => ((await (await own.http(`/tasks/${task.id}`, { headers: as(ADMIN) })).json()) as Task).status === "running", "the task runs");
      cancelling = () => own.http(`/tasks/${task.id}/cancel`, { method: "POST", headers: as(ADMIN) });
      const refused = await own.http(`/tasks/${task.id}/input`, { method: "POST", headers: as(ADMIN), json: { text: "too late" } });
      expect(refused.status).toBe(409);
      expect(((await refused.json()) as { error: { message: string } }).error.message).toContain("has ended (cancelled)");
    } finally {
      await own.close();
    }
  });

  test("messages pile up at most 32 deep: the next is 429 queue_full (REST, with Retry-After) or an error frame; none is dropped", async () => {
    const { task, socket, snapshot } = await waitingTask();
    for (let index = 0; index < 32; index++) await sendInput(index % 2 === 0 ? "rest" : "ws", task.id, `message ${index}`, socket);
    const before = await snapshot();
    const refused = await server!.http(`/tasks/${task.id}/input`, { method: "POST", headers: as(ALICE), json: { text: "one too many" } });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("queue_full");
    const reply = await request(socket, { type: "input", text: "one too many" });
    expect(reply).toMatchObject({ type: "error", data: { code: "queue_full" } });
    expect(await snapshot()).toEqual(before);
    // Every accepted message reaches the model once the task goes on.
    expect((await decide("rest", task.id, { type: "approve", call_id: "c1" })).ok).toBe(true);
    expect((await decide("rest", task.id, { type: "answer", call_id: "q1", text: "yes" })).ok).toBe(true);
    await waitStatus(task.id, "completed");
    const inputs = (await log(task.id)).filter((event) => event.event === "user_input");
    expect(inputs.map((event) => (event.data as { text: string }).text)).toEqual(Array.from({ length: 32 }, (_, index) => `message ${index}`));
  });

  test("an unknown call id: 404 / not_found", async () => {
    const { task, socket, snapshot, before } = await waitingTask();
    expect(await decide("rest", task.id, { type: "approve", call_id: "nope" })).toMatchObject({ ok: false, status: 404, code: "not_found" });
    expect(await decide("rest", task.id, { type: "answer", call_id: "nope", text: "x" })).toMatchObject({ ok: false, status: 404, code: "not_found" });
    expect(await decide("ws", task.id, { type: "reject", call_id: "nope" }, socket)).toMatchObject({ ok: false, code: "not_found" });
    expect(await decide("ws", task.id, { type: "answer", call_id: "nope", text: "x" }, socket)).toMatchObject({ ok: false, code: "not_found" });
    expect(await snapshot()).toEqual(before);
  });

  test("approving a question, or answering an approval: 400 / bad_request", async () => {
    const { task, socket, snapshot, before } = await waitingTask();
    expect(await decide("rest", task.id, { type: "approve", call_id: "q1" })).toMatchObject({ ok: false, status: 400, code: "bad_request" });
    expect(await decide("rest", task.id, { type: "reject", call_id: "q1" })).toMatchObject({ ok: false, status: 400, code: "bad_request" });
    expect(await decide("rest", task.id, { type: "answer", call_id: "c1", text: "yes" })).toMatchObject({ ok: false, status: 400, code: "bad_request" });
    expect(await decide("ws", task.id, { type: "approve", call_id: "q1" }, socket)).toMatchObject({ ok: false, code: "bad_request" });
    expect(await decide("ws", task.id, { type: "answer", call_id: "c1", text: "yes" }, socket)).toMatchObject({ ok: false, code: "bad_request" });
    expect(await snapshot()).toEqual(before);
  });

  test("another tenant's task: 404 for approvals, answers and input; it cannot even watch it", async () => {
    const { task, snapshot, before } = await waitingTask();
    expect(await decide("rest", task.id, { type: "approve", call_id: "c1" }, undefined, BOB)).toMatchObject({ ok: false, status: 404, code: "not_found" });
    expect(await decide("rest", task.id, { type: "reject", call_id: "c1" }, undefined, BOB)).toMatchObject({ ok: false, status: 404, code: "not_found" });
    expect(await decide("rest", task.id, { type: "answer", call_id: "q1", text: "hi" }, undefined, BOB)).toMatchObject({ ok: false, status: 404, code: "not_found" });
    const input = await server!.http(`/tasks/${task.id}/input`, { method: "POST", headers: as(BOB), json: { text: "hi" } });
    expect(input.status).toBe(404);
    expect(((await input.json()) as { error: { code: string } }).error.code).toBe("not_found");
    const cancel = await server!.http(`/tasks/${task.id}/cancel`, { method: "POST", headers: as(BOB) });
    expect(cancel.status).toBe(404);
    const snooper = await connect(`ws://127.0.0.1:${server!.port}/ws/tasks/${task.id}?api_key=${BOB}`);
    expect(await snooper.closed).toMatchObject({ code: 4404 });
    expect(await snapshot()).toEqual(before);
    // The admin may decide for anyone: recorded as the admin.
    expect((await decide("rest", task.id, { type: "approve", call_id: "c1" }, undefined, ADMIN)).ok).toBe(true);
    expect((await log(task.id)).at(-1)!.data).toMatchObject({ id: "c1", decision: "approved", by: "admin" });
  });

  test("a read-only share token cannot approve, reject, answer or send input: 403 over REST, error `forbidden` over the WebSocket", async () => {
    const { task, snapshot, before } = await waitingTask();
    const shared = await server!.http(`/tasks/${task.id}/share`, { method: "POST", headers: as(ALICE) });
    expect(shared.status).toBe(201);
    const { token } = (await shared.json()) as { token: string };

    for (const [path, json] of [
      ["approvals", { call_id: "c1", decision: "approve" }],
      ["approvals", { call_id: "c1", decision: "reject", reason: "no" }],
      ["answers", { call_id: "q1", text: "yes" }],
      ["input", { text: "steer" }],
    ] as const) {
      const response = await server!.http(`/tasks/${task.id}/${path}`, { method: "POST", headers: as(token), json });
      expect(`${path} ${response.status}`).toBe(`${path} 403`);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("forbidden");
    }

    const viewer = await watch(task.id, token);
    await viewer.waitFor((frame) => frame.type === "connected");
    for (const frame of [
      { type: "approve", call_id: "c1" },
      { type: "reject", call_id: "c1" },
      { type: "answer", call_id: "q1", text: "yes" },
      { type: "input", text: "steer" },
    ]) {
      const reply = await request(viewer, frame);
      expect(reply).toEqual({ type: "error", data: { code: "forbidden", message: "this token can only watch", request_id: `r${requestCounter}` } });
    }
    viewer.send({ type: "ping" });
    await viewer.waitFor((frame) => frame.type === "pong");
    expect(await snapshot()).toEqual(before);
  });

  test("a task that has ended: deciding or sending input is 409 / conflict", async () => {
    const { task, socket } = await waitingTask();
    expect((await decide("ws", task.id, { type: "approve", call_id: "c1" }, socket)).ok).toBe(true);
    expect((await decide("ws", task.id, { type: "answer", call_id: "q1", text: "yes" }, socket)).ok).toBe(true);
    await socket.result();
    const ended = { task: await getTask(task.id), log: await storedFrames(task.id) };
    expect(ended.task.status).toBe("completed");

    expect(await decide("rest", task.id, { type: "approve", call_id: "c1" })).toMatchObject({ ok: false, status: 409, code: "conflict" });
    expect(await decide("ws", task.id, { type: "answer", call_id: "q1", text: "again" }, socket)).toMatchObject({ ok: false, code: "conflict" });
    const input = await server!.http(`/tasks/${task.id}/input`, { method: "POST", headers: as(ALICE), json: { text: "late" } });
    expect(input.status).toBe(409);
    const wsInput = await request(socket, { type: "input", text: "late" });
    expect(wsInput).toMatchObject({ type: "error", data: { code: "conflict" } });
    expect({ task: await getTask(task.id), log: await storedFrames(task.id) }).toEqual(ended);
  });
});

describe("approval timeout", () => {
  test("on_approval_timeout reject: the model reads approval_timeout (and no_answer for a question) and the task completes", async () => {
    const model = createScriptedModel([callTools([calc("c1", "7*7"), ask("q1", "Anyone?")]), answer("nobody answered")]);
    await start(model, { approval: ["calculator"], approval_timeout_ms: 1000, on_approval_timeout: "reject" });
    const task = await server!.createTask({ input: "wait for nobody" }, as(ALICE));
    const socket = await watch(task.id);
    const waiting = await waitStatus(task.id, "waiting");
    expect(Date.parse(waiting.wait_until!) - Date.parse(waiting.started_at!)).toBeLessThan(60_000);

    const result = await socket.result(15_000);
    expect(result.data).toMatchObject({ status: "completed", output: "nobody answered" });
    const events = await log(task.id);
    expect(kinds(events)).toEqual(["usage", "tool_call", "tool_call", "approval_requested", "question", "approval_decided", "answer", "resumed", "tool_error", "tool_error", "usage", "result"]);
    expect(events[5]!.data).toEqual({ id: "c1", name: "calculator", decision: "timed_out", by: "system" });
    expect(events[6]!.data).toEqual({ id: "q1", name: "ask_user", text: null, by: "system" });
    const tools = toolMessages(model.requests[1]!.messages);
    expect(tools.map(([id, isError]) => [id, isError])).toEqual([
      ["c1", true],
      ["q1", true],
    ]);
    expect(tools[0]![2]).toContain("approval_timeout");
    expect(tools[1]![2]).toContain("no_answer");
    await expectWholeLog(task.id, socket);
  });

  test("on_approval_timeout fail: the task fails with error code approval_timeout", async () => {
    const model = createScriptedModel([callTools([calc("c1", "7*7")]), answer("never")]);
    await start(model, { approval: ["calculator"], approval_timeout_ms: 1500, on_approval_timeout: "fail" });
    const task = await server!.createTask({ input: "wait for nobody" }, as(ALICE));
    const socket = await watch(task.id);
    await waitStatus(task.id, "waiting");

    const result = await socket.result(15_000);
    // The timeout as configured (1500 ms was once said as "2 s").
    expect(result.data).toMatchObject({ status: "failed", stop_reason: "error", error: { code: "approval_timeout", message: "Nobody decided 'calculator' (c1) within 1500 ms" } });
    const ended = await getTask(task.id);
    expect(ended).toMatchObject({ status: "failed", error: { code: "approval_timeout" } });
    expect(kinds(await log(task.id))).toEqual(["usage", "tool_call", "approval_requested", "result"]);
    expect(model.requests.length).toBe(1);
    await expectWholeLog(task.id, socket);
    // Too late now.
    expect(await decide("rest", task.id, { type: "approve", call_id: "c1" })).toMatchObject({ ok: false, status: 409 });
  });
});

describe("cancelling a waiting task", () => {
  for (const via of ["rest", "ws"] as const) {
    test(`over ${via === "ws" ? "the WebSocket" : "REST"}: it ends cancelled and a connected watcher gets the result`, async () => {
      const model = createScriptedModel([callTools([calc("c1", "1+2")]), answer("never")]);
      await start(model, { approval: ["calculator"] });
      const task = await server!.createTask({ input: "cancel me" }, as(ALICE));
      const watcher = await watch(task.id);
      const canceller = await watch(task.id);
      // What the run used before it parked is on the waiting task (one model call: 10 in, 5 out).
      const totals = { total_steps: 1, input_tokens: 10, output_tokens: 5, total_tokens: 15 };
      expect(await waitStatus(task.id, "waiting")).toMatchObject(totals);

      if (via === "rest") {
        const response = await server!.http(`/tasks/${task.id}/cancel`, { method: "POST", headers: as(ALICE) });
        expect(response.status).toBe(200);
        expect(((await response.json()) as Task).status).toBe("cancelled");
      } else {
        canceller.send({ type: "cancel" });
      }
      const [result, other] = await Promise.all([watcher.result(), canceller.result()]);
      expect(result.data).toMatchObject({ status: "cancelled", stop_reason: "cancelled", total_tokens: 15, usage: { input_tokens: 10, output_tokens: 5 } });
      expect(other).toEqual(result);
      expect(await getTask(task.id)).toMatchObject({ status: "cancelled", ...totals });
      expect(kinds(await log(task.id))).toEqual(["usage", "tool_call", "approval_requested", "result"]);
      expect(model.requests.length).toBe(1);
      await expectWholeLog(task.id, watcher, canceller);
      // Nothing to decide any more.
      expect(await decide("rest", task.id, { type: "approve", call_id: "c1" })).toMatchObject({ ok: false, status: 409, code: "conflict" });
    });
  }
});

test("an answer or reason that is not valid Unicode (a lone surrogate) over the WebSocket: an error frame with its request_id, the socket stays open", async () => {
  const model = createScriptedModel([callTools([ask("q1", "Which region?")]), answer("ok")]);
  await start(model);
  const task = await server!.createTask({ input: "ask me" }, as(ALICE));
  await waitStatus(task.id, "waiting");
  const socket = await watch(task.id);
  for (const frame of [{ type: "answer", call_id: "q1", text: "x\ud800" }, { type: "reject", call_id: "q1", reason: "\udc00" }, { type: "input", text: "\udfff" }]) {
    const reply = await request(socket, frame);
    expect(reply, frame.type).toMatchObject({ type: "error", data: { code: "validation_failed" } });
    expect((reply.data as { message: string }).message).toContain("not valid Unicode");
  }
  expect((await request(socket, { type: "answer", call_id: "q1", text: "eu-west" })).type).toBe("ack");
  expect((await socket.result()).data).toMatchObject({ status: "completed" });
});

describe("requests sent before the stream started (the task still being read: a database round trip in a cluster)", () => {
  /** Opens a raw WebSocket and sends `frames` the moment it opens, before any frame came. */
  async function sendAtOpen(taskId: string, frames: object[]) {
    const socket = new WebSocket(`${server!.baseUrl.replace("http", "ws")}/ws/tasks/${taskId}?api_key=${ALICE}`);
    const got: Record<string, unknown>[] = [];
    const closed = new Promise<number>((resolve) => socket.addEventListener("close", (event) => resolve(event.code)));
    socket.addEventListener("message", (event) => got.push(JSON.parse(String(event.data))));
    await new Promise((resolve) => socket.addEventListener("open", resolve));
    for (const frame of frames) socket.send(JSON.stringify(frame));
    return { socket, got, closed };
  }

  async function slowReads(model: ScriptedModel) {
    server = await startTestServer({
      models: { m: model },
      agents: [{ model: "test/m", tools: ["calculator"], approval: ["calculator"] }],
      config: { apiKey: ADMIN, apiKeys: `alice:${ALICE},bob:${BOB}` },
      wrapStore: (store) => ({ ...store, getTask: async (...args) => (await Bun.sleep(60), store.getTask(...args)) }),
    });
  }

  test("an approval sent at once is acted on once the stream starts (acked), not refused", async () => {
    await slowReads(createScriptedModel([callTools([calc("c1", "6*7")]), answer("it is 42")]));
    const task = await server!.createTask({ input: "what is 6*7?" }, as(ALICE));
    await waitStatus(task.id, "waiting"); // parked: the watcher's start reads it from the store
    const { got, socket } = await sendAtOpen(task.id, [{ type: "approve", call_id: "c1", request_id: "early" }]);
    // The ack comes once the decision is stored — here after the run it let go on has ended.
    await until(async () => got.some((frame) => frame.type === "result") && got.some((frame) => frame.type === "ack"), "the result and the ack", 10_000);
    expect(got[0]).toMatchObject({ type: "connected", status: "waiting" });
    expect(got).toContainEqual({ type: "ack", of: "approve", request_id: "early" });
    expect(got.some((frame) => frame.type === "error")).toBe(false);
    expect(got.find((frame) => frame.type === "result")).toMatchObject({ data: { status: "completed", output: "it is 42" } });
    socket.close();
  });

  test("a cancel sent at once cancels the task; another tenant's early requests do nothing (the socket is refused)", async () => {
    await slowReads(createScriptedModel([callTools([calc("c1", "1+1")]), answer("never")]));
    const task = await server!.createTask({ input: "what is 1+1?" }, as(ALICE));
    await waitStatus(task.id, "waiting");
    const bob = new WebSocket(`${server!.baseUrl.replace("http", "ws")}/ws/tasks/${task.id}?api_key=${BOB}`);
    const bobClosed = new Promise<number>((resolve) => bob.addEventListener("close", (event) => resolve(event.code)));
    await new Promise((resolve) => bob.addEventListener("open", resolve));
    bob.send(JSON.stringify({ type: "cancel" }));
    bob.send(JSON.stringify({ type: "reject", call_id: "c1" }));
    expect(await bobClosed).toBe(4404);
    expect((await getTask(task.id)).status).toBe("waiting");

    const { got } = await sendAtOpen(task.id, [{ type: "cancel", request_id: "stop" }]);
    await until(async () => got.some((frame) => frame.type === "result"), "the result", 10_000);
    expect(got.find((frame) => frame.type === "result")).toMatchObject({ data: { status: "cancelled" } });
    expect((await getTask(task.id)).status).toBe("cancelled");
  });

  test("more than 16 requests before the stream started: the rest are refused with an error frame each, the first 16 kept", async () => {
    await slowReads(createScriptedModel([callTools([calc("c1", "1+1")]), answer("two")]));
    const task = await server!.createTask({ input: "what is 1+1?" }, as(ALICE));
    await waitStatus(task.id, "waiting");
    const inputs = Array.from({ length: 18 }, (_, index) => ({ type: "input", text: `note ${index}`, request_id: `i${index}` }));
    const { got, socket } = await sendAtOpen(task.id, inputs);
    await until(async () => got.filter((frame) => frame.type === "ack" || frame.type === "error").length === 18, "18 replies", 10_000);
    expect(got.filter((frame) => frame.type === "ack").map((frame) => frame.request_id)).toEqual(inputs.slice(0, 16).map((input) => input.request_id));
    const refused = got.filter((frame) => frame.type === "error").map((frame) => frame.data as { request_id: string; message: string });
    expect(refused.map((error) => error.request_id)).toEqual(["i16", "i17"]);
    expect(refused[0]!.message).toContain("wait for 'connected'");
    socket.close();
  });
});
