/**
 * A server's tool list, as agentkit exposes it: every page of `tools/list`, filtered by the config's
 * allowlist, named `<server>__<tool>`, each with its input schema compiled for argument checks.
 */
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { Tool as McpToolDefinition } from "@modelcontextprotocol/sdk/types.js";
import type { jsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/types.js";
import { errorMessage } from "../../errors.ts";
import type { Logger } from "../../lib/logger.ts";
import { compileArgumentsCheck, type ArgumentsCheck } from "./mcp-input-schema.ts";
import { mcpToolName } from "./mcp-tool-name.ts";

/** One tool of a server, with the name the model sees. */
export interface McpListedTool {
  /** `<server>__<tool>`, see mcp-tool-name.ts. */
  name: string;
  /** The name the server knows it by. */
  serverToolName: string;
  description: string;
  /** The server's input JSON Schema, shown to the model as is. */
  jsonSchema: Record<string, unknown>;
  /** Absent when the schema could not be compiled, or is not known yet. */
  check?: ArgumentsCheck;
  /**
   * From the server's `annotations`: `idempotentHint` or `readOnlyHint` (a read-only tool has no
   * side effect to repeat). An interrupted call of an idempotent tool is run again on resume.
   */
  idempotent: boolean;
}

const MAX_TOOL_LIST_PAGES = 100;

/**
 * The server's tool list, page by page, keeping only the allowlisted tools (all without an
 * allowlist), and no more pages once it has more than MAX_TOOLS_PER_SERVER of them: a server paging
 * 100 lists of 1,000 tools (9 MB a page) took agentkit to 1.1 GB, all of it read to keep 512.
 */
export async function listAllTools(
  client: Client,
  options: { timeout: number; signal?: AbortSignal },
  allowlist?: readonly string[],
): Promise<McpToolDefinition[]> {
  const allowed = allowlist ? new Set(allowlist) : undefined;
  const tools: McpToolDefinition[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < MAX_TOOL_LIST_PAGES; page++) {
    const result = await client.listTools(cursor === undefined ? undefined : { cursor }, options);
    for (const tool of result.tools) if (!allowed || allowed.has(tool.name)) tools.push(tool);
    cursor = result.nextCursor;
    if (cursor === undefined || tools.length > MAX_TOOLS_PER_SERVER) break;
  }
  return tools;
}

/**
 * The exposed tools by server tool name. Problems that only affect one tool (a name collision after
 * sanitising, a schema the validator cannot compile, an allowlisted tool the server lacks) are
 * logged; they do not fail the server.
 */
/**
 * The most tools agentkit takes from one server. Models take far fewer in one request (OpenAI: 128),
 * and each tool's schema is compiled on every listing: a server offering 10,000 held the event loop
 * ~0.9 s per refresh. Past it, the rest are left out with a warning (choose with the `tools` allowlist).
 */
export const MAX_TOOLS_PER_SERVER = 512;

/**
 * The deepest and largest input schema a tool may have. The model is sent every schema of its tools
 * on every step: one nested 100,000 levels deep (from a server's tools/list) made every request of
 * the agents listing the server fail (JSON.stringify: "Maximum call stack size exceeded") and held
 * the event loop 1.5 s; one of 5 MB made each request 6 MB and held it 0.9 s. Such a tool is left
 * out with a warning; the server's other tools are used. 64 KiB: Ajv compiles one that big in ~30 ms.
 */
export const MAX_TOOL_SCHEMA_DEPTH = 64;
export const MAX_TOOL_SCHEMA_CHARS = 64 * 1024;
/** A longer description is cut (with "…"): a 5 MB one made each model request 5.2 MB. */
export const MAX_TOOL_DESCRIPTION_CHARS = 8_192;

/**
 * What the model is sent of one server's tools at most, in characters of input schemas and
 * descriptions: 512 tools of 247 KB schemas each made every model request 127 MB, held /health
 * 470 ms and took agentkit to 930 MB. Tools past it (in the server's order) are left out.
 */
export const MAX_SERVER_TOOLS_CHARS = 1024 * 1024;
const LISTING_TURN_MS = 8;

/**
 * Why a tool's input (or output) schema cannot be used, or its size in characters. Walks without
 * recursion, so any depth is safe.
 */
export function measureToolSchema(schema: unknown, which: "input" | "output" = "input"): { problem: string } | { chars: number } {
  const stack: { value: unknown; depth: number }[] = [{ value: schema, depth: 1 }];
  let nodes = 0;
  while (stack.length > 0) {
    const { value, depth } = stack.pop()!;
    if (depth > MAX_TOOL_SCHEMA_DEPTH) return { problem: `its ${which} schema is nested more than ${MAX_TOOL_SCHEMA_DEPTH} levels deep` };
    // Every node takes at least a few characters: this many cannot fit in the size limit.
    if (++nodes > MAX_TOOL_SCHEMA_CHARS / 2) return { problem: `its ${which} schema is larger than ${MAX_TOOL_SCHEMA_CHARS} characters` };
    if (typeof value !== "object" || value === null) continue;
    for (const child of Array.isArray(value) ? value : Object.values(value)) {
      if (typeof child === "object" && child !== null) stack.push({ value: child, depth: depth + 1 });
      else nodes++;
    }
  }
  const chars = JSON.stringify(schema).length;
  if (chars > MAX_TOOL_SCHEMA_CHARS) return { problem: `its ${which} schema has ${chars} characters, more than ${MAX_TOOL_SCHEMA_CHARS}` };
  return { chars };
}

export async function buildToolListing(
  serverName: string,
  tools: readonly McpToolDefinition[],
  options: { allowlist: readonly string[] | undefined; validator: jsonSchemaValidator; logger: Logger },
): Promise<Map<string, McpListedTool>> {
  const { logger } = options;
  const allowed = options.allowlist ? new Set(options.allowlist) : undefined;
  const listing = new Map<string, McpListedTool>();
  const exposedNames = new Set<string>();
  const leftOut: string[] = [];
  let offered = 0;
  let chars = 0;
  let budgetSpent = false;
  let turnStarted = performance.now();
  for (const definition of tools) {
    // Compiling is synchronous (Ajv: ~0.5 ms per KB of schema, 1 MiB of distinct ones held the loop
    // 0.5 s): the event loop gets a turn whenever this has run for a few milliseconds.
    if (performance.now() - turnStarted > LISTING_TURN_MS) {
      await new Promise((resolve) => setImmediate(resolve));
      turnStarted = performance.now();
    }
    if (allowed && !allowed.has(definition.name)) continue;
    if (++offered > MAX_TOOLS_PER_SERVER) continue;
    const name = mcpToolName(serverName, definition.name);
    if (exposedNames.has(name)) {
      logger.warn("MCP tool skipped: its name collides with another tool of the server", { server: serverName, tool: definition.name, name });
      continue;
    }
    if (budgetSpent) {
      // Not even measured: walking and serialising hundreds of big schemas held the loop 0.3 s.
      leftOut.push(`${definition.name}: past the ${MAX_SERVER_TOOLS_CHARS} characters of schemas and descriptions`);
      continue;
    }
    const jsonSchema = definition.inputSchema as Record<string, unknown>;
    const measured = measureToolSchema(jsonSchema);
    if ("problem" in measured) {
      leftOut.push(`${definition.name}: ${measured.problem}`);
      continue;
    }
    // The SDK compiles a tool's output schema at its first call, on the event loop: held to the same
    // limits (a 2.4 MB one held the loop for minutes). It is not sent to the model: not in the budget.
    const output = definition.outputSchema === undefined ? undefined : measureToolSchema(definition.outputSchema, "output");
    if (output && "problem" in output) {
      leftOut.push(`${definition.name}: ${output.problem}`);
      continue;
    }
    let description = definition.description ?? definition.title ?? `Tool '${definition.name}' of MCP server '${serverName}'`;
    if (description.length > MAX_TOOL_DESCRIPTION_CHARS) {
      logger.warn(`MCP tool description cut to ${MAX_TOOL_DESCRIPTION_CHARS} characters`, { server: serverName, tool: definition.name, characters: description.length });
      description = `${description.slice(0, MAX_TOOL_DESCRIPTION_CHARS - 1)}…`;
    }
    if (chars + measured.chars + description.length > MAX_SERVER_TOOLS_CHARS) {
      budgetSpent = true;
      leftOut.push(`${definition.name}: past the ${MAX_SERVER_TOOLS_CHARS} characters of schemas and descriptions`);
      continue;
    }
    chars += measured.chars + description.length;
    exposedNames.add(name);
    let check: ArgumentsCheck | undefined;
    try {
      check = compileArgumentsCheck(jsonSchema, options.validator);
    } catch (error) {
      logger.warn("MCP tool input schema cannot be compiled; only the server checks its arguments", {
        server: serverName,
        tool: definition.name,
        error: errorMessage(error),
      });
    }
    listing.set(definition.name, { name, serverToolName: definition.name, description, jsonSchema, check, idempotent: idempotentByHints(definition) });
  }
  if (leftOut.length > 0) {
    // One line for the lot: a server can leave out hundreds at each listing.
    logger.warn(`MCP tools left out: ${leftOut.length}`, { server: serverName, tools: leftOut.slice(0, 10), ...(leftOut.length > 10 ? { more: leftOut.length - 10 } : {}) });
  }
  if (offered > MAX_TOOLS_PER_SERVER) {
    logger.warn(`MCP server offers more than ${MAX_TOOLS_PER_SERVER} tools (${offered} read): the first ${MAX_TOOLS_PER_SERVER} are used (choose with the server's "tools" allowlist)`, { server: serverName });
  }
  for (const wanted of allowed ?? []) {
    if (!listing.has(wanted) && offered <= MAX_TOOLS_PER_SERVER) logger.warn("MCP server does not offer a tool its config allows", { server: serverName, tool: wanted });
  }
  return listing;
}

/** A listing's tool names for a log line: all of a few, the first 20 and the count of many. */
export function toolNamesForLog(listing: ReadonlyMap<string, McpListedTool>): string[] {
  const names = [...listing.values()].map((tool) => tool.name);
  return names.length <= 20 ? names : [...names.slice(0, 20), `… ${names.length - 20} more`];
}

/**
 * Stand-ins for the allowlisted tools of a server that has never been reached, so a task started
 * meanwhile gets a clear "server is down" error from them instead of "unknown tool".
 */
export function placeholderTools(serverName: string, allowlist: readonly string[] | undefined): McpListedTool[] {
  return (allowlist ?? []).map((serverToolName) => ({
    name: mcpToolName(serverName, serverToolName),
    serverToolName,
    description:
      `Tool '${serverToolName}' of MCP server '${serverName}'. The server has not been reached yet, ` +
      `so its description and input schema are unknown.`,
    jsonSchema: { type: "object", additionalProperties: true },
    // Nothing is known about the tool yet, so nothing marks it safe to run twice.
    idempotent: false,
  }));
}

/**
 * MCP's behaviour hints: `idempotentHint` (calling again with the same arguments has no further
 * effect) or `readOnlyHint` (no effect at all). Hints are the server's word, not a guarantee; an
 * agent can add tools with `idempotent_tools`, not remove hinted ones.
 */
export function idempotentByHints(definition: Pick<McpToolDefinition, "annotations">): boolean {
  const hints = definition.annotations;
  return hints?.idempotentHint === true || hints?.readOnlyHint === true;
}
