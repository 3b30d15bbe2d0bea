/** The config file: agents, providers, MCP servers; errors name the file, the agent and the field. */
import { afterEach, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../../src/config/config.ts";
import { startServer } from "../../src/server/serve.ts";
import { silentLogger } from "../../src/lib/logger.ts";
import { tempDir } from "../helpers/server.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function write(name: string, content: unknown): { dir: string; path: string } {
  const dir = tempDir();
  dirs.push(dir);
  const path = join(dir, name);
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content, null, 2));
  return { dir, path };
}

test("agents, default agent and providers come from agentkit.json", () => {
  const { path } = write("agentkit.json", {
    default_agent: "researcher",
    agents: [
      { name: "helper", model: "demo/react" },
      { name: "researcher", model: "openai/gpt-4.1-mini", tools: ["calculator"], max_steps: 20, token_budget: 50_000 },
    ],
    providers: { openai: { baseURL: "http://127.0.0.1:9/v1" }, prices: { "openai/*": { inputPerMillion: 1, outputPerMillion: 2 } } },
  });
  const config = loadConfig({ env: {}, flags: { configPath: path } });
  expect(config.agents.map((agent) => agent.name)).toEqual(["helper", "researcher"]);
  expect(config.agents[1]).toMatchObject({ max_steps: 20, token_budget: 50_000, tools: ["calculator"] });
  expect(config.agents[0]).toMatchObject({ max_steps: 10, tools: ["calculator", "current_time"] });
  expect(config.defaultAgent).toBe("researcher");
  expect(config.providers.openai?.baseURL).toBe("http://127.0.0.1:9/v1");
  expect(config.configPath).toBe(path);
});

test("YAML works too, and ./agentkit.json is found without a flag", () => {
  const yaml = write("agentkit.yaml", "agents:\n  - name: writer\n    model: demo/slow\n    max_steps: 3\n");
  expect(loadConfig({ env: {}, cwd: yaml.dir }).agents[0]).toMatchObject({ name: "writer", model: "demo/slow", max_steps: 3 });
  const json = write("agentkit.json", { agents: [{ name: "found" }] });
  expect(loadConfig({ env: {}, cwd: json.dir }).agents[0]!.name).toBe("found");
  expect(loadConfig({ env: { AGENTKIT_CONFIG: json.path }, cwd: "/" }).agents[0]!.name).toBe("found");
});

test("an error names the file, the agent and the field", () => {
  const cases: [unknown, string][] = [
    [{ agents: [{ name: "ok" }, { name: "researcher", max_steps: 500000 }] }, "agentkit.json: agents[1] (researcher).max_steps: "],
    [{ agents: [{ name: "fetcher", tools: ["http_fetch"] }] }, "agentkit.json: agents[0] (fetcher).http_fetch: required when tools lists http_fetch"],
    [{ agents: [{ name: "a" }, { name: "a" }] }, "agentkit.json: agents[1] (a): the name is used twice"],
    [{ agents: [{ name: "a" }], default_agent: "b" }, "agentkit.json: default_agent: 'b' is not one of the agents (a)"],
    [{ agentz: [] }, "agentkit.json: (top level): "],
    [{ providers: { endpoints: [{ name: "openai", baseURL: "http://x/v1" }] } }, "agentkit.json: providers.endpoints[0] (openai).name: 'openai' is a built-in provider"],
    ["{ not json", "agentkit.json: not valid JSON"],
  ];
  for (const [content, message] of cases) {
    const { path } = write("agentkit.json", content);
    expect(() => loadConfig({ env: {}, flags: { configPath: path } })).toThrow(`invalid configuration: ${message}`);
  }
  expect(() => loadConfig({ env: {}, flags: { configPath: "/nonexistent/agentkit.json" } })).toThrow("cannot read: ENOENT");
});

test("an agent naming an unknown tool or MCP server stops start-up, naming both", async () => {
  for (const [tools, message] of [
    [["calculator", "teleport"], "agent 'mover': unknown tool 'teleport'; known: calculator, current_time, http_fetch"],
    [["mcp:files"], "agent 'mover': tools: 'mcp:files' names no configured MCP server (configured: none)"],
  ] as const) {
    const { dir, path } = write("agentkit.json", { agents: [{ name: "mover", tools }] });
    const config = loadConfig({ env: {}, flags: { configPath: path, dataDir: join(dir, "data"), port: 0, logLevel: "silent" } });
    await expect(startServer({ config, logger: silentLogger, env: {} })).rejects.toThrow(message);
  }
});
