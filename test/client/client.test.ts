/**
 * The typed client (src/client) against a real server on loopback: every REST method and its
 * errors, and `watch` — whole tasks, `after=`, deltas, and resuming across forced drops (a slow
 * client closed with 4008, a connection cut by a TCP proxy, a server restart with 1001, a dead
 * connection found by its pings) ending with exactly the stored log; `resync` after retention;
 * abort; refusals that must not be retried. Then: the client imports nothing server-only, and it
 * runs under Node.
 */
import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, connect as tcpConnect, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import {
  AgentkitClientError,
  backoffDelay,
  createClient,
  type AgentkitClient,
  type DurableFrame,
  type WatchFrame,
  type WatchOptions,
} from "../../src/client/index.ts";
import type { ModelStreamPart, ToolCallRequest } from "../../src/llm/model.ts";
import { within } from "../helpers/deferred.ts";
import { answer, callTools, createScriptedModel, type ScriptStep } from "../helpers/scripted-model.ts";
import { startTestServer, tempDir, type TestServer } from "../helpers/server.ts";
import { heldUntil, startFloodServer } from "../helpers/flood.ts";
import { createGateTool } from "../helpers/tools.ts";

const KEY = "client-test-key-0123456789";

let server: TestServer | undefined;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  await server?.close();
  server = undefined;
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

// ---- helpers -------------------------------------------------------------------------------

/** The stored log of a task (REST, every page), each frame as its JSON text. */
async function storedLog(id: string, key?: string): Promise<string[]> {
  const frames: string[] = [];
  for (let after = 0; ; ) {
    const response = await server!.http(`/tasks/${id}/events?after=${after}&limit=1000`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
    expect(response.status).toBe(200);
    const page = (await response.json()) as { events: DurableFrame[] };
    if (page.events.length === 0) return frames;
    frames.push(...page.events.map((event) => JSON.stringify(event)));
    after = page.events.at(-1)!.seq;
  }
}

const durable = (frames: WatchFrame[]) => frames.filter((frame): frame is DurableFrame => frame.type === "step" || frame.type === "result");
const texts = (frames: WatchFrame[]) => durable(frames).map((frame) => JSON.stringify(frame));
const reconnects = (frames: WatchFrame[]) => frames.filter((frame) => frame.type === "reconnecting");

/**
 * Watches in the background, recording every frame; `done` settles when the iterator ends
 * (rejects with what it threw). `waitFor` waits until a recorded frame matches.
 */
function record(client: AgentkitClient, taskId: string, options: WatchOptions = {}) {
  const frames: WatchFrame[] = [];
  let wake: (() => void) | undefined;
  // A watch a failed test leaves behind is stopped after it.
  const stop = new AbortController();
  cleanups.push(() => stop.abort());
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const done = (async () => {
    try {
      for await (const frame of client.watch(taskId, { ...options, signal })) {
        frames.push(frame);
        wake?.();
      }
    } finally {
      wake?.();
    }
  })();
  done.catch(() => {});
  return {
    frames,
    done,
    async waitFor(predicate: (frame: WatchFrame) => boolean, what: string, ms = 10_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const found = frames.find(predicate);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${frames.map((frame) => frame.type).join(",")}`);
        await within(new Promise<void>((resolve) => (wake = resolve)), Math.max(1, deadline - Date.now()), what).catch(() => {});
      }
    },
  };
}

async function collect(iterable: AsyncIterable<WatchFrame>, ms = 15_000): Promise<WatchFrame[]> {
  const frames: WatchFrame[] = [];
  await within(
    (async () => {
      for await (const frame of iterable) frames.push(frame);
    })(),
    ms,
    "the watch to end",
  );
  return frames;
}

async function rejection(promise: Promise<unknown>): Promise<AgentkitClientError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(AgentkitClientError);
    return error as AgentkitClientError;
  }
  throw new Error("expected a rejection");
}

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await Bun.sleep(5);
  }
}

/**
 * A TCP proxy on loopback between the client and the server: it can stop reading from the server
 * (the client looks like one that stopped reading), freeze both ways (a dead network), cut every
 * connection, or point new connections at another port (a restarted server).
 */
interface Proxy {
  port: number;
  url: string;
  target: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Connections open now. */
  readonly open: number;
  pauseUpstream(): void;
  resumeUpstream(): void;
  freeze(): void;
  cut(): void;
  close(): Promise<void>;
}

async function startProxy(target: number): Promise<Proxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket; paused: boolean }>();
  let connections = 0;
  const listener: Server = createServer((client) => {
    connections++;
    const upstream = tcpConnect({ host: "127.0.0.1", port: proxy.target });
    const pair = { client, upstream, paused: false };
    pairs.add(pair);
    client.on("data", (chunk) => upstream.write(chunk));
    upstream.on("data", (chunk) => client.write(chunk));
    // The server closing its side is passed on after what it sent: `end()` flushes the writes still
    // queued for the client (a slow reader's last frames and its close frame), where `destroy()`
    // dropped them (the client saw 1006 instead of the server's close code). The client leaving
    // leaves nothing to deliver.
    // The pair counts as open until the client's side has closed (`cut()` still reaches it).
    upstream.on("close", () => client.end());
    client.on("close", () => {
      pairs.delete(pair);
      upstream.destroy();
    });
    client.on("error", () => {});
    upstream.on("error", () => {});
  });
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const port = (listener.address() as { port: number }).port;
  const proxy: Proxy = {
    port,
    url: `http://127.0.0.1:${port}`,
    target,
    get connections() {
      return connections;
    },
    get open() {
      return pairs.size;
    },
    pauseUpstream() {
      for (const pair of pairs) pair.upstream.pause();
    },
    resumeUpstream() {
      for (const pair of pairs) pair.upstream.resume();
    },
    freeze() {
      for (const pair of pairs) {
        pair.upstream.pause();
        pair.client.pause();
        pair.upstream.removeAllListeners("data");
        pair.client.removeAllListeners("data");
      }
    },
    cut() {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      pairs.clear();
    },
    close() {
      proxy.cut();
      return new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
  cleanups.push(() => proxy.close());
  return proxy;
}

/** A WebSocket class that records the URL of every connection it opens. */
function recordingWebSocket(urls: string[]) {
  return class extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      urls.push(url);
    }
  };
}

/** A model that calls the calculator `steps` times, `delayMs` apart, then answers. */
function pacedModel(steps: number, delayMs: number) {
  const step: ScriptStep = async function* (request) {
    const done = request.messages.filter((message) => message.role === "tool").length;
    await Bun.sleep(delayMs);
    if (done >= steps) {
      yield { type: "text-delta", text: `did ${steps} sums` };
      yield { type: "finish", finishReason: "stop", usage: { inputTokens: 1, outputTokens: 1 } };
      return;
    }
    const call: ToolCallRequest = { id: `c${done}`, name: "calculator", arguments: JSON.stringify({ expression: `${done} + 1` }) };
    yield { type: "tool-call", call } satisfies ModelStreamPart;
    yield { type: "finish", finishReason: "tool-calls", usage: { inputTokens: 1, outputTokens: 1 } };
  };
  return createScriptedModel([step], { repeatLast: true });
}

// ---- REST ----------------------------------------------------------------------------------

describe("REST", () => {
  test("agents, tasks (create, get, list, events, cancel) and their errors", async () => {
    server = await startTestServer({ agents: [{}, { name: "careful", tools: ["calculator"], approval: ["calculator"] }] });
    const client = createClient({ url: server.baseUrl });

    const agents = await client.agents.list();
    expect(agents.map((agent) => agent.name)).toEqual(["default", "careful"]);
    expect(agents[0]).toMatchObject({ default: true, model: "demo/react", approval: [] });
    expect(agents[1]).toMatchObject({ default: false, approval: ["calculator"], output_schema: null });

    const task = await client.tasks.create({ input: "What is 6*7?", metadata: { from: "client" } });
    expect(task).toMatchObject({ input: "What is 6*7?", agent: "default", metadata: { from: "client" }, thread_id: null });
    expect(task.steered).toBeUndefined();
    await collect(client.watch(task.id));
    const done = await client.tasks.get(task.id);
    expect(done).toMatchObject({ id: task.id, status: "completed", output: "6*7 = 42" });

    const second = await client.tasks.create({ input: "What is 1+1?" });
    await collect(client.watch(second.id));
    const first = await client.tasks.list({ limit: 1 });
    expect(first.tasks.map((t) => t.id)).toEqual([second.id]);
    expect(first.next_cursor).toEqual(expect.any(String));
    const rest = await client.tasks.list({ limit: 1, cursor: first.next_cursor! });
    expect(rest.tasks.map((t) => t.id)).toEqual([task.id]);
    expect((await client.tasks.list({ status: "completed" })).tasks).toHaveLength(2);
    expect((await client.tasks.list({ status: "running" })).tasks).toHaveLength(0);

    const events = await client.tasks.events(task.id);
    expect(events).toMatchObject({ task_id: task.id, status: "completed", last_seq: done.last_seq, pruned_through: 0 });
    expect(events.events.map((event) => event.seq)).toEqual(Array.from({ length: done.last_seq }, (_, index) => index + 1));
    expect(events.events.at(-1)).toMatchObject({ type: "result", data: { output: "6*7 = 42" } });
    expect((await client.tasks.events(task.id, { after: 2, limit: 2 })).events.map((event) => event.seq)).toEqual([3, 4]);

    // Cancel is idempotent: a completed task stays completed.
    expect(await client.tasks.cancel(task.id)).toMatchObject({ id: task.id, status: "completed" });

    // Errors carry the server's status, code, message and details.
    const empty = await rejection(client.tasks.create({ input: "" }));
    expect(empty).toMatchObject({ status: 400, code: "validation_failed", name: "AgentkitClientError" });
    expect(empty.details).toEqual([expect.objectContaining({ path: "input" })]);
    const unknownAgent = await rejection(client.tasks.create({ input: "hi", agent: "nobody" }));
    expect(unknownAgent).toMatchObject({ status: 400, code: "validation_failed" });
    expect(unknownAgent.message).toContain("careful");
    expect(await rejection(client.tasks.get("no-such-task"))).toMatchObject({ status: 404, code: "not_found", message: "No task with id 'no-such-task'" });
    expect(await rejection(client.tasks.cancel("no-such-task"))).toMatchObject({ status: 404, code: "not_found" });
    expect(await rejection(client.tasks.events(task.id, { after: 99 }))).toMatchObject({ status: 400, code: "bad_request" });
    expect(await rejection(client.tasks.list({ limit: 0 }))).toMatchObject({ status: 400, code: "validation_failed" });
    // Ids are escaped into the path, never interpreted.
    expect(await rejection(client.tasks.get("../agents"))).toMatchObject({ status: 404, code: "not_found" });
  });

  test("approvals, rejections, steering input; threads", async () => {
    server = await startTestServer({ agents: [{}, { name: "careful", tools: ["calculator"], approval: ["calculator"] }] });
    const client = createClient({ url: server.baseUrl });

    // Approve: the held calculator call runs and the task completes.
    const task = await client.tasks.create({ input: "What is 2+3?", agent: "careful" });
    const watcher = record(client, task.id);
    const requested = (await watcher.waitFor((frame) => frame.type === "step" && frame.data.event_type === "approval_requested", "approval_requested")) as DurableFrame;
    const callId = (requested.data as { data: { id: string } }).data.id;
    await until(async () => (await client.tasks.get(task.id)).status === "waiting", "the task to wait");
    const input = await client.tasks.input(task.id, "please hurry");
    expect(input).toEqual({ task_id: task.id, input_id: expect.any(String) });
    expect(await rejection(client.tasks.approve(task.id, "no-such-call"))).toMatchObject({ status: 404, code: "not_found" });
    const approved = await client.tasks.approve(task.id, callId);
    expect(approved.id).toBe(task.id);
    await within(watcher.done, 10_000, "the approved task to end");
    const result = watcher.frames.at(-1)!;
    expect(result).toMatchObject({ type: "result", data: { status: "completed" } });
    const log = await storedLog(task.id);
    expect(texts(watcher.frames)).toEqual(log);
    const types = log.map((text) => JSON.parse(text).data.event_type ?? "result");
    expect(types).toContain("approval_decided");
    expect(types).toContain("user_input");
    expect(types).toContain("tool_result");
    expect(await rejection(client.tasks.approve(task.id, callId))).toMatchObject({ status: 409, code: "conflict" });
    expect(await rejection(client.tasks.input(task.id, "too late"))).toMatchObject({ status: 409, code: "conflict" });

    // Reject, with a reason: the model reads a tool_error.
    const other = await client.tasks.create({ input: "What is 4+4?", agent: "careful" });
    const held = record(client, other.id);
    const asked = (await held.waitFor((frame) => frame.type === "step" && frame.data.event_type === "approval_requested", "approval_requested")) as DurableFrame;
    await client.tasks.reject(other.id, (asked.data as { data: { id: string } }).data.id, "not now");
    await within(held.done, 10_000, "the rejected task to end");
    const decided = durable(held.frames).find((frame) => frame.type === "step" && frame.data.event_type === "approval_decided")!;
    expect(decided.data).toMatchObject({ data: { decision: "rejected", reason: "not now" } });
    expect(durable(held.frames).some((frame) => frame.type === "step" && frame.data.event_type === "tool_error")).toBe(true);

    // Threads.
    const thread = await client.threads.create();
    expect(thread.id).toStartWith("thr_");
    expect(thread).toMatchObject({ task_count: 0, last_task_id: null });
    const inThread = await client.threads.createTask(thread.id, { input: "What is 3*3?" });
    expect(inThread).toMatchObject({ thread_id: thread.id, input: "What is 3*3?" });
    await collect(client.watch(inThread.id));
    const viaTasks = await client.tasks.create({ input: "What is 5*5?", thread_id: thread.id });
    expect(viaTasks.thread_id).toBe(thread.id);
    await collect(client.watch(viaTasks.id));
    const shown = await client.threads.get(thread.id);
    expect(shown).toMatchObject({ id: thread.id, task_count: 2, last_task_id: viaTasks.id, tasks_truncated: false });
    expect(shown.tasks.map((t) => t.id)).toEqual([inThread.id, viaTasks.id]);
    expect((await client.threads.list()).threads.map((t) => t.id)).toEqual([thread.id]);
    expect((await client.threads.list({ limit: 1 })).next_cursor).toBeNull();
    expect(await rejection(client.threads.get("thr_nope"))).toMatchObject({ status: 404, code: "not_found" });
    expect(await rejection(client.threads.createTask("thr_nope", { input: "x" }))).toMatchObject({ status: 404, code: "not_found" });
  });

  test("answer to ask_user, and a steered thread input (202) comes back as the running task with steered.input_id", async () => {
    const question: ToolCallRequest = { id: "q1", name: "ask_user", arguments: JSON.stringify({ question: "Which colour?" }) };
    const gate = createGateTool();
    const model = createScriptedModel([
      callTools([question]),
      (request) => [
        { type: "text-delta", text: `you said ${(request.messages.at(-1) as { content: string }).content}` },
        { type: "finish", finishReason: "stop", usage: { inputTokens: 1, outputTokens: 1 } },
      ],
      callTools([{ id: "w", name: "wait", arguments: "{}" }]),
      answer("steered and done"),
    ]);
    server = await startTestServer({ models: { m: model }, tools: [gate.tool], agents: [{ model: "test/m", tools: ["ask_user", "wait"] }] });
    const client = createClient({ url: server.baseUrl });

    const task = await client.tasks.create({ input: "ask me" });
    const watcher = record(client, task.id);
    await watcher.waitFor((frame) => frame.type === "step" && frame.data.event_type === "question", "the question");
    expect(await rejection(client.tasks.approve(task.id, "q1"))).toMatchObject({ status: 400 });
    expect((await client.tasks.answer(task.id, "q1", "blue")).id).toBe(task.id);
    await within(watcher.done, 10_000, "the answered task to end");
    expect(watcher.frames.at(-1)).toMatchObject({ type: "result", data: { status: "completed", output: expect.stringContaining("blue") } });

    const thread = await client.threads.create();
    const running = await client.threads.createTask(thread.id, { input: "wait" });
    await within(gate.started, 10_000, "the thread's task to run its tool");
    const steered = await client.threads.createTask(thread.id, { input: "change of plan", on_busy: "steer" });
    expect(steered).toMatchObject({ id: running.id, steered: { input_id: expect.any(String) } });
    gate.release();
    const frames = await collect(client.watch(running.id));
    expect(frames.at(-1)).toMatchObject({ type: "result", data: { status: "completed" } });
    expect(durable(frames).some((frame) => frame.type === "step" && frame.data.event_type === "user_input")).toBe(true);
  });

  test("keys: sent as a Bearer header (REST) and as a subprotocol (watch), never in a URL; a wrong one is 401 / close 4001 with no retry", async () => {
    server = await startTestServer({ config: { apiKey: KEY } });
    const urls: string[] = [];
    const headers: Headers[] = [];
    const protocols: (string | string[] | undefined)[] = [];
    class RecordingWebSocket extends WebSocket {
      constructor(url: string, offered?: string | string[]) {
        super(url, offered);
        urls.push(url);
        protocols.push(offered);
      }
    }
    const recordingFetch = (input: string, init: RequestInit) => {
      urls.push(input);
      headers.push(new Headers(init.headers));
      return fetch(input, init);
    };
    const client = createClient({ url: server.baseUrl, apiKey: KEY, fetch: recordingFetch, WebSocket: RecordingWebSocket });
    const task = await client.tasks.create({ input: "What is 2*21?" });
    const frames = await collect(client.watch(task.id));
    expect(frames.at(-1)).toMatchObject({ type: "result", data: { output: "2*21 = 42" } });
    expect(headers[0]!.get("authorization")).toBe(`Bearer ${KEY}`);
    expect(protocols).toEqual([["agentkit", `agentkit.key.${KEY}`]]);
    expect(urls.some((url) => url.includes(KEY))).toBe(false);

    const wrong = createClient({ url: server.baseUrl, apiKey: "wrong-key-0123456789" });
    expect(await rejection(wrong.tasks.get(task.id))).toMatchObject({ status: 401, code: "unauthorized" });
    expect(await rejection(createClient({ url: server.baseUrl }).agents.list())).toMatchObject({ status: 401, code: "unauthorized" });

    const refused = record(wrong, task.id);
    const error = await rejection(within(refused.done, 5000, "the refused watch to end"));
    expect(error).toMatchObject({ status: 401, code: "unauthorized", closeCode: 4001, message: "Invalid or missing api_key" });
    expect(refused.frames).toEqual([]); // no reconnecting frame: not retried
  });

  test("an unreachable server or a non-JSON answer is an AgentkitClientError too", async () => {
    const proxy = await startProxy(1);
    await proxy.close(); // its port is free now: nothing listens there
    const nowhere = createClient({ url: proxy.url });
    expect(await rejection(nowhere.agents.list())).toMatchObject({ status: 0, code: "network_error" });
    const html = createClient({ url: "http://127.0.0.1:1", fetch: async () => new Response("<html>Bad gateway</html>", { status: 502 }) });
    const error = await rejection(html.tasks.get("x"));
    expect(error).toMatchObject({ status: 502, code: "unavailable" });
    expect(error.message).toContain("Bad gateway");
    const notJson = createClient({ url: "http://127.0.0.1:1", fetch: async () => new Response("hello", { status: 200 }) });
    expect(await rejection(notJson.tasks.get("x"))).toMatchObject({ status: 200, code: "bad_response" });
    expect(() => createClient({ url: "ftp://example.com" })).toThrow(AgentkitClientError);
  });
});

// ---- watch ---------------------------------------------------------------------------------

describe("watch", () => {
  test("a live task: every durable frame once, in order, deltas as they stream, and it ends at result; after=N and deltas=false", async () => {
    server = await startTestServer({ agents: [{ model: "demo/slow" }] });
    const client = createClient({ url: server.baseUrl });
    const task = await client.tasks.create({ input: "What is 12 * (3 + 4)?" });
    const quiet = await client.tasks.create({ input: "What is 2 + 2?" });
    const [frames, noDeltas] = await Promise.all([collect(client.watch(task.id)), collect(client.watch(quiet.id, { deltas: false }))]);
    expect(frames[0]).toMatchObject({ type: "connected", task_id: task.id });
    expect(frames.at(-1)).toMatchObject({ type: "result", data: { status: "completed", output: "12 * (3 + 4) = 84" } });
    expect(frames.filter((frame) => frame.type === "result")).toHaveLength(1);
    expect(frames.filter((frame) => frame.type === "delta").length).toBeGreaterThan(1);
    expect(reconnects(frames)).toEqual([]);
    const log = await storedLog(task.id);
    expect(texts(frames)).toEqual(log);

    const resumed = await collect(client.watch(task.id, { after: 3 }));
    expect(resumed[0]).toMatchObject({ type: "connected", status: "completed", last_seq: log.length });
    expect(texts(resumed)).toEqual(log.slice(3));
    // The caller has everything: connected, then the end.
    expect(await collect(client.watch(task.id, { after: log.length }))).toEqual([
      { type: "connected", task_id: task.id, status: "completed", last_seq: log.length },
    ]);
    expect(await rejection(collect(client.watch(task.id, { after: log.length + 1 })))).toMatchObject({ status: 400, code: "bad_request", closeCode: 4400 });
    expect(await rejection(collect(client.watch(task.id, { after: -1 })))).toMatchObject({ code: "bad_request" });

    expect(noDeltas.at(-1)).toMatchObject({ type: "result", data: { output: "2 + 2 = 4" } });
    expect(noDeltas.filter((frame) => frame.type === "delta")).toEqual([]);
    expect(texts(noDeltas)).toEqual(await storedLog(quiet.id));
  });

  test("an unknown task ends the watch with not_found (404, close 4404), not a retry loop", async () => {
    server = await startTestServer();
    const client = createClient({ url: server.baseUrl });
    const watcher = record(client, "no-such-task");
    const error = await rejection(within(watcher.done, 5000, "the watch to end"));
    expect(error).toMatchObject({ status: 404, code: "not_found", closeCode: 4404, message: "No task with id 'no-such-task'" });
    expect(watcher.frames).toEqual([]);
  });

  test("resume after 4008: a watcher whose connection stopped reading is closed as too slow, reconnects with after= and ends with exactly the stored log", async () => {
    const steps = 300;
    const release = Promise.withResolvers<void>();
    server = await startFloodServer(steps, heldUntil(release.promise), { slowClientBytes: 64 * 1024 });
    const proxy = await startProxy(server.port);
    const client = createClient({ url: proxy.url });
    const task = await client.tasks.create({ input: "flood" });
    const watcher = record(client, task.id, { deltas: false });
    await watcher.waitFor((frame) => frame.type === "connected", "connected");
    proxy.pauseUpstream(); // the client's connection stops reading
    release.resolve();
    // (Asked directly: the proxy's connections, the client's REST one too, are not reading.)
    await until(async () => ((await (await server!.http(`/tasks/${task.id}`)).json()) as { status: string }).status === "completed", "the flood to end", 30_000);
    proxy.resumeUpstream();
    await within(watcher.done, 30_000, "the watch to end");

    const log = await storedLog(task.id);
    expect(log.length).toBe(steps * 3 + 2);
    expect(texts(watcher.frames)).toEqual(log);
    const reasons = reconnects(watcher.frames).map((frame) => frame.type === "reconnecting" && frame.reason);
    expect(reasons.length).toBeGreaterThan(0);
    expect(reasons[0]).toStartWith("close 4008");
    expect(watcher.frames.at(-1)).toMatchObject({ type: "result", data: { status: "completed" } });
  }, 60_000);

  test("resume after the connection is cut (twice) mid-stream: exactly the stored log, in order, no duplicate", async () => {
    server = await startTestServer({ models: { m: pacedModel(60, 15) }, agents: [{ model: "test/m", tools: ["calculator"], max_steps: 70 }] });
    const proxy = await startProxy(server.port);
    const urls: string[] = [];
    const client = createClient({ url: proxy.url, WebSocket: recordingWebSocket(urls) });
    const task = await client.tasks.create({ input: "count" });
    const watcher = record(client, task.id);
    await watcher.waitFor((frame) => frame.type === "step" && frame.seq >= 10, "seq 10");
    proxy.cut();
    await watcher.waitFor((frame) => frame.type === "step" && frame.seq >= 60, "seq 60");
    proxy.cut();
    await within(watcher.done, 20_000, "the watch to end");
    const log = await storedLog(task.id);
    expect(log.length).toBe(60 * 3 + 2);
    expect(texts(watcher.frames)).toEqual(log);
    const again = reconnects(watcher.frames);
    expect(again).toHaveLength(2);
    // Frames came between the drops, so each is a first attempt again.
    for (const frame of again) expect(frame).toMatchObject({ type: "reconnecting", attempt: 1, reason: expect.stringContaining("1006") });
    expect(watcher.frames.filter((frame) => frame.type === "connected")).toHaveLength(3);
    // Each reconnect asked for what came after the last durable frame it had yielded.
    const lastSeqBefore = (frame: WatchFrame) => durable(watcher.frames.slice(0, watcher.frames.indexOf(frame))).at(-1)!.seq;
    expect(urls.map((url) => new URL(url).searchParams.get("after"))).toEqual(["0", ...again.map((frame) => String(lastSeqBefore(frame)))]);
  });

  test("resume across a server restart (1001): the task resumes on the next start and the watch ends with exactly its stored log", async () => {
    const dataDir = tempDir();
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const gate = createGateTool();
    const agents = [{ model: "test/m", tools: ["wait"] }];
    server = await startTestServer({ dataDir, models: { m: createScriptedModel([callTools([{ id: "w", name: "wait", arguments: "{}" }], "waiting")]) }, tools: [gate.tool], agents });
    const proxy = await startProxy(server.port);
    const client = createClient({ url: proxy.url });
    const task = await client.tasks.create({ input: "wait, then go on" });
    const watcher = record(client, task.id);
    await within(gate.started, 10_000, "the tool to start");
    await watcher.waitFor((frame) => frame.type === "step" && frame.data.event_type === "tool_call", "the tool call");

    await server.close({ keepData: true }); // hands the task over: its watchers get 1001
    server = undefined;
    await watcher.waitFor((frame) => frame.type === "reconnecting", "a reconnecting frame");
    await Bun.sleep(300); // it keeps retrying while nothing listens
    server = await startTestServer({ dataDir, models: { m: createScriptedModel([answer("picked up where it stopped")]) }, tools: [gate.tool], agents });
    proxy.target = server.port;
    await within(watcher.done, 20_000, "the watch to end");

    expect(watcher.frames.at(-1)).toMatchObject({ type: "result", data: { status: "completed", output: "picked up where it stopped" } });
    const log = await storedLog(task.id);
    expect(texts(watcher.frames)).toEqual(log);
    expect(log.map((text) => JSON.parse(text).data.event_type ?? "result")).toEqual(["usage", "thought", "tool_call", "resumed", "tool_error", "usage", "result"]);
    const again = reconnects(watcher.frames);
    expect(again[0]).toMatchObject({ attempt: 1, reason: expect.stringMatching(/^close 1001/) });
    expect(again.length).toBeGreaterThan(1); // the restart took more than one try
  });

  test("a connection that hears nothing (not even a pong) for twice the ping interval is replaced", async () => {
    const gate = createGateTool();
    server = await startTestServer({ models: { m: createScriptedModel([callTools([{ id: "w", name: "wait", arguments: "{}" }]), answer("done")]) }, tools: [gate.tool], agents: [{ model: "test/m", tools: ["wait"] }] });
    const proxy = await startProxy(server.port);
    const client = createClient({ url: proxy.url });
    const task = await client.tasks.create({ input: "wait" });
    const watcher = record(client, task.id, { pingIntervalMs: 100 });
    await within(gate.started, 10_000, "the tool to start");
    await watcher.waitFor((frame) => frame.type === "step" && frame.data.event_type === "tool_call", "the tool call");
    await Bun.sleep(350); // pings and pongs keep a quiet, healthy connection
    expect(reconnects(watcher.frames)).toEqual([]);
    proxy.freeze(); // a dead network: nothing gets through, nothing is closed
    const dead = await watcher.waitFor((frame) => frame.type === "reconnecting", "the dead connection to be noticed", 5000);
    expect(dead).toMatchObject({ attempt: 1, reason: expect.stringContaining("no answer from the server") });
    await watcher.waitFor((frame) => frame.type === "connected" && watcher.frames.indexOf(frame) > watcher.frames.indexOf(dead), "a new connection");
    gate.release();
    await within(watcher.done, 10_000, "the watch to end");
    expect(texts(watcher.frames)).toEqual(await storedLog(task.id));
  });

  test("resync: events pruned by retention are replaced by the snapshot, and the watch goes on after pruned_through (or ends when all of it was pruned)", async () => {
    server = await startTestServer();
    const client = createClient({ url: server.baseUrl });
    const partly = await client.tasks.create({ input: "What is 5 * 5?" });
    await collect(client.watch(partly.id));
    const log = await storedLog(partly.id);
    expect(log).toHaveLength(6);
    // Prune the first three events, as retention would (it prunes whole logs; this cuts a prefix).
    const db = new Database(join(server.dataDir, "agentkit.sqlite"));
    db.run("PRAGMA busy_timeout = 5000");
    db.query("DELETE FROM events WHERE task_id = ? AND seq <= 3").run(partly.id);
    db.query("UPDATE tasks SET pruned_through = 3 WHERE id = ?").run(partly.id);
    db.close();
    const frames = await collect(client.watch(partly.id));
    expect(frames.map((frame) => frame.type)).toEqual(["connected", "resync", "step", "step", "result"]);
    expect(frames[1]).toMatchObject({ type: "resync", data: { task_id: partly.id, status: "completed", last_seq: 6, pruned_through: 3, error: null } });
    expect(texts(frames)).toEqual(log.slice(3));
    expect(texts(await collect(client.watch(partly.id, { after: 4 })))).toEqual(log.slice(4));

    const whole = await client.tasks.create({ input: "What is 2 * 8?" });
    await collect(client.watch(whole.id));
    expect(await server.store.pruneEvents(new Date(Date.now() + 60_000))).toBeGreaterThanOrEqual(1);
    expect((await client.tasks.events(whole.id)).events).toEqual([]);
    const snapshot = await collect(client.watch(whole.id), 5000);
    expect(snapshot.map((frame) => frame.type)).toEqual(["connected", "resync"]);
    expect(snapshot[1]).toMatchObject({ data: { status: "completed", output: "2 * 8 = 16", pruned_through: 6, last_seq: 6 } });
  });

  test("abort: ends the iterator promptly (waiting for a frame, or between reconnects), closes the socket, and does not cancel the task", async () => {
    const gate = createGateTool();
    server = await startTestServer({ models: { m: createScriptedModel([callTools([{ id: "w", name: "wait", arguments: "{}" }]), answer("done")]) }, tools: [gate.tool], agents: [{ model: "test/m", tools: ["wait"] }] });
    const proxy = await startProxy(server.port);
    const client = createClient({ url: proxy.url });
    const task = await client.tasks.create({ input: "wait" });
    const controller = new AbortController();
    const watcher = record(client, task.id, { signal: controller.signal });
    await within(gate.started, 10_000, "the tool to start");
    await watcher.waitFor((frame) => frame.type === "step" && frame.data.event_type === "tool_call", "the tool call");
    const open = proxy.open; // the REST connection (kept alive) and the watch's
    controller.abort();
    // The task is held at the gate until the end of the test: only the abort can end this watch.
    await within(watcher.done, 5000, "the aborted watch to end");
    await until(() => proxy.open === open - 1, "the watch's socket to be closed", 2000);
    expect((await client.tasks.get(task.id)).status).toBe("running");

    // Aborted inside the loop: nothing more is yielded, even frames that had already arrived.
    const stopped = new AbortController();
    const seen: WatchFrame[] = [];
    const finished = await client.tasks.create({ input: "What is 9*9?" });
    await collect(client.watch(finished.id));
    for await (const frame of client.watch(finished.id, { signal: stopped.signal })) {
      seen.push(frame);
      if (frame.type === "step") {
        await Bun.sleep(20); // the rest of the replay arrives meanwhile
        stopped.abort();
      }
    }
    expect(seen.map((frame) => frame.type)).toEqual(["connected", "step"]);

    // Aborted before it starts: nothing is yielded, nothing is opened.
    const before = proxy.connections;
    const aborted = new AbortController();
    aborted.abort();
    expect(await collect(client.watch(task.id, { signal: aborted.signal }))).toEqual([]);
    expect(proxy.connections).toBe(before);

    // Aborted while it waits to reconnect.
    const dead = await startProxy(server.port);
    await dead.close();
    const retrying = new AbortController();
    const waiting = record(createClient({ url: dead.url }), task.id, { signal: retrying.signal });
    // A `reconnecting` frame is yielded just before the client sleeps its delay: abort during a long one.
    const scheduled = await waiting.waitFor((frame) => frame.type === "reconnecting" && frame.delay_ms >= 500, "a reconnect at least 0.5 s ahead", 30_000);
    const abortedAt = performance.now();
    retrying.abort();
    await within(waiting.done, 5000, "the retrying watch to end");
    // It did not sleep out the delay it had announced: the abort cut the wait short.
    expect(performance.now() - abortedAt).toBeLessThan(scheduled.type === "reconnecting" ? scheduled.delay_ms : 0);
    gate.release();
  });

  test("maxRetries: gives up after that many failed reconnects in a row, with retries_exhausted; backoff is full jitter, doubling from 250 ms up to 10 s", async () => {
    const dead = await startProxy(1);
    await dead.close();
    const client = createClient({ url: dead.url });
    const watcher = record(client, "some-task", { maxRetries: 3 });
    const error = await rejection(within(watcher.done, 10_000, "the watch to give up"));
    expect(error).toMatchObject({ status: 0, code: "retries_exhausted" });
    const frames = reconnects(watcher.frames);
    expect(frames.map((frame) => frame.type === "reconnecting" && frame.attempt)).toEqual([1, 2, 3]);
    frames.forEach((frame, index) => {
      if (frame.type !== "reconnecting") throw new Error("unreachable");
      expect(frame.delay_ms).toBeGreaterThanOrEqual(0);
      expect(frame.delay_ms).toBeLessThanOrEqual(250 * 2 ** index);
    });
    expect(Array.from({ length: 9 }, (_, index) => backoffDelay(index + 1, () => 1))).toEqual([250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]);
    expect(backoffDelay(5, () => 0)).toBe(0);
    expect(backoffDelay(2, () => 0.5)).toBe(250);
    expect(await rejection(collect(client.watch("x", { maxRetries: 0 })))).toMatchObject({ code: "retries_exhausted" });
  });

  test("no WebSocket implementation: a clear error naming the fix", async () => {
    const client = createClient({ url: "http://127.0.0.1:1", WebSocket: undefined });
    const original = globalThis.WebSocket;
    // @ts-expect-error -- simulating a runtime without WebSocket (Node 20)
    delete globalThis.WebSocket;
    try {
      const error = await rejection(collect(client.watch("x")));
      expect(error).toMatchObject({ code: "not_supported" });
      expect(error.message).toContain("createClient({ WebSocket })");
    } finally {
      globalThis.WebSocket = original;
    }
  });
});

// ---- portability ---------------------------------------------------------------------------

const ROOT = resolve(import.meta.dir, "../..");

/** Every module specifier a TypeScript file imports or re-exports (static, type-only and dynamic). */
function specifiers(source: string): string[] {
  const found: string[] = [];
  const patterns = [/\b(?:import|export)\s+(?:type\s+)?[^'";]*?\bfrom\s*["']([^"']+)["']/g, /\bimport\s*["']([^"']+)["']/g, /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g];
  for (const pattern of patterns) for (const match of source.matchAll(pattern)) found.push(match[1]!);
  return found;
}

test("the client imports nothing server-only: only ./, ../protocol/ and zod, and the protocol files it reaches import only each other and zod", () => {
  const clientDir = join(ROOT, "src/client");
  const glob = new Bun.Glob("*.ts");
  const files = [...glob.scanSync(clientDir)].map((name) => join(clientDir, name));
  expect(files.map((file) => file.split("/").at(-1)).sort()).toEqual(expect.arrayContaining(["http.ts", "index.ts", "watch.ts"]));
  for (const file of files) {
    for (const specifier of specifiers(readFileSync(file, "utf8"))) {
      const allowed = specifier.startsWith("./") || specifier.startsWith("../protocol/") || specifier === "zod";
      if (!allowed) throw new Error(`${file} imports '${specifier}'`);
    }
  }
  // Everything reachable from index.ts stays in src/client and src/protocol, and needs only zod.
  const seen = new Set<string>();
  const queue = [join(clientDir, "index.ts")];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const relative = file.slice(ROOT.length + 1);
    expect(relative.startsWith("src/client/") || relative.startsWith("src/protocol/")).toBe(true);
    for (const specifier of specifiers(readFileSync(file, "utf8"))) {
      if (specifier.startsWith(".")) queue.push(resolve(dirname(file), specifier));
      else if (specifier !== "zod") throw new Error(`${relative} imports '${specifier}'`);
    }
  }
  expect([...seen].some((file) => file.endsWith("src/protocol/frames.ts"))).toBe(true);
  expect(JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).exports["./client"]).toBe("./src/client/index.ts");
});

const nodeVersion = (() => {
  const result = spawnSync("node", ["--version"], { encoding: "utf8" });
  return result.status === 0 ? result.stdout.trim() : undefined;
})();
const [nodeMajor = 0, nodeMinor = 0] = (nodeVersion ?? "v0.0").slice(1).split(".").map(Number);
const stripTypes = nodeMajor > 22 || (nodeMajor === 22 && nodeMinor >= 6);
const nodeWebSocketFlag = nodeMajor < 22 ? ["--experimental-websocket"] : [];

/** Runs node without blocking this process's event loop (the server it talks to lives here). */
async function runNode(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = Bun.spawn(["node", ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe", timeout: 15_000 });
  const [stdout, stderr, status] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { status, stdout, stderr };
}

function expectSmoke(output: { status: number | null; stdout: string; stderr: string }) {
  if (output.status !== 0) throw new Error(`node exited ${output.status}: ${output.stderr}`);
  const report = JSON.parse(output.stdout.trim().split("\n").at(-1)!);
  expect(report).toMatchObject({
    agents: ["default"],
    missing: { status: 404, code: "not_found" },
    output: "6*7 = 42",
    seqs: [1, 2, 3, 4, 5, 6],
  });
  expect(report.types[0]).toBe("connected");
  expect(report.types.at(-1)).toBe("result");
  return report;
}

describe.skipIf(!nodeVersion)(`under Node (${nodeVersion ?? "not installed"})`, () => {
  test("bundled for Node: REST and a watch to the result, with Node's own fetch and WebSocket", async () => {
    server = await startTestServer();
    const outdir = mkdtempSync(join(tmpdir(), "agentkit-client-node-"));
    cleanups.push(() => rmSync(outdir, { recursive: true, force: true }));
    const built = await Bun.build({ entrypoints: [join(import.meta.dir, "fixtures/node-smoke.ts")], outdir, target: "node", format: "esm", naming: "smoke.mjs" });
    expect(built.success).toBe(true);
    const script = join(outdir, "smoke.mjs");
    expectSmoke(await runNode([...nodeWebSocketFlag, script, server.baseUrl]));
    if (nodeMajor < 22) {
      // Node 20/21 without the flag has no WebSocket: REST works, watch says what to do.
      const report = JSON.parse((await runNode([script, server.baseUrl])).stdout.trim());
      expect(report).toMatchObject({ hasWebSocket: false, agents: ["default"], error: { code: "not_supported" } });
    }
  });

  test.skipIf(!stripTypes)(`the TypeScript sources run as they are with --experimental-strip-types${stripTypes ? "" : ` (skipped: Node ${nodeVersion} is older than 22.6)`}`, async () => {
    server = await startTestServer();
    // Every file the client imports must be erasable TypeScript (no parameter properties, enums,
    // namespaces): Node strips the types and runs what is left.
    expectSmoke(await runNode(["--experimental-strip-types", "--no-warnings", join(import.meta.dir, "fixtures/node-smoke.ts"), server.baseUrl]));
  });
});
if (!nodeVersion) test.skip("client under Node: skipped because `node` is not installed", () => {});
