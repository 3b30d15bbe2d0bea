/**
 * The agent pool: agent definitions resolved against the model resolver and the tool registry,
 * once, at start-up — so a misconfigured agent stops the server instead of failing its first task.
 */
import type { ChatModel } from "../llm/model.ts";
import type { ModelResolver } from "../llm/registry.ts";
import type { Tool } from "../tools/tool.ts";
import type { ToolRegistry } from "../tools/registry.ts";
import type { AgentDefinition } from "./agent.ts";

export interface Agent {
  readonly definition: AgentDefinition;
  readonly model: ChatModel;
  readonly tools: ReadonlyMap<string, Tool>;
}

export interface AgentPool {
  get(name: string): Agent | undefined;
  list(): Agent[];
  readonly defaultAgent: Agent;
}

export function createAgentPool(options: {
  definitions: readonly AgentDefinition[];
  models: ModelResolver;
  tools: ToolRegistry;
  defaultAgent?: string;
}): AgentPool {
  if (options.definitions.length === 0) throw new Error("at least one agent must be defined");
  const agents = new Map<string, Agent>();
  for (const definition of options.definitions) {
    if (agents.has(definition.name)) throw new Error(`agent '${definition.name}' is defined twice`);
    const tools = new Map<string, Tool>();
    for (const toolName of definition.tools) {
      const tool = options.tools.get(toolName);
      if (!tool) {
        throw new Error(`agent '${definition.name}': unknown tool '${toolName}'; known: ${[...options.tools.keys()].join(", ")}`);
      }
      tools.set(toolName, tool);
    }
    let model: ChatModel;
    try {
      model = options.models.resolve(definition.model);
    } catch (error) {
      throw new Error(`agent '${definition.name}': ${(error as Error).message}`);
    }
    agents.set(definition.name, { definition, model, tools });
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
