/** Server-Sent Events: replay then live, Last-Event-ID resume, 204 when done, resync after pruning. */
import { afterEach, expect, test } from "bun:test";
import { within } from "../helpers/deferred.ts";
import { answer, callTools, createScriptedModel } from "../helpers/scripted-model.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { SseClient } from "../helpers/sse-client.ts";
import { createGateTool } from "../helpers/tools.ts";
import { heldUntil, startFloodServer } from "../helpers/flood.ts";

let server: TestServer | undefined;
const clients: SseClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await server?.close();
  server = undefined;
});

function sse(path: string, headers?: Record<string, string>) {
  const client = new SseClient(server!.baseUrl + path, headers);
  clients.push(client);
  return client;
}

async function stored(taskId: string): Promise<string[]> {
  const body = (await (await server!.http(`/tasks/${taskId}/events`)).json()) as { events: unknown[] };
  return body.events.map((event) => JSON.stringify(event));
}

test("replays, goes live, ends after the result; ids are seqs; Last-Event-ID resumes exactly", async () => {
  const gate = createGateTool();
  const model = createScriptedModel([
    callTools([{ id: "c", name: "calculator", arguments: '{"expression":"2*21"}' }], "first"),
    callTools([{ id: "w", name: "wait", arguments: "{}" }], "then wait"),
    answer("done"),
  ]);
  server = await startTestServer({ models: { m: model }, tools: [gate.tool], agents: [{ model: "test/m", tools: ["calculator", "wait"] }] });
  const task = await server.createTask({ input: "go" });
  await within(gate.started, 5000, "the wait tool");

  const client = sse(`/tasks/${task.id}/events`);
  const response = await client.response;
  expect(response.headers.get("content-type")).toStartWith("text/event-stream");
  await client.waitFor((event) => event.id === "7", "replayed events up to the wait call");
  gate.release();
  await within(client.ended, 10_000, "the stream to end after the result");

  const log = await stored(task.id);
  expect(client.durable).toEqual(log);
  expect(client.events.filter((event) => event.id).map((event) => Number(event.id))).toEqual(log.map((_, index) => index + 1));
  expect(JSON.parse(client.events[0]!.data)).toMatchObject({ type: "connected", status: "running" });
  // Deltas of the live part arrived too, without ids.
  expect(client.events.some((event) => event.id === undefined && JSON.parse(event.data).type === "delta")).toBe(true);

  const resumed = sse(`/tasks/${task.id}/events`, { "last-event-id": "4" });
  await within(resumed.ended, 10_000, "the resumed stream to end");
  expect(resumed.durable).toEqual(log.slice(4));
  const byQuery = sse(`/tasks/${task.id}/events?after=6`);
  await within(byQuery.ended, 10_000, "the stream to end");
  expect(byQuery.durable).toEqual(log.slice(6));
});

test("an ended task with nothing left to send answers 204, so an EventSource stops reconnecting", async () => {
  server = await startTestServer();
  const task = await server.createTask({ input: "hi" });
  await (await server.watch(task.id)).result();
  const last = (await stored(task.id)).length;
  const response = await fetch(`${server.baseUrl}/tasks/${task.id}/events`, {
    headers: { accept: "text/event-stream", "last-event-id": String(last) },
  });
  expect(response.status).toBe(204);
  const bad = await fetch(`${server.baseUrl}/tasks/${task.id}/events`, { headers: { accept: "text/event-stream", "last-event-id": "x" } });
  expect(bad.status).toBe(400);
});

test("events pruned by retention are replaced by a resync snapshot, never a silent gap", async () => {
  server = await startTestServer();
  const task = await server.createTask({ input: "What is 5 * 5?" });
  await (await server.watch(task.id)).result();
  const lastSeq = (await stored(task.id)).length;

  expect(await server.store.pruneEvents(new Date(Date.now() + 60_000))).toBe(1);
  expect(await stored(task.id)).toEqual([]);
  expect(await (await server.http(`/tasks/${task.id}`)).json()).toMatchObject({ pruned_through: lastSeq, last_seq: lastSeq });

  const socket = await server.watch(task.id);
  const resync = await socket.waitFor((frame) => frame.type === "resync", "the resync frame");
  expect(resync.data).toMatchObject({ task_id: task.id, status: "completed", output: "5 * 5 = 25", last_seq: lastSeq, pruned_through: lastSeq });
  expect(socket.frames.map((frame) => frame.type)).toEqual(["connected", "resync"]);
  socket.send({ type: "ping" });
  await socket.waitFor((frame) => frame.type === "pong", "pong");
  expect(socket.seqs).toEqual([]);

  const client = sse(`/tasks/${task.id}/events`);
  await within(client.ended, 5000, "the SSE stream to end");
  expect(client.events.map((event) => JSON.parse(event.data).type)).toEqual(["connected", "resync"]);
});

// Start-up's prune, end to end; the hourly ones (startRetention's timer): test/tasks/retention.test.ts.
test("the retention setting prunes the logs of ended tasks (checked at start-up and hourly)", async () => {
  const { tempDir } = await import("../helpers/server.ts");
  const { rmSync } = await import("node:fs");
  const dataDir = tempDir();
  try {
    server = await startTestServer({ dataDir });
    const task = await server.createTask({ input: "hi" });
    await (await server.watch(task.id)).result();
    expect((await stored(task.id)).length).toBeGreaterThan(0);
    await server.close();
    server = await startTestServer({ dataDir, config: { eventRetentionHours: 0 } });
    const { until } = await import("../helpers/deferred.ts");
    await until(async () => (await stored(task.id)).length === 0, "the log to be pruned");
    expect(await (await server.http(`/tasks/${task.id}`)).json()).toMatchObject({ status: "completed", output: expect.any(String) });
  } finally {
    await server?.close();
    server = undefined;
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test("with a key configured, the event stream takes it as a header or, for EventSource, as ?api_key=", async () => {
  server = await startTestServer({ config: { apiKey: "sse-key-0001" } });
  const task = await server.createTask({ input: "hi" }, { authorization: "Bearer sse-key-0001" });
  const byHeader = sse(`/tasks/${task.id}/events`, { authorization: "Bearer sse-key-0001" });
  await within(byHeader.ended, 5000, "the stream by header");
  expect(byHeader.durable.length).toBeGreaterThan(0);
  const byQuery = sse(`/tasks/${task.id}/events?api_key=sse-key-0001`);
  await within(byQuery.ended, 5000, "the stream by query");
  expect(byQuery.durable).toEqual(byHeader.durable);
  const wrong = await fetch(`${server.baseUrl}/tasks/${task.id}/events?api_key=nope`, { headers: { accept: "text/event-stream" } });
  expect(wrong.status).toBe(401);
  // Plain REST does not take keys from the query string.
  expect((await server.http(`/tasks/${task.id}?api_key=sse-key-0001`)).status).toBe(401);
});

test("Accept is negotiated with q-values: JSON unless the client prefers the event stream", async () => {
  server = await startTestServer();
  const task = await server.createTask({ input: "hi" });
  await (await server.watch(task.id)).result();
  const cases: [string, "sse" | "json"][] = [
    ["text/event-stream", "sse"],
    ["text/event-stream;q=0.9, application/json", "json"],
    ["application/json;q=0.5, text/event-stream", "sse"],
    ["*/*", "json"],
    ["text/*", "sse"],
    ["text/event-stream, */*;q=0.1", "sse"],
    ["application/json, text/event-stream", "json"],
    ["application/json;q=0, */*", "sse"],
    ["image/png", "json"],
  ];
  for (const [accept, expected] of cases) {
    // after=1: an ended task has more to send, so the event stream answers 200 (not 204).
    const response = await fetch(`${server.baseUrl}/tasks/${task.id}/events?after=1`, { headers: { accept } });
    expect(response.status, accept).toBe(200);
    expect(response.headers.get("content-type"), accept).toStartWith(expected === "sse" ? "text/event-stream" : "application/json");
    await response.body?.cancel();
  }
});

test("?api_key= is read only for a request that negotiates the event stream of GET /tasks/:id/events", async () => {
  server = await startTestServer({ config: { apiKey: "sse-key-0002" } });
  const task = await server.createTask({ input: "hi" }, { authorization: "Bearer sse-key-0002" });
  const get = (path: string, accept: string) => fetch(`${server!.baseUrl}${path}`, { headers: { accept } });
  const stream = await get(`/tasks/${task.id}/events?api_key=sse-key-0002`, "text/event-stream");
  expect(stream.status).toBe(200);
  await stream.body?.cancel();
  // Prefers JSON: not the event stream, so no key from the URL.
  expect((await get(`/tasks/${task.id}/events?api_key=sse-key-0002`, "text/event-stream;q=0.9, application/json")).status).toBe(401);
  // Another route asking for an event stream it does not serve.
  expect((await get(`/tasks/${task.id}?api_key=sse-key-0002`, "text/event-stream")).status).toBe(401);
  expect((await get(`/tasks?api_key=sse-key-0002`, "text/event-stream")).status).toBe(401);
});

test("an after beyond the task's last event is a 400 naming the last seq, as JSON, as SSE and as Last-Event-ID", async () => {
  server = await startTestServer();
  const task = await server.createTask({ input: "hi" });
  await (await server.watch(task.id)).result();
  const last = (await stored(task.id)).length;
  const requests: [string, Record<string, string>][] = [
    [`?after=${last + 1}`, {}],
    [`?after=${last + 1}`, { accept: "text/event-stream" }],
    ["", { accept: "text/event-stream", "last-event-id": String(last + 5) }],
  ];
  for (const [query, headers] of requests) {
    const response = await fetch(`${server.baseUrl}/tasks/${task.id}/events${query}`, { headers });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("bad_request");
    expect(body.error.message).toContain(`last_seq ${last}`);
  }
  // At the last seq: nothing more (JSON: no events; SSE: 204 for an ended task).
  expect(await stored(task.id)).toHaveLength(last);
  const atEnd = (await (await server.http(`/tasks/${task.id}/events?after=${last}`)).json()) as { events: unknown[] };
  expect(atEnd.events).toEqual([]);
  expect((await fetch(`${server.baseUrl}/tasks/${task.id}/events?after=${last}`, { headers: { accept: "text/event-stream" } })).status).toBe(204);
});

test("a server fault mid-stream is a normal data frame {type:error}, never `event: error`", async () => {
  let failEvents = false;
  server = await startTestServer({
    wrapStore: (store) => ({
      ...store,
      events: (...args: Parameters<typeof store.events>) => (failEvents ? Promise.reject(new Error("disk on fire")) : store.events(...args)),
    }),
  });
  const task = await server.createTask({ input: "hi" });
  await (await server.watch(task.id)).result();
  failEvents = true;
  const client = sse(`/tasks/${task.id}/events`);
  await within(client.ended, 5000, "the stream to end after the error");
  const error = client.events.find((event) => JSON.parse(event.data).type === "error");
  expect(error).toBeDefined();
  expect(error!.event).toBeUndefined();
  expect(JSON.parse(error!.data)).toEqual({ type: "error", data: { message: "Internal server error", code: "internal" } });
});

test("a client that stops reading is cut off once more than slowClientBytes stay queued (a second, or 4× at once): what was queued still arrives, gapless from the start, then the stream ends; the task and other streams go on; a replay of the whole log goes at the reader's pace, in one stream", async () => {
  const steps = 600; // ~20 MB of frames: more than loopback's socket buffers and the 1 MiB queue hold
  const release = Promise.withResolvers<void>();
  // 1 MiB is the default, said out loud: a client that reads keeps up.
  server = await startFloodServer(steps, heldUntil(release.promise), { slowClientBytes: 1024 * 1024 });
  const task = await server.createTask({ input: "flood" });

  // The slow client: a raw socket that sends the request, then stops reading.
  const received: Buffer[] = [];
  const ended = Promise.withResolvers<void>();
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port: server.port,
    socket: {
      data: (_socket, chunk) => void received.push(Buffer.from(chunk)),
      end: () => ended.resolve(),
      close: () => ended.resolve(),
    },
  });
  socket.write(`GET /tasks/${task.id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n`);
  await within(
    (async () => {
      while (received.length === 0) await Bun.sleep(5);
    })(),
    2_000,
    "the response starts",
  );
  socket.pause();
  const fast = sse(`/tasks/${task.id}/events`);
  release.resolve();

  // The fast client and the task are not held up: every frame, to the result.
  await within(fast.ended, 30_000, "the fast stream ends");
  const frames = fast.durable.map((frame) => JSON.parse(frame) as { type: string; seq: number; data: { status?: string } });
  expect(frames.at(-1)).toMatchObject({ type: "result", data: { status: "completed" } });
  expect(frames.map((frame) => frame.seq)).toEqual(frames.map((_, index) => index + 1));
  expect(((await (await server.http(`/tasks/${task.id}`)).json()) as { status: string }).status).toBe("completed");

  // The slow one was cut off: once it reads again it gets what was queued, then the end — no result.
  socket.resume();
  await within(ended.promise, 10_000, "the cut-off stream ends");
  const body = Buffer.concat(received).toString("utf8");
  const ids = [...body.matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1]));
  expect(ids.length).toBeGreaterThan(0);
  expect(ids).toEqual(ids.map((_, index) => index + 1)); // gapless from the first, no duplicate
  expect(ids.length).toBeLessThan(frames.length); // cut off before the end
  expect(body).not.toContain('"type":"result"');
  // Counted, once, as an event stream's slow close.
  expect(await (await server.http("/metrics")).text()).toContain('agentkit_slow_client_closes_total{transport="sse"} 1\n');
  // It resumes where it stopped, with Last-Event-ID, and gets the rest of the ~20 MB log in one
  // stream: the replay goes at the client's pace instead of overrunning the 1 MiB queue.
  const resumed = sse(`/tasks/${task.id}/events`, { "Last-Event-ID": String(ids.at(-1)) });
  await within(resumed.ended, 20_000, "the resumed stream ends");
  const rest = resumed.durable.map((frame) => JSON.parse(frame) as { type: string; seq: number });
  expect(rest.map((frame) => frame.seq)).toEqual(rest.map((_, index) => ids.at(-1)! + 1 + index));
  expect(rest.at(-1)).toMatchObject({ type: "result" });
  expect(ids.length + rest.length).toBe(frames.length);
});
