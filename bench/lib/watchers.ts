/**
 * The client side's watchers: open one (resolves on its `connected` frame), count and timestamp
 * the frames of many (the hot path of bench/client.ts), and open many with a bound on how many
 * are in flight.
 */
import { KIND_CONNECTED, KIND_ERROR, KIND_OFFSET, KIND_RESULT, KIND_STEP, stampOf } from "./frames.ts";
import { LatencyHistogram, type SerializedHistogram } from "./histogram.ts";

export interface FrameStats {
  /** `step` and `result` frames received. */
  frames: number;
  bytes: number;
  /** Absolute times (performance.timeOrigin + performance.now(), ms) of the first and last frame. */
  first_arrival: number;
  last_arrival: number;
  /** Yield→arrival of tool_call frames. */
  latency: SerializedHistogram;
  /** Frames per watcher: lowest and highest (each watcher must get every frame exactly once). */
  per_watcher_min: number;
  per_watcher_max: number;
  watchers_done: number;
  closed_early: number;
  close_codes: Record<string, number>;
  error_frames: number;
  cpu_ms: number;
  timed_out: boolean;
}

export const now = () => performance.timeOrigin + performance.now();

/** Counts and timestamps the frames of many watchers. */
export class Tally {
  frames = 0;
  bytes = 0;
  first = 0;
  last = 0;
  watchersDone = 0;
  closedEarly = 0;
  errorFrames = 0;
  readonly closeCodes: Record<string, number> = {};
  readonly latency = new LatencyHistogram();
  perWatcher: Int32Array;
  done: Uint8Array;
  private cpuStart = process.cpuUsage();

  constructor(watchers: number) {
    this.perWatcher = new Int32Array(watchers);
    this.done = new Uint8Array(watchers);
  }

  arm() {
    this.cpuStart = process.cpuUsage();
  }

  /** The hot path: called for every frame after `connected`. Returns true on the result frame. */
  frame(watcher: number, data: string): boolean {
    const at = now();
    const kind = data.charCodeAt(KIND_OFFSET);
    if (kind === KIND_STEP || kind === KIND_RESULT) {
      this.frames++;
      this.bytes += data.length;
      this.perWatcher[watcher]!++;
      if (this.first === 0) this.first = at;
      this.last = at;
      if (kind === KIND_RESULT) {
        if (this.done[watcher] === 0) {
          this.done[watcher] = 1;
          this.watchersDone++;
        }
        return true;
      }
      const stamp = stampOf(data);
      if (stamp === stamp) this.latency.record(at - stamp);
      return false;
    }
    if (kind === KIND_ERROR) this.errorFrames++;
    return false;
  }

  closed(watcher: number, code: number) {
    this.closeCodes[code] = (this.closeCodes[code] ?? 0) + 1;
    if (this.done[watcher] === 0) {
      this.done[watcher] = 1;
      this.closedEarly++;
    }
  }

  stats(watchers: number, timedOut: boolean): FrameStats {
    let min = Number.POSITIVE_INFINITY;
    let max = 0;
    for (let index = 0; index < watchers; index++) {
      const count = this.perWatcher[index]!;
      if (count < min) min = count;
      if (count > max) max = count;
    }
    const cpu = process.cpuUsage(this.cpuStart);
    return {
      frames: this.frames,
      bytes: this.bytes,
      first_arrival: this.first,
      last_arrival: this.last,
      latency: this.latency.serialize(),
      per_watcher_min: watchers === 0 ? 0 : min,
      per_watcher_max: max,
      watchers_done: this.watchersDone,
      closed_early: this.closedEarly,
      close_codes: this.closeCodes,
      error_frames: this.errorFrames,
      cpu_ms: (cpu.user + cpu.system) / 1000,
      timed_out: timedOut,
    };
  }
}

export interface Opened {
  socket: WebSocket;
  /** The `connected` frame's text. */
  connected: string;
}

/**
 * Opens one watcher; resolves with its socket once the `connected` frame arrived. Every later
 * frame goes to `onFrame`, a close to `onClose`.
 */
export function openWatcher(url: string, onFrame: (data: string) => void, onClose: (code: number) => void): Promise<Opened> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    let open = false;
    socket.onmessage = (event) => {
      const data = event.data as string;
      if (!open) {
        if (data.charCodeAt(KIND_OFFSET) !== KIND_CONNECTED) {
          reject(new Error(`first frame was not 'connected': ${data.slice(0, 200)}`));
          socket.close();
          return;
        }
        open = true;
        resolve({ socket, connected: data });
        return;
      }
      onFrame(data);
    };
    socket.onclose = (event) => {
      if (!open) reject(new Error(`closed before 'connected' (${event.code} ${event.reason})`));
      else onClose(event.code);
    };
    socket.onerror = () => {
      if (!open) reject(new Error("connection error"));
    };
  });
}

/** Runs `tasks` with at most `limit` in flight. */
export async function bounded<T>(count: number, limit: number, task: (index: number) => Promise<T>): Promise<PromiseSettledResult<T>[]> {
  const results: PromiseSettledResult<T>[] = new Array(count);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, count) }, async () => {
    while (next < count) {
      const index = next++;
      try {
        results[index] = { status: "fulfilled", value: await task(index) };
      } catch (reason) {
        results[index] = { status: "rejected", reason };
      }
    }
  });
  await Promise.all(lanes);
  return results;
}
