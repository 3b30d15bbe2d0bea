/**
 * When a client counts as not reading, the same for every stream of ours (the task WebSocket, SSE,
 * A2A and AG-UI streams): more than `slowClientBytes` queued for it for `slowClientGraceMs`, or at
 * once more than the hard limit (memory stays bounded).
 *
 * The grace is for clients that do read: a burst the server writes in one turn of the event loop (a
 * cluster node publishing a page of a task's log, a replay handing over to live frames, 64 events
 * of an instant model) is queued before any of it reaches the socket — past the limit for a client
 * that reads at full speed too, which brings it back under within moments.
 */

/** How long a client's queue may stay past `slowClientBytes` by default. */
export const DEFAULT_SLOW_CLIENT_GRACE_MS = 1000;

/** Past this many times `slowClientBytes`, a client is cut off at once… */
const HARD_LIMIT_FACTOR = 4;
/** … but never below this: two pages of the store's (PAGE_BYTES), the largest burst the server writes in one turn. */
const HARD_LIMIT_MIN_BYTES = 2 * 1024 * 1024;

/** The queue past which a client is cut off at once. */
export function slowClientHardLimit(slowClientBytes: number): number {
  return Math.max(HARD_LIMIT_FACTOR * slowClientBytes, HARD_LIMIT_MIN_BYTES);
}
