/**
 * The agent pool: agent definitions resolved against the model resolver and the tools, once, at
 * start-up — so a misconfigured agent stops the server instead of failing its first task.
 * MCP tools are looked up again when each task starts (a server's tool list can change).
 */
import type { ChatModel } from "../llm/model.ts";
import type { ModelResolver } from "../llm/registry.ts";
import { createHttpFetchTool } from "../tools/http-fetch.ts";
import type { McpManager } from "../tools/mcp/mcp-manager.ts";
import { MCP_TOOL_NAME_SEPARATOR } from "../tools/mcp/mcp-tool-name.ts";
import type { ToolRegistry } from "../tools/registry.ts";
import type { Tool } from "../tools/tool.ts";
import type { AgentDefinition } from "./agent.ts";

export interface Agent {
  readonly definition: AgentDefinition;
  readonly model: ChatModel;
  /** The agent's tools as of now, by name. */
  tools(): ReadonlyMap<string, Tool>;
}

export interface AgentPool {
  get(name: string): Agent | undefined;
  list(): Agent[];
  readonly defaultAgent: Agent;
}

export interface AgentPoolOptions {
  definitions: readonly AgentDefinition[];
  models: ModelResolver;
  tools: ToolRegistry;
  mcp?: McpManager;
  /** Configured MCP server names, to check `mcp:<server>` entries at start-up. */
  mcpServers?: readonly string[];
  defaultAgent?: string;
}

type ToolSource = (into: Map<string, Tool>) => void;

export function createAgentPool(options: AgentPoolOptions): AgentPool {
  if (options.definitions.length === 0) throw new Error("at least one agent must be defined");
  const agents = new Map<string, Agent>();
  for (const definition of options.definitions) {
    if (agents.has(definition.name)) throw new Error(`agent '${definition.name}' is defined twice`);
    const where = `agent '${definition.name}'`;
    const sources = definition.tools.map((entry) => toolSource(entry, definition, options, where));
    let model: ChatModel;
    try {
      model = options.models.resolve(definition.model);
    } catch (error) {
      throw new Error(`${where}: ${(error as Error).message}`);
    }
    agents.set(definition.name, {
      definition,
      model,
      tools() {
        const tools = new Map<string, Tool>();
        for (const source of sources) source(tools);
        return tools;
      },
    });
  }
  const defaultName = options.defaultAgent ?? options.definitions[0]!.name;
  const defaultAgent = agents.get(defaultName);
  if (!defaultAgent) throw new Error(`default agent '${defaultName}' is not defined`);
  return {
    get: (name) => agents.get(name),
    list: () => [...agents.values()],
    defaultAgent,
  };
}

/** Resolves one `tools` entry of an agent; throws at start-up for anything unknown. */
function toolSource(entry: string, definition: AgentDefinition, options: AgentPoolOptions, where: string): ToolSource {
  const servers = options.mcpServers ?? [];
  if (entry === "http_fetch") {
    const tool = createHttpFetchTool(definition.http_fetch!);
    return (into) => into.set(tool.name, tool);
  }
  const builtin = options.tools.get(entry);
  if (builtin) return (into) => into.set(builtin.name, builtin);
  if (entry.startsWith("mcp:")) {
    const server = entry.slice("mcp:".length);
    if (!options.mcp || !servers.includes(server)) {
      throw new Error(`${where}: tools: '${entry}' names no configured MCP server (configured: ${servers.join(", ") || "none"})`);
    }
    const mcp = options.mcp;
    return (into) => {
      for (const tool of mcp.tools(server)) into.set(tool.name, tool);
    };
  }
  const separator = entry.indexOf(MCP_TOOL_NAME_SEPARATOR);
  if (separator > 0 && options.mcp && servers.includes(entry.slice(0, separator))) {
    const mcp = options.mcp;
    const server = entry.slice(0, separator);
    // Looked up per task: present once the server has listed it (or is allowlisted in its config).
    return (into) => {
      const tool = mcp.tools(server).find((candidate) => candidate.name === entry);
      if (tool) into.set(tool.name, tool);
    };
  }
  const known = [...options.tools.keys(), "http_fetch", ...servers.map((server) => `mcp:${server}`)];
  throw new Error(`${where}: unknown tool '${entry}'; known: ${known.join(", ")}`);
}
