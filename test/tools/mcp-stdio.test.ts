/**
 * MCP tools from a real MCP server process over stdio (fixtures/stdio-server.ts, built with the
 * SDK's McpServer), driven through the engine's tool-execution phase.
 */
import { afterAll, afterEach, beforeAll, describe, expect, spyOn, test } from "bun:test";
import { join } from "node:path";
import { observationText } from "../../src/engine/tool-execution.ts";
import { createMcpManager, McpServerConfig, type McpManager, type McpServerStatus } from "../../src/tools/mcp/index.ts";
import { toolSpec, type Tool } from "../../src/tools/tool.ts";
import { createEventLog } from "./support/event-log.ts";
import { watchProcessErrors } from "./support/process-errors.ts";
import { createRecordingLogger, fixtureEvent } from "./support/recording-logger.ts";
import { runTool } from "./support/run-tool.ts";

const FIXTURE = join(import.meta.dir, "fixtures", "stdio-server.ts");
const FAST_RESTARTS = { initialDelayMs: 50, maxDelayMs: 200 };
/** For tests that restart server processes: room for a slow shared machine (Bun defaults to 5 s). */
const RESTART_TEST_TIMEOUT_MS = 15_000;
const processErrors = watchProcessErrors();

afterEach(() => {
  // Nothing a broken or killed server does may surface as an unhandled rejection or uncaught exception.
  expect(processErrors.errors).toEqual([]);
});
afterAll(() => processErrors.stop());

function stdioServer(name: string, extra: Record<string, unknown> = {}): McpServerConfig {
  return McpServerConfig.parse({ name, command: process.execPath, args: [FIXTURE], timeoutMs: 5_000, ...extra });
}

/** A manager whose logs and status changes a test can wait on. */
function startManager(servers: McpServerConfig[]) {
  const { logger, log } = createRecordingLogger();
  const statuses = createEventLog<McpServerStatus>();
  const manager = createMcpManager({ servers, logger, restartBackoff: FAST_RESTARTS, onStatusChange: statuses.push });
  return { manager, log, statuses, started: manager.start() };
}

function byName(tools: Tool[], name: string): Tool {
  const tool = tools.find((candidate) => candidate.name === name);
  if (!tool) throw new Error(`no tool ${name} in ${tools.map((candidate) => candidate.name).join(", ")}`);
  return tool;
}

describe("MCP over stdio: a healthy server", () => {
  let manager: McpManager;
  let log: ReturnType<typeof startManager>["log"];
  let tools: Tool[];

  beforeAll(async () => {
    const started = startManager([stdioServer("fixture")]);
    ({ manager, log } = started);
    await started.started;
    tools = manager.tools("fixture");
  });
  afterAll(() => manager.close());

  test("lists the server's tools as <server>__<tool>, with the server's JSON Schema for the model", () => {
    expect(tools.map((tool) => tool.name).sort()).toEqual([
      "fixture__add",
      "fixture__big",
      "fixture__chatty",
      "fixture__dotted_name",
      "fixture__echo",
      "fixture__fail",
      "fixture__flood",
      "fixture__hang",
      "fixture__media",
      "fixture__slow",
    ]);
    expect(toolSpec(byName(tools, "fixture__echo"))).toEqual({
      name: "fixture__echo",
      description: "Repeats the text",
      inputSchema: { type: "object", properties: { text: { type: "string", minLength: 1 } }, required: ["text"] },
    });
  });

  test("calls a tool and returns its text", async () => {
    const outcome = await runTool(tools, "fixture__echo", { text: "hello" });
    expect(outcome).toMatchObject({ ok: true, result: "echo: hello" });
    expect(await runTool(tools, "fixture__add", { a: 2, b: 3 })).toMatchObject({ ok: true, result: "5" });
    expect(await runTool(tools, "fixture__dotted_name", {})).toMatchObject({ ok: true, result: "dotted ok" });
  });

  test("an isError result becomes a tool_error observation with the server's message", async () => {
    const outcome = await runTool(tools, "fixture__fail", {});
    expect(outcome.ok).toBe(false);
    expect(observationText(outcome)).toBe("Error (execution_failed): Tool 'fixture__fail' reported an error: the widget is broken");
  });

  test("image, resource and link content become readable text", async () => {
    const outcome = await runTool(tools, "fixture__media", {});
    expect(outcome.ok && outcome.result).toBe(
      [
        "here is a picture",
        "[image (image/png, 68 bytes) not shown]",
        "[resource file:///notes.txt (text/plain)]\nnote body",
        "[resource file:///blob.bin (application/octet-stream): 3 bytes of binary data not shown]",
        "[resource link: more file:///more.txt]",
      ].join("\n"),
    );
  });

  test("arguments that do not match the tool's JSON Schema are rejected before the server sees them", async () => {
    const before = log.entries.length;
    for (const input of [{ text: 42 }, {}, { text: "" }, [1, 2], "not json"]) {
      const outcome = await runTool(tools, "fixture__echo", input);
      expect(outcome.ok).toBe(false);
      if (!outcome.ok) expect(outcome.error.code).toBe("invalid_arguments");
    }
    const missing = await runTool(tools, "fixture__echo", {});
    expect(!missing.ok && missing.error.message).toContain("must have required property 'text'");
    const wrongType = await runTool(tools, "fixture__slow", { ms: 1.5 });
    expect(!wrongType.ok && wrongType.error.message).toContain("must be integer");
    // Rejected in agentkit: no slow call ever started on the server.
    expect(log.entries.slice(before).filter(fixtureEvent("fixture", "slow-started"))).toEqual([]);
  });

  test("cancelling a slow call returns at once and the server sees the cancel", async () => {
    const since = log.entries.length;
    const controller = new AbortController();
    const running = runTool(tools, "fixture__slow", { ms: 60_000 }, { abortSignal: controller.signal });
    await log.waitFor(fixtureEvent("fixture", "slow-started"), { since, what: "the slow call to start" });
    const reason = new Error("task cancelled");
    const cancelledAt = performance.now();
    controller.abort(reason);
    await expect(running).rejects.toBe(reason);
    expect(performance.now() - cancelledAt).toBeLessThan(1_000);
    await log.waitFor(fixtureEvent("fixture", "slow-aborted"), { since, what: "the server to see the cancel" });
    // The connection is still fine afterwards.
    expect(await runTool(tools, "fixture__echo", { text: "still here" })).toMatchObject({ ok: true });
  });

  test("leaves no abort listener behind on the caller's signal", async () => {
    const controller = new AbortController();
    const added = spyOn(controller.signal, "addEventListener");
    const removed = spyOn(controller.signal, "removeEventListener");
    const context = { abortSignal: controller.signal };
    await byName(tools, "fixture__echo").execute({ text: "a" }, context);
    await expect(byName(tools, "fixture__fail").execute({}, context)).rejects.toThrow("the widget is broken");
    await byName(tools, "fixture__slow").execute({ ms: 1 }, context);
    expect(added.mock.calls.length).toBeGreaterThan(0);
    expect(removed.mock.calls.length).toBe(added.mock.calls.length);
  });

  test("a `tools` allowlist exposes only those tools, and warns about names the server lacks", async () => {
    const filtered = startManager([stdioServer("picky", { tools: ["echo", "add", "no_such_tool"] })]);
    try {
      await filtered.started;
      expect(filtered.manager.tools("picky").map((tool) => tool.name).sort()).toEqual(["picky__add", "picky__echo"]);
      expect(filtered.manager.status()[0]!.tools.sort()).toEqual(["picky__add", "picky__echo"]);
      expect(
        filtered.log.entries.some((entry) => entry.message === "MCP server does not offer a tool its config allows" && entry.fields.tool === "no_such_tool"),
      ).toBe(true);
    } finally {
      await filtered.manager.close();
    }
  });

  test("tools() of a server that is not configured throws", () => {
    expect(() => manager.tools("nope")).toThrow("Unknown MCP server 'nope'. Configured servers: fixture");
  });
});

describe("MCP over stdio: failures", () => {
  test("a killed server gives tool_error for the call in flight, then restarts by itself", async () => {
    const { manager, log, statuses, started } = startManager([stdioServer("fixture")]);
    try {
      await started;
      const tools = manager.tools("fixture");
      const firstProcess = manager.status()[0]!.processId!;
      expect(firstProcess).toBeGreaterThan(0);

      const since = log.entries.length;
      const running = runTool(tools, "fixture__slow", { ms: 60_000 });
      await log.waitFor(fixtureEvent("fixture", "slow-started"), { since, what: "the slow call to start" });
      const statusMark = statuses.entries.length;
      process.kill(firstProcess, "SIGKILL");

      const outcome = await running;
      expect(outcome.ok).toBe(false);
      if (!outcome.ok) {
        expect(outcome.error).toEqual({
          code: "execution_failed",
          message: "MCP server 'fixture' closed the connection during 'fixture__slow'; it is being restarted in the background",
          retryable: true,
        });
      }
      const ready = await statuses.waitFor((status) => status.state === "ready", {
        since: statusMark,
        what: "the server to be restarted",
      });
      expect(ready.connections).toBe(2);
      expect(ready.processId).not.toBe(firstProcess);
      expect(log.entries.some((entry) => entry.message === "MCP server connection lost" && entry.fields.reason === "the server process exited")).toBe(true);
      // The same Tool objects work again.
      expect(await runTool(tools, "fixture__echo", { text: "back" })).toMatchObject({ ok: true, result: "echo: back" });
    } finally {
      await manager.close();
    }
  }, RESTART_TEST_TIMEOUT_MS);

  test("a server that floods notifications (20,000 at once) is cut off at 1,000 in a second, the call fails clearly, and the server is restarted", async () => {
    const { manager, log, statuses, started } = startManager([stdioServer("fixture")]);
    try {
      await started;
      const tools = manager.tools("fixture");
      const statusMark = statuses.entries.length;
      const outcome = await runTool(tools, "fixture__flood", {});
      expect(outcome.ok).toBe(false);
      if (!outcome.ok) expect(outcome.error.code).toBe("execution_failed");
      expect(log.entries.some((entry) => entry.message === "MCP server connection lost" && entry.fields.reason === "it sent more than 1000 messages in a second; it was stopped")).toBe(true);
      await statuses.waitFor((status) => status.state === "ready", { since: statusMark, what: "the server to be restarted" });
      expect(await runTool(tools, "fixture__echo", { text: "back" })).toMatchObject({ ok: true, result: "echo: back" });
      // Busy is not a flood: 800 in one second and 800 in the next pass, and the call answers.
      expect(await runTool(tools, "fixture__chatty", {})).toMatchObject({ ok: true, result: "chatted" });
    } finally {
      await manager.close();
    }
  }, RESTART_TEST_TIMEOUT_MS);

  test("a result past the SDK's 10 MiB stdio buffer is said to be that (not 'the server process exited'); the server is restarted", async () => {
    const { manager, log, statuses, started } = startManager([stdioServer("fixture")]);
    try {
      await started;
      const tools = manager.tools("fixture");
      const statusMark = statuses.entries.length;
      const outcome = await runTool(tools, "fixture__big", {});
      expect(outcome.ok).toBe(false);
      const lost = await log.waitFor((entry) => entry.message === "MCP server connection lost", { what: "the connection to be lost" });
      expect(String(lost.fields.reason)).toStartWith("it sent a message larger than the MCP SDK's stdio limit (ReadBuffer exceeded maximum size of 10485760 bytes)");
      await statuses.waitFor((status) => status.state === "ready", { since: statusMark, what: "the server to be restarted" });
    } finally {
      await manager.close();
    }
  }, RESTART_TEST_TIMEOUT_MS);

  test("a server offering more than 512 tools: the first 512 are used, with one warning; the log line names 20 and counts the rest", async () => {
    const { manager, log, started } = startManager([stdioServer("fixture", { env: { FIXTURE_EXTRA_TOOLS: "600" } })]);
    try {
      await started;
      expect(manager.tools("fixture")).toHaveLength(512);
      expect(log.entries.filter((entry) => entry.message.startsWith("MCP server offers ") && entry.message.includes("the first 512 are used"))).toHaveLength(1);
      const connected = log.entries.find((entry) => entry.message === "MCP server connected")!;
      expect(connected.fields.tools).toHaveLength(21);
      expect((connected.fields.tools as string[]).at(-1)).toBe("… 492 more");
    } finally {
      await manager.close();
    }
  });

  test("a hung server times out with tool_error, fails its health check and is restarted", async () => {
    const { manager, statuses, started } = startManager([stdioServer("fixture", { timeoutMs: 500 })]);
    try {
      await started;
      const tools = manager.tools("fixture");
      const statusMark = statuses.entries.length;
      const outcome = await runTool(tools, "fixture__hang", { ms: 20_000 });
      expect(outcome.ok).toBe(false);
      if (!outcome.ok) {
        expect(outcome.error).toEqual({
          code: "timeout",
          message: "MCP server 'fixture' did not answer 'fixture__hang' within 500 ms",
          retryable: true,
        });
      }
      const waiting = await statuses.waitFor((status) => status.state === "waiting_to_restart", {
        since: statusMark,
        what: "the hung server to be given up on",
      });
      expect(waiting.lastError).toContain("failed a health check (ping)");
      await statuses.waitFor((status) => status.state === "ready", { since: statusMark, what: "the restart" });
      expect(await runTool(tools, "fixture__echo", { text: "awake" })).toMatchObject({ ok: true, result: "echo: awake" });
    } finally {
      await manager.close();
    }
  }, RESTART_TEST_TIMEOUT_MS);

  test("servers that fail to start give tool_error, keep retrying, and the others keep serving", async () => {
    const { manager, log, statuses, started } = startManager([
      McpServerConfig.parse({ name: "missing", command: "/nonexistent/agentkit-test-mcp-server", tools: ["echo"] }),
      stdioServer("exits", { env: { FIXTURE_EXIT_AT_START: "1" }, tools: ["echo"] }),
      stdioServer("fixture"),
    ]);
    try {
      await started; // resolves even though two servers failed

      const missing = manager.tools("missing");
      expect(missing.map((tool) => tool.name)).toEqual(["missing__echo"]);
      const missingOutcome = await runTool(missing, "missing__echo", { text: "hi" });
      expect(missingOutcome.ok).toBe(false);
      if (!missingOutcome.ok) {
        expect(missingOutcome.error.code).toBe("execution_failed");
        expect(missingOutcome.error.retryable).toBe(true);
        expect(missingOutcome.error.message).toContain("Tool 'missing__echo' is unavailable: MCP server 'missing' is down");
        expect(missingOutcome.error.message).toContain("ENOENT");
      }

      const exitsOutcome = await runTool(manager.tools("exits"), "exits__echo", { text: "hi" });
      expect(!exitsOutcome.ok && exitsOutcome.error.message).toContain("the server process exited during startup");
      // Its stderr reached the log (not the model): that is where the operator finds the cause.
      expect(
        log.entries.some((entry) => entry.fields.server === "exits" && entry.fields.line === "fixture: missing FIXTURE_API_TOKEN, refusing to start"),
      ).toBe(true);

      expect(await runTool(manager.tools("fixture"), "fixture__echo", { text: "fine" })).toMatchObject({ ok: true });

      // Both broken servers keep being retried in the background.
      for (const name of ["missing", "exits"]) {
        await statuses.waitFor(
          (status) => status.name === name && status.state === "connecting" && statuses.entries.filter((entry) => entry.name === name && entry.state === "connecting").length >= 3,
          { what: `a third start attempt of '${name}'` },
        );
      }
      expect(manager.status().find((status) => status.name === "fixture")).toMatchObject({ state: "ready", connections: 1 });
    } finally {
      await manager.close();
    }
    expect(manager.status().map((status) => status.state)).toEqual(["closed", "closed", "closed"]);
  }, RESTART_TEST_TIMEOUT_MS);

  test("close() stops the server process and later calls fail clearly", async () => {
    const { manager, started } = startManager([stdioServer("fixture")]);
    await started;
    const tools = manager.tools("fixture");
    const processId = manager.status()[0]!.processId!;
    await manager.close();
    expect(() => process.kill(processId, 0)).toThrow();
    const outcome = await runTool(tools, "fixture__echo", { text: "late" });
    expect(!outcome.ok && outcome.error.message).toBe("Tool 'fixture__echo' is unavailable: MCP server 'fixture' is shut down");
  }, RESTART_TEST_TIMEOUT_MS);
});
