/**
 * Whether the store is taking writes. SQLite can stop writing while the server runs (a full disk,
 * an I/O error, a file made read-only: `isStoreWriteFailure`); reads go on working, so nothing
 * else notices. A failed write of the runner or of a request marks the store failing — /health
 * says `degraded` with the error — until a write succeeds again.
 *
 * `watchWrites` wraps a store so that its write methods report here: the runner's writes are
 * what recovers a failing store's tasks (see the runner), and their success is what clears it.
 */
import { isStoreWriteFailure } from "../errors.ts";
import type { TaskStore } from "./store.ts";

export type StoreWrites = { writes: "ok" } | { writes: "failing"; since: string; error: string };

export interface StoreHealth {
  /** Notes a failed write, if `error` is one of the store's write failures (others are not its health). */
  failed(error: unknown): void;
  /** Notes a write that succeeded. */
  wrote(): void;
  state(): StoreWrites;
}

export function createStoreHealth(now: () => Date = () => new Date()): StoreHealth {
  let failing: { since: string; error: string } | undefined;
  return {
    failed(error) {
      if (!isStoreWriteFailure(error)) return;
      const message = error instanceof Error ? error.message : String(error);
      failing = { since: failing?.since ?? now().toISOString(), error: message.slice(0, 200) };
    },
    wrote() {
      failing = undefined;
    },
    state() {
      return failing ? { writes: "failing", ...failing } : { writes: "ok" };
    },
  };
}

/** The store methods that write whatever the data (reads go on working while writes fail). */
const WRITES = ["createTask", "appendEvents", "finishTask", "waitTask", "markRunning", "takeOver"] as const;

/** `store`, with its writes reported to `health` (a Proxy: the stores' methods do not use `this`). */
export function watchWrites<T extends TaskStore>(store: T, health: StoreHealth): T {
  const wrapped = new Map<PropertyKey, unknown>();
  for (const name of WRITES) {
    const method = store[name] as (...args: unknown[]) => Promise<unknown>;
    wrapped.set(name, async (...args: unknown[]) => {
      try {
        const result = await method(...args);
        health.wrote();
        return result;
      } catch (error) {
        health.failed(error);
        throw error;
      }
    });
  }
  return new Proxy(store, {
    get(target, property) {
      return wrapped.has(property) ? wrapped.get(property) : Reflect.get(target, property, target);
    },
  });
}
