/** REST request shapes, validated with zValidator at the boundary. */
import { z } from "zod";
import { checkMetadata, INVALID_TEXT, isValidText, MAX_AGENT_CHARS, MAX_INPUT_CHARS, METADATA_LIMITS } from "./limits.ts";
import { TaskMetadata, TaskStatus } from "./task.ts";
import { MAX_HUMAN_TEXT_CHARS, MAX_REASON_CHARS } from "./frames.ts";

export { MAX_INPUT_CHARS, METADATA_LIMITS };

/** Metadata within METADATA_LIMITS (depth, entries, key and string lengths, serialised size). */
export const BoundedMetadata = TaskMetadata.superRefine((metadata, context) => {
  const issue = checkMetadata(metadata);
  if (issue) context.addIssue({ code: "custom", message: issue.message, path: issue.path });
});

/** What to do with a new input for a thread whose task has not ended (see the agent's `on_busy`). */
export const BusyPolicy = z.enum(["enqueue", "reject", "interrupt", "steer"]);
export type BusyPolicy = z.infer<typeof BusyPolicy>;

const ThreadId = z.string().min(1).max(128);

export const CreateTaskBody = z.strictObject({
  input: z.string().min(1, "must not be empty").max(MAX_INPUT_CHARS).refine(isValidText, INVALID_TEXT),
  agent: z.string().min(1).max(MAX_AGENT_CHARS).optional(),
  metadata: BoundedMetadata.optional(),
  /** Continue this thread (made with `POST /threads`): the task runs with its history. */
  thread_id: ThreadId.optional(),
  /** When the thread is busy; default: the agent's `on_busy`. */
  on_busy: BusyPolicy.optional(),
  /**
   * Where to POST a signed webhook (`task.finished`) when the task ends: an http(s) URL whose host
   * is on the server's webhook allowlist (none configured: refused). Not shown on the task; see
   * `GET /tasks/:id/webhooks`.
   */
  webhook_url: z.string().min(1).max(2048).optional(),
});

/** `POST /threads/:id/tasks`: a task of this thread. */
export const CreateThreadTaskBody = CreateTaskBody.omit({ thread_id: true });

/** `POST /tasks/:id/approvals`. */
export const ApprovalBody = z.strictObject({
  call_id: z.string().min(1).max(256),
  decision: z.enum(["approve", "reject"]),
  reason: z.string().max(MAX_REASON_CHARS).optional(),
});

/** `POST /tasks/:id/answers`. */
export const AnswerBody = z.strictObject({
  call_id: z.string().min(1).max(256),
  text: z.string().max(MAX_HUMAN_TEXT_CHARS).refine(isValidText, INVALID_TEXT),
});

/** `POST /tasks/:id/input`: a message for the running task (steering). */
export const InputBody = z.strictObject({
  text: z.string().min(1, "must not be empty").max(MAX_HUMAN_TEXT_CHARS).refine(isValidText, INVALID_TEXT),
});
export type CreateTaskBody = z.infer<typeof CreateTaskBody>;

/** The largest `after` (or `Last-Event-ID`) a query takes: 15 digits (a seq never comes near it). */
const MAX_SEQ = 999_999_999_999_999;

const Integer = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d{1,15}$/, "must be a non-negative integer of at most 15 digits")
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

export const ListTasksQuery = z.object({
  status: TaskStatus.optional(),
  limit: Integer(1, 100).default(20),
  cursor: z.string().max(64).optional(),
});

export const ListThreadsQuery = z.object({
  limit: Integer(1, 100).default(20),
  cursor: z.string().max(64).optional(),
});

const Flag = z.enum(["0", "1", "false", "true"]).default("1").transform((value) => value === "1" || value === "true");

export const EventsQuery = z.object({
  after: Integer(0, MAX_SEQ).default(0),
  limit: Integer(1, 1000).default(500),
  /** Server-Sent Events only: `deltas=0` opts out of live `delta` frames. */
  deltas: Flag,
});

/** The `Last-Event-ID` header of a reconnecting EventSource: the last seq it has. */
export const LastEventId = Integer(0, MAX_SEQ).optional();

export const TaskIdParam = z.object({ id: z.string().min(1).max(128) });

/** Query of `GET /ws/tasks/:id`. */
export const WatchQuery = z.object({
  after: Integer(0, MAX_SEQ).default(0),
  api_key: z.string().optional(),
  /** `deltas=0` opts out of live `delta` frames. */
  deltas: Flag,
});
