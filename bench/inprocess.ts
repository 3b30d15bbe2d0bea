/**
 * In-process driver for profiling the runner's per-event cost: the real runner, SQLite store,
 * live feed, engine, bench model and calculator, with no HTTP and no watchers (the bus publishes
 * to a Bun.serve with no subscribers). Not part of `bun run bench`; use it with a profiler:
 *
 *   bun bench/inprocess.ts --tasks=200 --steps=66 --concurrent=1          (short bursts, one at a time)
 *   bun bench/inprocess.ts --tasks=200 --steps=100 --concurrent=200 --delay=1   (paced, many at once)
 *   bun --cpu-prof-md bench/inprocess.ts …                                  (where the time goes)
 *   bun bench/inprocess.ts --src=/tmp/other/src …                           (A/B another copy of src/)
 *   bun bench/inprocess.ts --metrics …                                      (with the server's metrics hooks and store wrapping on)
 *   bun bench/inprocess.ts --memory …                                       (SQLite in memory: the engine and runner's share shows)
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    tasks: { type: "string", default: "200" },
    steps: { type: "string", default: "66" },
    concurrent: { type: "string", default: "1" },
    delay: { type: "string", default: "0" },
    rounds: { type: "string", default: "3" },
    src: { type: "string", default: join(import.meta.dir, "..", "src") },
    metrics: { type: "boolean", default: false },
    memory: { type: "boolean", default: false },
  },
});
const src = resolve(values.src!);
const tasks = Number(values.tasks);
const steps = Number(values.steps);
const concurrent = Number(values.concurrent);
const delay = Number(values.delay);

const { createAgentPool } = await import(join(src, "agents/pool.ts"));
const { AgentDefinition } = await import(join(src, "agents/agent.ts"));
const { createBunBus } = await import(join(src, "bus/bun-bus.ts"));
const { createLiveFeed } = await import(join(src, "bus/live-feed.ts"));
const { createLogger } = await import(join(src, "lib/logger.ts"));
const { createModelResolver } = await import(join(src, "llm/registry.ts"));
const { createSqliteStore } = await import(join(src, "store/sqlite-store.ts"));
const { createRunner } = await import(join(src, "tasks/runner.ts"));
// The server's own task ids (time-ordered: see src/tasks/task-id.ts); an older src/ without it gets random ones.
const newTaskId: () => string = await import(join(src, "tasks/task-id.ts")).then((module) => module.newTaskId, () => () => crypto.randomUUID());
const { builtinTools } = await import(join(src, "tools/registry.ts"));

// --metrics: the hooks serve.ts wires (runner, live feed, timed store), feeding the Prometheus metrics,
// and the store's writes watched for /health as serve.ts watches them (one SQLite node).
const telemetry = values.metrics ? (await import(join(src, "telemetry/metrics.ts"))).createMetrics({ version: "bench" }).telemetry : undefined;
const instrument = values.metrics ? await storeAsServed() : (store: unknown) => store;

/** serve.ts's wrapping of the store: one wrapper, or (an older src/) the health wrapper inside the timed one. */
async function storeAsServed(): Promise<(store: unknown) => unknown> {
  const { instrumentStore } = await import(join(src, "telemetry/instrument-store.ts"));
  const health = await import(join(src, "store/store-health.ts")).catch(() => undefined);
  if (!health) return (store) => instrumentStore(store, telemetry);
  if (health.watchWrites) return (store) => instrumentStore(health.watchWrites(store, health.createStoreHealth()), telemetry);
  return (store) => instrumentStore(store, telemetry, health.createStoreHealth());
}

const dir = mkdtempSync(join(tmpdir(), "agentkit-inprocess-"));
const store = instrument(createSqliteStore({ dataDir: values.memory ? ":memory:" : dir })) as ReturnType<typeof createSqliteStore>;
const bus = createBunBus();
const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("no"), websocket: { message() {} } });
bus.bind(server);
const feed = createLiveFeed(bus, { telemetry });
const agents = createAgentPool({
  definitions: [AgentDefinition.parse({ name: "bench", model: "demo/bench", tools: ["calculator"], max_steps: 100_000, timeout_ms: 3_600_000 })],
  models: createModelResolver({}),
  tools: builtinTools(),
  mcpServers: [],
});
const runner = createRunner({ store, feed, agents, logger: createLogger("warn"), maxConcurrentTasks: concurrent, maxQueuedTasks: 1_000_000, telemetry });

async function round(count: number): Promise<{ seconds: number; events: number }> {
  const input = JSON.stringify(delay ? { steps, delay_ms: delay } : { steps });
  const ids: string[] = [];
  const started = performance.now();
  for (let index = 0; index < count; index++) {
    const task = await store.createTask({ id: newTaskId(), owner: "bench", agent: "bench", input, metadata: {}, createdAt: new Date() });
    ids.push(task.id);
    runner.submit(task);
  }
  for (;;) {
    const stats = runner.stats();
    if (stats.running === 0 && stats.queued === 0) break;
    await new Promise((done) => setTimeout(done, 1));
  }
  const seconds = (performance.now() - started) / 1000;
  let events = 0;
  for (const id of ids) events += (await store.getTask(id))!.last_seq;
  return { seconds, events };
}

await round(Math.min(tasks, 20)); // warm-up
for (let index = 0; index < Number(values.rounds); index++) {
  const cpu = process.cpuUsage();
  const { seconds, events } = await round(tasks);
  const used = process.cpuUsage(cpu);
  const cpuSeconds = (used.user + used.system) / 1e6;
  console.log(
    `${tasks} tasks × ${steps} steps (${concurrent} at once${delay ? `, ${delay} ms per step` : ""}): ${events} events in ${seconds.toFixed(3)} s = ` +
      `${Math.round(events / seconds)} events/s, CPU ${((cpuSeconds * 1e6) / events).toFixed(1)} µs/event`,
  );
}
store.close();
server.stop(true);
rmSync(dir, { recursive: true, force: true });
