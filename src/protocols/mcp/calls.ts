/**
 * The `tools/call`s in flight on this node, so a `notifications/cancelled` — which arrives in a
 * request of its own (the endpoint is stateless: every POST has its own SDK server) — finds the
 * call it cancels. A call is known by the caller's principal, its MCP session id (the
 * `Mcp-Session-Id` agentkit hands out at `initialize`; empty for a client that sends none) and
 * its JSON-RPC request id: another key can never cancel a call, whatever ids it sends.
 *
 * A cancel that arrives before its call was registered (both requests raced) is remembered for a
 * minute, and the call is cancelled as it registers.
 */
export type CallKey = string;

export function callKey(principal: string, session: string, requestId: string | number): CallKey {
  return `${principal}\u0000${session}\u0000${typeof requestId}:${requestId}`;
}

export interface CallRegistry {
  /** Registers a call; returns the function that forgets it. `cancel` runs at most once. */
  register(key: CallKey, cancel: (reason: string) => void): () => void;
  /** Cancels the call; false (and remembered for a while) when it is not in flight here. */
  cancel(key: CallKey, reason: string): boolean;
  readonly size: number;
}

export function createCallRegistry(options: { earlyCancelMs?: number; maxEarly?: number; now?: () => number } = {}): CallRegistry {
  const earlyCancelMs = options.earlyCancelMs ?? 60_000;
  const maxEarly = options.maxEarly ?? 1_000;
  const now = options.now ?? (() => performance.now());
  const calls = new Map<CallKey, (reason: string) => void>();
  /** Cancels that found no call yet: key → [when, reason] (insertion order = age). */
  const early = new Map<CallKey, { at: number; reason: string }>();

  const prune = () => {
    const cutoff = now() - earlyCancelMs;
    for (const [key, entry] of early) {
      if (entry.at >= cutoff && early.size <= maxEarly) break;
      early.delete(key);
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
      const pending = early.get(key);
      if (pending) {
        early.delete(key);
        queueMicrotask(() => once(pending.reason));
      }
      calls.set(key, once);
      return () => {
        done = true;
        if (calls.get(key) === once) calls.delete(key);
      };
    },
    cancel(key, reason) {
      const call = calls.get(key);
      if (call) {
        call(reason);
        return true;
      }
      early.set(key, { at: now(), reason });
      prune();
      return false;
    },
    get size() {
      return calls.size;
    },
  };
}
