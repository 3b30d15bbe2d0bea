/**
 * Server configuration: defaults < environment < command-line flags, validated with zod.
 * A bad value stops start-up with one line naming it (exit code 2, see main.ts).
 */
import { z } from "zod";
import { isOrigin, normalizeOrigin } from "../lib/origin.ts";
import { AgentDefinition, DEFAULT_AGENT } from "../agents/agent.ts";
import { ProviderConfig } from "../llm/providers/provider-config.ts";
import { McpServersConfig } from "../tools/mcp/mcp-server-config.ts";
import { ConfigFileError, findConfigFile, loadConfigFile } from "./config-file.ts";
import { HttpFetchHostPattern } from "../tools/http-fetch.ts";
import { parseWebhookSecret } from "../webhooks/signing.ts";
import { dirname, resolve } from "node:path";

const Port = z.coerce.number().int().min(0).max(65535);

/**
 * What an API key may be made of: RFC 3986's unreserved characters, 8 to 512 of them. Such a key
 * needs no escaping anywhere a client sends it: a header, `?api_key=` and — for browsers — the
 * WebSocket subprotocol `agentkit.key.<key>` (a subprotocol is an RFC 7230 token: `new WebSocket`
 * throws a SyntaxError for a key with `/`, `=` or a space in it). Base64url and hex keys fit;
 * standard base64 (`+`, `/`, `=`) does not.
 */
export const API_KEY_PATTERN = /^[A-Za-z0-9._~-]{8,512}$/;
const API_KEY_RULE = "must be 8 to 512 characters of A-Z a-z 0-9 - . _ ~ (e.g. `openssl rand -hex 32`; base64 with + / = cannot be sent as a WebSocket subprotocol)";

/** Owner names agentkit itself uses: the admin key's, open mode's, and the one of decisions nobody made. */
const RESERVED_TENANT_NAMES = ["admin", "anonymous", "system"];

/** `name:key,name:key` → tenant keys (each sees only its own tasks). */
const TenantKeys = z
  .string()
  .transform((value, context) => {
    const keys: { name: string; key: string }[] = [];
    for (const entry of value.split(",").map((part) => part.trim()).filter(Boolean)) {
      const separator = entry.indexOf(":");
      const name = entry.slice(0, separator);
      const key = entry.slice(separator + 1);
      if (separator < 1 || !/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
        context.addIssue({ code: "custom", message: "each entry must be name:key, name of letters, digits, '_', '.', '-'" });
        return z.NEVER;
      }
      if (!API_KEY_PATTERN.test(key)) {
        context.addIssue({ code: "custom", message: `the key of '${name}' ${API_KEY_RULE}` });
        return z.NEVER;
      }
      if (RESERVED_TENANT_NAMES.includes(name)) {
        // The admin key's tasks are owned by "admin", open mode's by "anonymous", and timeouts
        // decide as "system": a tenant with one of these names would own (or sign as) those.
        context.addIssue({ code: "custom", message: `'${name}' is reserved (${RESERVED_TENANT_NAMES.join(", ")}): choose another tenant name` });
        return z.NEVER;
      }
      if (keys.some((existing) => existing.name === name || existing.key === key)) {
        context.addIssue({ code: "custom", message: `'${name}' or its key is listed twice` });
        return z.NEVER;
      }
      keys.push({ name, key });
    }
    return keys;
  });

const CommaList = z.string().transform((value) => value.split(",").map((part) => part.trim()).filter(Boolean));
const Milliseconds = (min: number) => z.coerce.number().int().min(min).max(24 * 3600_000);

export const Config = z.object({
  port: Port.default(8000),
  host: z.string().min(1).default("127.0.0.1"),
  dataDir: z.string().min(1).default("./agentkit-data"),
  /** PostgreSQL instead of the SQLite file (cluster mode): `postgres://user:password@host:port/db?sslmode=…`. */
  databaseUrl: z
    .string()
    .refine((value) => /^postgres(ql)?:\/\/./.test(value), "must be a postgres:// or postgresql:// URL")
    .refine(
      (value) => !/^postgres(ql)?:\/\/./.test(value) || URL.canParse(value),
      "is not a valid URL: percent-encode the characters of the user name and password that a URL reserves (/ ? # @ : % and spaces; e.g. / as %2F)",
    )
    // `postgres://u:p@ss/word@host/db` parses — as user `u`, host `ss` and a path holding the rest
    // of the password, which a message naming the host would then show. An '@' after the host is a
    // password's, not encoded.
    .refine(
      (value) => !URL.canParse(value) || !/@/.test(((url) => url.pathname + url.search + url.hash)(new URL(value))),
      "has an '@' after its host: percent-encode the characters of the user name and password that a URL reserves (/ ? # @ : % and spaces; e.g. @ as %40)",
    )
    .optional(),
  /** Connections in the PostgreSQL pool. */
  databasePool: z.coerce.number().int().min(1).max(1000).default(10),
  /** PostgreSQL `statement_timeout` of every connection, ms; 0 = none. */
  databaseStatementTimeoutMs: z.coerce.number().int().min(0).max(24 * 3600_000).default(30_000),
  /**
   * What this node does in a cluster: `all` (serve the API and run tasks), `api` (serve the API and
   * watchers, run nothing), `worker` (run tasks; serves `/health` only). Needs a database URL
   * unless `all`.
   */
  role: z.enum(["all", "api", "worker"]).default("all"),
  /** This node's name in the cluster (lease owner, logs, /health); default host-pid-random. */
  nodeId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, "letters, digits, '_', '.', ':', '-', up to 64").optional(),
  /** A claimed task's lease (cluster mode): renewed every third of it; a dead node's tasks are taken over after it. */
  leaseMs: z.coerce.number().int().min(300).max(3600_000).default(15_000),
  /** Cluster safety net: claim, and catch followed tasks up, this often even without a notification. */
  pollMs: z.coerce.number().int().min(50).max(600_000).default(2_000),
  /** The admin key: sees and controls every task. */
  apiKey: z.string().regex(API_KEY_PATTERN, API_KEY_RULE).optional(),
  /** Tenant keys: each owns the tasks it creates and cannot see anyone else's. */
  apiKeys: TenantKeys.default([]),
  /**
   * Signs the read-only watch tokens of `POST /tasks/:id/share` (HMAC-SHA256). Every node of a
   * cluster needs the same one; changing it invalidates every token made with the old one.
   */
  shareSecret: z.string().min(32, "must be at least 32 characters (e.g. `openssl rand -hex 32`)").max(1024).optional(),
  /** Origins allowed by CORS (`*` for any); none by default. */
  corsOrigins: CommaList.pipe(
    z.array(
      z
        .string()
        .refine((origin) => origin === "*" || isOrigin(origin), {
          error: (issue) => `'${String(issue.input).slice(0, 100)}' is not an origin (scheme://host[:port], no path) or *`,
        })
        // As browsers send it: no trailing slash, no default port, lower-case, punycode.
        .transform((origin) => (origin === "*" ? origin : normalizeOrigin(origin))),
    ),
  ).default([]),
  maxWatchersPerTask: z.coerce.number().int().min(1).max(1_000_000).default(10_000),
  maxWatchersPerKey: z.coerce.number().int().min(1).max(10_000_000).default(100_000),
  /**
   * A watcher with more than this many bytes queued for `slowClientGraceMs` (or 4× this, at least
   * 2 MiB, at once) is cut off (WebSocket 4008; an event stream ends) and may resume with `after`.
   */
  slowClientBytes: z.coerce.number().int().min(1024).max(1024 * 1024 * 1024).default(1024 * 1024),
  /** How long more than `slowClientBytes` may stay queued (a one-turn burst passes it for a client that reads). */
  slowClientGraceMs: Milliseconds(0).default(1000),
  /** Event logs of tasks that ended more than this many hours ago are pruned; unset keeps them. */
  eventRetentionHours: z.coerce.number().min(0).max(24 * 3650).optional(),
  heartbeatMs: Milliseconds(50).default(60_000),
  maxConcurrentTasks: z.coerce.number().int().min(1).max(10_000).default(16),
  maxQueuedTasks: z.coerce.number().int().min(0).max(1_000_000).default(1_000),
  maxBodyBytes: z.coerce.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
  maxFrameBytes: z.coerce.number().int().min(128).max(16 * 1024 * 1024).default(64 * 1024),
  logLevel: z.enum(["debug", "info", "warn", "error", "silent"]).default("info"),
  /** `text` (default) or `json`: every log line one JSON object `{time, level, msg, ...fields}`. */
  logFormat: z.enum(["text", "json"]).default("text"),
  /** One info line per HTTP request (method, path without the query, status, duration). `0` turns it off. */
  accessLog: z
    .union([z.boolean(), z.enum(["1", "0", "true", "false", "on", "off"])], { error: () => "must be 1 or 0 (true/false, on/off)" })
    .transform((value) => value === true || value === "1" || value === "true" || value === "on")
    .default(true),
  /** The config file these came from, if any (agents, providers, MCP servers). */
  configPath: z.string().min(1).optional(),
  agents: z.array(AgentDefinition).min(1).default([DEFAULT_AGENT]),
  defaultAgent: z.string().optional(),
  providers: ProviderConfig.default({}),
  mcpServers: McpServersConfig.default([]),
  // ---- webhooks (src/webhooks) ----
  /** Hosts a task's own webhook (`webhook_url`) may go to, as `http_fetch`'s allowHosts; none: per-task webhooks are refused. */
  webhookAllowHosts: z
    .union([z.array(z.string()), z.string().transform((value) => value.split(",").map((part) => part.trim()).filter(Boolean))])
    .pipe(z.array(HttpFetchHostPattern))
    .default([]),
  /** Signs every webhook: `whsec_<base64>` (24+ bytes); unset: a secret the store makes once and keeps. */
  webhookSecret: z
    .string()
    .refine((value) => parseWebhookSecret(value) !== undefined, "must be whsec_ followed by standard base64 of 24 to 256 bytes (e.g. whsec_$(openssl rand -base64 32))")
    .optional(),
  /** One delivery attempt's deadline. */
  webhookTimeoutMs: z.coerce.number().int().min(100).max(300_000).default(10_000),
  /** Attempts before a webhook is given up (`failed`). */
  webhookMaxAttempts: z.coerce.number().int().min(1).max(100).default(10),
  /** The delay before a webhook's first retry; ×3 for each next one, at most an hour. */
  webhookRetryMs: z.coerce.number().int().min(10).max(3600_000).default(5_000),
  /** Deliveries to one destination (a webhook URL's origin) in flight at once, of the 16 a node has. */
  webhookPerDestination: z.coerce.number().int().min(1).max(16).default(4),
  /** A TypeScript module of tools (`agentkit/tools`' defineTool), imported at start-up (src/tools/module). */
  toolsModule: z.string().min(1).optional(),
});
export type Config = z.infer<typeof Config>;
export type ConfigInput = z.input<typeof Config>;

/** Environment variables and the config key each one sets. */
export const ENVIRONMENT: Record<string, keyof ConfigInput> = {
  PORT: "port",
  AGENTKIT_HOST: "host",
  AGENTKIT_DATA_DIR: "dataDir",
  AGENTKIT_DATABASE_URL: "databaseUrl",
  AGENTKIT_DATABASE_POOL: "databasePool",
  AGENTKIT_DATABASE_STATEMENT_TIMEOUT_MS: "databaseStatementTimeoutMs",
  AGENTKIT_ROLE: "role",
  AGENTKIT_NODE_ID: "nodeId",
  AGENTKIT_LEASE_MS: "leaseMs",
  AGENTKIT_POLL_MS: "pollMs",
  AGENTKIT_API_KEY: "apiKey",
  AGENTKIT_API_KEYS: "apiKeys",
  AGENTKIT_SHARE_SECRET: "shareSecret",
  AGENTKIT_CORS_ORIGINS: "corsOrigins",
  AGENTKIT_MAX_WATCHERS_PER_TASK: "maxWatchersPerTask",
  AGENTKIT_MAX_WATCHERS_PER_KEY: "maxWatchersPerKey",
  AGENTKIT_SLOW_CLIENT_BYTES: "slowClientBytes",
  AGENTKIT_SLOW_CLIENT_GRACE_MS: "slowClientGraceMs",
  AGENTKIT_EVENT_RETENTION_HOURS: "eventRetentionHours",
  AGENTKIT_MAX_BODY_BYTES: "maxBodyBytes",
  AGENTKIT_MAX_FRAME_BYTES: "maxFrameBytes",
  AGENTKIT_HEARTBEAT_MS: "heartbeatMs",
  AGENTKIT_MAX_CONCURRENT_TASKS: "maxConcurrentTasks",
  AGENTKIT_MAX_QUEUED_TASKS: "maxQueuedTasks",
  AGENTKIT_LOG_LEVEL: "logLevel",
  AGENTKIT_LOG_FORMAT: "logFormat",
  AGENTKIT_ACCESS_LOG: "accessLog",
  AGENTKIT_CONFIG: "configPath",
  AGENTKIT_WEBHOOK_ALLOW_HOSTS: "webhookAllowHosts",
  AGENTKIT_WEBHOOK_SECRET: "webhookSecret",
  AGENTKIT_WEBHOOK_TIMEOUT_MS: "webhookTimeoutMs",
  AGENTKIT_WEBHOOK_MAX_ATTEMPTS: "webhookMaxAttempts",
  AGENTKIT_WEBHOOK_RETRY_MS: "webhookRetryMs",
  AGENTKIT_WEBHOOK_PER_DESTINATION: "webhookPerDestination",
  AGENTKIT_TOOLS_MODULE: "toolsModule",
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * Merges defaults, the config file, environment and flags (flags win) and validates the result.
 * The config file is `configPath` (flag or AGENTKIT_CONFIG), else `./agentkit.json` (or .yaml) if
 * present; `readFile: false` skips it (tests).
 */
export function loadConfig(
  options: { env?: Record<string, string | undefined>; flags?: Partial<ConfigInput>; readFile?: boolean; cwd?: string } = {},
): Config {
  const env = options.env ?? process.env;
  const fromEnv: Record<string, unknown> = {};
  for (const [name, key] of Object.entries(ENVIRONMENT)) {
    const value = env[name];
    if (value !== undefined && value !== "") fromEnv[key] = value;
  }
  const flags = Object.fromEntries(Object.entries(options.flags ?? {}).filter(([, value]) => value !== undefined));
  const fromFile: Record<string, unknown> = {};
  const configPath = (flags.configPath ?? fromEnv.configPath) as string | undefined;
  const path = options.readFile === false ? undefined : (configPath ?? findConfigFile(options.cwd));
  if (path) {
    try {
      const file = loadConfigFile(path);
      fromFile.configPath = path;
      if (file.agents) fromFile.agents = file.agents;
      if (file.default_agent) fromFile.defaultAgent = file.default_agent;
      if (file.providers) fromFile.providers = file.providers;
      if (file.mcp_servers) fromFile.mcpServers = file.mcp_servers;
      if (file.webhooks?.allowHosts) fromFile.webhookAllowHosts = file.webhooks.allowHosts;
      if (file.tools_module) fromFile.toolsModule = resolve(dirname(path), file.tools_module);
    } catch (error) {
      if (error instanceof ConfigFileError) throw new ConfigError(`invalid configuration: ${error.message}`);
      throw error;
    }
  }
  // Parsed once per process: `jitless` skips zod's generated fast path, whose code generation and
  // compilation cost start-up more (~2 ms with config-file.ts's) than this one parse saves.
  const parsed = Config.safeParse({ ...fromFile, ...fromEnv, ...flags }, { jitless: true });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = issue.path.join(".");
    const envName = Object.entries(ENVIRONMENT).find(([, configKey]) => configKey === issue.path[0])?.[0];
    const source = key in flags ? flagName(key) : envName && envName in env ? envName : key;
    throw new ConfigError(`invalid configuration: ${source}: ${issue.message}`);
  }
  if (parsed.data.role !== "all" && !parsed.data.databaseUrl) {
    const source = "role" in flags ? "--role" : "AGENTKIT_ROLE";
    throw new ConfigError(`invalid configuration: ${source}: '${parsed.data.role}' needs a cluster (AGENTKIT_DATABASE_URL or --database-url); one node is 'all'`);
  }
  // The admin key given to a tenant too would authenticate as one of them: the operator would hold
  // no admin key (no /metrics, nobody else's tasks) and nothing would say why.
  const sharing = parsed.data.apiKey === undefined ? undefined : parsed.data.apiKeys.find((tenant) => tenant.key === parsed.data.apiKey);
  if (sharing) {
    throw new ConfigError(`invalid configuration: AGENTKIT_API_KEYS: the key of '${sharing.name}' is AGENTKIT_API_KEY, the admin key: a key is the admin's or one tenant's`);
  }
  return parsed.data;
}

/** The command-line flags (src/cli/args.ts) not named after their config key in kebab case. */
const FLAG_NAMES: Record<string, string> = { maxConcurrentTasks: "--max-concurrent", configPath: "--config" };

function flagName(key: string): string {
  return FLAG_NAMES[key] ?? `--${kebab(key)}`;
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}
