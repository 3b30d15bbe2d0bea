/**
 * A task with a long log (60,000 events, ~15 MB) read back whole, the ways clients do: a WebSocket
 * and an SSE replay from the start by a client that reads as fast as the server writes, and A2A's
 * GetTask (its history is derived from the whole log). The SQLite store answers synchronously, so
 * each of these held the event loop for 50–270 ms before their loops gave it turns. A probe timer
 * (the server runs in this process) measures the longest hold against a benign request's.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startStallProbe } from "../helpers/stall-probe.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const STEPS = 20_000; // 3 events a step: 60,002 events

let server: TestServer;
let taskId: string;

beforeAll(async () => {
  server = await startTestServer({ agents: [{ name: "bench", model: "demo/bench", tools: ["calculator"], max_steps: 100_000, timeout_ms: 600_000 }] });
  const task = await server.createTask({ agent: "bench", input: JSON.stringify({ steps: STEPS, pad: 200 }) });
  taskId = task.id;
  expect((await replay(taskId)).result).toMatchObject({ type: "result", seq: 3 * STEPS + 2, data: { status: "completed" } });
}, 90_000);

/**
 * Watches a task over a plain WebSocket that only counts what it gets (a client that parsed every
 * frame, in this process, would hold the loop itself); resolves with the count and the result frame.
 */
function replay(id: string, query = ""): Promise<{ frames: number; result: { type: string; seq: number; data: unknown } }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${server.port}/ws/tasks/${id}${query}`);
    let frames = 0;
    socket.onmessage = (message) => {
      frames++;
      const text = String(message.data);
      if (text.startsWith('{"type":"result"')) {
        socket.close();
        resolve({ frames, result: JSON.parse(text) });
      }
    };
    socket.onclose = (event) => reject(new Error(`closed before the result (${event.code})`));
    socket.onerror = () => reject(new Error("socket error"));
  });
}

afterAll(async () => {
  await server?.close();
});

test("reading a 60,000-event log back whole (WebSocket and SSE replays, A2A GetTask) never holds the event loop for long", async () => {
  const probe = startStallProbe();
  try {
    const lastSeq = 3 * STEPS + 2;
    const benign: number[] = [];
    const health = async () => {
      benign.push((await probe.measure(async () => (await server.http("/health")).text())).stallMs);
    };
    for (let index = 0; index < 3; index++) await health();

    const readers: [string, () => Promise<void>][] = [
      [
        "WebSocket replay from after=0",
        async () => {
          const { frames, result } = await replay(taskId, "?after=0&deltas=0");
          expect(result.seq).toBe(lastSeq);
          expect(frames).toBe(lastSeq + 1); // `connected`, then every event
        },
      ],
      [
        "SSE replay from the start",
        async () => {
          const text = await (await server.http(`/tasks/${taskId}/events`, { headers: { accept: "text/event-stream" } })).text();
          expect(text).toContain(`id: ${lastSeq}\n`);
        },
      ],
      [
        "A2A GetTask",
        async () => {
          const response = await server.http("/a2a/bench", { method: "POST", json: { jsonrpc: "2.0", id: 1, method: "tasks/get", params: { id: taskId } } });
          const body = (await response.json()) as { result?: { metadata?: { agentkit?: { last_seq?: number } } } };
          expect(body.result?.metadata?.agentkit?.last_seq).toBe(lastSeq);
        },
      ],
    ];
    const stalls: { what: string; stallMs: number; again: () => Promise<number> }[] = [];
    for (const [what, read] of readers) {
      await health();
      const measured = await probe.measure(read);
      stalls.push({ what, stallMs: measured.stallMs, again: async () => (await probe.measure(read)).stallMs });
    }
    // As the fuzz test judges it: a generous multiple of the worst benign hold in this run, with a
    // floor well above scheduling noise; one over it is measured twice more and judged by its best
    // run (noise comes and goes, a slow read is slow every time).
    if (process.env.STALL_VERBOSE) console.log(stalls.map((entry) => `${entry.stallMs.toFixed(1)} ms  ${entry.what}`).join("\n"), { benign });
    const benignWorst = Math.max(...benign);
    const allowed = Math.max(50, 4 * benignWorst);
    for (const entry of stalls) {
      if (entry.stallMs <= allowed) continue;
      const best = Math.min(entry.stallMs, await entry.again(), await entry.again());
      expect(best, `${entry.what} held the event loop ${best.toFixed(1)} ms at best of 3 (benign worst ${benignWorst.toFixed(1)} ms, allowed ${allowed.toFixed(0)} ms)`).toBeLessThanOrEqual(allowed);
    }
  } finally {
    probe.stop();
  }
}, 120_000);

test("a log of large frames (300 KB tool calls) is replayed in pages of ~1 MiB of frames, not of 500 events: every frame once, in order, to the result", async () => {
  const task = await server.createTask({ agent: "bench", input: JSON.stringify({ steps: 12, pad: 300_000 }) });
  const { result } = await replay(task.id);
  const lastSeq = result.seq; // 3 × 12 + 2
  expect(lastSeq).toBe(38);
  // REST pages stop at ~1 MiB of frames too (~4 of these), however high `limit`: read on with
  // `after=`, every event once.
  const seqs: number[] = [];
  let pages = 0;
  while (seqs.length < lastSeq) {
    const page = (await (await server.http(`/tasks/${task.id}/events?after=${seqs.at(-1) ?? 0}&limit=1000`)).json()) as { events: { seq: number }[] };
    expect(page.events.length).toBeGreaterThan(0);
    seqs.push(...page.events.map((event) => event.seq));
    pages++;
  }
  expect(seqs).toEqual(Array.from({ length: lastSeq }, (_, index) => index + 1));
  expect(pages).toBeGreaterThanOrEqual(4);
  // Replays from the start read ~4 of these frames per page (src/store/store.ts PAGE_BYTES): each
  // frame once, none skipped at a page's end.
  const again = await replay(task.id, "?after=0&deltas=0");
  expect(again.frames).toBe(lastSeq + 1);
  const text = await (await server.http(`/tasks/${task.id}/events`, { headers: { accept: "text/event-stream" } })).text();
  expect([...text.matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1]))).toEqual(Array.from({ length: lastSeq }, (_, index) => index + 1));
});
