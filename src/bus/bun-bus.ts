/** The embedded EventBus: Bun's native WebSocket pub/sub, one topic per task. */
import type { Server } from "bun";
import type { EventBus } from "./bus.ts";

export interface BunBus extends EventBus {
  /**
   * Binds the bus to the server once it is listening; frames published before that go nowhere.
   * `onBackpressure(topic)` is called when a publish found a subscriber whose buffer is backing up.
   */
  bind(server: Server<unknown>, onBackpressure?: (topic: string) => void): void;
}

export function createBunBus(): BunBus {
  let server: Server<unknown> | undefined;
  let onBackpressure: ((topic: string) => void) | undefined;
  return {
    bind(bound, listener) {
      server = bound;
      onBackpressure = listener;
    },
    publish(topic, frame) {
      if (!server) return;
      // Pre-serialised string, no compression: Bun writes the same bytes to every subscriber.
      // -1 means some subscriber is under backpressure (Bun's send status).
      if (server.publish(topic, frame, false) === -1) onBackpressure?.(topic);
    },
    subscribers(topic) {
      return server ? server.subscriberCount(topic) : 0;
    },
  };
}
