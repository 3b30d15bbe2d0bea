/**
 * The OpenAPI 3.1 document of the REST API (`GET /openapi.json`), generated from the zod schemas
 * the routes validate with (src/protocol/api.ts) and the ones their answers are built from
 * (src/protocol/task.ts, frames.ts): one source of truth, converted with zod's own
 * `z.toJSONSchema` (draft 2020-12, the dialect of OpenAPI 3.1).
 *
 * `ROUTE_DOCS` is the table of every route app.ts answers (a test checks it against app.ts's
 * `ROUTES`, both ways); `buildOpenApiDocument` turns it into the document. Named schemas go into
 * `components.schemas` and are `$ref`ed; request bodies are converted as zod *inputs*, responses as
 * *outputs* (so an answer's object says `additionalProperties: false`: a test parses real answers
 * strictly). The WebSocket protocol is documented beside it as AsyncAPI (asyncapi.ts).
 */
import { z } from "zod";
import { AgentkitError, type ErrorCode } from "../errors.ts";
import {
  AnswerBody,
  ApprovalBody,
  BusyPolicy,
  CreateTaskBody,
  CreateThreadTaskBody,
  EventsQuery,
  InputBody,
  ListTasksQuery,
  ListThreadsQuery,
  TaskIdParam,
  WatchQuery,
} from "../protocol/api.ts";
import {
  AckFrame,
  ConnectedFrame,
  DeltaFrame,
  ErrorFrame,
  PongFrame,
  ResultData,
  ResultFrame,
  ResyncFrame,
  ServerFrame,
  StepFrame,
} from "../protocol/frames.ts";
import { StopReason, Task, TaskError, TaskErrorCode, TaskMetadata, TaskStatus, Thread } from "../protocol/task.ts";
import { ShareBody } from "./share-tokens.ts";
import { A2A_REQUEST_EXAMPLE, A2AAgentCard, A2AJsonRpcRequest, A2AJsonRpcResponse } from "../protocols/a2a/schemas.ts";
import { WebhookDelivery, WebhookDeliveryList, WebhookSecretResponse } from "../webhooks/schemas.ts";
import { MCP_REQUEST_EXAMPLE, McpJsonRpcError, McpJsonRpcMessage, McpRequestBody } from "../protocols/mcp/schemas.ts";
import { AG_UI_REQUEST_EXAMPLE, AgUiMessage, RunAgentInput } from "../protocols/ag-ui/schemas.ts";

// ---- response shapes (what app.ts answers; the request shapes are in src/protocol/api.ts) ----

/** Every error code, at run time (`ErrorCode` is a type); the check below fails to compile if one is missing. */
export const ERROR_CODES = [
  "bad_request",
  "validation_failed",
  "unauthorized",
  "forbidden",
  "not_found",
  "method_not_allowed",
  "conflict",
  "payload_too_large",
  "unsupported_media_type",
  "queue_full",
  "upgrade_required",
  "too_many_watchers",
  "unavailable",
  "not_implemented",
  "internal",
] as const satisfies readonly ErrorCode[];
const everyErrorCode: [Exclude<ErrorCode, (typeof ERROR_CODES)[number]>] extends [never] ? true : false = true;
void everyErrorCode;

/** The codes answered with an HTTP status, from the one mapping in errors.ts. */
export function errorCodesOf(status: number): ErrorCode[] {
  return ERROR_CODES.filter((code) => new AgentkitError(code, "").httpStatus === status);
}

/** `{"error":{"code","message"[,"details"]}}`, with `code` one of `codes`. */
export function errorBody(codes: readonly [ErrorCode, ...ErrorCode[]]) {
  return z.strictObject({
    error: z.strictObject({
      code: z.enum(codes),
      message: z.string(),
      /** `validation_failed`: the issues, `[{path, message}]`. */
      details: z.unknown().optional(),
    }),
  });
}
export const ErrorResponse = errorBody(ERROR_CODES);

export const Health = z.object({
  status: z.enum(["ok", "degraded"]),
  version: z.string(),
  uptime_s: z.number().int().nonnegative(),
  tasks: z.object({ running: z.number().int().nonnegative(), queued: z.number().int().nonnegative() }),
  node: z.string().optional(),
  role: z.enum(["all", "api", "worker"]).optional(),
  cluster: z.boolean().optional(),
  database: z.enum(["reachable", "unreachable"]).optional(),
  /**
   * One node (SQLite): whether the store takes writes. `failing` (a write refused: a full disk, an
   * I/O error; a failed read is not) or `lost` (agentkit.sqlite deleted or replaced under the
   * server) makes `status` `degraded`.
   */
  store: z
    .union([
      z.object({ writes: z.literal("ok") }),
      z.object({ writes: z.enum(["failing", "lost"]), since: z.string(), error: z.string() }),
    ])
    .optional(),
});

export const AgentInfo = z.object({
  name: z.string(),
  description: z.string(),
  model: z.string(),
  tools: z.array(z.string()),
  max_steps: z.number().int(),
  timeout_ms: z.number().int(),
  approval: z.array(z.string()),
  on_busy: BusyPolicy,
  output_schema: z.record(z.string(), z.unknown()).nullable(),
  default: z.boolean(),
});
export const AgentList = z.object({ agents: z.array(AgentInfo) });

export const TaskList = z.object({ tasks: z.array(Task), next_cursor: z.string().nullable() });
export const ThreadList = z.object({ threads: z.array(Thread), next_cursor: z.string().nullable() });
export const ThreadWithTasks = Thread.extend({ tasks: z.array(Task), tasks_truncated: z.boolean() });

/** A stored frame: a `step` or the `result`, with its `seq`. */
export const DurableFrame = z.discriminatedUnion("type", [StepFrame, ResultFrame]);
export const EventsPage = z.object({
  task_id: z.string(),
  status: TaskStatus,
  last_seq: z.number().int().nonnegative(),
  pruned_through: z.number().int().nonnegative(),
  events: z.array(DurableFrame),
});

/** Every frame a watcher (WebSocket or Server-Sent Events) receives. */
export const WatchFrame = ServerFrame;

export const SteeredResponse = z.object({ steered: z.literal(true), input_id: z.string(), task: Task });
export const InputAccepted = z.object({ task_id: z.string(), input_id: z.string() });
export const ShareResponse = z.object({
  token: z.string(),
  expires_at: z.string(),
  scope: z.enum(["task", "thread"]),
  id: z.string(),
  watch_url: z.string(),
  events_url: z.string(),
});
/** The two machine-readable documents, loosely: their own specifications define them. */
export const OpenApiDocumentShape = z.looseObject({ openapi: z.literal("3.1.0"), info: z.looseObject({ title: z.string(), version: z.string() }), paths: z.record(z.string(), z.unknown()) });
export const AsyncApiDocumentShape = z.looseObject({ asyncapi: z.literal("3.0.0"), info: z.looseObject({ title: z.string(), version: z.string() }), channels: z.record(z.string(), z.unknown()) });

/**
 * The schemas shown in `components.schemas`, by name: request bodies as zod inputs, the rest as
 * outputs. A route may only use schemas listed here (the generator throws otherwise).
 */
export const REQUEST_SCHEMAS: Record<string, z.ZodType> = {
  CreateTaskBody,
  CreateThreadTaskBody,
  ApprovalBody,
  AnswerBody,
  InputBody,
  ShareBody,
  BusyPolicy,
  A2AJsonRpcRequest,
  McpJsonRpcMessage,
  McpRequest: McpRequestBody,
  AgUiMessage,
  RunAgentInput,
};
export const RESPONSE_SCHEMAS: Record<string, z.ZodType> = {
  Error: ErrorResponse,
  Health,
  AgentInfo,
  AgentList,
  BusyPolicy,
  TaskStatus,
  StopReason,
  TaskErrorCode,
  TaskError,
  TaskMetadata,
  Task,
  TaskList,
  Thread,
  ThreadList,
  ThreadWithTasks,
  StepFrame,
  ResultData,
  ResultFrame,
  DurableFrame,
  EventsPage,
  ConnectedFrame,
  DeltaFrame,
  ResyncFrame,
  AckFrame,
  ErrorFrame,
  PongFrame,
  WatchFrame,
  SteeredResponse,
  InputAccepted,
  ShareResponse,
  WebhookDelivery,
  WebhookDeliveryList,
  WebhookSecretResponse,
  A2AJsonRpcResponse,
  A2AAgentCard,
  McpJsonRpcError,
  OpenApiDocument: OpenApiDocumentShape,
  AsyncApiDocument: AsyncApiDocumentShape,
};

// ---- the route table ----------------------------------------------------------------------

export type Auth =
  /** Open: no key read. */
  | "none"
  /** A key (or share token) as `Authorization: Bearer` or `X-API-Key`, when keys are configured. */
  | "key"
  /** As `key`, or `?api_key=` (the event stream, for EventSource, which cannot set headers). */
  | "stream"
  /** The WebSocket: `?api_key=`, the headers, or the subprotocol `agentkit.key.<key>`. */
  | "websocket";

export interface ResponseDoc {
  description: string;
  /** The body's schema (a value of REQUEST_/RESPONSE_SCHEMAS, or an `errorBody`); none: no body. */
  schema?: z.ZodType;
  /** Default `application/json`. */
  contentType?: "application/json" | "text/event-stream" | "text/html" | "text/plain";
  /**
   * A second representation of the same answer (content negotiation, or the method asked for):
   * Server-Sent Events, each `data:` line one `eventData` (a value of RESPONSE_SCHEMAS).
   */
  alternative?: { contentType: "text/event-stream"; description: string; eventData: z.ZodType };
  headers?: Record<string, { description: string; schema: Record<string, unknown> }>;
}

export interface RouteDoc {
  method: "GET" | "POST";
  /** As app.ts registers it (`/tasks/:id`). */
  path: string;
  operationId: string;
  summary: string;
  description: string;
  tags: string[];
  auth: Auth;
  params?: z.ZodObject;
  query?: z.ZodObject;
  /** What each query parameter means (shown beside its schema). */
  queryDescriptions?: Record<string, string>;
  headers?: { name: string; description: string; schema: Record<string, unknown>; required?: boolean }[];
  body?: { schema: z.ZodType; required: boolean; example: unknown };
  responses: Record<number, ResponseDoc>;
  /** For the WebSocket route: where its messages are documented. */
  externalDocs?: { url: string; description: string };
}

const RETRY_AFTER = { description: "Seconds to wait before trying again", schema: { type: "integer", minimum: 1 } };
const LOCATION = { description: "The new resource's path", schema: { type: "string" } };

/** The error answers of a route, each with the codes errors.ts maps to that status. */
function errors(...statuses: number[]): Record<number, ResponseDoc> {
  const out: Record<number, ResponseDoc> = {};
  for (const status of statuses) {
    const codes = errorCodesOf(status);
    if (codes.length === 0) throw new Error(`no error code answers ${status}`);
    out[status] = {
      description: `${ERROR_STATUS_TEXT[status] ?? "Error"}: ${codes.map((code) => `\`${code}\``).join(" or ")}`,
      schema: errorBody(codes as [ErrorCode, ...ErrorCode[]]),
      ...(status === 429 || status === 503 ? { headers: { "Retry-After": RETRY_AFTER } } : {}),
    };
  }
  return out;
}
const ERROR_STATUS_TEXT: Record<number, string> = {
  400: "Bad request (the message says what; `validation_failed` lists the issues in `details`)",
  401: "Missing or wrong API key",
  403: "Forbidden (a share token asked for more than watching, a tenant key for the admin's, or a browser origin not in AGENTKIT_CORS_ORIGINS opened a WebSocket)",
  404: "No such resource, or another key's",
  405: "Method not allowed (with `Allow`)",
  409: "Conflict",
  413: "Body too large",
  415: "The body must be JSON",
  426: "Not a WebSocket upgrade",
  429: "Too many",
  501: "Not available on this server",
  503: "Unavailable (the database is unreachable, the store cannot write or be read, or the server is stopping)",
};

const CREATE_TASK_EXAMPLE = { input: "What is 17*23?" };
/** What `POST /tasks` and `POST /threads/:id/tasks` answer. */
const CREATE_TASK_RESPONSES = {
  201: { description: "The task, queued", schema: Task, headers: { Location: LOCATION } },
  202: { description: "The thread was busy and its policy is `steer`: the input joined its running task", schema: SteeredResponse },
  ...errors(400, 401, 403, 404, 409, 413, 415, 429, 501, 503),
};

export const ROUTE_DOCS: readonly RouteDoc[] = [
  {
    method: "GET",
    path: "/health",
    operationId: "getHealth",
    summary: "Liveness and queue",
    description:
      "Open (no key). Always 200 while the process is alive; in a cluster, `database` says whether PostgreSQL answers (`status` is then `degraded`, still 200).",
    tags: ["server"],
    auth: "none",
    responses: { 200: { description: "The server's state", schema: Health } },
  },
  {
    method: "GET",
    path: "/metrics",
    operationId: "getMetrics",
    summary: "Prometheus metrics",
    description:
      "The Prometheus text exposition format (`text/plain; version=0.0.4`): tasks by status and stop reason, queue depth, running tasks, watchers, frames published, slow-client closes, model and tool latency, tokens and errors, event-store append latency. The admin key when keys are configured (a tenant key or a share token: 403); in open mode (no key configured), anyone. Served by every node, a `worker` too.",
    tags: ["server"],
    auth: "key",
    responses: { 200: { description: "The metrics", contentType: "text/plain" }, ...errors(401, 403) },
  },
  {
    method: "GET",
    path: "/agents",
    operationId: "listAgents",
    summary: "The configured agents",
    description: "`approval`: the tools whose calls wait for a person; `output_schema`: the JSON Schema of the agent's final answer, or null; `default`: used when a task names no agent.",
    tags: ["agents"],
    auth: "key",
    responses: { 200: { description: "Every agent", schema: AgentList }, ...errors(401, 403) },
  },
  {
    method: "POST",
    path: "/tasks",
    operationId: "createTask",
    summary: "Start a task",
    description:
      "Queues a task on an agent (the default one when `agent` is absent). With `thread_id` the task continues that thread; when an earlier task of the thread has not ended, `on_busy` (default: the agent's) decides: `enqueue` (runs after it), `reject` (409), `interrupt` (cancels it), `steer` (the input joins the running task: 202).",
    tags: ["tasks"],
    auth: "key",
    body: { schema: CreateTaskBody, required: true, example: CREATE_TASK_EXAMPLE },
    responses: CREATE_TASK_RESPONSES,
  },
  {
    method: "GET",
    path: "/tasks",
    operationId: "listTasks",
    summary: "List tasks",
    description:
      "Your tasks (every task, for the admin key), newest first. Pass `next_cursor` back as `cursor` for the next page; a page also ends once it holds about 1 MiB of JSON (always at least one task).",
    tags: ["tasks"],
    auth: "key",
    query: ListTasksQuery,
    queryDescriptions: { status: "Only tasks in this status", limit: "Tasks per page", cursor: "`next_cursor` of the previous page" },
    responses: { 200: { description: "A page of tasks", schema: TaskList }, ...errors(400, 401, 403) },
  },
  {
    method: "GET",
    path: "/tasks/:id",
    operationId: "getTask",
    summary: "Get a task",
    description: "The task (another key's is a 404, as a missing one). A share token for it may read it.",
    tags: ["tasks"],
    auth: "key",
    params: TaskIdParam,
    responses: { 200: { description: "The task", schema: Task }, ...errors(400, 401, 404) },
  },
  {
    method: "GET",
    path: "/tasks/:id/events",
    operationId: "getTaskEvents",
    summary: "A task's events (JSON page or live Server-Sent Events)",
    description:
      "With `Accept: application/json` (or none, or `*/*`): the stored frames with `seq > after`, exactly as the WebSocket sends them: at most `limit`, and no more than about 1 MiB of frames (the frame that reaches 1 MiB is the last; at least one), so a page may end before `last_seq` — read on with `after` = its last seq. With `Accept: text/event-stream` (as an EventSource sends): the same stream as the WebSocket, one frame per `data:` line, durable frames with `id: <seq>` (a reconnecting EventSource resumes with `Last-Event-ID`); the stream ends after `result`. The event stream (only it) also takes the key as `?api_key=`. An `after` (or `Last-Event-ID`) beyond the task's last event is a 400.",
    tags: ["tasks", "watching"],
    auth: "stream",
    params: TaskIdParam,
    query: EventsQuery,
    queryDescriptions: {
      after: "The last seq the client has (frames with a greater seq are sent)",
      limit: "JSON only: the most frames in the page (a page also stops at about 1 MiB of frames)",
      deltas: "Event stream only: `0` opts out of live `delta` frames",
    },
    headers: [
      { name: "Accept", description: "`text/event-stream` for the live stream; JSON otherwise (q-values are honoured)", schema: { type: "string" } },
      { name: "Last-Event-ID", description: "Event stream: the last seq received (an EventSource sends it when it reconnects); wins over `after`", schema: { type: "string", pattern: "^\\d{1,15}$" } },
    ],
    responses: {
      200: {
        description: "A page of stored frames, or (`text/event-stream`) the live stream",
        schema: EventsPage,
        alternative: {
          contentType: "text/event-stream",
          description: "Server-Sent Events: each `data:` line is one WatchFrame (JSON); durable frames carry `id: <seq>`. Comment lines keep it alive every 5 s.",
          eventData: WatchFrame,
        },
      },
      204: { description: "Event stream: the task has ended and nothing is left to send (an EventSource stops reconnecting)" },
      ...errors(400, 401, 404),
      429: { description: "Event stream: too many watchers (`too_many_watchers`) — the task's or the key's streams and WebSocket connections together are at `AGENTKIT_MAX_WATCHERS_PER_TASK` / `_PER_KEY`", schema: errorBody(["too_many_watchers"]) },
    },
  },
  {
    method: "POST",
    path: "/tasks/:id/cancel",
    operationId: "cancelTask",
    summary: "Cancel a task",
    description: "Idempotent: answers the task in the state it ended in (a task that had already completed stays `completed`). Every watcher gets a `result` with `status: cancelled`.",
    tags: ["tasks"],
    auth: "key",
    params: TaskIdParam,
    responses: { 200: { description: "The task", schema: Task }, ...errors(400, 401, 403, 404) },
  },
  {
    method: "GET",
    path: "/tasks/:id/webhooks",
    operationId: "getTaskWebhooks",
    summary: "A task's webhooks and their delivery",
    description:
      "The signed webhooks of the task (its own `webhook_url`'s `task.finished`, its agent's `task.finished` / `task.waiting`), in the order they were written, each with its `webhook-id`, status (`pending`, `delivered`, `failed`), attempts, last error and next attempt. Empty until the task ends (or waits). Its owner or the admin; an agent's URL shows only its origin to a tenant. See the README, \"Webhooks\".",
    tags: ["tasks"],
    auth: "key",
    params: TaskIdParam,
    responses: { 200: { description: "The task's webhooks", schema: WebhookDeliveryList }, ...errors(400, 401, 403, 404) },
  },
  {
    method: "GET",
    path: "/webhooks/secret",
    operationId: "getWebhookSecret",
    summary: "The webhook signing secret",
    description:
      "`{secret: \"whsec_…\"}`: the Standard Webhooks secret every webhook is signed with (`AGENTKIT_WEBHOOK_SECRET`, or one the store made once), for receivers to verify `webhook-signature`. The admin key only when keys are configured (a tenant key or a share token: 403). In open mode (no key configured) anyone may read it, as every route: a receiver cannot tell agentkit's webhooks from forged ones unless the server has keys.",
    tags: ["server"],
    auth: "key",
    responses: { 200: { description: "The secret", schema: WebhookSecretResponse }, ...errors(401, 403, 501) },
  },
  {
    method: "POST",
    path: "/tasks/:id/share",
    operationId: "shareTask",
    summary: "Make a read-only watch token",
    description:
      "A share link for the task's live view (or, with `scope: thread`, every task of its thread): the token goes wherever a key goes and can only watch. Owner or admin only. The body is optional.",
    tags: ["tasks", "watching"],
    auth: "key",
    params: TaskIdParam,
    body: { schema: ShareBody, required: false, example: { ttl_seconds: 3600 } },
    responses: { 201: { description: "The token", schema: ShareResponse }, ...errors(400, 401, 403, 404, 413, 415, 501) },
  },
  {
    method: "POST",
    path: "/tasks/:id/input",
    operationId: "sendInput",
    summary: "Steer a running task",
    description: "A message the model reads before its next step (it shows in the log as a `user_input` event). At most 32 wait for the task's next step: one more is 429 `queue_full`.",
    tags: ["people in the loop"],
    auth: "key",
    params: TaskIdParam,
    body: { schema: InputBody, required: true, example: { text: "Answer in French, please." } },
    responses: { 202: { description: "Accepted (durable)", schema: InputAccepted }, ...errors(400, 401, 403, 404, 409, 413, 415, 429, 501) },
  },
  {
    method: "POST",
    path: "/tasks/:id/approvals",
    operationId: "decideApproval",
    summary: "Approve or reject a tool call",
    description: "Decides a call that waits for approval (an `approval_requested` event). A call decided already is a 409.",
    tags: ["people in the loop"],
    auth: "key",
    params: TaskIdParam,
    body: { schema: ApprovalBody, required: true, example: { call_id: "call_1", decision: "approve" } },
    responses: { 200: { description: "The task", schema: Task }, ...errors(400, 401, 403, 404, 409, 413, 415, 501) },
  },
  {
    method: "POST",
    path: "/tasks/:id/answers",
    operationId: "answerQuestion",
    summary: "Answer a question",
    description: "Answers an `ask_user` question (a `question` event); the answer becomes the tool's result.",
    tags: ["people in the loop"],
    auth: "key",
    params: TaskIdParam,
    body: { schema: AnswerBody, required: true, example: { call_id: "call_1", text: "Paris" } },
    responses: { 200: { description: "The task", schema: Task }, ...errors(400, 401, 403, 404, 409, 413, 415, 501) },
  },
  {
    method: "POST",
    path: "/threads",
    operationId: "createThread",
    summary: "Start a conversation",
    description: "A thread: its tasks each run with the history of the earlier ones.",
    tags: ["threads"],
    auth: "key",
    responses: { 201: { description: "The thread", schema: Thread, headers: { Location: LOCATION } }, ...errors(401, 403) },
  },
  {
    method: "GET",
    path: "/threads",
    operationId: "listThreads",
    summary: "List threads",
    description: "Your threads (every thread, for the admin key), newest first.",
    tags: ["threads"],
    auth: "key",
    query: ListThreadsQuery,
    queryDescriptions: { limit: "Threads per page", cursor: "`next_cursor` of the previous page" },
    responses: { 200: { description: "A page of threads", schema: ThreadList }, ...errors(400, 401, 403) },
  },
  {
    method: "GET",
    path: "/threads/:id",
    operationId: "getThread",
    summary: "Get a thread with its tasks",
    description:
      "The thread with its newest tasks, oldest first: at most 200, and no more than fit in 1 MiB of JSON (at least one); `tasks_truncated` says whether there are more.",
    tags: ["threads"],
    auth: "key",
    params: TaskIdParam,
    responses: { 200: { description: "The thread", schema: ThreadWithTasks }, ...errors(400, 401, 404) },
  },
  {
    method: "POST",
    path: "/threads/:id/tasks",
    operationId: "createThreadTask",
    summary: "Start a task in a thread",
    description: "As `POST /tasks` with `thread_id`: the task runs with the thread's history, and the busy policy applies.",
    tags: ["threads", "tasks"],
    auth: "key",
    params: TaskIdParam,
    body: { schema: CreateThreadTaskBody, required: true, example: CREATE_TASK_EXAMPLE },
    responses: CREATE_TASK_RESPONSES,
  },
  {
    method: "GET",
    path: "/ws/tasks/:id",
    operationId: "watchTask",
    summary: "Watch a task live (WebSocket)",
    description:
      "A WebSocket upgrade: the protocol (frames both ways, close codes) is the AsyncAPI document at `/asyncapi.json`, shown on `/docs`. The key goes as `?api_key=`, a header, or — for browsers — the subprotocols `[\"agentkit\", \"agentkit.key.<key>\"]` (the server selects `agentkit`, never echoing the key). A wrong key, an unknown task or a bad query are answered on the socket (an `error` frame, then close 4001, 4404 or 4400), not with an HTTP status.",
    tags: ["watching"],
    auth: "websocket",
    params: TaskIdParam,
    query: WatchQuery,
    queryDescriptions: { after: "The last seq the client has", api_key: "The key (or a share token)", deltas: "`0` opts out of live `delta` frames" },
    headers: [
      { name: "Upgrade", description: "`websocket`", schema: { type: "string", const: "websocket" }, required: true },
      { name: "Sec-WebSocket-Protocol", description: "`agentkit, agentkit.key.<key>` (browsers)", schema: { type: "string" } },
    ],
    responses: {
      101: { description: "Switching Protocols: the socket speaks the frames of `/asyncapi.json`" },
      ...errors(403, 426),
      // Here 403 is one thing only: a browser's Origin not allowed (a key or share token is checked after the upgrade).
      403: { ...errors(403)[403]!, description: "Forbidden: the browser's `Origin` is not in AGENTKIT_CORS_ORIGINS (nor this server's own); refused before the upgrade. Keys are checked after it (close 4001)." },
    },
    externalDocs: { url: "/asyncapi.json", description: "The WebSocket protocol (AsyncAPI 3.0)" },
  },
  {
    method: "GET",
    path: "/openapi.json",
    operationId: "getOpenApi",
    summary: "This document",
    description: "The OpenAPI 3.1 document of the REST API. Open (no key).",
    tags: ["docs"],
    auth: "none",
    responses: { 200: { description: "OpenAPI 3.1.0", schema: OpenApiDocumentShape } },
  },
  {
    method: "GET",
    path: "/asyncapi.json",
    operationId: "getAsyncApi",
    summary: "The WebSocket protocol",
    description: "The AsyncAPI 3.0 document of `WS /ws/tasks/{id}`: every client and server frame, and the close codes. Open (no key).",
    tags: ["docs"],
    auth: "none",
    responses: { 200: { description: "AsyncAPI 3.0.0", schema: AsyncApiDocumentShape } },
  },
  {
    method: "GET",
    path: "/docs",
    operationId: "getDocs",
    summary: "Interactive API docs",
    description: "A self-contained page (no external resources) that renders this document and the WebSocket protocol, with a form to try each route. Open (no key); the routes it calls need one.",
    tags: ["docs"],
    auth: "none",
    responses: { 200: { description: "HTML", contentType: "text/html" } },
  },
  {
    method: "GET",
    path: "/",
    operationId: "getConsole",
    summary: "The web console",
    description:
      "An HTML page, bundled into the binary, built on this API: start tasks, see the task list change, watch a task live over the WebSocket, approve, answer, steer and cancel. Open (no key); it asks for the key itself on its first 401. Its scripts and styles are served beside it, open too, at `/chunk-<hash>.js` and `/chunk-<hash>.css`: their names change with each build, so they are not listed here. Not served by a `worker` node. See the README, \"Web console\".",
    tags: ["console"],
    auth: "none",
    responses: { 200: { description: "HTML", contentType: "text/html" } },
  },
  {
    method: "GET",
    path: "/ui",
    operationId: "redirectToConsole",
    summary: "The web console, by another address",
    description: "A permanent redirect to `/`. Open (no key).",
    tags: ["console"],
    auth: "none",
    responses: { 308: { description: "Permanent Redirect", headers: { Location: { description: "`/`", schema: { type: "string", const: "/" } } } } },
  },
  {
    method: "POST",
    path: "/mcp",
    operationId: "mcp",
    summary: "MCP server (Streamable HTTP): every agent as a tool",
    description:
      "The Model Context Protocol's Streamable HTTP transport, stateless: a JSON-RPC message (or batch) per POST. Every POST must send `Accept` listing both `application/json` and `text/event-stream` (406 otherwise) and `Content-Type: application/json` (415 otherwise). `tools/list` lists one tool per agent (`{input, thread_id?}`); `tools/call` runs a task on that agent, owned by the caller's key, and answers with its final answer on the request's event stream, after `notifications/progress` (with a `progressToken`); `notifications/cancelled`, or closing the stream, cancels the task. The result's `_meta` has `agentkit/task_id`. `initialize` answers with an `Mcp-Session-Id`. What the transport refuses (400, 406, 415) is answered as MCP clients expect, a JSON-RPC error with `id: null` — not agentkit's error shape, which the key's refusals (401, 403) and a body too large (413) have. GET and DELETE answer 405. See the README, \"MCP server\".",
    tags: ["agents"],
    auth: "key",
    body: { schema: McpRequestBody, required: true, example: MCP_REQUEST_EXAMPLE },
    responses: {
      200: { description: "The JSON-RPC responses (and progress notifications) as Server-Sent Events", contentType: "text/event-stream" },
      202: { description: "Notifications only (e.g. `notifications/cancelled`): accepted" },
      400: { description: "A JSON-RPC error: not JSON or not a JSON-RPC message (-32700), too deeply nested or a batch of more than 100 (-32600), an unsupported `Mcp-Protocol-Version` (-32000)", schema: McpJsonRpcError },
      406: { description: "A JSON-RPC error (-32000): `Accept` does not list both `application/json` and `text/event-stream`", schema: McpJsonRpcError },
      415: { description: "A JSON-RPC error (-32000): the `Content-Type` is not `application/json`", schema: McpJsonRpcError },
      ...errors(401, 403, 413),
    },
  },
  ...(["/ag-ui", "/ag-ui/:agent"] as const).map(
    (path): RouteDoc => ({
      method: "POST",
      path,
      operationId: path === "/ag-ui" ? "agUiRunDefault" : "agUiRun",
      summary: path === "/ag-ui" ? "AG-UI: run the default agent" : "AG-UI: run an agent",
      description:
        "The AG-UI protocol (1.0, as `@ag-ui/client`'s `HttpAgent` speaks it): the body is a `RunAgentInput` (`threadId`, `runId`, `messages`, `resume`?, …); the answer is the run's AG-UI events as Server-Sent Events (`data: <event>`): `RUN_STARTED`, `STEP_*`, `TEXT_MESSAGE_*`, `REASONING_*`, `TOOL_CALL_*`, `CUSTOM`, then `RUN_FINISHED` (success, cancelled, or interrupt when the task waits for a person) or `RUN_ERROR`. The input is the last message (a user message); `threadId` is an agentkit thread of that id (made on first use, yours). A run with `resume` answers the interrupts of the thread's waiting task. Closing the stream early cancels the task. See the README, \"AG-UI\".",
      tags: ["agents"],
      auth: "key",
      ...(path === "/ag-ui/:agent" ? { params: z.object({ agent: z.string() }) } : {}),
      body: { schema: RunAgentInput, required: true, example: AG_UI_REQUEST_EXAMPLE },
      responses: {
        200: { description: "The run's AG-UI events (Server-Sent Events)", contentType: "text/event-stream" },
        ...errors(400, 401, 403, 404, 409, 413, 415, 429, 503),
      },
    }),
  ),
  ...A2A_ROUTE_DOCS(),
];

/** A2A (src/protocols/a2a): the agent cards and the JSON-RPC endpoint. See the README, "A2A". */
function A2A_ROUTE_DOCS(): RouteDoc[] {
  const agentParam = z.object({ agent: z.string().describe("The agent's name") });
  const cardDescription =
    "Open (no key), for discovery. With `A2A-Version: 1.0` (as `@a2a-js/sdk` 1.x sends) the v1.0 card (`supportedInterfaces`); without it (or a 0.x version) the v0.3 card (`url`, `preferredTransport`, `protocolVersion`). Both dialects are served at the card's JSON-RPC URL, `/a2a/{agent}`; when keys are configured the card declares `bearer` and `X-API-Key`.";
  return [
    {
      method: "GET",
      path: "/.well-known/agent-card.json",
      operationId: "getDefaultAgentCard",
      summary: "A2A: the default agent's card",
      description: cardDescription,
      tags: ["a2a"],
      auth: "none",
      responses: { 200: { description: "The agent card", schema: A2AAgentCard } },
    },
    {
      method: "GET",
      path: "/a2a/:agent/.well-known/agent-card.json",
      operationId: "getAgentCard",
      summary: "A2A: an agent's card",
      description: `${cardDescription} An A2A client discovers it from the base URL \`/a2a/{agent}/\` (with the trailing slash).`,
      tags: ["a2a"],
      auth: "none",
      params: agentParam,
      responses: { 200: { description: "The agent card", schema: A2AAgentCard }, ...errors(404) },
    },
    {
      method: "POST",
      path: "/a2a/:agent",
      operationId: "a2aJsonRpc",
      summary: "A2A: JSON-RPC (send, stream, get, cancel, resubscribe)",
      description:
        "The Agent2Agent protocol over JSON-RPC 2.0, v1.0 (`SendMessage`, `SendStreamingMessage`, `GetTask`, `CancelTask`, `SubscribeToTask`) and v0.3 (`message/send`, `message/stream`, `tasks/get`, `tasks/cancel`, `tasks/resubscribe`) method names, each answered in its own dialect. A2A tasks are agentkit tasks of this agent (the same ids), owned by the key. A protocol error is a JSON-RPC error with HTTP 200 (-32700 parse, -32600, -32601, -32602, -32001 task not found, -32002 not cancelable, -32003 push notifications, -32004 unsupported, -32005 content type; -32603 a full queue, a watcher limit or an unavailable database, with agentkit's message). The streaming methods answer `text/event-stream`: each `data:` line is a JSON-RPC response whose `result` is a task, status update or artifact update; the stream ends at a terminal state or `input-required`. A blocking send may be preceded by whitespace (keep-alive) before its JSON. See the README, \"A2A\".",
      tags: ["a2a"],
      auth: "key",
      params: agentParam,
      body: { schema: A2AJsonRpcRequest, required: true, example: A2A_REQUEST_EXAMPLE },
      responses: {
        200: {
          description: "The JSON-RPC response (a protocol error too)",
          schema: A2AJsonRpcResponse,
          alternative: {
            contentType: "text/event-stream",
            description:
              "The streaming methods (`SendStreamingMessage`, `SubscribeToTask`, `message/stream`, `tasks/resubscribe`) answer Server-Sent Events: each `data:` line is a JSON-RPC response (its `result` a task, a status update or an artifact update; or an error), until a terminal state or `input-required`",
            eventData: A2AJsonRpcResponse,
          },
        },
        202: { description: "A JSON-RPC notification (a request without `id`): no answer and no body (A2A defines no notifications: nothing is done)" },
        ...errors(401, 404, 413, 415),
      },
    },
  ];
}

// ---- the generator --------------------------------------------------------------------------

type JsonSchema = Record<string, unknown>;
const TARGET = "draft-2020-12" as const;

/** Hono's `/tasks/:id` as OpenAPI's `/tasks/{id}`. */
export function openApiPath(path: string): string {
  return path.replace(/:(\w+)/g, "{$1}");
}

/** `z.toJSONSchema` of a registry, `$ref`s as `#/components/schemas/<name>`, without `$schema`/`$id`. */
function convertAll(schemas: Record<string, z.ZodType>, io: "input" | "output"): Record<string, JsonSchema> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(schemas)) registry.add(schema, { id });
  const converted = z.toJSONSchema(registry, { target: TARGET, io, unrepresentable: "any", uri: (id) => `#/components/schemas/${id}` });
  const out: Record<string, JsonSchema> = {};
  for (const [id, schema] of Object.entries(converted.schemas)) {
    const { $schema: _schema, $id: _id, ...rest } = schema as JsonSchema;
    out[id] = rest;
  }
  return out;
}

function convertOne(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  const { $schema: _schema, ...rest } = z.toJSONSchema(schema, { target: TARGET, io, unrepresentable: "any" }) as JsonSchema;
  return rest;
}

function nameOf(schema: z.ZodType, table: Record<string, z.ZodType>): string | undefined {
  return Object.entries(table).find(([, candidate]) => candidate === schema)?.[0];
}

/**
 * Parameters of a path or query schema: each property's wire schema (a query's integers are sent
 * as digits: documented as the integers they are, with their bounds, as OpenAPI does) and default.
 */
function parametersOf(schema: z.ZodObject, where: "path" | "query", descriptions: Record<string, string> = {}): JsonSchema[] {
  const input = convertOne(schema, "input") as { properties?: Record<string, JsonSchema>; required?: string[] };
  const output = convertOne(schema, "output") as { properties?: Record<string, JsonSchema> };
  const defaults = schema.safeParse({});
  return Object.keys(schema.shape).map((name) => {
    const wire = input.properties?.[name] ?? {};
    const typed = output.properties?.[name];
    const param: JsonSchema = typed && (typed.type === "integer" || typed.type === "number") ? { ...typed } : { ...wire };
    if (defaults.success && (defaults.data as Record<string, unknown>)[name] !== undefined && param.default === undefined) {
      const value = (defaults.data as Record<string, unknown>)[name];
      param.default = param.type === "integer" || typeof value !== "boolean" ? value : String(Number(value));
    }
    return {
      name,
      in: where,
      required: where === "path" || (input.required ?? []).includes(name),
      ...(descriptions[name] ? { description: descriptions[name] } : {}),
      schema: param,
    };
  });
}

const SECURITY: Record<Auth, Record<string, string[]>[]> = {
  none: [],
  key: [{ bearer: [] }, { apiKeyHeader: [] }],
  stream: [{ bearer: [] }, { apiKeyHeader: [] }, { apiKeyQuery: [] }],
  websocket: [{ apiKeyQuery: [] }, { bearer: [] }, { apiKeyHeader: [] }],
};

/** The OpenAPI 3.1.0 document of `routes` (default: every route). Pure: build it once and cache it. */
export function buildOpenApiDocument(options: { version: string; routes?: readonly RouteDoc[] }): Record<string, unknown> {
  const routes = options.routes ?? ROUTE_DOCS;
  const requestSchemas = convertAll(REQUEST_SCHEMAS, "input");
  const responseSchemas = convertAll(RESPONSE_SCHEMAS, "output");
  const schemas: Record<string, JsonSchema> = { ...responseSchemas };
  for (const [name, schema] of Object.entries(requestSchemas)) {
    if (schemas[name] && JSON.stringify(schemas[name]) !== JSON.stringify(schema)) throw new Error(`schema '${name}' differs as input and as output`);
    schemas[name] = schema;
  }
  const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
  const errorSchemas = new Map<string, string>();
  /** A response schema as a `$ref`: a named one, or an error body (named `Error<status>`). */
  const responseRef = (schema: z.ZodType, status: number) => {
    const name = nameOf(schema, RESPONSE_SCHEMAS);
    if (name) return ref(name);
    if (status >= 400) {
      const errorName = `Error${status}`;
      if (!errorSchemas.has(errorName)) {
        errorSchemas.set(errorName, errorName);
        schemas[errorName] = convertOne(schema, "output");
      }
      return ref(errorName);
    }
    throw new Error(`a ${status} response uses a schema that is not in RESPONSE_SCHEMAS`);
  };

  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const parameters = [
      ...(route.params ? parametersOf(route.params, "path", { id: route.path.startsWith("/threads") ? "The thread's id" : "The task's id" }) : []),
      ...(route.query ? parametersOf(route.query, "query", route.queryDescriptions) : []),
      ...(route.headers ?? []).map((header) => ({ name: header.name, in: "header", required: header.required ?? false, description: header.description, schema: header.schema })),
    ];
    const responses: Record<string, unknown> = {};
    for (const [statusText, response] of Object.entries(route.responses)) {
      const status = Number(statusText);
      const content: Record<string, unknown> = {};
      if (response.schema) content[response.contentType ?? "application/json"] = { schema: responseRef(response.schema, status) };
      else if (response.contentType) content[response.contentType] = { schema: { type: "string" } };
      if (response.alternative) {
        const eventData = nameOf(response.alternative.eventData, RESPONSE_SCHEMAS);
        if (!eventData) throw new Error(`${route.method} ${route.path}: its event stream's data schema is not in RESPONSE_SCHEMAS`);
        content[response.alternative.contentType] = {
          schema: { type: "string", description: response.alternative.description },
          // OpenAPI 3.1 has no schema for the items of a stream: this says what each `data:` line is.
          "x-event-data": ref(eventData),
        };
      }
      responses[statusText] = {
        description: response.alternative ? `${response.description}. ${response.alternative.description}` : response.description,
        ...(response.headers ? { headers: Object.fromEntries(Object.entries(response.headers).map(([name, header]) => [name, { description: header.description, schema: header.schema }])) } : {}),
        ...(Object.keys(content).length > 0 ? { content } : {}),
      };
    }
    responses.default = { description: "Any other error (e.g. 405 `method_not_allowed`, 500 `internal`)", content: { "application/json": { schema: ref("Error") } } };
    let requestBody: Record<string, unknown> | undefined;
    if (route.body) {
      const name = nameOf(route.body.schema, REQUEST_SCHEMAS);
      if (!name) throw new Error(`${route.method} ${route.path}: its body schema is not in REQUEST_SCHEMAS`);
      requestBody = { required: route.body.required, content: { "application/json": { schema: ref(name), example: route.body.example } } };
    }
    const operation = {
      operationId: route.operationId,
      summary: route.summary,
      description: route.description,
      tags: route.tags,
      security: SECURITY[route.auth],
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(requestBody ? { requestBody } : {}),
      responses,
      ...(route.externalDocs ? { externalDocs: route.externalDocs } : {}),
    };
    (paths[openApiPath(route.path)] ??= {})[route.method.toLowerCase()] = operation;
  }

  return {
    openapi: "3.1.0",
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    info: {
      title: "agentkit",
      version: options.version,
      summary: "Runs LLM agents as tasks and streams every step over WebSocket and Server-Sent Events.",
      description:
        "Every route but the open ones (`/health`, `/openapi.json`, `/asyncapi.json`, `/docs`, the A2A agent cards, the web console) needs a key when keys are configured: `Authorization: Bearer <key>` or `X-API-Key: <key>` (a read-only share token goes wherever a key goes). With no key configured the server is open. Errors are always `{\"error\":{\"code\",\"message\"[,\"details\"]}}` with a stable `code`. A known route asked with another method answers 405 with `Allow`; `OPTIONS` answers 204 with `Allow`. On a route that needs a key both need it too: without one they are a 401, as an unknown path is, so nothing about the protected routes is told before the key. The open routes answer them without a key. The WebSocket protocol is the AsyncAPI document at `/asyncapi.json`.",
    },
    servers: [{ url: "/", description: "This server" }],
    tags: [
      { name: "tasks", description: "Start, read, list and cancel tasks" },
      { name: "watching", description: "Follow a task live: Server-Sent Events, WebSocket, share tokens" },
      { name: "people in the loop", description: "Approvals, answers, steering" },
      { name: "threads", description: "Conversations: tasks that run with the history of the earlier ones" },
      { name: "agents", description: "What this server runs" },
      { name: "server", description: "Health" },
      { name: "docs", description: "These documents" },
      { name: "console", description: "The web console, for people" },
    ],
    security: SECURITY.key,
    paths,
    components: {
      schemas,
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", description: "An API key (or a share token) as `Authorization: Bearer <key>`" },
        apiKeyHeader: { type: "apiKey", in: "header", name: "X-API-Key", description: "An API key (or a share token) as `X-API-Key: <key>`" },
        apiKeyQuery: {
          type: "apiKey",
          in: "query",
          name: "api_key",
          description: "Only the event stream (`GET /tasks/{id}/events` as `text/event-stream`) and the WebSocket read the key from the URL: an EventSource cannot set headers. Browsers' WebSockets should prefer the subprotocol `agentkit.key.<key>` (kept out of logged URLs).",
        },
      },
    },
    externalDocs: { url: "/docs", description: "Interactive docs" },
  };
}
