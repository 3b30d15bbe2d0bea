/** The REST API: validation, errors, auth, pagination, cancel. */
import { afterEach, describe, expect, test } from "bun:test";
import type { ChatModel } from "../../src/llm/model.ts";
import { callTools, createScriptedModel } from "../helpers/scripted-model.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { within } from "../helpers/deferred.ts";

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

  test("GET /tasks/:id/events pages big frames by size too (about 1 MiB, at least one event): read on with after=, every event once", async () => {
    server = await startTestServer({ agents: [{ name: "bench", model: "demo/bench", tools: ["calculator"] }] });
    // 4 steps whose tool_call frames carry 400,000 characters each: ~1.6 MB of frames in all.
    const created = await server.http("/tasks", { method: "POST", json: { agent: "bench", input: JSON.stringify({ steps: 4, pad: 400_000 }) } });
    const task = (await created.json()) as { id: string };
    await (await server.watch(task.id)).result();
    type Page = { last_seq: number; events: { seq: number }[] };
    const first = (await (await server.http(`/tasks/${task.id}/events?limit=1000`)).json()) as Page;
    expect(first.last_seq).toBe(14);
    const seqs = first.events.map((event) => event.seq);
    expect(seqs.at(-1)!).toBeLessThan(first.last_seq); // cut by size, not by the limit
    // The events before the last one hold less than 1 MiB; the last one reached it.
    const sizes = first.events.map((event) => Buffer.byteLength(JSON.stringify(event)));
    expect(sizes.slice(0, -1).reduce((sum, size) => sum + size, 0)).toBeLessThan(1024 * 1024);
    expect(sizes.reduce((sum, size) => sum + size, 0)).toBeGreaterThanOrEqual(1024 * 1024);
    let after = seqs.at(-1)!;
    while (after < first.last_seq) {
      const page = (await (await server.http(`/tasks/${task.id}/events?after=${after}&limit=1000`)).json()) as Page;
      expect(page.events.length).toBeGreaterThan(0);
      seqs.push(...page.events.map((event) => event.seq));
      after = page.events.at(-1)!.seq;
    }
    expect(seqs).toEqual(Array.from({ length: 14 }, (_, index) => index + 1));
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
      // Well-formed JSON that breaks the schema: the message says so (not "Invalid json").
      expect(body.error.message).toStartWith("Invalid request body: ");
    }
    const badQuery = await expectError(await server.http("/tasks?limit=0"), 400, "validation_failed");
    expect(badQuery.error.message).toStartWith("Invalid query: limit: ");
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

  test("a body without a length (chunked): judged by what arrives — hundreds of tiny chunks are one body, past the limit is 413, thousands of tiny ones are 400 with the connection closed; A2A without a key is 401 before its body is read", async () => {
    server = await startTestServer({ config: { maxBodyBytes: 4096, apiKey: "k".repeat(24) } });
    const key = { authorization: `Bearer ${"k".repeat(24)}` };
    /** A body sent in `chunks` pieces (no Content-Length), optionally never ending. */
    const chunked = (text: string, chunks: number, end = true) =>
      new ReadableStream<Uint8Array>({
        start(controller) {
          const bytes = new TextEncoder().encode(text);
          const size = Math.ceil(bytes.length / chunks);
          for (let at = 0; at < bytes.length; at += size) controller.enqueue(bytes.subarray(at, at + size));
          if (end) controller.close();
        },
      });
    const post = (path: string, body: ReadableStream<Uint8Array>, headers: Record<string, string> = key) =>
      fetch(`${server!.baseUrl}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body, duplex: "half" } as RequestInit);
    const input = `What is 2 + 2?${" ".repeat(3000)}`;
    const created = await post("/tasks", chunked(JSON.stringify({ input }), 600));
    expect(created.status).toBe(201);
    expect(((await created.json()) as { input: string }).input).toBe(input);
    await expectError(await post("/tasks", chunked(JSON.stringify({ input: "x".repeat(5000) }), 300)), 413, "payload_too_large");
    await expectError(await post("/a2a/default", chunked(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "x", params: { a: "x".repeat(5000) } }), 40)), 413, "payload_too_large");
    // No key: answered while the body is still coming (it never ends).
    await expectError(await within(post("/a2a/default", chunked("{", 1, false), {}), 5_000, "a 401 before the body ends"), 401, "unauthorized");

    // Thousands of one-byte chunks (each costs the server to parse and take): refused once more
    // than 1,024 have come averaging under 1 KiB, the connection closed, the rest never read.
    const { connect: tcpConnect } = await import("node:net");
    const socket = tcpConnect({ host: "127.0.0.1", port: server.port });
    socket.on("error", () => {});
    let answer = "";
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    socket.on("data", (data) => (answer += data.toString()));
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    const tiny = `{"input":"${"x".repeat(3000)}"}`;
    socket.write(
      `POST /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${"k".repeat(24)}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n` +
        [...tiny].map((char) => `1\r\n${char}\r\n`).join("") +
        "0\r\n\r\n",
    );
    await within(closed, 5_000, "the server to answer and close the connection");
    const [head = "", text = ""] = answer.split("\r\n\r\n");
    expect(head.split("\r\n")[0]).toBe("HTTP/1.1 400 Bad Request");
    expect(head.toLowerCase()).toContain("connection: close");
    expect(JSON.parse(text).error).toMatchObject({ code: "bad_request", message: expect.stringContaining("more than 1024 chunks") });
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
    const full = await server.http("/tasks", { method: "POST", json: { input: "refused" } });
    // Retry-After: when trying again makes sense.
    expect(full.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
    await expectError(full, 429, "queue_full");
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

describe("bounds on what a client stores", () => {
  test("metadata over a limit is a 400 naming it; metadata at the limits is stored as sent", async () => {
    const { METADATA_LIMITS } = await import("../../src/protocol/limits.ts");
    server = await startTestServer();
    const deep = (depth: number): unknown => {
      let value: unknown = 1;
      for (let level = 1; level < depth; level++) value = [value];
      return { a: value };
    };
    const over: [unknown, string, string][] = [
      [deep(METADATA_LIMITS.maxDepth + 1), `nests at most ${METADATA_LIMITS.maxDepth} levels deep`, `metadata.a${".0".repeat(METADATA_LIMITS.maxDepth - 1)}`],
      [Object.fromEntries(Array.from({ length: METADATA_LIMITS.maxEntries + 1 }, (_, i) => [`k${i}`, i])), `at most ${METADATA_LIMITS.maxEntries} keys`, "metadata"],
      [{ list: Array(METADATA_LIMITS.maxEntries).fill(0) }, `at most ${METADATA_LIMITS.maxEntries} keys`, "metadata.list"],
      [{ ["k".repeat(METADATA_LIMITS.maxKeyChars + 1)]: 1 }, `keys are at most ${METADATA_LIMITS.maxKeyChars} chars`, "metadata"],
      [{ note: "n".repeat(METADATA_LIMITS.maxStringChars + 1) }, `at most ${METADATA_LIMITS.maxStringChars} chars`, "metadata.note"],
      [Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, "é".repeat(500)])), `at most ${METADATA_LIMITS.maxBytes} bytes`, "metadata"],
      // Several values over a limit: the first one in the body is named (in keys and in arrays).
      [Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`k${i}`, "n".repeat(METADATA_LIMITS.maxStringChars + 1)])), `at most ${METADATA_LIMITS.maxStringChars} chars`, "metadata.k0"],
      [{ ok: [1, 2], list: ["fine", "n".repeat(METADATA_LIMITS.maxStringChars + 1), "n".repeat(METADATA_LIMITS.maxStringChars + 1)] }, `at most ${METADATA_LIMITS.maxStringChars} chars`, "metadata.list.1"],
    ];
    for (const [metadata, limit, path] of over) {
      const body = await expectError(await server.http("/tasks", { method: "POST", json: { input: "x", metadata } }), 400, "validation_failed");
      expect(body.error.message).toContain(limit);
      expect(body.error.details?.map((issue) => issue.path)).toEqual([path]);
    }
    // 1e999 parses as Infinity, which JSON cannot hold (it would come back as null).
    await expectError(
      await server.http("/tasks", { method: "POST", body: '{"input":"x","metadata":{"n":1e999}}', headers: { "content-type": "application/json" } }),
      400,
      "validation_failed",
    );
    // Nesting far past the limit is refused from the raw text, before it is parsed.
    const nested = await expectError(
      await server.http("/tasks", { method: "POST", body: `{"input":"x","metadata":{"a":${"[".repeat(30_000)}${"]".repeat(30_000)}}}`, headers: { "content-type": "application/json" } }),
      400,
      "validation_failed",
    );
    expect(nested.error.message).toContain(`depth ≤ ${METADATA_LIMITS.maxDepth}`);

    const atLimits = {
      ...(deep(METADATA_LIMITS.maxDepth) as object),
      ["k".repeat(METADATA_LIMITS.maxKeyChars)]: "s".repeat(METADATA_LIMITS.maxStringChars),
      // Entries: a and the one item of each of its maxDepth - 1 arrays, the long key, list and its items: maxEntries in all.
      list: Array(METADATA_LIMITS.maxEntries - 2 - METADATA_LIMITS.maxDepth).fill(true),
    };
    const created = await server.createTask({ input: "x", metadata: atLimits });
    expect((await (await server.http(`/tasks/${created.id}`)).json()) as object).toMatchObject({ metadata: atLimits });
  });

  test("a page of GET /tasks stops at ~1 MiB of JSON and continues with next_cursor", async () => {
    const { LIST_MAX_BYTES } = await import("../../src/protocol/limits.ts");
    server = await startTestServer();
    // 100,000 control chars: the longest input, 600 KB of JSON escapes each.
    const ids: string[] = [];
    for (let index = 0; index < 4; index++) ids.push((await server.createTask({ input: `${index}`.padEnd(100_000, "\u0001") })).id);
    for (const id of ids) await (await server.watch(id)).result();
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 10; page++) {
      const response = await server.http(`/tasks?limit=100${cursor ? `&cursor=${cursor}` : ""}`);
      const text = await response.text();
      const body = JSON.parse(text) as { tasks: { id: string }[]; next_cursor: string | null };
      expect(body.tasks.length).toBeGreaterThan(0);
      // Under the budget, or a single task that alone is over it.
      if (body.tasks.length > 1) expect(Buffer.byteLength(text)).toBeLessThanOrEqual(LIST_MAX_BYTES + 100);
      seen.push(...body.tasks.map((task) => task.id));
      cursor = body.next_cursor;
      if (!cursor) break;
    }
    expect(seen).toEqual([...ids].reverse());
  });
});

describe("HTTP details", () => {
  test("a wrong method on a known route is 405 with Allow; OPTIONS lists the methods", async () => {
    server = await startTestServer();
    const task = await server.createTask({ input: "hi" });
    const cases: [string, string, string][] = [
      ["DELETE", `/tasks/${task.id}`, "GET, HEAD"],
      ["PUT", "/tasks", "GET, HEAD, POST"],
      ["GET", `/tasks/${task.id}/cancel`, "POST"],
      ["POST", `/tasks/${task.id}/events`, "GET, HEAD"],
      ["PATCH", "/agents", "GET, HEAD"],
      ["POST", "/health", "GET, HEAD"],
      ["POST", "/ws/tasks/abc", "GET"],
    ];
    for (const [method, path, allow] of cases) {
      const body = await expectError(await server.http(path, { method }), 405, "method_not_allowed");
      const response = await server.http(path, { method });
      expect(response.headers.get("allow")).toBe(allow);
      expect(body.error.message).toContain(method);
      expect(body.error.message).toContain(allow);
    }
    const options = await server.http("/tasks", { method: "OPTIONS" });
    expect(options.status).toBe(204);
    expect(options.headers.get("allow")).toBe("GET, HEAD, POST");
    // HEAD is answered like GET, without a body.
    const head = await server.http(`/tasks/${task.id}`, { method: "HEAD" });
    expect(head.status).toBe(200);
    // Unknown routes stay 404.
    await expectError(await server.http("/tasks/a/b/c", { method: "DELETE" }), 404, "not_found");
  });

  test("a POST /tasks body that is not JSON is 415 naming the type it got and the one expected", async () => {
    server = await startTestServer();
    const cases: [Record<string, string>, string][] = [
      [{ "content-type": "application/x-www-form-urlencoded" }, "application/x-www-form-urlencoded"],
      [{ "content-type": "text/plain;charset=UTF-8" }, "text/plain"],
      [{}, "no Content-Type"],
    ];
    for (const [headers, got] of cases) {
      const body = await expectError(await server.http("/tasks", { method: "POST", body: '{"input":"hi"}', headers }), 415, "unsupported_media_type");
      expect(body.error.message).toContain(got);
      expect(body.error.message).toContain("application/json");
    }
    for (const type of ["application/json; charset=utf-8", "application/vnd.agentkit+json", "APPLICATION/JSON"]) {
      const response = await server.http("/tasks", { method: "POST", body: '{"input":"hi"}', headers: { "content-type": type } });
      expect(response.status).toBe(201);
    }
  });

  test("with CORS, a preflight lists every method a route answers, and a 405 carries the CORS headers", async () => {
    server = await startTestServer({ config: { corsOrigins: "https://app.example" } });
    const preflight = await server.http("/tasks", {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
    });
    expect(preflight.status).toBe(204);
    const methods = preflight.headers.get("access-control-allow-methods")!.split(",").map((method) => method.trim());
    expect(methods.sort()).toEqual(["GET", "HEAD", "OPTIONS", "POST"]);
    const wrong = await server.http("/tasks", { method: "PUT", headers: { origin: "https://app.example" } });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(wrong.headers.get("access-control-expose-headers")).toContain("Allow");
  });
});

describe("client aborts", () => {
  test("a client that drops mid-upload is logged at debug, not as an error, and the server keeps serving", async () => {
    const { connect: tcpConnect } = await import("node:net");
    const { startLoggedServer } = await import("../helpers/logged-server.ts");
    const { until } = await import("../helpers/deferred.ts");
    const logged = await startLoggedServer();
    try {
      const heads = [
        "Content-Length: 100000", // a declared length never reached
        "Transfer-Encoding: chunked", // a chunked upload that stops
      ];
      for (const head of heads) {
        const socket = tcpConnect({ host: "127.0.0.1", port: logged.port });
        socket.on("error", () => {});
        await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
        const start = '{"input":"' + "x".repeat(1000);
        const chunk = head.startsWith("Transfer") ? `${start.length.toString(16)}\r\n${start}\r\n` : start;
        socket.write(`POST /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${head}\r\n\r\n${chunk}`);
        // Wait until the server is reading the body, then drop the connection.
        await Bun.sleep(20);
        socket.destroy();
      }
      // Each aborted request was seen (and logged, at some level).
      const aborted = () => logged.lines.filter((entry) => /request (failed|aborted)/.test(entry.line));
      await until(() => aborted().length >= heads.length, "the server to notice both aborted uploads", 3000).catch(() => {});
      expect(aborted().map((entry) => entry.level)).toEqual(heads.map(() => "debug"));
      expect(logged.lines.filter((entry) => entry.level === "error")).toEqual([]);
      // Still serving.
      expect((await fetch(`${logged.baseUrl}/health`)).status).toBe(200);
      const created = await fetch(`${logged.baseUrl}/tasks`, { method: "POST", body: '{"input":"hi"}', headers: { "content-type": "application/json" } });
      expect(created.status).toBe(201);
    } finally {
      await logged.close();
    }
  });
});

describe("text that is not valid Unicode", () => {
  test("a lone surrogate in an input, a message or an answer is refused (400 naming it), not stored as U+FFFD", async () => {
    server = await startTestServer();
    const lone = '{"input":"A\\ud800B"}';
    const created = await server.http("/tasks", { method: "POST", headers: { "content-type": "application/json" }, body: lone });
    const body = await expectError(created, 400, "validation_failed");
    expect(body.error.message).toContain("input: is not valid Unicode: it has a lone surrogate");
    // A pair is one character: fine.
    const paired = await server.http("/tasks", { method: "POST", headers: { "content-type": "application/json" }, body: '{"input":"A\\ud83d\\ude00B"}' });
    expect(paired.status).toBe(201);
    expect(((await paired.json()) as { input: string }).input).toBe("A😀B");
    const task = (await (await server.http("/tasks", { method: "POST", json: { input: "hello" } })).json()) as { id: string };
    for (const [path, text] of [["input", '{"text":"x\\udc00"}'], ["answers", '{"call_id":"c1","text":"\\udfff"}']] as const) {
      const response = await server.http(`/tasks/${task.id}/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: text });
      expect((await expectError(response, 400, "validation_failed")).error.message).toContain("not valid Unicode");
    }
  });
});
