/**
 * The client commands of the `agentkit` binary — `run`, `watch`, `tasks`, `cancel`, `agents` —
 * on the public API only, through the typed client (src/client). What they print is in render.ts;
 * here: finding the server and the key, the commands, prompts, Ctrl-C and exit codes.
 *
 * Exit codes: 0 done (a task: completed), 1 failed or timed out (or another error, e.g. no such
 * task), 2 usage error (a bad option or value the server refused as invalid), 3 the server cannot be
 * reached or refused the key, 130 cancelled or detached (Ctrl-C).
 */
import { readFileSync, writeSync } from "node:fs";
import { AgentkitClientError, createClient, type AgentkitClient, type AgentInfo, type Task, type TaskStatus, type WatchFrame } from "../client/index.ts";
import { ConfigError } from "../config/config.ts";
import { isTerminal } from "../protocol/task.ts";
import { UsageError, type ClientCommand, type ConnectionOptions } from "./args.ts";
import { healthcheckTarget } from "./healthcheck.ts";
import { createRenderer, fit } from "./render.ts";

export const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3, interrupted: 130 } as const;

/** What a command reads and writes; the process's own by default (tests pass their own). */
export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: Record<string, string | undefined>;
  /** Registers a SIGINT handler; returns its removal. */
  onInterrupt(handler: () => void): () => void;
}

interface Writable {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/**
 * The process's own streams. Output is written synchronously: `main` ends with `process.exit`,
 * which would drop what a slow reader (a pipe into `jq`, `head`) has not taken yet.
 */
export function processIo(): CliIo {
  const synchronous = (fd: number, stream: NodeJS.WriteStream): Writable => ({
    write: (text: string) => writeAll(fd, text),
    isTTY: stream.isTTY === true,
    get columns() {
      return stream.columns;
    },
  });
  return {
    stdout: synchronous(1, process.stdout),
    stderr: synchronous(2, process.stderr),
    stdin: process.stdin,
    env: process.env,
    onInterrupt(handler) {
      process.on("SIGINT", handler);
      return () => process.off("SIGINT", handler);
    },
  };
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Writes all of `text` to `fd`, waiting while a pipe is full (Bun makes a piped stdout non-blocking). */
function writeAll(fd: number, text: string): void {
  const bytes = Buffer.from(text);
  for (let offset = 0; offset < bytes.length; ) {
    try {
      offset += writeSync(fd, bytes, offset);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EAGAIN") {
        Atomics.wait(pause, 0, 0, 2);
        continue;
      }
      // The reader went away (`agentkit tasks | head -1`): nothing more to say to it.
      if (code === "EPIPE") return;
      throw error;
    }
  }
}

/** The server to talk to, where its address came from (for the error line), and the key. */
export interface Connection {
  url: string;
  from: string;
  apiKey?: string;
}

/**
 * `--url`, else `AGENTKIT_URL`, else the local server found the way `agentkit healthcheck` finds it
 * (`--port`/`--host`, the live `<data dir>/agentkit.addr.json`, `PORT`/`AGENTKIT_HOST`, defaults:
 * http://127.0.0.1:8000). The key: `--api-key-file`, else `AGENTKIT_API_KEY`.
 */
export function resolveConnection(options: ConnectionOptions, env: Record<string, string | undefined>): Connection {
  let url: string;
  let from: string;
  if (options.url) {
    url = options.url;
    from = "--url";
  } else if (env.AGENTKIT_URL) {
    if (!URL.canParse(env.AGENTKIT_URL) || !/^https?:$/.test(new URL(env.AGENTKIT_URL).protocol)) {
      throw new UsageError(`AGENTKIT_URL must be an http:// or https:// URL, e.g. http://127.0.0.1:8000 (got '${env.AGENTKIT_URL}')`);
    }
    url = env.AGENTKIT_URL;
    from = "AGENTKIT_URL";
  } else {
    // Only what says where a server listens: the server's other settings (its keys…) are not the client's.
    const addressEnv = { PORT: env.PORT, AGENTKIT_HOST: env.AGENTKIT_HOST, AGENTKIT_DATA_DIR: env.AGENTKIT_DATA_DIR };
    try {
      const target = healthcheckTarget({ flags: options.flags, env: addressEnv });
      url = target.url.replace(/\/health$/, "");
      from = target.from;
    } catch (error) {
      if (error instanceof ConfigError) throw new UsageError(`cannot tell where the server is: ${error.message} (pass --url)`);
      throw error;
    }
  }
  let apiKey: string | undefined;
  if (options.apiKeyFile !== undefined) {
    try {
      apiKey = readFileSync(options.apiKeyFile, "utf8").trim();
    } catch (error) {
      throw new UsageError(`--api-key-file: cannot read ${options.apiKeyFile}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    if (apiKey === "") throw new UsageError(`--api-key-file: ${options.apiKeyFile} is empty`);
  } else if (env.AGENTKIT_API_KEY) {
    apiKey = env.AGENTKIT_API_KEY;
  }
  return { url: url.replace(/\/+$/, ""), from, ...(apiKey === undefined ? {} : { apiKey }) };
}

/** Runs a client command; resolves with the exit code. */
export async function runClientCommand(command: ClientCommand, io: CliIo = processIo()): Promise<number> {
  let connection: Connection;
  try {
    connection = resolveConnection(command.connection, io.env);
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`agentkit: ${error.message}\n`);
      return EXIT.usage;
    }
    throw error;
  }
  const client = createClient({ url: connection.url, ...(connection.apiKey === undefined ? {} : { apiKey: connection.apiKey }) });
  try {
    switch (command.kind) {
      case "run":
        return await run(client, command, io);
      case "watch":
        // Fails fast (and clearly) on an unknown task, a wrong key or no server, before watching.
        await client.tasks.get(command.taskId);
        return await stream(client, command.taskId, { json: command.json, after: command.after, cancelOnInterrupt: false }, io);
      case "tasks":
        return await listTasks(client, command, io);
      case "cancel":
        return await cancel(client, command, io);
      case "agents":
        return await listAgents(client, command, io);
    }
  } catch (error) {
    const { code, line } = explain(error, connection);
    io.stderr.write(`agentkit ${command.kind}: ${line}\n`);
    return code;
  }
}

/** One line and an exit code for what went wrong. */
export function explain(error: unknown, connection: Connection): { code: number; line: string } {
  if (error instanceof UsageError) return { code: EXIT.usage, line: error.message };
  if (!(error instanceof AgentkitClientError)) return { code: EXIT.failed, line: error instanceof Error ? error.message : String(error) };
  if (error.status === 0 && (error.code === "network_error" || error.code === "retries_exhausted")) {
    return { code: EXIT.unreachable, line: `cannot reach the server at ${connection.url} (address from ${connection.from}): ${error.message.replace(/^.*could not reach the server at \S+: /, "")}` };
  }
  if (error.status === 401) {
    const hint = connection.apiKey ? "the server refused the key (AGENTKIT_API_KEY or --api-key-file)" : "the server needs a key: set AGENTKIT_API_KEY (or pass --api-key-file)";
    return { code: EXIT.unreachable, line: `${hint}: ${error.message} (${connection.url})` };
  }
  if (error.status === 403) return { code: EXIT.unreachable, line: `the key may not do this: ${error.message}` };
  if (error.status === 503 || error.status === 502 || error.status === 504) {
    return { code: EXIT.unreachable, line: `the server at ${connection.url} is unavailable (${error.status}): ${error.message}` };
  }
  if (error.status === 400 || error.status === 413 || error.status === 415) return { code: EXIT.usage, line: error.message };
  return { code: EXIT.failed, line: error.message };
}

async function run(client: AgentkitClient, command: Extract<ClientCommand, { kind: "run" }>, io: CliIo): Promise<number> {
  const input = command.input === "-" ? await readAll(io.stdin) : command.input;
  if (input.trim() === "") throw new UsageError("the input read from stdin is empty");
  const task = await client.tasks.create({
    input,
    ...(command.agent === undefined ? {} : { agent: command.agent }),
    ...(command.thread === undefined ? {} : { thread_id: command.thread }),
  });
  if (task.steered) {
    io.stderr.write(`agentkit run: the thread was busy: the input went to its running task ${task.id} as a message; watching that task\n`);
  }
  return stream(client, task.id, { json: command.json, cancelOnInterrupt: true, after: undefined }, io);
}

/** Reconnects in a row before a watch gives up (backoff up to 10 s: about five minutes of a server away). */
const WATCH_RETRIES = 30;

interface StreamOptions {
  json: boolean;
  after: number | undefined;
  /** `run`: the first Ctrl-C cancels the task, the second detaches. `watch`: Ctrl-C detaches. */
  cancelOnInterrupt: boolean;
}

/** The exit code for how a task ended. */
export function exitCodeFor(status: TaskStatus): number {
  switch (status) {
    case "completed":
      return EXIT.ok;
    case "cancelled":
      return EXIT.interrupted;
    default:
      return EXIT.failed;
  }
}

/** Watches a task to its end, rendering (or printing NDJSON), asking a person at a terminal when it waits for one. */
async function stream(client: AgentkitClient, taskId: string, options: StreamOptions, io: CliIo): Promise<number> {
  const live = !options.json && io.stdout.isTTY === true;
  const interactive = live && io.stdin.isTTY === true;
  const color = live && !io.env.NO_COLOR;
  const renderer = createRenderer({ color, live, interactive, columns: () => io.stdout.columns || 100 });
  const watching = new AbortController();
  let prompting: AbortController | undefined;
  let detached = false;
  /** Ctrl-C's cancel did not reach the server: the exit code says the server could not be reached. */
  let cancelFailed = false;
  let interrupts = 0;
  /** Ctrl-C's cancel: not asked for, asked (no answer yet), or answered by the server. */
  let cancel: "none" | "asked" | "answered" = "none";

  /** A message for the person: stderr, with the live region out of its way. */
  const say = (text: string) => {
    if (live) io.stdout.write(renderer.suspend());
    io.stderr.write(`${text}\n`);
    if (live && !prompting) io.stdout.write(renderer.resume());
  };
  const removeInterrupt = io.onInterrupt(() => {
    interrupts++;
    prompting?.abort();
    if (options.cancelOnInterrupt && interrupts === 1) {
      say(`agentkit: cancelling task ${taskId} (Ctrl-C again to stop waiting for it)`);
      cancel = "asked";
      client.tasks.cancel(taskId).then(() => {
        cancel = "answered";
      }, (error: unknown) => {
        cancel = "none";
        // Nothing will come of waiting (the server is away, or refused): say so and stop here.
        if (detached || watching.signal.aborted) return;
        cancelFailed = true;
        detached = true;
        say(`agentkit: could not cancel task ${taskId}: ${error instanceof Error ? error.message : String(error)}; it may still run (agentkit cancel ${taskId} once the server answers)`);
        watching.abort();
      });
      return;
    }
    detached = true;
    // A cancel already sent cannot be taken back: say what it may still do rather than "goes on".
    say(
      cancel === "answered"
        ? `agentkit: detached; task ${taskId} is being cancelled (agentkit watch ${taskId} to see it end)`
        : cancel === "asked"
          ? `agentkit: detached; the cancel already sent may still stop task ${taskId} (agentkit watch ${taskId} to follow it)`
          : `agentkit: detached; task ${taskId} goes on (agentkit watch ${taskId} to follow it, agentkit cancel ${taskId} to stop it)`,
    );
    watching.abort();
  });
  const lines = createLineReader(io.stdin);
  const spinner = live ? setInterval(() => prompting || io.stdout.write(renderer.tick()), 80) : undefined;

  /** Calls waiting for a person that this terminal has not asked about yet, in order. */
  const asks = new Map<string, Extract<WatchFrame, { type: "step" }>>();
  let caughtUpAt = 0;
  let lastSeq = 0;
  let status: TaskStatus | undefined;
  try {
    for await (const frame of client.watch(taskId, { deltas: live, signal: watching.signal, maxRetries: WATCH_RETRIES, ...(options.after === undefined ? {} : { after: options.after }) })) {
      if (options.json) io.stdout.write(`${JSON.stringify(frame)}\n`);
      else io.stdout.write(renderer.frame(frame));
      if (frame.type === "connected") caughtUpAt = frame.last_seq;
      if (frame.type === "step" || frame.type === "result") lastSeq = frame.seq;
      if (frame.type === "result") {
        status = frame.data.status;
        break;
      }
      if (!interactive || frame.type !== "step") continue;
      const data = frame.data.data as { id?: unknown };
      const id = String(data.id);
      if (frame.data.event_type === "approval_requested" || frame.data.event_type === "question") asks.set(id, frame);
      if (frame.data.event_type === "approval_decided" || frame.data.event_type === "answer") asks.delete(id);
      // A replayed request may have been decided later in the log: ask only once caught up.
      if (lastSeq < caughtUpAt) continue;
      for (const [callId, ask] of asks) {
        asks.delete(callId);
        if (interrupts > 0) break;
        prompting = new AbortController();
        try {
          await askPerson(client, taskId, ask, renderer, (signal) => lines.read(signal), prompting.signal, io);
        } finally {
          prompting = undefined;
          io.stdout.write(renderer.resume());
        }
      }
    }
  } finally {
    if (spinner) clearInterval(spinner);
    removeInterrupt();
    lines.close();
    if (!options.json) io.stdout.write(renderer.end());
  }
  if (cancelFailed) return EXIT.unreachable;
  if (detached) return EXIT.interrupted;
  if (status === undefined) {
    // The watch ends without a result when there was nothing left to send (`--after` its last event).
    const task = await client.tasks.get(taskId);
    if (!isTerminal(task.status)) throw new Error(`the watch of task ${taskId} ended before the task did (it is ${task.status})`);
    status = task.status;
  }
  return exitCodeFor(status);
}

/** Asks at the terminal: y/n for an approval, a line for a question; sends the decision. */
async function askPerson(
  client: AgentkitClient,
  taskId: string,
  ask: Extract<WatchFrame, { type: "step" }>,
  renderer: ReturnType<typeof createRenderer>,
  readLine: (signal: AbortSignal) => Promise<string | undefined>,
  signal: AbortSignal,
  io: CliIo,
): Promise<void> {
  const data = ask.data.data as { id: string; name: string; question?: string; arguments?: unknown };
  io.stdout.write(renderer.suspend());
  try {
    if (ask.data.event_type === "approval_requested") {
      for (;;) {
        io.stdout.write(`Approve ${data.name} ${fit(JSON.stringify(data.arguments ?? {}), 120)}? [y/n] `);
        const reply = (await readLine(signal))?.trim().toLowerCase();
        if (reply === undefined) return;
        if (reply === "y" || reply === "yes") {
          await client.tasks.approve(taskId, data.id);
          return;
        }
        if (reply === "n" || reply === "no") {
          io.stdout.write("Reason (optional): ");
          const reason = (await readLine(signal))?.trim();
          if (reason === undefined) return;
          await client.tasks.reject(taskId, data.id, reason || undefined);
          return;
        }
      }
    }
    io.stdout.write(`Your answer: `);
    const text = await readLine(signal);
    if (text === undefined) return;
    await client.tasks.answer(taskId, data.id, text);
  } catch (error) {
    // Decided elsewhere meanwhile (409), or timed out: the log shows what happened.
    if (error instanceof AgentkitClientError && (error.status === 409 || error.status === 404 || error.status === 400)) {
      io.stderr.write(`agentkit: ${error.message}\n`);
      return;
    }
    throw error;
  }
}

/** Reads stdin line by line, on demand (one listener for the whole run: stdin is read only once a question is asked). */
export function createLineReader(stream: NodeJS.ReadableStream): { read(signal: AbortSignal): Promise<string | undefined>; close(): void } {
  const lines: string[] = [];
  let buffered = "";
  let ended = false;
  let waiter: ((line: string | undefined) => void) | undefined;
  let listening = false;
  const onData = (chunk: Buffer | string) => {
    buffered += chunk.toString();
    for (let end = buffered.indexOf("\n"); end >= 0; end = buffered.indexOf("\n")) {
      lines.push(buffered.slice(0, end).replace(/\r$/, ""));
      buffered = buffered.slice(end + 1);
    }
    if (waiter && lines.length > 0) waiter(lines.shift());
  };
  const onEnd = () => {
    ended = true;
    if (buffered !== "") lines.push(buffered);
    buffered = "";
    waiter?.(lines.shift());
  };
  return {
    read(signal) {
      if (lines.length > 0) return Promise.resolve(lines.shift());
      if (ended || signal.aborted) return Promise.resolve(undefined);
      if (!listening) {
        listening = true;
        stream.on("data", onData);
        stream.on("end", onEnd);
      }
      stream.resume();
      return new Promise((resolve) => {
        const onAbort = () => settle(undefined);
        const settle = (line: string | undefined) => {
          waiter = undefined;
          signal.removeEventListener("abort", onAbort);
          // Not read while nobody asks (and the process may exit).
          stream.pause();
          resolve(line);
        };
        waiter = settle;
        signal.addEventListener("abort", onAbort, { once: true });
      });
    },
    close() {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.pause();
    },
  };
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  let text = "";
  for await (const chunk of stream) text += chunk.toString();
  return text;
}

async function listTasks(client: AgentkitClient, command: Extract<ClientCommand, { kind: "tasks" }>, io: CliIo): Promise<number> {
  const page = await client.tasks.list({
    ...(command.status === undefined ? {} : { status: command.status }),
    ...(command.limit === undefined ? {} : { limit: command.limit }),
  });
  if (command.json) {
    io.stdout.write(`${JSON.stringify(page)}\n`);
    return EXIT.ok;
  }
  if (page.tasks.length === 0) {
    io.stdout.write(command.status ? `no ${command.status} tasks\n` : "no tasks\n");
    return EXIT.ok;
  }
  const rows = page.tasks.map((task) => [task.id, task.status, task.agent, shortTime(task.created_at), String(task.total_steps), String(task.total_tokens), inputOf(task)]);
  io.stdout.write(table(["ID", "STATUS", "AGENT", "CREATED", "STEPS", "TOKENS", "INPUT"], rows));
  if (page.next_cursor) io.stdout.write(`… more tasks: raise --limit (up to 100), or page with GET /tasks?cursor=${page.next_cursor}\n`);
  return EXIT.ok;
}

async function cancel(client: AgentkitClient, command: Extract<ClientCommand, { kind: "cancel" }>, io: CliIo): Promise<number> {
  const task = await client.tasks.cancel(command.taskId);
  if (command.json) io.stdout.write(`${JSON.stringify(task)}\n`);
  else if (task.status === "cancelled") io.stdout.write(`task ${task.id} is cancelled\n`);
  else io.stdout.write(`task ${task.id} had already ended: ${task.status}\n`);
  return EXIT.ok;
}

async function listAgents(client: AgentkitClient, command: Extract<ClientCommand, { kind: "agents" }>, io: CliIo): Promise<number> {
  const agents: AgentInfo[] = await client.agents.list();
  if (command.json) {
    io.stdout.write(`${JSON.stringify({ agents })}\n`);
    return EXIT.ok;
  }
  const rows = agents.map((agent) => [
    `${agent.name}${agent.default ? " *" : ""}`,
    agent.model,
    agent.tools.join(", ") || "-",
    agent.approval.length > 0 ? agent.approval.join(", ") : "-",
    fit(agent.description ?? "", 60),
  ]);
  io.stdout.write(table(["NAME", "MODEL", "TOOLS", "APPROVAL", "DESCRIPTION"], rows));
  return EXIT.ok;
}

function inputOf(task: Task): string {
  return fit(task.input.replace(/\s+/g, " "), 50);
}

/** `2026-11-25 03:43:31` in local time. */
function shortTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const pad = (value: number) => String(value).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** Columns padded to their widest cell, two spaces apart; the last one not padded. */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...all.map((row) => [...(row[column] ?? "")].length)));
  return all
    .map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell + " ".repeat(widths[column]! - [...cell].length))).join("  ").trimEnd())
    .join("\n") + "\n";
}
