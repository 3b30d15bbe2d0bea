/**
 * The config file (`agentkit.json`, or YAML: `agentkit.yaml`): agents, providers, MCP servers.
 * Validated with zod at start-up; an error names the file, the agent and the field, e.g.
 * `agentkit.json: agents[1] (researcher).max_steps: Too big: expected number to be <=1000`.
 * Every level is strict: an unknown key is an error with the nearest known one, e.g.
 * `agentkit.json: agents[0] (assistant): unknown field 'maxSteps' (did you mean 'max_steps'?)`.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, extname } from "node:path";
import { z } from "zod";
import { AgentDefinition } from "../agents/agent.ts";
import { isHeaderValue, ProviderConfig } from "../llm/providers/provider-config.ts";
import { McpServersConfig } from "../tools/mcp/mcp-server-config.ts";
import { HttpFetchHostPattern } from "../tools/http-fetch.ts";

/** An HTTP header name (RFC 9110 token): fetch refuses any other ("Invalid header name"). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export const ConfigFile = z.strictObject({
  /** The agent used when a task names none; default: the first one. */
  default_agent: z.string().optional(),
  agents: z.array(AgentDefinition).min(1).optional(),
  providers: ProviderConfig.optional(),
  mcp_servers: McpServersConfig.optional(),
  /** Webhooks (src/webhooks): the hosts a task's own `webhook_url` may go to (as http_fetch's allowHosts). */
  webhooks: z.strictObject({ allowHosts: z.array(HttpFetchHostPattern) }).optional(),
  /** A TypeScript module of tools made with `defineTool` (relative to this file's directory). */
  tools_module: z.string().min(1).optional(),
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
  // Once per process: no generated fast path (see config.ts).
  const parsed = ConfigFile.safeParse(raw, { error: unknownFieldMessage, jitless: true });
  if (!parsed.success) {
    const issue = telling(parsed.error.issues);
    throw new ConfigFileError(`${name}: ${describePath(issue.path, raw)}: ${issue.message}`);
  }
  // MCP headers are sent with every request to the server: one fetch cannot send is an error now,
  // not a server that fails to start in the background for ever.
  for (const [index, server] of (parsed.data.mcp_servers ?? []).entries()) {
    for (const [header, value] of Object.entries(server.transport === "http" ? (server.headers ?? {}) : {})) {
      if (!HEADER_NAME.test(header)) {
        throw new ConfigFileError(`${name}: ${describePath(["mcp_servers", index, "headers", header], raw)}: not a valid HTTP header name`);
      }
      if (!isHeaderValue(value)) {
        throw new ConfigFileError(`${name}: ${describePath(["mcp_servers", index, "headers", header], raw)}: not a valid HTTP header value (Latin-1 only, no line breaks)`);
      }
    }
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

type Issue = { code: string; path: PropertyKey[]; message: string; errors?: Issue[][] };

/**
 * The issue to report: an unknown field (with its near match) before anything else. A misspelt
 * required field (`nmae`, `comand`, `baseUrl` for `baseURL`) is also a missing one, and "expected
 * string, received undefined" for a field the user never wrote would send them looking in the wrong
 * place. Inside a union (an MCP server is stdio or http): a branch's unknown field that has a near
 * match (the branch the user meant, misspelt); else the complaint of a branch that knows every
 * field given (the one meant, with a wrong value); else the union's own.
 */
function telling(issues: readonly Issue[]): Issue {
  const unknown = issues.find((issue) => issue.code === "unrecognized_keys");
  if (unknown) return unknown;
  for (const issue of issues) {
    if (issue.code !== "invalid_union") continue;
    const branches = issue.errors ?? [];
    const within = (inner: Issue): Issue => ({ ...inner, path: [...issue.path, ...inner.path] });
    const misspelt = branches.flat().find((inner) => inner.code === "unrecognized_keys" && inner.message.includes("did you mean"));
    if (misspelt) return within(misspelt);
    const meant = branches.find((branch) => branch.length > 0 && branch.every((inner) => inner.code !== "unrecognized_keys"));
    if (meant) return within(telling(meant));
  }
  return issues[0]!;
}

/**
 * The message of an `unrecognized_keys` issue (a strict object met keys it does not know): names each
 * key and, when one of the object's own fields is close, suggests it. Other issues keep zod's message.
 */
function unknownFieldMessage(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code !== "unrecognized_keys") return undefined;
  const shape = (issue.inst as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod?.def?.shape;
  const known = Object.keys(shape ?? {});
  const keys = issue.keys.map((key) => {
    const near = nearest(key, known);
    return near ? `'${key}' (did you mean '${near}'?)` : `'${key}'`;
  });
  return `unknown field${keys.length > 1 ? "s" : ""} ${keys.join(", ")}`;
}

/**
 * The known name closest to `name`, if it is close: compared without case, `_` and `-` (so
 * `maxSteps` ~ `max_steps`, `baseUrl` ~ `baseURL`), within an edit distance of a third of its length,
 * else one that contains it or that it contains (`retries` ~ `maxRetries`).
 */
export function nearest(name: string, known: readonly string[]): string | undefined {
  const normal = (text: string) => text.toLowerCase().replace(/[-_]/g, "");
  const target = normal(name);
  let best: { name: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(target, normal(candidate));
    if (!best || distance < best.distance) best = { name: candidate, distance };
  }
  if (best && best.distance <= Math.max(1, Math.floor(target.length / 3))) return best.name;
  // A part of the name (`retries` for `maxRetries`, `timeout_ms_total` for `timeout_ms`).
  if (target.length < 4) return undefined;
  return known.find((candidate) => normal(candidate).length >= 4 && (normal(candidate).includes(target) || target.includes(normal(candidate))));
}

/** Edit distance: insertions, deletions, substitutions and swaps of two neighbours (`nmae` → `name` is 1). */
export function editDistance(a: string, b: string): number {
  let before: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) current[j] = Math.min(current[j]!, before[j - 2]! + 1);
    }
    before = previous;
    previous = current;
  }
  return previous[b.length]!;
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
      const name = String(key);
      // Record keys like price ids (`openai/gpt-4.1-mini`) are quoted: `providers.prices["openai/*"]`.
      text += !/^[A-Za-z_$][\w$]*$/.test(name) ? `[${JSON.stringify(name)}]` : text ? `.${name}` : name;
      node = node && typeof node === "object" ? (node as Record<string, unknown>)[String(key)] : undefined;
    }
  }
  return text || "(top level)";
}
