/**
 * MCP tools from a real MCP server over Streamable HTTP on 127.0.0.1 (fixtures/http-server.ts, the
 * SDK's McpServer behind its web-standard transport), driven through the engine's tool-execution phase.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { createMcpManager, McpServerConfig, type McpServerStatus } from "../../src/tools/mcp/index.ts";
import { FIXTURE_TOKEN, startHttpFixtureServer, type HttpFixtureServer } from "./fixtures/http-server.ts";
import { createEventLog } from "./support/event-log.ts";
import { watchProcessErrors } from "./support/process-errors.ts";
import { createRecordingLogger } from "./support/recording-logger.ts";
import { runTool } from "./support/run-tool.ts";

const processErrors = watchProcessErrors();
afterEach(() => expect(processErrors.errors).toEqual([]));
afterAll(() => processErrors.stop());

const fixtures: HttpFixtureServer[] = [];
afterAll(async () => {
  await Promise.all(fixtures.map((fixture) => fixture.stop()));
});

function startFixture(port?: number): HttpFixtureServer {
  const fixture = startHttpFixtureServer({ port });
  fixtures.push(fixture);
  return fixture;
}

function startManager(servers: McpServerConfig[]) {
  const { logger, log } = createRecordingLogger();
  const statuses = createEventLog<McpServerStatus>();
  const manager = createMcpManager({
    servers,
    logger,
    restartBackoff: { initialDelayMs: 50, maxDelayMs: 200 },
    onStatusChange: statuses.push,
  });
  return { manager, log, statuses, started: manager.start() };
}

function remote(url: string, extra: Record<string, unknown> = {}): McpServerConfig {
  return McpServerConfig.parse({ name: "remote", url, headers: { authorization: `Bearer ${FIXTURE_TOKEN}` }, timeoutMs: 3_000, ...extra });
}

describe("MCP over Streamable HTTP", () => {
  test("lists and calls tools, sending the configured headers", async () => {
    const fixture = startFixture();
    const { manager, started } = startManager([remote(fixture.url)]);
    try {
      await started;
      const tools = manager.tools("remote");
      expect(tools.map((tool) => tool.name)).toContain("remote__echo");
      expect(await runTool(tools, "remote__echo", { text: "over http" })).toMatchObject({ ok: true, result: "echo: over http" });
      expect(await runTool(tools, "remote__add", { a: 1, b: 2 })).toMatchObject({ ok: true, result: "3" });
      const failed = await runTool(tools, "remote__fail", {});
      expect(!failed.ok && failed.error.message).toBe("Tool 'remote__fail' reported an error: the widget is broken");
    } finally {
      await manager.close();
    }
  });

  test("without the server's bearer token it fails to start, and its allowlisted tools give tool_error", async () => {
    const fixture = startFixture();
    const { manager, started } = startManager([remote(fixture.url, { headers: undefined, tools: ["echo"] })]);
    try {
      await started;
      const outcome = await runTool(manager.tools("remote"), "remote__echo", { text: "hi" });
      expect(outcome.ok).toBe(false);
      if (!outcome.ok) {
        expect(outcome.error.message).toContain("MCP server 'remote' is down");
        expect(outcome.error.message).toContain("401");
      }
    } finally {
      await manager.close();
    }
  });

  test("cancelling a slow call returns at once and the server sees the cancel", async () => {
    const fixture = startFixture();
    const { manager, started } = startManager([remote(fixture.url)]);
    try {
      await started;
      const controller = new AbortController();
      const slowStarted = fixture.next("slow-started");
      const slowAborted = fixture.next("slow-aborted");
      const running = runTool(manager.tools("remote"), "remote__slow", { ms: 60_000 }, { abortSignal: controller.signal });
      await slowStarted;
      const reason = new Error("task cancelled");
      controller.abort(reason);
      await expect(running).rejects.toBe(reason);
      await slowAborted;
      expect(fixture.events).not.toContain("slow-finished");
    } finally {
      await manager.close();
    }
  });

  test("a server that goes away gives tool_error, and is reconnected once it is back", async () => {
    let fixture = startFixture();
    const port = fixture.port;
    const { manager, statuses, started } = startManager([remote(fixture.url)]);
    try {
      await started;
      const tools = manager.tools("remote");
      expect(await runTool(tools, "remote__echo", { text: "before" })).toMatchObject({ ok: true });

      const statusMark = statuses.entries.length;
      await fixture.stop();
      const down = await runTool(tools, "remote__echo", { text: "during" });
      expect(down.ok).toBe(false);
      if (!down.ok) {
        expect(down.error.code).toBe("execution_failed");
        expect(down.error.message).toContain("Calling 'remote__echo' on MCP server 'remote' failed");
      }
      // The failed call triggers a health check; the failed ping starts the reconnect loop.
      await statuses.waitFor((status) => status.state === "waiting_to_restart", { since: statusMark, what: "the connection to be dropped" });

      // Back on the same port, with none of the old sessions: the manager reconnects with a new one.
      fixture = startFixture(port);
      const ready = await statuses.waitFor((status) => status.state === "ready", { since: statusMark, what: "the reconnect" });
      expect(ready.connections).toBe(2);
      expect(await runTool(tools, "remote__echo", { text: "after" })).toMatchObject({ ok: true, result: "echo: after" });
    } finally {
      await manager.close();
    }
  }, 15_000);

  test("a server that forgot the session (restarted between calls) gets a new one at once: the call succeeds", async () => {
    let fixture = startFixture();
    const port = fixture.port;
    const { manager, statuses, started } = startManager([remote(fixture.url)]);
    try {
      await started;
      const tools = manager.tools("remote");
      expect(await runTool(tools, "remote__echo", { text: "before" })).toMatchObject({ ok: true });
      // Gone and back before the next call: the old session id now gets 404 "Session not found".
      await fixture.stop();
      fixture = startFixture(port);
      expect(await runTool(tools, "remote__echo", { text: "after" })).toMatchObject({ ok: true, result: "echo: after" });
      expect(await runTool(tools, "remote__echo", { text: "again" })).toMatchObject({ ok: true, result: "echo: again" });
      expect(statuses.entries.some((status) => status.state === "waiting_to_restart")).toBe(false);
      expect(manager.status()[0]).toMatchObject({ state: "ready", connections: 2 });
    } finally {
      await manager.close();
    }
  }, 15_000);
});
