/**
 * A2A in a cluster (real PostgreSQL): the A2A client talks to an `api` node, which runs nothing, so
 * every task runs on the other node — the stream follows it from the log (`follow`), a wait for a
 * person is seen across nodes (input-required), and a cancel reaches the run on the other node.
 */
import { afterEach, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { Role, TaskState, type Message, type SendMessageRequest, type StreamResponse, type Task as A2ATask } from "@a2a-js/sdk";
import { ClientFactory, type Client } from "@a2a-js/sdk/client";
import { AgentDefinition } from "../../src/agents/agent.ts";
import { loadConfig } from "../../src/config/config.ts";
import { silentLogger } from "../../src/lib/logger.ts";
import { startServer, type RunningServer } from "../../src/server/serve.ts";
import { createPostgresStore } from "../../src/store/postgres-store.ts";
import { describePostgres } from "../helpers/postgres.ts";
import { tempDir } from "../helpers/server.ts";

const AGENTS = [
  { name: "default", model: "demo/slow" },
  { name: "ops", model: "demo/react", tools: ["calculator"], approval: ["calculator"] },
];

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

function request(message: Message, returnImmediately = false): SendMessageRequest {
  return { tenant: "", message, configuration: { acceptedOutputModes: [], taskPushNotificationConfig: undefined, returnImmediately }, metadata: undefined };
}

describePostgres("A2A across cluster nodes", (pg) => {
  const servers: RunningServer[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.stop()));
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  async function startNode(url: string, id: string, role: "all" | "api"): Promise<string> {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const store = await createPostgresStore({ url, max: 8 });
    const agents = AGENTS.map((agent) => AgentDefinition.parse(agent));
    const config = loadConfig({ env: {}, readFile: false, flags: { port: 0, host: "127.0.0.1", dataDir, logLevel: "silent", nodeId: id, role, databaseUrl: url, pollMs: 200, leaseMs: 3000, agents } });
    const server = await startServer({ config, logger: silentLogger, env: {}, store, cluster: store });
    servers.push(server);
    return `http://127.0.0.1:${server.port}`;
  }

  async function twoNodes(): Promise<{ worker: string; api: string }> {
    const url = await pg.createDatabase();
    const worker = await startNode(url, "worker-1", "all");
    const api = await startNode(url, "api-1", "api");
    return { worker, api };
  }

  const clientFor = (base: string, agent: string): Promise<Client> => new ClientFactory().createFromUrl(`${base}/a2a/${agent}/`);
  const seqOf = (event: StreamResponse) => (event.payload?.$case === "statusUpdate" ? (event.payload.value.metadata?.agentkit?.seq as number | undefined) : undefined);

  async function statusOn(base: string, id: string): Promise<string> {
    return ((await (await fetch(`${base}/tasks/${id}`)).json()) as { status: string }).status;
  }

  test("a stream on the api node follows a demo/slow task run by the worker: every event once, in order, then completed", async () => {
    const { api } = await twoNodes();
    const client = await clientFor(api, "default");
    const events: StreamResponse[] = [];
    for await (const event of client.sendMessageStream(request(userMessage("What is 2*21?")))) events.push(event);
    const task = events[0]!.payload!.value as A2ATask;
    const final = events.at(-1)!;
    expect(final.payload?.$case === "statusUpdate" && final.payload.value.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    const artifact = events.find((event) => event.payload?.$case === "artifactUpdate");
    expect(artifact?.payload?.$case === "artifactUpdate" && artifact.payload.value.artifact?.parts[0]?.content).toEqual({ $case: "text", value: "2*21 = 42" });
    const log = ((await (await fetch(`${api}/tasks/${task.id}/events`)).json()) as { events: { seq: number }[] }).events;
    expect(events.map(seqOf).filter((seq) => seq !== undefined)).toEqual(log.map((frame) => frame.seq));
  });

  test("input-required across nodes: the api node's blocking send sees the worker park the task; 'approve' there continues it", async () => {
    const { api } = await twoNodes();
    const client = await clientFor(api, "ops");
    const asked = (await client.sendMessage(request(userMessage("What is 6*7?")))) as A2ATask;
    expect(asked.status?.state).toBe(TaskState.TASK_STATE_INPUT_REQUIRED);
    const done = (await client.sendMessage(request(userMessage("approve", { taskId: asked.id })))) as A2ATask;
    expect(done.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(done.artifacts[0]!.parts[0]!.content).toEqual({ $case: "text", value: "6*7 = 42" });
  });

  test("a cancel on the api node aborts the run on the worker: canceled on both nodes, and it stays so", async () => {
    const { worker, api } = await twoNodes();
    const client = await clientFor(api, "default");
    const task = (await client.sendMessage(request(userMessage("Tell me a long story about the sea"), true))) as A2ATask;
    for (let tries = 0; (await statusOn(worker, task.id)) !== "running"; tries++) {
      if (tries > 400) throw new Error("the task never ran");
      await Bun.sleep(25);
    }
    const canceled = await client.cancelTask({ tenant: "", id: task.id, metadata: undefined });
    expect(canceled.status?.state).toBe(TaskState.TASK_STATE_CANCELED);
    await Bun.sleep(1000);
    expect(await statusOn(worker, task.id)).toBe("cancelled");
    expect((await client.getTask({ tenant: "", id: task.id })).status?.state).toBe(TaskState.TASK_STATE_CANCELED);
  });
});
