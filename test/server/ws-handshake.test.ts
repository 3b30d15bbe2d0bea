/**
 * The task WebSocket's handshake and liveness, as clients see them on the wire: the subprotocol
 * answer never carries a key, browser origins are checked when configured, a bad query is answered
 * with 4400 after the upgrade, keys a browser cannot send are refused at start-up, and a watcher
 * that only answers the server's pings (or only sends pings of its own) is never cut while a task
 * streams.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { API_KEY_PATTERN, loadConfig } from "../../src/config/config.ts";
import { createScriptedModel, type ScriptStep } from "../helpers/scripted-model.ts";
import { closeCode, RawWebSocket } from "../helpers/raw-websocket.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { connect } from "../helpers/ws-client.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const KEY = "admin-key-0001";

/** The `Sec-WebSocket-Protocol` header of a 101 answer, or null when there is none. */
function selectedProtocol(head: string): string | null {
  const line = head.split("\r\n").find((header) => header.toLowerCase().startsWith("sec-websocket-protocol:"));
  return line === undefined ? null : line.slice(line.indexOf(":") + 1).trim();
}

/** Opens a raw upgrade with the given headers; returns the answer's head and the first text frame. */
async function handshake(path: string, headers: Record<string, string>) {
  const socket = await RawWebSocket.open(server!.port, path, { headers });
  const texts = await socket.readTextFrames(1);
  socket.destroy();
  return { head: socket.responseHead, texts };
}

describe("subprotocols", () => {
  test("the server never echoes a key-carrying subprotocol: it answers 'agentkit' or nothing", async () => {
    server = await startTestServer({ config: { apiKey: KEY } });
    const task = await server.createTask({ input: "hi" }, { authorization: `Bearer ${KEY}` });
    const path = `/ws/tasks/${task.id}`;
    const cases: [offered: string, expected: string | null][] = [
      [`agentkit.key.${KEY}`, null],
      [`foo, agentkit.key.${KEY}`, null],
      [`agentkit.key.${KEY}, agentkit`, "agentkit"],
      [`agentkit, agentkit.key.${KEY}`, "agentkit"],
    ];
    for (const [offered, expected] of cases) {
      const { head, texts } = await handshake(path, { "Sec-WebSocket-Protocol": offered });
      expect(head.startsWith("HTTP/1.1 101")).toBe(true);
      expect(selectedProtocol(head)).toBe(expected);
      expect(head).not.toContain(KEY);
      // The key was read from the offer all the same: the stream is served.
      expect(JSON.parse(texts[0]!)).toMatchObject({ type: "connected", task_id: task.id });
    }
  });

  test("a browser offering ['agentkit', 'agentkit.key.<key>'] gets 'agentkit' selected", async () => {
    server = await startTestServer({ config: { apiKey: KEY } });
    const task = await server.createTask({ input: "hi" }, { authorization: `Bearer ${KEY}` });
    const socket = await connect(`ws://127.0.0.1:${server.port}/ws/tasks/${task.id}`, ["agentkit", `agentkit.key.${KEY}`]);
    await socket.result();
    expect(socket.protocol).toBe("agentkit");
  });

  test("keys that cannot travel as a subprotocol (base64's + / =, spaces) stop start-up with the rule", () => {
    for (const key of ["abc/def+ghi=", "with space in it", "semi;colon-key"]) {
      expect(() => loadConfig({ env: { AGENTKIT_API_KEY: key }, readFile: false })).toThrow(
        "AGENTKIT_API_KEY: must be 8 to 512 characters of A-Z a-z 0-9 - . _ ~",
      );
      expect(() => loadConfig({ env: { AGENTKIT_API_KEYS: `alice:${key}` }, readFile: false })).toThrow(
        "the key of 'alice' must be 8 to 512 characters",
      );
    }
    // base64url and hex keys are fine, and every allowed character is an RFC 7230 token character.
    const config = loadConfig({ env: { AGENTKIT_API_KEY: "Ab0-_.~xYz9", AGENTKIT_API_KEYS: "bob:0123456789abcdef" }, readFile: false });
    expect(config.apiKey).toBe("Ab0-_.~xYz9");
    // Every character the rule accepts is an RFC 7230 token character (what a subprotocol may hold)
    // and unreserved in a URL: derived from the rule itself, so widening it breaks this test.
    const accepted = Array.from({ length: 128 }, (_, code) => String.fromCharCode(code)).filter((char) => API_KEY_PATTERN.test(char.repeat(8)));
    expect(accepted.length).toBe(66);
    for (const char of accepted) {
      expect(char).toMatch(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/);
      expect(encodeURIComponent(char)).toBe(char);
    }
  });
});

describe("origins", () => {
  test("with allowed origins configured, a browser upgrade from another origin is refused with 403", async () => {
    server = await startTestServer({ config: { corsOrigins: "https://app.example, http://127.0.0.1:3000/" } });
    const task = await server.createTask({ input: "hi" });
    const path = `/ws/tasks/${task.id}`;
    await expect(RawWebSocket.open(server.port, path, { headers: { Origin: "http://evil.example" } })).rejects.toThrow(
      "upgrade refused: HTTP/1.1 403",
    );
    await expect(RawWebSocket.open(server.port, path, { headers: { Origin: "null" } })).rejects.toThrow("403");
    // Allowed origins (as browsers serialise them), this server's own pages (the console: the
    // Origin's host is the Host; the console broke once origins were configured), and clients that
    // send no Origin, are served.
    const own = [{ Origin: `http://127.0.0.1:${server.port}` }, { Origin: `https://127.0.0.1:${server.port}` }];
    for (const headers of [{ Origin: "https://app.example" }, { Origin: "http://127.0.0.1:3000" }, ...own, {}] as Record<string, string>[]) {
      const { texts } = await handshake(path, headers);
      expect(JSON.parse(texts[0]!)).toMatchObject({ type: "connected" });
    }
    // The refusal is the usual JSON error, for a client that reads it.
    const response = await server.http(path, {
      headers: { Origin: "http://evil.example", Upgrade: "websocket", Connection: "Upgrade", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==" },
    });
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ error: { code: "forbidden" } });
  });

  test("with '*' or nothing configured, any origin may connect", async () => {
    for (const corsOrigins of ["*", undefined]) {
      server = await startTestServer({ config: corsOrigins ? { corsOrigins } : {} });
      const task = await server.createTask({ input: "hi" });
      const { texts } = await handshake(`/ws/tasks/${task.id}`, { Origin: "http://elsewhere.example" });
      expect(JSON.parse(texts[0]!)).toMatchObject({ type: "connected" });
      await server.close();
      server = undefined;
    }
  });
});

describe("query", () => {
  test("a bad query is answered the documented way: error frame, then close 4400 (after the key check)", async () => {
    server = await startTestServer({ config: { apiKey: KEY } });
    const task = await server.createTask({ input: "hi" }, { authorization: `Bearer ${KEY}` });
    const base = `ws://127.0.0.1:${server.port}/ws/tasks/${task.id}`;
    for (const query of ["after=abc", "after=-1", "after=1.5", "deltas=maybe"]) {
      const socket = await connect(`${base}?${query}&api_key=${KEY}`);
      expect((await socket.closed).code).toBe(4400);
      expect(socket.frames).toEqual([{ type: "error", data: { code: "bad_request", message: expect.stringContaining("Invalid query") } }]);
    }
    // Without the key, the key is what is wrong.
    const anonymous = await connect(`${base}?after=abc`);
    expect((await anonymous.closed).code).toBe(4001);
    // after= beyond the log: 4400 too, naming the last seq.
    const done = await connect(`${base}?api_key=${KEY}`);
    const result = await done.result();
    const beyond = await connect(`${base}?after=${result.seq! + 1}&api_key=${KEY}`);
    expect((await beyond.closed).code).toBe(4400);
    expect(beyond.frames[0]).toMatchObject({ type: "error", data: { code: "bad_request", message: expect.stringContaining(`(${result.seq})`) } });
  });
});

/** A task that takes about `steps × pauseMs`, streaming a thought every step. */
function slowTask(steps: number, pauseMs: number): ScriptStep {
  return async function* (request) {
    const done = request.messages.filter((message) => message.role === "tool").length;
    await Bun.sleep(pauseMs);
    if (done >= steps) {
      yield { type: "text-delta", text: "done" };
      yield { type: "finish", finishReason: "stop", usage: { inputTokens: 1, outputTokens: 1 } };
      return;
    }
    yield { type: "text-delta", text: `step ${done}` };
    yield { type: "tool-call", call: { id: `c${done}`, name: "current_time", arguments: "{}" } };
    yield { type: "finish", finishReason: "tool-calls", usage: { inputTokens: 1, outputTokens: 1 } };
  };
}

describe("liveness", () => {
  test("a watcher that never sends a message, but answers pings, is never cut while a task streams past the heartbeat", async () => {
    const heartbeatMs = 200;
    server = await startTestServer({
      models: { m: createScriptedModel([slowTask(12, 100)], { repeatLast: true }) },
      agents: [{ model: "test/m", max_steps: 20 }],
      config: { heartbeatMs },
    });
    const task = await server.createTask({ input: "go" });
    // Bun's WebSocket client, like a browser's, answers protocol pings and sends nothing of its own.
    const watcher = await server.watch(task.id, "deltas=0");
    const result = await watcher.result(20_000);
    expect(result.data).toMatchObject({ status: "completed" });
    // It outlived the heartbeat period many times over, and is still open after the result.
    const started = Date.parse(String((watcher.frames.find((frame) => frame.type === "step")!.data as { timestamp: string }).timestamp));
    const ended = Date.parse(String((watcher.frames.filter((frame) => frame.type === "step").at(-1)!.data as { timestamp: string }).timestamp));
    expect(ended - started).toBeGreaterThan(4 * heartbeatMs);
    const stillOpen = await Promise.race([watcher.closed.then(() => false), Bun.sleep(3 * heartbeatMs).then(() => true)]);
    expect(stillOpen).toBe(true);
    watcher.close();
  });

  test("a dead peer (never answers a ping) is closed with 4408, a code that says reconnect, and it was pinged first", async () => {
    const heartbeatMs = 150;
    server = await startTestServer({ config: { heartbeatMs } });
    const task = await server.createTask({ input: "hi" });
    // The raw client reads but never answers pings: a peer whose application is gone.
    const peer = await RawWebSocket.open(server.port, `/ws/tasks/${task.id}`, { paused: true });
    const frames = await peer.readUntilClosed(10_000);
    expect(frames.some((frame) => frame.opcode === 9)).toBe(true);
    const close = frames.at(-1)!;
    expect(closeCode(close)).toBe(4408);
    expect(close.payload.subarray(2).toString()).toContain("reconnect");
  });

  test("the seed's {type:'ping'} still gets a pong and keeps a client that answers no pings alive", async () => {
    const heartbeatMs = 150;
    server = await startTestServer({ config: { heartbeatMs } });
    const task = await server.createTask({ input: "hi" });
    const peer = await RawWebSocket.open(server.port, `/ws/tasks/${task.id}`, { paused: true });
    const pinger = setInterval(() => peer.sendFrame(1, JSON.stringify({ type: "ping" })), heartbeatMs / 3);
    await Bun.sleep(heartbeatMs * 5);
    clearInterval(pinger);
    const frames = await peer.readUntilClosed(10_000);
    const texts = frames.filter((frame) => frame.opcode === 1).map((frame) => JSON.parse(frame.payload.toString()) as { type: string });
    expect(texts.filter((frame) => frame.type === "pong").length).toBeGreaterThan(6);
    // Closed only after it stopped pinging: at least 5 heartbeat periods after it connected.
    expect(closeCode(frames.at(-1)!)).toBe(4408);
  });

  test("a client that sends only protocol-level pings (no pongs, no messages) is kept alive by them", async () => {
    const heartbeatMs = 150;
    server = await startTestServer({ config: { heartbeatMs } });
    const task = await server.createTask({ input: "hi" });
    // It reads nothing (so answers none of the server's pings) and sends nothing but PING frames.
    const peer = await RawWebSocket.open(server.port, `/ws/tasks/${task.id}`, { paused: true });
    const pinger = setInterval(() => peer.sendFrame(9, "alive?"), heartbeatMs / 3);
    await Bun.sleep(heartbeatMs * 5);
    clearInterval(pinger);
    const frames = await peer.readUntilClosed(10_000);
    // Each of its pings was answered with a pong while the connection was open: ~15 over 5 periods
    // (cut after one period, it would have had 3 or 4).
    expect(frames.filter((frame) => frame.opcode === 10 && frame.payload.toString() === "alive?").length).toBeGreaterThan(6);
    // Closed only after it stopped pinging.
    expect(closeCode(frames.at(-1)!)).toBe(4408);
  });
});

describe("the store out of reach as a watch begins", () => {
  test("the watcher gets `unavailable` and 1001 (reconnect), not 1011 (do not retry); once the store answers, the same watch works", async () => {
    let failing = false;
    const storeDown = () => Object.assign(new Error("disk I/O error"), { name: "SQLiteError", code: "SQLITE_IOERR_READ" });
    server = await startTestServer({
      wrapStore: (store) =>
        new Proxy(store, {
          get(target, property) {
            const value = Reflect.get(target, property, target);
            if (typeof value !== "function" || !failing || (property !== "getTask" && property !== "events")) return value;
            return async () => {
              throw storeDown();
            };
          },
        }),
    });
    const task = await server.createTask({ input: "What is 2+2?" });
    await (await server.watch(task.id)).result(); // ended: a watch reads it from the store
    failing = true;
    const socket = await server.watch(task.id);
    expect((await socket.closed).code).toBe(1001);
    expect(socket.frames).toEqual([{ type: "error", data: { code: "unavailable", message: "The data store could not be read; try again shortly" } }]);
    failing = false;
    // Once the store answers, the same watch works.
    const again = await server.watch(task.id);
    expect((await again.result()).data).toMatchObject({ status: "completed" });
  });
});
