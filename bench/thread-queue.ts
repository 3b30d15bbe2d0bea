/**
 * The one-node queue with many tasks behind a few busy threads (not part of `bun run bench`): THREADS
 * threads each parked on a task that waits for approval, QUEUED tasks queued behind them (8 POSTs in
 * flight), then 200 tasks of no thread, one at a time, through the free slots. Printed: the mean
 * submit time of the first and the last 1,000 queued, the longest `GET /health` wait (every 2 ms)
 * while queueing, and the time and longest wait for the 200.
 *
 *   bun bench/thread-queue.ts [agentkit binary = dist/agentkit] [QUEUED = 20000] [THREADS = 4]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const binary = resolve(process.argv[2] ?? join(import.meta.dir, "..", "dist", "agentkit"));
const Q = Number(process.argv[3] ?? 20_000);
const T = Number(process.argv[4] ?? 4);
const dir = mkdtempSync(join(tmpdir(), "thread-queue-"));
writeFileSync(join(dir, "agentkit.json"), JSON.stringify({ agents: [
  { name: "gate", model: "demo/react", tools: ["calculator"], approval: ["calculator"] },
  { name: "quick", model: "demo/react", tools: ["calculator"] }] }));
const env = { PATH: process.env.PATH!, HOME: dir, AGENTKIT_ACCESS_LOG: "0", AGENTKIT_MAX_QUEUED_TASKS: String(Q + 1000) };
const child = Bun.spawn([binary, "serve", "--config", join(dir, "agentkit.json"), "--data-dir", join(dir, "data"), "--port", "0"], { env, cwd: dir, stdout: "ignore", stderr: "pipe" });
let log = ""; const reader = child.stderr.getReader(); const dec = new TextDecoder(); let port = 0;
while (!port) { const { value, done } = await reader.read(); if (done) throw new Error(log); log += dec.decode(value); const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(log); if (m) port = Number(m[1]); }
void (async () => { for (;;) { const { done } = await reader.read(); if (done) break; } })();
const base = `http://127.0.0.1:${port}`;
const post = async (path: string, body: unknown) => (await fetch(base + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })).json() as any;
let worst = 0, probing = true;
const probeLoop = (async () => { while (probing) { const t = performance.now(); await fetch(`${base}/health`).catch(() => {}); worst = Math.max(worst, performance.now() - t); await Bun.sleep(2); } })();
const threads: string[] = [];
for (let i = 0; i < T; i++) {
  const thread = await post("/threads", {});
  threads.push(thread.id);
  const task = await post(`/threads/${thread.id}/tasks`, { input: "what is 2+2?", agent: "gate" });
  for (;;) { const t = await (await fetch(`${base}/tasks/${task.id}`)).json() as any; if (t.status === "waiting") break; await Bun.sleep(20); }
}
await Bun.sleep(100); worst = 0;
const t0 = performance.now();
let next = 0;
const submitTimes: number[] = [];
await Promise.all(Array.from({ length: 8 }, async () => {
  while (next < Q) {
    const i = next++;
    const t = performance.now();
    const r = await post(`/threads/${threads[i % T]}/tasks`, { input: "what is 1+1?", agent: "quick" });
    if (!r.id) throw new Error(JSON.stringify(r));
    submitTimes.push(performance.now() - t);
  }
}));
const queueMs = performance.now() - t0;
const queueWorst = worst;
// thread-less tasks now: each submit and each end pumps over the whole queue
worst = 0;
const t1 = performance.now();
const free: string[] = [];
for (let i = 0; i < 200; i++) free.push((await post("/tasks", { input: "what is 3+3?", agent: "quick" })).id);
for (const id of free) { for (;;) { const t = await (await fetch(`${base}/tasks/${id}`)).json() as any; if (t.status === "completed") break; await Bun.sleep(5); } }
const freeMs = performance.now() - t1;
probing = false; await probeLoop;
const last1000 = submitTimes.slice(-1000).reduce((a, b) => a + b, 0) / Math.min(1000, submitTimes.length);
const first1000 = submitTimes.slice(0, 1000).reduce((a, b) => a + b, 0) / Math.min(1000, submitTimes.length);
console.log(JSON.stringify({ Q, T, queueMs: Math.round(queueMs), submitMsFirst1000: +first1000.toFixed(2), submitMsLast1000: +last1000.toFixed(2), queueWorstHealthMs: +queueWorst.toFixed(1), free200Ms: Math.round(freeMs), freeWorstHealthMs: +worst.toFixed(1) }));
child.kill(); await child.exited; rmSync(dir, { recursive: true, force: true });
