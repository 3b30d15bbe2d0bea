/**
 * The config file (`agentkit.json`, or YAML: `agentkit.yaml`): agents, providers, MCP servers.
 * Validated with zod at start-up; an error names the file, the agent and the field, e.g.
 * `agentkit.json: agents[1] (researcher).max_steps: Too big: expected number to be <=1000`.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, extname } from "node:path";
import { z } from "zod";
import { AgentDefinition } from "../agents/agent.ts";
import { ProviderConfig } from "../llm/providers/provider-config.ts";
import { McpServersConfig } from "../tools/mcp/mcp-server-config.ts";

export const ConfigFile = z.strictObject({
  /** The agent used when a task names none; default: the first one. */
  default_agent: z.string().optional(),
  agents: z.array(AgentDefinition).min(1).optional(),
  providers: ProviderConfig.optional(),
  mcp_servers: McpServersConfig.optional(),
});
export type ConfigFile = z.infer<typeof ConfigFile>;

/** The file looked for when no path is given. */
export const DEFAULT_CONFIG_FILES = ["agentkit.json", "agentkit.yaml", "agentkit.yml"];

export class ConfigFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigFileError";
  }
}

/** Finds the default config file in `cwd`, if any. */
export function findConfigFile(cwd = process.cwd()): string | undefined {
  return DEFAULT_CONFIG_FILES.map((name) => `${cwd}/${name}`).find((path) => existsSync(path));
}

export function loadConfigFile(path: string): ConfigFile {
  const name = basename(path);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigFileError(`${path}: cannot read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  let raw: unknown;
  try {
    raw = [".yaml", ".yml"].includes(extname(path).toLowerCase()) ? Bun.YAML.parse(text) : JSON.parse(text);
  } catch (error) {
    throw new ConfigFileError(`${name}: not valid ${extname(path).toLowerCase() === ".json" ? "JSON" : "YAML"}: ${(error as Error).message}`);
  }
  const parsed = ConfigFile.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigFileError(`${name}: ${describePath(issue.path, raw)}: ${issue.message}`);
  }
  const agents = parsed.data.agents ?? [];
  const names = new Set<string>();
  for (const [index, agent] of agents.entries()) {
    if (names.has(agent.name)) throw new ConfigFileError(`${name}: agents[${index}] (${agent.name}): the name is used twice`);
    names.add(agent.name);
  }
  if (parsed.data.default_agent !== undefined && !names.has(parsed.data.default_agent)) {
    throw new ConfigFileError(`${name}: default_agent: '${parsed.data.default_agent}' is not one of the agents (${[...names].join(", ")})`);
  }
  return parsed.data;
}

/** `["agents", 1, "max_steps"]` → `agents[1] (researcher).max_steps`. */
function describePath(path: readonly PropertyKey[], raw: unknown): string {
  let text = "";
  let node: unknown = raw;
  for (const key of path) {
    if (typeof key === "number") {
      text += `[${key}]`;
      node = Array.isArray(node) ? node[key] : undefined;
      const label = node && typeof node === "object" ? (node as { name?: unknown }).name : undefined;
      if (typeof label === "string") text += ` (${label})`;
    } else {
      text += text ? `.${String(key)}` : String(key);
      node = node && typeof node === "object" ? (node as Record<string, unknown>)[String(key)] : undefined;
    }
  }
  return text || "(top level)";
}
