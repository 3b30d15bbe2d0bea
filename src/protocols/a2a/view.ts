/**
 * agentkit's tasks as A2A sees them: a task (its status, history and artifacts) from the agentkit
 * task and its stored log, and the A2A events of each frame a watcher receives. Nothing here is
 * stored: every view is derived from the one task model, the one log.
 *
 * | agentkit | A2A |
 * |---|---|
 * | `queued` | `submitted` |
 * | `running` | `working` |
 * | `waiting` (an approval or an `ask_user` question) | `input-required`, the question or approval in the status message |
 * | `completed` | `completed`, the answer as the artifact `answer` (a text part, or a data part with `output_json`) |
 * | `failed`, `timed_out` | `failed`, the error in the status message |
 * | `cancelled` | `canceled` |
 *
 * History: the task's input (a user message), then in log order each `thought` (agent), each
 * steering message (`user_input`), answer and decision (user). Each step event is also a `working`
 * status update whose `metadata.agentkit` is the event itself (`seq`, `event_type`, `step`, `data`).
 */
import type { StoredEvent } from "../../store/store.ts";
import type { Task, TaskStatus } from "../../protocol/task.ts";
import type { ResultData } from "../../protocol/frames.ts";
import type { A2AArtifact, A2AEvent, A2AMessage, A2APart, A2AState, A2AStatus, A2ATask } from "./wire.ts";

export const STATE_OF: Record<TaskStatus, A2AState> = {
  queued: "submitted",
  running: "working",
  waiting: "input-required",
  completed: "completed",
  failed: "failed",
  timed_out: "failed",
  cancelled: "canceled",
};

/** A2A's terminal states. */
export const FINAL_STATES: ReadonlySet<A2AState> = new Set(["completed", "failed", "canceled"]);

/** Where the A2A message id of a task's input is kept (`metadata`), so history shows the client's own id. */
export const MESSAGE_ID_KEY = "a2a_message_id";

/** The task's A2A context: its thread, or (a task in no thread) the task itself. */
export function contextOf(task: Task): string {
  return task.thread_id ?? task.id;
}

/** A call that waits for a person, as the log tells it. */
export interface Ask {
  callId: string;
  kind: "approval" | "question";
  name: string;
  /** The question (ask_user), or the arguments of the call to approve. */
  question?: string;
  arguments?: unknown;
}

interface ParsedFrame {
  type: string;
  seq?: number;
  data?: { event_type?: string; step?: number; data?: Record<string, unknown>; timestamp?: string } & Partial<ResultData>;
}

export function parseFrame(frame: string): ParsedFrame | undefined {
  try {
    return JSON.parse(frame) as ParsedFrame;
  } catch {
    return undefined;
  }
}

function textPart(text: string): A2APart {
  return { text, mediaType: "text/plain" };
}

function agentMessage(task: Task, id: string, parts: A2APart[], metadata?: Record<string, unknown>): A2AMessage {
  return { messageId: id, role: "agent", parts, taskId: task.id, contextId: contextOf(task), ...(metadata ? { metadata } : {}) };
}

/** The status message of an `input-required` state: what the person is asked, and how to answer. */
export function askMessage(task: Task, asks: readonly Ask[]): A2AMessage {
  const ask = asks[0]!;
  const text =
    ask.kind === "question"
      ? (ask.question ?? "The agent asks you a question.")
      : `Approve the call ${ask.name}(${JSON.stringify(ask.arguments ?? {})})? Reply "approve" or "reject" (optionally "reject: <reason>").`;
  const more = asks.length > 1 ? ` (${asks.length - 1} more call${asks.length > 2 ? "s" : ""} wait after this one.)` : "";
  return agentMessage(task, `${task.id}:ask:${ask.callId}`, [
    textPart(text + more),
    {
      data: { type: ask.kind, call_id: ask.callId, name: ask.name, ...(ask.kind === "question" ? { question: ask.question ?? null } : { arguments: ask.arguments ?? null }) },
      mediaType: "application/json",
    },
  ]);
}

/** The answer artifact of a completed task. */
export function answerArtifact(output: string | null | undefined, outputJson: unknown): A2AArtifact | undefined {
  if (outputJson !== undefined && outputJson !== null) {
    return { artifactId: "answer", name: "answer", description: "The agent's final answer (structured: the agent's output_schema)", parts: [{ data: outputJson, mediaType: "application/json" }] };
  }
  if (output === null || output === undefined) return undefined;
  return { artifactId: "answer", name: "answer", description: "The agent's final answer", parts: [textPart(output)] };
}

function endMessage(task: Task, status: TaskStatus, error: { code: string; message: string } | null | undefined): A2AMessage | undefined {
  if (status === "cancelled") return agentMessage(task, `${task.id}:end`, [textPart("The task was cancelled.")]);
  if ((status === "failed" || status === "timed_out") && error) return agentMessage(task, `${task.id}:end`, [textPart(`${error.code}: ${error.message}`)], { error });
  return undefined;
}

function trackAsk(open: Map<string, Ask>, eventType: string | undefined, data: Record<string, unknown>) {
  const id = String(data.id ?? "");
  if (eventType === "approval_requested") open.set(id, { callId: id, kind: "approval", name: String(data.name), arguments: data.arguments });
  else if (eventType === "question") open.set(id, { callId: id, kind: "question", name: String(data.name), question: String(data.question ?? "") });
  else if (eventType === "approval_decided" || eventType === "answer" || eventType === "tool_result" || eventType === "tool_error") open.delete(id);
}

/** The step events the view reads (history messages, asks); the others only move `lastSeq`. */
const VIEWED_EVENTS = new Set(["thought", "user_input", "answer", "approval_decided", "approval_requested", "question"]);
/** Step events that settle an ask: read only while one is open. */
const SETTLING_EVENTS = new Set(["tool_result", "tool_error"]);
/** A step frame as the server writes it (src/protocol/frames.ts `stepFrame`): its event type, without parsing it. */
const STEP_FRAME_START = /^\{"type":"step","seq":\d+,"data":\{"event_type":"([a-z_]+)"/;

/**
 * What the A2A view of a task takes from its log, one event at a time (`add`, in seq order): the
 * history messages, the asks still open, the last seq. A frame is parsed only when its event type
 * (read from the frame's start) is one the view reads: a log of 120,000 events, mostly tool calls
 * and usage, took ~270 ms to parse whole. A whole log is read into one with `forEachLogEvent`,
 * which never holds the event loop for long.
 */
export class LogDigest {
  history: A2AMessage[] = [];
  private open = new Map<string, Ask>();
  lastSeq = 0;
  /** About how much text `history` holds (the frames it came from): what keeping this digest costs. */
  chars = 0;

  constructor(private readonly task: Task) {}

  /** A copy to add more to (a digest handed out is never changed). */
  clone(): LogDigest {
    const copy = new LogDigest(this.task);
    copy.history = this.history.slice();
    copy.open = new Map(this.open);
    copy.lastSeq = this.lastSeq;
    copy.chars = this.chars;
    return copy;
  }

  add(event: StoredEvent): void {
    this.lastSeq = event.seq;
    const type = STEP_FRAME_START.exec(event.frame)?.[1];
    if (type !== undefined && !VIEWED_EVENTS.has(type) && !(this.open.size > 0 && SETTLING_EVENTS.has(type))) return;
    const frame = parseFrame(event.frame);
    if (frame?.type !== "step") return;
    const message = historyMessage(this.task, event.seq, frame);
    if (message) {
      this.history.push(message);
      this.chars += event.frame.length;
    }
    const data = frame.data?.data;
    if (data) trackAsk(this.open, frame.data!.event_type, data);
  }

  /** The asks still open at the end of what was added (announced, and neither decided nor answered). */
  get asks(): Ask[] {
    return [...this.open.values()];
  }
}

/** The A2A task of an agentkit task, from its log (`events`, or a digest of them). */
export function toA2ATask(task: Task, log: readonly StoredEvent[] | LogDigest): A2ATask {
  let digest: LogDigest;
  if (log instanceof LogDigest) digest = log;
  else {
    digest = new LogDigest(task);
    for (const event of log) digest.add(event);
  }
  const contextId = contextOf(task);
  const history: A2AMessage[] = [
    {
      messageId: typeof task.metadata[MESSAGE_ID_KEY] === "string" ? (task.metadata[MESSAGE_ID_KEY] as string) : `${task.id}:input`,
      role: "user",
      parts: [textPart(task.input)],
      taskId: task.id,
      contextId,
    },
    ...digest.history,
  ];
  const state = STATE_OF[task.status];
  let message: A2AMessage | undefined;
  if (task.status === "waiting") {
    const asks = digest.asks;
    if (asks.length > 0) message = askMessage(task, asks);
  } else message = endMessage(task, task.status, task.error);
  const answer = task.status === "completed" ? answerArtifact(task.output, task.output_json) : undefined;
  return {
    id: task.id,
    contextId,
    status: { state, ...(message ? { message } : {}), timestamp: task.finished_at ?? task.started_at ?? task.created_at },
    artifacts: answer ? [answer] : [],
    history,
    metadata: taskMetadata(task, digest.lastSeq || task.last_seq),
  };
}

/** `metadata.agentkit`: the native task's state; `last_seq`: the last event this view includes (a stream goes on after it). */
function taskMetadata(task: Task, lastSeq: number): Record<string, unknown> {
  return {
    agentkit: {
      last_seq: lastSeq,
      agent: task.agent,
      status: task.status,
      stop_reason: task.stop_reason,
      error: task.error,
      thread_id: task.thread_id,
      total_steps: task.total_steps,
      total_tokens: task.total_tokens,
      cost_usd: task.cost_usd,
      created_at: task.created_at,
      finished_at: task.finished_at,
    },
  };
}

function historyMessage(task: Task, seq: number, frame: ParsedFrame): A2AMessage | undefined {
  const data = frame.data?.data ?? {};
  const id = `${task.id}:${seq}`;
  const contextId = contextOf(task);
  switch (frame.data?.event_type) {
    case "thought":
      return typeof data.text === "string" && data.text !== "" ? agentMessage(task, id, [textPart(data.text)]) : undefined;
    case "user_input":
      return { messageId: id, role: "user", parts: [textPart(String(data.text ?? ""))], taskId: task.id, contextId };
    case "answer":
      return data.by === "system" ? undefined : { messageId: id, role: "user", parts: [textPart(String(data.text ?? ""))], taskId: task.id, contextId };
    case "approval_decided":
      if (data.by === "system") return undefined;
      return {
        messageId: id,
        role: "user",
        parts: [textPart(data.decision === "approved" ? "approve" : `reject${data.reason ? `: ${String(data.reason)}` : ""}`)],
        taskId: task.id,
        contextId,
      };
    default:
      return undefined;
  }
}

/**
 * Turns a task's frames, in seq order, into A2A events. `asks` are the calls announced and not yet
 * decided (a stream watches for the task to park while some are open).
 */
export class FrameProjector {
  readonly asks = new Map<string, Ask>();
  /** Set once the `result` frame was seen. */
  ended = false;

  constructor(private readonly task: Task) {}

  /** The events of one durable frame. */
  project(seq: number, frame: string): A2AEvent[] {
    const parsed = parseFrame(frame);
    if (!parsed) return [];
    const task = this.task;
    const contextId = contextOf(task);
    if (parsed.type === "step" && parsed.data) {
      const { event_type: eventType, step, data = {}, timestamp } = parsed.data;
      trackAsk(this.asks, eventType, data);
      const status: A2AStatus = { state: "working", timestamp: timestamp ?? new Date().toISOString() };
      if (eventType === "thought" && typeof data.text === "string" && data.text !== "") status.message = agentMessage(task, `${task.id}:${seq}`, [textPart(data.text)]);
      return [{ kind: "status", taskId: task.id, contextId, status, final: false, metadata: { agentkit: { seq, event_type: eventType, step, data } } }];
    }
    if (parsed.type === "result" && parsed.data) {
      this.ended = true;
      const result = parsed.data as ResultData;
      const events: A2AEvent[] = [];
      const timestamp = new Date().toISOString();
      if (result.status === "completed") {
        const artifact = answerArtifact(result.output, result.output_json);
        if (artifact) events.push({ kind: "artifact", taskId: task.id, contextId, artifact, lastChunk: true });
      }
      const message = endMessage(task, result.status, result.error);
      events.push({
        kind: "status",
        taskId: task.id,
        contextId,
        status: { state: STATE_OF[result.status], ...(message ? { message } : {}), timestamp },
        final: true,
        metadata: { agentkit: { seq, event_type: "result", data: result } },
      });
      return events;
    }
    return [];
  }

  /** The `input-required` event for the asks still open (the task has parked). */
  inputRequired(asks: readonly Ask[]): A2AEvent {
    const task = this.task;
    return {
      kind: "status",
      taskId: task.id,
      contextId: contextOf(task),
      status: { state: "input-required", message: askMessage(task, asks), timestamp: new Date().toISOString() },
      final: true,
    };
  }
}

/**
 * The digests of the task logs A2A clients viewed last (a client polls `GetTask`; every send,
 * stream and cancel shows the task too): a view of a task seen before reads only the events after
 * its digest. A task's log up to a seq never changes (it only grows; a pruned one is not kept
 * here). Bounded by the text the digests hold, least recently used first out.
 */
export class DigestCache {
  private readonly digests = new Map<string, LogDigest>();
  private chars = 0;

  constructor(private readonly maxChars = 16 * 1024 * 1024) {}

  get(taskId: string): LogDigest | undefined {
    const digest = this.digests.get(taskId);
    if (digest) {
      this.digests.delete(taskId);
      this.digests.set(taskId, digest);
    }
    return digest;
  }

  set(taskId: string, digest: LogDigest): void {
    this.delete(taskId);
    const cost = DigestCache.cost(digest);
    if (cost > this.maxChars / 8) return;
    this.digests.set(taskId, digest);
    this.chars += cost;
    for (const [oldest, kept] of this.digests) {
      if (this.chars <= this.maxChars) break;
      this.digests.delete(oldest);
      this.chars -= DigestCache.cost(kept);
    }
  }

  delete(taskId: string): void {
    const digest = this.digests.get(taskId);
    if (!digest) return;
    this.digests.delete(taskId);
    this.chars -= DigestCache.cost(digest);
  }

  get size(): number {
    return this.digests.size;
  }

  /** What a digest is counted as: its text, and ~1 KB for the entry itself. */
  private static cost(digest: LogDigest): number {
    return digest.chars + 1024;
  }
}
