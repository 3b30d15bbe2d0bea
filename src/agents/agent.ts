/**
 * Agents: a name, a model, a system prompt, the tools it may use and its limits.
 * The schema validates agent definitions from configuration.
 */
import { z } from "zod";
import { compileOutputSchema } from "../engine/structured-output.ts";
import { DEFAULT_MAX_TOOL_CALLS_PER_STEP, MAX_TOOL_CALLS_PER_STEP_LIMIT } from "../engine/react.ts";
import { DEFAULT_TOOL_RESULT_MAX_CHARS } from "../engine/tool-execution.ts";
import type { ModelRequest } from "../llm/model.ts";
import { HttpFetchOptions } from "../tools/http-fetch.ts";
import { MCP_TOOL_NAME_SEPARATOR } from "../tools/mcp/mcp-tool-name.ts";
import { WEBHOOK_EVENTS } from "../store/store.ts";

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
  /**
   * A tool result longer than this many characters (as the model reads it: text as is, anything
   * else as JSON) is cut to this many, with a line saying so, in the log and for the model.
   */
  tool_result_max_chars: z.number().int().min(1000).max(10_000_000).default(DEFAULT_TOOL_RESULT_MAX_CHARS),
  /**
   * The most tool calls one model step may make. A step with more fails the task (code
   * `too_many_tool_calls`) as soon as its stream shows one call too many: none of them is run or
   * stored, the rest of the reply is not read.
   */
  max_tool_calls_per_step: z.number().int().min(1).max(MAX_TOOL_CALLS_PER_STEP_LIMIT).default(DEFAULT_MAX_TOOL_CALLS_PER_STEP),
  max_output_tokens: z.number().int().positive().optional(),
  /** Stop the task (reason `token_budget`) once it has used more tokens than this. */
  token_budget: z.number().int().positive().optional(),
  // ---- model settings (issue 10 item 7)
  /** Sampling temperature; absent: the provider's default. */
  temperature: z.number().min(0).max(2).optional(),
  /** Nucleus sampling; absent: the provider's default. */
  top_p: z.number().min(0).max(1).optional(),
  /** `auto` (the default when tools are offered), `required`, `none`, or `{"tool": name}`: one of the agent's tools. */
  tool_choice: z.union([z.enum(["auto", "required", "none"]), z.strictObject({ tool: z.string().min(1) })]).optional(),
  /** How hard a reasoning model thinks; each provider maps it (models that do not reason ignore it). */
  reasoning_effort: z.enum(["minimal", "low", "medium", "high"]).optional(),
  /** Provider-specific options keyed by provider name (`{"openai": {…}}`), passed through to the AI SDK's `providerOptions`. */
  provider_options: z.record(z.string().min(1), z.record(z.string(), z.json())).optional(),
  /** JSON Schema the final answer must match (a JSON value); checked at start-up: see engine/structured-output.ts. */
  output_schema: z.record(z.string(), z.json()).optional(),
  /** How many times a final answer failing `output_schema` goes back to the model before the task fails. */
  output_retries: z.number().int().min(0).max(10).default(2),
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
  // ---- people in the loop (issue 10) ----
  /**
   * Tools whose calls wait for a person's approval before they run: tool names (`http_fetch`,
   * `files__write`), or `mcp:<server>` for every tool of an MCP server. Each must be one of the
   * agent's tools.
   */
  approval: z.array(z.string().min(1)).default([]),
  /** How long an approval or a question (`ask_user`) waits for a person. Default 24 h. */
  approval_timeout_ms: z.number().int().min(1000).max(30 * 24 * 3600_000).default(24 * 3600_000),
  /**
   * When nobody decides in time: `reject` (the model reads a `tool_error` `approval_timeout`, or
   * `no_answer` for a question, and goes on) or `fail` (the task fails, code `approval_timeout`).
   */
  on_approval_timeout: z.enum(["reject", "fail"]).default("reject"),
  /**
   * A thread's history as the model sees it (see src/threads/history.ts): the last `max_turns`
   * earlier tasks, and no more than `max_chars` characters of them (oldest turns dropped first).
   */
  history: z
    .strictObject({
      max_turns: z.number().int().min(0).max(10_000).default(50),
      max_chars: z.number().int().min(0).max(100_000_000).default(400_000),
    })
    .default({ max_turns: 50, max_chars: 400_000 }),
  /**
   * A new input for a thread whose task is still running or waiting: `enqueue` (run after it),
   * `reject` (409), `interrupt` (cancel it, then run) or `steer` (the input joins the running task
   * as a message before its next model step). A request's `on_busy` overrides it.
   */
  on_busy: z.enum(["enqueue", "reject", "interrupt", "steer"]).default("enqueue"),
  // ---- webhooks (issue 12) ----
  /**
   * A signed POST (Standard Webhooks; see src/webhooks) to `url` when this agent's tasks end
   * (`task.finished`) and, if listed, when they wait for a person (`task.waiting`).
   */
  webhook: z
    .strictObject({
      url: z.url({ protocol: /^https?$/, message: "must be an http:// or https:// URL" }).max(2048),
      events: z.array(z.enum(WEBHOOK_EVENTS)).min(1).default(["task.finished"]),
    })
    .optional(),
}).superRefine((agent, context) => {
  if (agent.tools.includes("http_fetch") && !agent.http_fetch) {
    context.addIssue({ code: "custom", path: ["http_fetch"], message: "required when tools lists http_fetch (at least allowHosts)" });
  }
  for (const [index, name] of agent.approval.entries()) {
    const separator = name.indexOf(MCP_TOOL_NAME_SEPARATOR);
    const server = name.startsWith("mcp:") ? name.slice(4) : separator > 0 ? name.slice(0, separator) : undefined;
    if (!agent.tools.includes(name) && !(server !== undefined && agent.tools.includes(`mcp:${server}`))) {
      context.addIssue({ code: "custom", path: ["approval", index], message: `'${name}' is not one of the agent's tools` });
    }
  }
  for (const [index, name] of agent.idempotent_tools.entries()) {
    const separator = name.indexOf(MCP_TOOL_NAME_SEPARATOR);
    const server = separator > 0 ? name.slice(0, separator) : undefined;
    if (!agent.tools.includes(name) && !(server !== undefined && agent.tools.includes(`mcp:${server}`))) {
      context.addIssue({ code: "custom", path: ["idempotent_tools", index], message: `'${name}' is not one of the agent's tools` });
    }
  }
  if (typeof agent.tool_choice === "object" && !hasTool(agent.tools, agent.tool_choice.tool)) {
    context.addIssue({ code: "custom", path: ["tool_choice", "tool"], message: `'${agent.tool_choice.tool}' is not one of the agent's tools` });
  }
  if (agent.tool_choice === "required" && agent.tools.length === 0) {
    context.addIssue({ code: "custom", path: ["tool_choice"], message: "'required' needs at least one tool" });
  }
  if (agent.output_schema !== undefined) {
    try {
      compileOutputSchema(agent.output_schema);
    } catch (error) {
      context.addIssue({ code: "custom", path: ["output_schema"], message: error instanceof Error ? error.message : String(error) });
    }
  }
});
export type AgentDefinition = z.infer<typeof AgentDefinition>;

export const DEFAULT_AGENT: AgentDefinition = AgentDefinition.parse({
  name: "default",
  description: "General assistant with a calculator and a clock (runs on the built-in demo model unless configured).",
});

/** `name` is one of `tools`: listed itself, or an MCP tool (`<server>__<tool>`) of a listed `mcp:<server>`. */
function hasTool(tools: readonly string[], name: string): boolean {
  const separator = name.indexOf(MCP_TOOL_NAME_SEPARATOR);
  const server = separator > 0 ? name.slice(0, separator) : undefined;
  return tools.includes(name) || (server !== undefined && tools.includes(`mcp:${server}`));
}

export type ModelSettings = Pick<ModelRequest, "temperature" | "topP" | "toolChoice" | "reasoningEffort" | "providerOptions">;

/**
 * The agent's model settings as `ModelRequest` fields (only those it sets), to spread into each request.
 * @example
 * model.stream({ system, messages, tools, ...modelSettingsOf(agent), abortSignal });
 */
export function modelSettingsOf(
  definition: Pick<AgentDefinition, "temperature" | "top_p" | "tool_choice" | "reasoning_effort" | "provider_options">,
): ModelSettings {
  const { tool_choice: toolChoice } = definition;
  return {
    ...(definition.temperature !== undefined ? { temperature: definition.temperature } : {}),
    ...(definition.top_p !== undefined ? { topP: definition.top_p } : {}),
    ...(toolChoice !== undefined
      ? { toolChoice: typeof toolChoice === "string" ? toolChoice : { type: "tool" as const, toolName: toolChoice.tool } }
      : {}),
    ...(definition.reasoning_effort !== undefined ? { reasoningEffort: definition.reasoning_effort } : {}),
    ...(definition.provider_options !== undefined
      ? { providerOptions: definition.provider_options as Record<string, Record<string, unknown>> }
      : {}),
  };
}

/** Whether a call of `toolName` needs a person's approval under this agent's `approval` list. */
export function needsApproval(definition: Pick<AgentDefinition, "approval">, toolName: string): boolean {
  if (definition.approval.length === 0) return false;
  if (definition.approval.includes(toolName)) return true;
  const separator = toolName.indexOf(MCP_TOOL_NAME_SEPARATOR);
  return separator > 0 && definition.approval.includes(`mcp:${toolName.slice(0, separator)}`);
}
