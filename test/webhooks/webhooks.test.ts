/**
 * Webhooks end to end, against a real receiver on loopback that verifies every request with the
 * `standardwebhooks` package (the scheme's own library): a task's end is POSTed, signed, retried
 * from the durable outbox with the same webhook-id after failures, delivered once; a receiver that
 * is down across a restart of agentkit gets it after the restart; per-task URLs are checked against
 * the allowlist; an agent's webhook tells of a task waiting for an approval; and in a PostgreSQL
 * cluster of two nodes, every webhook is delivered by one of them, not both. A receiver that hangs,
 * with hundreds of webhooks due before anyone else's, holds its share of the delivery slots and no
 * more: a healthy receiver gets its webhooks while the hanging one's first attempts are still open
 * (on SQLite and on PostgreSQL).
 *
 * No timing assertions: waits are bounded polls on what the receiver got or the store shows.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { Webhook } from "standardwebhooks";
import { AgentDefinition } from "../../src/agents/agent.ts";
import { loadConfig } from "../../src/config/config.ts";
import { silentLogger } from "../../src/lib/logger.ts";
import { startServer, type RunningServer } from "../../src/server/serve.ts";
import { createPostgresStore } from "../../src/store/postgres-store.ts";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import type { NewWebhook, TaskStore } from "../../src/store/store.ts";
import { backoffMs, retryAfterMs } from "../../src/webhooks/delivery.ts";
import { webhookId } from "../../src/webhooks/events.ts";
import { parseWebhookSecret, signWebhook } from "../../src/webhooks/signing.ts";
import { until } from "../helpers/deferred.ts";
import { describePostgres } from "../helpers/postgres.ts";
import { startTestServer, tempDir, type TestServer } from "../helpers/server.ts";
import { newTask, outcome } from "../store/conformance.ts";

const ADMIN = "admin-key-0123456789";
const BOB = "bob-key-0123456789ab";
const auth = (key = ADMIN) => ({ authorization: `Bearer ${key}` });

interface Received {
  id: string;
  timestamp: string;
  body: string;
  contentType: string | null;
  /** What `standardwebhooks` made of it: the parsed payload, or the verification error. */
  verified: { ok: true; payload: any } | { ok: false; error: string };
  /** The status the receiver answered. */
  status: number;
  /** `performance.now()` when it arrived. */
  at: number;
}

interface Receiver {
  url: string;
  port: number;
  requests: Received[];
  /** The payloads accepted (2xx), in order. */
  accepted(): Received[];
  stop(): void;
}

/**
 * A webhook receiver: verifies every request with `secret()` (read when the request comes), and
 * answers `respond(request, attemptOfThisId)`: default 200.
 */
function startReceiver(secret: () => string, respond: (attempt: number, id: string, url: URL) => Response | number = () => 200, port = 0): Receiver {
  const requests: Received[] = [];
  const server = Bun.serve({
    port,
    hostname: "127.0.0.1",
    async fetch(request) {
      const body = await request.text();
      const headers = Object.fromEntries(request.headers);
      let verified: Received["verified"];
      try {
        verified = { ok: true, payload: new Webhook(secret()).verify(body, headers) };
      } catch (error) {
        verified = { ok: false, error: String(error) };
      }
      const id = headers["webhook-id"] ?? "";
      const attempt = requests.filter((received) => received.id === id).length + 1;
      const answer = respond(attempt, id, new URL(request.url));
      const response = typeof answer === "number" ? new Response(null, { status: answer }) : answer;
      requests.push({ id, timestamp: headers["webhook-timestamp"] ?? "", body, contentType: headers["content-type"] ?? null, verified, status: response.status, at: performance.now() });
      return response;
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}/hook`,
    port: server.port!,
    requests,
    accepted: () => requests.filter((received) => received.status >= 200 && received.status < 300),
    stop: () => server.stop(true),
  };
}

/** A receiver that never answers: each request stays open (until agentkit's deadline, or the receiver stops). */
interface HangingReceiver {
  url: string;
  /** Requests it got; all of them still open while agentkit's deadline has not passed. */
  requests: number;
  stop(): void;
}

function startHangingReceiver(): HangingReceiver {
  const state = { requests: 0 };
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch() {
      state.requests++;
      return new Promise<Response>(() => {});
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    get requests() {
      return state.requests;
    },
    stop: () => server.stop(true),
  };
}

/** The hanging receiver's backlog: due before the healthy ones', each to a URL of its own on one origin. */
const HANGING_ROWS = 400;
const HEALTHY_ROWS = 20;

/**
 * Writes the outbox as ended tasks leave it: HANGING_ROWS webhooks to `hanging` (4 tasks' worth of
 * agent webhooks, all due a minute ago), then HEALTHY_ROWS to `healthy`, due after every one of them.
 */
async function seedOutbox(store: TaskStore, hanging: string, healthy: string): Promise<void> {
  const due = Date.now() - 60_000;
  const hooks = (count: number, url: (index: number) => string, from: number): NewWebhook[] =>
    Array.from({ length: count }, (_, index) => ({
      id: webhookId(),
      url: url(index),
      event: "task.finished",
      payload: JSON.stringify({ type: "task.finished", data: { index } }),
      createdAt: new Date(from + index),
    }));
  for (let task = 0; task < 4; task++) {
    const id = `hanging-${task}`;
    await store.createTask(newTask(id, { createdAt: new Date(due) }));
    const webhooks = hooks(HANGING_ROWS / 4, (index) => `${hanging}/hook/${task}/${index}`, due + task * 1000);
    expect(await store.finishTask(id, outcome("cancelled"), 1, "{}", undefined, webhooks)).toBe(true);
  }
  await store.createTask(newTask("healthy", { createdAt: new Date(due) }));
  expect(await store.finishTask("healthy", outcome("cancelled"), 1, "{}", undefined, hooks(HEALTHY_ROWS, (index) => `${healthy}?n=${index}`, due + 30_000))).toBe(true);
}

const servers: TestServer[] = [];
const receivers: Receiver[] = [];
afterEach(async () => {
  for (const receiver of receivers.splice(0)) receiver.stop();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function start(options: Parameters<typeof startTestServer>[0]): Promise<TestServer> {
  const server = await startTestServer(options);
  servers.push(server);
  return server;
}

async function json(server: TestServer, path: string, init: RequestInit & { json?: unknown } = {}, key = ADMIN): Promise<{ status: number; body: any }> {
  const response = await server.http(path, { ...init, headers: { ...auth(key), ...(init.headers as Record<string, string>) } });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

async function secretOf(server: TestServer): Promise<string> {
  const { status, body } = await json(server, "/webhooks/secret");
  expect(status).toBe(200);
  return body.secret;
}

describe("webhooks", () => {
  test("a task's end is POSTed to its webhook_url, signed on every attempt, retried with the same webhook-id after failures (Retry-After honoured), and delivered once", async () => {
    let secret = "";
    // Fails the first two attempts: a 500, then a 503 asking for a second's pause.
    const receiver = startReceiver(
      () => secret,
      (attempt) => (attempt === 1 ? 500 : attempt === 2 ? new Response("busy", { status: 503, headers: { "Retry-After": "1" } }) : 204),
    );
    receivers.push(receiver);
    const server = await start({ config: { apiKey: ADMIN, apiKeys: `bob:${BOB}`, webhookAllowHosts: "127.0.0.1", webhookRetryMs: 20 } });
    secret = await secretOf(server);
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
    expect(parseWebhookSecret(secret)!.length).toBe(32);

    const created = await json(server, "/tasks", { method: "POST", json: { input: "What is 2*21?", webhook_url: receiver.url } }, BOB);
    expect(created.status).toBe(201);
    // The URL is the task's secret business: it is not shown on the task.
    expect(created.body).not.toHaveProperty("webhook_url");
    const id = created.body.id as string;
    await until(() => receiver.accepted().length > 0, "the webhook to be accepted", 15_000);

    expect(receiver.requests.map((received) => received.status)).toEqual([500, 503, 204]);
    // Every attempt verifies, has the same id, and carries the same body.
    expect(receiver.requests.map((received) => received.verified.ok)).toEqual([true, true, true]);
    expect(new Set(receiver.requests.map((received) => received.id)).size).toBe(1);
    expect(receiver.requests[0]!.id).toMatch(/^msg_[0-9a-f]{32}$/);
    expect(new Set(receiver.requests.map((received) => received.body)).size).toBe(1);
    expect(receiver.requests[0]!.contentType).toBe("application/json");
    // Retry-After: 1 — the third attempt came no sooner than a second after the second.
    expect(receiver.requests[2]!.at - receiver.requests[1]!.at).toBeGreaterThanOrEqual(1000);

    const payload = (receiver.accepted()[0]!.verified as { payload: any }).payload;
    const task = (await json(server, `/tasks/${id}`, {}, BOB)).body;
    expect(task).toMatchObject({ status: "completed", output: "2*21 = 42" });
    expect(payload).toEqual({ type: "task.finished", timestamp: expect.any(String), data: { task } });

    // The signature is the scheme's: tampering with anything fails verification.
    const verifier = new Webhook(secret);
    const { id: webhookId, timestamp, body } = receiver.requests[2]!;
    const headers = { "webhook-id": webhookId, "webhook-timestamp": timestamp, "webhook-signature": signWebhook(parseWebhookSecret(secret)!, webhookId, Number(timestamp), body) };
    expect(verifier.verify(body, headers)).toEqual(payload);
    expect(() => verifier.verify(body.replace("42", "43"), headers)).toThrow();
    expect(() => verifier.verify(body, { ...headers, "webhook-id": "msg_other" })).toThrow();

    // Delivery status, on the task: delivered (no more attempts: nothing pending is left).
    const status = await json(server, `/tasks/${id}/webhooks`, {}, BOB);
    expect(status).toEqual({
      status: 200,
      body: [
        {
          id: webhookId,
          event: "task.finished",
          source: "task",
          url: receiver.url,
          status: "delivered",
          attempts: 3,
          last_error: "HTTP 503",
          next_attempt_at: null,
          created_at: expect.any(String),
          delivered_at: expect.any(String),
        },
      ],
    });
    // Only its owner (or the admin) sees it: another tenant gets a 404, no key a 401.
    expect((await json(server, `/tasks/${id}/webhooks`)).status).toBe(200);
    expect((await json(server, `/tasks/${id}/webhooks`, {}, "nobody-key-0123456789")).status).toBe(401);
    // The secret is the admin's to hand out.
    expect((await json(server, "/webhooks/secret", {}, BOB)).status).toBe(403);
  });

  test("a webhook that keeps failing is given up after its attempts (failed, with the last error); a 410 Gone at once", async () => {
    let secret = "";
    // `?gone`: a 500 first, then 410 Gone (of 3 attempts: the 410 must end it at the 2nd, not run to the 3rd).
    const receiver = startReceiver(() => secret, (attempt, _id, url) => (url.searchParams.has("gone") && attempt >= 2 ? 410 : 500));
    receivers.push(receiver);
    const server = await start({ config: { webhookAllowHosts: "127.0.0.1", webhookRetryMs: 10, webhookMaxAttempts: 3 } });
    secret = await secretOf(server);
    const failing = (await json(server, "/tasks", { method: "POST", json: { input: "What is 1+1?", webhook_url: receiver.url } })).body.id;
    const webhooksOf = async (task: string) => (await json(server, `/tasks/${task}/webhooks`)).body as any[];
    await until(async () => (await webhooksOf(failing))[0]?.status === "failed", "the webhook to be given up", 15_000);
    expect(await webhooksOf(failing)).toMatchObject([{ status: "failed", attempts: 3, last_error: "HTTP 500", next_attempt_at: null, delivered_at: null }]);
    expect(receiver.requests.length).toBe(3);

    receiver.requests.length = 0;
    const goneTask = (await json(server, "/tasks", { method: "POST", json: { input: "What is 2+2?", webhook_url: `${receiver.url}?gone` } })).body.id;
    await until(async () => (await webhooksOf(goneTask))[0]?.status === "failed", "the 410 to end it", 15_000);
    // Given up at the attempt answered 410, with an attempt still left under webhookMaxAttempts.
    expect((await webhooksOf(goneTask))[0]).toMatchObject({ status: "failed", attempts: 2, last_error: "HTTP 410", next_attempt_at: null });
    expect(receiver.requests.map((request) => request.status)).toEqual([500, 410]);
  });

  test("webhook_url: refused (400 naming it, no task) off the allowlist, with credentials, not http(s), and on a server with no allowlist", async () => {
    const open = await start({ config: { apiKey: ADMIN } });
    const refused = await json(open, "/tasks", { method: "POST", json: { input: "hi", webhook_url: "http://127.0.0.1:9/hook" } });
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe("validation_failed");
    expect(refused.body.error.message).toContain("AGENTKIT_WEBHOOK_ALLOW_HOSTS");
    expect(refused.body.error.details).toEqual([{ path: "webhook_url", message: expect.any(String) }]);
    expect((await json(open, "/tasks")).body.tasks).toEqual([]);

    const server = await start({ config: { apiKey: ADMIN, webhookAllowHosts: "hooks.example.com,*.apps.example.com:8443" } });
    for (const url of [
      "http://evil.example.net/hook",
      "http://example.com/hook",
      "https://sub.hooks.example.com/",
      "https://a.apps.example.com/", // the port must be 8443
      "http://user:pass@hooks.example.com/",
      "ftp://hooks.example.com/",
      "not a url",
    ]) {
      const answer = await json(server, "/tasks", { method: "POST", json: { input: "hi", webhook_url: url } });
      expect({ url, status: answer.status, path: answer.body.error?.details?.[0]?.path }).toEqual({ url, status: 400, path: "webhook_url" });
    }
    // Thread tasks take it too, under the same rule.
    const thread = (await json(server, "/threads", { method: "POST" })).body.id;
    expect((await json(server, `/threads/${thread}/tasks`, { method: "POST", json: { input: "hi", webhook_url: "http://evil.example.net/" } })).status).toBe(400);
    expect((await json(server, "/tasks")).body.tasks).toEqual([]);
    for (const url of ["https://hooks.example.com/in?x=1", "https://a.b.apps.example.com:8443/"]) {
      expect((await json(server, "/tasks", { method: "POST", json: { input: "What is 1+1?", webhook_url: url } })).status).toBe(201);
    }
  });

  test("an agent's webhook: task.waiting when an approval waits (with the call to decide), then task.finished; a tenant sees the URL's origin only", async () => {
    let secret = "";
    const receiver = startReceiver(() => secret);
    receivers.push(receiver);
    const agentUrl = `${receiver.url}/agent-secret-path`;
    const server = await start({
      config: { apiKey: ADMIN, apiKeys: `bob:${BOB}`, webhookRetryMs: 20 },
      agents: [{ model: "demo", tools: ["calculator"], approval: ["calculator"], webhook: { url: agentUrl, events: ["task.waiting", "task.finished"] } }],
    });
    secret = await secretOf(server);
    const id = (await json(server, "/tasks", { method: "POST", json: { input: "What is 2*21?" } }, BOB)).body.id as string;
    await until(() => receiver.accepted().length >= 1, "the task.waiting webhook", 15_000);
    const waiting = (receiver.accepted()[0]!.verified as { payload: any }).payload;
    const task = (await json(server, `/tasks/${id}`, {}, BOB)).body;
    expect(task.status).toBe("waiting");
    expect(waiting).toEqual({
      type: "task.waiting",
      timestamp: expect.any(String),
      data: { task, pending: [{ type: "approval", call_id: expect.any(String), tool: "calculator", arguments: expect.anything(), expires_at: expect.any(String) }] },
    });
    // Decide with what the webhook said.
    const decided = await json(server, `/tasks/${id}/approvals`, { method: "POST", json: { call_id: waiting.data.pending[0].call_id, decision: "approve" } }, BOB);
    expect(decided.status).toBe(200);
    await until(() => receiver.accepted().length >= 2, "the task.finished webhook", 15_000);
    const finished = (receiver.accepted()[1]!.verified as { payload: any }).payload;
    expect(finished.type).toBe("task.finished");
    expect(finished.data.task).toMatchObject({ id, status: "completed", output: "2*21 = 42" });
    expect(finished.data.task).toEqual((await json(server, `/tasks/${id}`, {}, BOB)).body);
    expect(receiver.requests.every((received) => received.verified.ok)).toBe(true);
    expect(new Set(receiver.requests.map((received) => received.id)).size).toBe(2);

    const asBob = (await json(server, `/tasks/${id}/webhooks`, {}, BOB)).body as any[];
    expect(asBob.map((webhook) => [webhook.event, webhook.source, webhook.url, webhook.status])).toEqual([
      ["task.waiting", "agent", `http://127.0.0.1:${receiver.port}`, "delivered"],
      ["task.finished", "agent", `http://127.0.0.1:${receiver.port}`, "delivered"],
    ]);
    const asAdmin = (await json(server, `/tasks/${id}/webhooks`)).body as any[];
    expect(asAdmin.map((webhook) => webhook.url)).toEqual([agentUrl, agentUrl]);

    // The operator changes the agent's URL (a token in it rotated) and restarts: the old rows are
    // still the agent's — the tenant still sees the origin only (it saw the whole old URL before).
    const dataDir = server.dataDir;
    await server.close({ keepData: true });
    servers.splice(servers.indexOf(server), 1);
    const again = await start({
      dataDir,
      config: { apiKey: ADMIN, apiKeys: `bob:${BOB}`, webhookRetryMs: 20 },
      agents: [{ model: "demo", tools: ["calculator"], approval: ["calculator"], webhook: { url: `${receiver.url}/rotated`, events: ["task.finished"] } }],
    });
    const afterRotation = (await json(again, `/tasks/${id}/webhooks`, {}, BOB)).body as any[];
    expect(afterRotation.map((webhook) => [webhook.source, webhook.url])).toEqual([
      ["agent", `http://127.0.0.1:${receiver.port}`],
      ["agent", `http://127.0.0.1:${receiver.port}`],
    ]);
  });

  test("the receiver is down across a restart of agentkit: the webhook waits in the outbox and is delivered after the restart, once, same id and secret", async () => {
    const dataDir = tempDir();
    // A port nobody listens on (yet).
    const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
    const port = probe.port!;
    probe.stop(true);
    const url = `http://127.0.0.1:${port}/hook`;
    const config = { webhookAllowHosts: `127.0.0.1:${port}`, webhookRetryMs: 50 };
    try {
      const first = await startTestServer({ dataDir, config });
      let secret: string;
      let id: string;
      try {
        secret = await secretOf(first);
        id = (await json(first, "/tasks", { method: "POST", json: { input: "What is 2*21?", webhook_url: url } })).body.id as string;
        await until(async () => ((await json(first, `/tasks/${id}/webhooks`)).body[0]?.attempts ?? 0) >= 2, "failed attempts (connection refused)", 15_000);
      } finally {
        await first.close({ keepData: true });
      }
      // What the outbox holds while agentkit is down.
      const offline = createSqliteStore({ dataDir });
      const [pending] = await offline.taskWebhooks(id);
      offline.close();
      expect(pending).toMatchObject({ status: "pending", url, event: "task.finished" });
      expect(pending!.lastError).toBeTruthy(); // the connection was refused
      const webhookId = pending!.id;
      const attemptsBefore = pending!.attempts;

      // The receiver comes up while agentkit is down; agentkit starts again on the same data.
      const receiver = startReceiver(() => secret, () => 200, port);
      receivers.push(receiver);
      const second = await startTestServer({ dataDir, config });
      servers.push(second);
      expect(await secretOf(second)).toBe(secret);
      await until(() => receiver.accepted().length > 0, "the delivery after the restart", 15_000);
      expect(receiver.requests.map((received) => [received.id, received.verified.ok])).toEqual([[webhookId, true]]);
      const task = (await json(second, "/tasks")).body.tasks[0];
      expect((receiver.accepted()[0]!.verified as { payload: any }).payload.data.task).toEqual(task);
      const [row] = (await json(second, `/tasks/${task.id}/webhooks`)).body;
      expect(row).toMatchObject({ id: webhookId, status: "delivered", attempts: attemptsBefore + 1 });
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test("a task accepted with its webhook_url gets its webhook though the server restarted without an allowlist before it ended", async () => {
    const receiver = startReceiver(() => "", () => 200);
    receivers.push(receiver);
    const dataDir = tempDir();
    try {
      const agents = [{ name: "slow", model: "demo/slow" }];
      const first = await startTestServer({ dataDir, agents, config: { webhookAllowHosts: `127.0.0.1:${receiver.port}` } });
      const id = (await json(first, "/tasks", { method: "POST", json: { input: "Tell me a long story", agent: "slow", webhook_url: `${receiver.url}/mine` } })).body.id as string;
      await until(async () => (await json(first, `/tasks/${id}`)).body.status === "running", "the task to run");
      await first.close({ keepData: true }); // handed over: it resumes at the next start
      const second = await start({ dataDir, agents });
      await until(async () => (await json(second, `/tasks/${id}`)).body.status === "completed", "the task to end", 20_000);
      // The receiver sees the request before agentkit has its answer and records it: wait for the record.
      let rows: unknown;
      await until(async () => {
        rows = (await json(second, `/tasks/${id}/webhooks`)).body;
        return (rows as { status: string }[])[0]?.status !== "pending";
      }, "its webhook", 15_000);
      expect(rows).toMatchObject([{ source: "task", status: "delivered", url: `${receiver.url}/mine` }]);
      expect(receiver.requests).toHaveLength(1);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  test("backoff: ×3 from the first delay, ±20 % jitter, capped; Retry-After in seconds or as a date", () => {
    expect([1, 2, 3, 4].map((attempts) => backoffMs(attempts, 5000, 3_600_000, () => 0.5))).toEqual([5000, 15_000, 45_000, 135_000]);
    expect(backoffMs(20, 5000, 3_600_000, () => 0.5)).toBe(3_600_000);
    expect(backoffMs(1, 5000, 3_600_000, () => 0)).toBe(4000);
    expect(backoffMs(1, 5000, 3_600_000, () => 1)).toBe(6000);
    const now = new Date("2026-01-01T00:00:00Z");
    expect(retryAfterMs("120", now)).toBe(120_000);
    expect(retryAfterMs("Thu, 01 Jan 2026 00:00:30 GMT", now)).toBe(30_000);
    expect(retryAfterMs(null, now)).toBeUndefined();
    expect(retryAfterMs("soon", now)).toBeUndefined();
  });

  test("config: AGENTKIT_WEBHOOK_SECRET must be a whsec_ secret; allow hosts from the environment are checked as http_fetch's", () => {
    const load = (env: Record<string, string>) => loadConfig({ env, readFile: false });
    expect(() => load({ AGENTKIT_WEBHOOK_SECRET: "not-a-secret" })).toThrow("AGENTKIT_WEBHOOK_SECRET: must be whsec_");
    expect(() => load({ AGENTKIT_WEBHOOK_SECRET: "whsec_c2hvcnQ=" })).toThrow("AGENTKIT_WEBHOOK_SECRET");
    const secret = `whsec_${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}`;
    expect(load({ AGENTKIT_WEBHOOK_SECRET: secret }).webhookSecret).toBe(secret);
    expect(load({ AGENTKIT_WEBHOOK_ALLOW_HOSTS: "a.example.com, *.b.example.com:8443" }).webhookAllowHosts).toEqual(["a.example.com", "*.b.example.com:8443"]);
    expect(() => load({ AGENTKIT_WEBHOOK_ALLOW_HOSTS: "*.com" })).toThrow("AGENTKIT_WEBHOOK_ALLOW_HOSTS");
    expect(load({}).webhookAllowHosts).toEqual([]);
    expect(() => AgentDefinition.parse({ name: "a", webhook: { url: "ftp://x.example.com/" } })).toThrow();
    expect(() => AgentDefinition.parse({ name: "a", webhook: { url: "https://x.example.com/", events: ["task.started"] } })).toThrow();
    expect(() => AgentDefinition.parse({ name: "a", webhook: { url: "https://x.example.com/", extra: 1 } })).toThrow();
    expect(AgentDefinition.parse({ name: "a", webhook: { url: "https://x.example.com/" } }).webhook).toEqual({ url: "https://x.example.com/", events: ["task.finished"] });
  });

  test("a receiver that hangs, with 400 webhooks due before anyone else's, holds its 4 slots and no more: a healthy receiver gets all of its webhooks meanwhile", async () => {
    const hanging = startHangingReceiver();
    const healthy = startReceiver(() => "");
    receivers.push(healthy);
    const dataDir = tempDir();
    try {
      const seeding = createSqliteStore({ dataDir });
      await seedOutbox(seeding, hanging.url, healthy.url);
      seeding.close();
      // An attempt's deadline far past the test: the hanging receiver's first attempts stay open throughout.
      await start({ dataDir, config: { webhookTimeoutMs: 120_000, webhookRetryMs: 20 } });
      await until(() => healthy.accepted().length >= HEALTHY_ROWS, "the healthy receiver's webhooks, while the hanging one's are open", 15_000);
      expect(new Set(healthy.accepted().map((received) => received.id)).size).toBe(HEALTHY_ROWS);
      // Its share (AGENTKIT_WEBHOOK_PER_DESTINATION, 4), all still open: none of its attempts has ended.
      expect(hanging.requests).toBe(4);
    } finally {
      hanging.stop();
      await Promise.all(servers.splice(0).map((server) => server.close()));
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 40_000);

  test("config: AGENTKIT_WEBHOOK_PER_DESTINATION is 4 unless set, 1 to 16", () => {
    const load = (env: Record<string, string>) => loadConfig({ env, readFile: false });
    expect(load({}).webhookPerDestination).toBe(4);
    expect(load({ AGENTKIT_WEBHOOK_PER_DESTINATION: "2" }).webhookPerDestination).toBe(2);
    expect(load({ AGENTKIT_WEBHOOK_PER_DESTINATION: "16" }).webhookPerDestination).toBe(16);
    for (const value of ["0", "17", "1.5", "many"]) expect(() => load({ AGENTKIT_WEBHOOK_PER_DESTINATION: value })).toThrow("AGENTKIT_WEBHOOK_PER_DESTINATION");
  });

  test("a configured AGENTKIT_WEBHOOK_SECRET signs the webhooks (and is what GET /webhooks/secret shows)", async () => {
    const secret = `whsec_${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}`;
    const receiver = startReceiver(() => secret);
    receivers.push(receiver);
    const server = await start({ config: { webhookSecret: secret, webhookAllowHosts: "127.0.0.1" } });
    expect(await secretOf(server)).toBe(secret);
    await json(server, "/tasks", { method: "POST", json: { input: "What is 3*3?", webhook_url: receiver.url } });
    await until(() => receiver.accepted().length > 0, "the webhook", 15_000);
    expect(receiver.requests.map((received) => received.verified.ok)).toEqual([true]);
  });
});

describePostgres("webhooks in a cluster", (pg) => {
  const nodes: RunningServer[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((node) => node.stop()));
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  async function startNode(url: string, id: string, flags: Record<string, unknown> = {}): Promise<{ base: string }> {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const store = await createPostgresStore({ url, max: 6 });
    const config = loadConfig({
      env: {},
      readFile: false,
      flags: {
        port: 0, host: "127.0.0.1", dataDir, logLevel: "silent", nodeId: id, pollMs: 200, leaseMs: 3000,
        webhookAllowHosts: "127.0.0.1", webhookRetryMs: 20,
        agents: [AgentDefinition.parse({ name: "default", model: "demo" })],
        ...flags,
      },
    });
    try {
      nodes.push(await startServer({ config, logger: silentLogger, env: {}, store, cluster: store }));
    } catch (error) {
      await store.close();
      throw error;
    }
    return { base: `http://127.0.0.1:${nodes.at(-1)!.port}` };
  }

  test("two nodes share the outbox: every webhook is delivered once, not twice (each fails once first: the retry is claimed once too)", async () => {
    const url = await pg.createDatabase();
    const [a, b] = [await startNode(url, "node-a"), await startNode(url, "node-b")];
    const secrets = await Promise.all([a, b].map(async (node) => ((await (await fetch(`${node.base}/webhooks/secret`)).json()) as { secret: string }).secret));
    expect(secrets[0]).toBe(secrets[1]);
    const receiver = startReceiver(() => secrets[0]!, (attempt) => (attempt === 1 ? 500 : 200));
    receivers.push(receiver);
    const count = 24;
    const ids = await Promise.all(
      Array.from({ length: count }, async (_, index) => {
        const node = index % 2 === 0 ? a : b;
        const response = await fetch(`${node.base}/tasks`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ input: `What is ${index}+1?`, webhook_url: receiver.url }),
        });
        expect(response.status).toBe(201);
        return ((await response.json()) as { id: string }).id;
      }),
    );
    await until(() => receiver.accepted().length >= count, "every webhook to be accepted", 30_000);
    // Every task's webhook: one failed attempt, one accepted, nothing more — across both nodes.
    const byId = Map.groupBy(receiver.requests, (received) => received.id);
    expect(byId.size).toBe(count);
    for (const requests of byId.values()) expect(requests.map((received) => received.status)).toEqual([500, 200]);
    expect(receiver.requests.every((received) => received.verified.ok)).toBe(true);
    const tasks = new Set(receiver.accepted().map((received) => (received.verified as { payload: any }).payload.data.task.id));
    expect([...tasks].sort()).toEqual([...ids].sort());
    for (const id of ids) {
      const rows = (await (await fetch(`${a.base}/tasks/${id}/webhooks`)).json()) as any[];
      expect(rows).toMatchObject([{ status: "delivered", attempts: 2 }]);
    }
  });

  test("a receiver that hangs, with 400 webhooks due before anyone else's, holds 4 slots of each node and no more: a healthy receiver gets all of its webhooks meanwhile", async () => {
    const url = await pg.createDatabase();
    const hanging = startHangingReceiver();
    const healthy = startReceiver(() => "");
    receivers.push(healthy);
    try {
      // The outbox, written before any node starts.
      const seeding = await createPostgresStore({ url, max: 2 });
      try {
        await seedOutbox(seeding, hanging.url, healthy.url);
      } finally {
        await seeding.close();
      }
      await startNode(url, "node-a", { webhookTimeoutMs: 120_000 });
      await startNode(url, "node-b", { webhookTimeoutMs: 120_000 });
      await until(() => healthy.accepted().length >= HEALTHY_ROWS, "the healthy receiver's webhooks, while the hanging one's are open", 20_000);
      // Each delivered once, by one node.
      expect(new Set(healthy.accepted().map((received) => received.id)).size).toBe(HEALTHY_ROWS);
      expect(healthy.accepted()).toHaveLength(HEALTHY_ROWS);
      // Each node's share (4), all still open. A node's count is its own: two nodes, 8 at most.
      expect(hanging.requests).toBeLessThanOrEqual(8);
      expect(hanging.requests).toBeGreaterThanOrEqual(4);
    } finally {
      hanging.stop();
    }
  }, 60_000);
});
