/**
 * A2A (Agent2Agent) against a real server, driven by `@a2a-js/sdk`'s own client (1.3: protocol
 * v1.0 over JSON-RPC, the card discovered at the well-known path), and its v0.3 compat transport:
 * cards, send (non-blocking and blocking), streams, resubscribe after a drop, cancel that stays
 * canceled, one task seen through A2A, REST and the WebSocket, input-required (approvals and
 * questions) continued with a message, contexts as threads, tenants, keys, JSON-RPC errors.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Role, TaskState, type Message, type Part, type SendMessageRequest, type StreamResponse, type Task as A2ATask } from "@a2a-js/sdk";
import { ClientFactory, ClientFactoryOptions, DefaultAgentCardResolver, JsonRpcTransportFactory, type Client } from "@a2a-js/sdk/client";
import { LegacyJsonRpcTransport } from "@a2a-js/sdk/compat/v0_3/client";
import { TaskNotCancelableError, TaskNotFoundError, UnsupportedOperationError } from "@a2a-js/sdk/errors";
import { until, within } from "../helpers/deferred.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const KEY = "admin-key-0123456789";
const ALICE = "alice-key-0123456789";
const BOB = "bob-key-0123456789ab";

type Json = Record<string, any>;

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({
    agents: [
      { name: "default", model: "demo/react", description: "Does arithmetic and tells the time" },
      { name: "slow", model: "demo/slow" },
      { name: "held", model: "demo/bench", tools: ["calculator"] },
      { name: "ops", model: "demo/react", tools: ["calculator"], approval: ["calculator"] },
      { name: "asker", model: "demo/react", tools: ["ask_user"] },
      { name: "structured", model: "demo/react", output_schema: { type: "object", properties: { value: { type: "number" } } } },
    ],
    config: { apiKey: KEY, apiKeys: `alice:${ALICE},bob:${BOB}` },
  });
});
afterAll(() => server.close());

/** A fetch that sends the key, as an A2A client configured with credentials does. */
function fetchWithKey(key: string): typeof fetch {
  return ((input: string | URL | Request, init?: RequestInit) => {
    const headers = new Headers(init?.headers);
    headers.set("authorization", `Bearer ${key}`);
    return fetch(input, { ...init, headers });
  }) as typeof fetch;
}

/** The SDK's client for an agent, from its card (discovered under the agent's base URL). */
async function clientFor(agent: string, key = KEY): Promise<Client> {
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, { transports: [new JsonRpcTransportFactory({ fetchImpl: fetchWithKey(key) })] }),
  );
  return factory.createFromUrl(`${server.baseUrl}/a2a/${agent}/`);
}

function userMessage(text: string, extra: Partial<Message> = {}): Message {
  return {
    messageId: crypto.randomUUID(),
    contextId: "",
    taskId: "",
    role: Role.ROLE_USER,
    parts: [{ content: { $case: "text", value: text }, metadata: undefined, filename: "", mediaType: "text/plain" }],
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
    ...extra,
  };
}

function request(message: Message, configuration: Partial<NonNullable<SendMessageRequest["configuration"]>> = {}): SendMessageRequest {
  return {
    tenant: "",
    message,
    configuration: { acceptedOutputModes: [], taskPushNotificationConfig: undefined, returnImmediately: false, ...configuration },
    metadata: undefined,
  };
}

function asTask(result: unknown): A2ATask {
  expect(result).toHaveProperty("status");
  return result as A2ATask;
}

function texts(parts: readonly Part[] | undefined): string[] {
  return (parts ?? []).flatMap((part) => (part.content?.$case === "text" ? [part.content.value] : []));
}

function dataOf(parts: readonly Part[] | undefined): Json[] {
  return (parts ?? []).flatMap((part) => (part.content?.$case === "data" ? [part.content.value as Json] : []));
}

/** `metadata.agentkit.seq` of a status update (the agentkit event it carries). */
function seqOf(event: StreamResponse): number | undefined {
  return event.payload?.$case === "statusUpdate" ? (event.payload.value.metadata?.agentkit?.seq as number | undefined) : undefined;
}

async function rest(path: string, init: RequestInit & { key?: string } = {}): Promise<Json> {
  const { key = KEY, ...rest } = init;
  const response = await server.http(path, { ...rest, headers: { authorization: `Bearer ${key}`, ...(rest.headers as Record<string, string>) } });
  expect(response.ok).toBe(true);
  return (await response.json()) as Json;
}

async function restEvents(id: string): Promise<Json[]> {
  return (await rest(`/tasks/${id}/events?limit=1000`)).events as Json[];
}

async function waitForStatus(id: string, statuses: string[], key = KEY): Promise<Json> {
  for (let tries = 0; tries < 800; tries++) {
    const task = await rest(`/tasks/${id}`, { key });
    if (statuses.includes(task.status)) return task;
    await Bun.sleep(25);
  }
  throw new Error(`task ${id} never reached ${statuses.join("/")}`);
}

async function collect(stream: AsyncGenerator<StreamResponse>): Promise<StreamResponse[]> {
  const events: StreamResponse[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

async function rpc(agent: string, body: unknown, key: string | null = KEY, headers: Record<string, string> = {}): Promise<{ status: number; json: Json }> {
  const response = await server.http(`/a2a/${agent}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}), ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Json };
}

describe("agent cards", () => {
  test("the SDK discovers an agent's card under its base URL, and the default agent's at the root", async () => {
    const client = await clientFor("default");
    const card = await client.getAgentCard();
    expect(card.name).toBe("default");
    expect(card.description).toBe("Does arithmetic and tells the time");
    expect(card.capabilities?.streaming).toBe(true);
    expect(card.capabilities?.pushNotifications).toBe(false);
    expect(card.supportedInterfaces.map((i) => [i.url, i.protocolBinding, i.protocolVersion])).toEqual([
      [`${server.baseUrl}/a2a/default`, "JSONRPC", "1.0"],
      [`${server.baseUrl}/a2a/default`, "JSONRPC", "0.3"],
    ]);
    expect(card.defaultOutputModes).toEqual(["text/plain"]);
    expect(card.skills.map((skill) => skill.id)).toEqual(["default", "tool:calculator", "tool:current_time"]);
    expect(card.skills[1]!.description.length).toBeGreaterThan(10);
    // Keys are configured: the card says how to send one (either scheme).
    expect(card.securitySchemes.bearer?.scheme).toEqual({ $case: "httpAuthSecurityScheme", value: expect.objectContaining({ scheme: "Bearer" }) });
    expect(card.securitySchemes.apiKey?.scheme).toEqual({ $case: "apiKeySecurityScheme", value: expect.objectContaining({ location: "header", name: "X-API-Key" }) });
    expect(card.securityRequirements.map((requirement) => Object.keys(requirement.schemes))).toEqual([["bearer"], ["apiKey"]]);

    const root = await new DefaultAgentCardResolver().resolve(`${server.baseUrl}/`);
    expect(root.name).toBe("default");
    expect(root.supportedInterfaces[0]!.url).toBe(`${server.baseUrl}/a2a/default`);
  });

  test("a v0.3 client (no A2A-Version) gets the v0.3 card; an agent with an output_schema also answers JSON; an unknown agent is 404", async () => {
    const legacy = (await (await fetch(`${server.baseUrl}/a2a/slow/.well-known/agent-card.json`)).json()) as Json;
    expect(legacy).toMatchObject({
      protocolVersion: "0.3.0",
      name: "slow",
      url: `${server.baseUrl}/a2a/slow`,
      preferredTransport: "JSONRPC",
      capabilities: { streaming: true, pushNotifications: false },
      security: [{ bearer: [] }, { apiKey: [] }],
      securitySchemes: { bearer: { type: "http", scheme: "bearer" }, apiKey: { type: "apiKey", in: "header", name: "X-API-Key" } },
    });
    const structured = (await (await fetch(`${server.baseUrl}/a2a/structured/.well-known/agent-card.json`, { headers: { "A2A-Version": "1.0" } })).json()) as Json;
    expect(structured.defaultOutputModes).toEqual(["text/plain", "application/json"]);
    expect((await fetch(`${server.baseUrl}/a2a/nope/.well-known/agent-card.json`)).status).toBe(404);
    expect((await fetch(`${server.baseUrl}/a2a/nope`, { method: "POST", headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" }, body: "{}" })).status).toBe(404);
  });

  test("behind a proxy the card's URLs are the forwarded origin, and the answer varies by it (a cache must not share it)", async () => {
    const response = await fetch(`${server.baseUrl}/a2a/slow/.well-known/agent-card.json`, { headers: { "X-Forwarded-Proto": "https", "X-Forwarded-Host": "agents.example.com" } });
    expect(((await response.json()) as Json).url).toBe("https://agents.example.com/a2a/slow");
    const vary = (response.headers.get("vary") ?? "").split(",").map((name) => name.trim().toLowerCase());
    expect(vary).toEqual(expect.arrayContaining(["a2a-version", "host", "x-forwarded-host", "x-forwarded-proto"]));
  });
});

describe("send", () => {
  test("non-blocking: the task at once (submitted, in a new context), then it runs to the answer", async () => {
    const client = await clientFor("default");
    const message = userMessage("What is 2*21?");
    const task = asTask(await client.sendMessage(request(message, { returnImmediately: true })));
    expect(task.status?.state).toBe(TaskState.TASK_STATE_SUBMITTED);
    expect(task.contextId).toStartWith("thr_");
    expect(task.history[0]!.messageId).toBe(message.messageId);
    expect(texts(task.history[0]!.parts)).toEqual(["What is 2*21?"]);
    await waitForStatus(task.id, ["completed"]);
    const done = await client.getTask({ tenant: "", id: task.id });
    expect(done.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(done.artifacts.map((artifact) => [artifact.name, texts(artifact.parts)])).toEqual([["answer", ["2*21 = 42"]]]);
    // The history: the input, then the model's thought (historyLength keeps the latest).
    expect(done.history.map((m) => [m.role, texts(m.parts)[0]])).toEqual([
      [Role.ROLE_USER, "What is 2*21?"],
      [Role.ROLE_AGENT, "I'll compute 2*21 with the calculator."],
    ]);
    const last = await client.getTask({ tenant: "", id: task.id, historyLength: 1 });
    expect(last.history.map((m) => texts(m.parts)[0])).toEqual(["I'll compute 2*21 with the calculator."]);
    expect((await client.getTask({ tenant: "", id: task.id, historyLength: 0 })).history).toEqual([]);
  });

  test("blocking (the SDK's default): answered once the task completed", async () => {
    const client = await clientFor("default");
    const task = asTask(await client.sendMessage(request(userMessage("What is 2*21?"))));
    expect(task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(texts(task.artifacts[0]!.parts)).toEqual(["2*21 = 42"]);
    expect((await rest(`/tasks/${task.id}`)).status).toBe("completed");
  });

  test("blocking on a task longer than the keep-alive: whitespace keeps the connection alive, then the JSON (the SDK parses it)", async () => {
    const input = "What is 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10?";
    const response = await server.http("/a2a/slow", {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "SendMessage", params: { message: { messageId: "m", role: "ROLE_USER", parts: [{ text: input }] } } }),
    });
    const text = await response.text();
    expect(text).toMatch(/^ +\{/);
    expect(JSON.parse(text).result.task.status.state).toBe("TASK_STATE_COMPLETED");
    expect(JSON.parse(text).result.task.artifacts[0].parts[0].text).toBe("1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10 = 55");
  });

  test("refused for a full queue: a message without contextId leaves no empty thread behind (a client retrying made one per attempt)", async () => {
    const full = await startTestServer({ agents: [{ name: "held", model: "demo/bench", tools: ["calculator"] }], config: { apiKey: KEY, maxConcurrentTasks: 1, maxQueuedTasks: 0 } });
    try {
      const auth = { authorization: `Bearer ${KEY}` };
      const busy = await full.createTask({ input: '{"steps":1,"delay_ms":600000}' }, auth);
      const threads = async () => ((await (await full.http("/threads?limit=100", { headers: auth })).json()) as { threads: unknown[] }).threads.length;
      const before = await threads();
      for (let attempt = 0; attempt < 3; attempt++) {
        const response = await full.http("/a2a/held", {
          method: "POST",
          headers: { ...auth, "content-type": "application/json" },
          body: JSON.stringify({ jsonrpc: "2.0", id: attempt, method: "SendMessage", params: { message: { messageId: `m${attempt}`, role: "ROLE_USER", parts: [{ text: "hi" }] } } }),
        });
        const answer = (await response.json()) as Json;
        expect(answer.error?.message).toContain("queue is full");
      }
      expect(await threads()).toBe(before);
      await full.http(`/tasks/${busy.id}/cancel`, { method: "POST", headers: auth });
    } finally {
      await full.close();
    }
  });

  test("blocking: the response's headers come at once, not when the task ends (a client may time out waiting for headers)", async () => {
    const sent = server.http("/a2a/held", {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "SendMessage", params: { message: { messageId: "m", role: "ROLE_USER", parts: [{ text: '{"steps":1,"delay_ms":600000}' }] } } }),
    });
    // The task waits 10 minutes for its model; the headers come within milliseconds. 3 s is below
    // the 5 s keep-alive, whose whitespace carried the headers before.
    const response = await Promise.race([sent, Bun.sleep(3000).then(() => undefined)]);
    expect(response?.status).toBe(200);
    expect(response!.headers.get("content-type")).toBe("application/json");
    const task = ((await rest(`/tasks?status=running&limit=100`)).tasks as Json[]).find((each) => each.agent === "held")!;
    expect(task.status).toBe("running");
    await server.http(`/tasks/${task.id}/cancel`, { method: "POST", headers: { authorization: `Bearer ${KEY}` } });
    const text = await response!.text();
    expect(text).toMatch(/^ +\{/);
    expect(JSON.parse(text).result.task.status.state).toBe("TASK_STATE_CANCELED");
  });

  test("a message with the contextId of an earlier task continues that conversation (one thread)", async () => {
    const client = await clientFor("default");
    const first = asTask(await client.sendMessage(request(userMessage("What is 2*21?"))));
    const second = asTask(await client.sendMessage(request(userMessage("What is 3*3?", { contextId: first.contextId }))));
    expect(second.contextId).toBe(first.contextId);
    expect(second.id).not.toBe(first.id);
    const thread = await rest(`/threads/${first.contextId}`);
    expect(thread.tasks.map((task: Json) => task.id)).toEqual([first.id, second.id]);
    // A context the client names first becomes a thread with that id.
    const named = `ctx-${crypto.randomUUID()}`;
    const third = asTask(await client.sendMessage(request(userMessage("What is 1+1?", { contextId: named }))));
    expect(third.contextId).toBe(named);
    expect((await rest(`/tasks/${third.id}`)).thread_id).toBe(named);
  });

  test("a REST task's own id as contextId: its owner continues it (the REST task is the thread's first turn); another key cannot take it as a context of its own", async () => {
    const made = await server.http("/tasks", { method: "POST", headers: { authorization: `Bearer ${ALICE}` }, json: { input: "What is 5*5?" } });
    const task = (await made.json()) as { id: string };
    await until(async () => (await rest(`/tasks/${task.id}`, { key: ALICE })).status === "completed", "the REST task to end");
    // Bob names Alice's task id as his context: refused as unknown, and nothing is made.
    const bob = await clientFor("default", BOB);
    await expect(bob.sendMessage(request(userMessage("What is 1+1?", { contextId: task.id })))).rejects.toThrow(`Unknown contextId '${task.id}'`);
    expect((await server.http(`/threads/${task.id}`, { headers: { authorization: `Bearer ${ALICE}` } })).status).toBe(404);
    // Alice continues it: a thread of that id, with the REST task first.
    const alice = await clientFor("default", ALICE);
    const next = asTask(await alice.sendMessage(request(userMessage("And 6*6?", { contextId: task.id }))));
    expect(next.contextId).toBe(task.id);
    const thread = await rest(`/threads/${task.id}`, { key: ALICE });
    expect(thread.tasks.map((entry: Json) => entry.id)).toEqual([task.id, next.id]);
    expect((await rest(`/tasks/${task.id}`, { key: ALICE })).thread_id).toBe(task.id);
    // Now a thread: still Alice's alone.
    await expect(bob.sendMessage(request(userMessage("What is 1+1?", { contextId: task.id })))).rejects.toThrow(`Unknown contextId '${task.id}'`);
  });

  test("a REST task still running is not made a thread under its owner's message (two turns of one thread would run at once): continue it with taskId", async () => {
    const made = await server.http("/tasks", { method: "POST", headers: { authorization: `Bearer ${ALICE}` }, json: { input: "Tell me a long story", agent: "slow" } });
    const task = (await made.json()) as { id: string };
    await until(async () => (await rest(`/tasks/${task.id}`, { key: ALICE })).status === "running", "the REST task to run");
    const alice = await clientFor("slow", ALICE);
    await expect(alice.sendMessage(request(userMessage("And then?", { contextId: task.id })))).rejects.toThrow(`contextId '${task.id}' is task ${task.id}, which has not ended (running)`);
    expect((await server.http(`/threads/${task.id}`, { headers: { authorization: `Bearer ${ALICE}` } })).status).toBe(404);
    expect((await rest(`/tasks/${task.id}`, { key: ALICE })).thread_id).toBeNull();
    await server.http(`/tasks/${task.id}/cancel`, { method: "POST", headers: { authorization: `Bearer ${ALICE}` } });
  });
});

describe("streams", () => {
  test("message/stream of a demo/slow task: the task, each event once and in order, the answer artifact, then completed", async () => {
    const client = await clientFor("slow");
    const events = await collect(client.sendMessageStream(request(userMessage("What is 2*21?"))));
    expect(events[0]!.payload?.$case).toBe("task");
    const task = events[0]!.payload!.value as A2ATask;
    expect(task.status?.state).toBe(TaskState.TASK_STATE_SUBMITTED);
    const final = events.at(-1)!;
    expect(final.payload?.$case).toBe("statusUpdate");
    expect(final.payload?.$case === "statusUpdate" && final.payload.value.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    const artifactAt = events.findIndex((event) => event.payload?.$case === "artifactUpdate");
    expect(artifactAt).toBe(events.length - 2);
    const artifact = events[artifactAt]!.payload!.value as { artifact: { parts: Part[] }; lastChunk: boolean };
    expect(texts(artifact.artifact.parts)).toEqual(["2*21 = 42"]);
    expect(artifact.lastChunk).toBe(true);
    // The thought arrives as a working status with the text as its message.
    const thought = events.find((event) => event.payload?.$case === "statusUpdate" && event.payload.value.status?.message);
    expect(thought?.payload?.$case === "statusUpdate" && texts(thought.payload.value.status!.message!.parts)).toEqual(["I'll compute 2*21 with the calculator."]);
    // Every stored event of the task, exactly once, in order (the result last).
    const seqs = events.map(seqOf).filter((seq) => seq !== undefined);
    const log = await restEvents(task.id);
    expect(seqs).toEqual(log.map((frame) => frame.seq));
    expect(log.at(-1)!.type).toBe("result");
  });

  test("resubscribe after dropping a stream mid-task: the task as it is, then the rest, no gap, no duplicate, and the final state", async () => {
    const client = await clientFor("slow");
    const abort = new AbortController();
    const first: StreamResponse[] = [];
    let taskId = "";
    try {
      for await (const event of client.sendMessageStream(request(userMessage("What is 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10?")), { signal: abort.signal })) {
        first.push(event);
        if (event.payload?.$case === "task") taskId = event.payload.value.id;
        // Drop the stream once the first step (thought, tool call) has come: the answer is still typing.
        if (event.payload?.$case === "statusUpdate" && event.payload.value.metadata?.agentkit?.event_type === "tool_call") abort.abort();
      }
    } catch (error) {
      expect((error as Error).name).toBe("AbortError");
    }
    expect(abort.signal.aborted).toBe(true);
    expect((await rest(`/tasks/${taskId}`)).status).toBe("running");

    const second = await collect(client.resubscribeTask({ tenant: "", id: taskId }));
    expect(second[0]!.payload?.$case).toBe("task");
    const snapshot = second[0]!.payload!.value as A2ATask;
    expect(snapshot.status?.state).toBe(TaskState.TASK_STATE_WORKING);
    expect(texts(snapshot.history[1]?.parts)[0]).toStartWith("I'll compute 1 + 2");
    const from = snapshot.metadata?.agentkit?.last_seq as number;
    const seqs = second.map(seqOf).filter((seq) => seq !== undefined);
    const log = await restEvents(taskId);
    // Exactly the events after the snapshot, then the result.
    expect(seqs).toEqual(log.filter((frame) => frame.seq > from).map((frame) => frame.seq));
    const final = second.at(-1)!;
    expect(final.payload?.$case === "statusUpdate" && final.payload.value.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(second.some((event) => event.payload?.$case === "artifactUpdate" && texts(event.payload.value.artifact?.parts).join("") === "1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10 = 55")).toBe(true);
    // What the first stream got and what the second covers leave nothing out.
    const firstSeqs = first.map(seqOf).filter((seq) => seq !== undefined) as number[];
    expect(Math.max(...firstSeqs)).toBeLessThanOrEqual(from);

    // A task that has ended cannot be subscribed to (read it instead).
    await expect(collect(client.resubscribeTask({ tenant: "", id: taskId }))).rejects.toBeInstanceOf(UnsupportedOperationError);
  });
});

describe("a task larger than the slow-client limit", () => {
  test("resubscribe to a running task whose snapshot alone is past AGENTKIT_SLOW_CLIENT_BYTES: the snapshot, then every later event to the final state", async () => {
    const small = await startTestServer({ agents: [{ name: "slow", model: "demo/slow" }], config: { apiKey: KEY, slowClientBytes: 4096 } });
    try {
      const factory = new ClientFactory(
        ClientFactoryOptions.createFrom(ClientFactoryOptions.default, { transports: [new JsonRpcTransportFactory({ fetchImpl: fetchWithKey(KEY) })] }),
      );
      const client = await factory.createFromUrl(`${small.baseUrl}/a2a/slow/`);
      // The input (in the snapshot's history) alone is ~3 times the limit.
      const input = `What is 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10? ${"Take your time. ".repeat(800)}`;
      const task = asTask(await client.sendMessage(request(userMessage(input), { returnImmediately: true })));
      const events = await collect(client.resubscribeTask({ tenant: "", id: task.id }));
      expect(events[0]!.payload?.$case).toBe("task");
      const snapshot = events[0]!.payload!.value as A2ATask;
      expect(texts(snapshot.history[0]?.parts)[0]).toBe(input);
      const final = events.at(-1)!;
      expect(final.payload?.$case === "statusUpdate" && final.payload.value.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
      const from = snapshot.metadata?.agentkit?.last_seq as number;
      const response = await small.http(`/tasks/${task.id}/events?limit=1000`, { headers: { authorization: `Bearer ${KEY}` } });
      const log = ((await response.json()) as { events: Json[] }).events;
      expect(events.map(seqOf).filter((seq) => seq !== undefined)).toEqual(log.filter((frame) => frame.seq > from).map((frame) => frame.seq));
    } finally {
      await small.close();
    }
  });
});

describe("cancel", () => {
  test("tasks/cancel of a running demo/slow task aborts it: canceled, and it stays canceled everywhere", async () => {
    const client = await clientFor("slow");
    const task = asTask(await client.sendMessage(request(userMessage("Tell me a long story about the sea"), { returnImmediately: true })));
    await waitForStatus(task.id, ["running"]);
    const canceled = await client.cancelTask({ tenant: "", id: task.id, metadata: undefined });
    expect(canceled.status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    expect((await rest(`/tasks/${task.id}`)).status).toBe("cancelled");
    // A second later the run that was cut has had every chance to complete: it did not.
    await Bun.sleep(1000);
    const native = await rest(`/tasks/${task.id}`);
    expect(native).toMatchObject({ status: "cancelled", stop_reason: "cancelled", output: null });
    expect((await client.getTask({ tenant: "", id: task.id })).status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    const log = await restEvents(task.id);
    expect(log.filter((frame) => frame.type === "result").map((frame) => frame.data.status)).toEqual(["cancelled"]);
    expect(log.at(-1)!.type).toBe("result");
    // Canceling again answers the canceled task; a completed task cannot be canceled.
    expect((await client.cancelTask({ tenant: "", id: task.id, metadata: undefined })).status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    const done = asTask(await (await clientFor("default")).sendMessage(request(userMessage("What is 2*21?"))));
    await expect((await clientFor("default")).cancelTask({ tenant: "", id: done.id, metadata: undefined })).rejects.toBeInstanceOf(TaskNotCancelableError);
  });

  test("a stream sees a cancel made over REST: its last event is canceled", async () => {
    const client = await clientFor("slow");
    const events: StreamResponse[] = [];
    for await (const event of client.sendMessageStream(request(userMessage("Tell me a long story about the mountains")))) {
      events.push(event);
      if (event.payload?.$case === "task") {
        await waitForStatus(event.payload.value.id, ["running"]);
        await rest(`/tasks/${event.payload.value.id}/cancel`, { method: "POST" });
      }
    }
    const final = events.at(-1)!;
    expect(final.payload?.$case === "statusUpdate" && final.payload.value.status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    expect(events.some((event) => event.payload?.$case === "artifactUpdate")).toBe(false);
  });
});

describe("one task, every endpoint", () => {
  test("a task started over REST is read over A2A (its own id as contextId); one started over A2A is seen over REST and the WebSocket", async () => {
    const client = await clientFor("default");
    const created = await server.createTask({ input: "What is 2*21?" }, { authorization: `Bearer ${KEY}` });
    await waitForStatus(created.id, ["completed"]);
    const read = await client.getTask({ tenant: "", id: created.id });
    expect(read.contextId).toBe(created.id);
    expect(read.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(texts(read.artifacts[0]!.parts)).toEqual(["2*21 = 42"]);

    const message = userMessage("What is 6*7?");
    const started = asTask(await client.sendMessage(request(message, { returnImmediately: true })));
    const native = await waitForStatus(started.id, ["completed"]);
    expect(native).toMatchObject({ agent: "default", input: "What is 6*7?", output: "6*7 = 42", thread_id: started.contextId, metadata: { a2a_message_id: message.messageId } });
    const socket = await server.watch(started.id, `api_key=${KEY}`);
    const result = await socket.result();
    socket.close();
    expect(result).toMatchObject({ type: "result", data: { status: "completed", output: "6*7 = 42" } });
  });
});

describe("retention", () => {
  test("a task whose log retention has pruned part of (a run stopped half-way through it) shows no history past its input, as a pruned one does", async () => {
    const client = await clientFor("default");
    const created = await server.createTask({ input: "What is 2*21?" }, { authorization: `Bearer ${KEY}` });
    const ended = await waitForStatus(created.id, ["completed"]);
    const whole = await client.getTask({ tenant: "", id: created.id });
    expect(whole.history.map((m) => texts(m.parts)[0])).toEqual(["What is 2*21?", "I'll compute 2*21 with the calculator."]);
    // Retention prunes a log from its start, a piece at a time (src/store/sqlite-store.ts): here the
    // first piece only, as a run that stopped after it leaves the log — beside the server, on its file.
    const { Database } = await import("bun:sqlite");
    const db = new Database(`${server.dataDir}/agentkit.sqlite`);
    try {
      db.transaction(() => {
        db.query("DELETE FROM events WHERE task_id = ? AND seq <= 1").run(created.id);
        db.query("UPDATE tasks SET pruned_through = 1 WHERE id = ?").run(created.id);
      })();
    } finally {
      db.close();
    }
    expect(ended.last_seq).toBeGreaterThan(2); // events after the pruned one are left
    const part = await client.getTask({ tenant: "", id: created.id });
    expect(part.history.map((m) => texts(m.parts)[0])).toEqual(["What is 2*21?"]);
    expect(part.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(texts(part.artifacts[0]!.parts)).toEqual(["2*21 = 42"]);
  });
});

describe("retention, mid-read", () => {
  test("a log that retention begins to prune between the task's read and its log's (a hole at its start) is shown as a pruned one, not as a part", async () => {
    const { Database } = await import("bun:sqlite");
    let pruneNext: string | undefined;
    const own = await startTestServer({
      agents: [{ name: "default", model: "demo/react" }],
      config: { apiKey: KEY },
      wrapStore: (store) =>
        new Proxy(store, {
          get(target, property) {
            const value = Reflect.get(target, property, target);
            if (property !== "getTask") return value;
            return async (id: string) => {
              const task = await (value as typeof store.getTask)(id);
              if (task && id === pruneNext) {
                // Retention's first piece lands after this read of the task, before its log is read.
                pruneNext = undefined;
                const db = new Database(`${own.dataDir}/agentkit.sqlite`);
                db.transaction(() => {
                  db.query("DELETE FROM events WHERE task_id = ? AND seq <= 1").run(id);
                  db.query("UPDATE tasks SET pruned_through = 1 WHERE id = ?").run(id);
                })();
                db.close();
              }
              return task;
            };
          },
        }),
    });
    try {
      const created = await own.createTask({ input: "What is 2*21?" }, { authorization: `Bearer ${KEY}` });
      await (await own.watch(created.id, "api_key=" + KEY)).result();
      const get = async () => {
        const response = await fetch(`${own.baseUrl}/a2a/default`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` },
          body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tasks/get", params: { id: created.id } }),
        });
        return ((await response.json()) as { result: { history: { parts: { text?: string }[] }[]; status: { state: string } } }).result;
      };
      pruneNext = created.id;
      const seen = await get();
      expect(pruneNext).toBeUndefined(); // the hole was made between the two reads
      expect(seen.history.map((message) => message.parts[0]?.text)).toEqual(["What is 2*21?"]);
      expect(seen.status.state).toBe("completed");
    } finally {
      await own.close();
    }
  });
});

describe("input-required", () => {
  test("an approval: the blocking send answers input-required with the call; a message 'approve' continues it to the answer", async () => {
    const client = await clientFor("ops");
    const asked = asTask(await client.sendMessage(request(userMessage("What is 6*7?"))));
    expect(asked.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED);
    expect(texts(asked.status?.message?.parts)[0]).toStartWith("Approve the call calculator(");
    const [ask] = dataOf(asked.status?.message?.parts);
    expect(ask).toMatchObject({ type: "approval", name: "calculator", arguments: { expression: "6*7" } });
    expect((await rest(`/tasks/${asked.id}`)).status).toBe("waiting");
    expect((await client.getTask({ tenant: "", id: asked.id })).status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED);

    const done = asTask(await client.sendMessage(request(userMessage("approve", { taskId: asked.id, contextId: asked.contextId }))));
    expect(done.id).toBe(asked.id);
    expect(done.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(texts(done.artifacts[0]!.parts)).toEqual(["6*7 = 42"]);
    const decided = (await restEvents(asked.id)).find((frame) => frame.data?.event_type === "approval_decided");
    expect(decided?.data.data).toMatchObject({ id: ask!.call_id, decision: "approved", by: "admin" });
    // The decision is in the history, as the user's message.
    expect(done.history.some((m) => m.role === Role.ROLE_USER && texts(m.parts)[0] === "approve")).toBe(true);
    // An ended task takes no more messages.
    await expect(client.sendMessage(request(userMessage("approve", { taskId: asked.id })))).rejects.toBeInstanceOf(UnsupportedOperationError);
  });

  test("a decision's text past REST's bounds (a reject reason over 2,000 characters) or not valid Unicode is refused, not stored longer or cut", async () => {
    const client = await clientFor("ops");
    const asked = asTask(await client.sendMessage(request(userMessage("What is 6*7?"))));
    expect(asked.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED);
    await expect(client.sendMessage(request(userMessage(`reject: ${"r".repeat(2001)}`, { taskId: asked.id, contextId: asked.contextId })))).rejects.toThrow("'reason' is longer than 2000 characters");
    await expect(client.sendMessage(request(userMessage("approve \ud800", { taskId: asked.id, contextId: asked.contextId })))).rejects.toThrow("not valid Unicode");
    expect((await rest(`/tasks/${asked.id}`)).status).toBe("waiting"); // nothing was decided
    expect((await restEvents(asked.id)).some((frame) => frame.data?.event_type === "approval_decided")).toBe(false);
  });

  test("resubscribing to a task that already waits for input: the task, input-required, and the stream ends (as it does when the task parks while streamed)", async () => {
    const client = await clientFor("ops");
    const asked = asTask(await client.sendMessage(request(userMessage("What is 4*4?"))));
    expect(asked.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED);
    const events = await within(collect(client.resubscribeTask({ tenant: "", id: asked.id })), 8000, "the resubscribed stream to end");
    expect(events[0]!.payload?.$case).toBe("task");
    expect((events[0]!.payload!.value as A2ATask).status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED);
    const last = events.at(-1)!;
    expect(last.payload?.$case === "statusUpdate" && last.payload.value.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED);
    // It still waits; the decision continues it.
    expect((await rest(`/tasks/${asked.id}`)).status).toBe("waiting");
    const done = asTask(await client.sendMessage(request(userMessage("approve", { taskId: asked.id, contextId: asked.contextId }))));
    expect(done.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
  });

  test("streamed: the stream ends at input-required; 'reject: <reason>' continues it, and the model is told", async () => {
    const client = await clientFor("ops");
    const first = await collect(client.sendMessageStream(request(userMessage("What is 5*5?"))));
    const parked = first.at(-1)!;
    expect(parked.payload?.$case === "statusUpdate" && parked.payload.value.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED);
    const taskId = (first[0]!.payload!.value as A2ATask).id;
    const second = await collect(client.sendMessageStream(request(userMessage("reject: not today", { taskId }))));
    expect(second[0]!.payload?.$case).toBe("task");
    const final = second.at(-1)!;
    expect(final.payload?.$case === "statusUpdate" && final.payload.value.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    const decided = (await restEvents(taskId)).find((frame) => frame.data?.event_type === "approval_decided");
    expect(decided?.data.data).toMatchObject({ decision: "rejected", reason: "not today" });
    expect((await rest(`/tasks/${taskId}`)).output).toContain("The calculator tool failed");
  });

  test("a question (ask_user): its text is the status message, the reply is the answer", async () => {
    const client = await clientFor("asker");
    const asked = asTask(await client.sendMessage(request(userMessage("ask me what is your favourite colour"))));
    expect(asked.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED);
    expect(texts(asked.status?.message?.parts)[0]).toBe("what is your favourite colour?");
    const done = asTask(await client.sendMessage(request(userMessage("blue", { taskId: asked.id }))));
    expect(done.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(texts(done.artifacts[0]!.parts)).toEqual(["You answered: blue"]);
  });
});

describe("keys and tenants", () => {
  test("another key's task is not found (get, cancel, subscribe, message); the admin sees it", async () => {
    const alice = await clientFor("slow", ALICE);
    const bob = await clientFor("slow", BOB);
    const task = asTask(await alice.sendMessage(request(userMessage("Tell me a long story about rivers"), { returnImmediately: true })));
    await expect(bob.getTask({ tenant: "", id: task.id })).rejects.toBeInstanceOf(TaskNotFoundError);
    await expect(bob.cancelTask({ tenant: "", id: task.id, metadata: undefined })).rejects.toBeInstanceOf(TaskNotFoundError);
    await expect(collect(bob.resubscribeTask({ tenant: "", id: task.id }))).rejects.toBeInstanceOf(TaskNotFoundError);
    await expect(bob.sendMessage(request(userMessage("hello", { taskId: task.id })))).rejects.toBeInstanceOf(TaskNotFoundError);
    // Nor is another agent's task found at this agent's endpoint.
    await expect((await clientFor("default", ALICE)).getTask({ tenant: "", id: task.id })).rejects.toBeInstanceOf(TaskNotFoundError);
    expect((await (await clientFor("slow", KEY)).getTask({ tenant: "", id: task.id })).id).toBe(task.id);
    expect((await alice.cancelTask({ tenant: "", id: task.id, metadata: undefined })).status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    expect((await rest(`/tasks/${task.id}`, { key: ALICE })).owner).toBe("alice");
  });

  test("a wrong or missing key is a 401 (the card stays open)", async () => {
    const body = { jsonrpc: "2.0", id: 1, method: "GetTask", params: { id: "x" } };
    expect((await rpc("default", body, "wrong-key-0123456789")).status).toBe(401);
    expect((await rpc("default", body, null)).status).toBe(401);
    const xApiKey = await rpc("default", body, null, { "x-api-key": KEY });
    expect(xApiKey.status).toBe(200);
    expect(xApiKey.json.error.code).toBe(-32001);
    const client = await clientFor("default", "wrong-key-0123456789");
    await expect(client.sendMessage(request(userMessage("What is 2*21?")))).rejects.toThrow(/401/);
  });
});

describe("JSON-RPC", () => {
  test("errors carry the A2A codes", async () => {
    const parse = await rpc("default", "{nope");
    expect(parse).toMatchObject({ status: 200, json: { jsonrpc: "2.0", id: null, error: { code: -32700 } } });
    expect((await rpc("default", { jsonrpc: "2.0", id: 2, method: "Nope" })).json).toMatchObject({ id: 2, error: { code: -32601 } });
    expect((await rpc("default", { jsonrpc: "2.0", id: 3, method: "GetTask", params: {} })).json).toMatchObject({ id: 3, error: { code: -32602 } });
    expect((await rpc("default", { jsonrpc: "1.0", id: 4, method: "GetTask" })).json).toMatchObject({ id: 4, error: { code: -32600 } });
    const missing = (await rpc("default", { jsonrpc: "2.0", id: "a", method: "GetTask", params: { id: "no-such-task" } })).json;
    expect(missing).toMatchObject({ id: "a", error: { code: -32001, data: [{ reason: "TASK_NOT_FOUND", domain: "a2a-protocol.org" }] } });
    expect((await rpc("default", { jsonrpc: "2.0", id: 5, method: "CreateTaskPushNotificationConfig", params: {} })).json.error.code).toBe(-32003);
    // An id past 2^53 lost digits in parsing: refused, not echoed as another id.
    const big = await rpc("default", '{"jsonrpc":"2.0","id":9007199254740993,"method":"GetTask","params":{"id":"x"}}');
    expect(big.json).toMatchObject({ id: null, error: { code: -32600, message: expect.stringContaining("2^53") } });
    // A context id is a thread id: one limit, one message, whatever the length past it.
    for (const length of [129, 300]) {
      for (const field of ["contextId", "taskId"]) {
        const long = { jsonrpc: "2.0", id: 7, method: "SendMessage", params: { message: { messageId: "m", role: "ROLE_USER", [field]: "c".repeat(length), parts: [{ text: "hi" }] } } };
        expect((await rpc("default", long)).json.error).toMatchObject({ code: -32602, message: `message.${field} must be a string of at most 128 characters` });
      }
    }
    const file = { jsonrpc: "2.0", id: 6, method: "SendMessage", params: { message: { messageId: "m", role: "ROLE_USER", parts: [{ url: "https://example.com/a.pdf" }] } } };
    expect((await rpc("default", file)).json.error.code).toBe(-32005);
    const unsupported = await server.http("/a2a/default", { method: "POST", headers: { authorization: `Bearer ${KEY}`, "content-type": "text/plain" }, body: "{}" });
    expect(unsupported.status).toBe(415);
    // Names an object has by inheritance are not methods either.
    for (const [index, method] of ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf"].entries()) {
      expect(await rpc("default", { jsonrpc: "2.0", id: 10 + index, method })).toMatchObject({ status: 200, json: { id: 10 + index, error: { code: -32601 } } });
    }
  });

  test("a notification (no id) gets no answer and does nothing: no task is started", async () => {
    const before = (await rest("/tasks?limit=100")).tasks.length;
    const response = await server.http("/a2a/default", {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", method: "SendMessage", params: { message: { messageId: "n", role: "ROLE_USER", parts: [{ text: "What is 77+1?" }] } } }),
    });
    expect(response.status).toBe(202);
    expect(await response.text()).toBe("");
    expect((await rest("/tasks?limit=100")).tasks.length).toBe(before);
    // An invalid request without an id is still answered, with -32600 and id null (JSON-RPC 2.0's own examples).
    for (const body of [{ jsonrpc: "2.0", method: 1, params: "bar" }, { jsonrpc: "1.0", method: "GetTask" }, {}]) {
      expect(await rpc("default", body)).toMatchObject({ status: 200, json: { id: null, error: { code: -32600 } } });
    }
    // `"id": null` is a request (an answer with id null), not a notification.
    expect((await rpc("default", { jsonrpc: "2.0", id: null, method: "Nope" })).json).toMatchObject({ id: null, error: { code: -32601 } });
  });

  test("v0.3 method names speak v0.3 (the SDK's own compat transport, and raw message/send)", async () => {
    const legacy = new LegacyJsonRpcTransport({ endpoint: `${server.baseUrl}/a2a/default`, fetchImpl: fetchWithKey(KEY) });
    const task = asTask(await legacy.sendMessage(request(userMessage("What is 2*21?"))));
    expect(task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(texts(task.artifacts[0]!.parts)).toEqual(["2*21 = 42"]);
    expect((await legacy.getTask({ tenant: "", id: task.id })).status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    const streamed = await collect(legacy.sendMessageStream(request(userMessage("What is 3*3?"))));
    expect(streamed.at(-1)!.payload?.$case === "statusUpdate" && streamed.at(-1)!.payload!.value).toMatchObject({ status: { state: TaskState.TASK_STATE_COMPLETED } });

    // Raw: without `blocking` a v0.3 send answers at once; the objects carry their `kind`.
    const raw = await rpc("default", { jsonrpc: "2.0", id: 7, method: "message/send", params: { message: { kind: "message", messageId: "m1", role: "user", parts: [{ kind: "text", text: "What is 2*21?" }] } } });
    expect(raw.json.result).toMatchObject({ kind: "task", status: { state: "submitted" }, history: [{ kind: "message", role: "user", parts: [{ kind: "text", text: "What is 2*21?" }] }] });
    await waitForStatus(raw.json.result.id, ["completed"]);
    const got = (await rpc("default", { jsonrpc: "2.0", id: 8, method: "tasks/get", params: { id: raw.json.result.id } })).json.result;
    expect(got).toMatchObject({ kind: "task", status: { state: "completed" }, artifacts: [{ name: "answer", parts: [{ kind: "text", text: "2*21 = 42" }] }] });
  });
});
