/** Command-line parsing for the `agentkit` binary. */
import { parseArgs } from "node:util";
import type { ConfigInput } from "../config/config.ts";

export const USAGE = `agentkit — runs LLM agents as tasks and streams every step over WebSocket

Usage:
  agentkit [serve] [options]     start the server (the default command)
  agentkit healthcheck [--url U] exit 0 if the server answers GET /health (for Docker HEALTHCHECK)
  agentkit --help | --version

Options (flags win over environment variables):
  --port N            port to listen on (PORT; default 8000, 0 = any free port)
  --host H            address to bind (AGENTKIT_HOST; default 127.0.0.1)
  --data-dir DIR      where the SQLite store lives (AGENTKIT_DATA_DIR; default ./agentkit-data)
  --heartbeat-ms N    close a WebSocket after N ms without a client frame (AGENTKIT_HEARTBEAT_MS; default 60000)
  --max-concurrent N  tasks running at once; more wait queued (AGENTKIT_MAX_CONCURRENT_TASKS; default 16)
  --log-level L       debug | info | warn | error | silent (AGENTKIT_LOG_LEVEL; default info)
  --config FILE       agents, providers and MCP servers (AGENTKIT_CONFIG; default ./agentkit.json
                      or ./agentkit.yaml if present)

Environment only:
  OPENAI_API_KEY, OPENAI_BASE_URL, ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, OLLAMA_HOST
                      provider keys and endpoints (see README "Models")
  AGENTKIT_API_KEY    require this key on every route but /health (Authorization: Bearer,
                      X-API-Key, or ?api_key= on the WebSocket). Unset: open, with a warning.
  AGENTKIT_MAX_QUEUED_TASKS  queue length before POST /tasks answers 429 (default 1000)
`;

export type Command =
  | { kind: "serve"; flags: Partial<ConfigInput> }
  | { kind: "healthcheck"; url: string | undefined }
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
  if (command === "healthcheck") return { kind: "healthcheck", url: values.url };
  if (command !== "serve") throw new UsageError(`unknown command '${command}'`);
  return {
    kind: "serve",
    flags: {
      port: values.port,
      host: values.host,
      dataDir: values["data-dir"],
      heartbeatMs: values["heartbeat-ms"],
      maxConcurrentTasks: values["max-concurrent"],
      logLevel: values["log-level"] as ConfigInput["logLevel"],
      configPath: values.config,
    } as Partial<ConfigInput>,
  };
}
