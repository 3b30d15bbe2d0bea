/**
 * Agent cards: one per agent at `/a2a/<agent>/.well-known/agent-card.json`, and the default
 * agent's at `/.well-known/agent-card.json`. Negotiated like `@a2a-js/sdk`'s own server does it:
 * a request with `A2A-Version: 1.0` (the 1.x client always sends it) gets the v1.0 card
 * (`supportedInterfaces`, ProtoJSON security schemes); one without it, or with a 0.x version, gets
 * the v0.3 card (`url`, `preferredTransport`, `protocolVersion`, OpenAPI-style security schemes),
 * which also lists the v1.0 interfaces. Both dialects are served at the same JSON-RPC URL.
 */
import type { Agent } from "../../agents/pool.ts";
import type { Dialect } from "./wire.ts";

export interface CardOptions {
  agent: Agent;
  /** The server's public origin, e.g. `https://agents.example.com`. */
  origin: string;
  version: string;
  /** Whether a key is needed (then the card declares bearer and X-API-Key). */
  keyRequired: boolean;
}

/** The JSON-RPC endpoint of an agent. */
export function endpointOf(origin: string, agentName: string): string {
  return `${origin}/a2a/${encodeURIComponent(agentName)}`;
}

/** The card's dialect for a request's `A2A-Version` header (absent: v0.3, as the spec says). */
export function cardDialect(a2aVersion: string | undefined | null): Dialect {
  const major = Number.parseInt((a2aVersion ?? "").trim().split(".")[0] ?? "", 10);
  return Number.isFinite(major) && major >= 1 ? "v1" : "v0.3";
}

interface Skill {
  id: string;
  name: string;
  description: string;
  tags: string[];
  examples?: string[];
  inputModes?: string[];
  outputModes?: string[];
}

function skillsOf(agent: Agent, outputModes: string[]): Skill[] {
  const { definition } = agent;
  const tools = [...agent.tools().values()];
  const main: Skill = {
    id: definition.name,
    name: definition.name,
    description: definition.description || `Runs the agentkit agent '${definition.name}' (${definition.model}) on the task's text and answers it.`,
    tags: ["agentkit", ...definition.tools.slice(0, 32)],
    inputModes: ["text/plain"],
    outputModes,
  };
  // One skill per tool the agent can use: what it can do for the caller, in the tool's own words.
  const perTool = tools.slice(0, 64).map((tool) => ({
    id: `tool:${tool.name}`,
    name: tool.name,
    description: tool.description || tool.name,
    tags: ["tool", tool.name, ...(definition.approval.includes(tool.name) ? ["approval"] : [])],
  }));
  return [main, ...perTool];
}

/** The agent's card in `dialect`. */
export function buildAgentCard(options: CardOptions, dialect: Dialect): Record<string, unknown> {
  const { agent, origin } = options;
  const { definition } = agent;
  const url = endpointOf(origin, definition.name);
  const outputModes = definition.output_schema ? ["text/plain", "application/json"] : ["text/plain"];
  const description = definition.description || `The agentkit agent '${definition.name}'.`;
  const skills = skillsOf(agent, outputModes);
  const interfaces = [
    { url, protocolBinding: "JSONRPC", protocolVersion: "1.0" },
    { url, protocolBinding: "JSONRPC", protocolVersion: "0.3" },
  ];
  const base = {
    name: definition.name,
    description,
    version: options.version,
    provider: { organization: "agentkit", url: origin },
    documentationUrl: `${origin}/docs`,
    capabilities: { streaming: true, pushNotifications: false, ...(dialect === "v1" ? { extendedAgentCard: false } : {}) },
    defaultInputModes: ["text/plain", "application/json"],
    defaultOutputModes: outputModes,
  };
  if (dialect === "v1") {
    return {
      name: base.name,
      description: base.description,
      supportedInterfaces: interfaces,
      provider: base.provider,
      version: base.version,
      documentationUrl: base.documentationUrl,
      capabilities: base.capabilities,
      ...(options.keyRequired
        ? {
            securitySchemes: {
              bearer: { httpAuthSecurityScheme: { scheme: "Bearer", description: "An agentkit API key as `Authorization: Bearer <key>`" } },
              apiKey: { apiKeySecurityScheme: { location: "header", name: "X-API-Key", description: "An agentkit API key as `X-API-Key: <key>`" } },
            },
            // Either one: two requirements, each naming one scheme.
            securityRequirements: [{ schemes: { bearer: { list: [] } } }, { schemes: { apiKey: { list: [] } } }],
          }
        : {}),
      defaultInputModes: base.defaultInputModes,
      defaultOutputModes: base.defaultOutputModes,
      skills,
    };
  }
  return {
    protocolVersion: "0.3.0",
    name: base.name,
    description: base.description,
    url,
    preferredTransport: "JSONRPC",
    version: base.version,
    provider: base.provider,
    documentationUrl: base.documentationUrl,
    capabilities: base.capabilities,
    ...(options.keyRequired
      ? {
          securitySchemes: {
            bearer: { type: "http", scheme: "bearer", description: "An agentkit API key as `Authorization: Bearer <key>`" },
            apiKey: { type: "apiKey", in: "header", name: "X-API-Key", description: "An agentkit API key as `X-API-Key: <key>`" },
          },
          security: [{ bearer: [] }, { apiKey: [] }],
        }
      : {}),
    defaultInputModes: base.defaultInputModes,
    defaultOutputModes: base.defaultOutputModes,
    skills: skills.map((skill) => ({ ...skill, examples: skill.examples ?? [] })),
    supportsAuthenticatedExtendedCard: false,
    // As the SDK's compat card does: the v1.0 interfaces too, for a v1.0 client that sent no version.
    supportedInterfaces: interfaces,
  };
}
