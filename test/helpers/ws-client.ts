/** A WebSocket test client that records every frame and lets a test wait for the ones it expects. */
import { within } from "./deferred.ts";

export interface Frame {
  type: string;
  seq?: number;
  [key: string]: unknown;
}

export class TestSocket {
  readonly frames: Frame[] = [];
  readonly raw: string[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: (() => void)[] = [];
  private socket: WebSocket;

  constructor(url: string, protocols?: string | string[]) {
    this.socket = new WebSocket(url, protocols);
    this.opened = new Promise((resolve, reject) => {
      this.socket.addEventListener("open", () => resolve(), { once: true });
      this.socket.addEventListener("error", () => reject(new Error(`could not connect to ${url}`)), { once: true });
    });
    this.closed = new Promise((resolve) => {
      this.socket.addEventListener("close", (event) => {
        resolve({ code: event.code, reason: event.reason });
        this.notify();
      });
    });
    this.socket.addEventListener("message", (event) => {
      const text = String(event.data);
      this.raw.push(text);
      this.frames.push(JSON.parse(text) as Frame);
      this.notify();
    });
  }

  private notify() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** The subprotocol the server selected. */
  get protocol(): string {
    return this.socket.protocol;
  }

  send(data: string | object | Uint8Array) {
    this.socket.send(typeof data === "string" || data instanceof Uint8Array ? data : JSON.stringify(data));
  }

  close(code?: number) {
    this.socket.close(code);
  }

  /** Waits until a frame matching `predicate` has arrived; returns it. */
  async waitFor(predicate: (frame: Frame) => boolean, what = "a frame", ms = 10_000): Promise<Frame> {
    const find = () => this.frames.find(predicate);
    return within(
      (async () => {
        for (;;) {
          const found = find();
          if (found) return found;
          if (this.socket.readyState === WebSocket.CLOSED) throw new Error(`socket closed before ${what}`);
          await new Promise<void>((resolve) => this.waiters.push(resolve));
        }
      })(),
      ms,
      what,
    );
  }

  /** Waits for the `result` frame. */
  result(ms?: number) {
    return this.waitFor((frame) => frame.type === "result", "the result frame", ms);
  }

  /** The raw text of durable frames (step and result), in arrival order. */
  get durable(): string[] {
    return this.raw.filter((_, index) => typeof this.frames[index]!.seq === "number");
  }

  /** Frames that carry a seq (step and result), in arrival order. */
  get seqs(): number[] {
    return this.frames.filter((frame) => typeof frame.seq === "number").map((frame) => frame.seq!);
  }
}

export async function connect(url: string, protocols?: string | string[]): Promise<TestSocket> {
  const socket = new TestSocket(url, protocols);
  await within(socket.opened, 5000, `open ${url}`);
  return socket;
}
