/**
 * The MCP route's shapes for the OpenAPI document (src/server/openapi.ts), loaded by nothing else.
 * MCP's Streamable HTTP transport speaks JSON-RPC 2.0 (the MCP SDK checks the messages); these say
 * what goes in and what its refusals look like.
 */
import { z } from "zod";

/** A JSON-RPC request id: a string or an integer (MCP allows no null). */
const RequestId = z.union([z.string(), z.number().int()]);

/** One JSON-RPC message to the server: a request (with `id`), or a notification (without). */
export const McpJsonRpcMessage = z.strictObject({
  jsonrpc: z.literal("2.0"),
  id: RequestId.optional().describe("Present: a request, answered on the response's event stream. Absent: a notification (e.g. `notifications/cancelled`)"),
  method: z.string().describe("`initialize`, `tools/list`, `tools/call`, `ping`, `notifications/initialized`, `notifications/cancelled`, …"),
  params: z.record(z.string(), z.unknown()).optional(),
});

/** `POST /mcp`: one message, or a batch of them (at most 100, as the MCP SDK takes). */
export const McpRequestBody = z
  .union([McpJsonRpcMessage, z.array(McpJsonRpcMessage).min(1).max(100)])
  .describe("A JSON-RPC request or notification, or a batch of them (at most 100). The transport also takes a JSON-RPC response (202) and ignores it: this server sends clients no requests.");

/** `POST /mcp`: the documented example, a tool call (each agent is a tool). */
export const MCP_REQUEST_EXAMPLE = { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "default", arguments: { input: "What is 17*23?" } } };

/** A refusal of the MCP transport (400, 406, 415): a JSON-RPC error that answers no request (`id: null`). */
export const McpJsonRpcError = z.strictObject({
  jsonrpc: z.literal("2.0"),
  error: z.strictObject({
    code: z.number().int().describe("-32700 parse error (not JSON, or not a JSON-RPC message), -32600 invalid request, -32000 refused by the transport (Accept, Content-Type, Mcp-Protocol-Version)"),
    message: z.string(),
    data: z.unknown().optional(),
  }),
  id: z.null(),
});
