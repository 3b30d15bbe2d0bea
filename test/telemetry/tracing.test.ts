/**
 * OpenTelemetry traces: a loopback OTLP/HTTP receiver gets a task's span with its model and tool
 * calls as children (GenAI attributes, parent ids, one trace); nothing is loaded or sent without
 * the environment variable; a collector that is down or hangs changes nothing for the task.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { AgentDefinition } from "../../src/agents/agent.ts";
import { loadConfig } from "../../src/config/config.ts";
import { createLogger, silentLogger } from "../../src/lib/logger.ts";
import { startServer, type RunningServer } from "../../src/server/serve.ts";
import { createTracing, parseKeyValues, traceIdOf, unixNanos } from "../../src/telemetry/tracing.ts";
import { until, within } from "../helpers/deferred.ts";
import { tempDir } from "../helpers/server.ts";
import { connect } from "../helpers/ws-client.ts";
import { parseExposition, valueOf } from "./exposition.ts";

interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: string; boolValue?: boolean; doubleValue?: number };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: OtlpAttribute[];
  status: { code: number; message?: string };
}
interface Received {
  headers: Headers;
  body: { resourceSpans: { resource: { attributes: OtlpAttribute[] }; scopeSpans: { scope: { name: string }; spans: OtlpSpan[] }[] }[] };
}

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** A loopback OTLP/HTTP receiver: records every POST to /v1/traces. */
function startReceiver(options: { hang?: boolean } = {}) {
  const received: Received[] = [];
  const receiver = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(request) {
      const url = new URL(request.url);
      if (request.method !== "POST" || url.pathname !== "/v1/traces") return new Response("not found", { status: 404 });
      if (options.hang) return new Promise<Response>(() => {}); // a collector that never answers
      received.push({ headers: request.headers, body: (await request.json()) as Received["body"] });
      return Response.json({});
    },
  });
  cleanup.push(() => receiver.stop(true));
  const spans = () => received.flatMap((entry) => entry.body.resourceSpans.flatMap((resource) => resource.scopeSpans.flatMap((scope) => scope.spans)));
  return { url: `http://127.0.0.1:${receiver.port}`, received, spans };
}

async function startTracedServer(env: Record<string, string>, options: { logLines?: string[] } = {}) {
  const dataDir = tempDir();
  const logger = options.logLines ? createLogger("debug", (line) => options.logLines!.push(line)) : silentLogger;
  const config = loadConfig({
    env: {},
    readFile: false,
    flags: { port: 0, host: "127.0.0.1", dataDir, logLevel: "debug", agents: [AgentDefinition.parse({ name: "default", tools: ["calculator"] })] },
  });
  const server = await startServer({ config, logger, env });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  cleanup.push(stop);
  return { server, base: `http://127.0.0.1:${server.port}`, stop };
}

async function runCalculatorTask(server: RunningServer) {
  const base = `http://127.0.0.1:${server.port}`;
  const created = await fetch(`${base}/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input: "What is 17*23?" }) });
  expect(created.status).toBe(201);
  const task = (await created.json()) as { id: string };
  const socket = await connect(`ws://127.0.0.1:${server.port}/ws/tasks/${task.id}`);
  const result = await socket.result();
  const toolCall = socket.frames.find((frame) => (frame.data as { event_type?: string } | undefined)?.event_type === "tool_call")!;
  socket.close();
  return { id: task.id, result, toolCallId: (toolCall.data as { data: { id: string } }).data.id };
}

function attributesOf(span: OtlpSpan): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of span.attributes) {
    out[key] = value.stringValue ?? (value.intValue !== undefined ? Number(value.intValue) : (value.boolValue ?? value.doubleValue!));
  }
  return out;
}

describe("OpenTelemetry traces", () => {
  test("a task's span, with a child span per model call and per tool call, reaches an OTLP/HTTP receiver", async () => {
    const receiver = startReceiver();
    const { server, stop } = await startTracedServer({
      OTEL_EXPORTER_OTLP_ENDPOINT: `${receiver.url}/`,
      OTEL_EXPORTER_OTLP_HEADERS: "x-collector-token=s3cret%20value, x-other = 2",
      OTEL_SERVICE_NAME: "agentkit-under-test",
    });
    const task = await runCalculatorTask(server);
    expect((task.result.data as { output: string }).output).toContain("391");
    // Batches go out every second; wait for the task's span.
    await until(() => receiver.spans().some((span) => span.name === "invoke_agent default"), "the task span", 5000);
    await stop();

    const first = receiver.received[0]!;
    expect(first.headers.get("content-type")).toBe("application/json");
    expect(first.headers.get("x-collector-token")).toBe("s3cret value");
    expect(first.headers.get("x-other")).toBe("2");
    const resource = Object.fromEntries(first.body.resourceSpans[0]!.resource.attributes.map(({ key, value }) => [key, value.stringValue]));
    expect(resource["service.name"]).toBe("agentkit-under-test");
    expect(resource["service.instance.id"]).toBe(server.node);
    expect(first.body.resourceSpans[0]!.scopeSpans[0]!.scope.name).toBe("agentkit");

    const spans = receiver.spans();
    const root = spans.filter((span) => span.name === "invoke_agent default");
    expect(root).toHaveLength(1);
    const taskSpan = root[0]!;
    expect(taskSpan.parentSpanId ?? "").toBe("");
    expect(taskSpan.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(taskSpan.traceId).toBe(task.id.replace(/-/g, ""));
    expect(taskSpan.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(taskSpan.status.code).toBe(1);
    const taskAttributes = attributesOf(taskSpan);
    expect(taskAttributes["agentkit.task_id"]).toBe(task.id);
    expect(taskAttributes["agentkit.agent"]).toBe("default");
    expect(taskAttributes["agentkit.status"]).toBe("completed");
    expect(taskAttributes["agentkit.stop_reason"]).toBe("final_answer");
    const usage = (task.result.data as { usage: { input_tokens: number; output_tokens: number } }).usage;
    expect(taskAttributes["gen_ai.usage.input_tokens"]).toBe(usage.input_tokens);

    const children = spans.filter((span) => span.parentSpanId === taskSpan.spanId);
    const models = children.filter((span) => span.name.startsWith("chat "));
    const tools = children.filter((span) => span.name.startsWith("execute_tool "));
    expect(models).toHaveLength(2);
    expect(tools).toHaveLength(1);
    expect(children).toHaveLength(3);
    let inputTokens = 0;
    let outputTokens = 0;
    for (const span of [...models, ...tools]) {
      expect(span.traceId).toBe(taskSpan.traceId);
      expect(span.spanId).toMatch(/^[0-9a-f]{16}$/);
      expect(span.startTimeUnixNano).toMatch(/^\d{19}$/);
      expect(BigInt(span.endTimeUnixNano)).toBeGreaterThanOrEqual(BigInt(span.startTimeUnixNano));
      // Inside the task's span.
      expect(BigInt(span.startTimeUnixNano)).toBeGreaterThanOrEqual(BigInt(taskSpan.startTimeUnixNano));
      expect(BigInt(span.endTimeUnixNano)).toBeLessThanOrEqual(BigInt(taskSpan.endTimeUnixNano));
    }
    for (const span of models) {
      const attributes = attributesOf(span);
      expect(span.name).toBe("chat react");
      expect(span.kind).toBe(3); // CLIENT
      expect(attributes["gen_ai.operation.name"]).toBe("chat");
      expect(attributes["gen_ai.provider.name"]).toBe("demo");
      expect(attributes["gen_ai.system"]).toBe("demo");
      expect(attributes["gen_ai.request.model"]).toBe("react");
      expect(attributes["agentkit.task_id"]).toBe(task.id);
      inputTokens += attributes["gen_ai.usage.input_tokens"] as number;
      outputTokens += attributes["gen_ai.usage.output_tokens"] as number;
    }
    expect({ inputTokens, outputTokens }).toEqual({ inputTokens: usage.input_tokens, outputTokens: usage.output_tokens });
    const tool = attributesOf(tools[0]!);
    expect(tools[0]!.name).toBe("execute_tool calculator");
    expect(tool["gen_ai.operation.name"]).toBe("execute_tool");
    expect(tool["gen_ai.tool.name"]).toBe("calculator");
    expect(tool["gen_ai.tool.call.id"]).toBe(task.toolCallId);
    expect(tools[0]!.status.code).toBe(0);
  });

  test("a collector that is down or never answers changes nothing for the task; spans are dropped and counted", async () => {
    for (const mode of ["down", "hang"] as const) {
      let url: string;
      if (mode === "down") {
        const gone = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
        url = `http://127.0.0.1:${gone.port}`;
        await gone.stop(true);
      } else {
        url = startReceiver({ hang: true }).url;
      }
      const lines: string[] = [];
      const { server, base, stop } = await startTracedServer({ OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_EXPORTER_OTLP_TIMEOUT: "500" }, { logLines: lines });
      const started = performance.now();
      const tasks = await Promise.all([runCalculatorTask(server), runCalculatorTask(server), runCalculatorTask(server)]);
      for (const task of tasks) expect((task.result.data as { status: string; output: string }).output).toContain("391");
      expect(performance.now() - started).toBeLessThan(2000);
      // After a flush (1 s) and the request's failure (refused at once, or the 500 ms timeout): counted.
      await until(
        async () => valueOf(parseExposition(await (await fetch(`${base}/metrics`)).text()), "agentkit_trace_spans_dropped_total") >= 12,
        `the dropped spans counted (${mode})`,
        5000,
      );
      const metrics = parseExposition(await (await fetch(`${base}/metrics`)).text());
      expect(valueOf(metrics, "agentkit_trace_spans_exported_total")).toBe(0);
      expect(valueOf(metrics, "agentkit_trace_export_failures_total")).toBeGreaterThanOrEqual(1);
      // One warning per outage, not one per batch.
      expect(lines.filter((line) => line.includes("could not export spans"))).toHaveLength(1);
      // Stopping does not wait on the collector for long.
      const stopping = performance.now();
      await within(stop(), 5000, "the server to stop");
      expect(performance.now() - stopping).toBeLessThan(3000);
    }
  });

  test("unset: tracing.ts is never loaded and nothing is sent", async () => {
    const receiver = startReceiver();
    // A fresh process (this one has loaded tracing.ts for the other tests): a server without the
    // variable runs a task; the module must not be in the module registry.
    const script = `
      import { loadConfig } from ${JSON.stringify(join(import.meta.dir, "../../src/config/config.ts"))};
      import { startServer } from ${JSON.stringify(join(import.meta.dir, "../../src/server/serve.ts"))};
      import { silentLogger } from ${JSON.stringify(join(import.meta.dir, "../../src/lib/logger.ts"))};
      const config = loadConfig({ env: {}, readFile: false, flags: { port: 0, dataDir: process.argv[2], logLevel: "silent" } });
      const server = await startServer({ config, logger: silentLogger, env: { OTEL_SERVICE_NAME: "x", OTEL_EXPORTER_OTLP_HEADERS: "a=b" } });
      const base = "http://127.0.0.1:" + server.port;
      const task = await (await fetch(base + "/tasks", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input: "What is 17*23?" }) })).json();
      for (;;) { const t = await (await fetch(base + "/tasks/" + task.id)).json(); if (t.status === "completed") break; await Bun.sleep(10); }
      await Bun.sleep(1200);
      const loaded = Object.keys(require.cache).filter((path) => path.includes("telemetry"));
      await server.stop();
      console.log(JSON.stringify({ loaded }));
    `;
    const dataDir = tempDir();
    cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const scriptPath = join(dataDir, "unset.ts");
    await Bun.write(scriptPath, script);
    // The receiver's address in the child's real environment too, under names agentkit does not read.
    const child = Bun.spawn(["bun", scriptPath, dataDir], {
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", OTEL_EXPORTER_OTLP_ENDPOINT_UNUSED: receiver.url },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    expect(err).toBe("");
    expect(code).toBe(0);
    const { loaded } = JSON.parse(out.trim().split("\n").at(-1)!) as { loaded: string[] };
    expect(loaded.some((path) => path.endsWith("telemetry/telemetry.ts"))).toBe(true); // the seam itself is loaded
    expect(loaded.some((path) => path.endsWith("telemetry/tracing.ts"))).toBe(false);
    expect(receiver.received).toHaveLength(0);
  });
});

describe("the exporter", () => {
  test("batches, bounds its queue while an export hangs, and counts what it drops", async () => {
    const requests: { spans: number; release: () => void }[] = [];
    const hangingFetch = (async (_url: string, init: RequestInit) => {
      const body = JSON.parse(String(init.body)) as Received["body"];
      const { promise, resolve } = Promise.withResolvers<Response>();
      requests.push({ spans: body.resourceSpans[0]!.scopeSpans[0]!.spans.length, release: () => resolve(new Response("{}")) });
      return promise;
    }) as unknown as typeof fetch;
    const tracing = createTracing({
      url: "http://collector.invalid/v1/traces",
      resource: { "service.name": "t" },
      logger: silentLogger,
      maxBatch: 4,
      maxQueue: 10,
      flushIntervalMs: 60_000,
      fetch: hangingFetch,
    });
    const tool = (index: number) => tracing.toolCall({ taskId: "t", agent: "a", tool: "calculator", known: true, callId: `c${index}`, startedAt: Date.now(), durationMs: 1 });
    for (let index = 0; index < 4; index++) tool(index); // a full batch goes out at once
    await until(() => requests.length === 1, "the first export");
    expect(requests[0]!.spans).toBe(4);
    for (let index = 0; index < 30; index++) tool(index); // the export hangs: 10 wait, 20 are dropped
    expect(tracing.stats()).toMatchObject({ queued: 10, dropped: 20, exported: 0 });
    requests[0]!.release();
    await until(() => requests.length === 2, "the next batch once the first was answered");
    expect(requests[1]!.spans).toBe(4);
    expect(tracing.stats().exported).toBe(4);
    requests[1]!.release();
    await until(() => requests.length === 3, "the batch after it");
    requests[2]!.release();
    // Two left, less than a batch: they wait for the timer, or for close.
    await Bun.sleep(20);
    expect(requests).toHaveLength(3);
    const closing = tracing.close(1000);
    await until(() => requests.length === 4, "close flushes the rest");
    expect(requests[3]!.spans).toBe(2);
    requests[3]!.release();
    await closing;
    expect(tracing.stats()).toMatchObject({ exported: 14, dropped: 20, queued: 0 });
  });

  test("ids, times and the environment's key=value lists", () => {
    expect(traceIdOf("5471fb3c-151b-4d94-9cdb-80b7921bac51")).toBe("5471fb3c151b4d949cdb80b7921bac51");
    expect(traceIdOf("not-a-uuid")).toMatch(/^[0-9a-f]{32}$/);
    expect(unixNanos(1_700_000_000_123.5)).toBe("1700000000123500000");
    expect(unixNanos(0.5)).toBe("500000");
    expect(parseKeyValues("a=1, b = x%3Dy ,bad,=novalue,c=")).toEqual({ a: "1", b: "x=y", c: "" });
  });
});
