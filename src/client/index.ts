/**
 * The typed agentkit client (`agentkit/client`): REST calls and `watch`, a task's frames as an
 * async iterator that reconnects and resumes by itself. It imports nothing but src/protocol, so
 * it runs in Bun, Node ≥ 20 and browsers (global `fetch` and `WebSocket`, both injectable).
 *
 * ```ts
 * const client = createClient({ url: "http://127.0.0.1:8000", apiKey: process.env.AGENTKIT_API_KEY });
 * const task = await client.tasks.create({ input: "What is 17*23?" });
 * for await (const frame of client.watch(task.id)) console.log(frame);
 * ```
 */
import { baseUrl, request, type HttpContext } from "./http.ts";
import type {
  AgentInfo,
  ClientOptions,
  CreatedTask,
  CreateTaskInput,
  CreateThreadTaskInput,
  InputAccepted,
  Task,
  TaskEvents,
  TaskList,
  TaskStatus,
  Thread,
  ThreadList,
  ThreadWithTasks,
  WatchFrame,
  WatchOptions,
} from "./types.ts";
import { watchTask } from "./watch.ts";

export { AgentkitClientError } from "./errors.ts";
export { BACKOFF, backoffDelay } from "./watch.ts";
export type * from "./types.ts";

export interface AgentkitClient {
  agents: {
    /** `GET /agents`. */
    list(): Promise<AgentInfo[]>;
  };
  tasks: {
    /** `POST /tasks` (201). With a busy thread and `on_busy: "steer"`, the running task with `steered: {input_id}`. */
    create(body: CreateTaskInput): Promise<CreatedTask>;
    get(id: string): Promise<Task>;
    /** Newest first; pass `next_cursor` back as `cursor`. */
    list(query?: { status?: TaskStatus; limit?: number; cursor?: string }): Promise<TaskList>;
    /** The stored frames with `seq > after`: at most `limit` (1–1000, default 500) and ~1 MiB of frames (at least one); a page may end before `last_seq`. */
    events(id: string, query?: { after?: number; limit?: number }): Promise<TaskEvents>;
    /** Idempotent; the task in the state it ended in. */
    cancel(id: string): Promise<Task>;
    approve(id: string, callId: string): Promise<Task>;
    reject(id: string, callId: string, reason?: string): Promise<Task>;
    /** Answers an `ask_user` question. */
    answer(id: string, callId: string, text: string): Promise<Task>;
    /** A message the model reads before its next step (steering). */
    input(id: string, text: string): Promise<InputAccepted>;
  };
  threads: {
    create(): Promise<Thread>;
    get(id: string): Promise<ThreadWithTasks>;
    list(query?: { limit?: number; cursor?: string }): Promise<ThreadList>;
    createTask(id: string, body: CreateThreadTaskInput): Promise<CreatedTask>;
  };
  /** A task's frames, live, across reconnects: see src/client/watch.ts. */
  watch(taskId: string, options?: WatchOptions): AsyncIterable<WatchFrame>;
}

export function createClient(options: ClientOptions): AgentkitClient {
  const base = baseUrl(options.url);
  const injected = options.fetch;
  const http: HttpContext = {
    base,
    apiKey: options.apiKey,
    // Called unbound (a browser's fetch refuses another `this`); the global is looked up per call.
    fetch: injected ?? ((input, init) => globalThis.fetch(input, init)),
  };
  const id = encodeURIComponent;
  const created = (answer: Task | { steered: true; input_id: string; task: Task }): CreatedTask =>
    "steered" in answer && answer.steered === true ? { ...answer.task, steered: { input_id: answer.input_id } } : (answer as Task);

  return {
    agents: {
      list: async () => (await request<{ agents: AgentInfo[] }>(http, "GET", "/agents")).agents,
    },
    tasks: {
      create: async (body) => created(await request(http, "POST", "/tasks", { body })),
      get: (taskId) => request(http, "GET", `/tasks/${id(taskId)}`),
      list: (query = {}) => request(http, "GET", "/tasks", { query }),
      events: (taskId, query = {}) => request(http, "GET", `/tasks/${id(taskId)}/events`, { query }),
      cancel: (taskId) => request(http, "POST", `/tasks/${id(taskId)}/cancel`),
      approve: (taskId, callId) => request(http, "POST", `/tasks/${id(taskId)}/approvals`, { body: { call_id: callId, decision: "approve" } }),
      reject: (taskId, callId, reason) =>
        request(http, "POST", `/tasks/${id(taskId)}/approvals`, {
          body: { call_id: callId, decision: "reject", ...(reason === undefined ? {} : { reason }) },
        }),
      answer: (taskId, callId, text) => request(http, "POST", `/tasks/${id(taskId)}/answers`, { body: { call_id: callId, text } }),
      input: (taskId, text) => request(http, "POST", `/tasks/${id(taskId)}/input`, { body: { text } }),
    },
    threads: {
      create: () => request(http, "POST", "/threads"),
      get: (threadId) => request(http, "GET", `/threads/${id(threadId)}`),
      list: (query = {}) => request(http, "GET", "/threads", { query }),
      createTask: async (threadId, body) => created(await request(http, "POST", `/threads/${id(threadId)}/tasks`, { body })),
    },
    watch: (taskId, watchOptions) => watchTask({ base, apiKey: options.apiKey, WebSocket: options.WebSocket }, taskId, watchOptions),
  };
}
