/**
 * People in the loop in cluster mode (issue 10 on issue 9): two in-process nodes
 * (`startServer({ store, cluster })`) on one real PostgreSQL database. A decision, an answer or a
 * steering input can arrive at any node: it is written to the store by the node that received it,
 * and the task goes on wherever it is (or gets) claimed. Watchers on a node that does not run the
 * task get every frame once, in order (the follower publishes from the log).
 *
 * No timed assertions: waits are bounded polls; an absence (a task not claimed) is proved by a
 * later task that was claimed instead (claims take the oldest claimable task first).
 */
import { afterEach, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { AgentDefinition } from "../../src/agents/agent.ts";
import { loadConfig } from "../../src/config/config.ts";
import { silentLogger } from "../../src/lib/logger.ts";
import type { ChatModel, ModelRequest } from "../../src/llm/model.ts";
import { createModelResolver } from "../../src/llm/registry.ts";
import { startServer, type RunningServer } from "../../src/server/serve.ts";
import { createPostgresStore, type PostgresTaskStore } from "../../src/store/postgres-store.ts";
import type { ClusterSignal } from "../../src/store/store.ts";
import { builtinTools } from "../../src/tools/registry.ts";
import type { Tool } from "../../src/tools/tool.ts";
import { within } from "../helpers/deferred.ts";
import { describePostgres } from "../helpers/postgres.ts";
import { answer, callTools, createScriptedModel } from "../helpers/scripted-model.ts";
import { tempDir } from "../helpers/server.ts";
import { createGateTool } from "../helpers/tools.ts";
import { connect, type Frame, type TestSocket } from "../helpers/ws-client.ts";

interface Node {
  id: string;
  server: RunningServer;
  base: string;
  ws: string;
  /** Every cluster signal this node's runner heard, in order (recorded after the runner saw it). */
  heard: ClusterSignal[];
}

interface NodeOptions {
  agents: Partial<AgentDefinition>[];
  models?: Record<string, ChatModel>;
  tools?: Tool[];
  pollMs?: number;
  leaseMs?: number;
}

const DEMO_APPROVAL = { model: "demo", tools: ["calculator", "ask_user"], approval: ["calculator"] };
const eventType = (frame: Frame) => (frame.type === "step" ? (frame.data as { event_type: string }).event_type : frame.type);
const stepData = (frame: Frame) => (frame.data as { data: Record<string, any> }).data;
const ofType = (frames: Frame[], type: string) => frames.filter((frame) => eventType(frame) === type);
const oneToN = (n: number) => Array.from({ length: n }, (_, index) => index + 1);
const lastUser = (request: ModelRequest) => request.messages.findLast((message) => message.role === "user")?.content;

describePostgres("people in the loop across two cluster nodes", (pg) => {
  let nodes: Node[] = [];
  let sockets: TestSocket[] = [];
  let dirs: string[] = [];
  afterEach(async () => {
    for (const socket of sockets) socket.close();
    await Promise.all(nodes.map((node) => node.server.stop()));
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    nodes = [];
    sockets = [];
    dirs = [];
  });

  async function startNode(url: string, id: string, options: NodeOptions): Promise<Node> {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const store: PostgresTaskStore = await createPostgresStore({ url, max: 8 });
    // Record what this node's runner hears, right after it heard it.
    const heard: ClusterSignal[] = [];
    const listen = store.listen.bind(store);
    store.listen = (onSignal, onListen) =>
      listen((signal) => {
        onSignal(signal);
        heard.push(signal);
      }, onListen);
    const tools = new Map(builtinTools() as Map<string, Tool>);
    for (const tool of options.tools ?? []) tools.set(tool.name, tool);
    const models = options.models ?? {};
    const agents = options.agents.map((agent, index) => AgentDefinition.parse({ name: index === 0 ? "default" : `agent${index}`, ...agent }));
    const config = loadConfig({
      env: {},
      readFile: false,
      flags: { port: 0, host: "127.0.0.1", dataDir, logLevel: "silent", nodeId: id, pollMs: options.pollMs ?? 200, leaseMs: options.leaseMs ?? 3000, agents },
    });
    let server: RunningServer;
    try {
      server = await startServer({
        config,
        logger: silentLogger,
        env: {},
        models: createModelResolver({
          test: (name) => {
            const model = models[name];
            if (!model) throw new Error(`no test model '${name}'`);
            return model;
          },
        }),
        tools,
        store,
        cluster: store,
      });
    } catch (error) {
      await store.close();
      throw error;
    }
    const node = { id, server, base: `http://127.0.0.1:${server.port}`, ws: `ws://127.0.0.1:${server.port}`, heard };
    nodes.push(node);
    return node;
  }

  async function request(node: Node, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const response = await fetch(node.base + path, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  }

  async function createTask(node: Node, body: Record<string, unknown>, path = "/tasks"): Promise<string> {
    const created = await request(node, "POST", path, body);
    if (created.status !== 201) throw new Error(`POST ${path} on ${node.id} → ${created.status}: ${JSON.stringify(created.body)}`);
    return created.body.id as string;
  }

  async function watch(node: Node, id: string, after?: number): Promise<TestSocket> {
    const socket = await connect(`${node.ws}/ws/tasks/${id}${after === undefined ? "" : `?after=${after}`}`);
    sockets.push(socket);
    return socket;
  }

  /** Polls until `check` returns something truthy (bounded; never a timing assertion). */
  async function until<T>(check: () => Promise<T> | T, what: string, ms = 15_000): Promise<NonNullable<T>> {
    const deadline = Date.now() + ms;
    for (;;) {
      const value = await check();
      if (value) return value as NonNullable<T>;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await Bun.sleep(20);
    }
  }

  const taskOn = async (node: Node, id: string) => (await request(node, "GET", `/tasks/${id}`)).body;
  const waitingOn = (node: Node, id: string) =>
    until(async () => {
      const task = await taskOn(node, id);
      return task.status === "waiting" ? task : undefined;
    }, `task ${id} to wait`);

  /** The stored log through GET /tasks/:id/events: parsed frames and their exact text. */
  async function storedLog(node: Node, id: string): Promise<{ frames: Frame[]; texts: string[] }> {
    const { status, body } = await request(node, "GET", `/tasks/${id}/events?after=0&limit=1000`);
    expect(status).toBe(200);
    const frames = body.events as Frame[];
    return { frames, texts: frames.map((frame) => JSON.stringify(frame)) };
  }

  /** A watcher's durable frames are exactly the stored log, once each, in order. */
  function expectSawAll(watcher: TestSocket, texts: string[]) {
    expect(watcher.seqs).toEqual(oneToN(texts.length));
    expect(watcher.durable).toEqual(texts);
  }

  test("a task parked by node A is approved through node B's REST API and completes; watchers on both nodes see every frame once", async () => {
    const url = await pg.createDatabase();
    const a = await startNode(url, "node-a", { agents: [DEMO_APPROVAL] });
    const id = await createTask(a, { input: "what is 6*7?" });
    const waiting = await waitingOn(a, id); // only node A was up: A ran it and parked it
    const callId = stepData((await storedLog(a, id)).frames.find((frame) => eventType(frame) === "approval_requested")!).id as string;

    const b = await startNode(url, "node-b", { agents: [DEMO_APPROVAL] });
    const onB = await watch(b, id);
    const onA = await watch(a, id);
    await onB.waitFor((frame) => frame.seq === waiting.last_seq, "node B's replay up to the wait");
    expect((await taskOn(b, id)).status).toBe("waiting");

    const decided = await request(b, "POST", `/tasks/${id}/approvals`, { call_id: callId, decision: "approve" });
    expect(decided.status).toBe(200);
    expect(decided.body).toMatchObject({ id });
    expect(decided.body.status).not.toBe("waiting");

    for (const watcher of [onB, onA]) expect((await watcher.result()).data).toMatchObject({ status: "completed", output: "6*7 = 42" });
    const { frames, texts } = await storedLog(b, id);
    expect(frames.map((frame) => frame.seq)).toEqual(oneToN(frames.length));
    expect(ofType(frames, "approval_requested")).toHaveLength(1);
    expect(ofType(frames, "approval_decided").map(stepData)).toEqual([expect.objectContaining({ id: callId, decision: "approved" })]);
    expect(ofType(frames, "result")).toHaveLength(1);
    const resumed = ofType(frames, "resumed").map(stepData);
    expect(resumed).toEqual([expect.objectContaining({ reason: "continued", after_seq: waiting.last_seq + 1 })]);
    expect(["node-a", "node-b"]).toContain(resumed[0]!.node);
    expect(ofType(frames, "tool_result").map(stepData)).toEqual([expect.objectContaining({ id: callId })]);
    expectSawAll(onB, texts);
    expectSawAll(onA, texts);
    expect(await taskOn(a, id)).toMatchObject({ status: "completed", output: "6*7 = 42", wait_until: null });
  });

  test("an approval and a rejection racing on both nodes: exactly one 200, the other 409; one decision in the log, and the task follows it", async () => {
    const url = await pg.createDatabase();
    const a = await startNode(url, "node-a", { agents: [DEMO_APPROVAL] });
    const b = await startNode(url, "node-b", { agents: [DEMO_APPROVAL] });
    for (let round = 0; round < 4; round++) {
      const id = await createTask(round % 2 === 0 ? a : b, { input: "what is 6*7?" });
      await waitingOn(a, id);
      const callId = stepData((await storedLog(a, id)).frames.find((frame) => eventType(frame) === "approval_requested")!).id as string;
      const watcher = await watch(round % 2 === 0 ? b : a, id);
      const [approve, reject] = await Promise.all([
        request(a, "POST", `/tasks/${id}/approvals`, { call_id: callId, decision: "approve" }),
        request(b, "POST", `/tasks/${id}/approvals`, { call_id: callId, decision: "reject", reason: "no" }),
      ]);
      expect([approve.status, reject.status].toSorted()).toEqual([200, 409]);
      const loser = approve.status === 409 ? approve : reject;
      expect(loser.body.error.code).toBe("conflict");
      const approved = approve.status === 200;

      const result = await watcher.result();
      const { frames, texts } = await storedLog(b, id);
      expect(ofType(frames, "approval_decided").map(stepData)).toEqual([
        expect.objectContaining({ id: callId, decision: approved ? "approved" : "rejected" }),
      ]);
      expect(frames.map((frame) => frame.seq)).toEqual(oneToN(frames.length));
      expect(ofType(frames, "result")).toHaveLength(1);
      if (approved) {
        expect(result.data).toMatchObject({ status: "completed", output: "6*7 = 42" });
      } else {
        expect(ofType(frames, "tool_error").map(stepData)).toEqual([expect.objectContaining({ id: callId, error: expect.objectContaining({ code: "rejected" }) })]);
        expect(ofType(frames, "tool_result")).toHaveLength(0);
      }
      expectSawAll(watcher, texts);
    }
  });

  test("a steering input sent to node B reaches the task running on node A at its next model step", async () => {
    const url = await pg.createDatabase();
    const setups = ["node-a", "node-b"].map(() => {
      const gate = createGateTool();
      const model = createScriptedModel([callTools([{ id: "w", name: "wait", arguments: "{}" }]), (request) => answer(`read: ${lastUser(request)}`)(request)]);
      return { gate, model };
    });
    const [first, second] = await Promise.all(
      ["node-a", "node-b"].map((id, index) =>
        startNode(url, id, { agents: [{ model: "test/m", tools: ["wait"] }], models: { m: setups[index]!.model }, tools: [setups[index]!.gate.tool] }),
      ),
    );
    const id = await createTask(first!, { input: "start" });
    // Whichever node claimed it is "A" here; the input goes to the other one.
    const runnerIndex = await within(
      Promise.race(setups.map((setup, index) => setup.gate.started.then(() => index))),
      15_000,
      "the task to start on a node",
    );
    const runner = [first!, second!][runnerIndex]!;
    const other = [first!, second!][1 - runnerIndex]!;
    const watcher = await watch(other, id);
    expect((await taskOn(other, id)).status).toBe("running");

    const sent = await request(other, "POST", `/tasks/${id}/input`, { text: "turn left" });
    expect(sent.status).toBe(202);
    expect(sent.body).toMatchObject({ task_id: id, input_id: expect.any(String) });
    // The running node heard of it (a signal from the other node), then the tool returns.
    await until(() => runner.heard.some((signal) => signal.kind === "input" && signal.taskId === id), "node A to hear of the input");
    setups[runnerIndex]!.gate.release();

    const result = await watcher.result();
    expect(result.data).toMatchObject({ status: "completed", output: "read: turn left" });
    const model = setups[runnerIndex]!.model;
    expect(model.requests).toHaveLength(2);
    expect(model.requests[1]!.messages.at(-1)).toEqual({ role: "user", content: "turn left" });
    expect(setups[1 - runnerIndex]!.model.requests).toHaveLength(0);
    const { frames, texts } = await storedLog(other, id);
    const types = frames.map(eventType);
    expect(ofType(frames, "user_input").map(stepData)).toEqual([{ id: sent.body.input_id, text: "turn left", by: expect.any(String) }]);
    expect(types.indexOf("user_input")).toBeGreaterThan(types.indexOf("tool_result"));
    expect(ofType(frames, "resumed")).toHaveLength(0); // it never stopped
    expectSawAll(watcher, texts);
  });

  test("a thread's second task (enqueued through the other node) is not claimed while the first runs; then it runs with the first one's history", async () => {
    const url = await pg.createDatabase();
    const gate = createGateTool();
    // One model for both nodes: it acts on the task's input (and the thread's history).
    const model = createScriptedModel(
      [
        (request) => {
          const last = request.messages.at(-1)!;
          if (last.role === "tool") return answer("first done")(request);
          if (last.content === "first") return callTools([{ id: "w", name: "wait", arguments: "{}" }])(request);
          return answer(`${last.content} done`)(request);
        },
      ],
      { repeatLast: true },
    );
    const options: NodeOptions = { agents: [{ model: "test/m", tools: ["wait"] }], models: { m: model }, tools: [gate.tool] };
    const a = await startNode(url, "node-a", options);
    const b = await startNode(url, "node-b", options);
    const thread = await request(a, "POST", "/threads");
    expect(thread.status).toBe(201);
    const firstId = await createTask(a, { input: "first" }, `/threads/${thread.body.id}/tasks`);
    await within(gate.started, 15_000, "the first task to run");
    const secondId = await createTask(b, { input: "second", thread_id: thread.body.id });
    // A later task outside the thread is claimed and completes: claims take the oldest claimable
    // task first, so the second task was passed over — not claimable while the first runs.
    const sentinel = await createTask(b, { input: "sentinel" });
    const sentinelWatcher = await watch(a, sentinel);
    expect((await sentinelWatcher.result()).data).toMatchObject({ status: "completed", output: "sentinel done" });
    expect(await taskOn(a, secondId)).toMatchObject({ status: "queued", started_at: null, last_seq: 0 });
    expect((await taskOn(b, firstId)).status).toBe("running");
    expect(model.requests.filter((request) => lastUser(request) === "second")).toHaveLength(0);

    const secondWatcher = await watch(a, secondId);
    gate.release();
    expect((await secondWatcher.result()).data).toMatchObject({ status: "completed", output: "second done" });
    const first = await taskOn(b, firstId);
    const second = await taskOn(b, secondId);
    expect(first).toMatchObject({ status: "completed", output: "first done" });
    expect(Date.parse(second.started_at)).toBeGreaterThanOrEqual(Date.parse(first.finished_at));
    // It ran with the thread's history: the first task's input and answer come before its own.
    const seen = model.requests.find((request) => lastUser(request) === "second")!;
    expect(seen.messages[0]).toEqual({ role: "user", content: "first" });
    expect(seen.messages.some((message) => message.role === "assistant" && message.content.includes("first done"))).toBe(true);
    expect(seen.messages.at(-1)).toEqual({ role: "user", content: "second" });
    const listed = await request(b, "GET", `/threads/${thread.body.id}`);
    expect(listed.body.tasks.map((task: { id: string }) => task.id)).toEqual([firstId, secondId]);
  });

  for (const onTimeout of ["reject", "fail"] as const) {
    test(`an approval nobody decides times out on the cluster poll (on_approval_timeout: ${onTimeout}), decided once by one of the nodes`, async () => {
      const url = await pg.createDatabase();
      const agents = [{ ...DEMO_APPROVAL, approval_timeout_ms: 1000, on_approval_timeout: onTimeout }];
      const a = await startNode(url, "node-a", { agents, pollMs: 100 });
      const b = await startNode(url, "node-b", { agents, pollMs: 100 });
      const id = await createTask(a, { input: "what is 6*7?" });
      const watchers = [await watch(a, id), await watch(b, id)];
      const waiting = await waitingOn(b, id);
      expect(Date.parse(waiting.wait_until)).toBeGreaterThan(Date.parse(waiting.created_at));
      const callId = stepData(await watchers[0]!.waitFor((frame) => eventType(frame) === "approval_requested", "the request")).id;

      for (const watcher of watchers) await watcher.result(15_000);
      const { frames, texts } = await storedLog(a, id);
      expect(frames.map((frame) => frame.seq)).toEqual(oneToN(frames.length));
      expect(ofType(frames, "result")).toHaveLength(1);
      const task = await taskOn(b, id);
      if (onTimeout === "reject") {
        expect(ofType(frames, "approval_decided").map(stepData)).toEqual([{ id: callId, name: "calculator", decision: "timed_out", by: "system" }]);
        expect(ofType(frames, "tool_error").map(stepData)).toEqual([expect.objectContaining({ id: callId, error: expect.objectContaining({ code: "approval_timeout" }) })]);
        expect(task).toMatchObject({ status: "completed", wait_until: null });
        expect(task.output).toStartWith("The calculator tool failed");
      } else {
        expect(ofType(frames, "approval_decided")).toHaveLength(0);
        expect(task).toMatchObject({ status: "failed", error: { code: "approval_timeout" }, wait_until: null });
      }
      expect(ofType(frames, "tool_result")).toHaveLength(0);
      for (const watcher of watchers) expectSawAll(watcher, texts);
      // Deciding now is too late.
      const late = await request(b, "POST", `/tasks/${id}/approvals`, { call_id: callId, decision: "approve" });
      expect(late.status).toBe(409);
    });
  }
});
