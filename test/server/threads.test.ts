/**
 * Threads against a real server on loopback (SQLite store): a thread task runs with the history of
 * the thread's earlier completed tasks (asserted on what the scripted model was sent), the history
 * policy, every busy policy, tenant isolation, and the thread routes' listing and order.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { AgentDefinition } from "../../src/agents/agent.ts";
import type { ChatMessage, ModelRequest, ModelStreamPart, ToolCallRequest } from "../../src/llm/model.ts";
import type { Task, Thread } from "../../src/protocol/task.ts";
import { deferred, until } from "../helpers/deferred.ts";
import { answer, callTools, createScriptedModel, type ScriptedModel, type ScriptStep } from "../helpers/scripted-model.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { ADMIN, ALICE, BOB, SECRET, as } from "../helpers/tenants.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const calc = (id: string, expression: string): ToolCallRequest => ({ id, name: "calculator", arguments: JSON.stringify({ expression }) });
const ask = (id: string, question: string): ToolCallRequest => ({ id, name: "ask_user", arguments: JSON.stringify({ question }) });

/** A step that waits for `gate` (or the task's abort) before the model says anything. */
function gated(gate: Promise<void>, parts: ModelStreamPart[]): ScriptStep {
  return async function* (request: ModelRequest) {
    await new Promise<void>((resolve, reject) => {
      gate.then(resolve);
      request.abortSignal.addEventListener("abort", () => reject(request.abortSignal.reason), { once: true });
    });
    yield* parts;
  };
}

/** A step that answers `re: <the last user message>`. */
const echo: ScriptStep = (request) => {
  const last = [...request.messages].reverse().find((message) => message.role === "user");
  return [
    { type: "text-delta", text: `re: ${last?.content ?? ""}` },
    { type: "finish", finishReason: "stop", usage: { inputTokens: 1, outputTokens: 1 } },
  ];
};

async function start(model: ScriptedModel, agents: Partial<AgentDefinition>[] = [{}]): Promise<TestServer> {
  server = await startTestServer({
    models: { m: model },
    agents: agents.map((agent) => ({ model: "test/m", tools: ["calculator", "ask_user"], ...agent })),
    config: { apiKey: ADMIN, apiKeys: `alice:${ALICE},bob:${BOB}`, shareSecret: SECRET },
  });
  return server;
}

async function json<T>(response: Response, status: number): Promise<T> {
  const text = await response.text();
  expect(`${response.status} ${text}`.slice(0, 400)).toStartWith(`${status} `);
  return JSON.parse(text) as T;
}

async function createThread(key = ALICE): Promise<Thread> {
  const response = await server!.http("/threads", { method: "POST", headers: as(key) });
  const thread = await json<Thread>(response, 201);
  expect(response.headers.get("location")).toBe(`/threads/${thread.id}`);
  return thread;
}

/** A task in the thread, by `POST /threads/:id/tasks`. */
async function threadTask(threadId: string, body: Record<string, unknown>, key = ALICE): Promise<Response> {
  return server!.http(`/threads/${threadId}/tasks`, { method: "POST", headers: as(key), json: body });
}

async function getTask(id: string, key = ALICE): Promise<Task> {
  return json<Task>(await server!.http(`/tasks/${id}`, { headers: as(key) }), 200);
}

async function getThread(id: string, key = ALICE): Promise<Thread & { tasks: Task[]; tasks_truncated: boolean }> {
  return json(await server!.http(`/threads/${id}`, { headers: as(key) }), 200);
}

async function listTasks(key = ALICE): Promise<Task[]> {
  return (await json<{ tasks: Task[] }>(await server!.http("/tasks?limit=100", { headers: as(key) }), 200)).tasks;
}

async function waitEnded(id: string, status: Task["status"] = "completed"): Promise<Task> {
  const socket = await server!.watch(id, `api_key=${ALICE}`);
  const result = await socket.result();
  socket.close();
  expect((result.data as { status: string }).status).toBe(status);
  return getTask(id);
}

async function waitStatus(id: string, status: Task["status"]): Promise<void> {
  await until(async () => (await getTask(id)).status === status, `task ${id} is ${status}`, 10_000);
}

/** The event types of a task's stored log. */
async function eventTypes(id: string): Promise<string[]> {
  const body = await json<{ events: { type: string; data: { event_type?: string } }[] }>(await server!.http(`/tasks/${id}/events`, { headers: as(ALICE) }), 200);
  return body.events.map((event) => event.data.event_type ?? event.type);
}

const user = (content: string): ChatMessage => ({ role: "user", content });
const assistant = (content: string, toolCalls?: ToolCallRequest[]): ChatMessage => ({ role: "assistant", content, ...(toolCalls ? { toolCalls } : {}) });

describe("a thread's history", () => {
  test("the third task's first model request holds the earlier inputs, tool calls and results, answers, in order", async () => {
    const model = createScriptedModel([
      // Task 1: a tool call, then an answer.
      callTools([calc("c1", "2+2")], "checking"),
      answer("it is 4"),
      // Task 2: a question to the user, answered, then an answer.
      callTools([ask("q1", "Your name?")]),
      answer("Hi Ada"),
      // Task 3.
      answer("all done"),
    ]);
    await start(model);
    const thread = await createThread();
    expect(thread).toMatchObject({ owner: "alice", task_count: 0, last_task_id: null });

    const first = await json<Task>(await threadTask(thread.id, { input: "What is 2+2?" }), 201);
    expect(first.thread_id).toBe(thread.id);
    await waitEnded(first.id);
    expect(model.requests[0]!.messages).toEqual([user("What is 2+2?")]); // nothing before the first

    // The second by POST /tasks with thread_id.
    const second = await server!.createTask({ input: "ask me my name", thread_id: thread.id }, as(ALICE));
    expect((second as unknown as Task).thread_id).toBe(thread.id);
    await waitStatus(second.id, "waiting");
    const answered = await server!.http(`/tasks/${second.id}/answers`, { method: "POST", headers: as(ALICE), json: { call_id: "q1", text: "Ada" } });
    expect(answered.status).toBe(200);
    await waitEnded(second.id);

    const third = await json<Task>(await threadTask(thread.id, { input: "and now?" }), 201);
    expect((await waitEnded(third.id)).output).toBe("all done");

    const history: ChatMessage[] = [
      user("What is 2+2?"),
      assistant("checking", [calc("c1", "2+2")]),
      { role: "tool", toolCallId: "c1", toolName: "calculator", content: JSON.stringify({ expression: "2+2", value: 4 }), isError: false },
      assistant("it is 4"),
      user("ask me my name"),
      assistant("", [ask("q1", "Your name?")]),
      { role: "tool", toolCallId: "q1", toolName: "ask_user", content: "Ada", isError: false },
      assistant("Hi Ada"),
    ];
    expect(model.requests).toHaveLength(5);
    expect(model.requests[4]!.messages).toEqual([...history, user("and now?")]);
    // The second task's first request had the first task's turn before its own input.
    expect(model.requests[2]!.messages).toEqual([...history.slice(0, 4), user("ask me my name")]);

    const shown = await getThread(thread.id);
    expect(shown).toMatchObject({ id: thread.id, owner: "alice", task_count: 3, last_task_id: third.id, tasks_truncated: false });
    expect(shown.tasks.map((task) => task.id)).toEqual([first.id, second.id, third.id]);
  });

  test("history max_turns 1: only the last completed turn is sent", async () => {
    const model = createScriptedModel([echo], { repeatLast: true });
    await start(model, [{ history: { max_turns: 1, max_chars: 400_000 } }]);
    const thread = await createThread();
    for (const input of ["one", "two", "three"]) {
      const task = await json<Task>(await threadTask(thread.id, { input }), 201);
      await waitEnded(task.id);
    }
    expect(model.requests.map((request) => request.messages)).toEqual([
      [user("one")],
      [user("one"), assistant("re: one"), user("two")],
      [user("two"), assistant("re: two"), user("three")],
    ]);
  });

  test("history max_chars: the oldest turns are dropped first, and a turn too long on its own is shortened to its input and answer", async () => {
    const longThought = "z".repeat(300);
    const model = createScriptedModel([
      answer("one"), // turn 1: "first turn yyyy…" → "one" (74 characters in all)
      callTools([calc("c1", "1+1")], longThought), // turn 2: a long step…
      answer("two"), // …then its answer
      answer("three"), // the third task
      answer("four"), // the fourth (a more generous agent)
    ]);
    await start(model, [{ history: { max_turns: 50, max_chars: 50 } }, { history: { max_turns: 50, max_chars: 1000 } }]);
    const thread = await createThread();
    const firstInput = `first turn ${"y".repeat(60)}`;
    await waitEnded((await json<Task>(await threadTask(thread.id, { input: firstInput }), 201)).id);
    await waitEnded((await json<Task>(await threadTask(thread.id, { input: "second" }), 201)).id);
    await waitEnded((await json<Task>(await threadTask(thread.id, { input: "third" }), 201)).id);

    // 50 characters: the second turn (≈ 370 characters with its step) is shortened to its input and
    // answer (9); the first (74) no longer fits after it and is dropped.
    expect(model.requests[3]!.messages).toEqual([user("second"), assistant("two"), user("third")]);

    // 1000 characters: everything fits, the second turn whole.
    await waitEnded((await json<Task>(await threadTask(thread.id, { input: "fourth", agent: "agent1" }), 201)).id);
    expect(model.requests[4]!.messages).toEqual([
      user(firstInput),
      assistant("one"),
      user("second"),
      assistant(longThought, [calc("c1", "1+1")]),
      { role: "tool", toolCallId: "c1", toolName: "calculator", content: JSON.stringify({ expression: "1+1", value: 2 }), isError: false },
      assistant("two"),
      user("third"),
      assistant("three"),
      user("fourth"),
    ]);
  });

  test("a failed and a cancelled task are left out of the history", async () => {
    const neverReleased = deferred();
    const model = createScriptedModel([
      answer("kept"),
      () => {
        throw new Error("the model broke");
      },
      gated(neverReleased.promise, [{ type: "text-delta", text: "never" }, { type: "finish", finishReason: "stop", usage: { inputTokens: 1, outputTokens: 1 } }]),
      answer("fine"),
    ]);
    await start(model);
    const thread = await createThread();
    await waitEnded((await json<Task>(await threadTask(thread.id, { input: "completes" }), 201)).id);
    const failed = await json<Task>(await threadTask(thread.id, { input: "fails" }), 201);
    expect((await waitEnded(failed.id, "failed")).status).toBe("failed");
    const cancelled = await json<Task>(await threadTask(thread.id, { input: "is cancelled" }), 201);
    await until(() => model.requests.length === 3, "the third task's model step");
    const cancel = await server!.http(`/tasks/${cancelled.id}/cancel`, { method: "POST", headers: as(ALICE) });
    expect((await json<Task>(cancel, 200)).status).toBe("cancelled");

    const last = await json<Task>(await threadTask(thread.id, { input: "last" }), 201);
    await waitEnded(last.id);
    expect(model.requests[1]!.messages).toEqual([user("completes"), assistant("kept"), user("fails")]);
    expect(model.requests[3]!.messages).toEqual([user("completes"), assistant("kept"), user("last")]);
  });
});

describe("a busy thread", () => {
  /** A thread whose first task is running, its model blocked on `gate` (then answering `first answer`). */
  async function busyThread(rest: ScriptStep[], agents?: Partial<AgentDefinition>[], firstStep?: ModelStreamPart[]) {
    const gate = deferred();
    const model = createScriptedModel([
      gated(gate.promise, firstStep ?? [{ type: "text-delta", text: "first answer" }, { type: "finish", finishReason: "stop", usage: { inputTokens: 1, outputTokens: 1 } }]),
      ...rest,
    ]);
    await start(model, agents);
    const thread = await createThread();
    const running = await json<Task>(await threadTask(thread.id, { input: "first" }), 201);
    await until(() => model.requests.length === 1, "the first task's model step");
    return { model, gate, thread, running };
  }

  test("enqueue (the default): the new task stays queued until the running one ends, then runs with it in its history", async () => {
    const { model, gate, thread, running } = await busyThread([echo]);
    const queued = await json<Task>(await threadTask(thread.id, { input: "second" }), 201);
    expect(queued.status).toBe("queued");
    expect((await getTask(queued.id)).status).toBe("queued");
    expect((await getTask(running.id)).status).toBe("running");
    expect(model.requests).toHaveLength(1);

    gate.resolve();
    const firstDone = await waitEnded(running.id);
    const secondDone = await waitEnded(queued.id);
    expect(secondDone.output).toBe("re: second");
    expect(Date.parse(secondDone.started_at!)).toBeGreaterThanOrEqual(Date.parse(firstDone.finished_at!));
    expect(model.requests[1]!.messages).toEqual([user("first"), assistant("first answer"), user("second")]);
    expect((await getThread(thread.id)).tasks.map((task) => task.id)).toEqual([running.id, queued.id]);
  });

  test("reject: 409 and nothing is created (per request, or the agent's on_busy); a request's on_busy overrides the agent's", async () => {
    const { model, gate, thread, running } = await busyThread([echo], [{}, { on_busy: "reject" }]);
    const before = { thread: await getThread(thread.id), tasks: await listTasks() };

    const byRequest = await server!.http("/tasks", { method: "POST", headers: as(ALICE), json: { input: "second", thread_id: thread.id, on_busy: "reject" } });
    const refused = await json<{ error: { code: string; message: string } }>(byRequest, 409);
    expect(refused.error.code).toBe("conflict");
    expect(refused.error.message).toContain(running.id);
    await json(await threadTask(thread.id, { input: "second", agent: "agent1" }), 409);
    expect({ thread: await getThread(thread.id), tasks: await listTasks() }).toEqual(before);
    expect(model.requests).toHaveLength(1);

    const overridden = await json<Task>(await threadTask(thread.id, { input: "second", agent: "agent1", on_busy: "enqueue" }), 201);
    gate.resolve();
    await waitEnded(running.id);
    expect((await waitEnded(overridden.id)).output).toBe("re: second");
    expect((await getThread(thread.id)).task_count).toBe(2);
  });

  test("interrupt: the running task ends cancelled, the new one runs (without it in its history)", async () => {
    const { model, thread, running } = await busyThread([echo]);
    const socket = await server!.watch(running.id, `api_key=${ALICE}`);
    await socket.waitFor((frame) => frame.type === "connected");

    const next = await json<Task>(await threadTask(thread.id, { input: "second", on_busy: "interrupt" }), 201);
    expect((await socket.result()).data).toMatchObject({ status: "cancelled", stop_reason: "cancelled" });
    expect((await getTask(running.id)).status).toBe("cancelled");
    expect((await waitEnded(next.id)).output).toBe("re: second");
    expect(model.requests[1]!.messages).toEqual([user("second")]);
    expect((await getThread(thread.id)).tasks.map((task) => [task.id, task.status])).toEqual([
      [running.id, "cancelled"],
      [next.id, "completed"],
    ]);
  });

  test("interrupt cancels a waiting task too", async () => {
    const model = createScriptedModel([callTools([calc("c1", "1+1")]), echo]);
    await start(model, [{ approval: ["calculator"] }]);
    const thread = await createThread();
    const waiting = await json<Task>(await threadTask(thread.id, { input: "first" }), 201);
    await waitStatus(waiting.id, "waiting");
    const next = await json<Task>(await threadTask(thread.id, { input: "second", on_busy: "interrupt" }), 201);
    expect((await getTask(waiting.id)).status).toBe("cancelled");
    expect((await waitEnded(next.id)).output).toBe("re: second");
    expect(model.requests[1]!.messages).toEqual([user("second")]);
  });

  test("steer: 202, no new task, and the running task's model receives the input at its next step", async () => {
    const { model, gate, thread, running } = await busyThread([answer("steered answer")], undefined, [
      { type: "tool-call", call: calc("c1", "4*4") },
      { type: "finish", finishReason: "tool-calls", usage: { inputTokens: 1, outputTokens: 1 } },
    ]);
    const before = await listTasks();
    const response = await threadTask(thread.id, { input: "actually, in words", on_busy: "steer" });
    const steered = await json<{ steered: boolean; input_id: string; task: Task }>(response, 202);
    expect(steered.steered).toBe(true);
    expect(typeof steered.input_id).toBe("string");
    expect(steered.task.id).toBe(running.id);
    expect(await listTasks()).toEqual(before);
    expect((await getThread(thread.id)).task_count).toBe(1);

    gate.resolve();
    expect((await waitEnded(running.id)).output).toBe("steered answer");
    expect(model.requests).toHaveLength(2);
    expect(model.requests[1]!.messages.at(-1)).toEqual(user("actually, in words"));
    expect(await eventTypes(running.id)).toEqual(["usage", "tool_call", "tool_result", "user_input", "usage", "result"]);
    expect((await getThread(thread.id)).task_count).toBe(1);
  });
});

describe("thread routes", () => {
  test("another tenant cannot see, list or add to a thread (404); nothing is created", async () => {
    const model = createScriptedModel([echo], { repeatLast: true });
    await start(model);
    const thread = await createThread(ALICE);
    const task = await json<Task>(await threadTask(thread.id, { input: "alice's" }), 201);
    await waitEnded(task.id);

    expect((await server!.http(`/threads/${thread.id}`, { headers: as(BOB) })).status).toBe(404);
    const listed = await json<{ threads: Thread[] }>(await server!.http("/threads", { headers: as(BOB) }), 200);
    expect(listed.threads).toEqual([]);
    const added = await json<{ error: { code: string; message: string } }>(await threadTask(thread.id, { input: "bob's" }, BOB), 404);
    expect(added.error).toMatchObject({ code: "not_found", message: `No thread with id '${thread.id}'` });
    await json(await server!.http("/tasks", { method: "POST", headers: as(BOB), json: { input: "bob's", thread_id: thread.id } }), 404);
    for (const on_busy of ["steer", "interrupt"]) {
      await json(await threadTask(thread.id, { input: "bob's", on_busy }, BOB), 404);
    }
    expect(await listTasks(BOB)).toEqual([]);
    expect((await getThread(thread.id)).task_count).toBe(1);
    expect(model.requests).toHaveLength(1);

    // An unknown thread is the same 404; the admin sees Alice's.
    await json(await threadTask("thr_nope", { input: "x" }), 404);
    expect((await getThread(thread.id, ADMIN)).owner).toBe("alice");
    // A share token of the thread reads it but cannot add to it.
    const shared = await json<{ token: string }>(await server!.http(`/tasks/${task.id}/share`, { method: "POST", headers: as(ALICE), json: { scope: "thread" } }), 201);
    expect((await getThread(thread.id, shared.token)).id).toBe(thread.id);
    await json(await threadTask(thread.id, { input: "viewer's" }, shared.token), 403);
    expect((await getThread(thread.id)).task_count).toBe(1);
  });

  test("GET /threads pages newest first; GET /threads/:id lists its tasks in creation order, run one at a time", async () => {
    const gate = deferred();
    const model = createScriptedModel(
      [
        async function* (request) {
          await gate.promise;
          yield* echo(request) as ModelStreamPart[];
        },
        echo,
      ],
      { repeatLast: true },
    );
    await start(model);
    const mine = [await createThread(), await createThread(), await createThread()];
    await createThread(BOB);

    const page1 = await json<{ threads: Thread[]; next_cursor: string | null }>(await server!.http("/threads?limit=2", { headers: as(ALICE) }), 200);
    expect(page1.threads.map((thread) => thread.id)).toEqual([mine[2]!.id, mine[1]!.id]);
    expect(page1.next_cursor).not.toBeNull();
    const page2 = await json<{ threads: Thread[]; next_cursor: string | null }>(
      await server!.http(`/threads?limit=2&cursor=${encodeURIComponent(page1.next_cursor!)}`, { headers: as(ALICE) }),
      200,
    );
    expect(page2.threads.map((thread) => thread.id)).toEqual([mine[0]!.id]);
    expect(page2.next_cursor).toBeNull();
    const all = await json<{ threads: Thread[] }>(await server!.http("/threads?limit=100", { headers: as(ADMIN) }), 200);
    expect(all.threads).toHaveLength(4);
    await json(await server!.http("/threads?limit=0", { headers: as(ALICE) }), 400);

    // Three tasks created while the first one runs: queued behind each other, run in order, each
    // with the ones before.
    const thread = mine[1]!;
    const created: Task[] = [];
    for (const input of ["a", "b", "c"]) created.push(await json<Task>(await threadTask(thread.id, { input }), 201));
    await until(() => model.requests.length === 1, "the first task's model step");
    expect((await getThread(thread.id)).tasks.map((task) => task.status)).toEqual(["running", "queued", "queued"]);
    expect(model.requests).toHaveLength(1);
    gate.resolve();
    const ended = [];
    for (const task of created) ended.push(await waitEnded(task.id));
    for (let index = 1; index < ended.length; index++) {
      expect(Date.parse(ended[index]!.started_at!)).toBeGreaterThanOrEqual(Date.parse(ended[index - 1]!.finished_at!));
    }
    expect(model.requests.map((request) => request.messages.filter((message) => message.role === "user").map((message) => message.content))).toEqual([
      ["a"],
      ["a", "b"],
      ["a", "b", "c"],
    ]);
    const shown = await getThread(thread.id);
    expect(shown).toMatchObject({ id: thread.id, task_count: 3, last_task_id: created[2]!.id, tasks_truncated: false });
    expect(shown.tasks.map((task) => [task.input, task.status])).toEqual([
      ["a", "completed"],
      ["b", "completed"],
      ["c", "completed"],
    ]);
    const listed = await json<{ threads: Thread[] }>(await server!.http("/threads", { headers: as(ALICE) }), 200);
    expect(listed.threads.find((candidate) => candidate.id === thread.id)).toMatchObject({ task_count: 3, last_task_id: created[2]!.id });
  });

  test("a thread of long inputs: GET /threads/:id holds its newest tasks that fit in 1 MiB of JSON, in creation order, and says it is truncated", async () => {
    const never = new Promise<void>(() => {});
    await start(createScriptedModel([gated(never, [])], { repeatLast: true }));
    const thread = await createThread();
    const created: Task[] = [];
    for (let index = 0; index < 12; index++) {
      created.push(await json<Task>(await threadTask(thread.id, { input: `${index} `.padEnd(100_000, "x") }), 201));
    }
    const response = await server!.http(`/threads/${thread.id}`, { headers: as(ALICE) });
    const text = await response.text();
    expect(response.status).toBe(200);
    expect(Buffer.byteLength(text, "utf8")).toBeLessThanOrEqual(1024 * 1024);
    const shown = JSON.parse(text) as Thread & { tasks: Task[]; tasks_truncated: boolean };
    expect(shown).toMatchObject({ id: thread.id, task_count: 12, last_task_id: created[11]!.id, tasks_truncated: true });
    // Ten tasks of ~100 KB fit, not eleven: the newest ten, oldest first, each whole.
    expect(shown.tasks.map((task) => task.id)).toEqual(created.slice(2).map((task) => task.id));
    expect(shown.tasks[0]).toEqual(await getTask(created[2]!.id));
  });
});
