/** A watcher that stops reading is closed with 4008 and can resume; the others are not held up. */
import { afterEach, expect, test } from "bun:test";
import { heldUntil, startFloodServer } from "../helpers/flood.ts";
import { closeCode, RawWebSocket } from "../helpers/raw-websocket.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

test("a slow watcher is closed with 4008 at a clean frame boundary, resumes with after=, and the fast one is not held up", async () => {
  // The flood goes on until the slow watcher has been cut off (and at least 240 steps): the kernel's
  // socket buffers take megabytes of what a client does not read before the server's queue grows —
  // how many depends on the machine (a run on a busy one took all 7.7 MB of 240 steps).
  let cut = false;
  let ended = false;
  const release = Promise.withResolvers<void>();
  server = await startFloodServer(
    3000,
    heldUntil(release.promise), // both watchers connect first; the event loop gets turns to write to sockets
    { slowClientBytes: 64 * 1024 },
    32 * 1024,
    (done) => done >= 240 && cut,
  );
  const watching = (async () => {
    while (!cut && !ended) {
      const metrics = await (await server.http("/metrics")).text();
      cut = /agentkit_slow_client_closes_total\{transport="websocket"\} [1-9]/.test(metrics);
      await Bun.sleep(20);
    }
  })();
  const task = await server.createTask({ input: "flood" });
  const slow = await RawWebSocket.open(server.port, `/ws/tasks/${task.id}?deltas=0`, { paused: true });
  const fast = await server.watch(task.id, "deltas=0");
  await fast.waitFor((frame) => frame.type === "connected");
  release.resolve();

  const result = await fast.result(30_000);
  ended = true;
  expect(result.data).toMatchObject({ status: "completed" });
  await watching;
  expect(cut).toBe(true);
  const stored = await server.storedLog(task.id);
  expect(fast.durable).toEqual(stored);

  // The slow one was cut off: what it had queued is a clean prefix of the log, then close 4008.
  const frames = await slow.readUntilClosed();
  const close = frames.at(-1)!;
  expect(closeCode(close)).toBe(4008);
  const texts = frames.filter((frame) => frame.opcode === 1).map((frame) => frame.payload.toString());
  expect(JSON.parse(texts[0]!)).toMatchObject({ type: "connected" });
  const received = texts.slice(1);
  expect(received.length).toBeGreaterThan(0);
  expect(received.length).toBeLessThan(stored.length);
  expect(received).toEqual(stored.slice(0, received.length));

  // It resumes exactly where it stopped.
  const resumed = await server.watch(task.id, `after=${received.length}&deltas=0`);
  await resumed.result();
  expect([...received, ...resumed.durable]).toEqual(stored);
});

test("a flood with no pause, of 195 KB frames (a tool result just under the default limit), still ends a paused watcher with 4008 — not with Bun's own backstop (1006)", async () => {
  // Nothing paces the flood once released: between two scans spaced by time alone it could queue
  // more than Bun's backpressure limit (slowClientBytes + 8 MiB), which closes with no close frame.
  const steps = 120;
  const release = Promise.withResolvers<void>();
  server = await startFloodServer(steps, (done) => (done === 0 ? release.promise : undefined), {}, 195_000);
  const task = await server.createTask({ input: "flood" });
  const paused = await RawWebSocket.open(server.port, `/ws/tasks/${task.id}?deltas=0`, { paused: true });
  await Bun.sleep(50); // connected, its replay (nothing yet) done
  release.resolve();
  const done = await server.watch(task.id, "deltas=0");
  expect((await done.result(30_000)).data).toMatchObject({ status: "completed" });
  const frames = await paused.readUntilClosed();
  expect(closeCode(frames.at(-1)!)).toBe(4008);
  const stored = await server.storedLog(task.id);
  const received = frames.filter((frame) => frame.opcode === 1).map((frame) => frame.payload.toString()).slice(1);
  expect(received).toEqual(stored.slice(0, received.length));
});

test("a watcher that stops reading at the TCP level for seconds still gets its 4008 close frame, after a whole frame", async () => {
  // The server keeps publishing 32 KiB frames while the client reads nothing for 4 s: the kernel
  // buffers fill, then the server's own queue passes slowClientBytes (the default, 1 MiB).
  server = await startFloodServer(400, (done) => (done < 400 ? Bun.sleep(5) : undefined));
  const task = await server.createTask({ input: "flood" });
  const stalled = await RawWebSocket.open(server.port, `/ws/tasks/${task.id}?deltas=0`, { paused: true });
  await Bun.sleep(4000);
  const frames = await stalled.readUntilClosed();
  // Every byte up to the close is whole frames: nothing was cut mid-frame, and the last is 4008.
  const close = frames.at(-1)!;
  expect(close.opcode).toBe(8);
  expect(closeCode(close)).toBe(4008);
  const stored = await server.storedLog(task.id);
  const received = frames.filter((frame) => frame.opcode === 1).map((frame) => frame.payload.toString()).slice(1);
  expect(received.length).toBeGreaterThan(0);
  expect(received).toEqual(stored.slice(0, received.length));
}, 30_000);

test("a watcher that joins a large ended log late gets it all in one connection: the replay goes at its pace instead of overrunning slowClientBytes (no 4008)", async () => {
  const steps = 600; // ~20 MB of frames, 20× the 1 MiB limit
  server = await startFloodServer(steps, () => undefined, { slowClientBytes: 1024 * 1024 });
  const task = await server.createTask({ input: "flood" });
  const first = await server.watch(task.id, "deltas=0");
  await first.result(60_000);
  const total = first.seqs.length;
  expect(total).toBe(steps * 3 + 2);

  const late = await server.watch(task.id, "deltas=0&after=0");
  // A 4008 would have ended the connection before the result: one connection, every frame once.
  await late.result(60_000);
  expect(late.seqs).toEqual(Array.from({ length: total }, (_, index) => index + 1));
}, 90_000);

test("a watcher that stops reading during a replay is let go by the heartbeat (4408), after whole frames; the server goes on serving", async () => {
  const steps = 600; // ~20 MB: the replay has to wait for this reader
  server = await startFloodServer(steps, () => undefined, { slowClientBytes: 1024 * 1024, heartbeatMs: 600 });
  const task = await server.createTask({ input: "flood" });
  const first = await server.watch(task.id, "deltas=0");
  await first.result(60_000);
  first.close();

  const stalled = await RawWebSocket.open(server.port, `/ws/tasks/${task.id}?deltas=0&after=0`, { paused: true });
  // Over two heartbeat periods without a pong (it reads nothing). Not much longer: the close frame
  // waits behind what the replay queued, and Bun gives a closing socket only a few seconds to take
  // it before cutting the connection (on a loaded machine the reading below then came too late).
  await Bun.sleep(1_500);
  const frames = await stalled.readUntilClosed(15_000);
  const close = frames.at(-1)!;
  expect(close.opcode).toBe(8);
  expect(closeCode(close)).toBe(4408);
  const texts = frames.filter((frame) => frame.opcode === 1).map((frame) => JSON.parse(frame.payload.toString()) as { type: string; seq?: number });
  const seqs = texts.filter((frame) => frame.seq !== undefined).map((frame) => frame.seq!);
  expect(seqs.length).toBeGreaterThan(0);
  expect(seqs.length).toBeLessThan(steps * 3 + 2); // let go before the end of the log
  expect(seqs).toEqual(seqs.map((_, index) => index + 1));
  // The server goes on serving: a new watcher gets the whole log.
  const again = await server.watch(task.id, "deltas=0&after=0");
  await again.result(60_000);
  expect(again.seqs.length).toBe(steps * 3 + 2);
}, 90_000);
