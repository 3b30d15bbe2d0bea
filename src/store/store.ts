/**
 * The store seam: tasks and their event logs. Events are stored as the exact frame text that is
 * published, so a replay sends the same bytes a live watcher got. `seq` is gapless per task
 * (1, 2, 3 …); the runner assigns it and the store refuses a duplicate.
 */
import type { StopReason, Task, TaskError, TaskMetadata, TaskStatus } from "../protocol/task.ts";

export interface NewTask {
  id: string;
  owner: string;
  agent: string;
  input: string;
  metadata: TaskMetadata;
  createdAt: Date;
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
  error: TaskError | null;
  totalSteps: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number | null;
  finishedAt: Date;
}

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
}

export interface TaskStore {
  createTask(task: NewTask): Promise<Task>;
  getTask(id: string): Promise<Task | undefined>;
  listTasks(query: ListTasksQuery): Promise<TaskPage>;
  /** Tasks in any of these statuses, oldest first (start-up recovery). */
  tasksWithStatus(statuses: readonly TaskStatus[]): Promise<Task[]>;
  /** `queued → running`; false if the task is no longer queued (e.g. cancelled). */
  markRunning(id: string, startedAt: Date): Promise<boolean>;
  /**
   * Appends consecutive durable events in one transaction — all or none. Throws if the first is
   * not the task's next `seq`, or the run has a gap.
   */
  appendEvents(id: string, events: readonly StoredEvent[]): Promise<void>;
  /**
   * Moves a non-terminal task to its terminal state and appends its `result` event, atomically.
   * Returns false, writing nothing, if the task was already terminal: the first terminal state wins.
   */
  finishTask(id: string, outcome: TaskOutcome, seq: number, frame: string): Promise<boolean>;
  /**
   * Deletes the event logs of tasks that ended before `finishedBefore`, keeping the tasks; their
   * `pruned_through` becomes their `last_seq`. Returns how many tasks were pruned.
   */
  pruneEvents(finishedBefore: Date): Promise<number>;
  /** Events with `seq > after`, in order, at most `limit`. */
  events(id: string, after: number, limit: number): Promise<StoredEvent[]>;
  /** Releases the store (a file, a connection pool); callers await it, a sync store returns nothing. */
  close(): void | Promise<void>;
}
