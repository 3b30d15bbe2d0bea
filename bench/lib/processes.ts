/**
 * The processes of a bench run: the agentkit binary, the bare pub/sub server, client processes —
 * each tracked so that every one is killed on the way out, whatever happens (the tracked pids are
 * also written to $BENCH_PIDFILE for bench/run.sh to kill should this process itself die hard).
 * Plus what /proc says about a process: resident memory and CPU time.
 */
import type { Subprocess } from "bun";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ClientReport, ClientSpec } from "../client.ts";
import type { ClusterReport, ClusterSpec } from "../cluster-client.ts";

const tracked = new Set<Subprocess>();
/** Every pid this run ever started, alive or not (to tell our CPU use from other processes'). */
const everStarted = new Set<number>();
const PIDFILE = process.env.BENCH_PIDFILE;

function writePidfile() {
  if (!PIDFILE) return;
  try {
    writeFileSync(PIDFILE, [...tracked].map((proc) => `${proc.pid}\n`).join(""));
  } catch {
    // best effort: run.sh's clean-up is only the second line of defence
  }
}

function track<T extends Subprocess>(proc: T): T {
  tracked.add(proc);
  everStarted.add(proc.pid);
  writePidfile();
  void proc.exited.then(() => {
    tracked.delete(proc);
    writePidfile();
  });
  return proc;
}

/** Kills every process this run started and that is still alive. */
export function killAll(): void {
  for (const proc of tracked) {
    try {
      proc.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  tracked.clear();
  writePidfile();
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Rejects after `ms` with `what` in the message unless `promise` settles first. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released). */
export function freePort(): number {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

// ---- /proc ---------------------------------------------------------------------------------

const CLOCK_TICKS = (() => {
  const result = Bun.spawnSync(["getconf", "CLK_TCK"]);
  const value = Number(result.stdout.toString().trim());
  return Number.isFinite(value) && value > 0 ? value : 100;
})();

/** VmRSS and VmHWM of a process, in KiB. */
export function memoryOf(pid: number): { rssKb: number; hwmKb: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
  return { rssKb: field("VmRSS"), hwmKb: field("VmHWM") };
}

/**
 * CPU time of a process (all its live threads), in seconds, with ns precision: the sum of the
 * first field of /proc/<pid>/task/<tid>/schedstat. (/proc/<pid>/stat counts 10 ms ticks: too
 * coarse for a run of half a second.) Falls back to /proc/<pid>/stat without schedstat.
 */
export function cpuSecondsOf(pid: number): number {
  try {
    let nanoseconds = 0;
    for (const thread of readdirSync(`/proc/${pid}/task`)) {
      try {
        nanoseconds += Number(readFileSync(`/proc/${pid}/task/${thread}/schedstat`, "utf8").split(" ")[0]);
      } catch {
        // the thread ended meanwhile
      }
    }
    if (nanoseconds > 0) return nanoseconds / 1e9;
  } catch {
    // no schedstat on this kernel
  }
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may contain spaces) start at field 3.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** CPU seconds (10 ms ticks) and parent of every process on the machine. */
export type CpuSnapshot = Map<number, { cpu: number; ppid: number }>;

export function snapshotCpu(): CpuSnapshot {
  const snapshot: CpuSnapshot = new Map();
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      snapshot.set(pid, { cpu: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS, ppid: Number(fields[1]) });
    } catch {
      // gone meanwhile
    }
  }
  return snapshot;
}

/**
 * CPU seconds used between two snapshots by processes that are not this run's (not this process,
 * not one it started, not a child of those): another workload on the machine skews every figure.
 */
export function foreignCpuSeconds(before: CpuSnapshot, after: CpuSnapshot): number {
  const ours = (pid: number, ppid: number) =>
    pid === process.pid || ppid === process.pid || everStarted.has(pid) || everStarted.has(ppid);
  let seconds = 0;
  for (const [pid, now] of after) {
    if (ours(pid, now.ppid)) continue;
    seconds += now.cpu - (before.get(pid)?.cpu ?? 0);
  }
  return Math.max(0, Math.round(seconds * 100) / 100);
}

/** How many file descriptors a process has open. */
export function openFilesOf(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

// ---- servers -------------------------------------------------------------------------------

export interface ServerHandle {
  readonly kind: "agentkit" | "bare";
  readonly pid: number;
  readonly port: number;
  readonly http: string;
  readonly ws: string;
  /** Milliseconds from spawn to the first successful GET /health. */
  readonly startMs: number;
  stderr(): string;
  stop(): Promise<void>;
}

/** What is kept of a server's stderr: enough for JavaScriptCore's compile log (TRACE=jit in strace-burst.ts). */
export const STDERR_LIMIT = 4 * 1024 * 1024;

function collect(stream: ReadableStream<Uint8Array> | null | undefined, limit = STDERR_LIMIT): () => string {
  let text = "";
  if (stream) {
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) {
        if (text.length < limit) text += decoder.decode(chunk, { stream: true });
      }
    })().catch(() => {});
  }
  return () => text;
}

async function waitForHealth(url: string, proc: Subprocess, stderr: () => string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}: ${stderr().trim().slice(-2000)}`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (response.ok) {
        await response.arrayBuffer();
        return;
      }
    } catch {
      // not listening yet
    }
  }
  throw new Error(`server did not answer ${url} within ${timeoutMs} ms: ${stderr().trim().slice(-2000)}`);
}

async function stopProcess(proc: Subprocess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill("SIGTERM");
  const exited = await Promise.race([proc.exited.then(() => true), sleep(5000).then(() => false)]);
  if (!exited) {
    proc.kill("SIGKILL");
    await proc.exited;
  }
}

export interface AgentkitOptions {
  binary: string;
  configPath: string;
  dataDir: string;
  /** AGENTKIT_* settings for this run; every other AGENTKIT_* variable of the caller is dropped. */
  env: Record<string, string>;
  cwd: string;
  /** The port to listen on (default: a free one), for a probe that asks before the server is up. */
  port?: number;
}

/** Starts the compiled binary on a free port; resolves once GET /health answers. */
export async function startAgentkit(options: AgentkitOptions): Promise<ServerHandle> {
  const port = options.port ?? freePort();
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith("AGENTKIT_") && name !== "PORT") env[name] = value;
  }
  Object.assign(env, options.env);
  const started = performance.now();
  const proc = track(
    Bun.spawn(
      [options.binary, "serve", "--port", String(port), "--host", "127.0.0.1", "--data-dir", options.dataDir, "--config", options.configPath],
      { cwd: options.cwd, env, stdin: "ignore", stdout: "ignore", stderr: "pipe" },
    ),
  );
  const stderr = collect(proc.stderr);
  const http = `http://127.0.0.1:${port}`;
  try {
    await waitForHealth(`${http}/health`, proc, stderr, 15_000);
  } catch (error) {
    await stopProcess(proc);
    throw error;
  }
  const startMs = performance.now() - started;
  return {
    kind: "agentkit",
    pid: proc.pid,
    port,
    http,
    ws: `ws://127.0.0.1:${port}`,
    startMs,
    stderr,
    stop: () => stopProcess(proc),
  };
}

/** Starts bench/bare-pubsub.ts in its own Bun process. */
export async function startBare(benchDir: string): Promise<ServerHandle> {
  const port = freePort();
  const started = performance.now();
  const proc = track(
    Bun.spawn(["bun", join(benchDir, "bare-pubsub.ts"), "--port", String(port)], {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
    }),
  );
  const stderr = collect(proc.stderr);
  const http = `http://127.0.0.1:${port}`;
  try {
    await waitForHealth(`${http}/health`, proc, stderr, 15_000);
  } catch (error) {
    await stopProcess(proc);
    throw error;
  }
  return {
    kind: "bare",
    pid: proc.pid,
    port,
    http,
    ws: `ws://127.0.0.1:${port}`,
    startMs: performance.now() - started,
    stderr,
    stop: () => stopProcess(proc),
  };
}

// ---- client processes ----------------------------------------------------------------------

/** A bench/client.ts (or bench/cluster-client.ts) process, driven over IPC. */
export class ClientProcess {
  private readonly inbox: ClientReport[] = [];
  private waiter: (() => void) | undefined;
  private readonly proc: Subprocess;

  constructor(benchDir: string, spec: ClientSpec | ClusterSpec, script = "client.ts") {
    this.proc = track(
      Bun.spawn(["bun", join(benchDir, script), JSON.stringify(spec)], {
        stdin: "ignore",
        stdout: "inherit",
        stderr: "inherit",
        serialization: "json",
        ipc: (message: ClientReport) => {
          this.inbox.push(message);
          this.waiter?.();
        },
      }),
    );
  }

  get pid(): number {
    return this.proc.pid;
  }

  send(message: { type: "go" } | { type: "close" } | { type: "clock" } | { type: "watch"; url: string }): void {
    this.proc.send(message);
  }

  /** The next report of the given type (earlier reports of other types are dropped). */
  async next<T extends ClientReport["type"]>(type: T, timeoutMs: number): Promise<Extract<ClientReport, { type: T }>> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const index = this.inbox.findIndex((message) => message.type === type || message.type === "fatal");
      if (index >= 0) {
        const [message] = this.inbox.splice(0, index + 1).slice(-1);
        if (message!.type === "fatal") throw new Error(`client ${this.pid}: ${message!.message}`);
        return message as Extract<ClientReport, { type: T }>;
      }
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) {
        throw new Error(`client ${this.pid} exited (${this.proc.exitCode ?? this.proc.signalCode}) before '${type}'`);
      }
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`client ${this.pid}: no '${type}' within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
  }

  /** The next report of a bench/cluster-client.ts process of the given type. */
  async nextCluster<T extends ClusterReport["type"]>(type: T, timeoutMs: number): Promise<Extract<ClusterReport, { type: T }>> {
    return (await this.next(type as never, timeoutMs)) as unknown as Extract<ClusterReport, { type: T }>;
  }

  /** Estimates (client clock − this clock) in ms from a few IPC round trips (midpoint method). */
  async clockOffset(rounds = 20): Promise<number> {
    const estimates: { offset: number; rtt: number }[] = [];
    for (let round = 0; round < rounds; round++) {
      const sent = performance.timeOrigin + performance.now();
      this.send({ type: "clock" });
      const reply = await this.next("clock", 5000);
      const back = performance.timeOrigin + performance.now();
      estimates.push({ offset: reply.now - (sent + back) / 2, rtt: back - sent });
    }
    estimates.sort((a, b) => a.rtt - b.rtt);
    return estimates[0]!.offset;
  }

  async close(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    try {
      this.send({ type: "close" });
    } catch {
      // IPC already gone
    }
    const exited = await Promise.race([this.proc.exited.then(() => true), sleep(5000).then(() => false)]);
    if (!exited) this.proc.kill("SIGKILL");
    await this.proc.exited;
  }

  cpuSeconds(): number {
    return cpuSecondsOf(this.proc.pid);
  }
}
