/** Keys, ownership, browser subprotocol auth, CORS, and per-task / per-key watcher limits. */
import { afterEach, describe, expect, test } from "bun:test";
import type { ModelStreamPart } from "../../src/llm/model.ts";
import { createShareTokens } from "../../src/server/share-tokens.ts";
import { deferred, until, within } from "../helpers/deferred.ts";
import { createScriptedModel } from "../helpers/scripted-model.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import type { TaskStore } from "../../src/store/store.ts";
import { connect } from "../helpers/ws-client.ts";
import { ADMIN, ALICE, BOB, SECRET, as } from "../helpers/tenants.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe("tenant keys", () => {
  test("a key cannot list, read, watch or cancel another key's tasks (404); the admin sees all", async () => {
    server = await startTestServer({ config: { apiKey: ADMIN, apiKeys: `alice:${ALICE},bob:${BOB}` } });
    const alices = await server.createTask({ input: "alice's" }, as(ALICE));
    const bobs = await server.createTask({ input: "bob's" }, as(BOB));
    expect(alices).toMatchObject({ owner: "alice" });

    const list = async (key: string) =>
      ((await (await server!.http("/tasks", { headers: as(key) })).json()) as { tasks: { id: string }[] }).tasks.map((task) => task.id);
    expect(await list(ALICE)).toEqual([alices.id]);
    expect(await list(BOB)).toEqual([bobs.id]);
    expect((await list(ADMIN)).sort()).toEqual([alices.id, bobs.id].sort());

    for (const path of [`/tasks/${bobs.id}`, `/tasks/${bobs.id}/events`]) {
      const response = await server.http(path, { headers: as(ALICE) });
      expect(response.status).toBe(404);
      expect(((await response.json()) as { error: { message: string } }).error.message).toBe(`No task with id '${bobs.id}'`);
    }
    const cancel = await server.http(`/tasks/${bobs.id}/cancel`, { method: "POST", headers: as(ALICE) });
    expect(cancel.status).toBe(404);
    expect((await server.http(`/tasks/${bobs.id}`, { headers: as(BOB) })).status).toBe(200);
    expect((await server.http(`/tasks/${bobs.id}`, { headers: as(ADMIN) })).status).toBe(200);

    const base = `ws://127.0.0.1:${server.port}/ws/tasks`;
    const snooper = await connect(`${base}/${bobs.id}?api_key=${ALICE}`);
    expect(await snooper.closed).toMatchObject({ code: 4404 });
    expect(snooper.frames).toEqual([{ type: "error", data: { message: `No task with id '${bobs.id}'`, code: "not_found" } }]);
    const owner = await connect(`${base}/${bobs.id}?api_key=${BOB}`);
    await owner.result();
    const admin = await connect(`${base}/${alices.id}?api_key=${ADMIN}`);
    await admin.result();
  });

  test("a browser can send its key as a subprotocol; the server answers with 'agentkit', never the key", async () => {
    server = await startTestServer({ config: { apiKey: ADMIN } });
    const task = await server.createTask({ input: "hi" }, as(ADMIN));
    const url = `ws://127.0.0.1:${server.port}/ws/tasks/${task.id}`;
    const browser = await connect(url, ["agentkit", `agentkit.key.${ADMIN}`]);
    await browser.result();
    expect(browser.protocol).toBe("agentkit");
    const wrong = await connect(url, ["agentkit", "agentkit.key.not-the-key"]);
    expect((await wrong.closed).code).toBe(4001);
  });

  test("CORS answers preflights for configured origins only", async () => {
    server = await startTestServer({ config: { corsOrigins: "https://app.example" } });
    const preflight = await server.http("/tasks", {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("https://app.example");
    const other = await server.http("/tasks", { headers: { origin: "https://evil.example" } });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });

  test("without CORS configured, no CORS headers are sent", async () => {
    server = await startTestServer();
    const response = await server.http("/tasks", { headers: { origin: "https://app.example" } });
    expect(response.headers.get("access-control-allow-origin")).toBeNull();
  });
});

/** A JSON-RPC call to the default agent's A2A endpoint. */
function a2aCall(on: TestServer, method: string, params: unknown, options: { id?: number; key?: string; signal?: AbortSignal } = {}): Promise<Response> {
  return on.http("/a2a/default", {
    method: "POST",
    headers: { ...(options.key ? as(options.key) : {}), "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: options.id ?? 1, method, params }),
    signal: options.signal,
  });
}

/** Opens until `open()` answers as `accepted` says (a refused answer's body is let go): that answer. */
async function untilAccepted(open: () => Promise<Response>, accepted: (response: Response) => boolean): Promise<Response> {
  let answer: Response | undefined;
  await until(async () => {
    answer = await open();
    if (accepted(answer)) return true;
    await answer.body?.cancel();
    return false;
  }, "the place to be freed");
  return answer!;
}

const isEventStream = (response: Response) => response.headers.get("content-type")?.startsWith("text/event-stream") === true;

/** How a WebSocket watcher of the task fares: `connected`, its close code, or `none` (neither in time). */
async function watchOutcome(on: TestServer, taskId: string, query?: string, waitMs = 5000): Promise<number | "connected" | "none"> {
  const socket = await on.watch(taskId, query);
  const outcome = await Promise.race([
    socket.closed.then((closed) => closed.code),
    socket.waitFor((frame) => frame.type === "connected", "connected", waitMs).then(() => "connected" as const, () => "none" as const),
  ]);
  socket.close();
  return outcome;
}

describe("watcher limits", () => {
  test("watchers per task: the one over the limit gets an error frame and close 4029", async () => {
    server = await startTestServer({ config: { maxWatchersPerTask: 2 } });
    const task = await server.createTask({ input: "hi" });
    const one = await server.watch(task.id);
    const two = await server.watch(task.id);
    await Promise.all([one.result(), two.result()]);
    const three = await server.watch(task.id);
    expect((await three.closed).code).toBe(4029);
    expect(three.frames[0]).toMatchObject({ type: "error", data: { code: "too_many_watchers" } });
    // A freed slot can be taken again.
    one.close();
    await one.closed;
    const four = await server.watch(task.id);
    await four.result();
  });

  test("SSE streams and WebSocket connections count together: past the limit an SSE stream gets 429 `too_many_watchers`, a WebSocket 4029; a closed stream frees its place", async () => {
    server = await startTestServer({ agents: [{ model: "demo/slow" }], config: { maxWatchersPerTask: 2 } });
    const task = await server.createTask({ input: "a long answer, streamed slowly" });
    const sse = () => server!.http(`/tasks/${task.id}/events`, { headers: { accept: "text/event-stream" } });
    const first = await sse();
    expect(first.status).toBe(200);
    const reader = first.body!.getReader();
    await reader.read(); // the stream is open
    const socket = await server.watch(task.id);
    await socket.waitFor((frame) => frame.type === "connected");
    const refused = await sse();
    expect(refused.status).toBe(429);
    expect(await refused.json()).toEqual({ error: { code: "too_many_watchers", message: "Too many watchers (limit 2 per task)" } });
    const third = await server.watch(task.id);
    expect((await third.closed).code).toBe(4029);
    await reader.cancel(); // the SSE client leaves
    await (await untilAccepted(sse, (response) => response.status === 200)).body!.cancel();
    await server.http(`/tasks/${task.id}/cancel`, { method: "POST" });
  });

  test("A2A subscriptions count with WebSocket and SSE watchers: past the limit `SubscribeToTask` is -32603 naming it; a closed subscription frees its place", async () => {
    server = await startTestServer({ agents: [{ name: "default", model: "demo/slow" }], config: { maxWatchersPerTask: 2 } });
    const task = await server.createTask({ input: "a long answer, streamed slowly" });
    const subscribe = () => a2aCall(server!, "SubscribeToTask", { id: task.id }, { id: 7 });
    const first = await subscribe();
    expect(first.headers.get("content-type")).toStartWith("text/event-stream");
    const reader = first.body!.getReader();
    await reader.read(); // the stream is open (the task comes first)
    const socket = await server.watch(task.id);
    await socket.waitFor((frame) => frame.type === "connected");
    // The third watcher of the task: an A2A subscription is refused, and so is a WebSocket.
    const refused = await subscribe();
    expect(refused.headers.get("content-type")).toStartWith("application/json");
    expect(await refused.json()).toEqual({
      jsonrpc: "2.0",
      id: 7,
      error: { code: -32603, message: "Too many watchers (limit 2 per task); close another watcher of it first" },
    });
    expect((await (await server.watch(task.id)).closed).code).toBe(4029);
    await reader.cancel(); // the A2A client leaves
    await (await untilAccepted(subscribe, isEventStream)).body!.cancel();
    await server.http(`/tasks/${task.id}/cancel`, { method: "POST" });
  });

  test("a streamed A2A message for a running task (an input, which the queue does not admit) counts as a watcher: past the limit -32603", async () => {
    server = await startTestServer({ agents: [{ name: "default", model: "demo/slow" }], config: { maxWatchersPerTask: 1 } });
    const task = await server.createTask({ input: "a long answer, streamed slowly" });
    const socket = await server.watch(task.id);
    await socket.waitFor((frame) => frame.type === "connected"); // the task's one place
    const message = (id: number) =>
      a2aCall(server!, "message/stream", { message: { kind: "message", messageId: `m${id}`, role: "user", taskId: task.id, parts: [{ kind: "text", text: "and also" }] } }, { id });
    // Before: each such message opened a stream past the limit (32 at a time, again after each step).
    for (let id = 1; id <= 3; id++) {
      const refused = await message(id);
      expect(refused.headers.get("content-type")).toStartWith("application/json");
      expect(await refused.json()).toEqual({
        jsonrpc: "2.0",
        id,
        error: { code: -32603, message: "Too many watchers (limit 1 per task); close another watcher of it first" },
      });
    }
    socket.close();
    await (await untilAccepted(() => message(9), isEventStream)).body!.cancel();
    await server.http(`/tasks/${task.id}/cancel`, { method: "POST" });
  });

  test("a streamed A2A message to a busy context that steers its task (on_busy: steer) counts as a watcher of that task: past the limit -32603, the message not delivered", async () => {
    const gate = deferred();
    const step = async function* (): AsyncIterable<ModelStreamPart> {
      await gate.promise; // the task stays in its first step: what is sent to it waits in its inbox
      yield { type: "text-delta", text: "done" };
      yield { type: "finish", finishReason: "stop", usage: { inputTokens: 3, outputTokens: 2 } };
    };
    let store: TaskStore | undefined;
    server = await startTestServer({
      models: { m: createScriptedModel([step], { repeatLast: true }) },
      agents: [{ model: "test/m", on_busy: "steer" }],
      config: { maxWatchersPerTask: 1 },
      wrapStore: (inner: TaskStore) => (store = inner),
    });
    const thread = (await (await server.http("/threads", { method: "POST", json: {} })).json()) as { id: string };
    const task = (await (await server.http(`/threads/${thread.id}/tasks`, { method: "POST", json: { input: "hi" } })).json()) as { id: string };
    const socket = await server.watch(task.id);
    await socket.waitFor((frame) => frame.type === "connected"); // the task's one place
    const steer = (id: number) =>
      a2aCall(server!, "message/stream", { message: { kind: "message", messageId: `s${id}`, role: "user", contextId: thread.id, parts: [{ kind: "text", text: "and also" }] } }, { id });
    const refused = await steer(1);
    expect(refused.headers.get("content-type")).toStartWith("application/json");
    expect(await refused.json()).toEqual({
      jsonrpc: "2.0",
      id: 1,
      error: { code: -32603, message: "Too many watchers (limit 1 per task); close another watcher of it first" },
    });
    expect(await store!.pendingInputs(task.id)).toEqual([]); // not delivered
    socket.close();
    const accepted = await untilAccepted(() => steer(2), isEventStream);
    expect((await store!.pendingInputs(task.id)).map((input) => input.text)).toEqual(["and also"]);
    await accepted.body!.cancel();
    gate.resolve();
    await server.http(`/tasks/${task.id}/cancel`, { method: "POST" });
  });

  test("an A2A subscription frees its place however its stream ends: the task's end, its share token's expiry", async () => {
    const gate = deferred();
    const step = async function* (): AsyncIterable<ModelStreamPart> {
      await gate.promise;
      yield { type: "text-delta", text: "done" };
      yield { type: "finish", finishReason: "stop", usage: { inputTokens: 3, outputTokens: 2 } };
    };
    server = await startTestServer({
      models: { m: createScriptedModel([step], { repeatLast: true }) },
      agents: [{ model: "test/m" }],
      config: { apiKeys: `alice:${ALICE}`, shareSecret: SECRET, maxWatchersPerTask: 1 },
    });
    const subscribe = (taskId: string, key: string) => a2aCall(server!, "SubscribeToTask", { id: taskId }, { key });
    /** The task's one place is free: a WebSocket watcher of it is admitted (not closed 4029). */
    const admitted = (taskId: string) => watchOutcome(server!, taskId, `api_key=${ALICE}`);

    // Its share token expires (a token minted 59 s ago for 60 s): the stream ends, the task runs on.
    const running = await server.createTask({ input: "hi" }, as(ALICE));
    const { token } = createShareTokens({ secret: new TextEncoder().encode(SECRET), now: () => Date.now() - 59_000 }).sign("task", running.id, "alice", 60);
    const expiring = await subscribe(running.id, token);
    expect(expiring.headers.get("content-type")).toStartWith("text/event-stream");
    expect(await admitted(running.id)).toBe(4029); // the subscription holds the place
    await within(expiring.text(), 5000, "the stream to end at the token's expiry");
    expect(await admitted(running.id)).toBe("connected");

    // The task ends: the stream ends with it.
    const ending = await subscribe(running.id, ALICE);
    expect(ending.headers.get("content-type")).toStartWith("text/event-stream");
    const text = ending.text();
    gate.resolve();
    expect(await within(text, 5000, "the stream to end with the task")).toContain("data:");
    expect(await admitted(running.id)).toBe("connected");
  });

  test("an A2A subscription whose client left before its stream started frees its place (the stream is never read)", async () => {
    let hold: PromiseWithResolvers<void> | undefined;
    const entered = deferred();
    server = await startTestServer({
      agents: [{ name: "default", model: "demo/slow" }],
      config: { maxWatchersPerTask: 1, maxConcurrentTasks: 1 },
      // The subscription's read of its task waits while `hold` is set: the client leaves meanwhile.
      wrapStore: (store: TaskStore) =>
        new Proxy(store, {
          get(target, name) {
            const value = Reflect.get(target, name);
            if (typeof value !== "function") return value;
            if (name !== "getTask") return value.bind(target);
            return async (...args: unknown[]) => {
              const gate = hold;
              hold = undefined;
              if (gate) {
                entered.resolve();
                await gate.promise;
              }
              return value.apply(target, args);
            };
          },
        }),
    });
    const running = await server.createTask({ input: "a long answer, streamed slowly" });
    const queued = await server.createTask({ input: "the next one" }); // quiet while it waits: nothing would end its stream
    expect(queued.status).toBe("queued");
    const gate = (hold = deferred());
    const abort = new AbortController();
    const request = a2aCall(server, "SubscribeToTask", { id: queued.id }, { signal: abort.signal }).catch((error: Error) => error);
    await entered.promise;
    abort.abort();
    expect(await request).toBeInstanceOf(Error);
    gate.resolve(); // the server goes on: the place is taken, then the stream starts for nobody
    await until(async () => (await watchOutcome(server!, queued.id, undefined, 2000)) === "connected", "the place to be freed");
    await server.http(`/tasks/${queued.id}/cancel`, { method: "POST" });
    await server.http(`/tasks/${running.id}/cancel`, { method: "POST" });
  });

  test("watchers per key count across tasks", async () => {
    server = await startTestServer({ config: { apiKeys: `alice:${ALICE},bob:${BOB}`, maxWatchersPerKey: 2 } });
    const first = await server.createTask({ input: "a" }, as(ALICE));
    const second = await server.createTask({ input: "b" }, as(ALICE));
    const bobs = await server.createTask({ input: "c" }, as(BOB));
    const base = `ws://127.0.0.1:${server.port}/ws/tasks`;
    await (await connect(`${base}/${first.id}?api_key=${ALICE}`)).result();
    await (await connect(`${base}/${second.id}?api_key=${ALICE}`)).result();
    expect((await (await connect(`${base}/${first.id}?api_key=${ALICE}`)).closed).code).toBe(4029);
    await (await connect(`${base}/${bobs.id}?api_key=${BOB}`)).result();
  });

  test("a client frame over the size limit closes the connection with 1009; the server keeps serving", async () => {
    server = await startTestServer({ config: { maxFrameBytes: 1024 } });
    const task = await server.createTask({ input: "hi" });
    const socket = await server.watch(task.id);
    await socket.result();
    socket.send(JSON.stringify({ type: "ping", padding: "x".repeat(4096) }));
    expect((await socket.closed).code).toBe(1009);
    const next = await server.watch(task.id);
    next.send({ type: "ping" });
    await next.waitFor((frame) => frame.type === "pong");
  });
});
