/**
 * The AsyncAPI 3.0 document of the task WebSocket (`GET /asyncapi.json`), generated from the frame
 * schemas of src/protocol/frames.ts and the event schemas of src/protocol/events.ts with
 * `z.toJSONSchema` (draft-07: AsyncAPI 3.0's default schema format is a superset of it).
 *
 * It describes the agentkit server: it *sends* the server frames and *receives* the client frames
 * (requests that are answered say so with a `reply`). Close codes, which AsyncAPI has no field for,
 * are in the channel's description and in `x-close-codes`.
 */
import { z } from "zod";
import { CloseCode } from "../errors.ts";
import { WatchQuery } from "../protocol/api.ts";
import { TaskEvent } from "../protocol/events.ts";
import { AckFrame, ClientFrame, ConnectedFrame, DeltaFrame, ErrorFrame, PongFrame, ResultData, ResultFrame, ResyncFrame, StepFrame } from "../protocol/frames.ts";
import { StopReason, TaskError, TaskStatus } from "../protocol/task.ts";

type JsonSchema = Record<string, unknown>;

/** What each close code means, and whether a client should reconnect (with `after=<last seq>`). */
export const CLOSE_CODES: Record<keyof typeof CloseCode, { meaning: string; reconnect: boolean }> = {
  normal: { meaning: "Normal closure", reconnect: false },
  goingAway: {
    meaning: "The server is shutting down, or its store could not be read as the watch began (an 'unavailable' error frame first): reconnect with after=<last seq> (to another node, or once it is back)",
    reconnect: true,
  },
  policyViolation: { meaning: "The client sent more than 200 frames (messages, pings or pongs) in one second", reconnect: false },
  tooBig: { meaning: "A client frame was larger than AGENTKIT_MAX_FRAME_BYTES (closed by Bun's WebSocket, with no error frame)", reconnect: false },
  serverError: { meaning: "A server fault", reconnect: false },
  badRequest: { meaning: "Bad query (after=abc, or after beyond the task's last event), or a task id of no possible length (empty, or over 128 characters); a well-formed unknown id is 4404", reconnect: false },
  unauthorized: { meaning: "Missing or wrong key", reconnect: false },
  forbidden: { meaning: "Reserved; not sent by this version (a share token's refused requests get a 'forbidden' error frame, and the connection stays open)", reconnect: false },
  notFound: { meaning: "No such task (or another key's)", reconnect: false },
  tooSlow: {
    meaning:
      "Too slow: more than AGENTKIT_SLOW_CLIENT_BYTES stayed queued unread for AGENTKIT_SLOW_CLIENT_GRACE_MS (or 4× that, at least 2 MiB, at once); sent once the client has read what was queued (one that reads none of it for a heartbeat period more is cut off without a close frame: 1006); reconnect with after=<last seq>",
    reconnect: true,
  },
  heartbeatTimeout: { meaning: "Nothing heard from the client (not even a pong) for the heartbeat period; reconnect with after=<last seq>", reconnect: true },
  tooManyWatchers: { meaning: "Too many watchers (for the task, or for the key)", reconnect: false },
};

/** The `type` of a frame schema (`z.literal`). */
function frameType(schema: z.ZodObject): string {
  return (schema.shape.type as z.ZodLiteral<string>).value;
}

const SERVER_FRAMES: Record<string, { schema: z.ZodObject; summary: string }> = {
  connected: { schema: ConnectedFrame, summary: "First, always: the task's status and last seq" },
  step: { schema: StepFrame, summary: "Each durable event of the task (numbered by seq; see StepEvent for every event_type)" },
  result: { schema: ResultFrame, summary: "The end: the task's final status, output, usage and cost (error when it failed or timed out)" },
  delta: { schema: DeltaFrame, summary: "Live only: text or reasoning as the model produces it; no seq, never replayed (deltas=0 opts out)" },
  resync: { schema: ResyncFrame, summary: "Instead of events retention pruned: a snapshot; the stream goes on after pruned_through" },
  ack: { schema: AckFrame, summary: "An input, approve, reject or answer frame was accepted (it is durable)" },
  error: { schema: ErrorFrame, summary: "A bad or refused client frame (the connection stays open), or the reason before a close" },
  pong: { schema: PongFrame, summary: "The answer to a ping frame" },
};

const CLIENT_SUMMARIES: Record<string, string> = {
  ping: "Asks for a pong (for clients that cannot see protocol pings)",
  cancel: "Cancels the task for every watcher (each gets result with status cancelled); on a task that has ended, changes nothing and sends nothing",
  input: "Steering: a message the model reads before its next step",
  approve: "Approves a call waiting for approval",
  reject: "Rejects a call waiting for approval",
  answer: "Answers an ask_user question",
};
interface Reply {
  /** The server frames that may answer. */
  messages: string[];
  /** What comes back, and when. */
  description: string;
  /** When nothing comes back (absent: something always does). */
  none?: string;
}
/** A request frame's answer: an `ack` once it is stored, else an `error` with its `request_id` and one of `refusals`. */
function acked(what: string, refusals: string): Reply {
  return {
    messages: ["ack", "error"],
    description: `An \`ack\` (with the frame's \`request_id\`) once ${what} is stored; or an \`error\` with the \`request_id\`: ${refusals}, \`validation_failed\`, \`bad_request\`, or \`forbidden\` (a share token).`,
  };
}
/** What the server answers each client frame with, and when. */
const REPLIES: Record<string, Reply> = {
  ping: { messages: ["pong"], description: "A `pong`, always (from a share token too)." },
  cancel: {
    messages: ["result", "error"],
    description:
      "There is no `ack` (a `cancel` has no `request_id`; one sent is ignored): the answer is the task's end. A task that has not ended (queued, running or waiting) ends `cancelled`, and every watcher, this one included, gets its `result` frame (with the status it ended in, should it end by itself first). From a share token: an `error` (`forbidden`), nothing cancelled. A cancel that fails in the server: an `error` (`internal`), then close 1011.",
    none: "The task has already ended: the cancel changes nothing and nothing is sent (its `result` was sent already).",
  },
  input: acked("the message", "`conflict` (the task has ended), `queue_full` (32 messages already wait for its next step)"),
  approve: acked("the decision", "`conflict` (the task has ended, or the call was decided already), `not_found` (no such call waits)"),
  reject: acked("the decision", "`conflict` (the task has ended, or the call was decided already), `not_found` (no such call waits)"),
  answer: acked("the answer", "`conflict` (the task has ended, or the question was answered already), `not_found` (no such question waits)"),
};

/** Draft-07 schemas of a registry, `$ref`s as `#/components/schemas/<name>`. */
function convertAll(named: Record<string, z.ZodType>, io: "input" | "output"): Record<string, JsonSchema> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(named)) registry.add(schema, { id });
  const converted = z.toJSONSchema(registry, { target: "draft-7", io, unrepresentable: "any", uri: (id) => `#/components/schemas/${id}` });
  const schemas: Record<string, JsonSchema> = {};
  for (const [id, schema] of Object.entries(converted.schemas)) {
    const { $schema: _schema, $id: _id, ...rest } = schema as JsonSchema;
    schemas[id] = rest;
  }
  return schemas;
}

function capitalised(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** The AsyncAPI 3.0.0 document of the task WebSocket. Pure: build it once and cache it. */
export function buildAsyncApiDocument(options: { version: string }): Record<string, unknown> {
  const clientFrames = Object.fromEntries((ClientFrame.options as readonly z.ZodObject[]).map((schema) => [frameType(schema), schema]));
  // A step frame, precisely: its `data` is one of the step events (every event but final_answer, which becomes the result).
  const stepEvents = (TaskEvent.options as readonly z.ZodObject[]).filter((event) => (event.shape.event_type as z.ZodLiteral<string>).value !== "final_answer");
  const eventSchemas: Record<string, z.ZodType> = {};
  for (const event of stepEvents) {
    const type = (event.shape.event_type as z.ZodLiteral<string>).value;
    eventSchemas[`${type.split("_").map(capitalised).join("")}Step`] = event.extend({ timestamp: z.string() });
  }
  const StepEvent = z.discriminatedUnion("event_type", Object.values(eventSchemas) as unknown as [z.ZodObject, ...z.ZodObject[]]);
  const DocumentedStepFrame = StepFrame.extend({ data: StepEvent });

  const sent: Record<string, z.ZodType> = { TaskStatus, StopReason, TaskError, ResultData, StepEvent, ...eventSchemas };
  for (const [type, frame] of Object.entries(SERVER_FRAMES)) sent[`${capitalised(type)}Frame`] = type === "step" ? DocumentedStepFrame : frame.schema;
  // What clients send is validated on the way in: shown as zod inputs (unknown keys are ignored).
  const received: Record<string, z.ZodType> = {};
  for (const [type, schema] of Object.entries(clientFrames)) received[`${capitalised(type)}Request`] = schema;
  const schemas = { ...convertAll(sent, "output"), ...convertAll(received, "input") };
  const { $schema: _querySchema, ...query } = z.toJSONSchema(WatchQuery, { target: "draft-7", io: "input", unrepresentable: "any" }) as JsonSchema;

  const messages: Record<string, unknown> = {};
  const channelMessages: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  const channel = { $ref: "#/channels/task" };
  const messageRef = (name: string) => ({ $ref: `#/channels/task/messages/${name}` });
  for (const [type, frame] of Object.entries(SERVER_FRAMES)) {
    const name = `server.${type}`;
    messages[name] = { name: type, title: `${type} (server → client)`, summary: frame.summary, payload: { $ref: `#/components/schemas/${capitalised(type)}Frame` }, "x-direction": "server-to-client" };
    channelMessages[name] = { $ref: `#/components/messages/${name}` };
    operations[`send${capitalised(type)}`] = { action: "send", channel, summary: frame.summary, messages: [messageRef(name)] };
  }
  for (const type of Object.keys(clientFrames)) {
    const name = `client.${type}`;
    messages[name] = { name: type, title: `${type} (client → server)`, summary: CLIENT_SUMMARIES[type] ?? type, payload: { $ref: `#/components/schemas/${capitalised(type)}Request` }, "x-direction": "client-to-server" };
    channelMessages[name] = { $ref: `#/components/messages/${name}` };
    const reply = REPLIES[type] ?? { messages: ["error"], description: "An `error`." };
    operations[`receive${capitalised(type)}`] = {
      action: "receive",
      channel,
      summary: CLIENT_SUMMARIES[type] ?? type,
      description: reply.none ? `${reply.description} ${reply.none}` : reply.description,
      messages: [messageRef(name)],
      // AsyncAPI has no way to say a reply may not come: `x-no-reply` says when it does not.
      reply: { channel, messages: reply.messages.map((message) => messageRef(`server.${message}`)), ...(reply.none ? { "x-no-reply": reply.none } : {}) },
    };
  }

  const closeCodes = Object.entries(CLOSE_CODES).map(([name, about]) => ({ code: CloseCode[name as keyof typeof CloseCode], name, ...about }));
  const closeTable = closeCodes.map((close) => `- \`${close.code}\` ${close.name}: ${close.meaning}${close.reconnect ? " (reconnect)" : ""}`).join("\n");

  return {
    asyncapi: "3.0.0",
    info: {
      title: "agentkit task WebSocket",
      version: options.version,
      description:
        "Watch a task live and act on it. Every frame is one JSON text message. The server sends `connected` first, then the task's durable frames (`step`, then `result`) with `seq > after` and live `delta`s; the connection stays open after `result`. A client that reconnects with `after=<last seq it has>` misses nothing and sees nothing twice. Anything the server cannot read (not JSON, binary, an unknown `type`) gets an `error` frame and the connection stays open. Server-Sent Events (`GET /tasks/{id}/events` with `Accept: text/event-stream`) carry the same server frames.",
    },
    defaultContentType: "application/json",
    servers: {
      agentkit: {
        host: "{host}",
        protocol: "ws",
        description: "This server (`wss` behind TLS)",
        variables: { host: { default: "localhost:8000", description: "The server's host and port" } },
        security: [
          { $ref: "#/components/securitySchemes/subprotocol" },
          { $ref: "#/components/securitySchemes/apiKeyQuery" },
          { $ref: "#/components/securitySchemes/bearer" },
          { $ref: "#/components/securitySchemes/apiKeyHeader" },
        ],
      },
    },
    channels: {
      task: {
        address: "/ws/tasks/{taskId}",
        title: "A task's live stream",
        description: `Open with \`GET /ws/tasks/{taskId}?after=N&deltas=1\`. A wrong key, an unknown task or a bad query get an \`error\` frame, then a close. Close codes (each after an \`error\` frame, except 4008, 4408, 1008, 1009 and 1001):\n\n${closeTable}`,
        parameters: { taskId: { description: "The task's id" } },
        messages: channelMessages,
        bindings: { ws: { method: "GET", query, bindingVersion: "0.1.0" } },
        "x-close-codes": closeCodes,
      },
    },
    operations,
    components: {
      schemas,
      messages,
      securitySchemes: {
        subprotocol: {
          type: "httpApiKey",
          in: "header",
          name: "Sec-WebSocket-Protocol",
          description: "Browsers (which cannot set headers): offer the subprotocols `agentkit` and `agentkit.key.<key>`; the server selects `agentkit` and never echoes the key",
        },
        apiKeyQuery: { type: "httpApiKey", in: "query", name: "api_key", description: "`?api_key=<key>` (the seed's way; a URL may be logged: browsers should prefer the subprotocol)" },
        bearer: { type: "http", scheme: "bearer", description: "`Authorization: Bearer <key>`" },
        apiKeyHeader: { type: "httpApiKey", in: "header", name: "X-API-Key", description: "`X-API-Key: <key>`" },
      },
    },
  };
}
