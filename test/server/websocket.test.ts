/** The task WebSocket end to end: real Bun.serve on 127.0.0.1, real WebSocket clients. */
import { afterEach, describe, expect, test } from "bun:test";
import type { ModelStreamPart } from "../../src/llm/model.ts";
import { deferred, within } from "../helpers/deferred.ts";
import { answer, callTools, createScriptedModel, type ScriptStep } from "../helpers/scripted-model.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { createGateTool, createStubbornTool } from "../helpers/tools.ts";
import { closeCode, RawWebSocket } from "../helpers/raw-websocket.ts";
import { connect } from "../helpers/ws-client.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const calc = (id: string, expression: string) => ({ id, name: "calculator", arguments: JSON.stringify({ expression }) });

/** A step that waits for `gate` before the model says anything. */
function gated(gate: Promise<void>, parts: ModelStreamPart[]): ScriptStep {
  return async function* () {
    await gate;
    yield* parts;
  };
}

async function storedFrames(taskId: string): Promise<string[]> {
  const response = await server!.http(`/tasks/${taskId}/events`);
  const body = (await response.json()) as { events: unknown[] };
  return body.events.map((event) => JSON.stringify(event));
}

describe("watching a task", () => {
  test("two watchers each get every event exactly once, in seq order, identical to the stored log", async () => {
    const start = deferred();
    const middle = deferred();
    const steps: ScriptStep[] = [
      gated(start.promise, [
        { type: "text-delta", text: "computing" },
        { type: "tool-call", call: calc("c1", "1+1") },
        { type: "tool-call", call: calc("c2", "2*3") },
        { type: "finish", finishReason: "tool-calls", usage: { inputTokens: 3, outputTokens: 4 } },
      ]),
      gated(middle.promise, [
        { type: "tool-call", call: calc("c3", "10/4") },
        { type: "finish", finishReason: "tool-calls", usage: { inputTokens: 3, outputTokens: 4 } },
      ]),
      answer("done"),
    ];
    server = await startTestServer({ models: { m: createScriptedModel(steps) }, agents: [{ model: "test/m" }] });
    const task = await server.createTask({ input: "go" });

    const first = await server.watch(task.id);
    await first.waitFor((frame) => frame.type === "connected");
    start.resolve();
    await first.waitFor((frame) => frame.seq === 6, "step events of the first model step");

    const second = await server.watch(task.id); // joins mid-task
    middle.resolve();
    const [firstResult, secondResult] = await Promise.all([first.result(), second.result()]);

    const stored = await storedFrames(task.id);
    expect(stored.length).toBe(11); // usage, thought, 2 calls, 2 results | usage, call, result | usage, result
    const all = stored.map((_, index) => index + 1);
    expect(first.seqs).toEqual(all);
    expect(second.seqs).toEqual(all);
    expect(first.durable).toEqual(stored);
    expect(second.durable).toEqual(stored);
    expect(firstResult.data).toMatchObject({ status: "completed", output: "done", total_steps: 3, total_tokens: 29 });
    expect(secondResult).toEqual(firstResult);
    expect(first.frames[0]).toMatchObject({ type: "connected", task_id: task.id, status: "running", last_seq: 0 });
    expect(second.frames[0]).toMatchObject({ type: "connected", status: "running", last_seq: 6 });
    // Live text arrived as delta frames to the watcher that was there, before the step's events.
    const delta = first.frames.findIndex((frame) => frame.type === "delta");
    expect(first.frames[delta]).toEqual({ type: "delta", step: 1, data: { kind: "text", text: "computing" } });
    expect(delta).toBeLessThan(first.frames.findIndex((frame) => frame.seq === 1));
    // Deltas are live-only: the late joiner got the final step's text live, not step 1's replayed.
    expect(second.frames.filter((frame) => frame.type === "delta").map((frame) => frame.step)).toEqual([3]);
  });

  test("a watcher that connects after the task ended gets the whole log and the result", async () => {
    server = await startTestServer();
    const task = await server.createTask({ input: "What is 6 * 7?" });
    const early = await server.watch(task.id);
    const earlyResult = await early.result();
    expect(earlyResult.data).toMatchObject({ status: "completed", output: "6 * 7 = 42" });

    const late = await server.watch(task.id);
    const lateResult = await late.result();
    expect(late.frames[0]).toMatchObject({ type: "connected", status: "completed", last_seq: lateResult.seq });
    expect(late.seqs).toEqual([1, 2, 3, 4, 5, 6]);
    expect(late.durable).toEqual(await storedFrames(task.id));
    expect(late.frames.map((frame) => (frame.data as { event_type?: string } | undefined)?.event_type ?? frame.type)).toEqual([
      "connected",
      "usage",
      "thought",
      "tool_call",
      "tool_result",
      "usage",
      "result",
    ]);
  });

  test("after=N resumes exactly after N, for a finished and for a running task", async () => {
    const gate = createGateTool();
    const model = createScriptedModel([
      callTools([calc("c1", "1+2"), calc("c2", "3+4")], "thinking"),
      callTools([{ id: "w", name: "wait", arguments: "{}" }]),
      answer("ok"),
    ]);
    server = await startTestServer({ models: { m: model }, tools: [gate.tool], agents: [{ model: "test/m", tools: ["calculator", "wait"] }] });
    const task = await server.createTask({ input: "go" });
    await within(gate.started, 5000, "the wait tool");

    // Running: seq 1..8 exist (usage, thought, 2 calls, 2 results | usage, wait call); resume after 3.
    const resumed = await server.watch(task.id, "after=3");
    await resumed.waitFor((frame) => frame.seq === 8);
    gate.release();
    const result = await resumed.result();
    const last = result.seq!;
    expect(resumed.seqs).toEqual(Array.from({ length: last - 3 }, (_, index) => index + 4));

    // Finished: resume after 5, and after the very last (nothing but connected).
    const afterFive = await server.watch(task.id, "after=5");
    await afterFive.result();
    expect(afterFive.seqs).toEqual(Array.from({ length: last - 5 }, (_, index) => index + 6));

    const caughtUp = await server.watch(task.id, `after=${last}`);
    await caughtUp.waitFor((frame) => frame.type === "connected");
    caughtUp.send({ type: "ping" });
    await caughtUp.waitFor((frame) => frame.type === "pong");
    expect(caughtUp.seqs).toEqual([]);
  });

  test("watchers joining and resuming while events stream in get exactly the stored log", async () => {
    const steps = 60;
    // Each step yields to the event loop first, so connections interleave with publishing.
    const step: ScriptStep = async function* (request) {
      await Bun.sleep(1);
      const done = request.messages.filter((message) => message.role === "tool").length;
      if (done >= steps) {
        yield { type: "text-delta", text: "finished" };
        yield { type: "finish", finishReason: "stop", usage: { inputTokens: 1, outputTokens: 1 } };
        return;
      }
      yield { type: "tool-call", call: calc(`c${done}`, `${done}+1`) };
      yield { type: "finish", finishReason: "tool-calls", usage: { inputTokens: 1, outputTokens: 1 } };
    };
    server = await startTestServer({
      models: { m: createScriptedModel([step], { repeatLast: true }) },
      agents: [{ model: "test/m", max_steps: steps + 1 }],
      // Replay reads take a few ms, like a networked database: events keep coming meanwhile.
      // Appends are visible before they are acknowledged, as with a networked database.
      wrapStore: (store) => ({
        ...store,
        events: async (...args) => (await Bun.sleep(4), store.events(...args)),
        appendEvents: async (...args) => (await store.appendEvents(...args), await Bun.sleep(2)),
      }),
      // A short live tail, so joining watchers must replay from the store and then catch up.
      liveTailSize: 3,
    });
    const task = await server.createTask({ input: "count" });
    const watchers: { after: number; socket: Awaited<ReturnType<TestServer["watch"]>> }[] = [];
    for (let index = 0; index < 12; index++) {
      const known = watchers.at(-1)?.socket.seqs.at(-1) ?? 0;
      const after = index % 3 === 0 ? 0 : Math.floor(known / 2);
      watchers.push({ after, socket: await server.watch(task.id, `after=${after}`) });
      await Bun.sleep(3);
    }
    await Promise.all(watchers.map(({ socket }) => socket.result()));
    const stored = await storedFrames(task.id);
    expect(stored.length).toBe(steps * 3 + 2);
    for (const { after, socket } of watchers) {
      expect(socket.durable).toEqual(stored.slice(after));
    }
    // The joins really were spread over the run: some watcher saw the task still running.
    expect(watchers.some(({ socket }) => socket.frames[0]!.status === "running" && (socket.frames[0]!.last_seq as number) > 0)).toBe(true);
  });

  test("after beyond the last event, or not a number, is refused with an error frame", async () => {
    server = await startTestServer();
    const task = await server.createTask({ input: "hello" });
    await (await server.watch(task.id)).result();

    const beyond = await server.watch(task.id, "after=99");
    const error = await beyond.waitFor((frame) => frame.type === "error");
    expect((error.data as { message: string }).message).toContain("after=99");
    expect((await beyond.closed).code).toBe(4400);

    const response = await server.http(`/ws/tasks/${task.id}?after=-1`, { headers: { upgrade: "websocket" } });
    expect(response.status).toBe(400);
  });
});

describe("cancel", () => {
  test("cancel from watcher A reaches watcher B and aborts the in-flight tool", async () => {
    const gate = createGateTool();
    const model = createScriptedModel([callTools([{ id: "w", name: "wait", arguments: "{}" }]), answer("never")]);
    server = await startTestServer({ models: { m: model }, tools: [gate.tool], agents: [{ model: "test/m", tools: ["wait"] }] });
    const task = await server.createTask({ input: "go" });
    const a = await server.watch(task.id);
    const b = await server.watch(task.id);
    await within(gate.started, 5000, "the wait tool to start");

    a.send({ type: "cancel" });
    const [resultA, resultB] = await Promise.all([a.result(), b.result()]);
    expect(resultA.data).toMatchObject({ status: "cancelled", task_id: task.id, stop_reason: "cancelled" });
    expect(resultB).toEqual(resultA);
    expect(gate.abortedWith).toBeDefined();
    expect(model.requests.length).toBe(1); // the model was never asked again
    const stored = (await (await server.http(`/tasks/${task.id}`)).json()) as { status: string; last_seq: number };
    expect(stored).toMatchObject({ status: "cancelled", last_seq: resultA.seq });
    // Exactly one result each, and cancelling again changes nothing.
    a.send({ type: "cancel" });
    a.send({ type: "ping" });
    await a.waitFor((frame) => frame.type === "pong");
    expect(a.frames.filter((frame) => frame.type === "result").length).toBe(1);
  });

  test("what a cancel gets back (as /asyncapi.json says): the result, never an ack (request_id or not); on an ended task, nothing", async () => {
    const gate = createGateTool();
    const model = createScriptedModel([callTools([{ id: "w", name: "wait", arguments: "{}" }]), answer("never")]);
    server = await startTestServer({ models: { m: model }, tools: [gate.tool], agents: [{ model: "test/m", tools: ["wait"] }] });
    const task = await server.createTask({ input: "go" });
    const socket = await server.watch(task.id);
    await within(gate.started, 5000, "the wait tool to start");
    socket.send({ type: "cancel", request_id: "c1" });
    expect((await socket.result()).data).toMatchObject({ status: "cancelled" });
    // The task has ended: a cancel now sends nothing (what comes next is the ping's pong).
    const seen = socket.frames.length;
    socket.send({ type: "cancel", request_id: "c2" });
    await Bun.sleep(200);
    socket.send({ type: "ping" });
    await socket.waitFor((frame) => frame.type === "pong");
    expect(socket.frames.slice(seen).map((frame) => frame.type)).toEqual(["pong"]);
    expect(socket.frames.filter((frame) => frame.type === "ack" || frame.type === "error")).toEqual([]);
  });

  test("a tool that ignores abort does not hold the cancel", async () => {
    const stubborn = createStubbornTool();
    const model = createScriptedModel([callTools([{ id: "s", name: "stubborn", arguments: "{}" }])]);
    server = await startTestServer({ models: { m: model }, tools: [stubborn.tool], agents: [{ model: "test/m", tools: ["stubborn"] }] });
    const task = await server.createTask({ input: "go" });
    const watcher = await server.watch(task.id);
    await within(stubborn.started, 5000, "the stubborn tool");
    watcher.send({ type: "cancel" });
    expect((await watcher.result(5000)).data).toMatchObject({ status: "cancelled" });
  });

  test("a model call that ignores abort does not hold the cancel, and what came before it was sent at once", async () => {
    const started = deferred<void>();
    // Step 1 is instant (its events are still buffered when step 2 begins); step 2 never ends and never looks at its signal.
    const deaf: ScriptStep = () => ({
      async *[Symbol.asyncIterator]() {
        started.resolve();
        await new Promise(() => {});
      },
    });
    const model = createScriptedModel([callTools([{ id: "c", name: "calculator", arguments: '{"expression":"1+1"}' }]), deaf]);
    server = await startTestServer({ models: { m: model }, agents: [{ model: "test/m", tools: ["calculator"] }] });
    const task = await server.createTask({ input: "go" });
    const watcher = await server.watch(task.id);
    await within(started.promise, 5000, "the second model call");
    // The step before the hanging call is stored and sent without waiting for it.
    await watcher.waitFor((frame) => frame.type === "step" && (frame.data as { event_type?: string } | undefined)?.event_type === "tool_result", "the first step's result");
    watcher.send({ type: "cancel" });
    expect((await watcher.result(5000)).data).toMatchObject({ status: "cancelled" });
  });

  test("a model call in flight is aborted by cancel", async () => {
    const sawAbort = deferred<unknown>();
    const hanging: ScriptStep = (request) => ({
      async *[Symbol.asyncIterator]() {
        yield { type: "text-delta", text: "thinking…" } as const;
        await new Promise((_, reject) =>
          request.abortSignal.addEventListener("abort", () => {
            sawAbort.resolve(request.abortSignal.reason);
            reject(request.abortSignal.reason);
          }),
        );
      },
    });
    server = await startTestServer({ models: { m: createScriptedModel([hanging]) }, agents: [{ model: "test/m" }] });
    const task = await server.createTask({ input: "go" });
    const watcher = await server.watch(task.id);
    await watcher.waitFor((frame) => frame.type === "connected");
    const response = await server.http(`/tasks/${task.id}/cancel`, { method: "POST" });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ status: "cancelled" });
    await within(sawAbort.promise, 5000, "the model's signal to abort");
    expect((await watcher.result()).data).toMatchObject({ status: "cancelled" });
  });

  test("cancel reaches a task whose model and tools never wait on I/O", async () => {
    server = await startTestServer({ agents: [{ model: "demo/bench", tools: ["calculator"], max_steps: 100_000 }] });
    const task = await server.createTask({ input: JSON.stringify({ steps: 50_000 }) });
    const watcher = await server.watch(task.id, "deltas=0");
    await watcher.waitFor((frame) => (frame.seq ?? 0) >= 30, "the first events");
    watcher.send({ type: "cancel" });
    const result = await watcher.result();
    expect(result.data).toMatchObject({ status: "cancelled" });
    expect(result.seq!).toBeLessThan(50_000 * 3);
  });

  test("a queued task that is cancelled never runs", async () => {
    const gate = createGateTool();
    const model = createScriptedModel([callTools([{ id: "w", name: "wait", arguments: "{}" }]), answer("first done"), answer("second done")]);
    server = await startTestServer({
      models: { m: model },
      tools: [gate.tool],
      agents: [{ model: "test/m", tools: ["wait"] }],
      config: { maxConcurrentTasks: 1 },
    });
    const first = await server.createTask({ input: "first" });
    await within(gate.started, 5000, "the first task to run");
    const second = await server.createTask({ input: "second" });
    expect(second.status).toBe("queued");
    const watcher = await server.watch(second.id);
    expect((await watcher.waitFor((frame) => frame.type === "connected")).status).toBe("queued");

    watcher.send({ type: "cancel" });
    const result = await watcher.result();
    expect(result).toMatchObject({ seq: 1, data: { status: "cancelled", stop_reason: "cancelled" } });

    gate.release();
    const firstWatcher = await server.watch(first.id);
    expect((await firstWatcher.result()).data).toMatchObject({ status: "completed", output: "first done" });
    // The model only ever saw the first task's conversation; the second never started.
    expect(model.requests.every((request) => request.messages[0]?.content === "first")).toBe(true);
    const stored = (await (await server.http(`/tasks/${second.id}`)).json()) as Record<string, unknown>;
    expect(stored).toMatchObject({ status: "cancelled", started_at: null, last_seq: 1 });
  });
});

describe("connection rules", () => {
  test("ping gets pong; bad frames get an error frame and the connection stays open", async () => {
    server = await startTestServer();
    const task = await server.createTask({ input: "hi" });
    const socket = await server.watch(task.id);
    await socket.result();
    const errorsBefore = () => socket.frames.filter((frame) => frame.type === "error").length;

    const bad: (string | Uint8Array)[] = [
      "not json",
      "[1,2,3]",
      '{"type":"dance"}',
      '{"type":5}',
      '"cancel"',
      "null",
      new Uint8Array([1, 2, 3]),
      // Refused from its text, before it is parsed: nested past a flat object, or too many fields.
      `{"type":"ping","x":${"[".repeat(5000)}${"]".repeat(5000)}}`,
      `{"type":"ping",${Array.from({ length: 100 }, (_, index) => `"k${index}":1`).join(",")}}`,
    ];
    for (const [index, frame] of bad.entries()) {
      socket.send(frame);
      await socket.waitFor(() => errorsBefore() === index + 1, `error frame ${index + 1}`);
    }
    const errors = socket.frames.filter((frame) => frame.type === "error").map((frame) => (frame.data as { message: string }).message);
    expect(errors[0]).toBe("Invalid JSON");
    expect(errors[2]).toContain("Unknown message type 'dance'");
    expect(errors[6]).toContain("Binary frames are not supported");
    expect(errors[7]).toBe("Message is too deeply nested or has too many fields (nests deeper than 4 levels); send one flat JSON object");
    expect(errors[8]).toContain("has more than 64 values and keys");
    socket.send({ type: "ping" });
    await socket.waitFor((frame) => frame.type === "pong");
  });

  test("a client past 200 messages in one second is closed with 1008; the others are served", async () => {
    server = await startTestServer();
    const task = await server.createTask({ input: "hi" });
    const flooder = await server.watch(task.id);
    const calm = await server.watch(task.id);
    await flooder.result();
    for (let index = 0; index < 1000; index++) flooder.send({ type: "ping" });
    const closed = await flooder.closed;
    expect(closed.code).toBe(1008);
    expect(closed.reason).toBe("Too many messages: at most 200 a second");
    expect(flooder.frames.filter((frame) => frame.type === "pong").length).toBeLessThanOrEqual(200);
    calm.send({ type: "ping" });
    await calm.waitFor((frame) => frame.type === "pong");
  });

  test("protocol-level pings and pongs count too: 10,000 in one write close the socket with 1008 (pings: after at most 200 pongs, not one pong each)", async () => {
    server = await startTestServer();
    const task = await server.createTask({ input: "hi" });
    await (await server.watch(task.id)).result();
    for (const opcode of [0x9, 0xa]) {
      const flooder = await RawWebSocket.open(server.port, `/ws/tasks/${task.id}`);
      const one = Buffer.from([0x80 | opcode, 0x84, 1, 2, 3, 4, 0x61 ^ 1, 0x62 ^ 2, 0x63 ^ 3, 0x64 ^ 4]); // masked, 4 bytes of payload
      flooder.writeRaw(Buffer.concat(Array.from({ length: 10_000 }, () => one)));
      const frames = await flooder.readUntilClosed();
      const close = frames.at(-1)!;
      expect(closeCode(close)).toBe(1008);
      expect(close.payload.subarray(2).toString()).toBe("Too many messages: at most 200 a second");
      const pongs = frames.filter((frame) => frame.opcode === 10).length;
      if (opcode === 0x9) expect(pongs).toBeGreaterThan(0);
      expect(pongs).toBeLessThanOrEqual(201);
    }
    const calm = await server.watch(task.id);
    calm.send({ type: "ping" });
    await calm.waitFor((frame) => frame.type === "pong");
  });

  test("an unknown task id gets an error frame, then close 4404", async () => {
    server = await startTestServer();
    const socket = await server.watch("no-such-task");
    const error = await socket.waitFor((frame) => frame.type === "error");
    expect(error.data).toMatchObject({ code: "not_found" });
    expect((await socket.closed).code).toBe(4404);
  });

  test("with a key configured: wrong or missing key → error frame, then close 4001; right key → connected", async () => {
    server = await startTestServer({ config: { apiKey: "s3cret-key-123" } });
    const task = await server.createTask({ input: "hi" }, { authorization: "Bearer s3cret-key-123" });
    for (const query of ["", "api_key=wrong-key-456", "api_key="]) {
      const socket = await server.watch(task.id, query);
      const error = await socket.waitFor((frame) => frame.type === "error");
      expect(error.data).toMatchObject({ message: "Invalid or missing api_key" });
      expect((await socket.closed).code).toBe(4001);
      expect(socket.frames.length).toBe(1);
    }
    const allowed = await server.watch(task.id, "api_key=s3cret-key-123");
    await allowed.result();
  });

  test("a quiet client that answers the server's pings, and one sending {type:'ping'}, both outlive the heartbeat window", async () => {
    // (The seed closed a client that sent no message for 60 s; browsers cannot send ping frames,
    // so a quiet watcher is judged by its answers to the server's pings — see ws-handshake.test.ts.)
    server = await startTestServer({ config: { heartbeatMs: 150 } });
    const task = await server.createTask({ input: "hi" });
    const quiet = await server.watch(task.id);
    const pinging = await server.watch(task.id);
    const timer = setInterval(() => pinging.send({ type: "ping" }), 50);
    try {
      const closedEarly = await Promise.race([quiet.closed.then(() => true), pinging.closed.then(() => true), Bun.sleep(750).then(() => false)]);
      expect(closedEarly).toBe(false);
      expect(pinging.frames.filter((frame) => frame.type === "pong").length).toBeGreaterThan(5);
    } finally {
      clearInterval(timer);
    }
  });

  test("a client that disconnects does not cancel the task", async () => {
    const gate = createGateTool();
    const model = createScriptedModel([callTools([{ id: "w", name: "wait", arguments: "{}" }]), answer("finished anyway")]);
    server = await startTestServer({ models: { m: model }, tools: [gate.tool], agents: [{ model: "test/m", tools: ["wait"] }] });
    const task = await server.createTask({ input: "go" });
    const socket = await server.watch(task.id);
    await within(gate.started, 5000, "the tool");
    socket.close();
    await socket.closed;
    gate.release();
    const later = await connect(`ws://127.0.0.1:${server.port}/ws/tasks/${task.id}`);
    expect((await later.result()).data).toMatchObject({ status: "completed", output: "finished anyway" });
    expect(gate.abortedWith).toBeUndefined();
  });
});
