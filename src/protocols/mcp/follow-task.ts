/**
 * Follows one task from its first event to its end, for a protocol adapter that answers once the
 * task is done (an MCP `tools/call`): the same join as the WebSocket and SSE watchers
 * (server/watch.ts `startStream`: stored events, then live ones, no gap, no duplicate; in a cluster
 * the task is followed from the log while it runs on another node), reported event by event.
 *
 * It ends with the task's end (its `result` frame), when the task parks waiting for a person (an
 * approval or an `ask_user` answer that is still open once the task is `waiting`), or when
 * `signal` aborts (the caller went away: it decides what happens to the task).
 */
import type { LiveFeed } from "../../bus/live-feed.ts";
import { errorMessage } from "../../errors.ts";
import type { Logger } from "../../lib/logger.ts";
import { isTerminal, type Task, type TaskError, type TaskStatus } from "../../protocol/task.ts";
import type { TaskStore } from "../../store/store.ts";
import { startStream } from "../../server/watch.ts";

/** A durable step event as it is on the wire (`step` frame's `data`). */
export interface StepEventData {
  event_type: string;
  step: number;
  data: unknown;
  timestamp: string;
}

/** A call that waits for a person. */
export interface OpenRequest {
  kind: "approval" | "question";
  call_id: string;
  /** The tool (`ask_user` for a question). */
  name: string;
  /** An approval: the call's arguments. */
  arguments?: unknown;
  /** A question: what the model asks. */
  question?: string;
  expires_at: string | null;
}

/** How the task ended, from its `result` frame (or the stored task, when its log was pruned). */
export interface TaskEnd {
  status: TaskStatus;
  output: string | null;
  error: TaskError | null;
  output_json: unknown;
}

export type FollowEnd =
  | { kind: "ended"; end: TaskEnd }
  | { kind: "waiting"; task: Task; open: OpenRequest[] }
  | { kind: "aborted" };

export interface FollowOptions {
  store: TaskStore;
  feed: LiveFeed;
  logger: Logger;
  task: Task;
  signal: AbortSignal;
  /** Cluster mode: follow a task that may run on another node (app deps' `follow`). */
  follow?: (task: Task) => () => void;
  /** Each durable step event, in seq order. */
  onStep?: (seq: number, event: StepEventData) => void;
  /**
   * How often the task's status is read while an approval or a question is open (default 1,000 ms):
   * a safety net, as the feed tells of a park at once (`onParked`; across nodes, a signal that a
   * reconnecting listener may miss).
   */
  waitPollMs?: number;
}

export function followTask(options: FollowOptions): Promise<FollowEnd> {
  const { store, feed, task, signal } = options;
  return new Promise<FollowEnd>((resolve) => {
    let closed = false;
    let stopListening: (() => void) | undefined;
    let poll: ReturnType<typeof setInterval> | undefined;
    const open = new Map<string, OpenRequest>();
    /** The last seq handled: `open` is the task's open requests as of it. */
    let handledSeq = 0;
    /** A status read found the task waiting at this seq before the stream got there: look again then. */
    let waitingAt: number | undefined;
    const unfollow = options.follow?.(task);
    const unpark = feed.onParked(task.id, () => void checkWaiting());

    const finish = (end: FollowEnd) => {
      if (closed) return;
      closed = true;
      stopListening?.();
      unfollow?.();
      unpark();
      clearInterval(poll);
      signal.removeEventListener("abort", onAbort);
      resolve(end);
    };
    const onAbort = () => finish({ kind: "aborted" });
    if (signal.aborted) return finish({ kind: "aborted" });
    signal.addEventListener("abort", onAbort, { once: true });

    /** Whether the task has parked, waiting for a person, with a request still open. */
    const checkWaiting = async () => {
      if (closed || open.size === 0) return;
      try {
        const current = await store.getTask(task.id);
        // Only once the stream has reached the log's end: a request open earlier in the log (the
        // replay has not come to its decision yet) is not what the task waits for now; it looks
        // again once the stream gets there.
        if (closed || current?.status !== "waiting") return;
        if (current.last_seq > handledSeq) waitingAt = current.last_seq;
        else if (open.size > 0) finish({ kind: "waiting", task: current, open: [...open.values()] });
      } catch (error) {
        options.logger.warn("mcp: could not read a waiting task", { task: task.id, error: errorMessage(error) });
      }
    };

    const handle = (frame: string, seq: number) => {
      if (closed) return;
      handledSeq = seq;
      const parsed = JSON.parse(frame) as { type: string; data: Record<string, unknown> };
      if (parsed.type === "result") {
        const data = parsed.data as { status: TaskStatus; output?: string; error?: TaskError; output_json?: unknown };
        return finish({ kind: "ended", end: { status: data.status, output: data.output ?? null, error: data.error ?? null, output_json: data.output_json ?? null } });
      }
      if (parsed.type !== "step") return;
      const event = parsed.data as unknown as StepEventData;
      const data = (event.data ?? {}) as Record<string, unknown>;
      const id = String(data.id ?? "");
      if (event.event_type === "approval_requested") {
        open.set(id, { kind: "approval", call_id: id, name: String(data.name), arguments: data.arguments, expires_at: (data.expires_at as string | null) ?? null });
      } else if (event.event_type === "question") {
        open.set(id, { kind: "question", call_id: id, name: String(data.name), question: String(data.question), expires_at: (data.expires_at as string | null) ?? null });
      } else if (event.event_type === "approval_decided" || event.event_type === "answer") {
        open.delete(id);
      }
      options.onStep?.(seq, event);
      // The task parks (status `waiting`, no frame says so) once the step's other calls are done.
      if (open.size > 0) poll ??= setInterval(() => void checkWaiting(), options.waitPollMs ?? 1_000);
      if (waitingAt !== undefined && seq >= waitingAt) {
        waitingAt = undefined;
        void checkWaiting();
      }
    };

    startStream({
      store,
      feed,
      task,
      after: 0,
      sendControl: () => {}, // `connected`, `resync`: the end is read from the task below if its log was pruned
      watcher: {
        send: ({ seq, frame }) => handle(frame, seq),
        subscribe: () => {
          if (closed) return;
          stopListening = feed.listen(task.id, (frame, seq) => {
            if (seq !== undefined) handle(frame, seq);
          });
        },
        get closed() {
          return closed;
        },
      },
    })
      .then(async () => {
        if (closed) return;
        // A task whose log (result included) was pruned by retention has ended: read its end.
        const current = await store.getTask(task.id);
        if (!closed && current && isTerminal(current.status) && current.last_seq <= current.pruned_through) {
          finish({ kind: "ended", end: { status: current.status, output: current.output, error: current.error, output_json: current.output_json } });
        }
      })
      .catch((error) => {
        options.logger.error("mcp: could not follow a task", { task: task.id, error: errorMessage(error) });
        finish({ kind: "ended", end: { status: "failed", output: null, error: { code: "internal", message: "agentkit could not follow the task", retryable: true } as TaskError, output_json: null } });
      });
  });
}

/** A line for a progress notification: what the task just did. */
export function describeStep(event: StepEventData): string | undefined {
  const data = (event.data ?? {}) as Record<string, unknown>;
  const json = (value: unknown) => clip(typeof value === "string" ? value : JSON.stringify(value) ?? "");
  const prefix = `step ${event.step}: `;
  switch (event.event_type) {
    case "usage":
      return undefined; // tokens: not news to a person watching a tool run
    case "thought":
      return prefix + clip(String(data.text ?? ""));
    case "tool_call":
      return `${prefix}calling ${data.name} ${json(data.arguments)}`;
    case "tool_result":
      return `${prefix}${data.name} → ${json(data.result)}`;
    case "tool_error":
      return `${prefix}${data.name} failed: ${json((data.error as { message?: string } | undefined)?.message ?? data.error)}`;
    case "approval_requested":
      return `${prefix}waiting for approval of ${data.name} ${json(data.arguments)}`;
    case "approval_decided":
      return `${prefix}${data.name} ${data.decision} by ${data.by}`;
    case "question":
      return `${prefix}asks: ${clip(String(data.question ?? ""))}`;
    case "answer":
      return `${prefix}answered by ${data.by}`;
    case "user_input":
      return `${prefix}message from ${data.by}`;
    case "resumed":
      return `${prefix}resumed (${data.reason})`;
    default:
      return prefix + event.event_type;
  }
}

const MAX_MESSAGE_CHARS = 500;

function clip(text: string): string {
  return text.length > MAX_MESSAGE_CHARS ? `${text.slice(0, MAX_MESSAGE_CHARS - 1)}…` : text;
}
