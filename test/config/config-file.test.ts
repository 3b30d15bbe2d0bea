/** The config file: agents, providers, MCP servers; errors name the file, the agent and the field. */
import { afterEach, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../../src/config/config.ts";
import { editDistance, nearest } from "../../src/config/config-file.ts";
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

test("an unknown key at any level of the file is an error naming it and the near match, never dropped", () => {
  const agent = (fields: Record<string, unknown>) => ({ agents: [{ name: "assistant", ...fields }] });
  const fetcher = (options: Record<string, unknown>) => agent({ tools: ["http_fetch"], http_fetch: { allowHosts: ["example.com"], ...options } });
  const cases: [unknown, string][] = [
    [agent({ maxSteps: 3 }), "agents[0] (assistant): unknown field 'maxSteps' (did you mean 'max_steps'?)"],
    [agent({ max_step: 3 }), "agents[0] (assistant): unknown field 'max_step' (did you mean 'max_steps'?)"],
    [agent({ tool: ["calculator"] }), "agents[0] (assistant): unknown field 'tool' (did you mean 'tools'?)"],
    [agent({ top_k: 5 }), "agents[0] (assistant): unknown field 'top_k' (did you mean 'top_p'?)"],
    [fetcher({ maxbytes: 10 }), "agents[0] (assistant).http_fetch: unknown field 'maxbytes' (did you mean 'maxBytes'?)"],
    [{ providers: { openai: { baseUrl: "http://127.0.0.1:9/v1" } } }, "providers.openai: unknown field 'baseUrl' (did you mean 'baseURL'?)"],
    [{ providers: { anthropic: { api_key: "k" } } }, "providers.anthropic: unknown field 'api_key' (did you mean 'apiKey'?)"],
    [{ providers: { ollama: { url: "http://x" } } }, "providers.ollama: unknown field 'url'"],
    [{ providers: { endpoints: [{ name: "groq", baseURL: "http://x/v1", apiKeyENV: "K" }] } }, "providers.endpoints[0] (groq): unknown field 'apiKeyENV' (did you mean 'apiKeyEnv'?)"],
    [{ providers: { retry: { retries: 2 } } }, "providers.retry: unknown field 'retries' (did you mean 'maxRetries'?)"],
    [{ providers: { requestTimeout: 1000 } }, "providers: unknown field 'requestTimeout' (did you mean 'requestTimeoutMs'?)"],
    [{ providers: { prices: { "openai/*": { inputPerMillion: 1, outputPerMillion: 2, cachedPerMillion: 0.5 } } } }, 'providers.prices["openai/*"]: unknown field \'cachedPerMillion\''],
    [{ mcp_servers: [{ name: "search", url: "http://127.0.0.1:9/mcp", header: {} }] }, "mcp_servers[0] (search): unknown field 'header' (did you mean 'headers'?)"],
    [{ agent: [] }, "(top level): unknown field 'agent' (did you mean 'agents'?)"],
    // A misspelt required field is also a missing one: the unknown field is what is said.
    [{ agents: [{ nmae: "assistant" }] }, "agents[0]: unknown field 'nmae' (did you mean 'name'?)"],
    [{ providers: { endpoints: [{ name: "groq", baseUrl: "http://x/v1" }] } }, "providers.endpoints[0] (groq): unknown field 'baseUrl' (did you mean 'baseURL'?)"],
    [{ mcp_servers: [{ name: "files", comand: "npx" }] }, "mcp_servers[0] (files): unknown field 'comand' (did you mean 'command'?)"],
    [{ mcp_servers: [{ name: "search", URL: "http://127.0.0.1:9/mcp" }] }, "mcp_servers[0] (search): unknown field 'URL' (did you mean 'url'?)"],
    // A wrong value in the branch the user meant is that, not "unknown fields" of the other branch.
    [{ mcp_servers: [{ name: "files", command: "npx", args: "oops" }] }, "mcp_servers[0] (files).args: Invalid input: expected array, received string"],
    [{ mcp_servers: [{ name: "search", url: 42 }] }, "mcp_servers[0] (search).url: Invalid input: expected string, received number"],
    [{ mcp_servers: [{ name: "files", command: "x", env: { A: 1 } }] }, "mcp_servers[0] (files).env.A: Invalid input: expected string, received number"],
  ];
  for (const [content, message] of cases) {
    const { path } = write("agentkit.json", content);
    let error: Error | undefined;
    try {
      loadConfig({ env: {}, flags: { configPath: path } });
    } catch (caught) {
      error = caught as Error;
    }
    expect(error?.message).toBe(`invalid configuration: agentkit.json: ${message}`);
  }
  // YAML too: the same schema.
  const yaml = write("agentkit.yaml", "providers:\n  openai:\n    baseUrl: http://127.0.0.1:9/v1\n");
  expect(() => loadConfig({ env: {}, flags: { configPath: yaml.path } })).toThrow("agentkit.yaml: providers.openai: unknown field 'baseUrl' (did you mean 'baseURL'?)");
});

test("a header value or key fetch cannot send (a '…' placeholder, a line break) is an error at start-up", () => {
  const cases: [unknown, string][] = [
    [{ mcp_servers: [{ name: "search", url: "http://127.0.0.1:9/mcp", headers: { Authorization: "Bearer …" } }] }, "mcp_servers[0] (search).headers.Authorization: not a valid HTTP header value"],
    [{ mcp_servers: [{ name: "search", url: "http://127.0.0.1:9/mcp", headers: { "X Token": "t" } }] }, 'mcp_servers[0] (search).headers["X Token"]: not a valid HTTP header name'],
    [{ providers: { openai: { apiKey: "sk-…" } } }, "providers.openai.apiKey: not a valid HTTP header value"],
    [{ providers: { endpoints: [{ name: "vllm", baseURL: "http://127.0.0.1:9/v1", headers: { "X-Org": "a\nb" } }] } }, 'providers.endpoints[0] (vllm).headers["X-Org"]: not a valid HTTP header value'],
  ];
  for (const [content, message] of cases) {
    const { path } = write("agentkit.json", content);
    expect(() => loadConfig({ env: {}, flags: { configPath: path } })).toThrow(`invalid configuration: agentkit.json: ${message}`);
  }
  const { path } = write("agentkit.json", {
    providers: { openai: { apiKey: "sk-test", headers: { "X-Org": "café" } } },
    mcp_servers: [{ name: "search", url: "http://127.0.0.1:9/mcp", headers: { Authorization: "Bearer token" } }],
  });
  expect(loadConfig({ env: {}, flags: { configPath: path } }).mcpServers).toHaveLength(1);
});

test("the near match: case, '_' and '-' do not count; far names get no suggestion", () => {
  expect(editDistance("kitten", "sitting")).toBe(3);
  expect(editDistance("", "abc")).toBe(3);
  expect(nearest("maxSteps", ["name", "max_steps", "tools"])).toBe("max_steps");
  expect(nearest("timeout", ["timeout_ms", "tool_timeout_ms"])).toBe("timeout_ms");
  expect(nearest("colour", ["name", "model"])).toBeUndefined();
  expect(nearest("x", [])).toBeUndefined();
});

test("an agent naming an unknown tool or MCP server stops start-up, naming both", async () => {
  for (const [tools, message] of [
    [["calculator", "teleport"], "agent 'mover': unknown tool 'teleport'; known: calculator, current_time, ask_user, http_fetch"],
    [["mcp:files"], "agent 'mover': tools: 'mcp:files' names no configured MCP server (configured: none)"],
  ] as const) {
    const { dir, path } = write("agentkit.json", { agents: [{ name: "mover", tools }] });
    const config = loadConfig({ env: {}, flags: { configPath: path, dataDir: join(dir, "data"), port: 0, logLevel: "silent" } });
    await expect(startServer({ config, logger: silentLogger, env: {} })).rejects.toThrow(message);
  }
});

test("a missing provider key stops start-up before any MCP server is started or dialled", async () => {
  let requests = 0;
  const mcpServer = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => (requests++, new Response("no", { status: 500 })) });
  try {
    const { dir, path } = write("agentkit.json", {
      agents: [{ name: "writer", model: "openai/gpt-4.1-mini", tools: ["mcp:search"] }],
      mcp_servers: [{ name: "search", url: `http://127.0.0.1:${mcpServer.port}/mcp`, timeoutMs: 2000 }],
    });
    const config = loadConfig({ env: {}, flags: { configPath: path, dataDir: join(dir, "data"), port: 0, logLevel: "silent" } });
    await expect(startServer({ config, logger: silentLogger, env: {} })).rejects.toThrow("agent 'writer': openai/gpt-4.1-mini needs OPENAI_API_KEY");
    expect(requests).toBe(0);
  } finally {
    mcpServer.stop(true);
  }
});
