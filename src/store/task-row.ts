/**
 * A task read back from a store, checked at the boundary: a row that is not a task (edited by hand,
 * written by a newer release) is an error, not garbage passed on to clients.
 *
 * The check is written out rather than `Task.parse`: zod parsing the whole record was ~8 µs of a
 * ~12 µs `getTask` (most of a WebSocket connect's CPU, and of every listed task). The store wrote
 * every value through typed statements, so what can go wrong is a status or reason it does not
 * know, a field of the wrong type, or JSON that does not parse — each is checked here, cheaply.
 */
import { AgentkitError } from "../errors.ts";
import { StopReason, TaskError, TaskStatus, type Task } from "../protocol/task.ts";

const STATUSES: ReadonlySet<string> = new Set(TaskStatus.options);
const STOP_REASONS: ReadonlySet<string> = new Set(StopReason.options);

const STRINGS = ["id", "owner", "agent", "input", "created_at"] as const;
const NULLABLE_STRINGS = ["output", "thread_id", "wait_until", "started_at", "finished_at"] as const;
const INTEGERS = ["total_steps", "total_tokens", "input_tokens", "output_tokens", "last_seq", "pruned_through"] as const;

/** `task` as read from a row, or an error naming what is wrong with it. Returns the same object. */
export function checkedTask(task: Task): Task {
  const fail = (what: string): never => {
    throw new AgentkitError("internal", `Stored task ${JSON.stringify(String(task.id)).slice(0, 80)} is not valid: ${what}`);
  };
  for (const key of STRINGS) if (typeof task[key] !== "string") fail(`${key} is not a string`);
  for (const key of NULLABLE_STRINGS) if (task[key] !== null && typeof task[key] !== "string") fail(`${key} is not a string or null`);
  for (const key of INTEGERS) if (!Number.isInteger(task[key])) fail(`${key} is not an integer`);
  if (!STATUSES.has(task.status)) fail(`unknown status ${JSON.stringify(task.status)}`);
  if (task.stop_reason !== null && !STOP_REASONS.has(task.stop_reason)) fail(`unknown stop_reason ${JSON.stringify(task.stop_reason)}`);
  if (task.cost_usd !== null && typeof task.cost_usd !== "number") fail("cost_usd is not a number or null");
  if (typeof task.metadata !== "object" || task.metadata === null || Array.isArray(task.metadata)) fail("metadata is not an object");
  // Rare (failed and timed-out tasks only), and a closed set of codes: the schema says it best.
  if (task.error !== null && !TaskError.safeParse(task.error).success) fail("error is not a task error");
  return task;
}

/** JSON text of a column, parsed; a column that does not parse is a bad row. */
export function parseColumn(task: string, column: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new AgentkitError("internal", `Stored task ${JSON.stringify(task).slice(0, 80)} is not valid: ${column} is not JSON`);
  }
}
