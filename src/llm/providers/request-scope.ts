/**
 * The signal for one HTTP request: it aborts when the task's signal aborts (with the task's
 * reason), when the per-request timeout fires, or when the consumer walks away early — and it
 * leaves no listener or timer behind once disposed.
 */

export interface RequestScope {
  readonly signal: AbortSignal;
  /** True once the timeout fired (and the task's own signal had not aborted first). */
  readonly timedOut: boolean;
  /** Aborts the request if it is still running (consumer stopped early). Idempotent. */
  close(): void;
  /** Removes the listener on the task's signal and clears the timer. Idempotent. */
  dispose(): void;
}

export function createRequestScope(parent: AbortSignal, timeoutMs: number): RequestScope {
  const controller = new AbortController();
  let timedOut = false;
  const onParentAbort = () => controller.abort(parent.reason);
  // Explicit listener instead of AbortSignal.any: removal is certain, so a long-lived task signal
  // does not accumulate one listener per model call.
  parent.addEventListener("abort", onParentAbort, { once: true });
  if (parent.aborted) onParentAbort();
  const timer = setTimeout(() => {
    if (controller.signal.aborted) return;
    timedOut = true;
    controller.abort(new DOMException(`request timed out after ${timeoutMs} ms`, "TimeoutError"));
  }, timeoutMs);

  const dispose = () => {
    clearTimeout(timer);
    parent.removeEventListener("abort", onParentAbort);
  };
  return {
    signal: controller.signal,
    get timedOut() {
      return timedOut;
    },
    close() {
      if (!controller.signal.aborted) controller.abort(new DOMException("model stream closed by its consumer", "AbortError"));
      dispose();
    },
    dispose,
  };
}
