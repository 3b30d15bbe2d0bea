/**
 * The task WebSocket from a real browser (headless Chromium): the key as a subprotocol, what the
 * browser sees selected, the Origin check, and a watcher that never sends a message through a task
 * that runs much longer than the heartbeat. Skipped, with the reason, when Chromium is not installed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { findChromium, launchChromium, type Browser } from "../helpers/chromium.ts";
import { createScriptedModel, type ScriptStep } from "../helpers/scripted-model.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const chromium = findChromium();
const KEY = "0123456789abcdef0123";
const HEARTBEAT_MS = 300;

/** About 12 × 150 ms: many heartbeat periods long. */
const slowTask: ScriptStep = async function* (request) {
  const done = request.messages.filter((message) => message.role === "tool").length;
  await Bun.sleep(150);
  if (done >= 12) {
    yield { type: "text-delta", text: "done" };
    yield { type: "finish", finishReason: "stop", usage: { inputTokens: 1, outputTokens: 1 } };
    return;
  }
  yield { type: "tool-call", call: { id: `c${done}`, name: "current_time", arguments: "{}" } };
  yield { type: "finish", finishReason: "tool-calls", usage: { inputTokens: 1, outputTokens: 1 } };
};

/** Runs in the page: opens a WebSocket and reports what happened (frames, protocol, close code). */
const watchInPage = (url: string, protocols: string[]) => `
  new Promise((resolve) => {
    let ws;
    try { ws = new WebSocket(${JSON.stringify(url)}, ${JSON.stringify(protocols)}); }
    catch (error) { resolve({ thrown: error.name }); return; }
    const frames = [];
    let opened = false, protocol = null;
    ws.onopen = () => { opened = true; protocol = ws.protocol; };
    ws.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      frames.push(frame.type);
      if (frame.type === "result") { protocol = ws.protocol; ws.close(); resolve({ opened, protocol, frames, status: frame.data.status }); }
    };
    ws.onclose = (event) => resolve({ opened, protocol, frames, code: event.code });
  })`;

interface Outcome {
  thrown?: string;
  opened?: boolean;
  protocol?: string | null;
  frames?: string[];
  status?: string;
  code?: number;
}

describe.skipIf(!chromium)("in Chromium", () => {
  let browser: Browser;
  let server: TestServer;
  let allowedPage: ReturnType<typeof Bun.serve>;
  let otherPage: ReturnType<typeof Bun.serve>;

  beforeAll(async () => {
    const page = () =>
      Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("<!doctype html><title>page</title>", { headers: { "content-type": "text/html" } }) });
    allowedPage = page();
    otherPage = page();
    server = await startTestServer({
      models: { m: createScriptedModel([slowTask], { repeatLast: true }) },
      agents: [{ model: "test/m", max_steps: 20 }],
      config: { apiKey: KEY, corsOrigins: `http://127.0.0.1:${allowedPage.port}`, heartbeatMs: HEARTBEAT_MS },
    });
    browser = await launchChromium(chromium!);
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    allowedPage?.stop(true);
    otherPage?.stop(true);
  });

  test("a browser page watches a task far longer than the heartbeat with its key as a subprotocol, sending nothing", async () => {
    const task = await server.createTask({ input: "go" }, { authorization: `Bearer ${KEY}` });
    const page = await browser.open(`http://127.0.0.1:${allowedPage.port}/`);
    const started = Date.now();
    const outcome = await page.evaluate<Outcome>(watchInPage(`ws://127.0.0.1:${server.port}/ws/tasks/${task.id}`, ["agentkit", `agentkit.key.${KEY}`]));
    expect(outcome).toMatchObject({ opened: true, protocol: "agentkit", status: "completed" });
    expect(outcome.frames![0]).toBe("connected");
    expect(Date.now() - started).toBeGreaterThan(4 * HEARTBEAT_MS);
  }, 20_000);

  test("the server never selects the key-carrying subprotocol, so the browser never exposes it as ws.protocol", async () => {
    const task = await server.createTask({ input: "go" }, { authorization: `Bearer ${KEY}` });
    const page = await browser.open(`http://127.0.0.1:${allowedPage.port}/`);
    const outcome = await page.evaluate<Outcome>(watchInPage(`ws://127.0.0.1:${server.port}/ws/tasks/${task.id}`, [`agentkit.key.${KEY}`]));
    // Offered alone, the key protocol is not selected; the browser then fails the handshake itself.
    expect(outcome.protocol ?? "").not.toContain(KEY);
    expect(outcome).toMatchObject({ opened: false, code: 1006 });
  }, 20_000);

  test("a page from an origin that is not allowed cannot open the WebSocket", async () => {
    const task = await server.createTask({ input: "go" }, { authorization: `Bearer ${KEY}` });
    const page = await browser.open(`http://127.0.0.1:${otherPage.port}/`);
    const outcome = await page.evaluate<Outcome>(watchInPage(`ws://127.0.0.1:${server.port}/ws/tasks/${task.id}`, ["agentkit", `agentkit.key.${KEY}`]));
    expect(outcome).toMatchObject({ opened: false, frames: [], code: 1006 });
  }, 20_000);

  test("why keys are limited to URL-safe characters: a browser refuses a base64 key as a subprotocol", async () => {
    const page = await browser.open(`http://127.0.0.1:${allowedPage.port}/`);
    const outcome = await page.evaluate<Outcome>(watchInPage(`ws://127.0.0.1:${server.port}/ws/tasks/x`, ["agentkit", "agentkit.key.abc/def+ghi="]));
    expect(outcome).toEqual({ thrown: "SyntaxError" });
  }, 20_000);
});

if (!chromium) test.skip("browser tests: skipped because Chromium is not installed (apt-get install chromium; .ci/run does)", () => {});
