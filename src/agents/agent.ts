/**
 * Agents: a name, a model, a system prompt, the tools it may use and its limits.
 * The schema validates agent definitions from configuration.
 */
import { z } from "zod";
import { HttpFetchOptions } from "../tools/http-fetch.ts";
import { MCP_TOOL_NAME_SEPARATOR } from "../tools/mcp/mcp-tool-name.ts";

/** Strict at every level: a misspelt field (`maxSteps`, `tool`) is an error, never silently dropped. */
export const AgentDefinition = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/i, "letters, digits, '-' and '_', up to 64"),
  description: z.string().default(""),
  model: z.string().min(1).default("demo/react"),
  system_prompt: z.string().default("You are a helpful assistant. Use tools when they help."),
  /**
   * Tool names: built-ins (`calculator`, `current_time`, `http_fetch`), one MCP tool
   * (`<server>__<tool>`), or every tool of an MCP server (`mcp:<server>`).
   */
  tools: z.array(z.string().min(1)).default(["calculator", "current_time"]),
  /** Options of `http_fetch` for this agent; required when it lists `http_fetch`. */
  http_fetch: HttpFetchOptions.optional(),
  max_steps: z.number().int().min(1).max(100_000).default(10),
  timeout_ms: z.number().int().min(100).max(24 * 3600_000).default(300_000),
  tool_timeout_ms: z.number().int().min(10).max(3600_000).default(30_000),
  max_output_tokens: z.number().int().positive().optional(),
  /** Stop the task (reason `token_budget`) once it has used more tokens than this. */
  token_budget: z.number().int().positive().optional(),
  /**
   * When the server running a task stops mid-task (crash, or a cluster node dying): `resume` goes on
   * from the stored events (on this server's restart, or on another node); `fail` ends the task.
   */
  on_interrupt: z.enum(["resume", "fail"]).default("resume"),
  /**
   * More tools to treat as idempotent (an interrupted call of one is run again on resume), e.g. an
   * MCP tool whose server gives no hints. Each must be one of the agent's tools.
   */
  idempotent_tools: z.array(z.string().min(1)).default([]),
}).superRefine((agent, context) => {
  if (agent.tools.includes("http_fetch") && !agent.http_fetch) {
    context.addIssue({ code: "custom", path: ["http_fetch"], message: "required when tools lists http_fetch (at least allowHosts)" });
  }
  for (const [index, name] of agent.idempotent_tools.entries()) {
    const separator = name.indexOf(MCP_TOOL_NAME_SEPARATOR);
    const server = separator > 0 ? name.slice(0, separator) : undefined;
    if (!agent.tools.includes(name) && !(server !== undefined && agent.tools.includes(`mcp:${server}`))) {
      context.addIssue({ code: "custom", path: ["idempotent_tools", index], message: `'${name}' is not one of the agent's tools` });
    }
  }
});
export type AgentDefinition = z.infer<typeof AgentDefinition>;

export const DEFAULT_AGENT: AgentDefinition = AgentDefinition.parse({
  name: "default",
  description: "General assistant with a calculator and a clock (runs on the built-in demo model unless configured).",
});
