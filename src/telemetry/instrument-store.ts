/**
 * Times a store's event-log writes (`appendEvents`, `finishTask`) for the metrics, without touching
 * the stores: a Proxy answers those two methods with timed ones and everything else as it is (the
 * stores are plain objects whose methods do not use `this`).
 */
import type { TaskStore } from "../store/store.ts";
import { noTelemetry, type Telemetry } from "./telemetry.ts";

export function instrumentStore<T extends TaskStore>(store: T, telemetry: Telemetry): T {
  if (telemetry === noTelemetry) return store;
  const appendEvents: TaskStore["appendEvents"] = async (id, events, fence) => {
    const started = performance.now();
    let failed = true;
    try {
      await store.appendEvents(id, events, fence);
      failed = false;
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
      return ended;
    } finally {
      telemetry.storeWrite("finish", performance.now() - started, before?.length ?? 0, failed);
    }
  };
  return new Proxy(store, {
    get(target, property) {
      if (property === "appendEvents") return appendEvents;
      if (property === "finishTask") return finishTask;
      return Reflect.get(target, property, target);
    },
  });
}
