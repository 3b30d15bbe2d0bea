/**
 * Our conversation and tool specs → the AI SDK's provider-level prompt and function tools.
 * Each provider package then renders these into its own wire format (OpenAI messages,
 * Anthropic content blocks…).
 */
import type { JSONSchema7 } from "ai";
import type { ChatMessage, ModelToolChoice, ToolSpec } from "../model.ts";
import { nestsTooDeep } from "../../protocol/limits.ts";
import type { SdkCallOptions, SdkFunctionTool, SdkMessage, SdkPrompt } from "./sdk-types.ts";

/**
 * Builds the SDK prompt: the system prompt first, then the messages in order. Consecutive tool
 * results are grouped into one SDK `tool` message (one per assistant turn, as the providers expect).
 */
export function toSdkPrompt(system: string | undefined, messages: readonly ChatMessage[]): SdkPrompt {
  const prompt: SdkMessage[] = [];
  if (system !== undefined && system !== "") prompt.push({ role: "system", content: system });
  for (const message of messages) {
    switch (message.role) {
      case "user":
        prompt.push({ role: "user", content: [{ type: "text", text: message.content }] });
        break;
      case "assistant": {
        const content: Extract<SdkMessage, { role: "assistant" }>["content"] = [];
        // Whitespace alone is no text either: Anthropic refuses a text block of only whitespace (a
        // reply sent back as empty is the model's own "\n\n").
        if (message.content.trim() !== "") content.push({ type: "text", text: message.content });
        for (const call of message.toolCalls ?? []) {
          content.push({ type: "tool-call", toolCallId: call.id, toolName: call.name, input: toolCallInput(call.arguments) });
        }
        // An empty assistant turn carries nothing, and some providers reject empty content.
        if (content.length > 0) prompt.push({ role: "assistant", content });
        break;
      }
      case "tool": {
        const part = {
          type: "tool-result" as const,
          toolCallId: message.toolCallId,
          toolName: message.toolName,
          output: message.isError
            ? { type: "error-text" as const, value: message.content }
            : { type: "text" as const, value: message.content },
        };
        const previous = prompt.at(-1);
        if (previous?.role === "tool") previous.content.push(part);
        else prompt.push({ role: "tool", content: [part] });
        break;
      }
    }
  }
  return prompt;
}

/**
 * The input of a past tool call as the SDK wants it: the parsed object. Arguments the model got
 * wrong (not JSON, or not an object) are replayed as `{}`: every provider accepts that, whereas
 * each one treats a raw string differently (and some servers reject it). The tool's error
 * observation that follows already tells the model what was wrong.
 */
export function toolCallInput(rawArguments: string): Record<string, unknown> {
  // Too deep for the SDK to write back as JSON (the call failed with invalid_arguments).
  if (rawArguments.trim() === "" || nestsTooDeep(rawArguments)) return {};
  try {
    const parsed: unknown = JSON.parse(rawArguments);
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    // Malformed arguments: see above, `{}` is the portable replay.
    return {};
  }
}

/** Our tool specs as SDK function tools (JSON Schema passed through untouched). */
export function toSdkTools(tools: readonly ToolSpec[]): SdkFunctionTool[] {
  return tools.map((tool) => ({
    type: "function",
    name: tool.name,
    description: tool.description,
    // ToolSpec.inputSchema is JSON Schema produced by zod's toJSONSchema; the SDK types it as JSONSchema7.
    inputSchema: tool.inputSchema as JSONSchema7,
  }));
}

/** Our tool choice as the SDK's: a named tool becomes `{ type: "tool", toolName }`. */
export function toSdkToolChoice(choice: ModelToolChoice): NonNullable<SdkCallOptions["toolChoice"]> {
  return typeof choice === "string" ? { type: choice } : { type: "tool", toolName: choice.toolName };
}
