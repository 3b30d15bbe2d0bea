/**
 * The client's types. Everything on the wire comes from src/protocol (the one source of truth);
 * what is only the client's (options, the `reconnecting` frame, shapes of REST answers) is here.
 */
import type { CreateTaskBody, BusyPolicy } from "../protocol/api.ts";
import type {
  AckFrame,
  ConnectedFrame,
  DeltaFrame,
  DurableFrame,
  ErrorFrame,
  ResultFrame,
  ResyncFrame,
  StepFrame,
} from "../protocol/frames.ts";
import type { Task, TaskStatus, Thread } from "../protocol/task.ts";

export type { AckFrame, BusyPolicy, ConnectedFrame, DeltaFrame, DurableFrame, ErrorFrame, ResultFrame, ResyncFrame, StepFrame, Task, TaskStatus, Thread };
export type { CreateTaskBody };
export type { ResultData, ServerFrame } from "../protocol/frames.ts";
export type { TaskError, TaskErrorCode, StopReason, TaskMetadata } from "../protocol/task.ts";

export interface ClientOptions {
  /** The server, e.g. `http://127.0.0.1:8000` (a path prefix is kept; relative URLs resolve against the page in a browser). */
  url: string;
  /** Sent as `Authorization: Bearer` on REST calls and as the `agentkit.key.<key>` subprotocol on watches. */
  apiKey?: string;
  /** Defaults to the global `fetch` (any function of that shape: `typeof fetch` fits). */
  fetch?: FetchLike;
  /**
   * Defaults to the global `WebSocket` (`typeof WebSocket` fits; on Node 20/21, which have none
   * without `--experimental-websocket`, pass one, e.g. the `ws` package's).
   */
  WebSocket?: WebSocketConstructor;
}

/** What the client calls `fetch` with. */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** The part of a WebSocket the client uses (the browser's, Bun's, Node's, the `ws` package's). */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType: string;
  // `any`: each implementation types its events its own way.
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Emitted by `watch` before each reconnect (it is not a server frame). */
export interface ReconnectingFrame {
  type: "reconnecting";
  /** 1 for the first retry after a drop, 2 for the next failed one… (back to 1 once a connection delivered frames). */
  attempt: number;
  /** How long it waits before reconnecting. */
  delay_ms: number;
  /** Why: `close 4008: Too slow…`, `close 1001: …`, `connection lost (1006)`, `no answer from the server for 30000 ms`… */
  reason: string;
}

/** What `watch` yields: the server's frames (`pong` is kept to itself) and its own `reconnecting`. */
export type WatchFrame = ConnectedFrame | StepFrame | ResultFrame | DeltaFrame | ResyncFrame | AckFrame | ErrorFrame | ReconnectingFrame;

export interface WatchOptions {
  /** The last seq the caller already has (default 0: the whole log). */
  after?: number;
  /** Live `delta` frames (text as it is typed); default true. */
  deltas?: boolean;
  /** Aborting ends the iterator (it returns; nothing is thrown) and closes the socket. */
  signal?: AbortSignal;
  /** Reconnect attempts in a row before giving up with `retries_exhausted` (default: no limit). */
  maxRetries?: number;
  /**
   * How often an idle watch sends `{"type":"ping"}` (default 15000 ms); a connection that has
   * received nothing for twice this is taken as dead and replaced.
   */
  pingIntervalMs?: number;
}

/** An agent as `GET /agents` describes it. */
export interface AgentInfo {
  name: string;
  description?: string;
  model: string;
  tools: string[];
  max_steps: number;
  timeout_ms: number;
  /** The tools whose calls wait for a person's approval. */
  approval: string[];
  on_busy: BusyPolicy;
  /** The JSON Schema of its final answer, or null. */
  output_schema: unknown;
  /** Whether a task without `agent` runs on it. */
  default: boolean;
}

/** The body of `tasks.create` (`thread_id` continues a thread). */
export type CreateTaskInput = Pick<CreateTaskBody, "input"> & Partial<Omit<CreateTaskBody, "input">>;
/** The body of `threads.createTask`. */
export type CreateThreadTaskInput = Omit<CreateTaskInput, "thread_id">;

/**
 * A created task. When the thread was busy and the busy policy was `steer` (202), no task was
 * made: the input went to the running task, which is returned with `steered: {input_id}`.
 */
export type CreatedTask = Task & { steered?: { input_id: string } };

export interface TaskList {
  tasks: Task[];
  /** Pass back as `cursor` for the next page; null on the last one. */
  next_cursor: string | null;
}

export interface TaskEvents {
  task_id: string;
  status: TaskStatus;
  last_seq: number;
  /** Events up to this seq were pruned by retention. */
  pruned_through: number;
  /** The stored frames after `after`, exactly as a watch sends them. */
  events: DurableFrame[];
}

export interface ThreadList {
  threads: Thread[];
  next_cursor: string | null;
}

/** `GET /threads/:id`: the thread with its tasks (the newest 200, oldest first). */
export type ThreadWithTasks = Thread & { tasks: Task[]; tasks_truncated: boolean };

export interface InputAccepted {
  task_id: string;
  input_id: string;
}
