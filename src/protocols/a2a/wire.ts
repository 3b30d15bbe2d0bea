/**
 * The A2A (Agent2Agent) wire format, hand-written from `@a2a-js/sdk` 1.3 (protocol v1.0, ProtoJSON)
 * and its v0.3 compatibility layer — no run-time import of the SDK.
 *
 * One neutral model (`A2ATask`, `A2AEvent`, …) is rendered in either dialect:
 *   - **v1.0** (what `@a2a-js/sdk` 1.x speaks by default): methods `SendMessage`,
 *     `SendStreamingMessage`, `GetTask`, `CancelTask`, `SubscribeToTask`; states
 *     `TASK_STATE_WORKING`…, roles `ROLE_USER`/`ROLE_AGENT`, parts `{text}`/`{data}`; results wrapped
 *     (`{task}`, `{statusUpdate}`, `{artifactUpdate}`).
 *   - **v0.3** (older clients, and the SDK's `compat/v0_3`): methods `message/send`,
 *     `message/stream`, `tasks/get`, `tasks/cancel`, `tasks/resubscribe`; states `working`…, roles
 *     `user`/`agent`, parts `{kind:"text"}`/`{kind:"data"}`; objects carry `kind`, the last status
 *     update `final: true`.
 * The dialect of a request is told by its method name, so one endpoint serves both.
 */
import { INVALID_TEXT, isValidText } from "../../protocol/limits.ts";

export type Dialect = "v1" | "v0.3";

/** A2A task states agentkit produces (A2A also has `rejected` and `auth-required`: never used here). */
export type A2AState = "submitted" | "working" | "input-required" | "completed" | "failed" | "canceled";

export interface A2APart {
  text?: string;
  data?: unknown;
  mediaType?: string;
  metadata?: Record<string, unknown>;
}

export interface A2AMessage {
  messageId: string;
  role: "user" | "agent";
  parts: A2APart[];
  taskId: string;
  contextId: string;
  metadata?: Record<string, unknown>;
}

export interface A2AStatus {
  state: A2AState;
  message?: A2AMessage;
  timestamp: string;
}

export interface A2AArtifact {
  artifactId: string;
  name: string;
  description?: string;
  parts: A2APart[];
}

export interface A2ATask {
  id: string;
  contextId: string;
  status: A2AStatus;
  artifacts: A2AArtifact[];
  history: A2AMessage[];
  metadata?: Record<string, unknown>;
}

export type A2AEvent =
  | { kind: "task"; task: A2ATask }
  | { kind: "status"; taskId: string; contextId: string; status: A2AStatus; final: boolean; metadata?: Record<string, unknown> }
  | { kind: "artifact"; taskId: string; contextId: string; artifact: A2AArtifact; lastChunk: boolean; metadata?: Record<string, unknown> };

// ---- methods -------------------------------------------------------------------------------

export type Operation = "send" | "stream" | "get" | "cancel" | "subscribe" | "card" | "push";

/** Every JSON-RPC method this endpoint answers, by name: which operation, in which dialect. */
export const METHODS: Record<string, { op: Operation; dialect: Dialect }> = {
  SendMessage: { op: "send", dialect: "v1" },
  SendStreamingMessage: { op: "stream", dialect: "v1" },
  GetTask: { op: "get", dialect: "v1" },
  CancelTask: { op: "cancel", dialect: "v1" },
  SubscribeToTask: { op: "subscribe", dialect: "v1" },
  GetExtendedAgentCard: { op: "card", dialect: "v1" },
  CreateTaskPushNotificationConfig: { op: "push", dialect: "v1" },
  GetTaskPushNotificationConfig: { op: "push", dialect: "v1" },
  ListTaskPushNotificationConfigs: { op: "push", dialect: "v1" },
  DeleteTaskPushNotificationConfig: { op: "push", dialect: "v1" },
  "message/send": { op: "send", dialect: "v0.3" },
  "message/stream": { op: "stream", dialect: "v0.3" },
  "tasks/get": { op: "get", dialect: "v0.3" },
  "tasks/cancel": { op: "cancel", dialect: "v0.3" },
  "tasks/resubscribe": { op: "subscribe", dialect: "v0.3" },
  "agent/getAuthenticatedExtendedCard": { op: "card", dialect: "v0.3" },
  "tasks/pushNotificationConfig/set": { op: "push", dialect: "v0.3" },
  "tasks/pushNotificationConfig/get": { op: "push", dialect: "v0.3" },
  "tasks/pushNotificationConfig/list": { op: "push", dialect: "v0.3" },
  "tasks/pushNotificationConfig/delete": { op: "push", dialect: "v0.3" },
};

// ---- errors --------------------------------------------------------------------------------

/** JSON-RPC and A2A error codes (A2A §: the SDK's `A2A_ERROR_CODE`). */
export const RpcCode = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internal: -32603,
  taskNotFound: -32001,
  taskNotCancelable: -32002,
  pushNotificationNotSupported: -32003,
  unsupportedOperation: -32004,
  contentTypeNotSupported: -32005,
  extendedCardNotConfigured: -32007,
} as const;

/** `google.rpc.ErrorInfo` reasons of the v1.0 error `data` (the SDK's `A2A_ERROR_SPECS`). */
const REASONS: Partial<Record<number, string>> = {
  [RpcCode.taskNotFound]: "TASK_NOT_FOUND",
  [RpcCode.taskNotCancelable]: "TASK_NOT_CANCELABLE",
  [RpcCode.pushNotificationNotSupported]: "PUSH_NOTIFICATION_NOT_SUPPORTED",
  [RpcCode.unsupportedOperation]: "UNSUPPORTED_OPERATION",
  [RpcCode.contentTypeNotSupported]: "CONTENT_TYPE_NOT_SUPPORTED",
  [RpcCode.extendedCardNotConfigured]: "EXTENDED_AGENT_CARD_NOT_CONFIGURED",
  [RpcCode.invalidParams]: "INVALID_PARAMS",
};

/** A JSON-RPC error to answer with (thrown by the handlers, caught by the dispatcher). */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = "RpcError";
  }
}

export type RpcId = string | number | null;

export function rpcError(id: RpcId, error: RpcError, dialect: Dialect) {
  const reason = REASONS[error.code];
  return {
    jsonrpc: "2.0" as const,
    id,
    error: {
      code: error.code,
      message: error.message,
      // v1.0 carries a google.rpc.ErrorInfo; v0.3 had no `data` for these.
      ...(reason && dialect === "v1" ? { data: [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason, domain: "a2a-protocol.org" }] } : {}),
    },
  };
}

export function rpcResult(id: RpcId, result: unknown) {
  return { jsonrpc: "2.0" as const, id, result };
}

// ---- rendering -----------------------------------------------------------------------------

const V1_STATE: Record<A2AState, string> = {
  submitted: "TASK_STATE_SUBMITTED",
  working: "TASK_STATE_WORKING",
  "input-required": "TASK_STATE_INPUT_REQUIRED",
  completed: "TASK_STATE_COMPLETED",
  failed: "TASK_STATE_FAILED",
  canceled: "TASK_STATE_CANCELED",
};

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function renderPart(part: A2APart, dialect: Dialect): Record<string, unknown> {
  if (dialect === "v1") {
    const out: Record<string, unknown> = part.text !== undefined ? { text: part.text } : { data: part.data ?? null };
    if (part.metadata) out.metadata = part.metadata;
    if (part.mediaType) out.mediaType = part.mediaType;
    return out;
  }
  if (part.text !== undefined) return { kind: "text", text: part.text, ...(part.metadata ? { metadata: part.metadata } : {}) };
  // v0.3 data parts hold an object; anything else is wrapped as the SDK's compat layer does.
  if (isPlainObject(part.data)) return { kind: "data", data: part.data, ...(part.metadata ? { metadata: part.metadata } : {}) };
  return { kind: "data", data: { value: part.data ?? null }, metadata: { ...part.metadata, data_part_compat: true } };
}

function renderMessage(message: A2AMessage, dialect: Dialect): Record<string, unknown> {
  const out: Record<string, unknown> =
    dialect === "v1"
      ? { messageId: message.messageId, contextId: message.contextId, taskId: message.taskId, role: message.role === "user" ? "ROLE_USER" : "ROLE_AGENT" }
      : { kind: "message", messageId: message.messageId, contextId: message.contextId, taskId: message.taskId, role: message.role };
  out.parts = message.parts.map((part) => renderPart(part, dialect));
  if (message.metadata) out.metadata = message.metadata;
  return out;
}

function renderStatus(status: A2AStatus, dialect: Dialect): Record<string, unknown> {
  return {
    state: dialect === "v1" ? V1_STATE[status.state] : status.state,
    ...(status.message ? { message: renderMessage(status.message, dialect) } : {}),
    timestamp: status.timestamp,
  };
}

function renderArtifact(artifact: A2AArtifact, dialect: Dialect): Record<string, unknown> {
  return {
    artifactId: artifact.artifactId,
    name: artifact.name,
    ...(artifact.description ? { description: artifact.description } : {}),
    parts: artifact.parts.map((part) => renderPart(part, dialect)),
  };
}

/** A task, with at most `historyLength` of its latest messages (undefined: all; 0: none). */
export function renderTask(task: A2ATask, dialect: Dialect, historyLength?: number): Record<string, unknown> {
  const history = historyLength === undefined ? task.history : historyLength <= 0 ? [] : task.history.slice(-historyLength);
  const out: Record<string, unknown> = dialect === "v1" ? { id: task.id, contextId: task.contextId } : { kind: "task", id: task.id, contextId: task.contextId };
  out.status = renderStatus(task.status, dialect);
  // ProtoJSON leaves empty repeated fields out; v0.3 clients expect the arrays.
  if (task.artifacts.length > 0 || dialect === "v0.3") out.artifacts = task.artifacts.map((artifact) => renderArtifact(artifact, dialect));
  if (history.length > 0 || dialect === "v0.3") out.history = history.map((message) => renderMessage(message, dialect));
  if (task.metadata) out.metadata = task.metadata;
  return out;
}

/** The `result` of `SendMessage` / `message/send`. */
export function renderSendResult(task: A2ATask, dialect: Dialect, historyLength?: number): unknown {
  const rendered = renderTask(task, dialect, historyLength);
  return dialect === "v1" ? { task: rendered } : rendered;
}

/** The `result` of one streamed event (`StreamResponse` in v1.0; the object with its `kind` in v0.3). */
export function renderStreamEvent(event: A2AEvent, dialect: Dialect, historyLength?: number): unknown {
  switch (event.kind) {
    case "task":
      return dialect === "v1" ? { task: renderTask(event.task, dialect, historyLength) } : renderTask(event.task, dialect, historyLength);
    case "status": {
      const body: Record<string, unknown> = { taskId: event.taskId, contextId: event.contextId, status: renderStatus(event.status, dialect) };
      if (event.metadata) body.metadata = event.metadata;
      return dialect === "v1" ? { statusUpdate: body } : { kind: "status-update", ...body, final: event.final };
    }
    case "artifact": {
      const body: Record<string, unknown> = { taskId: event.taskId, contextId: event.contextId, artifact: renderArtifact(event.artifact, dialect), lastChunk: event.lastChunk };
      if (event.metadata) body.metadata = event.metadata;
      return dialect === "v1" ? { artifactUpdate: body } : { kind: "artifact-update", ...body };
    }
  }
}

// ---- reading requests ----------------------------------------------------------------------

/** A client's message, read from either dialect. */
export interface IncomingMessage {
  messageId: string;
  taskId?: string;
  contextId?: string;
  /** The text parts, in order, joined with blank lines; data parts as their JSON. */
  text: string;
  /** The data parts (e.g. `{decision, call_id, reason}` for an approval). */
  data: unknown[];
}

/** Reads `params.message` of a send request; throws `RpcError` (invalid params, content type). */
export function readMessage(params: Record<string, unknown>, maxChars: number): IncomingMessage {
  const message = params.message;
  if (!isPlainObject(message)) throw new RpcError(RpcCode.invalidParams, "params.message is required (an object)");
  const role = message.role;
  if (role !== undefined && role !== "user" && role !== "ROLE_USER" && role !== 1) {
    throw new RpcError(RpcCode.invalidParams, `message.role must be the user's (ROLE_USER / "user"), got ${JSON.stringify(role)}`);
  }
  if (!Array.isArray(message.parts) || message.parts.length === 0) throw new RpcError(RpcCode.invalidParams, "message.parts must be a non-empty array");
  const texts: string[] = [];
  const data: unknown[] = [];
  for (const part of message.parts as unknown[]) {
    if (!isPlainObject(part)) throw new RpcError(RpcCode.invalidParams, "each message part must be an object");
    if (typeof part.text === "string") texts.push(part.text);
    else if ("data" in part) {
      data.push(part.data);
      texts.push(JSON.stringify(part.data));
    } else if (part.kind === "file" || "url" in part || "raw" in part) {
      throw new RpcError(RpcCode.contentTypeNotSupported, "File parts are not supported: send text (text/plain) or data (application/json) parts");
    } else throw new RpcError(RpcCode.invalidParams, "a message part must have text or data");
  }
  const text = texts.join("\n\n");
  if (text.length > maxChars) throw new RpcError(RpcCode.invalidParams, `The message's text is longer than ${maxChars} characters`);
  if (!isValidText(text)) throw new RpcError(RpcCode.invalidParams, `The message's text ${INVALID_TEXT}`);
  // Task and context ids are agentkit's task and thread ids (at most 128 characters); a message id is the client's own.
  const id = (name: string, max: number): string | undefined => {
    const value = message[name];
    if (value === undefined || value === null || value === "") return undefined;
    if (typeof value !== "string" || value.length > max) throw new RpcError(RpcCode.invalidParams, `message.${name} must be a string of at most ${max} characters`);
    return value;
  };
  return { messageId: id("messageId", 256) ?? crypto.randomUUID(), taskId: id("taskId", 128), contextId: id("contextId", 128), text, data };
}

/** `params.id` of a task method. */
export function readTaskId(params: Record<string, unknown>): string {
  const id = params.id;
  if (typeof id !== "string" || id === "" || id.length > 128) throw new RpcError(RpcCode.invalidParams, "params.id must be a task id (a string)");
  return id;
}

/** `historyLength` (GetTask: `params.historyLength`; send: `params.configuration.historyLength`), if given. */
export function readHistoryLength(from: unknown): number | undefined {
  if (!isPlainObject(from)) return undefined;
  const value = from.historyLength ?? from.history_length;
  if (value === undefined || value === null) return undefined;
  const number = typeof value === "string" ? Number(value) : value;
  if (typeof number !== "number" || !Number.isInteger(number) || number < 0) throw new RpcError(RpcCode.invalidParams, "historyLength must be a non-negative integer");
  return number;
}

/**
 * Whether a send waits for the task to end (or to need input) before answering: v1.0 waits unless
 * `configuration.returnImmediately` is true; v0.3 waits only when `configuration.blocking` is true
 * (the SDK's compat layer reads an absent `blocking` as "return immediately").
 */
export function readBlocking(params: Record<string, unknown>, dialect: Dialect): boolean {
  const configuration = isPlainObject(params.configuration) ? params.configuration : {};
  if (dialect === "v1") return configuration.returnImmediately !== true && configuration.return_immediately !== true;
  return configuration.blocking === true;
}

export { isPlainObject };
