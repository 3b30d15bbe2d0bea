/**
 * Task statuses as plain constants, without zod: what a client bundle (src/client, the web
 * console) needs at run time, so it does not pull the schemas in. `task.ts` builds its schema from
 * these and re-exports them.
 */
export const TASK_STATUSES = ["queued", "running", "waiting", "completed", "failed", "cancelled", "timed_out"] as const;
export type TaskStatusName = (typeof TASK_STATUSES)[number];

/** The statuses a task never leaves. */
export const TERMINAL_STATUSES: readonly TaskStatusName[] = ["completed", "failed", "cancelled", "timed_out"];

/** The statuses of a task that has not ended (a thread with one is busy). */
export const UNFINISHED_STATUSES: readonly TaskStatusName[] = TASK_STATUSES.filter((status) => !TERMINAL_STATUSES.includes(status));
