/** Which tools are idempotent (run again on resume), and the agent's `on_interrupt` / `idempotent_tools`. */
import { describe, expect, test } from "bun:test";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import { z } from "zod";
import { AgentDefinition } from "../../src/agents/agent.ts";
import { isIdempotentTool } from "../../src/engine/tool-execution.ts";
import { silentLogger } from "../../src/lib/logger.ts";
import { createHttpFetchTool } from "../../src/tools/http-fetch.ts";
import { createMcpTool } from "../../src/tools/mcp/mcp-tool.ts";
import { buildToolListing, placeholderTools } from "../../src/tools/mcp/mcp-tool-listing.ts";
import type { McpServerSupervisor } from "../../src/tools/mcp/mcp-server-supervisor.ts";
import { builtinTools } from "../../src/tools/registry.ts";
import { defineTool, type Tool } from "../../src/tools/tool.ts";

describe("idempotent tools", () => {
  test("built-ins: calculator, current_time and http_fetch (GET only) are idempotent; defineTool passes the flag through", () => {
    const builtins = builtinTools();
    expect(builtins.get("calculator")!.idempotent).toBe(true);
    expect(builtins.get("current_time")!.idempotent).toBe(true);
    expect(createHttpFetchTool({ allowHosts: ["example.com"] }).idempotent).toBe(true);
    const plain = defineTool({ name: "p", description: "", inputSchema: z.object({}), execute: async () => 1 });
    const flagged = defineTool({ name: "f", description: "", idempotent: true, inputSchema: z.object({}), execute: async () => 1 });
    expect(plain.idempotent).toBeUndefined();
    expect(flagged.idempotent).toBe(true);
    const tools = new Map<string, Tool>([["p", plain], ["f", flagged]]);
    expect(isIdempotentTool("p", tools)).toBe(false);
    expect(isIdempotentTool("f", tools)).toBe(true);
    expect(isIdempotentTool("p", tools, ["p"])).toBe(true); // the agent's idempotent_tools
    expect(isIdempotentTool("gone", tools)).toBe(false);
  });

  test("MCP tools take idempotentHint, and readOnlyHint implies idempotent", async () => {
    const schema = { type: "object" as const, properties: {} };
    const listing = await buildToolListing(
      "srv",
      [
        { name: "read", inputSchema: schema, annotations: { readOnlyHint: true } },
        { name: "put", inputSchema: schema, annotations: { idempotentHint: true, readOnlyHint: false } },
        { name: "send", inputSchema: schema, annotations: { idempotentHint: false, destructiveHint: true } },
        { name: "bare", inputSchema: schema },
      ],
      { allowlist: undefined, validator: new AjvJsonSchemaValidator(), logger: silentLogger },
    );
    expect(Object.fromEntries([...listing.values()].map((tool) => [tool.name, tool.idempotent]))).toEqual({
      srv__read: true,
      srv__put: true,
      srv__send: false,
      srv__bare: false,
    });
    expect(placeholderTools("srv", ["x"]).map((tool) => tool.idempotent)).toEqual([false]);
    const supervisor = { argumentsCheck: () => undefined, call: async () => null } as unknown as McpServerSupervisor;
    expect(createMcpTool(supervisor, listing.get("read")!).idempotent).toBe(true);
    expect(createMcpTool(supervisor, listing.get("bare")!).idempotent).toBe(false);
  });
});

describe("agent: on_interrupt and idempotent_tools", () => {
  test("defaults: resume, no extra idempotent tools", () => {
    const agent = AgentDefinition.parse({ name: "a" });
    expect(agent.on_interrupt).toBe("resume");
    expect(agent.idempotent_tools).toEqual([]);
    expect(AgentDefinition.parse({ name: "a", on_interrupt: "fail" }).on_interrupt).toBe("fail");
  });

  test("validated, and the schema stays strict", () => {
    expect(AgentDefinition.safeParse({ name: "a", on_interrupt: "retry" }).success).toBe(false);
    expect(AgentDefinition.safeParse({ name: "a", onInterrupt: "fail" }).success).toBe(false);
    const ok = AgentDefinition.safeParse({ name: "a", tools: ["calculator", "mcp:files", "search__query"], idempotent_tools: ["files__read", "search__query"] });
    expect(ok.success).toBe(true);
    const bad = AgentDefinition.safeParse({ name: "a", tools: ["calculator"], idempotent_tools: ["calculator", "files__read"] });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues).toMatchObject([{ path: ["idempotent_tools", 1], message: "'files__read' is not one of the agent's tools" }]);
  });
});
