/**
 * AG-UI: `@ag-ui/client`'s own `HttpAgent` against a real agentkit server on loopback. Every event
 * it receives is validated with `@ag-ui/core`'s zod schemas (and the client's own verifier, which
 * rejects the run on any protocol violation); the task behind each run is checked over REST.
 */
import { createLogger } from "../../src/lib/logger.ts";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { HttpAgent, verifyEvents, type BaseEvent, type Message } from "@ag-ui/client";
import { EventSchemas } from "@ag-ui/core/schemas";
import { from, lastValueFrom, toArray } from "rxjs";
import { RunTranslator } from "../../src/protocols/ag-ui/events.ts";
import { answer, createScriptedModel } from "../helpers/scripted-model.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const ADMIN = "admin-key-0123456789";
const ALICE = "alice-key-0123456789a";
const BOB = "bob-key-0123456789abc";

const chat = createScriptedModel([answer("Nice to meet you, Ada."), answer("Your name is Ada.")]);
const broken = createScriptedModel([
  () => {
    throw new Error("the model fell over");
  },
]);

let server: TestServer;
/** The server's warn and error lines (JSON). */
const logged: { level: string; msg: string; task?: string; count?: number }[] = [];

beforeAll(async () => {
  server = await startTestServer({
    logger: createLogger("warn", (line) => void logged.push(JSON.parse(line)), "json"),
    models: { chat, broken },
    agents: [
      { name: "assistant", model: "demo/react", tools: ["calculator"] },
      { name: "slow", model: "demo/slow", tools: ["calculator"] },
      { name: "chat", model: "test/chat" },
      { name: "broken", model: "test/broken" },
      { name: "careful", model: "demo/react", tools: ["calculator"], approval: ["calculator"] },
    ],
    config: { apiKey: ADMIN, apiKeys: `alice:${ALICE},bob:${BOB}` },
  });
});
afterAll(() => server.close());

function agentFor(path: string, key: string | undefined, threadId?: string) {
  return new HttpAgent({ url: `${server.baseUrl}${path}`, headers: key ? { authorization: `Bearer ${key}` } : {}, ...(threadId ? { threadId } : {}) });
}

let messageCount = 0;
function userMessage(content: string): Message {
  return { id: `user-${++messageCount}`, role: "user", content };
}

/** Runs the agent once; every event it receives, each validated with the official schemas. */
async function run(agent: HttpAgent, parameters: Parameters<HttpAgent["runAgent"]>[0] = {}, onEvent?: (event: BaseEvent) => void) {
  const events: BaseEvent[] = [];
  const invalid: unknown[] = [];
  const result = await agent.runAgent(parameters, {
    onEvent({ event }) {
      const parsed = EventSchemas.safeParse(event);
      if (!parsed.success) invalid.push({ event, issues: parsed.error.issues });
      events.push(event);
      onEvent?.(event);
    },
  });
  expect(invalid).toEqual([]);
  return { events, result };
}

/** A run the server refuses before it starts: the client rejects (and logs it; kept quiet here). */
async function refused(agent: HttpAgent, parameters: Parameters<HttpAgent["runAgent"]>[0] = {}): Promise<string> {
  const original = console.error;
  console.error = () => {};
  try {
    await agent.runAgent(parameters);
  } catch (error) {
    return String(error);
  } finally {
    console.error = original;
  }
  throw new Error("the run was not refused");
}

const types = (events: BaseEvent[]) => events.map((event) => event.type as string);
const ofType = <T = Record<string, unknown>>(events: BaseEvent[], type: string) => events.filter((event) => event.type === type) as unknown as T[];
const textOf = (events: BaseEvent[]) => ofType<{ delta: string }>(events, "TEXT_MESSAGE_CONTENT").map((event) => event.delta).join("");
const taskIdOf = (events: BaseEvent[]) => (ofType<{ metadata: { agentkit: { task_id: string } } }>(events, "RUN_STARTED")[0]!.metadata.agentkit.task_id);

async function getTask(id: string, key = ADMIN) {
  const response = await server.http(`/tasks/${id}`, { headers: { authorization: `Bearer ${key}` } });
  return { status: response.status, body: (await response.json()) as { status: string; owner: string; thread_id: string | null; input: string; output: string | null } };
}

async function waitForStatus(id: string, statuses: string[]) {
  for (let tries = 0; tries < 400; tries++) {
    const { body } = await getTask(id);
    if (statuses.includes(body.status)) return body;
    await Bun.sleep(25);
  }
  throw new Error(`task ${id} never reached ${statuses.join("|")}`);
}

describe("AG-UI over HttpAgent", () => {
  test("a run's events in order: RUN_STARTED first, steps, the calculator's tool call with its args and result, the answer as text, RUN_FINISHED last", async () => {
    const agent = agentFor("/ag-ui/assistant", ALICE);
    agent.addMessage(userMessage("What is 2*21?"));
    const { events, result } = await run(agent);
    const seen = types(events);
    expect(seen[0]).toBe("RUN_STARTED");
    expect(seen.at(-1)).toBe("RUN_FINISHED");
    expect(ofType(events, "RUN_STARTED")[0]).toMatchObject({ threadId: agent.threadId, runId: expect.any(String) });
    expect(ofType(events, "RUN_FINISHED")[0]).toMatchObject({ threadId: agent.threadId, outcome: { type: "success" }, result: "2*21 = 42" });

    // The tool call: START, ARGS, END, then its RESULT, all with one toolCallId.
    const start = ofType<{ toolCallId: string; toolCallName: string }>(events, "TOOL_CALL_START");
    expect(start).toHaveLength(1);
    expect(start[0]!.toolCallName).toBe("calculator");
    const id = start[0]!.toolCallId;
    const args = ofType<{ toolCallId: string; delta: string }>(events, "TOOL_CALL_ARGS").filter((event) => event.toolCallId === id);
    expect(JSON.parse(args.map((event) => event.delta).join(""))).toEqual({ expression: "2*21" });
    const toolResult = ofType<{ toolCallId: string; content: string; messageId: string }>(events, "TOOL_CALL_RESULT");
    expect(toolResult).toHaveLength(1);
    expect(toolResult[0]!.toolCallId).toBe(id);
    expect(JSON.parse(toolResult[0]!.content)).toMatchObject({ value: 42 });
    const order = (type: string) => events.findIndex((event) => event.type === type && (event as unknown as { toolCallId?: string }).toolCallId === id);
    expect(order("TOOL_CALL_START")).toBeLessThan(order("TOOL_CALL_ARGS"));
    expect(order("TOOL_CALL_ARGS")).toBeLessThan(order("TOOL_CALL_END"));
    expect(order("TOOL_CALL_END")).toBeLessThan(order("TOOL_CALL_RESULT"));

    // Steps open and close in pairs; the answer is the last text message, whole.
    expect(ofType<{ stepName: string }>(events, "STEP_STARTED").map((event) => event.stepName)).toEqual(["step 1", "step 2"]);
    expect(ofType<{ stepName: string }>(events, "STEP_FINISHED").map((event) => event.stepName)).toEqual(["step 1", "step 2"]);
    const starts = ofType<{ messageId: string }>(events, "TEXT_MESSAGE_START");
    const last = starts.at(-1)!.messageId;
    const answerText = ofType<{ messageId: string; delta: string }>(events, "TEXT_MESSAGE_CONTENT").filter((event) => event.messageId === last).map((event) => event.delta).join("");
    expect(answerText).toBe("2*21 = 42");
    expect(result.newMessages.at(-1)).toMatchObject({ role: "assistant", content: "2*21 = 42" });

    // The same task over REST: the caller's, in a thread of the run's threadId.
    const task = await getTask(taskIdOf(events), ALICE);
    expect(task.body).toMatchObject({ status: "completed", owner: "alice", thread_id: agent.threadId, input: "What is 2*21?", output: "2*21 = 42" });
  });

  test("POST /ag-ui runs the default agent; a slow run's text arrives as deltas that concatenate to the final answer", async () => {
    const agent = agentFor("/ag-ui/slow", ALICE);
    agent.addMessage(userMessage("What is 2*3?"));
    const { events } = await run(agent);
    const last = ofType<{ messageId: string }>(events, "TEXT_MESSAGE_START").at(-1)!.messageId;
    const answerDeltas = ofType<{ messageId: string; delta: string }>(events, "TEXT_MESSAGE_CONTENT").filter((event) => event.messageId === last);
    expect(answerDeltas.length).toBeGreaterThan(1); // word by word, as the model typed it
    const task = await getTask(taskIdOf(events));
    expect(task.body.output).toBe("2*3 = 6");
    expect(answerDeltas.map((event) => event.delta).join("")).toBe(task.body.output!);

    const byDefault = agentFor("/ag-ui", ALICE);
    byDefault.addMessage(userMessage("What is 3*4?"));
    const second = await run(byDefault);
    expect(ofType(second.events, "RUN_FINISHED")[0]).toMatchObject({ result: "3*4 = 12" });
    expect((await getTask(taskIdOf(second.events))).body).toMatchObject({ status: "completed" });
  });

  test("abortRun() on a demo/slow run cancels the task, and it stays cancelled", async () => {
    const agent = agentFor("/ag-ui/slow", ALICE);
    agent.addMessage(userMessage("Tell me something long"));
    let taskId: string | undefined;
    const { events } = await run(agent, {}, (event) => {
      if (event.type === "RUN_STARTED") taskId = (event as unknown as { metadata: { agentkit: { task_id: string } } }).metadata.agentkit.task_id;
      if (event.type === "TEXT_MESSAGE_CONTENT") agent.abortRun();
    });
    expect(taskId).toBeDefined();
    expect(types(events)).not.toContain("RUN_FINISHED");
    const task = await waitForStatus(taskId!, ["completed", "failed", "cancelled", "timed_out"]);
    expect(task.status).toBe("cancelled");
    await Bun.sleep(400); // what a run that was not stopped would do meanwhile: type more words, finish
    expect((await getTask(taskId!)).body.status).toBe("cancelled");
  });

  test("a thread over two runs: the second run's model sees the first exchange, once, though the client resends it", async () => {
    const agent = agentFor("/ag-ui/chat", ALICE);
    agent.addMessage(userMessage("My name is Ada."));
    const first = await run(agent);
    expect(textOf(first.events)).toBe("Nice to meet you, Ada.");
    agent.addMessage(userMessage("What is my name?"));
    expect(agent.messages.map((message) => message.role)).toEqual(["user", "assistant", "user"]);
    const second = await run(agent);
    expect(textOf(second.events)).toBe("Your name is Ada.");

    expect(chat.requests).toHaveLength(2);
    const seen = JSON.stringify(chat.requests[1]!.messages);
    expect(seen.split("My name is Ada.").length - 1).toBe(1);
    expect(seen.split("Nice to meet you, Ada.").length - 1).toBe(1);
    expect(seen.split("What is my name?").length - 1).toBe(1);
    expect(JSON.stringify(chat.requests[0]!.messages)).not.toContain("What is my name?");

    const thread = await server.http(`/threads/${agent.threadId}`, { headers: { authorization: `Bearer ${ALICE}` } });
    expect(thread.status).toBe(200);
    const body = (await thread.json()) as { owner: string; tasks: { id: string; input: string }[] };
    expect(body.owner).toBe("alice");
    expect(body.tasks.map((task) => task.input)).toEqual(["My name is Ada.", "What is my name?"]);
  });

  test("a failed run ends with RUN_ERROR (the task's error), not RUN_FINISHED", async () => {
    const agent = agentFor("/ag-ui/broken", ALICE);
    agent.addMessage(userMessage("Hello?"));
    const { events } = await run(agent);
    expect(types(events)[0]).toBe("RUN_STARTED");
    expect(types(events).at(-1)).toBe("RUN_ERROR");
    expect(types(events)).not.toContain("RUN_FINISHED");
    const error = ofType<{ message: string; code: string }>(events, "RUN_ERROR")[0]!;
    expect(error.message).toContain("the model fell over");
    const task = await getTask(taskIdOf(events));
    expect(task.body.status).toBe("failed");
    expect(error.code).toBe((task.body as unknown as { error: { code: string } }).error.code);
  });

  test("a call that needs approval ends the run with the interrupt outcome; the next run resumes it and streams the same task to its answer", async () => {
    const agent = agentFor("/ag-ui/careful", ALICE);
    agent.addMessage(userMessage("What is 6*7?"));
    const first = await run(agent);
    const finished = ofType<{ outcome: { type: string; interrupts: { id: string; reason: string; toolCallId: string }[] } }>(first.events, "RUN_FINISHED")[0]!;
    expect(finished.outcome.type).toBe("interrupt");
    expect(finished.outcome.interrupts).toHaveLength(1);
    const interrupt = finished.outcome.interrupts[0]!;
    expect(interrupt.reason).toBe("tool_approval");
    const call = ofType<{ toolCallId: string; toolCallName: string }>(first.events, "TOOL_CALL_START")[0]!;
    expect(call).toMatchObject({ toolCallName: "calculator", toolCallId: interrupt.toolCallId });
    expect(ofType(first.events, "TOOL_CALL_RESULT")).toHaveLength(0);
    const taskId = taskIdOf(first.events);
    expect((await getTask(taskId)).body.status).toBe("waiting");

    // A new run with no answer is refused before it starts (the client itself refuses it too).
    const other = agentFor("/ag-ui/careful", ALICE, agent.threadId);
    other.addMessage(userMessage("And 1+1?"));
    expect(await refused(other)).toContain("HTTP 409");

    // With 300 entries that name no interrupt and a second one for the same call (a rejection, too
    // late: the approval before it decided the call): applied once, and one warn line for the rest.
    const bogus = Array.from({ length: 300 }, (_, index) => ({ interruptId: `made-up-${index}`, status: "resolved" as const, payload: { approved: false } }));
    const resume = [{ interruptId: interrupt.id, status: "resolved" as const, payload: { approved: true } }, ...bogus, { interruptId: interrupt.id, status: "resolved" as const, payload: { approved: false } }];
    const second = await run(agent, { resume });
    expect(logged.filter((line) => line.task === taskId)).toEqual([expect.objectContaining({ level: "warn", count: 301, msg: expect.stringContaining("name no open interrupt") })]);
    expect(taskIdOf(second.events)).toBe(taskId);
    expect(types(second.events)[0]).toBe("RUN_STARTED");
    expect(ofType(second.events, "RUN_FINISHED")[0]).toMatchObject({ outcome: { type: "success" }, result: "6*7 = 42" });
    const toolResult = ofType<{ toolCallId: string; content: string }>(second.events, "TOOL_CALL_RESULT");
    expect(toolResult.map((event) => event.toolCallId)).toEqual([interrupt.toolCallId]);
    expect(JSON.parse(toolResult[0]!.content)).toMatchObject({ value: 42 });
    expect(ofType<{ name: string }>(second.events, "CUSTOM").map((event) => event.name)).toContain("agentkit.approval_decided");
    expect((await getTask(taskId)).body.status).toBe("completed");
  });

  test("a resume whose reason or answer is past REST's bounds is refused (400), not cut short", async () => {
    const agent = agentFor("/ag-ui/careful", ALICE);
    agent.addMessage(userMessage("What is 6*7?"));
    const first = await run(agent);
    const interrupt = ofType<{ outcome: { interrupts: { id: string }[] } }>(first.events, "RUN_FINISHED")[0]!.outcome.interrupts[0]!;
    const refusal = await refused(agent, { resume: [{ interruptId: interrupt.id, status: "resolved", payload: { approved: false, reason: "r".repeat(2001) } }] });
    expect(refusal).toContain("HTTP 400");
    expect(refusal).toContain("'reason' is longer than 2000 characters");
    const taskId = taskIdOf(first.events);
    expect((await getTask(taskId)).body.status).toBe("waiting");
  });

  test("isolation: another key's thread is a 404 and its tasks stay invisible; a wrong or missing key is a 401", async () => {
    const alice = agentFor("/ag-ui/assistant", ALICE);
    alice.addMessage(userMessage("What is 5*5?"));
    const { events } = await run(alice);
    const taskId = taskIdOf(events);

    const bob = agentFor("/ag-ui/assistant", BOB, alice.threadId);
    bob.addMessage(userMessage("What is 1+1?"));
    expect(await refused(bob)).toContain("HTTP 404");
    expect((await getTask(taskId, BOB)).status).toBe(404);
    const threads = await server.http(`/threads/${alice.threadId}`, { headers: { authorization: `Bearer ${BOB}` } });
    expect(threads.status).toBe(404);
    // Bob's thread list did not get Alice's thread, and Alice's thread has only her task.
    const aliceThread = (await (await server.http(`/threads/${alice.threadId}`, { headers: { authorization: `Bearer ${ALICE}` } })).json()) as { tasks: { id: string }[] };
    expect(aliceThread.tasks.map((task) => task.id)).toEqual([taskId]);

    for (const key of ["wrong-key-0123456789ab", undefined]) {
      const intruder = agentFor("/ag-ui/assistant", key);
      intruder.addMessage(userMessage("What is 1+1?"));
      expect(await refused(intruder)).toContain("HTTP 401");
    }
  });

  test("refusals before a run starts: an unknown agent (404), a body that is not a RunAgentInput or ends with no user message (400)", async () => {
    const unknown = agentFor("/ag-ui/nobody", ALICE);
    unknown.addMessage(userMessage("hi"));
    expect(await refused(unknown)).toContain("HTTP 404");

    const post = (json: unknown) => server.http("/ag-ui/assistant", { method: "POST", json, headers: { authorization: `Bearer ${ALICE}`, accept: "text/event-stream" } });
    expect((await post({ runId: "r1", messages: [] })).status).toBe(400);
    const noUser = await post({ threadId: crypto.randomUUID(), runId: "r1", messages: [{ id: "a", role: "assistant", content: "Hello" }] });
    expect(noUser.status).toBe(400);
    expect(((await noUser.json()) as { error: { code: string } }).error.code).toBe("validation_failed");
    // A message of more than 1,000 content parts is refused (a hostile 199,000 held the loop ~0.3 s).
    const parts = (count: number) => Array.from({ length: count }, () => ({ type: "text", text: "x" }));
    const many = await post({ threadId: crypto.randomUUID(), runId: "r1", messages: [{ id: "u", role: "user", content: parts(1001) }] });
    expect(many.status).toBe(400);
    expect(JSON.stringify(await many.json())).toContain("messages.0.content");
    // An error lists the first 20 issues and counts the rest (10,000 bad messages made a 1.65 MB error).
    const roleless = await post({ threadId: crypto.randomUUID(), runId: "r1", messages: Array.from({ length: 100 }, (_, index) => ({ id: `m${index}`, content: "x" })) });
    expect(roleless.status).toBe(400);
    const refusal = (await roleless.json()) as { error: { message: string; details: { path: string }[] } };
    expect(refusal.error.details.map((issue) => issue.path)).toEqual(Array.from({ length: 20 }, (_, index) => `messages.${index}.role`));
    expect(refusal.error.message).toEndWith("; and 80 more issues");
    // A part's text must be text; the input must be valid Unicode (a lone surrogate is not stored as U+FFFD).
    const numeric = await post({ threadId: crypto.randomUUID(), runId: "r1", messages: [{ id: "u", role: "user", content: [{ type: "text", text: 5 }] }] });
    expect(numeric.status).toBe(400);
    expect(((await numeric.json()) as { error: { details: { path: string }[] } }).error.details[0]!.path).toBe("messages.0.content.0.text");
    const lone = await post({ threadId: crypto.randomUUID(), runId: "r1", messages: [{ id: "u", role: "user", content: "What is 1+1?\ud800" }] });
    expect(lone.status).toBe(400);
    expect(((await lone.json()) as { error: { message: string } }).error.message).toContain("not valid Unicode");
  });
});

describe("a run refused for a full queue", () => {
  test("leaves no thread behind: the thread named by threadId is made only once a run is admitted", async () => {
    const own = await startTestServer({ agents: [{ name: "default", model: "demo/slow" }], config: { maxConcurrentTasks: 1, maxQueuedTasks: 0 } });
    try {
      const busy = await own.createTask({ input: "keeps the only slot" });
      const post = (threadId: string) =>
        own.http("/ag-ui", {
          method: "POST",
          headers: { "content-type": "application/json", accept: "text/event-stream" },
          body: JSON.stringify({ threadId, runId: "r-1", messages: [{ id: "m-1", role: "user", content: "hello" }], tools: [], context: [], state: {}, forwardedProps: {} }),
        });
      const refused = await post("fresh-thread");
      expect(refused.status).toBe(429);
      expect(await refused.json()).toMatchObject({ error: { code: "queue_full" } });
      expect((await own.http("/threads/fresh-thread")).status).toBe(404);
      expect(((await (await own.http("/threads")).json()) as { threads: unknown[] }).threads).toEqual([]);
      await own.http(`/tasks/${busy.id}/cancel`, { method: "POST" });
      // Once admitted, the run makes it.
      const ran = await post("fresh-thread");
      expect(ran.status).toBe(200);
      expect((await own.http("/threads/fresh-thread")).status).toBe(200);
      await ran.body!.cancel(); // the client leaves: its run is cancelled
    } finally {
      await own.close();
    }
  });
});

describe("on_busy interrupt with a full queue", () => {
  test("the thread's earlier tasks are cancelled before the run is counted: the run gets through, as a REST task would", async () => {
    const own = await startTestServer({ agents: [{ name: "default", model: "demo/slow", on_busy: "interrupt" }], config: { maxConcurrentTasks: 1, maxQueuedTasks: 1 } });
    try {
      const thread = (await (await own.http("/threads", { method: "POST" })).json()) as { id: string };
      const first = (await (await own.http(`/threads/${thread.id}/tasks`, { method: "POST", json: { input: "one" } })).json()) as { id: string };
      const second = (await (await own.http(`/threads/${thread.id}/tasks`, { method: "POST", json: { input: "two", on_busy: "enqueue" } })).json()) as { id: string; status: string };
      expect(second.status).toBe("queued"); // the queue is full now
      const run = await own.http("/ag-ui", {
        method: "POST",
        headers: { "content-type": "application/json", accept: "text/event-stream" },
        body: JSON.stringify({ threadId: thread.id, runId: "r-1", messages: [{ id: "m-1", role: "user", content: "three" }], tools: [], context: [], state: {}, forwardedProps: {} }),
      });
      expect(run.status).toBe(200);
      await run.body!.cancel();
      for (const id of [first.id, second.id]) expect(((await (await own.http(`/tasks/${id}`)).json()) as { status: string }).status).toBe("cancelled");
    } finally {
      await own.close();
    }
  });
});

describe("RunTranslator (agentkit frames → AG-UI events)", () => {
  const step = (seq: number, event_type: string, stepNumber: number, data: unknown) => ({ type: "step", seq, data: { event_type, step: stepNumber, data, timestamp: "2026-01-01T00:00:00.000Z" } });
  const delta = (stepNumber: number, text: string, kind = "text") => ({ type: "delta", step: stepNumber, data: { kind, text } });

  /** Translates frames; the events pass the official schemas and the client's own event verifier. */
  async function translate(frames: unknown[]) {
    const translator = new RunTranslator({ threadId: "t", runId: "r", taskId: "task", model: "demo/react" });
    const events = [...translator.start(), ...frames.flatMap((frame) => translator.frame(frame))];
    for (const event of events) expect(EventSchemas.safeParse(event).success).toBe(true);
    const verified = await lastValueFrom(from(events as BaseEvent[]).pipe(verifyEvents(false), toArray()));
    expect(verified).toHaveLength(events.length);
    return { events: events as unknown as BaseEvent[], translator };
  }

  test("missed deltas: the stored text completes each message (a thought, then the final answer), so the content is whole", async () => {
    const { events } = await translate([
      step(1, "usage", 1, { input_tokens: 10, output_tokens: 5 }),
      step(2, "thought", 1, { text: "I'll use the calculator." }),
      step(3, "tool_call", 1, { id: "call_1", name: "calculator", arguments: { expression: "2*2" } }),
      step(4, "tool_result", 1, { id: "call_1", name: "calculator", result: { value: 4 } }),
      delta(2, "2*2"),
      step(5, "usage", 2, { input_tokens: 20, output_tokens: 3 }),
      { type: "result", seq: 6, data: { status: "completed", task_id: "task", stop_reason: "final_answer", output: "2*2 = 4" } },
    ]);
    const contents = ofType<{ messageId: string; delta: string }>(events, "TEXT_MESSAGE_CONTENT");
    expect(contents.filter((event) => event.messageId === "task/step-1/text").map((event) => event.delta).join("")).toBe("I'll use the calculator.");
    expect(contents.filter((event) => event.messageId === "task/step-2/text").map((event) => event.delta)).toEqual(["2*2", " = 4"]);
    expect(ofType(events, "TOOL_CALL_START")[0]).toMatchObject({ toolCallId: "task/call_1", parentMessageId: "task/step-1/text" });
    expect(ofType(events, "RUN_FINISHED")[0]).toMatchObject({ result: "2*2 = 4", usage: [{ provider: "demo", model: "react", inputTokens: 30, outputTokens: 8, totalTokens: 38 }] });
  });

  test("a cancelled task is RUN_FINISHED with the cancelled outcome (AG-UI 1.0), a timed-out one RUN_ERROR; reasoning closes before the run ends", async () => {
    const cancelled = await translate([delta(1, "Thinking", "reasoning"), delta(1, "Hel"), { type: "result", seq: 1, data: { status: "cancelled", task_id: "task", stop_reason: "cancelled" } }]);
    expect(types(cancelled.events).slice(-5)).toEqual(["TEXT_MESSAGE_END", "REASONING_MESSAGE_END", "REASONING_END", "STEP_FINISHED", "RUN_FINISHED"]);
    expect(ofType(cancelled.events, "RUN_FINISHED")[0]).toMatchObject({ outcome: { type: "cancelled" } });
    const timedOut = await translate([{ type: "result", seq: 1, data: { status: "timed_out", task_id: "task", stop_reason: "deadline", error: { code: "deadline", message: "Task exceeded its 10 ms time limit", retryable: true } } }]);
    expect(ofType(timedOut.events, "RUN_ERROR")[0]).toMatchObject({ code: "deadline", message: "Task exceeded its 10 ms time limit" });
  });

  test("an interrupt: open calls become the interrupt outcome, one per call, with the tool call's id", async () => {
    const translator = new RunTranslator({ threadId: "t", runId: "r", taskId: "task" });
    const events = [
      ...translator.start(),
      ...translator.frame(step(1, "tool_call", 1, { id: "call_1", name: "deploy", arguments: { env: "prod" } })),
      ...translator.frame(step(2, "approval_requested", 1, { id: "call_1", name: "deploy", arguments: { env: "prod" }, expires_at: "2030-01-01T00:00:00.000Z" })),
    ];
    expect(translator.waitRequested).toBe(true);
    events.push(...translator.interrupt([{ kind: "approval", callId: "call_1", name: "deploy", arguments: { env: "prod" }, expiresAt: "2030-01-01T00:00:00.000Z" }]));
    for (const event of events) expect(EventSchemas.safeParse(event).success).toBe(true);
    expect(events.at(-1)).toMatchObject({
      type: "RUN_FINISHED",
      outcome: { type: "interrupt", interrupts: [{ id: "task/call_1", toolCallId: "task/call_1", reason: "tool_approval", expiresAt: "2030-01-01T00:00:00.000Z" }] },
    });
    expect(translator.ending).toBe("interrupted");
  });
});
