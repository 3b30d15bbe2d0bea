/** Per-agent model settings in the agent schema: ranges, tool_choice naming a tool, output_schema compiled at start-up. */
import { afterEach, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AgentDefinition, modelSettingsOf } from "../../src/agents/agent.ts";
import { loadConfig } from "../../src/config/config.ts";
import { tempDir } from "../helpers/server.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** The first issue of parsing `agent`, as `path: message`. */
function firstIssue(agent: Record<string, unknown>): string {
  const parsed = AgentDefinition.safeParse({ name: "a", ...agent });
  if (parsed.success) throw new Error("expected the agent to be refused");
  const issue = parsed.error.issues[0]!;
  return `${issue.path.join(".")}: ${issue.message}`;
}

test("every setting parses; output_retries defaults to 2; modelSettingsOf maps to ModelRequest fields", () => {
  const agent = AgentDefinition.parse({
    name: "tuned",
    temperature: 0.7,
    top_p: 0.95,
    tool_choice: { tool: "calculator" },
    reasoning_effort: "high",
    provider_options: { openai: { user: "u1", metadata: { team: "x" } }, anthropic: { sendReasoning: false } },
    output_schema: { type: "object", properties: { answer: { type: "string" } }, required: ["answer"] },
  });
  expect(agent.output_retries).toBe(2);
  expect(modelSettingsOf(agent)).toEqual({
    temperature: 0.7,
    topP: 0.95,
    toolChoice: { type: "tool", toolName: "calculator" },
    reasoningEffort: "high",
    providerOptions: { openai: { user: "u1", metadata: { team: "x" } }, anthropic: { sendReasoning: false } },
  });
  expect(modelSettingsOf(AgentDefinition.parse({ name: "plain", tool_choice: "none" }))).toEqual({ toolChoice: "none" });
  // Nothing set: nothing at all, not keys holding undefined.
  expect(Object.keys(modelSettingsOf(AgentDefinition.parse({ name: "plain" })))).toEqual([]);
  // A tool of an MCP server the agent lists whole.
  expect(AgentDefinition.safeParse({ name: "m", tools: ["mcp:files"], tool_choice: { tool: "files__read" } }).success).toBe(true);
});

test("refuses a tool_choice naming a tool the agent lacks, and 'required' without tools", () => {
  expect(firstIssue({ tools: ["calculator"], tool_choice: { tool: "http_fetch" } })).toBe("tool_choice.tool: 'http_fetch' is not one of the agent's tools");
  expect(firstIssue({ tools: ["mcp:files"], tool_choice: { tool: "web__search" } })).toContain("'web__search' is not one of the agent's tools");
  expect(firstIssue({ tools: [], tool_choice: "required" })).toBe("tool_choice: 'required' needs at least one tool");
  expect(firstIssue({ tool_choice: "always" })).toStartWith("tool_choice: ");
  expect(firstIssue({ tool_choice: { tool: "calculator", extra: 1 } })).toStartWith("tool_choice");
});

test("refuses a bad output_schema with a message naming what is wrong", () => {
  expect(firstIssue({ output_schema: { type: "object", properties: { a: { if: {} } } } })).toStartWith(
    "output_schema: not a usable JSON Schema: #/properties/a: unsupported keyword 'if'",
  );
  expect(firstIssue({ output_schema: { $ref: "#/$defs/nope" } })).toContain("output_schema: not a usable JSON Schema: #/$ref: '#/$defs/nope' does not resolve");
  expect(firstIssue({ output_schema: { type: "strng" } })).toStartWith("output_schema: not a usable JSON Schema: #/type:");
  expect(firstIssue({ output_schema: "object" })).toStartWith("output_schema: ");
});

test("refuses out-of-range settings and unknown keys", () => {
  expect(firstIssue({ temperature: 2.5 })).toStartWith("temperature: ");
  expect(firstIssue({ top_p: -0.1 })).toStartWith("top_p: ");
  expect(firstIssue({ reasoning_effort: "extreme" })).toStartWith("reasoning_effort: ");
  expect(firstIssue({ output_retries: 11 })).toStartWith("output_retries: ");
  expect(firstIssue({ output_retries: 1.5 })).toStartWith("output_retries: ");
  expect(firstIssue({ provider_options: { openai: "fast" } })).toStartWith("provider_options.openai: ");
  expect(firstIssue({ topP: 0.5 })).toContain("topP");
  expect(firstIssue({ outputSchema: {} })).toContain("outputSchema");
});

test("a config file with a bad output_schema stops start-up naming the agent and the field", () => {
  const dir = tempDir();
  dirs.push(dir);
  const path = join(dir, "agentkit.json");
  writeFileSync(path, JSON.stringify({ agents: [{ name: "writer", output_schema: { type: "object", not: {} } }] }));
  expect(() => loadConfig({ env: {}, flags: { configPath: path } })).toThrow(
    "invalid configuration: agentkit.json: agents[0] (writer).output_schema: not a usable JSON Schema: #: unsupported keyword 'not'",
  );
});
