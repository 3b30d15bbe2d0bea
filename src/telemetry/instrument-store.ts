/**
 * The store as the server uses it, observed without touching the stores: its event-log writes
 * (`appendEvents`, `finishTask`) timed for the metrics and, with `health` (one SQLite node), its
 * writes reported to the store's health (`WATCHED_WRITES`: /health says whether it takes writes).
 * One Proxy answers those methods with wrapped ones and everything else as it is (the stores are
 * plain objects whose methods do not use `this`): a write costs one wrapper's promise, whatever is
 * observed — the step loop's flush is one of them.
 */
import type { StoreHealth } from "../store/store-health.ts";
import { WATCHED_WRITES } from "../store/store-health.ts";
import type { TaskStore } from "../store/store.ts";
import { noTelemetry, type Telemetry } from "./telemetry.ts";

export function instrumentStore<T extends TaskStore>(store: T, telemetry: Telemetry, health?: StoreHealth): T {
  const timed = telemetry !== noTelemetry;
  if (!timed && !health) return store;
  const wrapped = new Map<PropertyKey, unknown>();
  if (health) {
    for (const name of WATCHED_WRITES) {
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
  }
  if (timed) {
    // Both are watched writes too: the health is told first, then the write's time is recorded.
    const appendEvents: TaskStore["appendEvents"] = async (id, events, fence) => {
      const started = performance.now();
      let failed = true;
      try {
        await store.appendEvents(id, events, fence);
        failed = false;
        health?.wrote();
      } catch (error) {
        health?.failed(error);
        throw error;
      } finally {
        telemetry.storeWrite("append", performance.now() - started, events.length, failed);
      }
    };
    const finishTask: TaskStore["finishTask"] = async (id, outcome, seq, frame, fence, webhooks, before) => {
      const started = performance.now();
      let failed = true;
      try {
        const ended = await store.finishTask(id, outcome, seq, frame, fence, webhooks, before);
        failed = false;
        health?.wrote();
        return ended;
      } catch (error) {
        health?.failed(error);
        throw error;
      } finally {
        telemetry.storeWrite("finish", performance.now() - started, before?.length ?? 0, failed);
      }
    };
    wrapped.set("appendEvents", appendEvents);
    wrapped.set("finishTask", finishTask);
  }
  return new Proxy(store, {
    get(target, property) {
      return wrapped.get(property) ?? Reflect.get(target, property, target);
    },
  });
}
