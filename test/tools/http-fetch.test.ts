/**
 * `http_fetch` against a real Bun.serve on 127.0.0.1. `localhost` reaches the same server but is not
 * on the allowlist, so a missing check would show up as a request the server received.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { createHttpFetchTool, type HttpFetchResult } from "../../src/tools/http-fetch.ts";
import type { Tool } from "../../src/tools/tool.ts";
import { runTool } from "./support/run-tool.ts";

interface SeenRequest {
  method: string;
  host: string;
  path: string;
}

const seen: SeenRequest[] = [];
const released = Promise.withResolvers<void>();
let infiniteStreamCancelled = Promise.withResolvers<void>();
let hangingRequestReceived = Promise.withResolvers<void>();
let hangingRequestAborted = Promise.withResolvers<void>();
let server: ReturnType<typeof Bun.serve>;
let port: number;

beforeAll(() => {
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(request) {
      const url = new URL(request.url);
      seen.push({ method: request.method, host: url.host, path: url.pathname });
      switch (url.pathname) {
        case "/text":
          return new Response("hello world", { headers: { "content-type": "text/plain; charset=utf-8" } });
        case "/json":
          return Response.json({ ok: true });
        case "/redirect-relative":
          return new Response(null, { status: 302, headers: { location: "/text" } });
        case "/redirect-denied":
          return new Response(null, { status: 301, headers: { location: `http://localhost:${port}/text` } });
        case "/loop":
          return new Response(null, { status: 307, headers: { location: "/loop" } });
        case "/not-found":
          return new Response("nothing here", { status: 404, headers: { "content-type": "text/plain" } });
        case "/image":
          return new Response(new Uint8Array([137, 80, 78, 71]), { headers: { "content-type": "image/png" } });
        case "/infinite": {
          // Never ends: the only way to finish is to stop reading at maxBytes.
          const chunk = new TextEncoder().encode("a".repeat(16 * 1024));
          const body = new ReadableStream<Uint8Array>({
            pull: (controller) => controller.enqueue(chunk),
            cancel: () => infiniteStreamCancelled.resolve(),
          });
          return new Response(body, { headers: { "content-type": "text/plain" } });
        }
        case "/stall": {
          // Headers and a first chunk, then nothing: the deadline must cover reading the body.
          const body = new ReadableStream<Uint8Array>({
            start: (controller) => controller.enqueue(new TextEncoder().encode("partial")),
          });
          return new Response(body, { headers: { "content-type": "text/plain" } });
        }
        case "/hang":
          hangingRequestReceived.resolve();
          request.signal.addEventListener("abort", () => hangingRequestAborted.resolve(), { once: true });
          return released.promise.then(() => new Response("too late"));
        default:
          return new Response("unknown path", { status: 500 });
      }
    },
  });
  port = server.port!;
});

afterAll(async () => {
  released.resolve();
  await server.stop(true);
});

afterEach(() => {
  // Whatever the test did, the tool never sent anything but GET.
  expect(seen.filter((request) => request.method !== "GET")).toEqual([]);
});

function tool(options: Partial<{ maxBytes: number; timeoutMs: number; allowHosts: string[] }> = {}): Tool {
  return createHttpFetchTool({ allowHosts: ["127.0.0.1"], maxBytes: 10_000, timeoutMs: 5_000, ...options });
}

const url = (path: string) => `http://127.0.0.1:${port}${path}`;

async function fetchOk(path: string, fetchTool = tool()): Promise<HttpFetchResult> {
  const outcome = await runTool([fetchTool], "http_fetch", { url: url(path) });
  if (!outcome.ok) throw new Error(`expected success, got ${outcome.error.code}: ${outcome.error.message}`);
  return outcome.result as HttpFetchResult;
}

describe("http_fetch", () => {
  test("fetches from an allowed host", async () => {
    expect(await fetchOk("/text")).toEqual({
      url: url("/text"),
      status: 200,
      content_type: "text/plain; charset=utf-8",
      body: "hello world",
      truncated: false,
    });
    expect((await fetchOk("/json")).body).toBe('{"ok":true}');
  });

  test("returns non-2xx statuses as results, not errors", async () => {
    const result = await fetchOk("/not-found");
    expect(result.status).toBe(404);
    expect(result.body).toBe("nothing here");
  });

  test("refuses a host that is not on the allowlist, without sending a request", async () => {
    const before = seen.length;
    const outcome = await runTool([tool()], "http_fetch", { url: `http://localhost:${port}/text` });
    expect(outcome.ok).toBe(false);
    if (outcome.ok) return;
    expect(outcome.error.code).toBe("invalid_arguments");
    expect(outcome.error.message).toContain(`host 'localhost:${port}' is not on this agent's http_fetch allowlist`);
    expect(seen.slice(before)).toEqual([]);
  });

  test("follows a redirect to an allowed host", async () => {
    const result = await fetchOk("/redirect-relative");
    expect(result.url).toBe(url("/text"));
    expect(result.body).toBe("hello world");
  });

  test("refuses a redirect to a host that is not on the allowlist, and does not follow it", async () => {
    const before = seen.length;
    const outcome = await runTool([tool()], "http_fetch", { url: url("/redirect-denied") });
    expect(outcome.ok).toBe(false);
    if (outcome.ok) return;
    expect(outcome.error.message).toContain(`redirected to http://localhost:${port}/text`);
    expect(outcome.error.message).toContain("not on this agent's http_fetch allowlist");
    expect(seen.slice(before).map((request) => request.host)).toEqual([`127.0.0.1:${port}`]);
  });

  test("gives up after too many redirects", async () => {
    const before = seen.length;
    const outcome = await runTool([tool()], "http_fetch", { url: url("/loop") });
    expect(outcome.ok).toBe(false);
    if (outcome.ok) return;
    expect(outcome.error.message).toContain("more than 5 redirects");
    expect(seen.length - before).toBe(6);
  });

  test("stops reading at maxBytes and says the body was truncated", async () => {
    infiniteStreamCancelled = Promise.withResolvers<void>();
    const result = await fetchOk("/infinite", tool({ maxBytes: 1000 }));
    expect(result.truncated).toBe(true);
    expect(result.body).toBe("a".repeat(1000));
    // The download was stopped, not drained: the server's stream saw the cancel.
    await infiniteStreamCancelled.promise;
  });

  test("does not show binary content", async () => {
    const result = await fetchOk("/image");
    expect(result.content_type).toBe("image/png");
    expect(result.body).toBe("[image/png content not shown: http_fetch returns text only]");
  });

  test("times out when the body stalls", async () => {
    const started = performance.now();
    const outcome = await runTool([tool({ timeoutMs: 300 })], "http_fetch", { url: url("/stall") });
    expect(outcome.ok).toBe(false);
    if (outcome.ok) return;
    expect(outcome.error).toEqual({
      code: "timeout",
      message: `http_fetch: ${url("/stall")} did not respond completely within 300 ms`,
      retryable: true,
    });
    expect(performance.now() - started).toBeLessThan(3_000);
  });

  test("aborts the request when the caller's signal aborts", async () => {
    hangingRequestReceived = Promise.withResolvers<void>();
    hangingRequestAborted = Promise.withResolvers<void>();
    const controller = new AbortController();
    const running = runTool([tool()], "http_fetch", { url: url("/hang") }, { abortSignal: controller.signal });
    const reason = new Error("task cancelled");
    // Abort once the server has the request in hand.
    await hangingRequestReceived.promise;
    controller.abort(reason);
    await expect(running).rejects.toBe(reason);
    // The abort reached the HTTP request: the server saw its client go away.
    await hangingRequestAborted.promise;
  });

  test("cannot send anything but GET", async () => {
    // The model cannot ask for another method: the schema has `url` and nothing else.
    const outcome = await runTool([tool()], "http_fetch", { url: url("/text"), method: "POST", body: "x" });
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) expect(outcome.error.code).toBe("invalid_arguments");
    // Even when execute is reached with extra fields, the request is a GET (checked in afterEach).
    const before = seen.length;
    const direct = await tool().execute({ url: url("/text"), method: "DELETE" } as never, { abortSignal: new AbortController().signal });
    expect((direct as HttpFetchResult).status).toBe(200);
    expect(seen.slice(before).map((request) => request.method)).toEqual(["GET"]);
  });
});

describe("http_fetch allowlist rules", () => {
  const requested: string[] = [];
  const fakeFetch = async (target: string) => {
    requested.push(target);
    return new Response("ok", { headers: { "content-type": "text/plain" } });
  };
  const rulesTool = createHttpFetchTool({
    allowHosts: ["*.example.com", "api.test:8443", "[::1]"],
    maxBytes: 100,
    timeoutMs: 1_000,
    fetch: fakeFetch,
  });

  async function isAllowed(target: string): Promise<boolean> {
    const outcome = await runTool([rulesTool], "http_fetch", { url: target });
    return outcome.ok;
  }

  test("a wildcard matches subdomains at any depth, but not the bare domain or look-alikes", async () => {
    expect(await isAllowed("http://a.example.com/")).toBe(true);
    expect(await isAllowed("https://a.b.EXAMPLE.com/x")).toBe(true);
    expect(await isAllowed("http://example.com/")).toBe(false);
    expect(await isAllowed("http://evilexample.com/")).toBe(false);
    expect(await isAllowed("http://a.example.com.evil.test/")).toBe(false);
  });

  test("a port in the pattern restricts the port; the scheme's default port counts", async () => {
    expect(await isAllowed("https://api.test:8443/v1")).toBe(true);
    expect(await isAllowed("https://api.test/v1")).toBe(false);
    expect(await isAllowed("http://[::1]:9999/")).toBe(true);
  });

  test("only http(s) URLs without credentials", async () => {
    const before = requested.length;
    expect(await isAllowed("ftp://a.example.com/file")).toBe(false);
    expect(await isAllowed("file:///etc/passwd")).toBe(false);
    expect(await isAllowed("http://user:secret@a.example.com/")).toBe(false);
    expect(await isAllowed("not a url")).toBe(false);
    expect(requested.length).toBe(before);
  });

  test("invalid patterns are rejected when the tool is created", () => {
    for (const pattern of ["*.com", "*.127.0.0.1", "exa mple.com", "http://example.com", "*", "a.*.com", "host:99999"]) {
      expect(() => createHttpFetchTool({ allowHosts: [pattern], maxBytes: 10, timeoutMs: 10, fetch: fakeFetch })).toThrow();
    }
    expect(() => createHttpFetchTool({ allowHosts: [], maxBytes: 10, timeoutMs: 10 })).toThrow();
  });

  test("a multi-byte character cut at the limit is dropped, not garbled", async () => {
    const cutTool = createHttpFetchTool({
      allowHosts: ["example.com"],
      maxBytes: 3,
      timeoutMs: 1_000,
      fetch: async () => new Response("ééé", { headers: { "content-type": "text/plain; charset=utf-8" } }),
    });
    const outcome = await runTool([cutTool], "http_fetch", { url: "http://example.com/" });
    expect(outcome.ok && outcome.result).toMatchObject({ body: "é", truncated: true });
  });
});
