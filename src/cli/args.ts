/** Command-line parsing for the `agentkit` binary. */
import { parseArgs } from "node:util";
import type { ConfigInput } from "../config/config.ts";

export const USAGE = `agentkit — runs LLM agents as tasks and streams every step over WebSocket

Usage:
  agentkit [serve] [options]        start the server (the default command)
  agentkit healthcheck [options]    exit 0 if the server answers GET /health, else 1 (Docker HEALTHCHECK)
  agentkit --help | --version

healthcheck finds the server the way serve was told to: --url U if given; else --port/--host
if given; else the address the running server wrote to <data dir>/agentkit.addr.json (so it
follows 'serve --port 9000'); else PORT and AGENTKIT_HOST. A bind to 0.0.0.0 is checked via
127.0.0.1, :: via [::1]. It takes serve's options and environment, and prints one line saying
what it tried.

Options (flags win over environment variables):
  --port N            port to listen on (PORT; default 8000, 0 = any free port)
  --host H            address to bind (AGENTKIT_HOST; default 127.0.0.1)
  --data-dir DIR      where the SQLite store lives (AGENTKIT_DATA_DIR; default ./agentkit-data)
  --database-url URL  store tasks in PostgreSQL instead, postgres://user:password@host:port/db
                      (AGENTKIT_DATABASE_URL; pool AGENTKIT_DATABASE_POOL, default 10)
  --role R            cluster role: all (API and tasks), api (API and watchers only), worker
                      (runs tasks, serves /health only) (AGENTKIT_ROLE; default all)
  --node-id ID        this node's name in the cluster (AGENTKIT_NODE_ID; default host-pid-random)
  --heartbeat-ms N    ping each WebSocket every N/3 ms; close one silent for N ms with 4408
                      (AGENTKIT_HEARTBEAT_MS; default 60000)
  --max-concurrent N  tasks running at once; more wait queued (AGENTKIT_MAX_CONCURRENT_TASKS; default 16)
  --log-level L       debug | info | warn | error | silent (AGENTKIT_LOG_LEVEL; default info)
  --config FILE       agents, providers and MCP servers (AGENTKIT_CONFIG; default ./agentkit.json
                      or ./agentkit.yaml if present)
  --url U             healthcheck only: the /health URL to check, e.g. http://127.0.0.1:8000/health

Environment only:
  OPENAI_API_KEY, OPENAI_BASE_URL, ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, OLLAMA_HOST
                      provider keys and endpoints (see README "Models")
  AGENTKIT_API_KEY    require this key on every route but /health (Authorization: Bearer,
                      X-API-Key, or ?api_key= on the WebSocket). Unset: open, with a warning.
  AGENTKIT_SHARE_SECRET  signs the read-only watch tokens of POST /tasks/:id/share (32+ characters;
                      the same on every node). Unset: a secret kept in the store.
  AGENTKIT_MAX_QUEUED_TASKS  queue length before POST /tasks answers 429 (default 1000; cluster-wide)
  AGENTKIT_LEASE_MS   cluster: a task's lease (default 15000); a dead node's tasks are taken over after it
  AGENTKIT_POLL_MS    cluster: the safety-net poll for lost notifications (default 2000)
`;

export type Command =
  | { kind: "serve"; flags: Partial<ConfigInput> }
  /** `flags` are serve's, to find the server the way `serve` was told to. */
  | { kind: "healthcheck"; url: string | undefined; flags: Partial<ConfigInput> }
  | { kind: "help" }
  | { kind: "version" };

export class UsageError extends Error {}

export function parseCommand(argv: readonly string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
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
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  const [command = "serve", ...rest] = positionals;
  if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}'`);
  if (command !== "serve" && command !== "healthcheck") throw new UsageError(`unknown command '${command}'`);
  if (command === "serve" && values.url !== undefined) throw new UsageError("--url is an option of healthcheck, not of serve");
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
  return command === "healthcheck" ? { kind: "healthcheck", url: values.url, flags } : { kind: "serve", flags };
}
