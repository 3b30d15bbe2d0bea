/**
 * Hostile input: random bytes, bad frames, huge and deeply nested JSON, wrong and unknown types on
 * the WebSocket; malformed bodies and ids with path and SQL metacharacters on REST. The server
 * never crashes, never answers a client's mistake with a 500, and keeps serving a well-behaved
 * client throughout. Seeded, so a failure reproduces; bounded in count and time.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { RawWebSocket } from "../helpers/raw-websocket.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { connect } from "../helpers/ws-client.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ config: { maxFrameBytes: 64 * 1024, maxBodyBytes: 64 * 1024 } });
});
afterAll(() => server.close());

/** mulberry32: a small seeded PRNG. */
function random(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(process.env.FUZZ_SEED ?? 20261125);
const next = random(SEED);
const pick = <T,>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
const bytes = (length: number) => Uint8Array.from({ length }, () => Math.floor(next() * 256));

const HOSTILE_STRINGS = [
  "'; DROP TABLE tasks; --",
  "\" OR 1=1 --",
  "../../../../etc/passwd",
  "..%2F..%2F..%2Fetc%2Fpasswd",
  "%00",
  "%ff%fe",
  "$(reboot)",
  "`id`",
  "<script>alert(1)</script>",
  "\u202e\u0000\uffff",
  "😀".repeat(50),
  "a".repeat(300),
  "__proto__",
  "constructor",
  "{\"$ne\":null}",
];

function hostileJson(): string {
  switch (Math.floor(next() * 10)) {
    case 0:
      return "[".repeat(20_000) + "]".repeat(20_000); // deeply nested
    case 1:
      return '{"a":'.repeat(5000) + "1" + "}".repeat(5000);
    case 2:
      return JSON.stringify({ type: "ping", padding: "x".repeat(60_000) }); // large, under the limit
    case 3:
      return JSON.stringify({ type: pick([null, 1, true, [], {}, "PING", "cancel ", "\u0000", "pong", "result", "step"]) });
    case 4:
      return JSON.stringify(pick([null, 0, "ping", [], [{ type: "ping" }], 1e309]));
    case 5:
      return JSON.stringify({ type: "cancel", extra: { nested: [1, 2, { deep: true }] } }).slice(0, Math.floor(next() * 40));
    case 6:
      return `{"type":"${pick(HOSTILE_STRINGS).replaceAll('"', "")}"}`;
    case 7:
      return new TextDecoder().decode(bytes(1 + Math.floor(next() * 200)));
    case 8:
      return JSON.stringify({ __proto__: { type: "cancel" }, constructor: { prototype: { type: "cancel" } } });
    default:
      return "1".repeat(400) + "e99999";
  }
}

test("the WebSocket endpoint survives hostile clients while a well-behaved one keeps being served", async () => {
  const task = await server.createTask({ input: "What is 1 + 1?" });
  const good = await server.watch(task.id);
  await good.result();

  const deadline = Date.now() + 12_000;
  let cases = 0;
  for (let round = 0; round < 60 && Date.now() < deadline; round++) {
    const raw = await RawWebSocket.open(server.port, `/ws/tasks/${pick([task.id, "nope", HOSTILE_STRINGS[0]!.replaceAll(" ", "%20")])}`);
    raw.socket.on("error", () => {}); // the server may cut a misbehaving client off: expected
    for (let index = 0; index < 8; index++, cases++) {
      switch (Math.floor(next() * 6)) {
        case 0:
          raw.sendFrame(1, hostileJson()); // text
          break;
        case 1:
          raw.sendFrame(2, bytes(Math.floor(next() * 2000))); // binary
          break;
        case 2:
          raw.sendFrame(1, bytes(50)); // text with invalid UTF-8
          break;
        case 3:
          raw.sendFrame(1, '{"type":', { fin: false }); // a fragment that never ends
          break;
        case 4:
          raw.writeRaw(bytes(1 + Math.floor(next() * 64))); // not even a frame
          break;
        default:
          raw.sendFrame(pick([3, 7, 9, 10, 11, 15]), bytes(Math.floor(next() * 10))); // reserved or control opcodes
      }
    }
    raw.destroy();
    // Between hostile rounds, the well-behaved client is still served.
    if (round % 10 === 0) {
      good.send({ type: "ping" });
      const pongs = good.frames.filter((frame) => frame.type === "pong").length;
      await good.waitFor(() => good.frames.filter((frame) => frame.type === "pong").length > pongs, "a pong");
    }
  }
  expect(cases).toBeGreaterThan(100);

  // Every JSON-level mistake on a normal connection gets an error frame and the connection stays open.
  const tolerant = await server.watch(task.id);
  await tolerant.result();
  for (let index = 0; index < 40; index++) {
    const before = tolerant.frames.length;
    tolerant.send(hostileJson());
    await tolerant.waitFor(() => tolerant.frames.length > before, `an answer to hostile frame ${index}`);
    expect(tolerant.frames.at(-1)!.type).toBeOneOf(["error", "pong"]);
  }
  tolerant.send({ type: "ping" });
  await tolerant.waitFor((frame) => frame.type === "pong", "a pong after the fuzz");

  // The server still runs new tasks end to end.
  const after = await server.createTask({ input: "What is 2 + 3?" });
  expect((await (await server.watch(after.id)).result()).data).toMatchObject({ status: "completed", output: "2 + 3 = 5" });
});

test("the REST API answers hostile requests with 4xx, never 500, and keeps its data intact", async () => {
  const task = await server.createTask({ input: "keep me" });
  const statuses = new Map<number, number>();
  const record = (status: number) => statuses.set(status, (statuses.get(status) ?? 0) + 1);
  const deadline = Date.now() + 12_000;
  for (let index = 0; index < 400 && Date.now() < deadline; index++) {
    const id = encodeURIComponent(pick(HOSTILE_STRINGS)).slice(0, 400);
    const request = pick<() => Promise<Response>>([
      () => server.http(`/tasks/${id}`),
      () => server.http(`/tasks/${id}/events?after=${pick(["-1", "1e9", "NaN", "0x10", "1;2", "%00", "99999999999999999999"])}`),
      () => server.http(`/tasks/${id}/cancel`, { method: "POST" }),
      () => server.http(`/tasks?status=${id}&limit=${pick(["0", "-5", "abc", "1000000", "20"])}&cursor=${id}`),
      () => server.http("/tasks", { method: "POST", body: bytes(Math.floor(next() * 500)), headers: { "content-type": "application/json" } }),
      () => server.http("/tasks", { method: "POST", body: hostileJson(), headers: { "content-type": "application/json" } }),
      () => server.http("/tasks", { method: "POST", json: { input: pick(HOSTILE_STRINGS), agent: pick(HOSTILE_STRINGS), metadata: pick([null, [], "x", { a: 1 }]) } }),
      () => server.http("/tasks", { method: "POST", body: "input=hi", headers: { "content-type": "application/x-www-form-urlencoded" } }),
      () => server.http("/tasks", { method: pick(["PUT", "DELETE", "PATCH"]), json: {} }),
      () => server.http(`/${id}/${id}`),
    ])();
    const response = await request;
    await response.arrayBuffer();
    record(response.status);
  }
  // The fuzz reached the handlers, not only the router: validation and lookups both answered.
  expect(statuses.get(400)).toBeGreaterThan(10);
  expect(statuses.get(404)).toBeGreaterThan(10);
  const serverErrors = [...statuses].filter(([status]) => status >= 500);
  expect(serverErrors).toEqual([]);
  expect([...statuses.keys()].every((status) => status < 500)).toBe(true);
  // The data is intact: the task is there, the table was not dropped, the API still works.
  expect(await (await server.http(`/tasks/${task.id}`)).json()).toMatchObject({ id: task.id, input: "keep me" });
  const list = (await (await server.http("/tasks?limit=100")).json()) as { tasks: unknown[] };
  expect(list.tasks.length).toBeGreaterThan(0);
  const fresh = await connect(`ws://127.0.0.1:${server.port}/ws/tasks/${task.id}`);
  await fresh.result();
});
