/** A Server-Sent Events client over fetch that records every event it reads. */
import { within } from "./deferred.ts";

export interface SseEvent {
  id?: string;
  event?: string;
  data: string;
}

export class SseClient {
  readonly events: SseEvent[] = [];
  readonly response: Promise<Response>;
  /** Resolves when the server ends the stream. */
  readonly ended: Promise<void>;
  private readonly controller = new AbortController();
  private waiters: (() => void)[] = [];

  constructor(url: string, headers: Record<string, string> = {}) {
    this.response = fetch(url, { headers: { accept: "text/event-stream", ...headers }, signal: this.controller.signal });
    this.ended = this.read();
    this.ended.catch(() => {});
  }

  private async read() {
    const response = await this.response;
    if (!response.body || response.status !== 200) return;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event: SseEvent = { data: "" };
          let comment = true;
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) continue;
            comment = false;
            const [field, ...rest] = line.split(":");
            const text = rest.join(":").replace(/^ /, "");
            if (field === "data") event.data += text;
            else if (field === "id") event.id = text;
            else if (field === "event") event.event = text;
          }
          if (!comment) this.events.push(event);
          this.wake();
        }
      }
    } finally {
      this.wake();
    }
  }

  private wake() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  async waitFor(predicate: (event: SseEvent) => boolean, what: string, ms = 10_000): Promise<SseEvent> {
    return within(
      (async () => {
        for (;;) {
          const found = this.events.find(predicate);
          if (found) return found;
          await new Promise<void>((resolve) => this.waiters.push(resolve));
        }
      })(),
      ms,
      what,
    );
  }

  /** Durable frames (those with an id), as raw JSON text. */
  get durable(): string[] {
    return this.events.filter((event) => event.id !== undefined).map((event) => event.data);
  }

  close() {
    this.controller.abort();
  }
}
