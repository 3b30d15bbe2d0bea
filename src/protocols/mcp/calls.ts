/**
 * The `tools/call`s in flight on this node, so a `notifications/cancelled` — which arrives in a
 * request of its own (the endpoint is stateless: every POST has its own SDK server) — finds the
 * call it cancels. A call is known by the caller's principal, its MCP session id (the
 * `Mcp-Session-Id` agentkit hands out at `initialize`; empty for a client that sends none) and
 * its JSON-RPC request id: another key can never cancel a call, whatever ids it sends.
 *
 * A call registers as its request is handled, before its task is made. A cancel that arrives before
 * that (both requests raced: microseconds; or the call is on another node of a cluster) is
 * remembered for 2 s, and the call is cancelled as it registers. A cancel for a call that has just
 * ended (it raced the answer) is late, not early: dropped — remembered, it cancelled the next call
 * that reused the id (a client without a session sends the same ids every time).
 */
export type CallKey = string;

export function callKey(principal: string, session: string, requestId: string | number): CallKey {
  return `${principal}\u0000${session}\u0000${typeof requestId}:${requestId}`;
}

export interface CallRegistry {
  /** Registers a call; returns the function that forgets it. `cancel` runs at most once. */
  register(key: CallKey, cancel: (reason: string) => void): () => void;
  /**
   * Cancels the call: "cancelled"; "late" when its call has just ended here (dropped); "unknown"
   * when no such call is in flight here (remembered for a while: it may be on its way).
   */
  cancel(key: CallKey, reason: string): "cancelled" | "late" | "unknown";
  readonly size: number;
}

export function createCallRegistry(options: { earlyCancelMs?: number; endedMs?: number; maxEarly?: number; now?: () => number } = {}): CallRegistry {
  const earlyCancelMs = options.earlyCancelMs ?? 2_000;
  const endedMs = options.endedMs ?? 60_000;
  const maxEarly = options.maxEarly ?? 1_000;
  const now = options.now ?? (() => performance.now());
  const calls = new Map<CallKey, (reason: string) => void>();
  /** Cancels that found no call yet: key → [when, reason] (insertion order = age). */
  const early = new Map<CallKey, { at: number; reason: string }>();
  /** Calls that ended lately: key → when (insertion order = age). */
  const ended = new Map<CallKey, number>();

  const prune = () => {
    const at = now();
    for (const [key, entry] of early) {
      if (entry.at >= at - earlyCancelMs && early.size <= maxEarly) break;
      early.delete(key);
    }
    for (const [key, when] of ended) {
      if (when >= at - endedMs && ended.size <= maxEarly) break;
      ended.delete(key);
    }
  };

  return {
    register(key, cancel) {
      let done = false;
      const once = (reason: string) => {
        if (done) return;
        done = true;
        cancel(reason);
      };
      prune();
      ended.delete(key);
      const pending = early.get(key);
      if (pending) {
        early.delete(key);
        queueMicrotask(() => once(pending.reason));
      }
      calls.set(key, once);
      return () => {
        done = true;
        if (calls.get(key) !== once) return;
        calls.delete(key);
        ended.delete(key); // re-inserted: the newest last
        ended.set(key, now());
        prune();
      };
    },
    cancel(key, reason) {
      const call = calls.get(key);
      if (call) {
        call(reason);
        return "cancelled";
      }
      prune();
      if (ended.has(key)) return "late";
      early.delete(key);
      early.set(key, { at: now(), reason });
      prune();
      return "unknown";
    },
    get size() {
      return calls.size;
    },
  };
}
