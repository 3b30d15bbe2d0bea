/**
 * What an MCP failure means: the ToolError the model reads, and whether the connection itself is in
 * doubt (then the supervisor pings the server, and reconnects if the ping fails too). Messages never
 * include a server's stderr, which may hold secrets; that goes to the log only.
 */
import { StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ErrorCode, McpError } from "@modelcontextprotocol/sdk/types.js";
import { errorMessage } from "../../errors.ts";
import { ToolError } from "../tool.ts";
import { MESSAGE_TOO_LARGE_REASON } from "./mcp-http-fetch.ts";
import type { McpServerConfig } from "./mcp-server-config.ts";

export interface CallFailure {
  error: ToolError;
  /** The call got no answer: the server may be hung or unreachable. */
  connectionInDoubt: boolean;
}

/** Classifies a failed `tools/call` that the caller did not abort. */
export function classifyCallFailure(error: unknown, context: { serverName: string; toolName: string; timeoutMs: number }): CallFailure {
  const { serverName, toolName, timeoutMs } = context;
  if (error instanceof McpError && error.code === ErrorCode.ConnectionClosed) {
    // The close itself already triggered the restart.
    const message = `MCP server '${serverName}' closed the connection during '${toolName}'; it is being restarted in the background`;
    return { error: new ToolError("execution_failed", message, true, { cause: error }), connectionInDoubt: false };
  }
  if (error instanceof McpError && error.code === ErrorCode.RequestTimeout) {
    const message = `MCP server '${serverName}' did not answer '${toolName}' within ${timeoutMs} ms`;
    return { error: new ToolError("timeout", message, true, { cause: error }), connectionInDoubt: true };
  }
  if (isMessageTooLarge(error)) {
    // agentkit's own answer in place of a result it would not read: the connection is fine.
    const message = `MCP server '${serverName}' answered '${toolName}' with more than agentkit reads: ${error.message.replace(/^MCP error -?\d+: /, "")}`;
    return { error: new ToolError("execution_failed", message, false, { cause: error }), connectionInDoubt: false };
  }
  if (error instanceof McpError) {
    // A JSON-RPC error the server sent (unknown tool, invalid params…): the connection is fine.
    const message = `MCP server '${serverName}' rejected '${toolName}': ${error.message}`;
    return { error: new ToolError("execution_failed", message, false, { cause: error }), connectionInDoubt: false };
  }
  // Anything else is the transport failing: an HTTP error status, a refused connection, a dead pipe.
  const message = `Calling '${toolName}' on MCP server '${serverName}' failed: ${describeError(error)}`;
  return { error: new ToolError("execution_failed", message, true, { cause: error }), connectionInDoubt: true };
}

/** Why a connection attempt (spawn or dial, initialize, list tools) failed, in words. */
export function describeStartFailure(error: unknown, config: McpServerConfig): string {
  if (error instanceof McpError && error.code === ErrorCode.RequestTimeout) {
    return `it did not finish starting (initialize and list tools) within ${config.timeoutMs} ms`;
  }
  if (error instanceof McpError && error.code === ErrorCode.ConnectionClosed) {
    return config.transport === "stdio" ? "the server process exited during startup" : "the connection closed during startup";
  }
  if (isMessageTooLarge(error)) return `it could not be started: ${error.message.replace(/^MCP error -?\d+: /, "")}`;
  return `it could not be started: ${describeError(error)}`;
}

function isMessageTooLarge(error: unknown): error is McpError {
  return error instanceof McpError && (error.data as { reason?: unknown } | undefined)?.reason === MESSAGE_TOO_LARGE_REASON;
}

/** An error's message, with the HTTP status the SDK keeps out of a StreamableHTTPError's message. */
function describeError(error: unknown): string {
  if (error instanceof StreamableHTTPError && error.code !== undefined) return `HTTP ${error.code}: ${error.message}`;
  return errorMessage(error);
}
