/**
 * How long reading a long task log back holds the server's event loop (not part of `bun run bench`).
 * One server, one task of `steps` instant steps (3 events each, ~280 B frames), then each reader
 * `runs` times: a WebSocket replay from `after=0` and an SSE replay by a client that reads as fast as
 * it can, the REST pages of the whole log (`limit=1000`, read on with `after=`), and an A2A
 * `GetTask` (its history is derived from the whole log). A probe in a process of
 * its own asks `GET /health` every 2 ms; the figure is the longest it waited within each read.
 *
 *   bun bench/long-log.ts [agentkit binary = dist/agentkit] [steps = 20000] [runs = 3] [pad = 200] [clients = 100]
 *
 * `pad`: characters of padding per step (the tool call's frame size; 200000 gives 200 KB frames).
 * `clients`: a fourth reader, that many WebSocket clients replaying the log from `after=0` at once
 * (0: none; use a short log, e.g. 100 steps, for it).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { BENCH_CONFIG, createTask, median, scriptContext, startServer, waitForEnd } from "./lib/context.ts";
import { startHealthProbe } from "./lib/health-probe.ts";
import { killAll } from "./lib/processes.ts";

const binary = resolve(process.argv[2] ?? join(import.meta.dir, "..", "dist", "agentkit"));
const steps = Number(process.argv[3] ?? 20_000);
const runs = Number(process.argv[4] ?? 3);
const pad = Number(process.argv[5] ?? 200);
const clients = Number(process.argv[6] ?? 0);
const tmpRoot = mkdtempSync(join(tmpdir(), "long-log-"));
const configPath = join(tmpRoot, "agentkit.json");
writeFileSync(configPath, JSON.stringify(BENCH_CONFIG));
const context = scriptContext(import.meta.dir, binary, tmpRoot, configPath);

try {
  const server = await startServer(context);
  const task = await createTask(server, "bench", { steps, pad });
  const ended = await waitForEnd(server, task.id, 600_000);
  const lastSeq = ended.last_seq;

  const probe = startHealthProbe(`${server.http}/health`);

  /** One WebSocket replay from the start, to the result; resolves with the frames it got. */
  const wsReplay = () =>
    new Promise<number>((done, fail) => {
      const socket = new WebSocket(`${server.ws}/ws/tasks/${task.id}?after=0&deltas=0`);
      let frames = 0;
      socket.onmessage = (message) => {
        frames++;
        if (String(message.data).startsWith('{"type":"result"')) {
          socket.close();
          done(frames);
        }
      };
      socket.onerror = () => fail(new Error("socket error"));
    });
  const readers: [string, () => Promise<string>][] = [
    ["WebSocket replay from after=0", async () => `${await wsReplay()} frames`],
    [
      "SSE replay from the start",
      async () => {
        const text = await (await fetch(`${server.http}/tasks/${task.id}/events`, { headers: { accept: "text/event-stream" } })).text();
        if (!text.includes(`id: ${lastSeq}\n`)) throw new Error("the SSE replay did not reach the last event");
        return `${(text.length / 1e6).toFixed(1)} MB`;
      },
    ],
    [
      "REST pages (GET /tasks/:id/events?limit=1000, read on with after=)",
      async () => {
        let after = 0;
        let pages = 0;
        let bytes = 0;
        while (after < lastSeq) {
          const text = await (await fetch(`${server.http}/tasks/${task.id}/events?after=${after}&limit=1000`)).text();
          const page = JSON.parse(text) as { events: { seq: number }[] };
          if (page.events.length === 0) throw new Error(`an empty page after ${after}`);
          after = page.events.at(-1)!.seq;
          pages++;
          bytes += text.length;
        }
        return `${pages} pages, ${(bytes / 1e6).toFixed(1)} MB`;
      },
    ],
    [
      "A2A GetTask",
      async () => {
        const response = await fetch(`${server.http}/a2a/bench`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tasks/get", params: { id: task.id } }),
        });
        return `${(await response.text()).length} B`;
      },
    ],
  ];
  if (clients > 0) {
    readers.push([
      `${clients} WebSocket replays from after=0 at once`,
      async () => {
        const got = await Promise.all(Array.from({ length: clients }, wsReplay));
        if (got.some((frames) => frames !== lastSeq + 1)) throw new Error("a replay missed frames");
        return `${clients} × ${lastSeq + 1} frames`;
      },
    ]);
  }
  await Bun.sleep(300); // the probe is running
  console.log(`${binary}: a ${lastSeq}-event log; the longest /health wait within each read (ms), ${runs} runs`);
  for (const [what, read] of readers) {
    const worst: number[] = [];
    const took: number[] = [];
    let said = "";
    for (let run = 0; run < runs; run++) {
      await Bun.sleep(200);
      const from = performance.timeOrigin + performance.now();
      said = await read();
      const to = performance.timeOrigin + performance.now();
      await Bun.sleep(100); // the answer to a request sent during the read
      took.push(to - from);
      // A request asked within the window, or answered within it.
      const inside = probe.within(from, to);
      worst.push(Math.max(0, ...inside.map((answer) => answer.ms)));
    }
    const fmt = (values: number[]) => `${median(values).toFixed(1)} (${Math.min(...values).toFixed(1)}–${Math.max(...values).toFixed(1)})`;
    console.log(`  ${what} (${said}): /health waited ${fmt(worst)}; the read took ${fmt(took)}`);
  }
  await probe.stop();
  await server.stop();
} finally {
  killAll();
  rmSync(tmpRoot, { recursive: true, force: true });
}
