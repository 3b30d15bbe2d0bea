/**
 * The store seam: tasks and their event logs. Events are stored as the exact frame text that is
 * published, so a replay sends the same bytes a live watcher got. `seq` is gapless per task
 * (1, 2, 3 …); the runner assigns it and the store refuses a duplicate.
 */
import { AgentkitError } from "../errors.ts";
import type { StopReason, Task, TaskError, TaskMetadata, TaskStatus, Thread } from "../protocol/task.ts";
import { backgroundSlice } from "../lib/turn.ts";

export interface NewTask {
  id: string;
  owner: string;
  agent: string;
  input: string;
  metadata: TaskMetadata;
  createdAt: Date;
  /** The thread it continues (created first with `createThread`), if any. */
  threadId?: string | null;
  /** Where the task's own webhook goes (`task.finished`); not shown on the task. */
  webhookUrl?: string | null;
}

/** A person's message waiting to reach a task's model at its next step (steering); see `addInput`. */
export interface PendingInput {
  id: string;
  text: string;
  /** Who sent it (a key's name). */
  by: string;
  createdAt: Date;
}

export interface ListThreadsQuery {
  owner?: string;
  limit: number;
  cursor?: string;
}

/** Which of a thread's tasks `threadTasks` reads. */
export interface ThreadTasksQuery {
  /** At most this many (the newest). */
  limit: number;
  /** Only tasks in one of these statuses. */
  statuses?: readonly TaskStatus[];
  /** Only tasks created before this task (an id; none if it is unknown). */
  before?: string;
  /** Stop once the tasks taken hold this many characters of `input` and `output` (at least one task). */
  maxChars?: number;
}

export interface StoredEvent {
  seq: number;
  /** The serialised frame, exactly as published. */
  frame: string;
}

/** How a task ended; written together with its `result` event, once. */
export interface TaskOutcome {
  status: Extract<TaskStatus, "completed" | "failed" | "cancelled" | "timed_out">;
  stopReason: StopReason;
  output: string | null;
  /** The final answer parsed (agents with an `output_schema`); undefined or null: none. */
  outputJson?: unknown;
  error: TaskError | null;
  totalSteps: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number | null;
  finishedAt: Date;
}

/** What a webhook is sent for (see src/webhooks). */
export const WEBHOOK_EVENTS = ["task.finished", "task.waiting"] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];
export type WebhookStatus = "pending" | "delivered" | "failed";

/** A webhook to send, written to the outbox in the same transaction as the task's end or wait. */
/** What a task used so far (its row's totals). */
export interface UsageTotals {
  steps: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number | null;
}

export interface NewWebhook {
  /** `webhook-id`: the same on every attempt (receivers dedupe on it). */
  id: string;
  /** Where to POST; absent: the task's own `webhook_url` (nothing is written when it has none). */
  url?: string;
  event: WebhookEvent;
  /** The request body, exactly as sent. */
  payload: string;
  createdAt: Date;
}

/** An outbox row: one webhook and how its delivery goes. */
export interface Webhook {
  id: string;
  taskId: string;
  url: string;
  event: WebhookEvent;
  payload: string;
  /** Attempts made so far (recorded ones). */
  attempts: number;
  /** When it is next due (while pending; a claim moves it by the claim's lease). */
  nextAttemptAt: Date;
  status: WebhookStatus;
  lastError: string | null;
  createdAt: Date;
  deliveredAt: Date | null;
}

/**
 * Where a webhook goes, for fair delivery: its URL's origin (scheme, host and port, as the WHATWG URL
 * parser gives it: lower-case host, punycode, no default port, no credentials). Not the exact URL:
 * what hangs or is slow is the server behind a host and port, and URLs to one server often differ by
 * path or query (a token, the task's id) — each would be a destination of its own, and a cap per
 * destination would bound nothing. A URL that does not parse (none does: they are checked) is its own.
 */
export function webhookDestination(url: string): string {
  try {
    const origin = new URL(url).origin;
    if (origin !== "null") return origin;
  } catch {
    // its own destination
  }
  return url;
}

/** A claimed webhook, with its destination (`webhookDestination` of its url). */
export interface ClaimedWebhook extends Webhook {
  destination: string;
}

/** How a claim shares out the slots among destinations (`claimWebhooks`). */
export interface WebhookFairness {
  /** Deliveries one destination may have in flight at once (on this node). */
  perDestination: number;
  /** Deliveries in flight now, by destination: a destination gets `perDestination` less these, none once full. */
  busy: ReadonlyMap<string, number>;
}

/** How one delivery attempt went (`recordWebhookAttempt`). */
export type WebhookAttempt =
  | { outcome: "delivered"; at: Date }
  | { outcome: "retry"; error: string; nextAttemptAt: Date }
  | { outcome: "failed"; error: string };

export interface ListTasksQuery {
  status?: TaskStatus;
  /** Only tasks of this owner; all when absent. */
  owner?: string;
  limit: number;
  /** Opaque cursor from a previous page's `next_cursor`. */
  cursor?: string;
}

export interface TaskPage {
  tasks: Task[];
  nextCursor: string | null;
  /** For each task of the page, the cursor of the tasks after it (a page cut short goes on from there). */
  cursors: string[];
}

export interface TaskStore {
  createTask(task: NewTask): Promise<Task>;
  getTask(id: string): Promise<Task | undefined>;
  listTasks(query: ListTasksQuery): Promise<TaskPage>;
  /** Tasks in any of these statuses, oldest first (start-up recovery). */
  tasksWithStatus(statuses: readonly TaskStatus[]): Promise<Task[]>;
  /**
   * `queued → running` (`attempt` + 1; `started_at` set on the first run only); false if the task is
   * no longer queued (e.g. cancelled).
   */
  markRunning(id: string, startedAt: Date): Promise<boolean>;
  /**
   * `running → waiting` (fenced like `appendEvents`): the run has stored its last events (an
   * `approval_requested` or `question`) and ends; nothing runs until a person decides, or until
   * `waitUntil`. A cluster store also drops the lease. False, writing nothing, if it was not running.
   * `totals` (what the task used so far) are stored with it: a waiting task, and one cancelled or
   * timed out while it waits, shows them.
   */
  waitTask(id: string, waitUntil: Date | null, fence?: number, webhooks?: readonly NewWebhook[], totals?: UsageTotals): Promise<boolean>;
  /**
   * Appends events to a `waiting` task — a person's decision, written by whichever node received
   * it — and with `requeue` moves it `waiting → queued` in the same transaction (the next run
   * resumes it from its log). False, writing nothing, when the task is not waiting or its last seq
   * is not `events[0].seq - 1` (someone else wrote first: read the log again).
   */
  appendWhileWaiting(id: string, events: readonly StoredEvent[], requeue: boolean): Promise<boolean>;
  /** `waiting` tasks whose `wait_until` is before `now`, soonest first, at most `limit`. */
  expiredWaits(now: Date, limit: number): Promise<Task[]>;
  /**
   * Keeps a person's message for a task until its run reads it (`pendingInputs`), durably: a restart
   * in between loses nothing. False, storing nothing, when the task is missing or has ended.
   */
  addInput(taskId: string, input: PendingInput): Promise<boolean>;
  /** The task's inputs not yet deleted, oldest first. */
  pendingInputs(taskId: string): Promise<PendingInput[]>;
  /** How many messages wait for the task (as `pendingInputs(taskId).length`, without reading them). */
  pendingInputCount(taskId: string): Promise<number>;
  /** Forgets inputs the run has stored as `user_input` events. */
  deleteInputs(taskId: string, ids: readonly string[]): Promise<void>;
  /**
   * Creates a thread (a conversation: its tasks run with the history of the earlier ones). With
   * `adopt`, a task of the same owner that has no thread joins it in the same write (a task made
   * without a thread, continued later under its own id as a context: its turn is the first).
   */
  createThread(thread: { id: string; owner: string; createdAt: Date; adopt?: string }): Promise<Thread>;
  getThread(id: string): Promise<Thread | undefined>;
  /** Threads, newest first; each with its task count and last task. */
  listThreads(query: ListThreadsQuery): Promise<{ threads: Thread[]; nextCursor: string | null }>;
  /**
   * A thread's tasks in creation order (oldest first): of those `query` asks for, the newest
   * `limit`, and with `maxChars`, only as many of the newest as hold that many characters of input
   * and output in all (at least one): a thread of long inputs cannot make one read large.
   */
  threadTasks(threadId: string, query: ThreadTasksQuery): Promise<Task[]>;
  /**
   * A random 32-byte secret kept in the store under `name`, made on first use — the same for every
   * process of the store (each node of a cluster), and across restarts.
   */
  secret(name: string): Promise<Uint8Array>;
  /**
   * Appends consecutive durable events in one transaction — all or none. Throws if the first is
   * not the task's next `seq`, or the run has a gap.
   */
  appendEvents(id: string, events: readonly StoredEvent[], fence?: number): Promise<void>;
  /**
   * Moves a non-terminal task to its terminal state and appends its `result` event, atomically.
   * Returns false, writing nothing, if the task was already terminal: the first terminal state wins.
   * `webhooks` (as with `waitTask`) go to the outbox in the same transaction: written iff the task moved.
   * `before`: the run's last events, consecutive and ending at `seq - 1`, stored in the same
   * transaction (a run's end costs one commit, not an append and then the end).
   */
  finishTask(
    id: string,
    outcome: TaskOutcome,
    seq: number,
    frame: string,
    fence?: number,
    webhooks?: readonly NewWebhook[],
    before?: readonly StoredEvent[],
  ): Promise<boolean>;
  /**
   * Claims up to `limit` pending webhooks due at `now` for delivery: each is due again at
   * `now + leaseMs` (so a claimer that dies leaves it to be claimed again then). Rows another process
   * is claiming at the same moment are skipped (a cluster's nodes share the work).
   *
   * Fair by destination (`webhookDestination`): destinations take turns, the one whose oldest row is
   * due soonest first, each giving its rows oldest due first, at most `fairness.perDestination` less
   * what it has `busy` (no `fairness`: `limit`). A destination that is full is passed over without
   * reading its rows: a claim's cost follows `limit` and the number of full destinations, not how
   * many rows are due (an index of due destinations, kept by the store, is what it reads).
   * Rows written since the last claim are first taken into that index (`intakeWebhooks`), some of
   * them by each claim.
   */
  claimWebhooks(now: Date, limit: number, leaseMs: number, fairness?: WebhookFairness): Promise<ClaimedWebhook[]>;
  /**
   * Takes up to `limit` webhooks written since (oldest first) into the index of due destinations,
   * which claims read; the number taken. A claim takes some in itself; the delivery worker calls
   * this while it returns `limit`, so that a backlog (thousands written at once, or pending before an
   * upgrade) is taken in at once, a slice at a time, not only as fast as claims come.
   */
  intakeWebhooks(limit: number): Promise<number>;
  /** Records an attempt of a pending webhook (`attempts` + 1); false when it is not pending. */
  recordWebhookAttempt(id: string, attempt: WebhookAttempt, at: Date): Promise<boolean>;
  /**
   * A task's webhooks, in the order they were written; `toTaskUrl`: its url is the task's own
   * `webhook_url` (else an agent's — as configured then: the configuration may have changed since).
   */
  taskWebhooks(taskId: string): Promise<(Webhook & { toTaskUrl: boolean })[]>;
  /** Whether a task that has not ended has a `webhook_url` of its own (one of them is written when it ends). */
  unfinishedTaskWebhooks(): Promise<boolean>;
  /**
   * Takes a task that is `running` over for a new run (after a crash or restart: the run that had
   * it is gone): its `attempt` grows by one, and the new attempt is returned — the fencing token of
   * the new run. Undefined, changing nothing, when the task is not running.
   */
  takeOver(id: string): Promise<number | undefined>;
  /**
   * Deletes the event logs of tasks that ended before `finishedBefore`, keeping the tasks; their
   * `pruned_through` becomes their `last_seq`. Returns how many tasks were pruned.
   */
  pruneEvents(finishedBefore: Date): Promise<number>;
  /**
   * Events with `seq > after`, in order, at most `limit` — and with `maxBytes`, no more once the page
   * holds that many bytes of frames (UTF-8; the frame that reaches it is the last; at least one). A
   * page cut so is shorter than `limit` without being the end of the log: `pageMayContinue` tells.
   */
  events(id: string, after: number, limit: number, maxBytes?: number): Promise<StoredEvent[]>;
  /** Releases the store (a file, a connection pool); callers await it, a sync store returns nothing. */
  close(): void | Promise<void>;
}

/**
 * The first and last seq of a run of events to append (non-empty); every store refuses a run whose
 * seqs are not consecutive, with `conflict`, before it writes anything.
 */
export function seqRange(taskId: string, events: readonly StoredEvent[]): { first: number; last: number } {
  const first = events[0]!.seq;
  const last = events.at(-1)!.seq;
  if (last - first + 1 !== events.length || events.some((event, index) => event.seq !== first + index)) {
    throw new AgentkitError("conflict", `Events of task ${taskId} must be consecutive`);
  }
  return { first, last };
}

/** The first seq of `before`, checked to be consecutive and to end just before the result's `seq`. */
export function resultAfter(taskId: string, before: readonly StoredEvent[], seq: number): number {
  const { first, last } = seqRange(taskId, before);
  if (last !== seq - 1) throw new AgentkitError("conflict", `The result of task ${taskId} (seq ${seq}) must follow its last event (${last})`);
  return first;
}

/**
 * Fencing. Every run of a task holds an `attempt` number (its fencing token): it is 1 for the first
 * run and grows by one with every claim or takeover. `appendEvents` and `finishTask` take the
 * token of the run that writes (`fence`); when the task's `attempt` is no longer that number — the
 * task was taken over by another run — the write is refused with a `FencedError` and nothing is
 * written. Without `fence` the write is not fenced (single-node code paths and tests).
 */
export class FencedError extends Error {
  constructor(
    readonly taskId: string,
    readonly fence: number,
  ) {
    super(`task ${taskId}: this run (attempt ${fence}) no longer owns the task; write refused`);
    this.name = "FencedError";
  }
}

/** A task claimed for a run by this node (cluster mode). */
export interface Claim {
  task: Task;
  /** The run's fencing token (the task's new `attempt`). */
  attempt: number;
  /** The task was `running` under a lease that expired (its node died or stalled): a takeover. */
  takeover: boolean;
  /** A client asked to cancel it before (or while) it was claimed. */
  cancelRequested: boolean;
  /** People's messages wait in its inbox (`addInput`): the run reads them before its first step. */
  inputsPending: boolean;
}

/** A lease a node holds on a running task. */
export interface Lease {
  taskId: string;
  attempt: number;
}

/** One notification on the cluster's channel (see `ClusterStore.listen`). */
export type ClusterSignal =
  /** A task was queued: idle workers try to claim. */
  | { kind: "queued" }
  /** A client asked to cancel this task: the node running it aborts it. */
  | { kind: "cancel"; taskId: string }
  /** Events up to `lastSeq` of this task are stored (a hint: the events come from the log). */
  | { kind: "events"; taskId: string; lastSeq: number }
  /** A person sent this task a message (steering): the node running it reads its inputs. */
  | { kind: "input"; taskId: string }
  /** This task parked (`waiting` is stored): streams on every node that wait for it say "input required". */
  | { kind: "parked"; taskId: string }
  /** A node's own liveness probe of its LISTEN connection. */
  | { kind: "probe"; node: string; nonce: string }
  /**
   * A client cancelled an MCP `tools/call` (its registry key: principal, session, request id) on a
   * node that does not hold the call: the node holding it cancels it (src/protocols/mcp/calls.ts).
   */
  | { kind: "cancel_call"; key: string; reason: string };

/**
 * What cluster mode needs beyond `TaskStore`: a shared queue with leases, cancel requests and
 * notifications. PostgreSQL implements it; SQLite (one process) does not.
 *
 * Times of leases are the database's clock (`now()`), never a node's. `appendEvents` and
 * `finishTask` of a cluster store announce `{kind: "events"}` themselves once their write has
 * committed — right after it, coalesced (at most one NOTIFY in flight per store; a task's
 * intermediate seqs may be skipped, its last one never is; never announced for a refused write).
 * A hint: a crash between a commit and its NOTIFY loses it, so watchers also catch up on `onListen`.
 */
export interface ClusterStore {
  /**
   * Claims one task for `node`: the oldest `queued` task (not one whose thread has an earlier task
   * that has not ended: a thread's tasks run one at a time, in order), else a `running` one whose lease expired
   * (a takeover), skipping rows other nodes are claiming (`FOR UPDATE SKIP LOCKED`). The task
   * becomes `running` (its `started_at` kept if it had one), `attempt` + 1, leased to `node` until
   * now + `leaseMs`. Undefined when there is nothing to claim.
   */
  claimNext(node: string, leaseMs: number, startedAt: Date): Promise<Claim | undefined>;
  /**
   * Extends the leases `node` holds, in one statement. Returns the task ids whose lease it still
   * holds (any other was taken over or ended: its run must stop) and, of those, the ones a client
   * asked to cancel.
   */
  renewLeases(
    node: string,
    leases: readonly Lease[],
    leaseMs: number,
  ): Promise<{ held: Set<string>; cancelRequested: Set<string>; inputsPending: Set<string> }>;
  /** Gives leases up at once (a node stopping gracefully): other nodes can take the tasks over now. */
  releaseLeases(node: string, leases: readonly Lease[]): Promise<void>;
  /** Records a cancel request on a task that is not terminal, and announces it. */
  requestCancel(taskId: string): Promise<void>;
  /** How many tasks are queued, cluster-wide. */
  countQueued(): Promise<number>;
  /**
   * In how many ms (the database's clock; ≤ 0: already) the soonest lease held by another node
   * runs out, or undefined when no other node holds one: a node wakes then to take the task over,
   * instead of waiting for its next poll.
   */
  nextLeaseExpiry(node: string): Promise<number | undefined>;
  /** Sends a signal to every node (including this one). */
  signal(signal: ClusterSignal): Promise<void>;
  /**
   * Receives every signal. `onListen` runs once listening, and again after every reconnect of the
   * listening connection (signals sent meanwhile are lost: catch up then). Returns a function that
   * stops listening. Each call listens on a connection of its own, and stopping closes it at once
   * (no round trip): a caller that suspects a half-open connection (its own `probe` signals stop
   * coming back) stops and listens again to get a new one.
   */
  listen(onSignal: (signal: ClusterSignal) => void, onListen: () => void): Promise<() => Promise<void>>;
  /** True when the database answers a trivial query within `timeoutMs`. */
  ping(timeoutMs: number): Promise<boolean>;
}

const LOG_PAGE = 1000;

/**
 * Bytes of frames (UTF-8) a page read from the store holds at most (at least one frame), for the
 * readers of whole logs, replays and REST pages: with 100 KB tool results (`http_fetch`'s default
 * limit), a page of 1,000 events is 100 MB, read in one synchronous SQLite call, or published in one
 * turn by a cluster follower.
 */
export const PAGE_BYTES = 1024 * 1024;

/**
 * `threadTasks`' cut, the same in every store: of tasks given newest first, those that hold at most
 * `maxChars` characters (UTF-16 units) of input and output in all, and at least one. Reads `tasks`
 * no further than the first that does not fit (an iterator over rows reads no row past it).
 */
export function newestWithin<T extends { input: string; output: string | null }>(tasks: Iterable<T>, maxChars: number | undefined): T[] {
  const kept: T[] = [];
  let chars = 0;
  for (const task of tasks) {
    chars += task.input.length + (task.output?.length ?? 0);
    if (maxChars !== undefined && kept.length > 0 && chars > maxChars) break;
    kept.push(task);
  }
  return kept;
}

/** Whether more events may follow `page`, read with `limit` and `maxBytes` (see `TaskStore.events`). */
export function pageMayContinue(page: readonly StoredEvent[], limit: number, maxBytes?: number): boolean {
  if (page.length >= limit) return true;
  if (maxBytes === undefined || page.length === 0) return false;
  let bytes = 0;
  for (const event of page) bytes += Buffer.byteLength(event.frame);
  return bytes >= maxBytes;
}

/**
 * Hands each event of a task's whole stored log (or those after `from`) to `visit`, in seq order
 * (read in pages of 1,000), and gives the event loop a turn whenever the background slice (`backgroundSlice`, shared with
 * replays and retention) is spent, so that no log, however long, holds the server: read and parsed
 * in one go, a log of 60,000 events held it for 100–300 ms (an A2A GetTask, a decision on a
 * waiting task, a resume).
 */
export async function forEachLogEvent(store: Pick<TaskStore, "events">, taskId: string, visit: (event: StoredEvent) => void, from = 0): Promise<void> {
  let after = from;
  const slice = backgroundSlice;
  for (;;) {
    const page = await store.events(taskId, after, LOG_PAGE, PAGE_BYTES);
    for (const event of page) {
      visit(event);
      if (slice.spent) await slice.next();
    }
    if (!pageMayContinue(page, LOG_PAGE, PAGE_BYTES)) return;
    after = page.at(-1)!.seq;
  }
}

/** A task's whole stored log, in seq order (see `forEachLogEvent`: it never holds the event loop long). */
export async function readLog(store: Pick<TaskStore, "events">, taskId: string): Promise<StoredEvent[]> {
  const log: StoredEvent[] = [];
  await forEachLogEvent(store, taskId, (event) => log.push(event));
  return log;
}
