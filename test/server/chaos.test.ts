/**
 * Chaos: many watchers drop and reconnect at random (resuming with after=) while a long task
 * streams; every one of them ends with exactly the stored log, in order.
 */
import { afterEach, expect, test } from "bun:test";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { connect } from "../helpers/ws-client.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

test("watchers that disconnect and reconnect at random each end with exactly the stored log", async () => {
  server = await startTestServer({
    agents: [{ model: "demo/bench", tools: ["calculator"], max_steps: 1000 }],
    // A short live tail makes reconnects go through the store as well as the tail.
    liveTailSize: 16,
  });
  const steps = 250;
  const task = await server.createTask({ input: JSON.stringify({ steps, delay_ms: 1 }) });
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

  async function chaoticWatcher(): Promise<{ frames: string[]; connections: number }> {
    const frames: string[] = [];
    let connections = 0;
    for (;;) {
      const after = frames.length; // seqs are gapless from 1, so the count is the last seq
      const socket = await connect(`ws://127.0.0.1:${server!.port}/ws/tasks/${task.id}?after=${after}&deltas=0`);
      connections++;
      const lifetime = 2 + random() * 30;
      const ended = socket.result(15_000).then(() => true);
      const cut = Bun.sleep(lifetime).then(() => false);
      const finished = await Promise.race([ended, cut]);
      socket.close();
      await socket.closed;
      // Keep only what this connection delivered; a frame in flight at the cut is simply lost.
      frames.push(...socket.durable);
      if (finished || socket.frames.some((frame) => frame.type === "result")) return { frames, connections };
    }
  }

  const results = await Promise.all(Array.from({ length: 24 }, chaoticWatcher));
  const stored = await server.storedLog(task.id);
  expect(stored.length).toBe(steps * 3 + 2);
  for (const result of results) expect(result.frames).toEqual(stored);
  // The chaos was real: watchers reconnected many times on average.
  const total = results.reduce((sum, result) => sum + result.connections, 0);
  expect(total / results.length).toBeGreaterThan(3);
});
