/**
 * People in the loop survive a restart of the compiled binary (issue 10): a task parked for an
 * approval or a question holds nothing in memory, so stopping the process — gracefully (SIGTERM)
 * or not (SIGKILL) — loses nothing. The decision made after the next start, on the same data dir,
 * resumes it; a watcher that reconnects with `after=<the last seq it had>` gets the rest once, and
 * the stored log is one gapless log with each request and decision exactly once. A steering input
 * accepted while the task waited reaches the model after the restart.
 *
 * The built-in demo model drives it: "what is 6*7?" calls `calculator` (which needs approval
 * here), "ask me: …" calls `ask_user`, and any other last user message is answered "You said: …".
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { buildBinary, launchBinary, type BinaryProcess } from "../helpers/binary.ts";
import { within } from "../helpers/deferred.ts";
import { tempDir } from "../helpers/server.ts";
import { connect, type Frame, type TestSocket } from "../helpers/ws-client.ts";

let workDir: string;
let binary: string;
let configPath: string;

beforeAll(async () => {
  workDir = tempDir();
  binary = buildBinary(workDir);
  configPath = join(workDir, "agents.json");
  await Bun.write(
    configPath,
    JSON.stringify({ agents: [{ name: "default", model: "demo", tools: ["calculator", "ask_user"], approval: ["calculator"] }] }),
  );
}, 120_000);
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

let processes: BinaryProcess[] = [];
let sockets: TestSocket[] = [];
afterEach(async () => {
  for (const socket of sockets) socket.close();
  for (const node of processes) node.child.kill("SIGKILL");
  await Promise.all(processes.map((node) => node.exited));
  processes = [];
  sockets = [];
});

async function start(dataDir: string): Promise<BinaryProcess> {
  const node = await launchBinary(binary, ["serve", "--data-dir", dataDir, "--config", configPath], {}, { cwd: workDir });
  processes.push(node);
  return node;
}

/** Stops the process with `signal`; resolves with its exit code. */
async function stop(node: BinaryProcess, signal: "SIGTERM" | "SIGKILL"): Promise<number> {
  node.child.kill(signal);
  return within(node.exited, 15_000, `the binary to exit on ${signal}`);
}

async function request(node: BinaryProcess, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(node.base + path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

async function createTask(node: BinaryProcess, input: string): Promise<string> {
  const created = await request(node, "POST", "/tasks", { input });
  expect(created.status).toBe(201);
  return created.body.id as string;
}

async function watch(node: BinaryProcess, id: string, after?: number): Promise<TestSocket> {
  const socket = await connect(`${node.ws}/ws/tasks/${id}${after === undefined ? "" : `?after=${after}`}`);
  sockets.push(socket);
  return socket;
}

/** Polls GET /tasks/:id until `check` accepts it (bounded; never a timing assertion). */
async function taskWhen(node: BinaryProcess, id: string, check: (task: any) => boolean, what: string): Promise<any> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const { status, body } = await request(node, "GET", `/tasks/${id}`);
    expect(status).toBe(200);
    if (check(body)) return body;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(body)}`);
    await Bun.sleep(20);
  }
}

/** The stored log through GET /tasks/:id/events: parsed frames and their exact text. */
async function storedLog(node: BinaryProcess, id: string): Promise<{ frames: Frame[]; texts: string[] }> {
  const { status, body } = await request(node, "GET", `/tasks/${id}/events?after=0&limit=1000`);
  expect(status).toBe(200);
  const events = body.events as Frame[];
  return { frames: events, texts: events.map((event) => JSON.stringify(event)) };
}

const eventType = (frame: Frame) => (frame.type === "step" ? (frame.data as { event_type: string }).event_type : frame.type);
const stepData = (frame: Frame) => (frame.data as { data: Record<string, any> }).data;
const ofType = (frames: Frame[], type: string) => frames.filter((frame) => eventType(frame) === type);
const oneToN = (n: number) => Array.from({ length: n }, (_, index) => index + 1);

/**
 * Creates a task that parks, waits until the store says it waits; returns the request's frame and
 * the watcher that saw it (connected from the start, so it saw every frame up to then).
 */
async function parkedTask(node: BinaryProcess, input: string, requestType: "approval_requested" | "question") {
  const id = await createTask(node, input);
  const watcher = await watch(node, id);
  const asked = await watcher.waitFor((frame) => eventType(frame) === requestType, requestType);
  const waiting = await taskWhen(node, id, (task) => task.status === "waiting", "the task to wait");
  expect(waiting.wait_until).not.toBeNull();
  // It waits with everything it wrote already delivered: the watcher has 1..last_seq, no result.
  await watcher.waitFor((frame) => frame.seq === waiting.last_seq, "the last frame before the wait");
  expect(watcher.seqs).toEqual(oneToN(waiting.last_seq));
  expect(watcher.frames.some((frame) => frame.type === "result")).toBe(false);
  return { id, watcher, asked, waiting, callId: stepData(asked).id as string };
}

/** The first watcher's frames, then the reconnected one's: together exactly the stored log, each once. */
function expectOneLog(first: TestSocket, second: TestSocket, stored: string[], lastSeqBefore: number) {
  expect(first.durable).toEqual(stored.slice(0, lastSeqBefore));
  expect(second.seqs).toEqual(oneToN(stored.length).slice(lastSeqBefore));
  expect(second.durable).toEqual(stored.slice(lastSeqBefore));
}

for (const signal of ["SIGTERM", "SIGKILL"] as const) {
  test(`an approval decided after a restart (${signal}) resumes the task: one gapless log, every request and decision once`, async () => {
    const dataDir = join(workDir, `approval-${signal}`);
    let node = await start(dataDir);
    const { id, watcher, asked, waiting, callId } = await parkedTask(node, "what is 6*7?", "approval_requested");
    expect(stepData(asked)).toMatchObject({ id: callId, name: "calculator", arguments: { expression: "6*7" } });

    const code = await stop(node, signal);
    if (signal === "SIGTERM") expect(code).toBe(0);
    await within(watcher.closed, 10_000, "the watcher to be closed");
    expect(watcher.frames.some((frame) => frame.type === "result")).toBe(false);

    node = await start(dataDir);
    // Nothing moved while it was down, and nothing moves on start-up: it still waits.
    const after = (await request(node, "GET", `/tasks/${id}`)).body;
    expect(after).toMatchObject({ status: "waiting", last_seq: waiting.last_seq, wait_until: waiting.wait_until });
    const rejoined = await watch(node, id, waiting.last_seq);

    const decided = await request(node, "POST", `/tasks/${id}/approvals`, { call_id: callId, decision: "approve" });
    expect(decided.status).toBe(200);
    expect(decided.body.id).toBe(id);
    expect(decided.body.status).not.toBe("waiting");
    // Deciding again is refused and changes nothing.
    const again = await request(node, "POST", `/tasks/${id}/approvals`, { call_id: callId, decision: "reject" });
    expect(again.status).toBe(409);

    const result = await rejoined.result();
    expect(result.data).toMatchObject({ status: "completed", output: "6*7 = 42" });
    const { frames, texts } = await storedLog(node, id);
    expect(frames.map((frame) => frame.seq)).toEqual(oneToN(frames.length));
    expect(frames.at(-1)).toMatchObject({ type: "result", seq: result.seq });
    expect(ofType(frames, "result")).toHaveLength(1);
    expect(ofType(frames, "approval_requested")).toHaveLength(1);
    expect(ofType(frames, "approval_decided").map(stepData)).toEqual([expect.objectContaining({ id: callId, name: "calculator", decision: "approved" })]);
    // The decision comes after the wait, then the run resumes and the approved call runs, once.
    const types = frames.map(eventType);
    const decidedAt = types.indexOf("approval_decided");
    expect(decidedAt).toBe(waiting.last_seq); // 0-based: the frame right after the last one before the wait
    expect(types[decidedAt + 1]).toBe("resumed");
    expect(stepData(frames[decidedAt + 1]!)).toMatchObject({ reason: "continued" });
    expect(ofType(frames, "tool_result").map(stepData)).toEqual([expect.objectContaining({ id: callId })]);
    expect(types.indexOf("tool_result")).toBeGreaterThan(decidedAt);
    expectOneLog(watcher, rejoined, texts, waiting.last_seq);
    expect((await request(node, "GET", `/tasks/${id}`)).body).toMatchObject({ status: "completed", output: "6*7 = 42", wait_until: null });
  });
}

test("a question answered over the WebSocket after a restart (SIGKILL): the answer is the tool's result", async () => {
  const dataDir = join(workDir, "question");
  let node = await start(dataDir);
  const { id, watcher, asked, waiting, callId } = await parkedTask(node, "ask me: what is your favourite colour?", "question");
  expect(stepData(asked)).toMatchObject({ id: callId, name: "ask_user", question: "what is your favourite colour?" });

  await stop(node, "SIGKILL");
  node = await start(dataDir);
  expect((await request(node, "GET", `/tasks/${id}`)).body).toMatchObject({ status: "waiting", last_seq: waiting.last_seq });
  const rejoined = await watch(node, id, waiting.last_seq);
  // An approval is not an answer: refused, the connection stays open, nothing written.
  rejoined.send({ type: "approve", call_id: callId, request_id: "wrong" });
  const refused = await rejoined.waitFor((frame) => frame.type === "error", "the error frame");
  expect(refused.data).toMatchObject({ code: "bad_request", request_id: "wrong" });
  rejoined.send({ type: "answer", call_id: callId, text: "blue", request_id: "r1" });
  expect(await rejoined.waitFor((frame) => frame.type === "ack", "the ack")).toEqual({ type: "ack", of: "answer", request_id: "r1" });

  const result = await rejoined.result();
  expect(result.data).toMatchObject({ status: "completed", output: "You answered: blue" });
  const { frames, texts } = await storedLog(node, id);
  expect(frames.map((frame) => frame.seq)).toEqual(oneToN(frames.length));
  expect(ofType(frames, "result")).toHaveLength(1);
  expect(ofType(frames, "question")).toHaveLength(1);
  expect(ofType(frames, "answer").map(stepData)).toEqual([expect.objectContaining({ id: callId, name: "ask_user", text: "blue" })]);
  expect(eventType(frames[waiting.last_seq]!)).toBe("answer");
  expect(eventType(frames[waiting.last_seq + 1]!)).toBe("resumed");
  expectOneLog(watcher, rejoined, texts, waiting.last_seq);
});

test("a steering input accepted while the task waits survives a restart (SIGKILL) and reaches the model once it is decided", async () => {
  const dataDir = join(workDir, "steer");
  let node = await start(dataDir);
  const { id, watcher, waiting, callId } = await parkedTask(node, "what is 6*7?", "approval_requested");
  watcher.send({ type: "input", text: "never mind, just say hello", request_id: "in-1" });
  const ack = await watcher.waitFor((frame) => frame.type === "ack", "the input's ack");
  expect(ack).toMatchObject({ type: "ack", of: "input", request_id: "in-1" });
  const inputId = ack.input_id as string;
  expect(inputId).toEqual(expect.any(String));
  // Accepted, not yet read: nothing is written to the log while the task waits.
  expect((await request(node, "GET", `/tasks/${id}`)).body).toMatchObject({ status: "waiting", last_seq: waiting.last_seq });

  await stop(node, "SIGKILL");
  node = await start(dataDir);
  const rejoined = await watch(node, id, waiting.last_seq);
  rejoined.send({ type: "approve", call_id: callId, request_id: "ok" });
  expect(await rejoined.waitFor((frame) => frame.type === "ack", "the approval's ack")).toEqual({ type: "ack", of: "approve", request_id: "ok" });

  const result = await rejoined.result();
  // The model read the input last: its answer is to it, not to the arithmetic.
  expect(result.data).toMatchObject({ status: "completed" });
  expect((result.data as { output: string }).output).toStartWith('You said: "never mind, just say hello"');
  const { frames, texts } = await storedLog(node, id);
  expect(frames.map((frame) => frame.seq)).toEqual(oneToN(frames.length));
  const types = frames.map(eventType);
  const inputs = ofType(frames, "user_input");
  expect(inputs.map(stepData)).toEqual([{ id: inputId, text: "never mind, just say hello", by: expect.any(String) }]);
  expect(types.indexOf("user_input")).toBeGreaterThan(types.indexOf("resumed"));
  expect(types.indexOf("resumed")).toBeGreaterThan(types.indexOf("approval_decided"));
  // The approved call still ran, once, before the model read the input.
  expect(ofType(frames, "tool_result").map(stepData)).toEqual([expect.objectContaining({ id: callId })]);
  expect(types.indexOf("tool_result")).toBeLessThan(types.indexOf("user_input"));
  expect(ofType(frames, "result")).toHaveLength(1);
  expectOneLog(watcher, rejoined, texts, waiting.last_seq);
});
