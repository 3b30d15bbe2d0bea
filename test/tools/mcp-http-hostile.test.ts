/**
 * MCP over Streamable HTTP against servers that misbehave on purpose (fixtures/hostile-http-server.ts):
 * what one message may hold, and that a response agentkit gave up on is closed.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { createMcpManager, McpServerConfig } from "../../src/tools/mcp/index.ts";
import { MAX_HTTP_MESSAGE_BYTES } from "../../src/tools/mcp/mcp-http-fetch.ts";
import { startStallProbe } from "../helpers/stall-probe.ts";
import { startHostileHttpServer, type CallHandler, type HostileHttpServer, type ToolsHandler } from "./fixtures/hostile-http-server.ts";
import { watchProcessErrors } from "./support/process-errors.ts";
import { createRecordingLogger } from "./support/recording-logger.ts";
import { runTool } from "./support/run-tool.ts";

const processErrors = watchProcessErrors();
afterEach(() => expect(processErrors.errors).toEqual([]));
afterAll(() => processErrors.stop());

const servers: HostileHttpServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((server) => server.stop()));
});

const encoder = new TextEncoder();
const MIB = encoder.encode("x".repeat(1024 * 1024));

type Context = { server: HostileHttpServer; call(): ReturnType<typeof runTool>; log: ReturnType<typeof createRecordingLogger>["log"]; manager: ReturnType<typeof createMcpManager> };

async function withServer(onCall: CallHandler, run: (context: Context) => Promise<void>, timeoutMs = 10_000, tools?: ToolsHandler, sessionId?: string) {
  const server = startHostileHttpServer({ onCall, tools, sessionId });
  servers.push(server);
  const { logger, log } = createRecordingLogger();
  const manager = createMcpManager({
    servers: [McpServerConfig.parse({ name: "hostile", url: server.url, timeoutMs })],
    logger,
    restartBackoff: { initialDelayMs: 50, maxDelayMs: 200 },
  });
  try {
    await manager.start();
    await run({ server, log, manager, call: () => runTool(manager.tools("hostile"), "hostile__probe", {}) });
  } finally {
    await manager.close();
  }
}

async function waitUntilReady(manager: ReturnType<typeof createMcpManager>): Promise<void> {
  while (manager.status()[0]?.state !== "ready") await Bun.sleep(10);
}

/** A body's pull: `prefix`, then a MiB at a time for ever (`onMib` told of each). */
function endlessAfter(prefix: string, onMib: () => void = () => {}) {
  let first = true;
  return (controller: ReadableStreamDefaultController<Uint8Array>) => {
    if (first) {
      first = false;
      controller.enqueue(encoder.encode(prefix));
      return;
    }
    onMib();
    controller.enqueue(MIB);
  };
}

describe("MCP over Streamable HTTP: hostile servers", () => {
  test("a JSON body that never ends is cut at the message limit: the call fails at once and the body is not read further", async () => {
    let callId: string | number | undefined;
    let sent = 0;
    await withServer(
      (id, stream) => {
        callId = id;
        return stream(
          endlessAfter(`{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"content":[{"type":"text","text":"`, () => (sent += MIB.length)),
          "application/json",
        );
      },
      async ({ server, call, log }) => {
        const started = performance.now();
        const outcome = await call();
        expect(outcome.ok).toBe(false);
        if (!outcome.ok) expect(outcome.error.message).toContain("larger than 10 MiB");
        expect(performance.now() - started).toBeLessThan(5_000); // not the 10 s timeout
        await server.cancelOf(callId!);
        // Loopback socket buffers take some megabytes more; nothing is sent once the body is cancelled.
        const atCancel = sent;
        expect(atCancel).toBeLessThan(4 * MAX_HTTP_MESSAGE_BYTES);
        await Bun.sleep(200);
        expect(sent).toBe(atCancel);
        expect(log.entries.some((entry) => entry.level === "warn" && entry.message.includes("over the size limit"))).toBe(true);
      },
    );
  }, 20_000);

  test("one SSE event that never ends is cut at the message limit: the call fails at once with what happened", async () => {
    let callId: string | number | undefined;
    await withServer(
      (id, stream) => {
        callId = id;
        return stream(endlessAfter(`data: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"`), "text/event-stream");
      },
      async ({ server, call }) => {
        const started = performance.now();
        const outcome = await call();
        expect(outcome.ok).toBe(false);
        if (!outcome.ok) expect(outcome.error.message).toBe(
          "MCP server 'hostile' answered 'hostile__probe' with more than agentkit reads: the server sent a message larger than 10 MiB (agentkit's limit for one MCP message); the rest was not read",
        );
        expect(performance.now() - started).toBeLessThan(5_000);
        await server.cancelOf(callId!);
      },
    );
  }, 20_000);

  test("events split by CRLF count as one event; many small events pass", async () => {
    // 12 events of 1 MiB each (CRLF line ends): each is under the limit, so the result arrives.
    await withServer(
      (id, stream) => {
        let sent = 0;
        return stream((controller) => {
          if (sent++ < 12) {
            controller.enqueue(encoder.encode(`: ${"c".repeat(1024 * 1024)}\r\n\r\n`));
            return;
          }
          controller.enqueue(encoder.encode(`data: ${JSON.stringify({ jsonrpc: "2.0", id, result: { content: [{ type: "text", text: "made it" }] } })}\r\n\r\n`));
          controller.close();
        }, "text/event-stream");
      },
      async ({ call }) => {
        expect(await call()).toMatchObject({ ok: true, result: "made it" });
      },
    );
    // One event of 12 lines of 1 MiB each, CRLF between them: over the limit.
    await withServer(
      (_id, stream) => {
        let sent = 0;
        return stream((controller) => {
          if (sent++ < 12) controller.enqueue(encoder.encode(`: ${"c".repeat(1024 * 1024)}\r\n`));
          else controller.enqueue(encoder.encode("\r\n"));
        }, "text/event-stream");
      },
      async ({ call }) => {
        const outcome = await call();
        expect(!outcome.ok && outcome.error.message).toContain("larger than 10 MiB");
      },
    );
  }, 20_000);

  for (const status of [500, 300]) {
    test(`an error status's body is cut: a 20 MiB ${status} gives a short error`, async () => {
      await withServer(
        () => new Response("e".repeat(20 * 1024 * 1024), { status }),
        async ({ call }) => {
          const outcome = await call();
          expect(outcome.ok).toBe(false);
          if (!outcome.ok) {
            expect(outcome.error.message).toContain(`HTTP ${status}`);
            expect(outcome.error.message.length).toBeLessThan(1_300);
          }
        },
      );
    }, 20_000);
  }

  // A 404 to a request with a session id: the server forgot the session — one new session and one
  // retry, then the call fails (no loop). From a server that gave no session id: a failed call.
  for (const [sessionId, calls, renewals] of [["session-1", 2, 1], [undefined, 1, 0]] as const) {
    test(`a server that answers 404 to every call, ${sessionId ? "with its session id: one new session and one retry, no loop" : "having given no session id: no session to renew"}`, async () => {
      let seen = 0;
      await withServer(
        () => (seen++, new Response("Session not found", { status: 404 })),
        async ({ call, log }) => {
          expect((await call()).ok).toBe(false);
          expect(seen).toBe(calls);
          expect(log.entries.filter((entry) => entry.message.startsWith("MCP server session expired"))).toHaveLength(renewals);
        },
        10_000,
        undefined,
        sessionId,
      );
    }, 20_000);
  }

  test("a call that timed out has its response stream closed (a server dripping notifications is not read on and on)", async () => {
    let callId: string | number | undefined;
    await withServer(
      (id, stream) => {
        callId = id;
        let n = 0;
        return stream(async (controller) => {
          await Bun.sleep(50);
          controller.enqueue(encoder.encode(`data: ${JSON.stringify({ jsonrpc: "2.0", method: "notifications/message", params: { level: "info", data: `drip ${n++}` } })}\n\n`));
        }, "text/event-stream");
      },
      async ({ server, call }) => {
        const outcome = await call();
        expect(!outcome.ok && outcome.error.code).toBe("timeout");
        await Promise.race([server.cancelOf(callId!), Bun.sleep(2_000).then(() => Promise.reject(new Error("the stream was left open")))]);
      },
      500,
    );
  }, 20_000);

  test("a call cancelled by the task has its response (a body arriving slowly) closed", async () => {
    let callId: string | number | undefined;
    const server = startHostileHttpServer({
      onCall: (id, stream) => {
        callId = id;
        return stream(async (controller) => {
          await Bun.sleep(50);
          controller.enqueue(encoder.encode(" "));
        }, "application/json");
      },
    });
    servers.push(server);
    const { logger } = createRecordingLogger();
    const manager = createMcpManager({ servers: [McpServerConfig.parse({ name: "hostile", url: server.url, timeoutMs: 30_000 })], logger });
    try {
      await manager.start();
      const controller = new AbortController();
      const running = runTool(manager.tools("hostile"), "hostile__probe", {}, { abortSignal: controller.signal });
      await Bun.sleep(200);
      const reason = new Error("task cancelled");
      controller.abort(reason);
      await expect(running).rejects.toBe(reason);
      await Promise.race([server.cancelOf(callId!), Bun.sleep(2_000).then(() => Promise.reject(new Error("the body was left open")))]);
    } finally {
      await manager.close();
    }
  }, 20_000);

  test("a tool whose input schema is nested 100,000 deep or holds 5 MB is left out with a warning; the server's other tools are used", async () => {
    const MAX_TOOL_SCHEMA_DEPTH = 64; // mcp-tool-listing.ts
    const nested = (depth: number) => '{"type":"object","properties":{"a":'.repeat(depth) + '{"type":"string"}' + "}}".repeat(depth);
    const big: Record<string, unknown> = {};
    for (let index = 0; index < 50_000; index++) big[`p${index}`] = { type: "string", description: "x".repeat(80) };
    const listing =
      `{"jsonrpc":"2.0","id":$ID,"result":{"tools":[` +
      `{"name":"deep","inputSchema":{"type":"object","properties":{"deep":${nested(100_000)}}}},` +
      `{"name":"big","inputSchema":${JSON.stringify({ type: "object", properties: big })}},` +
      `{"name":"nested_ok","inputSchema":{"type":"object","properties":{"a":${nested(MAX_TOOL_SCHEMA_DEPTH / 2 - 2)}}}},` +
      `{"name":"probe","inputSchema":{"type":"object"}}]}}`;
    await withServer(
      (id) => Response.json({ jsonrpc: "2.0", id, result: { content: [{ type: "text", text: "fine" }] } }),
      async ({ manager, call, log }) => {
        const tools = manager.tools("hostile");
        expect(tools.map((tool) => tool.name).sort()).toEqual(["hostile__nested_ok", "hostile__probe"]);
        // What the engine does with every tool of an agent on every model request.
        expect(() => JSON.stringify(tools.map((tool) => tool.jsonSchema))).not.toThrow();
        expect(await call()).toMatchObject({ ok: true, result: "fine" });
        const warnings = log.entries.filter((entry) => entry.level === "warn" && entry.message.startsWith("MCP tools left out"));
        expect(warnings.map((entry) => [entry.message, entry.fields.tools])).toEqual([
          ["MCP tools left out: 2", [`deep: its input schema is nested more than ${MAX_TOOL_SCHEMA_DEPTH} levels deep`, "big: its input schema is larger than 65536 characters"]],
        ]);
      },
      10_000,
      () => listing,
    );
  }, 20_000);

  test("a tool whose output schema is nested 100,000 deep or holds 2.5 MB is left out too (the SDK compiles it on the event loop at the first call)", async () => {
    const nested = (depth: number) => '{"type":"object","properties":{"a":'.repeat(depth) + '{"type":"string"}' + "}}".repeat(depth);
    const big: Record<string, unknown> = {};
    for (let index = 0; index < 40_000; index++) big[`p${index}`] = { type: "string", pattern: `^x${index}$` };
    const listing =
      `{"jsonrpc":"2.0","id":$ID,"result":{"tools":[` +
      `{"name":"deep_out","inputSchema":{"type":"object"},"outputSchema":{"type":"object","properties":{"deep":${nested(100_000)}}}},` +
      `{"name":"big_out","inputSchema":{"type":"object"},"outputSchema":${JSON.stringify({ type: "object", properties: big })}},` +
      `{"name":"shaped","inputSchema":{"type":"object"},"outputSchema":{"type":"object","properties":{"r":{"type":"number"}}}},` +
      `{"name":"probe","inputSchema":{"type":"object"}}]}}`;
    await withServer(
      (id) => Response.json({ jsonrpc: "2.0", id, result: { content: [{ type: "text", text: "fine" }], structuredContent: { r: 1 } } }),
      async ({ manager, log }) => {
        expect(manager.tools("hostile").map((tool) => tool.name).sort()).toEqual(["hostile__probe", "hostile__shaped"]);
        expect(await runTool(manager.tools("hostile"), "hostile__shaped", {})).toMatchObject({ ok: true });
        const warnings = log.entries.filter((entry) => entry.level === "warn" && entry.message.startsWith("MCP tools left out"));
        expect(warnings.map((entry) => [entry.message, entry.fields.tools])).toEqual([
          ["MCP tools left out: 2", ["deep_out: its output schema is nested more than 64 levels deep", "big_out: its output schema is larger than 65536 characters"]],
        ]);
      },
      10_000,
      () => listing,
    );
  }, 20_000);

  test("a tool whose output schema cannot be compiled fails only its own calls, not the server's listing", async () => {
    // The SDK compiles every listed tool's output schema as the list arrives; one it cannot compile
    // (an unresolvable $ref) made tools/list, and so the whole server, fail to start.
    const tools = () => [
      { name: "probe", inputSchema: { type: "object" } },
      { name: "shaped", inputSchema: { type: "object" }, outputSchema: { type: "object", properties: { r: { $ref: "#/nowhere" } } } },
    ];
    await withServer(
      (id) => Response.json({ jsonrpc: "2.0", id, result: { content: [{ type: "text", text: "fine" }], structuredContent: { r: 1 } } }),
      async ({ manager, call }) => {
        expect(manager.tools("hostile").map((tool) => tool.name).sort()).toEqual(["hostile__probe", "hostile__shaped"]);
        expect(await call()).toMatchObject({ ok: true, result: "fine" });
        const shaped = await runTool(manager.tools("hostile"), "hostile__shaped", {});
        expect(!shaped.ok && shaped.error.message).toContain("Failed to validate structured content");
      },
      10_000,
      tools,
    );
  }, 20_000);

  test("a tool's changed input schema is the one checked after tools/list_changed, even when it keeps its $id", async () => {
    let version = 1;
    const tools = () => [
      {
        name: "probe",
        inputSchema: { $id: "urn:hostile:probe", type: "object", properties: { n: version === 1 ? { type: "string" } : { type: "number" } }, required: ["n"] },
      },
    ];
    await withServer(
      (id) => Response.json({ jsonrpc: "2.0", id, result: { content: [{ type: "text", text: "fine" }] } }),
      async ({ server, manager, log }) => {
        expect(await runTool(manager.tools("hostile"), "hostile__probe", { n: "one" })).toMatchObject({ ok: true });
        version = 2;
        const mark = log.entries.length;
        await server.notify("notifications/tools/list_changed");
        await log.waitFor((entry) => entry.message === "MCP server tools changed" || entry.message === "MCP tool list refresh failed", { since: mark, what: "the refresh" });
        expect(await runTool(manager.tools("hostile"), "hostile__probe", { n: 2 })).toMatchObject({ ok: true, result: "fine" });
        const stale = await runTool(manager.tools("hostile"), "hostile__probe", { n: "two" });
        expect(!stale.ok && stale.error.message).toContain("must be number");
      },
      10_000,
      tools,
    );
  }, 20_000);

  test("listing 10,000 tools with output schemas does not compile them all: the event loop is held far less than a second", async () => {
    const listing = JSON.stringify({
      jsonrpc: "2.0",
      id: 0,
      result: {
        tools: Array.from({ length: 10_000 }, (_, index) => ({
          name: `t${index}`,
          inputSchema: { type: "object", properties: { a: { type: "string" } } },
          outputSchema: { type: "object", properties: { r: { type: "string", minLength: index } } },
        })),
      },
    }).replace('"id":0', '"id":$ID');
    const server = startHostileHttpServer({ onCall: (id) => Response.json({ jsonrpc: "2.0", id, result: { content: [] } }), tools: () => listing });
    servers.push(server);
    const { logger } = createRecordingLogger();
    const manager = createMcpManager({ servers: [McpServerConfig.parse({ name: "hostile", url: server.url })], logger });
    const probe = startStallProbe();
    try {
      const { stallMs } = await probe.measure(() => manager.start());
      expect(manager.tools("hostile")).toHaveLength(512);
      // Before: ~3 s here (the SDK compiled all 10,000 output schemas as the list arrived).
      expect(stallMs).toBeLessThan(600);
    } finally {
      probe.stop();
      await manager.close();
    }
  }, 20_000);

  test("a flood of notifications on a call's SSE stream is cut by the flood guard without holding the event loop", async () => {
    // 100,000 notifications at once: the SDK parses every event of what it is handed in one go.
    let batch = "";
    for (let index = 0; index < 100_000; index++) batch += `data: ${JSON.stringify({ jsonrpc: "2.0", method: "notifications/message", params: { level: "info", data: `n${index}` } })}\n\n`;
    const flood = encoder.encode(batch);
    const probe = startStallProbe();
    const stalls: number[] = [];
    try {
      await withServer(
        (_id, stream) => {
          let sent = false;
          return stream((controller) => {
            if (!sent) controller.enqueue(flood);
            sent = true;
          }, "text/event-stream");
        },
        async ({ call, manager }) => {
          for (let round = 0; round < 3; round++) {
            if (round > 0) await waitUntilReady(manager);
            const { value: outcome, stallMs } = await probe.measure(() => call());
            expect(!outcome.ok && outcome.error.message).toContain("closed the connection");
            stalls.push(stallMs);
          }
        },
      );
      // Before: a median of 45–64 ms here (each chunk the socket gave parsed in one turn, past the
      // guard's cut); 19–30 ms after.
      expect(stalls.sort((a, b) => a - b)[1]!).toBeLessThan(40);
    } finally {
      probe.stop();
    }
  }, 20_000);

  test("a tool list paged on and on is read only until it has more than 512 tools", async () => {
    const pages: (string | undefined)[] = [];
    const description = "d".repeat(100);
    const tools: ToolsHandler = (cursor) => {
      pages.push(cursor);
      const page = Number(cursor ?? 0);
      return { tools: Array.from({ length: 300 }, (_, index) => ({ name: `p${page}_${index}`, description, inputSchema: { type: "object" } })), nextCursor: String(page + 1) };
    };
    await withServer(
      (id) => Response.json({ jsonrpc: "2.0", id, result: { content: [] } }),
      async ({ manager, log }) => {
        expect(manager.tools("hostile")).toHaveLength(512);
        // Before: all 100 pages (MAX_TOOL_LIST_PAGES), 30,000 tools, to keep 512.
        expect(pages).toEqual([undefined, "1"]);
        expect(log.entries.filter((entry) => entry.level === "warn" && entry.message.startsWith("MCP server offers more than 512 tools (600 read)"))).toHaveLength(1);
      },
      10_000,
      tools,
    );
  }, 20_000);

  test("with an allowlist, paging counts only the allowed tools: one on the third page of 300 is found", async () => {
    const tools: ToolsHandler = (cursor) => {
      const page = Number(cursor ?? 0);
      return { tools: Array.from({ length: 300 }, (_, index) => ({ name: `p${page}_${index}`, inputSchema: { type: "object" } })), ...(page < 2 ? { nextCursor: String(page + 1) } : {}) };
    };
    const server = startHostileHttpServer({ onCall: (id) => Response.json({ jsonrpc: "2.0", id, result: { content: [] } }), tools });
    servers.push(server);
    const { logger } = createRecordingLogger();
    const manager = createMcpManager({ servers: [McpServerConfig.parse({ name: "hostile", url: server.url, tools: ["p0_1", "p2_5"] })], logger });
    try {
      await manager.start();
      expect(manager.tools("hostile").map((tool) => tool.name).sort()).toEqual(["hostile__p0_1", "hostile__p2_5"]);
    } finally {
      await manager.close();
    }
  }, 20_000);

  test("a tool description of 5 MB is cut to 8,192 characters, with a warning", async () => {
    await withServer(
      (id) => Response.json({ jsonrpc: "2.0", id, result: { content: [] } }),
      async ({ manager, log }) => {
        const [tool] = manager.tools("hostile");
        expect(tool!.description).toHaveLength(8_192);
        expect(tool!.description.endsWith("D…")).toBe(true);
        expect(log.entries.filter((entry) => entry.level === "warn" && entry.message === "MCP tool description cut to 8192 characters")).toHaveLength(1);
      },
      10_000,
      () => [{ name: "probe", description: "D".repeat(5 * 1024 * 1024), inputSchema: { type: "object" } }],
    );
  }, 20_000);

  test("past 1 MiB of a server's schemas and descriptions, its further tools are left out, in one warning", async () => {
    // 512 tools of ~60 KB schemas each (paged: one page must stay under 10 MiB) — 30 MB the model
    // would be sent on every step.
    const tools: ToolsHandler = (cursor) => {
      const page = Number(cursor ?? 0);
      return {
        tools: Array.from({ length: 32 }, (_, index) => {
          const properties: Record<string, unknown> = {};
          for (let prop = 0; prop < 420; prop++) properties[`p${prop}_${page}_${index}_${"q".repeat(40)}`] = { type: "string", description: "z".repeat(50) };
          return { name: `t${page}_${index}`, inputSchema: { type: "object", properties } };
        }),
        ...(page < 15 ? { nextCursor: String(page + 1) } : {}),
      };
    };
    await withServer(
      (id) => Response.json({ jsonrpc: "2.0", id, result: { content: [] } }),
      async ({ manager, log }) => {
        const listed = manager.tools("hostile");
        expect(listed.length).toBeGreaterThan(0);
        expect(listed.length).toBeLessThan(20);
        expect(JSON.stringify(listed.map((tool) => [tool.description, tool.jsonSchema])).length).toBeLessThan(1024 * 1024 + 10_000);
        const warnings = log.entries.filter((entry) => entry.level === "warn" && entry.message.startsWith("MCP tools left out"));
        expect(warnings).toHaveLength(1);
        expect(warnings[0]!.message).toBe(`MCP tools left out: ${512 - listed.length}`);
        expect(warnings[0]!.fields.tools as string[]).toHaveLength(10);
      },
      10_000,
      tools,
    );
  }, 30_000);

  test("descriptions count in the 1 MiB too: 200 tools of 8,000-character descriptions and tiny schemas are cut at the budget", async () => {
    const tools = () => Array.from({ length: 200 }, (_, index) => ({ name: `t${index}`, description: `${index}`.padEnd(8_000, "d"), inputSchema: { type: "object" } }));
    await withServer(
      (id) => Response.json({ jsonrpc: "2.0", id, result: { content: [] } }),
      async ({ manager }) => {
        const listed = manager.tools("hostile");
        const chars = listed.reduce((sum, tool) => sum + tool.description.length + JSON.stringify(tool.jsonSchema).length, 0);
        expect(chars).toBeLessThanOrEqual(1024 * 1024);
        expect(listed.length).toBe(Math.floor((1024 * 1024) / (8_000 + JSON.stringify({ type: "object" }).length)));
      },
      10_000,
      tools,
    );
  }, 20_000);

  test("compiling a listing of 1 MiB of distinct schemas gives the event loop turns", async () => {
    // Tools of 1,000 required properties (~36 KB) each, every one different: Ajv takes ~50 ms for one.
    let listing = 0;
    const tools = () =>
      Array.from({ length: 40 }, (_, index) => {
        const properties: Record<string, unknown> = {};
        // A new version at each listing: nothing compiled before can be reused.
        for (let prop = 0; prop < 1_000; prop++) properties[`p${prop}_${index}_${listing}`] = { type: "string" };
        if (index === 39) listing++;
        return { name: `t${index}`, inputSchema: { type: "object", properties, required: Object.keys(properties) } };
      });
    const probe = startStallProbe();
    try {
      await withServer(
        (id) => Response.json({ jsonrpc: "2.0", id, result: { content: [] } }),
        async ({ manager, server, log }) => {
          expect(manager.tools("hostile").length).toBeGreaterThan(20);
          const mark = log.entries.length;
          const { stallMs } = await probe.measure(async () => {
            await server.notify("notifications/tools/list_changed");
            await log.waitFor((entry) => entry.message === "MCP server tools changed", { since: mark, timeoutMs: 25_000, what: "the refresh" });
          });
          // Before: the whole listing in one turn of the loop (seconds); now one schema at most.
          expect(stallMs).toBeLessThan(400);
        },
        20_000,
        tools,
      );
    } finally {
      probe.stop();
    }
  }, 60_000);
});
