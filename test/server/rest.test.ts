/** The REST API: validation, errors, auth, pagination, cancel. */
import { afterEach, describe, expect, test } from "bun:test";
import type { ChatModel } from "../../src/llm/model.ts";
import { callTools, createScriptedModel } from "../helpers/scripted-model.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

type ErrorBody = { error: { code: string; message: string; details?: { path: string; message: string }[] } };

async function expectError(response: Response, status: number, code: string): Promise<ErrorBody> {
  expect(response.status).toBe(status);
  expect(response.headers.get("content-type")).toContain("application/json");
  const body = (await response.json()) as ErrorBody;
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe("string");
  return body;
}

describe("tasks", () => {
  test("POST /tasks creates a queued task that runs to completion", async () => {
    server = await startTestServer();
    const response = await server.http("/tasks", { method: "POST", json: { input: "What is 2 + 2?", metadata: { user: "ada" } } });
    expect(response.status).toBe(201);
    const task = (await response.json()) as Record<string, unknown>;
    expect(response.headers.get("location")).toBe(`/tasks/${task.id}`);
    expect(task).toMatchObject({ agent: "default", input: "What is 2 + 2?", metadata: { user: "ada" }, status: "queued", last_seq: 0 });
    expect(String(task.id)).toMatch(/^[0-9a-f-]{36}$/);
    expect(Date.parse(String(task.created_at))).not.toBeNaN();

    const socket = await server.watch(String(task.id));
    await socket.result();
    const done = (await (await server.http(`/tasks/${task.id}`)).json()) as Record<string, unknown>;
    expect(done).toMatchObject({ status: "completed", stop_reason: "final_answer", output: "2 + 2 = 4", total_steps: 2, last_seq: 6, cost_usd: null });
    expect(done.total_tokens).toBeGreaterThan(0);
    expect(done.total_tokens).toBe((done.input_tokens as number) + (done.output_tokens as number));

    const events = (await (await server.http(`/tasks/${task.id}/events?after=4`)).json()) as { events: { seq: number; type: string }[] };
    expect(events.events.map((event) => [event.seq, event.type])).toEqual([
      [5, "step"],
      [6, "result"],
    ]);
  });

  test("validation errors are 400 with the issues, never 500", async () => {
    server = await startTestServer();
    const cases: [RequestInit & { json?: unknown }, string][] = [
      [{ method: "POST", json: {} }, "input"],
      [{ method: "POST", json: { input: "" } }, "input"],
      [{ method: "POST", json: { input: 42 } }, "input"],
      [{ method: "POST", json: { input: "x", metadata: "nope" } }, "metadata"],
      [{ method: "POST", json: { input: "x", surprise: true } }, ""],
      [{ method: "POST", json: [1, 2] }, ""],
    ];
    for (const [init, path] of cases) {
      const body = await expectError(await server.http("/tasks", init), 400, "validation_failed");
      expect(body.error.details?.some((issue) => issue.path === path)).toBe(true);
    }
    await expectError(
      await server.http("/tasks", { method: "POST", body: "{not json", headers: { "content-type": "application/json" } }),
      400,
      "bad_request",
    );
    for (const query of ["status=bogus", "limit=0", "limit=101", "limit=abc", "cursor=%00%01"]) {
      const response = await server.http(`/tasks?${query}`);
      expect(response.status).toBe(400);
    }
    await expectError(await server.http("/tasks/x/events?after=-3"), 400, "validation_failed");
  });

  test("an unknown agent is a 400 naming the known ones", async () => {
    server = await startTestServer({ agents: [{}, { name: "researcher" }] });
    const body = await expectError(await server.http("/tasks", { method: "POST", json: { input: "x", agent: "nobody" } }), 400, "validation_failed");
    expect(body.error.message).toContain("default");
    expect(body.error.message).toContain("researcher");
    const agents = (await (await server.http("/agents")).json()) as { agents: { name: string; default: boolean; tools: string[] }[] };
    expect(agents.agents.map((agent) => [agent.name, agent.default])).toEqual([
      ["default", true],
      ["researcher", false],
    ]);
    const created = await server.createTask({ input: "hi", agent: "researcher" });
    expect(created).toMatchObject({ agent: "researcher" });
  });

  test("unknown ids and routes are 404; an oversized body is 413", async () => {
    server = await startTestServer({ config: { maxBodyBytes: 2048 } });
    for (const path of ["/tasks/nope", "/tasks/nope/events", "/tasks/..%2F..%2Fetc", "/tasks/'%20OR%201=1--", "/nowhere"]) {
      await expectError(await server.http(path), 404, "not_found");
    }
    await expectError(await server.http("/tasks/nope/cancel", { method: "POST" }), 404, "not_found");
    await expectError(await server.http("/tasks", { method: "POST", json: { input: "x".repeat(5000) } }), 413, "payload_too_large");
    await expectError(await server.http("/ws/tasks/abc"), 426, "upgrade_required");
  });

  test("GET /tasks filters by status and pages with a cursor, newest first", async () => {
    server = await startTestServer();
    const ids: string[] = [];
    for (let index = 0; index < 5; index++) ids.push((await server.createTask({ input: `task ${index}` })).id);
    for (const id of ids) await (await server.watch(id)).result();

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor ? `limit=2&cursor=${cursor}` : "limit=2";
      const page = (await (await server.http(`/tasks?${query}`)).json()) as { tasks: { id: string }[]; next_cursor: string | null };
      expect(page.tasks.length).toBeLessThanOrEqual(2);
      seen.push(...page.tasks.map((task) => task.id));
      cursor = page.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([...ids].reverse());

    const completed = (await (await server.http("/tasks?status=completed")).json()) as { tasks: unknown[] };
    expect(completed.tasks.length).toBe(5);
    const queued = (await (await server.http("/tasks?status=queued")).json()) as { tasks: unknown[] };
    expect(queued.tasks.length).toBe(0);
  });

  test("cancel is idempotent and answers with the state the task ended in", async () => {
    server = await startTestServer();
    const task = await server.createTask({ input: "hello" });
    await (await server.watch(task.id)).result();
    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await server.http(`/tasks/${task.id}/cancel`, { method: "POST" });
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ id: task.id, status: "completed" });
    }
    const events = (await (await server.http(`/tasks/${task.id}/events`)).json()) as { events: { type: string }[] };
    expect(events.events.filter((event) => event.type === "result").length).toBe(1);
  });

  test("limits end a task with their own status and stop reason", async () => {
    const looping = createScriptedModel([callTools([{ id: "c", name: "calculator", arguments: '{"expression":"1+1"}' }])], { repeatLast: true });
    const hanging: ChatModel = {
      id: "test/hang",
      async *stream(request) {
        await new Promise((_, reject) => request.abortSignal.addEventListener("abort", () => reject(request.abortSignal.reason)));
      },
    };
    server = await startTestServer({
      models: { loop: looping, hang: hanging },
      agents: [
        { model: "test/loop", max_steps: 3 },
        { model: "test/loop", token_budget: 40 },
        { model: "test/hang", timeout_ms: 150 },
      ],
    });
    const expectations = [
      ["default", { status: "failed", stop_reason: "max_steps", total_steps: 3 }],
      ["agent1", { status: "failed", stop_reason: "token_budget", total_tokens: 45 }],
      ["agent2", { status: "timed_out", stop_reason: "deadline" }],
    ] as const;
    for (const [agent, expected] of expectations) {
      const task = await server.createTask({ input: "go", agent });
      const result = await (await server.watch(task.id)).result();
      expect(result.data).toMatchObject(expected);
      expect(await (await server.http(`/tasks/${task.id}`)).json()).toMatchObject(expected);
    }
  });

  test("a full queue answers 429", async () => {
    server = await startTestServer({
      models: {
        slow: {
          id: "test/slow",
          async *stream(request) {
            await new Promise((_, reject) => request.abortSignal.addEventListener("abort", () => reject(request.abortSignal.reason)));
          },
        },
      },
      agents: [{ model: "test/slow" }],
      config: { maxConcurrentTasks: 1, maxQueuedTasks: 1 },
    });
    await server.createTask({ input: "runs" });
    await server.createTask({ input: "waits" });
    await expectError(await server.http("/tasks", { method: "POST", json: { input: "refused" } }), 429, "queue_full");
  });
});

describe("auth", () => {
  test("with a key: every route but /health needs it, as Bearer or X-API-Key", async () => {
    server = await startTestServer({ config: { apiKey: "k-0123456789" } });
    expect((await server.http("/health")).status).toBe(200);
    const attempts: Record<string, string>[] = [{}, { authorization: "Bearer wrong-key" }, { "x-api-key": "k-012345678" }, { authorization: "k-0123456789" }];
    for (const headers of attempts) {
      await expectError(await server.http("/tasks", { headers }), 401, "unauthorized");
      await expectError(await server.http("/agents", { headers }), 401, "unauthorized");
      await expectError(await server.http("/tasks", { method: "POST", json: { input: "x" }, headers }), 401, "unauthorized");
    }
    expect((await server.http("/tasks", { headers: { authorization: "Bearer k-0123456789" } })).status).toBe(200);
    expect((await server.http("/agents", { headers: { "x-api-key": "k-0123456789" } })).status).toBe(200);
    // Unknown routes are not revealed without the key either.
    await expectError(await server.http("/secret-route"), 401, "unauthorized");
  });

  test("without a key the API is open", async () => {
    server = await startTestServer();
    expect((await server.http("/tasks")).status).toBe(200);
  });
});
