/**
 * The web console (served at `/`, bundled into the binary): start tasks on any agent, see the
 * task list change live, and watch a task's timeline as it runs — text typing from deltas, tool
 * calls and results, approvals and questions to decide, messages to steer it, cancel.
 *
 * Built only on the public API, through the typed client (src/client): REST for the list
 * (polled every few seconds) and actions; `client.watch` (WebSocket, reconnecting and resuming by
 * itself) for the open task. No framework: DOM nodes are appended as frames come (timeline.ts).
 */
import { AgentkitClientError, createClient, type AgentInfo, type Task, type WatchFrame } from "../client/index.ts";
import { byId, h, setText } from "./dom.ts";
import { cost, excerpt, isTerminalStatus, takesInput, time, tokens } from "./format.ts";
import { askForKey, storedKey } from "./key.ts";
import { TaskList } from "./task-list.ts";
import { Timeline } from "./timeline.ts";

type Client = ReturnType<typeof createClient>;

/** How often the task list is refreshed. The open task is watched live, not polled. */
const LIST_POLL_MS = 3000;
const LIST_PAGE = 50;
/** Rows below the first page (from "Load more") whose task has not ended, read again per poll. */
const UNSETTLED_PER_POLL = 20;

let client: Client = makeClient(storedKey());

function makeClient(apiKey: string | undefined): Client {
  return createClient({ url: location.origin, apiKey });
}

function isUnauthorized(error: unknown): boolean {
  return error instanceof AgentkitClientError && (error.status === 401 || error.code === "unauthorized");
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** What the header says when the server could not be asked, or answered with an error (a database that is down: 503). */
function trouble(error: unknown): string {
  return error instanceof AgentkitClientError && error.status > 0 ? `The server answered ${error.status}: ${error.message}` : `Cannot reach the server: ${message(error)}`;
}

/** Asks for a key after a 401 (one dialog however many requests failed) and makes a client with it. */
async function renewKey(): Promise<void> {
  const key = await askForKey(storedKey() ? "refused" : "needed");
  if (key !== undefined) client = makeClient(key);
}

/** Runs a request with the current client; on 401 asks for a key and tries again. */
async function call<T>(request: (client: Client) => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await request(client);
    } catch (error) {
      if (!isUnauthorized(error)) throw error;
      await renewKey();
    }
  }
}

// ---- agents and the new-task form -------------------------------------------------------------

const agentSelect = byId<HTMLSelectElement>("task-agent");
const agentInfo = byId("agent-info");
const taskInput = byId<HTMLTextAreaElement>("task-input");
const threadInput = byId<HTMLInputElement>("task-thread");
const formStatus = byId("form-status");
let agents: AgentInfo[] = [];

async function loadAgents(): Promise<void> {
  agents = await call((c) => c.agents.list());
  const previous = agentSelect.value;
  agentSelect.replaceChildren(
    ...agents.map((agent) => h("option", { attrs: { value: agent.name, selected: previous ? agent.name === previous : agent.default } }, agent.default ? `${agent.name} (default)` : agent.name)),
  );
  showAgentInfo();
}

function showAgentInfo(): void {
  const agent = agents.find((candidate) => candidate.name === agentSelect.value);
  if (!agent) return setText(agentInfo, "");
  const parts = [agent.model, agent.tools.length > 0 ? `tools: ${agent.tools.join(", ")}` : "no tools"];
  if (agent.approval.length > 0) parts.push(`asks approval for ${agent.approval.join(", ")}`);
  setText(agentInfo, [agent.description ?? "", parts.join(" · ")].filter(Boolean).join(" — "));
}

agentSelect.addEventListener("change", showAgentInfo);

byId<HTMLFormElement>("new-task").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = taskInput.value.trim();
  if (!input) return;
  const button = byId<HTMLButtonElement>("start-task");
  button.disabled = true;
  setText(formStatus, "Starting…");
  const threadId = threadInput.value.trim();
  call((c) => c.tasks.create({ input, agent: agentSelect.value || undefined, ...(threadId ? { thread_id: threadId } : {}) }))
    .then((task) => {
      taskInput.value = "";
      setText(formStatus, task.steered ? `The thread was busy: sent to task ${task.id} as a message.` : "");
      taskList.upsert(task);
      location.hash = `#/tasks/${encodeURIComponent(task.id)}`;
    })
    .catch((error) => setText(formStatus, `Not started: ${message(error)}`))
    .finally(() => (button.disabled = false));
});

byId("new-thread").addEventListener("click", () => {
  call((c) => c.threads.create())
    .then((thread) => {
      threadInput.value = thread.id;
      setText(formStatus, "New thread: tasks started with it share their history.");
    })
    .catch((error) => setText(formStatus, `No thread: ${message(error)}`));
});

// ---- the task list (polled) ---------------------------------------------------------------------

const listStatus = byId("list-status");
const loadMore = byId<HTMLButtonElement>("load-more");
const statusFilter = byId<HTMLSelectElement>("status-filter");
const taskList = new TaskList(byId<HTMLUListElement>("task-list"));
let olderCursor: string | null = null;
let listing = false;

async function refreshList(): Promise<void> {
  if (listing) return;
  listing = true;
  try {
    const status = (statusFilter.value || undefined) as Task["status"] | undefined;
    const page = await call((c) => c.tasks.list({ limit: LIST_PAGE, ...(status ? { status } : {}) }));
    const first = taskList.size === 0;
    taskList.merge(page.tasks, true);
    if (first) olderCursor = page.next_cursor;
    loadMore.hidden = olderCursor === null;
    setText(listStatus, taskList.size === 0 ? "No tasks yet." : "");
    setText(connection, "");
    const open = view && page.tasks.find((task) => task.id === view!.id);
    if (open) view!.showTask(open);
    // Older rows whose task was still going: read each again (the first page does not hold them).
    const onPage = new Set(page.tasks.map((task) => task.id));
    for (const id of taskList.unsettled(onPage, UNSETTLED_PER_POLL)) {
      const task = await call((c) => c.tasks.get(id)).catch(() => undefined);
      if (task) taskList.upsert(task);
    }
  } catch (error) {
    setText(connection, trouble(error));
  } finally {
    listing = false;
  }
}

loadMore.addEventListener("click", () => {
  if (olderCursor === null) return;
  loadMore.disabled = true;
  const status = (statusFilter.value || undefined) as Task["status"] | undefined;
  call((c) => c.tasks.list({ limit: LIST_PAGE, cursor: olderCursor!, ...(status ? { status } : {}) }))
    .then((page) => {
      taskList.merge(page.tasks, false);
      olderCursor = page.next_cursor;
      loadMore.hidden = olderCursor === null;
    })
    .catch((error) => setText(listStatus, message(error)))
    .finally(() => (loadMore.disabled = false));
});

statusFilter.addEventListener("change", () => {
  taskList.clear();
  olderCursor = null;
  taskList.select(view?.id);
  void refreshList();
});

// ---- the open task ---------------------------------------------------------------------------

const connection = byId("connection");
const emptyView = byId("empty-view");
const pane = byId("task-pane");
const watchState = byId("watch-state");
const statusBadge = byId("task-status");
const cancelButton = byId<HTMLButtonElement>("cancel-task");
const taskMessage = byId("task-message");
const steerForm = byId<HTMLFormElement>("steer-form");
const steerInput = byId<HTMLInputElement>("steer-input");
const steerStatus = byId("steer-status");
const scroller = byId("timeline-scroll");

/** Event types after which the task's status may have changed (waiting, queued again, running). */
const STATUS_EVENTS = new Set(["approval_requested", "question", "approval_decided", "answer", "resumed"]);

class TaskView {
  readonly abort = new AbortController();
  readonly timeline: Timeline;
  status = "";
  agent: string | undefined;
  private ended = false;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(readonly id: string) {
    this.timeline = new Timeline(
      {
        approve: async (callId) => this.showTask(await call((c) => c.tasks.approve(id, callId))),
        reject: async (callId, reason) => this.showTask(await call((c) => c.tasks.reject(id, callId, reason))),
        answer: async (callId, text) => this.showTask(await call((c) => c.tasks.answer(id, callId, text))),
      },
      scroller,
      (timeline) => this.showTotals(timeline),
    );
  }

  open(): void {
    emptyView.hidden = true;
    pane.hidden = false;
    setText(byId("task-title"), this.id);
    setText(byId("task-input-text"), "");
    setText(byId("task-facts"), "");
    setText(byId("task-totals"), "");
    setText(taskMessage, "");
    setText(watchState, "");
    setText(steerStatus, "");
    this.setStatus("");
    scroller.replaceChildren(this.timeline.element);
    taskList.select(this.id);
    void call((c) => c.tasks.get(this.id))
      .then((task) => this.showTask(task))
      .catch((error) => {
        if (!this.abort.signal.aborted) setText(taskMessage, `Cannot load the task: ${message(error)}`);
      });
    void this.follow();
  }

  close(): void {
    this.abort.abort();
    clearTimeout(this.refreshTimer);
    this.timeline.dispose();
  }

  /** Watches the task until its result (the client reconnects and resumes by itself). */
  private async follow(): Promise<void> {
    const signal = this.abort.signal;
    for (;;) {
      try {
        for await (const frame of client.watch(this.id, { after: this.timeline.lastSeq, deltas: true, signal })) {
          if (signal.aborted) return;
          this.onFrame(frame);
        }
        return;
      } catch (error) {
        if (signal.aborted) return;
        if (isUnauthorized(error)) {
          await renewKey();
          continue;
        }
        setText(watchState, "");
        this.timeline.push({ type: "notice", level: "error", text: `Stopped watching: ${message(error)}` });
        return;
      }
    }
  }

  private onFrame(frame: WatchFrame): void {
    switch (frame.type) {
      case "connected":
        setText(watchState, "");
        if (!this.ended) this.setStatus(frame.status);
        return;
      case "reconnecting":
        setText(watchState, `reconnecting (attempt ${frame.attempt})…`);
        this.timeline.push({ type: "typing_reset" });
        return;
      case "step":
        this.timeline.push(frame);
        if (STATUS_EVENTS.has(frame.data.event_type)) this.refreshSoon();
        else if (this.status === "queued" || this.status === "waiting") this.setStatus("running");
        return;
      case "delta":
        this.timeline.push(frame);
        return;
      case "result":
        this.timeline.push(frame);
        this.ended = true;
        this.setStatus(frame.data.status);
        this.refreshSoon();
        return;
      case "resync":
        this.timeline.push(frame);
        this.setStatus(frame.data.status);
        return;
      case "error":
        this.timeline.push({ type: "notice", level: "error", text: `${frame.data.code ?? "error"}: ${frame.data.message}` });
        return;
      case "ack":
        return;
    }
  }

  /** The task as REST returns it: header facts, status, totals and cost. */
  showTask(task: Task): void {
    if (task.id !== this.id || this.abort.signal.aborted) return;
    this.agent = task.agent;
    setText(byId("task-input-text"), task.input);
    const facts = [`agent ${task.agent}`, `created ${time(task.created_at)}`, `by ${task.owner}`];
    if (task.thread_id) facts.push(`thread ${task.thread_id}`);
    if (task.status === "waiting" && task.wait_until) facts.push(`waits until ${time(task.wait_until)}`);
    setText(byId("task-facts"), facts.join(" · "));
    const continueThread = byId<HTMLButtonElement>("continue-thread");
    continueThread.hidden = task.thread_id === null;
    continueThread.dataset.thread = task.thread_id ?? "";
    if (!this.ended || isTerminalStatus(task.status)) this.setStatus(task.status);
    if (task.cost_usd !== null) this.timeline.totals.costUsd = task.cost_usd;
    if (isTerminalStatus(task.status)) {
      this.timeline.totals.inputTokens = task.input_tokens;
      this.timeline.totals.outputTokens = task.output_tokens;
      this.timeline.totals.steps = task.total_steps;
    }
    this.showTotals(this.timeline);
    taskList.upsert(task);
  }

  private refreshSoon(): void {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      void call((c) => c.tasks.get(this.id))
        .then((task) => this.showTask(task))
        .catch(() => {});
    }, 150);
  }

  private setStatus(status: string): void {
    this.status = status;
    statusBadge.className = `status ${status}`;
    setText(statusBadge, status.replace("_", " "));
    cancelButton.hidden = status === "" || isTerminalStatus(status);
    steerForm.hidden = !takesInput(status);
    if (status) taskList.setStatus(this.id, status);
  }

  private showTotals(timeline: Timeline): void {
    const { steps, inputTokens, outputTokens, costUsd } = timeline.totals;
    const parts = [`${timeline.entries.toLocaleString("en-US")} events`, `${steps} steps`, `${tokens(inputTokens)} tokens in`, `${tokens(outputTokens)} out`];
    if (costUsd !== null) parts.push(cost(costUsd));
    setText(byId("task-totals"), parts.join(" · "));
  }
}

let view: TaskView | undefined;

function openTask(id: string | undefined): void {
  if (view && view.id === id) return;
  view?.close();
  view = undefined;
  if (!id) {
    pane.hidden = true;
    emptyView.hidden = false;
    taskList.select(undefined);
    return;
  }
  view = new TaskView(id);
  view.open();
}

cancelButton.addEventListener("click", () => {
  const current = view;
  if (!current) return;
  cancelButton.disabled = true;
  setText(taskMessage, "Cancelling…");
  call((c) => c.tasks.cancel(current.id))
    .then((task) => {
      setText(taskMessage, "");
      current.showTask(task);
    })
    .catch((error) => setText(taskMessage, `Not cancelled: ${message(error)}`))
    .finally(() => (cancelButton.disabled = false));
});

steerForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const current = view;
  const text = steerInput.value.trim();
  if (!current || !text) return;
  setText(steerStatus, "Sending…");
  call((c) => c.tasks.input(current.id, text))
    .then(() => {
      steerInput.value = "";
      setText(steerStatus, "Sent: the model reads it before its next step.");
    })
    .catch((error) => setText(steerStatus, `Not sent: ${message(error)}`));
});

byId("continue-thread").addEventListener("click", (event) => {
  const thread = (event.currentTarget as HTMLButtonElement).dataset.thread;
  if (!thread) return;
  threadInput.value = thread;
  const agent = view?.agent;
  if (agent && agents.some((candidate) => candidate.name === agent)) {
    agentSelect.value = agent;
    showAgentInfo();
  }
  setText(formStatus, "The next task continues this thread.");
  taskInput.focus();
});

byId("key-button").addEventListener("click", () => {
  void askForKey("change").then((key) => {
    if (key !== undefined) location.reload(); // everything again with the new key
  });
});

// ---- routing: #/tasks/<id> ---------------------------------------------------------------------

function route(): void {
  const match = /^#\/tasks\/([^/?#]+)/.exec(location.hash);
  let id: string | undefined;
  try {
    id = match ? decodeURIComponent(match[1]!) : undefined;
  } catch {
    id = undefined;
  }
  openTask(id);
  document.title = id ? `${excerpt(id, 12)} · agentkit console` : "agentkit console";
}

window.addEventListener("hashchange", route);

async function start(): Promise<void> {
  for (;;) {
    try {
      await loadAgents();
      break;
    } catch (error) {
      setText(connection, `${trouble(error)} (retrying)`);
      await new Promise((resolve) => setTimeout(resolve, LIST_POLL_MS));
    }
  }
  setText(connection, "");
  route();
  await refreshList();
  setInterval(() => void refreshList(), LIST_POLL_MS);
}

void start();
