/**
 * Turns the result of an MCP `tools/call` into what the model reads: text parts as they are, a short
 * note for binary content (images, audio, blobs) it cannot see, structured content as JSON when there
 * is no text. An `isError` result throws, so the engine reports it as a `tool_error` observation.
 */
import type { ContentBlock } from "@modelcontextprotocol/sdk/types.js";
import { ToolError } from "../tool.ts";

/** The parts of a `tools/call` result this module reads (current and pre-2024-11 servers). */
export interface McpCallResult {
  content?: ContentBlock[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
  /** Servers on the 2024-10-07 protocol answer with `toolResult` instead of `content`. */
  toolResult?: unknown;
}

/**
 * Converts a result; throws a ToolError for `isError: true`.
 * @param toolName the name the model used, for the error message
 */
export function mcpResultToObservation(result: McpCallResult, toolName: string): unknown {
  const text = (result.content ?? []).map(describeContent).join("\n");
  if (result.isError) {
    throw new ToolError("execution_failed", `Tool '${toolName}' reported an error: ${text || "(no details)"}`, false);
  }
  if (result.content === undefined && result.toolResult !== undefined) return result.toolResult;
  const hasText = (result.content ?? []).some((part) => part.type === "text" || part.type === "resource");
  if (!hasText && result.structuredContent !== undefined) return result.structuredContent;
  return text || "(the tool returned no content)";
}

function describeContent(part: ContentBlock): string {
  switch (part.type) {
    case "text":
      return part.text;
    case "image":
      return `[image (${part.mimeType}, ${base64Bytes(part.data)} bytes) not shown]`;
    case "audio":
      return `[audio (${part.mimeType}, ${base64Bytes(part.data)} bytes) not shown]`;
    case "resource": {
      const { resource } = part;
      const label = `resource ${resource.uri}${resource.mimeType ? ` (${resource.mimeType})` : ""}`;
      if ("text" in resource) return `[${label}]\n${resource.text}`;
      return `[${label}: ${base64Bytes(resource.blob)} bytes of binary data not shown]`;
    }
    case "resource_link":
      return `[resource link: ${part.name} ${part.uri}]`;
    default: {
      // A content type newer than this SDK: say it was there rather than drop it silently.
      const unknownType = (part as { type?: unknown }).type;
      return `[${String(unknownType)} content not shown]`;
    }
  }
}

/** Decoded size of base64 text, without decoding it. */
function base64Bytes(data: string): number {
  const padding = data.endsWith("==") ? 2 : data.endsWith("=") ? 1 : 0;
  return Math.max(0, Math.floor((data.length * 3) / 4) - padding);
}
