/**
 * Logs: the text and JSON formats, and the access log — one line per request, which never holds a
 * key (not from the query string, not from a header, not from a WebSocket subprotocol).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { AgentDefinition } from "../../src/agents/agent.ts";
import { ConfigError, loadConfig, type ConfigInput } from "../../src/config/config.ts";
import { createLogger, type LogFormat } from "../../src/lib/logger.ts";
import { startServer } from "../../src/server/serve.ts";
import { pathOf } from "../../src/telemetry/access-log.ts";
import { until } from "../helpers/deferred.ts";
import { tempDir } from "../helpers/server.ts";
import { connect } from "../helpers/ws-client.ts";

describe("the logger", () => {
  test("json: one JSON object a line, {time, level, msg, ...fields}", () => {
    const lines: string[] = [];
    const logger = createLogger("info", (line) => lines.push(line), "json");
    const cycle: Record<string, unknown> = { name: "loop" };
    cycle.self = cycle;
    logger.debug("not shown");
    logger.info("task finished", { task: "t1", status: "completed", nested: { a: [1, 2] } });
    logger.warn("odd fields", { msg: "a field named msg", time: 5, error: new Error("boom"), big: 12n, cycle });
    logger.error("multi\nline \"quoted\"");
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line).not.toContain("\n");
    const [info, warn, error] = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(Object.keys(info!).slice(0, 3)).toEqual(["time", "level", "msg"]);
    expect(info).toMatchObject({ level: "info", msg: "task finished", task: "t1", status: "completed", nested: { a: [1, 2] } });
    expect(new Date(info!.time as string).toISOString()).toBe(info!.time as string);
    expect(warn).toMatchObject({ level: "warn", msg: "odd fields", "field.msg": "a field named msg", "field.time": 5, error: "boom", big: "12" });
    expect((warn!.cycle as Record<string, unknown>).self).toBe("[Circular]");
    expect(error).toMatchObject({ level: "error", msg: 'multi\nline "quoted"' });
  });

  test("text: time, level, message, fields", () => {
    const lines: string[] = [];
    createLogger("info", (line) => lines.push(line)).warn("hello", { a: 1, error: new Error("boom") });
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z warn  hello \{"a":1,"error":"boom"\}$/);
  });

  test("AGENTKIT_LOG_FORMAT and AGENTKIT_ACCESS_LOG are validated", () => {
    expect(loadConfig({ env: { AGENTKIT_LOG_FORMAT: "json" }, readFile: false }).logFormat).toBe("json");
    expect(loadConfig({ env: {}, readFile: false }).logFormat).toBe("text");
    expect(loadConfig({ env: {}, readFile: false }).accessLog).toBe(true);
    for (const [value, expected] of [["0", false], ["off", false], ["false", false], ["1", true], ["true", true]] as const) {
      expect(loadConfig({ env: { AGENTKIT_ACCESS_LOG: value }, readFile: false }).accessLog).toBe(expected);
    }
    expect(() => loadConfig({ env: { AGENTKIT_LOG_FORMAT: "xml" }, readFile: false })).toThrow(ConfigError);
    expect(() => loadConfig({ env: { AGENTKIT_ACCESS_LOG: "maybe" }, readFile: false })).toThrow(/AGENTKIT_ACCESS_LOG/);
  });

  test("pathOf drops the query string and the fragment", () => {
    expect(pathOf("http://h:1/tasks/abc/events?api_key=k&after=2")).toBe("/tasks/abc/events");
    expect(pathOf("http://h/ws/tasks/x#frag?y")).toBe("/ws/tasks/x");
    expect(pathOf("http://h")).toBe("/");
    expect(pathOf(`http://h/${"a".repeat(400)}`)).toHaveLength(257);
  });
});

const ADMIN = "admin-SECRET-key-4f9a2c";
const TENANT = "tenant-SECRET-key-77b1e0";

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

async function loggedServer(format: LogFormat, config: Partial<ConfigInput> = {}) {
  const dataDir = tempDir();
  const lines: string[] = [];
  const logger = createLogger("debug", (line) => lines.push(line), format);
  const loaded = loadConfig({
    env: {},
    readFile: false,
    flags: { port: 0, host: "127.0.0.1", dataDir, apiKey: ADMIN, apiKeys: `alice:${TENANT}`, agents: [AgentDefinition.parse({ name: "default", tools: ["calculator"] })], ...config },
  });
  const server = await startServer({ config: loaded, logger, env: {} });
  stops.push(async () => {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return { server, base: `http://127.0.0.1:${server.port}`, lines };
}

/** Requests with keys in every place a client puts them. */
async function requestsWithKeys(base: string, port: number) {
  const created = await fetch(`${base}/tasks?api_key=${ADMIN}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: JSON.stringify({ input: "What is 17*23?" }),
  });
  expect(created.status).toBe(201);
  const task = (await created.json()) as { id: string };
  await fetch(`${base}/tasks/${task.id}`, { headers: { "X-API-Key": TENANT } }); // 404: another key's task
  await fetch(`${base}/tasks?api_key=${TENANT}`); // 401: keys are not read from a REST URL
  const socket = await connect(`ws://127.0.0.1:${port}/ws/tasks/${task.id}?api_key=${ADMIN}`);
  await socket.result();
  socket.close();
  const browser = await connect(`ws://127.0.0.1:${port}/ws/tasks/${task.id}`, ["agentkit", `agentkit.key.${ADMIN}`]);
  await browser.result();
  browser.close();
  const events = await fetch(`${base}/tasks/${task.id}/events?api_key=${ADMIN}&after=0`, { headers: { accept: "text/event-stream" } });
  await events.text();
  await fetch(`${base}/metrics`, { headers: { Authorization: `Bearer ${ADMIN}` } });
  return task.id;
}

describe("the access log", () => {
  test("json: a line per request with method, path, status and duration; never a key", async () => {
    const { server, base, lines } = await loggedServer("json");
    const taskId = await requestsWithKeys(base, server.port);
    await until(() => lines.filter((line) => line.includes('"http request"')).length >= 7, "seven access lines");
    const output = lines.join("\n");
    expect(output).not.toContain(ADMIN);
    expect(output).not.toContain(TENANT);
    expect(output).not.toContain("SECRET");
    expect(output).not.toContain("api_key");
    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const access = entries.filter((entry) => entry.msg === "http request");
    for (const entry of access) {
      expect(entry.level).toBe("info");
      expect(typeof entry.duration_ms).toBe("number");
      expect(Object.keys(entry).sort()).toEqual(expect.arrayContaining(["duration_ms", "level", "method", "msg", "path", "status", "time"]));
      expect(String(entry.path)).not.toContain("?");
    }
    const seen = access.map((entry) => `${entry.method} ${entry.path} ${entry.status}`);
    expect(seen).toEqual([
      "POST /tasks 201",
      `GET /tasks/${taskId} 404`,
      "GET /tasks 401",
      `GET /ws/tasks/${taskId} 101`,
      `GET /ws/tasks/${taskId} 101`,
      `GET /tasks/${taskId}/events 200`,
      "GET /metrics 200",
    ]);
    // JSON mode: every line of the server's log is one JSON object.
    expect(entries.length).toBe(lines.length);
  });

  test("text: the same lines, at info; still never a key", async () => {
    const { server, base, lines } = await loggedServer("text");
    await requestsWithKeys(base, server.port);
    await until(() => lines.filter((line) => line.includes(" http request ")).length >= 7, "seven access lines");
    const output = lines.join("\n");
    expect(output).not.toContain("SECRET");
    expect(output).not.toContain("api_key");
    expect(lines.find((line) => line.includes(" http request "))).toMatch(/^\S+ info  http request \{"method":"POST","path":"\/tasks","status":201,"duration_ms":[\d.]+\}$/);
  });

  test("AGENTKIT_ACCESS_LOG=0 turns it off", async () => {
    const { base, lines } = await loggedServer("json", { accessLog: false });
    expect((await fetch(`${base}/health`)).status).toBe(200);
    expect((await fetch(`${base}/tasks`)).status).toBe(401);
    await Bun.sleep(20);
    expect(lines.filter((line) => line.includes("http request"))).toEqual([]);
  });
});
