/**
 * How long retention holds the server's event loop while it prunes long logs (not part of
 * `bun run bench`). A data dir is written once, through the store's own code: `logs` ended tasks of
 * `events` events each (step frames of ~160 B + `pad`: ~280 B), after 100 small ended ones. Then, `runs` times, a copy
 * of it is served by the compiled binary with AGENTKIT_EVENT_RETENTION_HOURS=0, which prunes every
 * log at start-up, while a probe in a process of its own asks `GET /health` every 2 ms — asking from
 * before the server listens. The figure: the longest `/health` wait from the probe's first answer
 * until every long log is pruned (`GET /tasks/:id` polled every 50 ms), and how many waits passed
 * 20 ms. Each run is followed by a control: the same copy served without retention, watched as long.
 *
 * A build that prunes a log whole in one transaction prunes the first long one before it listens
 * (retention starts before the listener, and runs synchronously until its first turn): its figure
 * is the longest of the others, hence `logs` ≥ 2.
 *
 *   bun bench/retention.ts [agentkit binary = dist/agentkit] [logs = 3] [events = 300000] [runs = 3] [pad = 120]
 *
 * `pad` 200000 (and `events` ~600) gives logs of 200 KB frames, as tool results can be.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { BENCH_CONFIG, agentkitEnv, median } from "./lib/context.ts";
import { freePort, killAll, startAgentkit, type ServerHandle } from "./lib/processes.ts";
import { createSqliteStore } from "../src/store/sqlite-store.ts";
import type { TaskOutcome } from "../src/store/store.ts";
import { newTaskId } from "../src/tasks/task-id.ts";

if (process.argv[2] === "--probe") {
  // The probe: one line per answer, `<epoch ms when asked> <ms it took>`, until stdin closes; a
  // refused connection (the server not listening yet) is no answer.
  const url = process.argv[3]!;
  let running = true;
  void (async () => {
    for await (const _ of Bun.stdin.stream()) {
      // Nothing is sent: stdin closing ends the probe.
    }
    running = false;
  })();
  while (running) {
    const at = performance.timeOrigin + performance.now();
    const started = performance.now();
    try {
      const response = await fetch(url);
      await response.arrayBuffer();
      if (response.status === 200) process.stdout.write(`${at.toFixed(1)} ${(performance.now() - started).toFixed(2)}\n`);
    } catch {
      // not listening yet
    }
    await Bun.sleep(2);
  }
  process.exit(0);
}

const binary = resolve(process.argv[2] ?? join(import.meta.dir, "..", "dist", "agentkit"));
const logs = Number(process.argv[3] ?? 3);
const events = Number(process.argv[4] ?? 300_000);
const runs = Number(process.argv[5] ?? 3);
const pad = Number(process.argv[6] ?? 120);
const tmpRoot = mkdtempSync(join(tmpdir(), "retention-"));
const configPath = join(tmpRoot, "agentkit.json");
writeFileSync(configPath, JSON.stringify(BENCH_CONFIG));

const frame = (seq: number) =>
  JSON.stringify({
    type: "step",
    seq,
    data: { event_type: "tool_call", step: seq, data: { id: `call_${seq}`, name: "calculator", arguments: { expression: `${seq}+1`, pad: "x".repeat(pad) } }, at: "2026-11-26T16:00:00.000Z" },
  });

/** Writes the data dir every run copies: small ended tasks, then the long logs (ended a day ago). */
async function writeTemplate(dir: string): Promise<string[]> {
  const store = createSqliteStore({ dataDir: dir });
  const ended = new Date(Date.now() - 24 * 3600_000);
  const outcome: TaskOutcome = {
    status: "completed",
    stopReason: "final_answer",
    output: "done",
    error: null,
    totalSteps: 1,
    inputTokens: 1,
    outputTokens: 1,
    costUsd: null,
    finishedAt: ended,
  };
  const write = async (size: number, finishedAt: Date) => {
    const id = newTaskId();
    await store.createTask({ id, owner: "anonymous", agent: "bench", input: "{}", metadata: {}, createdAt: ended });
    await store.markRunning(id, ended);
    const batch = Math.max(1, Math.floor(1_500_000 / (pad + 160)));
    for (let first = 1; first < size; first += batch) {
      const count = Math.min(batch, size - first);
      await store.appendEvents(id, Array.from({ length: count }, (_, index) => ({ seq: first + index, frame: frame(first + index) })));
    }
    await store.finishTask(id, { ...outcome, finishedAt }, size, `{"type":"result","seq":${size},"data":{"status":"completed"}}`);
    return id;
  };
  for (let index = 0; index < 100; index++) await write(10, new Date(ended.getTime() - 60_000));
  const ids: string[] = [];
  for (let index = 0; index < logs; index++) ids.push(await write(events, new Date(ended.getTime() + index)));
  await store.close();
  return ids;
}

/** Serves a copy of the template, the probe asking from before the start, until `done` says so. */
async function serve(template: string, run: string, retention: boolean, done: (server: ServerHandle, started: number) => Promise<void>) {
  const dataDir = join(tmpRoot, run);
  cpSync(template, dataDir, { recursive: true });
  const port = freePort();
  const probe = Bun.spawn(["bun", import.meta.path, "--probe", `http://127.0.0.1:${port}/health`], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const answers: { at: number; ms: number }[] = [];
  const reading = (async () => {
    let rest = "";
    for await (const chunk of probe.stdout) {
      rest += new TextDecoder().decode(chunk);
      const lines = rest.split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        const [at, ms] = line.split(" ").map(Number);
        answers.push({ at: at!, ms: ms! });
      }
    }
  })();
  await Bun.sleep(300); // the probe is asking
  const started = performance.timeOrigin + performance.now();
  const server = await startAgentkit({
    binary,
    configPath,
    dataDir,
    env: agentkitEnv(retention ? { AGENTKIT_EVENT_RETENTION_HOURS: "0" } : {}),
    cwd: tmpRoot,
    port,
  });
  await done(server, started);
  const to = performance.timeOrigin + performance.now();
  await Bun.sleep(100); // the answer to a request asked before the end
  probe.stdin.end();
  await probe.exited;
  await reading;
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
  const from = answers[0]?.at ?? to;
  const inside = answers.filter((answer) => answer.at + answer.ms >= from && answer.at <= to);
  return { worst: Math.max(0, ...inside.map((answer) => answer.ms)), over20: inside.filter((answer) => answer.ms > 20).length, answers: inside.length, windowMs: to - from, fromStart: to - started };
}

try {
  const template = join(tmpRoot, "template");
  const writing = performance.now();
  const ids = await writeTemplate(template);
  console.log(`${binary}: ${logs} logs of ${events} events of ~${frame(events).length} B (+100 of 10), written in ${((performance.now() - writing) / 1000).toFixed(1)} s`);
  const prune: { worst: number; over20: number; windowMs: number; fromStart: number }[] = [];
  const control: { worst: number; over20: number }[] = [];
  for (let run = 0; run < runs; run++) {
    const pruned = await serve(template, `prune-${run}`, true, async (server) => {
      for (;;) {
        const tasks = await Promise.all(ids.map(async (id) => (await (await fetch(`${server.http}/tasks/${id}`)).json()) as { last_seq: number; pruned_through: number }));
        if (tasks.every((task) => task.pruned_through === task.last_seq)) return;
        await Bun.sleep(50);
      }
    });
    prune.push(pruned);
    const window = pruned.windowMs;
    control.push(await serve(template, `control-${run}`, false, async () => void (await Bun.sleep(window))));
    console.log(
      `  run ${run + 1}: pruning, /health waited at most ${pruned.worst.toFixed(1)} ms (${pruned.over20} of ${pruned.answers} answers > 20 ms) over ${pruned.windowMs.toFixed(0)} ms ` +
        `(all pruned ${pruned.fromStart.toFixed(0)} ms after the spawn); control, ${control.at(-1)!.worst.toFixed(1)} ms (${control.at(-1)!.over20} > 20 ms)`,
    );
  }
  const fmt = (values: number[]) => `${median(values).toFixed(1)} (${Math.min(...values).toFixed(1)}–${Math.max(...values).toFixed(1)})`;
  console.log(`  longest /health wait while pruning: ${fmt(prune.map((run) => run.worst))} ms; without retention: ${fmt(control.map((run) => run.worst))} ms; median (min–max) of ${runs} runs`);
  console.log(`  all pruned after: ${fmt(prune.map((run) => run.fromStart))} ms from the spawn`);
} finally {
  killAll();
  rmSync(tmpRoot, { recursive: true, force: true });
}
