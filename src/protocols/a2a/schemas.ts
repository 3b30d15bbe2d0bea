/**
 * The A2A routes' shapes for the OpenAPI document (src/server/openapi.ts). The A2A specification
 * defines the messages themselves; these say what the envelope is, loosely where the spec rules.
 */
import { z } from "zod";

const RpcIdSchema = z.union([z.string(), z.number().int(), z.null()]);

/** A JSON-RPC 2.0 request (`POST /a2a/{agent}`): an A2A method and its params. */
export const A2AJsonRpcRequest = z.strictObject({
  jsonrpc: z.literal("2.0"),
  id: RpcIdSchema.optional(),
  method: z
    .string()
    .min(1)
    .describe(
      "v1.0: SendMessage, SendStreamingMessage, GetTask, CancelTask, SubscribeToTask (the streaming ones answer text/event-stream); v0.3: message/send, message/stream, tasks/get, tasks/cancel, tasks/resubscribe",
    ),
  params: z.record(z.string(), z.unknown()).optional(),
});

/** A JSON-RPC 2.0 response: a `result`, or an `error` with an A2A code (-32001 task not found, …). */
export const A2AJsonRpcResponse = z.union([
  z.strictObject({ jsonrpc: z.literal("2.0"), id: RpcIdSchema, result: z.unknown() }),
  z.strictObject({
    jsonrpc: z.literal("2.0"),
    id: RpcIdSchema,
    error: z.strictObject({ code: z.number().int(), message: z.string(), data: z.unknown().optional() }),
  }),
]);

/** An A2A agent card (v1.0 with `A2A-Version: 1.0`, else v0.3): its fields are the A2A specification's. */
export const A2AAgentCard = z.looseObject({
  name: z.string(),
  description: z.string(),
  version: z.string(),
  capabilities: z.looseObject({ streaming: z.boolean(), pushNotifications: z.boolean() }),
  defaultInputModes: z.array(z.string()),
  defaultOutputModes: z.array(z.string()),
  skills: z.array(z.looseObject({ id: z.string(), name: z.string(), description: z.string(), tags: z.array(z.string()) })),
});

/** `POST /a2a/{agent}`: the documented example. */
export const A2A_REQUEST_EXAMPLE = {
  jsonrpc: "2.0",
  id: 1,
  method: "SendMessage",
  params: { message: { messageId: "msg-1", role: "ROLE_USER", parts: [{ text: "What is 17*23?" }] }, configuration: { returnImmediately: true } },
};
