/**
 * How long retention holds the server's event loop while it prunes long logs (not part of
 * `bun run bench`). A data dir is written once, through the store's own code: `logs` ended tasks of
 * `events` events each (step frames of ~160 B + `pad`: ~280 B), after 100 small ended ones. Then, `runs` times, a copy
 * of it is served by the compiled binary with AGENTKIT_EVENT_RETENTION_HOURS=0, which prunes every
 * log at start-up, while a probe in a process of its own asks `GET /health` every 2 ms — asking from
 * before the server listens. The figure: the longest `/health` wait from the probe's first answer
 * until every long log is pruned (`GET /tasks/:id` polled every 50 ms) and the database's page
 * count holds (a file made with auto_vacuum gives the freed space back after the pass), then until
 * the WAL file's size holds (a build that shrinks the WAL does so after the pass's last checkpoint);
 * how many waits passed 20 ms, the page count before and after, and the WAL file's size: the
 * largest seen (sampled every 50 ms) and at the end; and the longest wait after the pass (and the
 * reader's hold, below), when a build that shortens the WAL does it. Each run is followed by a control: the same copy served without retention, watched as long.
 *
 * A build that prunes a log whole in one transaction prunes the first long one before it listens
 * (retention starts before the listener, and runs synchronously until its first turn): its figure
 * is the longest of the others, hence `logs` ≥ 2.
 *
 *   bun bench/retention.ts [agentkit binary = dist/agentkit] [logs = 3] [events = 300000] [runs = 3] [pad = 120] [hold = 0]
 *
 * `pad` 200000 (and `events` ~600) gives logs of 200 KB frames, as tool results can be. `hold` ms: a
 * reader (a connection of this process, as a backup or an operator's query would be) keeps a read
 * transaction open that long from the server's start, in the control too: no checkpoint can finish
 * meanwhile, so the WAL file grows by what the pass writes — and a build that shortens it does so after.
 */
import { Database } from "bun:sqlite";
import { cpSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { BENCH_CONFIG, agentkitEnv, median } from "./lib/context.ts";
import { startHealthProbe } from "./lib/health-probe.ts";
import { freePort, killAll, startAgentkit, type ServerHandle } from "./lib/processes.ts";
import { createSqliteStore } from "../src/store/sqlite-store.ts";
import type { TaskOutcome } from "../src/store/store.ts";
import { newTaskId } from "../src/tasks/task-id.ts";

const binary = resolve(process.argv[2] ?? join(import.meta.dir, "..", "dist", "agentkit"));
const logs = Number(process.argv[3] ?? 3);
const events = Number(process.argv[4] ?? 300_000);
const runs = Number(process.argv[5] ?? 3);
const pad = Number(process.argv[6] ?? 120);
const holdMs = Number(process.argv[7] ?? 0);
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

/** The database's size in pages as a reader sees it (pages still in the WAL included). */
function pageCount(dataDir: string): number {
  const db = new Database(join(dataDir, "agentkit.sqlite"), { readonly: true });
  try {
    return (db.query("PRAGMA page_count").get() as { page_count: number }).page_count;
  } finally {
    db.close();
  }
}

/** The WAL file's size in bytes (0 when there is none). */
function walBytes(dataDir: string): number {
  const path = join(dataDir, "agentkit.sqlite-wal");
  return existsSync(path) ? statSync(path).size : 0;
}

/** Serves a copy of the template, the probe asking from before the start, until `done` says so. */
async function serve(
  template: string,
  run: string,
  retention: boolean,
  done: (server: ServerHandle, dataDir: string, held: Promise<void>) => Promise<number | void>,
) {
  const dataDir = join(tmpRoot, run);
  cpSync(template, dataDir, { recursive: true });
  const port = freePort();
  const probe = startHealthProbe(`http://127.0.0.1:${port}/health`);
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
  let held = Promise.resolve();
  if (holdMs > 0) {
    const reader = new Database(join(dataDir, "agentkit.sqlite"), { readonly: true });
    reader.run("BEGIN");
    reader.query("SELECT count(*) FROM tasks").get(); // the read transaction's snapshot, held
    held = Bun.sleep(holdMs).then(() => {
      reader.run("COMMIT");
      reader.close();
    });
  }
  const passEnd = await done(server, dataDir, held);
  const to = performance.timeOrigin + performance.now();
  await Bun.sleep(100); // the answer to a request asked before the end
  await probe.stop();
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
  const from = probe.answers[0]?.at ?? to;
  const inside = probe.within(from, to);
  // From the end of the pass (and of the reader's hold) on: where a build that shortens the WAL does so.
  const tail = passEnd ? probe.within(passEnd, to) : [];
  return {
    worst: Math.max(0, ...inside.map((answer) => answer.ms)),
    over20: inside.filter((answer) => answer.ms > 20).length,
    answers: inside.length,
    windowMs: to - from,
    fromStart: to - started,
    worstAfterPass: Math.max(0, ...tail.map((answer) => answer.ms)),
    answersAfterPass: tail.length,
  };
}

try {
  const template = join(tmpRoot, "template");
  const writing = performance.now();
  const ids = await writeTemplate(template);
  console.log(
    `${binary}: ${logs} logs of ${events} events of ~${frame(events).length} B (+100 of 10), written in ${((performance.now() - writing) / 1000).toFixed(1)} s` +
      (holdMs > 0 ? `; a reader holds a read transaction for the first ${holdMs} ms` : ""),
  );
  const prune: { worst: number; over20: number; windowMs: number; fromStart: number; worstAfterPass: number; answersAfterPass: number }[] = [];
  const control: { worst: number; over20: number }[] = [];
  const given: { before: number; after: number; walMax: number; walAfter: number }[] = [];
  for (let run = 0; run < runs; run++) {
    const pages = { before: 0, after: 0, walMax: 0, walAfter: 0 };
    const pruned = await serve(template, `prune-${run}`, true, async (server, dataDir, held) => {
      pages.before = pageCount(dataDir);
      const sampler = setInterval(() => (pages.walMax = Math.max(pages.walMax, walBytes(dataDir))), 50);
      for (;;) {
        const tasks = await Promise.all(ids.map(async (id) => (await (await fetch(`${server.http}/tasks/${id}`)).json()) as { last_seq: number; pruned_through: number }));
        if (tasks.every((task) => task.pruned_through === task.last_seq)) break;
        await Bun.sleep(50);
      }
      // Then a file made by a build with auto_vacuum gives the space back: until its size holds.
      for (let last = -1, same = 0; same < 3; await Bun.sleep(100)) {
        const now = pageCount(dataDir);
        same = now === last ? same + 1 : 0;
        last = now;
      }
      pages.after = pageCount(dataDir);
      // And a build that shrinks the WAL gives it back after the last checkpoint: until its size holds
      // for 2.5 s (once the reader, if any, has let the log go: a checkpoint it kept from finishing is
      // tried again 1–2 s later).
      await held;
      const passEnd = performance.timeOrigin + performance.now();
      for (let last = -1, same = 0; same < 25; await Bun.sleep(100)) {
        const now = walBytes(dataDir);
        same = now === last ? same + 1 : 0;
        last = now;
      }
      clearInterval(sampler);
      pages.walMax = Math.max(pages.walMax, walBytes(dataDir));
      pages.walAfter = walBytes(dataDir);
      return passEnd;
    });
    given.push(pages);
    prune.push(pruned);
    const window = pruned.windowMs;
    control.push(await serve(template, `control-${run}`, false, async (_server, _dataDir, held) => void (await Promise.all([held, Bun.sleep(window)]))));
    console.log(
      `  run ${run + 1}: pruning, /health waited at most ${pruned.worst.toFixed(1)} ms (${pruned.over20} of ${pruned.answers} answers > 20 ms) over ${pruned.windowMs.toFixed(0)} ms ` +
        `(all pruned ${pruned.fromStart.toFixed(0)} ms after the spawn), after the pass ${pruned.worstAfterPass.toFixed(1)} ms (${pruned.answersAfterPass} answers); ` +
        `control, ${control.at(-1)!.worst.toFixed(1)} ms (${control.at(-1)!.over20} > 20 ms)`,
    );
  }
  const fmt = (values: number[]) => `${median(values).toFixed(1)} (${Math.min(...values).toFixed(1)}–${Math.max(...values).toFixed(1)})`;
  console.log(`  longest /health wait while pruning: ${fmt(prune.map((run) => run.worst))} ms; without retention: ${fmt(control.map((run) => run.worst))} ms; median (min–max) of ${runs} runs`);
  console.log(`  longest /health wait after the pass (and the reader's hold), while a build that shortens the WAL does: ${fmt(prune.map((run) => run.worstAfterPass))} ms`);
  console.log(`  all pruned (and the space given back, if the build does) after: ${fmt(prune.map((run) => run.fromStart))} ms from the spawn`);
  console.log(`  the database's pages before → after: ${given.map((run) => `${run.before} → ${run.after}`).join(", ")}`);
  const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
  console.log(`  the WAL file, largest seen → at the end: ${given.map((run) => `${mb(run.walMax)} → ${mb(run.walAfter)} MB`).join(", ")}`);
} finally {
  killAll();
  rmSync(tmpRoot, { recursive: true, force: true });
}
