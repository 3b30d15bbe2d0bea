/**
 * A timer for a moment that may be weeks away. `setTimeout` takes at most 2^31 − 1 ms (~24.8 days):
 * a longer delay fires after 1 ms (a share token valid for 30 days closed its streams at once).
 */
const MAX_DELAY_MS = 2 ** 31 - 1;

export interface Timer {
  clear(): void;
}

/** Calls `callback` at `at` (ms since the epoch), or at once if that is past. */
export function timerAt(at: number, callback: () => void): Timer {
  let timer: ReturnType<typeof setTimeout>;
  const arm = () => {
    const left = at - Date.now();
    timer = left > MAX_DELAY_MS ? setTimeout(arm, MAX_DELAY_MS) : setTimeout(callback, Math.max(0, left));
  };
  arm();
  return { clear: () => clearTimeout(timer) };
}
