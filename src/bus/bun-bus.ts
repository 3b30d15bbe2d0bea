/** The embedded EventBus: Bun's native WebSocket pub/sub, one topic per task. */
import type { Server } from "bun";
import type { EventBus } from "./bus.ts";

export interface BunBus extends EventBus {
  /** Binds the bus to the server once it is listening; frames published before that go nowhere. */
  bind(server: Server<unknown>): void;
}

export function createBunBus(): BunBus {
  let server: Server<unknown> | undefined;
  return {
    bind(bound) {
      server = bound;
    },
    publish(topic, frame) {
      // Pre-serialised string, no compression: Bun writes the same bytes to every subscriber.
      server?.publish(topic, frame, false);
    },
  };
}
