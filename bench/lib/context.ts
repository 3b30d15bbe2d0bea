/**
 * What every scenario shares: where things are, the options, and the agentkit calls the
 * orchestrator makes (create a task, cancel it, read it back) — plus the "gate": with one task
 * slot, a task sleeping in its model call holds the slot, so the measured task waits `queued`
 * while its watchers connect; cancelling the gate starts it.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { startAgentkit, type ServerHandle } from "./processes.ts";

export interface Options {
  quick: boolean;
  only: Set<string> | undefined;
  reps: number;
  /** Interleaved agentkit/bare pairs per short-burst figure. */
  pairs: number;
  /**
   * Short bursts (at most 100 watchers each) that each server serves before the measured pairs, so
   * that code run once per task (its start, its end, the trigger) is past the JIT's first tiers, as in
   * a server that has been up for a while. 0 measures the first bursts after start.
   */
  burstWarmup: number;
  pad: number;
  fanoutClients: number;
  steadyClients: number;
  /** Another agentkit build to measure instead of dist/agentkit. */
  binary: string | undefined;
  /** An older build to measure beside it (cluster scenario: single-node SQLite many tasks), a private copy. */
  baseline: string | undefined;
}

export interface Context {
  repoRoot: string;
  benchDir: string;
  binary: string;
  tmpRoot: string;
  configPath: string;
  /** The open-file limit every process of the run inherits. */
  nofile: number;
  options: Options;
  log(message: string): void;
}

/**
 * The context of a one-off bench script (ab-burst, strace-burst, long-log): one run, no options of
 * the suite's, a config file already written at `configPath`, log lines to stderr.
 */
export function scriptContext(benchDir: string, binary: string, tmpRoot: string, configPath: string): Context {
  return {
    repoRoot: join(benchDir, ".."),
    benchDir,
    binary,
    tmpRoot,
    configPath,
    nofile: 20000,
    options: { quick: false, only: undefined, reps: 1, pairs: 1, burstWarmup: 0, pad: 0, fanoutClients: 1, steadyClients: 1, binary: undefined, baseline: undefined },
    log: (message) => console.error(message),
  };
}

/** The two agents of the generated config file. */
export const BENCH_CONFIG = {
  agents: [
    { name: "bench", model: "demo/bench", tools: ["calculator"], max_steps: 100_000, timeout_ms: 3_600_000 },
    { name: "slow", model: "demo/slow" },
  ],
};

/** Limits raised so that the bench measures speed, not the server's protective limits. */
export function agentkitEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    AGENTKIT_MAX_WATCHERS_PER_TASK: "1000000",
    AGENTKIT_MAX_WATCHERS_PER_KEY: "10000000",
    AGENTKIT_MAX_CONCURRENT_TASKS: "16",
    AGENTKIT_MAX_QUEUED_TASKS: "100000",
    AGENTKIT_HEARTBEAT_MS: String(24 * 3_600_000),
    // 1 GiB (the maximum): a burst of thousands of frames must not close watchers as "too slow".
    AGENTKIT_SLOW_CLIENT_BYTES: String(1024 * 1024 * 1024),
    AGENTKIT_LOG_LEVEL: "warn",
    ...overrides,
  };
}

let serverCounter = 0;

/** Starts the compiled binary with a fresh data dir under the run's temp root. */
export async function startServer(context: Context, overrides: Record<string, string> = {}): Promise<ServerHandle> {
  const dataDir = join(context.tmpRoot, `data-${++serverCounter}`);
  mkdirSync(dataDir, { recursive: true });
  return startAgentkit({
    binary: context.binary,
    configPath: context.configPath,
    dataDir,
    env: agentkitEnv(overrides),
    cwd: context.tmpRoot,
  });
}

export interface BenchInput {
  steps: number;
  pad?: number;
  delay_ms?: number;
}

export interface TaskView {
  id: string;
  status: string;
  stop_reason: string | null;
  last_seq: number;
  total_steps: number;
  started_at: string | null;
  finished_at: string | null;
}

export async function createTask(server: ServerHandle, agent: string, input: BenchInput | string): Promise<TaskView> {
  const response = await fetch(`${server.http}/tasks`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ agent, input: typeof input === "string" ? input : JSON.stringify(input) }),
  });
  const body = await response.json();
  if (response.status !== 201) throw new Error(`POST /tasks: ${response.status} ${JSON.stringify(body)}`);
  return body as TaskView;
}

export async function getTask(server: ServerHandle, id: string): Promise<TaskView> {
  const response = await fetch(`${server.http}/tasks/${id}`);
  if (!response.ok) throw new Error(`GET /tasks/${id}: ${response.status}`);
  return (await response.json()) as TaskView;
}

export async function cancelTask(server: ServerHandle, id: string): Promise<TaskView> {
  const response = await fetch(`${server.http}/tasks/${id}/cancel`, { method: "POST" });
  if (!response.ok) throw new Error(`POST /tasks/${id}/cancel: ${response.status}`);
  return (await response.json()) as TaskView;
}

/** Waits until a task reaches a terminal state (polling), or throws after `timeoutMs`. */
export async function waitForEnd(server: ServerHandle, id: string, timeoutMs: number): Promise<TaskView> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const task = await getTask(server, id);
    if (!["queued", "running"].includes(task.status)) return task;
    if (performance.now() > deadline) throw new Error(`task ${id} still ${task.status} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A task that sleeps in its model call for 10 minutes: holds a slot, or stays idle for watchers. */
export const SLEEPER: BenchInput = { steps: 1, delay_ms: 600_000 };

/** Occupies the server's only task slot (AGENTKIT_MAX_CONCURRENT_TASKS=1) until cancelled. */
export async function holdSlot(server: ServerHandle): Promise<TaskView> {
  const gate = await createTask(server, "bench", SLEEPER);
  const deadline = performance.now() + 5000;
  while ((await getTask(server, gate.id)).status !== "running") {
    if (performance.now() > deadline) throw new Error("gate task did not start");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return gate;
}

/** Runs one instant task to warm the server's JIT on the hot path; waits for it to end. */
export async function warmUp(server: ServerHandle, steps = 2000): Promise<void> {
  const task = await createTask(server, "bench", { steps });
  await waitForEnd(server, task.id, 60_000);
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function round(value: number, digits = 2): number {
  if (!Number.isFinite(value)) return value;
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}
