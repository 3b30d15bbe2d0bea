/** Command-line parsing for the `agentkit` binary: the server (`serve`, `healthcheck`, `compact`) and the client commands. */
import { parseArgs } from "node:util";
import type { ConfigInput } from "../config/config.ts";
import { TASK_STATUSES, type TaskStatusName } from "../protocol/statuses.ts";

export const USAGE = `agentkit — runs LLM agents as tasks and streams every step over WebSocket

Usage:
  agentkit [serve] [options]        start the server (the default command)
  agentkit healthcheck [options]    exit 0 if the server answers GET /health, else 1 (Docker HEALTHCHECK)
  agentkit compact [--data-dir DIR] with the server stopped: shrink the SQLite file to its data (a file
                                    made by an older build: new events layout, auto_vacuum); 'agentkit
                                    compact --help'
  agentkit --help | --version

Client commands (talk to a running server; 'agentkit <command> --help' for each):
  agentkit run "What is 17*23?" [--agent A] [--thread ID] [--json]
                                    start a task and stream it: text as it is typed, tool calls,
                                    approvals and questions, usage and cost; Ctrl-C cancels it
                                    (a second Ctrl-C detaches)
  agentkit watch <id> [--after N] [--json]   stream a task (a finished one is replayed); Ctrl-C detaches
  agentkit tasks [--status S] [--limit N] [--json]   list tasks, newest first
  agentkit cancel <id> [--json]     cancel a task
  agentkit agents [--json]          list the server's agents

  They find the server with --url U or AGENTKIT_URL (e.g. http://127.0.0.1:8000), else the way
  healthcheck does (--port/--host, <data dir>/agentkit.addr.json, PORT/AGENTKIT_HOST), and send
  the key in AGENTKIT_API_KEY (or --api-key-file FILE). Exit codes: 0 completed, 1 failed or
  timed out (or another error), 2 usage error, 3 cannot reach the server or the key was refused,
  130 cancelled or detached. --json prints NDJSON frames (run, watch) or JSON on stdout, nothing else.

healthcheck finds the server the way serve was told to: --url U if given; else --port/--host
if given; else the address the running server wrote to <data dir>/agentkit.addr.json (so it
follows 'serve --port 9000'); else PORT and AGENTKIT_HOST. A bind to 0.0.0.0 is checked via
127.0.0.1, :: via [::1]. It takes serve's options and environment, and prints one line saying
what it tried.

Options (flags win over environment variables; -p is --port, -c --config, -h --help, -v --version):
  --port N            port to listen on (PORT; default 8000, 0 = any free port)
  --host H            address to bind (AGENTKIT_HOST; default 127.0.0.1)
  --data-dir DIR      where the SQLite store lives (AGENTKIT_DATA_DIR; default ./agentkit-data)
  --database-url URL  store tasks in PostgreSQL instead, postgres://user:password@host:port/db
                      (AGENTKIT_DATABASE_URL; pool AGENTKIT_DATABASE_POOL, default 10)
  --role R            cluster role: all (API and tasks), api (API and watchers only), worker
                      (runs tasks, serves /health and /metrics only) (AGENTKIT_ROLE; default all)
  --node-id ID        this node's name in the cluster (AGENTKIT_NODE_ID; default host-pid-random)
  --heartbeat-ms N    ping each WebSocket every N/3 ms; close one silent for N ms with 4408
                      (AGENTKIT_HEARTBEAT_MS; default 60000)
  --max-concurrent N  tasks running at once; more wait queued (AGENTKIT_MAX_CONCURRENT_TASKS; default 16)
  --log-level L       debug | info | warn | error | silent (AGENTKIT_LOG_LEVEL; default info)
  --config FILE       agents, providers and MCP servers (AGENTKIT_CONFIG; default ./agentkit.json
                      or ./agentkit.yaml if present)
  --url U             the server's URL (client commands: else AGENTKIT_URL), e.g. http://127.0.0.1:8000;
                      healthcheck checks its /health (a URL ending in /health as given)

Environment only:
  OPENAI_API_KEY, OPENAI_BASE_URL, ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, OLLAMA_HOST
                      provider keys and endpoints (see README "Models")
  AGENTKIT_API_KEY    require this key (Authorization: Bearer, X-API-Key, or ?api_key= on the
                      WebSocket and the event stream) on every route but the open ones: /health,
                      /openapi.json, /asyncapi.json, /docs, the A2A agent cards (agent-card.json)
                      and the web console (/, /ui). Unset: open, with a warning. The client
                      commands send it as their key.
  AGENTKIT_API_KEYS   tenant keys, name:key,name:key: each sees only its own tasks
  AGENTKIT_CORS_ORIGINS  browser origins allowed to call the API and open WebSockets (comma-separated)
  AGENTKIT_URL        client commands: the server to talk to (as --url)
  AGENTKIT_SHARE_SECRET  signs the read-only watch tokens of POST /tasks/:id/share (32+ characters;
                      the same on every node). Unset: a secret kept in the store.
  AGENTKIT_TOOLS_MODULE  a TypeScript module of tools made with defineTool (the config file's
                      tools_module; see README "TypeScript tools")
  AGENTKIT_WEBHOOK_ALLOW_HOSTS  hosts a task's webhook_url may go to (as http_fetch's allowHosts;
                      unset: refused); AGENTKIT_WEBHOOK_SECRET (whsec_…) signs webhooks (unset: a
                      secret kept in the store); also AGENTKIT_WEBHOOK_TIMEOUT_MS, _RETRY_MS, _MAX_ATTEMPTS,
                      _PER_DESTINATION (deliveries to one URL origin in flight at once, of 16; default 4)
  AGENTKIT_MAX_QUEUED_TASKS  queue length before POST /tasks answers 429 (default 1000; cluster-wide)
  AGENTKIT_MAX_BODY_BYTES, AGENTKIT_MAX_FRAME_BYTES  largest request body, WebSocket client frame
  AGENTKIT_MAX_WATCHERS_PER_TASK, AGENTKIT_MAX_WATCHERS_PER_KEY  WebSocket watchers (close 4029 past them)
  AGENTKIT_SLOW_CLIENT_BYTES, AGENTKIT_SLOW_CLIENT_GRACE_MS  a watcher with more queued than this
                      for longer than the grace is not reading: cut off (4008)
  AGENTKIT_EVENT_RETENTION_HOURS  drop the event logs of tasks ended longer ago (default: keep)
  AGENTKIT_LEASE_MS   cluster: a task's lease (default 15000); a dead node's tasks are taken over after it
  AGENTKIT_POLL_MS    cluster: the safety-net poll for lost notifications (default 2000)
  AGENTKIT_DATABASE_STATEMENT_TIMEOUT_MS  cluster: PostgreSQL statement_timeout (default 30000)
  AGENTKIT_LOG_FORMAT text | json (one JSON object per line); AGENTKIT_ACCESS_LOG=0 turns the
                      access log (a line per request, never a key) off
  OTEL_EXPORTER_OTLP_ENDPOINT  send OpenTelemetry traces over OTLP/HTTP JSON (also
                      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, _HEADERS, _TIMEOUT, OTEL_SERVICE_NAME,
                      OTEL_RESOURCE_ATTRIBUTES, OTEL_SDK_DISABLED); unset: nothing is loaded
See README "Configuration" for every setting and its default.
`;

/** Where a client command finds the server, and its key (the key itself only from the environment or a file). */
export interface ConnectionOptions {
  /** `--url`: the server's base URL (else AGENTKIT_URL, else found like healthcheck finds it). */
  url?: string;
  /** `--api-key-file`: a file holding the key (else AGENTKIT_API_KEY). Never the key on the command line: `ps` shows it. */
  apiKeyFile?: string;
  /** serve's `--port`, `--host`, `--data-dir`: to find a local server the way healthcheck does. */
  flags: Partial<ConfigInput>;
}

export type ClientCommand =
  | { kind: "run"; input: string; agent?: string; thread?: string; json: boolean; connection: ConnectionOptions }
  | { kind: "watch"; taskId: string; after?: number; json: boolean; connection: ConnectionOptions }
  | { kind: "tasks"; status?: TaskStatusName; limit?: number; json: boolean; connection: ConnectionOptions }
  | { kind: "cancel"; taskId: string; json: boolean; connection: ConnectionOptions }
  | { kind: "agents"; json: boolean; connection: ConnectionOptions };

export type Command =
  | { kind: "serve"; flags: Partial<ConfigInput> }
  /** `flags` are serve's, to find the server the way `serve` was told to. */
  | { kind: "healthcheck"; url: string | undefined; flags: Partial<ConfigInput> }
  /** `flags`: serve's `--data-dir` and `--database-url`. */
  | { kind: "compact"; flags: Partial<ConfigInput> }
  /** `command`: `agentkit <command> --help` (absent: the general usage). */
  | { kind: "help"; command?: HelpTopic }
  | { kind: "version" }
  | ClientCommand;

export class UsageError extends Error {
  /** The command whose usage to point to (`agentkit <command> --help`), when known. */
  command?: string;
}

const CONNECTION_HELP = `Connection (all client commands):
  --url U             the server, e.g. http://127.0.0.1:8000 (AGENTKIT_URL); default: the local server,
                      found like 'agentkit healthcheck' finds it (--port/--host, the address file in
                      --data-dir, PORT/AGENTKIT_HOST), else http://127.0.0.1:8000
  --port N, --host H, --data-dir DIR   to find a local server as above
  --api-key-file F    read the key from file F; else the key is AGENTKIT_API_KEY (never a flag: ps shows flags)

Exit codes: 0 done (a run: completed), 1 failed or timed out, or another error (e.g. no such task),
2 usage error, 3 cannot reach the server or the key was refused, 130 cancelled or detached.
`;

/** The commands with a `--help` of their own. */
export type HelpTopic = ClientCommand["kind"] | "compact";

/** The text of `agentkit <command> --help`. */
export const COMMAND_USAGE: Record<HelpTopic, string> = {
  compact: `agentkit compact — shrink a data dir's SQLite file to the size of its data, with the server stopped

Usage:
  agentkit compact [--data-dir DIR]

A file made by an older agentkit never gets smaller: it has no auto_vacuum (retention's freed pages
are reused, never given back), and its events table keeps frames of 1–3 KB in 2–3 times their size.
compact turns auto_vacuum on (incremental, as new files have it) with a VACUUM, rebuilds the events
table in the new layout in one transaction (every row copied and counted; the schema version stays,
so an older agentkit of the same schema still opens the file), and on a file that needed neither,
runs VACUUM. It prints the file's size before and after (with its WAL, if a crash left one: folded
in first).

Safe to interrupt (Ctrl-C, kill -9, a power cut): each step is one transaction or one VACUUM, so
the data is whole, as it was before that step or after it (a few bytes of the file's header, such as
SQLite's change counter, may differ); run compact again to finish. It needs up to about twice the
file's size free on disk (VACUUM's temporary copy goes to SQLITE_TMPDIR, else TMPDIR, else
/var/tmp; while it fits in compact's 64 MiB page cache it stays in memory), and time: minutes for
gigabytes.

It takes the data dir as serve does (its agentkit.lock, and a live server named in
agentkit.addr.json) and refuses while a server has it; a server started meanwhile stops at once.
With PostgreSQL (--database-url, AGENTKIT_DATABASE_URL) there is nothing to do: PostgreSQL gives
space back with its own VACUUM.

Options:
  --data-dir DIR      the data dir (AGENTKIT_DATA_DIR; default ./agentkit-data)
  --database-url URL  said to be PostgreSQL's, which compact does not apply to (exit code 2)

Exit codes: 0 compacted, 1 not done (a server has the data dir, no database there, or an error —
the file whole as it was before the step that failed), 2 usage error or a PostgreSQL store.
`,
  run: `agentkit run — start a task on a server and stream it in the terminal

Usage:
  agentkit run "What is 17*23?" [--agent A] [--thread ID] [--json] [connection options]
  agentkit run - [...]                  read the input from stdin

Shows the text as the model types it, each tool call with its arguments (a spinner until its
result, then ✓ or ✗), approvals and questions (on a terminal it asks you: y/n for an approval,
a line of text for a question), then the usage and cost. Colour only on a terminal, never with
NO_COLOR set. Ctrl-C cancels the task (one line says so); a second Ctrl-C detaches and leaves it
to the server. The exit code follows the task's end: 0 completed, 1 failed or timed out,
130 cancelled.

Options:
  --agent A           the agent to run (default: the server's default agent; 'agentkit agents' lists them)
  --thread ID         add the task to a conversation (thread): it runs with the thread's history
  --json              print every frame as NDJSON on stdout (nothing else; messages go to stderr)

${CONNECTION_HELP}`,
  watch: `agentkit watch — stream a task that exists: live if it runs, replayed if it ended

Usage:
  agentkit watch <task id> [--after N] [--json] [connection options]

Renders like 'agentkit run' (on a terminal: approvals and questions are asked). Ctrl-C detaches
(the task goes on; use 'agentkit cancel <id>' to stop it). The exit code follows the task's end:
0 completed, 1 failed or timed out, 130 cancelled (or detached).

Options:
  --after N           start after event seq N (the events up to N are not shown)
  --json              print every frame as NDJSON on stdout (nothing else; messages go to stderr)

${CONNECTION_HELP}`,
  tasks: `agentkit tasks — list tasks, newest first (yours; every task with the admin key)

Usage:
  agentkit tasks [--status S] [--limit N] [--json] [connection options]

Options:
  --status S          only tasks in status S: ${TASK_STATUSES.join(", ")}
  --limit N           at most N tasks, 1–100 (default 20)
  --json              print the page as JSON ({tasks, next_cursor}) on stdout

${CONNECTION_HELP}`,
  cancel: `agentkit cancel — cancel a task (queued, running or waiting); a task that ended stays as it ended

Usage:
  agentkit cancel <task id> [--json] [connection options]

Prints the status the task ended in. Exit code 0 once it has ended, 1 if there is no such task.

Options:
  --json              print the task as JSON on stdout

${CONNECTION_HELP}`,
  agents: `agentkit agents — list the server's agents (name, model, tools; * marks the default)

Usage:
  agentkit agents [--json] [connection options]

Options:
  --json              print {agents} as JSON on stdout

${CONNECTION_HELP}`,
};

const CLIENT_COMMANDS = (Object.keys(COMMAND_USAGE) as HelpTopic[]).filter((name): name is ClientCommand["kind"] => name !== "compact");

/** Which options each command takes (beyond --help); the server's are serve's flags. */
const SERVE_OPTIONS = ["port", "host", "data-dir", "database-url", "role", "node-id", "heartbeat-ms", "max-concurrent", "log-level", "config"];
const CONNECTION_OPTIONS = ["url", "api-key-file", "port", "host", "data-dir"];
const COMMAND_OPTIONS: Record<string, readonly string[]> = {
  serve: SERVE_OPTIONS,
  healthcheck: [...SERVE_OPTIONS, "url"],
  compact: ["data-dir", "database-url"],
  run: [...CONNECTION_OPTIONS, "agent", "thread", "json"],
  watch: [...CONNECTION_OPTIONS, "after", "json"],
  tasks: [...CONNECTION_OPTIONS, "status", "limit", "json"],
  cancel: [...CONNECTION_OPTIONS, "json"],
  agents: [...CONNECTION_OPTIONS, "json"],
};

function isClientCommand(name: string): name is ClientCommand["kind"] {
  return (CLIENT_COMMANDS as string[]).includes(name);
}

/** Commands with a `--help` of their own, which a usage error points to. */
function hasOwnHelp(name: string): name is HelpTopic {
  return isClientCommand(name) || name === "compact";
}

/** Options whose value is a number: `--port -1` is that option with a negative value (said to be out of range), not two options. */
const NUMBER_OPTIONS = new Set(["--port", "-p", "--heartbeat-ms", "--max-concurrent", "--after", "--limit"]);

function parseAll(argv: readonly string[]) {
  const args: string[] = [];
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!;
    const next = argv[index + 1];
    if (arg === "--") {
      args.push(...argv.slice(index)); // the rest are words (a task's input), as given
      break;
    }
    if (NUMBER_OPTIONS.has(arg) && next !== undefined && /^-\d/.test(next)) {
      args.push(arg.startsWith("--") ? `${arg}=${next}` : `${arg}${next}`);
      index++;
    } else args.push(arg);
  }
  const parsed = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    tokens: true,
    options: {
      help: { type: "boolean", short: "h" },
      version: { type: "boolean", short: "v" },
      port: { type: "string", short: "p" },
      host: { type: "string" },
      "data-dir": { type: "string" },
      "database-url": { type: "string" },
      role: { type: "string" },
      "node-id": { type: "string" },
      "heartbeat-ms": { type: "string" },
      "max-concurrent": { type: "string" },
      "log-level": { type: "string" },
      config: { type: "string", short: "c" },
      url: { type: "string" },
      // client commands
      "api-key-file": { type: "string" },
      agent: { type: "string" },
      thread: { type: "string" },
      json: { type: "boolean" },
      after: { type: "string" },
      status: { type: "string" },
      limit: { type: "string" },
    },
  });
  // The last of two values won silently (`--port 1 --port 2` listened on 2): one is meant.
  const seen = new Set<string>();
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== "option" || token.name === "help" || token.name === "version") continue;
    if (seen.has(token.name)) throw new Error(`--${token.name} is given more than once`);
    seen.add(token.name);
  }
  return parsed;
}

export function parseCommand(argv: readonly string[]): Command {
  let parsed;
  try {
    parsed = parseAll(argv);
  } catch (error) {
    const usage = new UsageError((error as Error).message);
    if (hasOwnHelp(argv[0] ?? "")) usage.command = argv[0];
    throw usage;
  }
  const { values, positionals } = parsed;
  const [command = "serve", ...rest] = positionals;
  if (values.help) return hasOwnHelp(command) ? { kind: "help", command } : { kind: "help" };
  if (values.version) return { kind: "version" };
  const allowed = COMMAND_OPTIONS[command];
  if (!allowed) throw new UsageError(`unknown command '${command}'`);
  try {
    return commandOf(command, allowed, values, rest);
  } catch (error) {
    if (error instanceof UsageError && hasOwnHelp(command)) error.command = command;
    throw error;
  }
}

type ParsedValues = ReturnType<typeof parseAll>["values"];

function commandOf(command: string, allowed: readonly string[], values: ParsedValues, rest: string[]): Command {
  for (const [name, value] of Object.entries(values)) {
    if (value === undefined || name === "help" || name === "version" || allowed.includes(name)) continue;
    if (command === "serve" && name === "url") throw new UsageError("--url is an option of healthcheck, not of serve");
    throw new UsageError(`--${name} is not an option of ${command}`);
  }
  const flags = Object.fromEntries(
    Object.entries({
      port: values.port,
      host: values.host,
      dataDir: values["data-dir"],
      databaseUrl: values["database-url"],
      role: values.role as ConfigInput["role"],
      nodeId: values["node-id"],
      heartbeatMs: values["heartbeat-ms"],
      maxConcurrentTasks: values["max-concurrent"],
      logLevel: values["log-level"] as ConfigInput["logLevel"],
      configPath: values.config,
    }).filter(([, value]) => value !== undefined),
  ) as Partial<ConfigInput>;
  if (command === "serve" || command === "healthcheck" || command === "compact") {
    if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}'`);
    if (command === "compact") return { kind: "compact", flags };
    return command === "healthcheck" ? { kind: "healthcheck", url: values.url, flags } : { kind: "serve", flags };
  }

  const connection: ConnectionOptions = { flags };
  if (values.url !== undefined) connection.url = checkUrl(values.url);
  if (values["api-key-file"] !== undefined) connection.apiKeyFile = values["api-key-file"];
  const json = values.json === true;
  switch (command) {
    case "run": {
      // Unquoted words are one input: `agentkit run what is 2+2` works too.
      const input = rest.join(" ");
      if (input.trim() === "") throw new UsageError('run needs the task\'s input, e.g. agentkit run "What is 17*23?"');
      return {
        kind: "run",
        input,
        json,
        connection,
        ...(values.agent === undefined ? {} : { agent: values.agent }),
        ...(values.thread === undefined ? {} : { thread: values.thread }),
      };
    }
    case "watch":
    case "cancel": {
      const [taskId, extra] = rest;
      if (taskId === undefined) throw new UsageError(`${command} needs a task id: agentkit ${command} <task id>`);
      if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}'`);
      if (command === "cancel") return { kind: "cancel", taskId, json, connection };
      const after = values.after === undefined ? undefined : integer("--after", values.after, 0, Number.MAX_SAFE_INTEGER);
      return { kind: "watch", taskId, json, connection, ...(after === undefined ? {} : { after }) };
    }
    case "tasks": {
      if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}'`);
      let status: TaskStatusName | undefined;
      if (values.status !== undefined) {
        if (!(TASK_STATUSES as readonly string[]).includes(values.status)) throw new UsageError(`--status must be one of ${TASK_STATUSES.join(", ")}`);
        status = values.status as TaskStatusName;
      }
      const limit = values.limit === undefined ? undefined : integer("--limit", values.limit, 1, 100);
      return { kind: "tasks", json, connection, ...(status === undefined ? {} : { status }), ...(limit === undefined ? {} : { limit }) };
    }
    default: {
      if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}'`);
      return { kind: "agents", json, connection };
    }
  }
}

function integer(name: string, value: string, min: number, max: number): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || number < min || number > max) throw new UsageError(`${name} must be a whole number from ${min} to ${max}`);
  return number;
}

function checkUrl(value: string): string {
  if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol)) {
    throw new UsageError(`--url must be an http:// or https:// URL, e.g. http://127.0.0.1:8000 (got '${value}')`);
  }
  return value;
}
