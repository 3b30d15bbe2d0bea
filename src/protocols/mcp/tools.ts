/**
 * Each agent as an MCP tool: its name, its description, the input schema every agent shares
 * (`{input, thread_id?}`), and — when the agent has an `output_schema` — an `outputSchema`, so the
 * final answer comes back as `structuredContent` as well as text.
 *
 * MCP wants an `outputSchema` whose root is an object: an agent whose answer is not one (an array,
 * a string, `anyOf` …) has it wrapped as `{"result": <answer>}`.
 */
import { z } from "zod";
import type { AgentPool } from "../../agents/pool.ts";
import type { AgentDefinition } from "../../agents/agent.ts";
import { INVALID_TEXT, isValidText, MAX_INPUT_CHARS } from "../../protocol/limits.ts";

/** `tools/call` arguments of every agent tool (thread ids as `POST /threads` makes them). */
export const AgentToolArguments = z.strictObject({
  input: z.string().min(1, "must not be empty").max(MAX_INPUT_CHARS).refine(isValidText, INVALID_TEXT),
  thread_id: z.string().min(1).max(128).optional(),
});
export type AgentToolArguments = z.infer<typeof AgentToolArguments>;

const INPUT_SCHEMA = {
  type: "object",
  properties: {
    input: { type: "string", minLength: 1, maxLength: MAX_INPUT_CHARS, description: "What to ask the agent (the task's input)" },
    thread_id: {
      type: "string",
      description: "Continue this conversation (a thread made with POST /threads): the agent sees the thread's earlier tasks",
    },
  },
  required: ["input"],
  additionalProperties: false,
} as const;

/** An MCP tool definition (the shape of `tools/list`'s items that agentkit fills in). */
export interface AgentTool {
  name: string;
  description: string;
  inputSchema: typeof INPUT_SCHEMA;
  outputSchema?: Record<string, unknown>;
}

/** How an agent's answer goes into `structuredContent`: as it is (an object) or wrapped. */
export type StructuredShape = "object" | "wrapped";

export function structuredShape(definition: Pick<AgentDefinition, "output_schema">): StructuredShape | undefined {
  const schema = definition.output_schema;
  if (!schema) return undefined;
  return schema.type === "object" ? "object" : "wrapped";
}

export function agentTool(definition: AgentDefinition): AgentTool {
  const tool: AgentTool = {
    name: definition.name,
    description: definition.description.trim() || `Runs the agentkit agent '${definition.name}' on the input and returns its final answer.`,
    inputSchema: INPUT_SCHEMA,
  };
  const schema = definition.output_schema;
  const shape = structuredShape(definition);
  if (schema && shape === "object") tool.outputSchema = schema;
  if (schema && shape === "wrapped") {
    // `$defs`/`definitions` stay at the root, where the answer schema's `#/$defs/…` refs resolve.
    const { $defs, definitions, $schema: _schema, $id: _id, ...answer } = schema;
    tool.outputSchema = {
      type: "object",
      properties: { result: answer },
      required: ["result"],
      additionalProperties: false,
      ...($defs === undefined ? {} : { $defs }),
      ...(definitions === undefined ? {} : { definitions }),
    };
  }
  return tool;
}

export function agentTools(agents: AgentPool): AgentTool[] {
  return agents.list().map((agent) => agentTool(agent.definition));
}

/** The `structuredContent` of a completed task's parsed answer. */
export function structuredContentOf(shape: StructuredShape, value: unknown): Record<string, unknown> {
  return shape === "object" ? (value as Record<string, unknown>) : { result: value };
}
