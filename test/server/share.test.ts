/** Read-only watch tokens (`POST /tasks/:id/share`) against a real server: they watch, and do nothing else. */
import { afterEach, describe, expect, test } from "bun:test";
import type { ModelStreamPart } from "../../src/llm/model.ts";
import { createShareTokens } from "../../src/server/share-tokens.ts";
import { deferred, within } from "../helpers/deferred.ts";
import { createScriptedModel } from "../helpers/scripted-model.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { SseClient } from "../helpers/sse-client.ts";
import { connect } from "../helpers/ws-client.ts";
import { ADMIN, ALICE, BOB, SECRET, as } from "../helpers/tenants.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

interface Shared {
  token: string;
  expires_at: string;
  scope: string;
  id: string;
  watch_url: string;
  events_url: string;
}

/** A server whose every task waits for `gate` before its model answers, so tasks stay running. */
async function gatedServer(config: Record<string, unknown> = {}) {
  const gate = deferred();
  const step = async function* (): AsyncIterable<ModelStreamPart> {
    await gate.promise;
    yield { type: "text-delta", text: "shared" };
    yield { type: "finish", finishReason: "stop", usage: { inputTokens: 3, outputTokens: 2 } };
  };
  server = await startTestServer({
    models: { m: createScriptedModel([step], { repeatLast: true }) },
    agents: [{ model: "test/m" }],
    config: { apiKey: ADMIN, apiKeys: `alice:${ALICE},bob:${BOB}`, shareSecret: SECRET, ...config },
  });
  return { server, gate };
}

async function share(taskId: string, key: string, body?: unknown): Promise<Response> {
  return server!.http(`/tasks/${taskId}/share`, { method: "POST", headers: as(key), ...(body === undefined ? {} : { json: body }) });
}

async function errorOf(response: Response): Promise<{ code: string; message: string }> {
  return ((await response.json()) as { error: { code: string; message: string } }).error;
}

describe("sharing a task's live view", () => {
  test("a share token watches the task like its owner (REST, SSE, WebSocket by query and by subprotocol) and can do nothing else", async () => {
    const { server, gate } = await gatedServer();
    const task = await server.createTask({ input: "watch me" }, as(ALICE));
    const other = await server.createTask({ input: "not shared" }, as(ALICE));

    const response = await share(task.id, ALICE);
    expect(response.status).toBe(201);
    const shared = (await response.json()) as Shared;
    expect(shared).toMatchObject({ scope: "task", id: task.id, watch_url: `/ws/tasks/${task.id}`, events_url: `/tasks/${task.id}/events` });
    const expiresIn = Date.parse(shared.expires_at) - Date.now();
    expect(expiresIn).toBeGreaterThan(24 * 3600_000 - 60_000);
    expect(expiresIn).toBeLessThanOrEqual(24 * 3600_000);
    const { token } = shared;

    // Reading what was shared.
    const read = await server.http(`/tasks/${task.id}`, { headers: as(token) });
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({ id: task.id, owner: "alice" });
    expect((await server.http(`/tasks/${task.id}`, { headers: { "x-api-key": token } })).status).toBe(200);
    const events = await server.http(`${shared.events_url}`, { headers: as(token) });
    expect(events.status).toBe(200);
    expect(await events.json()).toMatchObject({ task_id: task.id });

    // Watching: the owner, the token by query, the token by subprotocol (as a browser), the token over SSE.
    const base = `ws://127.0.0.1:${server.port}`;
    const owner = await connect(`${base}/ws/tasks/${task.id}?api_key=${ALICE}`);
    const viewer = await connect(`${base}${shared.watch_url}?api_key=${token}`);
    const browser = await connect(`${base}${shared.watch_url}`, ["agentkit", `agentkit.key.${token}`]);
    expect(browser.protocol).toBe("agentkit");
    const sse = new SseClient(`${server.baseUrl}${shared.events_url}?api_key=${token}`);
    for (const socket of [owner, viewer, browser]) await socket.waitFor((frame) => frame.type === "connected");
    await sse.waitFor((event) => event.data.includes('"connected"'), "the SSE connected frame");

    // The token cannot cancel over the WebSocket: an error frame, the connection stays open, the task runs on.
    viewer.send({ type: "cancel" });
    const refused = await viewer.waitFor((frame) => frame.type === "error");
    expect(refused).toEqual({ type: "error", data: { code: "forbidden", message: "this token can only watch" } });
    viewer.send({ type: "ping" });
    await viewer.waitFor((frame) => frame.type === "pong");
    browser.send({ type: "cancel" });
    await browser.waitFor((frame) => frame.type === "error");

    // Nor anything else over REST.
    const refusals: [string, string, unknown?][] = [
      ["POST", `/tasks/${task.id}/cancel`],
      ["POST", `/tasks/${task.id}/share`],
      ["POST", `/tasks`, { input: "mine now" }],
      ["GET", `/tasks`],
      ["GET", `/agents`],
    ];
    for (const [method, path, json] of refusals) {
      const refusal = await server.http(path, { method, headers: as(token), ...(json ? { json } : {}) });
      expect(`${method} ${path} ${refusal.status}`).toBe(`${method} ${path} 403`);
      expect(await errorOf(refusal)).toEqual({ code: "forbidden", message: "this token can only watch" });
    }
    // Another task of the same owner is as absent to it as any other.
    for (const path of [`/tasks/${other.id}`, `/tasks/${other.id}/events`]) {
      expect((await server.http(path, { headers: as(token) })).status).toBe(404);
    }
    const snooper = await connect(`${base}/ws/tasks/${other.id}?api_key=${token}`);
    expect(await snooper.closed).toMatchObject({ code: 4404 });

    expect(((await (await server.http(`/tasks/${task.id}`, { headers: as(ALICE) })).json()) as { status: string }).status).toBe("running");
    gate.resolve();
    const results = await Promise.all([owner.result(), viewer.result(), browser.result()]);
    for (const result of results) expect(result.data).toMatchObject({ status: "completed", output: "shared" });
    await sse.ended;
    expect(viewer.durable).toEqual(owner.durable);
    expect(browser.durable).toEqual(owner.durable);
    expect(sse.durable).toEqual(owner.durable);
    expect(owner.durable.length).toBeGreaterThan(1);
    for (const socket of [owner, viewer, browser]) socket.close();
  });

  test("an expired, tampered or foreign token is refused (401); only the owner or the admin can share", async () => {
    const { server, gate } = await gatedServer();
    gate.resolve();
    const task = await server.createTask({ input: "hi" }, as(ALICE));

    // Bob cannot see Alice's task, so he cannot share it.
    const bobs = await share(task.id, BOB);
    expect(bobs.status).toBe(404);
    expect((await errorOf(bobs)).code).toBe("not_found");
    expect((await share("no-such-task", ALICE)).status).toBe(404);
    // The admin can: the token watches as the task's owner.
    const byAdmin = (await (await share(task.id, ADMIN, { ttl_seconds: 60 })).json()) as Shared;
    expect((await server.http(`/tasks/${task.id}`, { headers: as(byAdmin.token) })).status).toBe(200);

    const secret = new TextEncoder().encode(SECRET);
    const hoursAgo = createShareTokens({ secret, now: () => Date.now() - 2 * 3600_000 });
    const expired = hoursAgo.sign("task", task.id, "alice", 3600).token;
    const { token } = (await (await share(task.id, ALICE)).json()) as Shared;
    const [prefix, payload, signature] = token.split(".");
    const flip = (text: string, index: number) => text.slice(0, index) + (text[index] === "A" ? "B" : "A") + text.slice(index + 1);
    const foreign = createShareTokens({ secret: new TextEncoder().encode("another-secret-0123456789abcdef-0123") }).sign("task", task.id, "alice", 60).token;
    // A token for Alice's task claiming Bob as owner, signed properly, sees nothing (the owner must match).
    const wrongOwner = createShareTokens({ secret }).sign("task", task.id, "bob", 60).token;
    for (const bad of [expired, `${prefix}.${flip(payload!, 5)}.${signature}`, `${prefix}.${payload}.${flip(signature!, 20)}`, foreign]) {
      const response = await server.http(`/tasks/${task.id}`, { headers: as(bad) });
      expect(response.status).toBe(401);
      expect((await errorOf(response)).code).toBe("unauthorized");
      const stream = await server.http(`/tasks/${task.id}/events?api_key=${bad}`, { headers: { accept: "text/event-stream" } });
      expect(stream.status).toBe(401);
      const socket = await connect(`ws://127.0.0.1:${server.port}/ws/tasks/${task.id}?api_key=${bad}`);
      expect(await socket.closed).toMatchObject({ code: 4001 });
    }
    expect((await server.http(`/tasks/${task.id}`, { headers: as(wrongOwner) })).status).toBe(404);
    expect((await server.http(`/tasks/${task.id}`, { headers: as(token) })).status).toBe(200);
  });

  test("a token that expires while its streams are open ends them: the WebSocket gets an error frame and 4001, SSE and A2A streams end", async () => {
    const { server, gate } = await gatedServer();
    const task = await server.createTask({ input: "watch me" }, as(ALICE));
    // A token minted 59 s ago with a 60 s lifetime: valid for about one more second.
    const secret = new TextEncoder().encode(SECRET);
    const { token } = createShareTokens({ secret, now: () => Date.now() - 59_000 }).sign("task", task.id, "alice", 60);
    const socket = await connect(`ws://127.0.0.1:${server.port}/ws/tasks/${task.id}?api_key=${token}`);
    await socket.waitFor((frame) => frame.type === "connected");
    const sse = new SseClient(`${server.baseUrl}/tasks/${task.id}/events?api_key=${token}`);
    expect((await sse.response).status).toBe(200);
    const a2a = await server.http(`/a2a/default`, {
      method: "POST",
      headers: { ...as(token), accept: "text/event-stream" },
      json: { jsonrpc: "2.0", id: 1, method: "tasks/resubscribe", params: { id: task.id } },
    });
    expect(a2a.status).toBe(200);
    const a2aEnded = a2a.text();
    const closed = await socket.closed;
    expect(closed.code).toBe(4001);
    expect(socket.frames.at(-1)).toMatchObject({ type: "error", data: { code: "unauthorized", message: "The share token has expired" } });
    await within(sse.ended, 5_000, "the SSE stream to end");
    await within(a2aEnded, 5_000, "the A2A stream to end");
    expect((await server.http(`/tasks/${task.id}`, { headers: as(token) })).status).toBe(401);
    // The task itself goes on, for its owner.
    gate.resolve();
    const owner = await server.watch(task.id, `api_key=${ALICE}`);
    expect((await owner.result()).data).toMatchObject({ status: "completed" });
  });

  test("a token of the longest lifetime (30 days: past setTimeout's 24.8-day limit) keeps its streams open", async () => {
    const { server, gate } = await gatedServer();
    const task = await server.createTask({ input: "watch me" }, as(ALICE));
    const { token } = (await (await share(task.id, ALICE, { ttl_seconds: 30 * 24 * 3600 })).json()) as Shared;
    const socket = await connect(`ws://127.0.0.1:${server.port}/ws/tasks/${task.id}?api_key=${token}`);
    await socket.waitFor((frame) => frame.type === "connected");
    const sse = new SseClient(`${server.baseUrl}/tasks/${task.id}/events?api_key=${token}`);
    expect((await sse.response).status).toBe(200);
    // Before: a 30-day timer fired after 1 ms and closed both at once.
    expect(await Promise.race([socket.closed.then(() => "closed"), sse.ended.then(() => "ended"), Bun.sleep(500).then(() => "open")])).toBe("open");
    gate.resolve();
    expect((await socket.result()).data).toMatchObject({ status: "completed" });
  });

  test("the body: ttl_seconds within 60 s to 30 days, scope 'thread' only for a task in a thread; other methods are 405", async () => {
    const { server, gate } = await gatedServer();
    gate.resolve();
    const task = await server.createTask({ input: "hi" }, as(ALICE));
    const week = (await (await share(task.id, ALICE, { ttl_seconds: 7 * 24 * 3600, scope: "task" })).json()) as Shared;
    expect(Date.parse(week.expires_at) - Date.now()).toBeGreaterThan(7 * 24 * 3600_000 - 60_000);
    for (const body of [{ ttl_seconds: 59 }, { ttl_seconds: 30 * 24 * 3600 + 1 }, { ttl_seconds: 1.5 }, { scope: "everything" }, { extra: 1 }]) {
      const response = await share(task.id, ALICE, body);
      expect(response.status).toBe(400);
      expect((await errorOf(response)).code).toBe("validation_failed");
    }
    const thread = await share(task.id, ALICE, { scope: "thread" });
    expect(thread.status).toBe(400);
    expect((await errorOf(thread)).message).toContain("not part of a thread");
    const text = await server.http(`/tasks/${task.id}/share`, { method: "POST", headers: { ...as(ALICE), "content-type": "text/plain" }, body: "ttl" });
    expect(text.status).toBe(415);
    const get = await server.http(`/tasks/${task.id}/share`, { headers: as(ALICE) });
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
  });

  test("without AGENTKIT_SHARE_SECRET the store's own secret signs tokens; in open mode sharing works (everyone can watch anyway)", async () => {
    const { server, gate } = await gatedServer({ shareSecret: undefined });
    gate.resolve();
    const task = await server.createTask({ input: "hi" }, as(ALICE));
    const response = await share(task.id, ALICE);
    expect(response.status).toBe(201);
    const { token: stored } = (await response.json()) as { token: string };
    const read = await server.http(`/tasks/${task.id}`, { headers: { authorization: `Bearer ${stored}` } });
    expect(read.status).toBe(200);
    const cancel = await server.http(`/tasks/${task.id}/cancel`, { method: "POST", headers: { authorization: `Bearer ${stored}` } });
    expect(cancel.status).toBe(403);
    await server.close();

    const open = await gatedServer({ apiKey: undefined, apiKeys: undefined });
    open.gate.resolve();
    const openTask = await open.server.createTask({ input: "hi" });
    const shared = await open.server.http(`/tasks/${openTask.id}/share`, { method: "POST" });
    expect(shared.status).toBe(201);
    const { token } = (await shared.json()) as Shared;
    expect((await open.server.http(`/tasks/${openTask.id}`, { headers: as(token) })).status).toBe(200);
  });
});
