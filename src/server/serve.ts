/**
 * Wires the parts together and starts Bun.serve: store → feed/bus → agents → runner → app + WebSocket.
 * Dependencies are built here and passed down; nothing is a module-level singleton.
 */
import { modelSettingsOf } from "../agents/agent.ts";
import { createAgentPool } from "../agents/pool.ts";
import { compileOutputSchema } from "../engine/structured-output.ts";
import { createBunBus } from "../bus/bun-bus.ts";
import { taskOfTopic } from "../bus/bus.ts";
import { createLiveFeed } from "../bus/live-feed.ts";
import type { Config } from "../config/config.ts";
import { createLogger, type Logger } from "../lib/logger.ts";
import { createModelResolver, type ModelResolver } from "../llm/registry.ts";
import { computeCostUsd } from "../llm/providers/cost.ts";
import type { McpManager } from "../tools/mcp/mcp-manager.ts";
import { hostname } from "node:os";
import { join } from "node:path";
import { createFollower } from "../cluster/follower.ts";
import { openStore, type OpenedStore } from "../store/index.ts";
import { createStoreHealth, databaseFileCheck } from "../store/store-health.ts";
import { DataDirInUseError, lockDataDir } from "./data-dir-lock.ts";
import { ADDRESS_FILE, liveServerOf } from "./address-file.ts";
import type { ClusterStore, TaskStore } from "../store/store.ts";
import { createRunner, type TaskRunner } from "../tasks/runner.ts";
import { createInteraction } from "../tasks/interaction.ts";
import { startRetention } from "../tasks/retention.ts";
import { builtinTools, type ToolRegistry } from "../tools/registry.ts";
import { createApp } from "./app.ts";
import { createEventStreams } from "./event-stream.ts";
import { createWebhookAllowlist } from "../webhooks/allowlist.ts";
import { startWebhookDelivery, type WebhookDelivery } from "../webhooks/delivery.ts";
import { createTaskWebhooks } from "../webhooks/events.ts";
import { formatWebhookSecret, parseWebhookSecret } from "../webhooks/signing.ts";
import { createAuthenticator, type ApiKey } from "./auth.ts";
import { createWatcherLimits } from "./watcher-limits.ts";
import { createTaskWebSockets, type Connection } from "./websocket.ts";
import { CloseCode } from "../errors.ts";
import { VERSION } from "../version.ts";
import { withAccessLog } from "../telemetry/access-log.ts";
import { instrumentStore } from "../telemetry/instrument-store.ts";
import { createMetrics } from "../telemetry/metrics.ts";
import { combineTelemetry, noTelemetry, tracingWanted } from "../telemetry/telemetry.ts";
// The web console: an HTML import, bundled by Bun (at `bun build --compile` time, into the binary).
import consolePage from "../console/index.html";

/** How long a stopping server waits for its ended event streams' last bytes to reach their clients. */
const STREAMS_DRAIN_MS = 1000;

/** The longest start-up waits for MCP servers before serving (each keeps connecting in the background). */
const MCP_START_WAIT_MS = 10_000;
/** How often the store's health is looked at, to log a change (a full disk, a deleted database file). */
const STORE_WATCH_MS = 10_000;

export interface StartOptions {
  config: Config;
  logger?: Logger;
  /** Environment for provider keys and base URLs (default: process.env). */
  env?: Record<string, string | undefined>;
  /** Overrides for tests and embedding: extra model providers, tools, or a ready store. */
  models?: ModelResolver;
  tools?: ToolRegistry;
  store?: TaskStore;
  /** With `store`: its cluster side (PostgreSQL), for cluster mode in tests and embedding. */
  cluster?: ClusterStore;
  /** Recent frames kept per live task for joining watchers (default 256). */
  liveTailSize?: number;
  /** The longest start-up waits for MCP servers (default MCP_START_WAIT_MS). */
  mcpStartWaitMs?: number;
  /** Aborted (a SIGTERM during start-up): waiting for MCP servers ends at once; the caller stops the server it gets. */
  signal?: AbortSignal;
}

export interface RunningServer {
  url: URL;
  port: number;
  store: TaskStore;
  runner: TaskRunner;
  /** This node's id (cluster mode: the lease owner). */
  node: string;
  /**
   * Graceful stop: no new connections or tasks; running tasks are handed over (they resume on
   * another node or at the next start) or end `interrupted`, per their agent; store closed.
   */
  stop(): Promise<void>;
}

export async function startServer(options: StartOptions): Promise<RunningServer> {
  const { config } = options;
  const logger = options.logger ?? createLogger(config.logLevel, undefined, config.logFormat);
  const env = options.env ?? process.env;
  const metrics = createMetrics({ version: VERSION });
  // Every agent's model first (its provider and key): one that cannot run stops start-up before
  // anything is created or run — the SQLite file, a tools module's code, an MCP server.
  let models = options.models;
  if (!models) {
    const usesProviders = config.agents.some((agent) => !agent.model.startsWith("demo/") && agent.model !== "demo");
    const factories = usesProviders
      ? (await import("../llm/providers/provider-factories.ts")).createProviderFactories({ env: options.env ?? process.env, ...config.providers })
      : {};
    models = createModelResolver(factories);
  }
  for (const definition of config.agents) {
    let model;
    try {
      model = models.resolve(definition.model);
    } catch (error) {
      throw new Error(`agent '${definition.name}': ${(error as Error).message}`);
    }
    // A setting the model will not send (reasoning_effort on a model that does not reason) is said once, here.
    for (const unsent of model.unsentSettings?.(modelSettingsOf(definition)) ?? []) {
      logger.warn(`agent '${definition.name}': ${unsent}`, { agent: definition.name, model: definition.model });
    }
  }
  const bus = createBunBus();
  const feed = createLiveFeed(bus, { tailSize: options.liveTailSize, telemetry: metrics.telemetry });
  // The AI SDK and the MCP SDK are loaded only when the config uses them: they are most of the
  // start-up time of a binary that serves the demo model alone.
  // Everything else that can be checked is checked before anything starts: the agents are resolved
  // (tools, the MCP servers they name) before an MCP server is spawned or dialled.
  let mcp: McpManager | undefined;
  let agents;
  try {
    if (config.mcpServers.length > 0) {
      const { createMcpManager } = await import("../tools/mcp/mcp-manager.ts");
      mcp = createMcpManager({ servers: config.mcpServers, logger }); // nothing connects until start()
    }
    let tools = options.tools ?? builtinTools();
    if (config.toolsModule) {
      // TypeScript tools (src/tools/module): a module that fails to load stops start-up, naming the file.
      const { loadToolsModule } = await import("../tools/module/index.ts");
      const loaded = await loadToolsModule(config.toolsModule, { taken: [...tools.keys(), "http_fetch"] });
      tools = new Map([...tools, ...loaded.map((tool) => [tool.name, tool] as const)]);
      logger.info("tools module loaded", { file: config.toolsModule, tools: loaded.map((tool) => tool.name).join(", ") });
    }
    for (const definition of config.agents) {
      if (!definition.output_schema) continue;
      for (const slow of compileOutputSchema(definition.output_schema).backtracking) {
        logger.warn("output_schema: a pattern RE2 cannot match as ECMAScript does is matched by JavaScript's engine (make sure it cannot take exponential time)", {
          agent: definition.name,
          at: slow.at,
          pattern: slow.pattern.slice(0, 200),
          reason: slow.reason,
        });
      }
    }
    agents = createAgentPool({
      definitions: config.agents,
      defaultAgent: config.defaultAgent,
      models,
      tools,
      mcp,
      mcpServers: config.mcpServers.map((server) => server.name),
    });
  } catch (error) {
    await mcp?.close().catch(() => {});
    throw error;
  }
  // A port in use stops start-up here, before the store is opened (opening migrates it: an older
  // server could not open it again) and before recovery takes the previous run's tasks. Bound and
  // let go at once (port 0: any is free).
  if (config.port !== 0) listen(config.host, config.port, () => Bun.serve({ port: config.port, hostname: config.host, reusePort: false, fetch: () => new Response(null, { status: 503 }) })).stop(true);
  // One server per data dir (SQLite): a second one started by mistake stops here, before it takes
  // the first one's running tasks for leftovers of a crash — also one whose lock it cannot see (a
  // server older than the lock, or a lock file someone deleted): the address file names it.
  const dataDirLock = options.store || config.databaseUrl || config.dataDir === ":memory:" ? undefined : lockDataDir(config.dataDir);
  let opened: OpenedStore;
  try {
    const running = dataDirLock ? await liveServerOf(config.dataDir) : undefined;
    if (running) throw new DataDirInUseError(config.dataDir, `${running.url} answers as agentkit, pid ${running.pid} (${ADDRESS_FILE})`);
    // The last step that can fail: nothing before it changed the data.
    opened = options.store ? { store: options.store, cluster: options.cluster } : await openStore(config, logger);
  } catch (error) {
    dataDirLock?.release();
    await mcp?.close().catch(() => {});
    throw error;
  }
  // SQLite can stop writing while reads go on (a full disk): /health says so, and the runner takes
  // the tasks it cut up again once writes succeed. (A cluster's database has its own ping.)
  const storeHealth = opened.cluster
    ? undefined
    : createStoreHealth(undefined, config.dataDir === ":memory:" ? undefined : databaseFileCheck(join(config.dataDir, "agentkit.sqlite")));
  // Said once, at error level, when it starts (a /health nobody reads would be the only sign).
  let storeWrites = "ok";
  const storeWatch = storeHealth
    ? setInterval(() => {
        const state = storeHealth.state();
        if (state.writes !== storeWrites) {
          if (state.writes !== "ok") logger.error(`store: writes ${state.writes}`, { error: state.error, since: state.since });
          else logger.info("store: writes succeed again");
        }
        storeWrites = state.writes;
      }, STORE_WATCH_MS)
    : undefined;
  storeWatch?.unref();
  // One wrapper: event-log write latency (metrics), and the writes reported to the store's health.
  const store = instrumentStore(opened.store, metrics.telemetry, storeHealth);
  if (mcp) {
    // Never rejects: a server that fails keeps retrying in the background. One that hangs (a
    // command that never answers `initialize`) would hold start-up for its whole timeout: serving
    // begins after MCP_START_WAIT_MS at the latest, and its tools come when it does.
    const waitMs = options.mcpStartWaitMs ?? MCP_START_WAIT_MS;
    let waited: ReturnType<typeof setTimeout> | undefined;
    const stopping = options.signal;
    const started = await Promise.race([
      mcp.start().then(() => true),
      new Promise<false>((resolve) => {
        waited = setTimeout(() => resolve(false), waitMs);
        if (stopping?.aborted) resolve(false);
        stopping?.addEventListener("abort", () => resolve(false), { once: true });
      }),
    ]);
    clearTimeout(waited);
    if (!started) logger.warn(`mcp: servers still starting after ${waitMs} ms; serving now, their tools come once they answer`);
  }
  const prices = config.providers.prices;
  const node = config.nodeId ?? `${hostname().replace(/[^A-Za-z0-9_.:-]/g, "-").slice(0, 40)}-${process.pid}-${crypto.randomUUID().slice(0, 4)}`;
  // OpenTelemetry traces: loaded only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
  const tracing = tracingWanted(env) ? (await import("../telemetry/tracing.ts")).startTracingFromEnv(env, { logger, version: VERSION, node }) : undefined;
  if (tracing) metrics.add(tracing.metrics);
  const telemetry = combineTelemetry(metrics.telemetry, tracing ?? noTelemetry);
  // Cluster mode: tasks run elsewhere are followed from the log for the watchers connected here.
  const local: { runner?: TaskRunner } = {};
  const follower = opened.cluster
    ? createFollower({ store, feed, logger, isLocal: (taskId) => local.runner?.publishes(taskId) ?? false, pollMs: config.pollMs })
    : undefined;
  // Webhooks (src/webhooks): written to the outbox with each task's end or wait, delivered by the worker started below.
  const webhookSecret = config.webhookSecret ? parseWebhookSecret(config.webhookSecret)! : await store.secret("webhooks");
  const webhookDelivery: { current?: WebhookDelivery } = {};
  const webhooksUsed = config.webhookAllowHosts.length > 0 || config.agents.some((agent) => agent.webhook);
  // A task's own webhook_url was checked against the allowlist when the task was made; its webhook
  // is written when it ends whatever the allowlist is by then (a restart without one dropped it:
  // the 201 had promised it). Without an allowlist no new task gets one, so tasks' own webhooks
  // are built only if one can exist: an allowlist, a cluster (other nodes may take them), or such
  // a task left from an earlier run — else every task's end would serialise itself for nothing.
  const perTask = config.webhookAllowHosts.length > 0 || opened.cluster !== undefined || (await store.unfinishedTaskWebhooks());
  const runner = createRunner({
    webhooks:
      webhooksUsed || perTask ? createTaskWebhooks({ agents, perTask, onWritten: () => webhookDelivery.current?.kick() }) : undefined,
    costOf: prices ? (agent, usage) => computeCostUsd(prices, agent.definition.model, usage) ?? null : undefined,
    store,
    feed,
    agents,
    logger,
    maxConcurrentTasks: config.maxConcurrentTasks,
    maxQueuedTasks: config.maxQueuedTasks,
    telemetry,
    cluster:
      opened.cluster && follower
        ? { store: opened.cluster, node, leaseMs: config.leaseMs, pollMs: config.pollMs, worker: config.role !== "api", follower }
        : undefined,
  });
  local.runner = runner;
  metrics.gauge("agentkit_tasks_queued", "Tasks waiting to run (one node: its queue; a cluster: the cluster's queue as last counted)", () => runner.stats().queued);
  metrics.gauge("agentkit_tasks_running", "Tasks running on this node", () => runner.stats().running);
  const interaction = createInteraction({ store, feed, runner, agents, logger, cluster: opened.cluster !== undefined });
  // Waits for people that timed out are decided (or fail) by whichever node looks first.
  const waitSweep = setInterval(() => void interaction.expireWaits(), opened.cluster ? config.pollMs : 1000);
  waitSweep.unref();
  const keys: ApiKey[] = [
    ...(config.apiKey ? [{ name: "admin", key: config.apiKey, admin: true }] : []),
    ...config.apiKeys.map((tenant) => ({ ...tenant, admin: false })),
  ];
  // Share tokens (POST /tasks/:id/share) are signed and verified with this secret: the configured
  // one, else one the store makes once and keeps — the same for every node of a cluster, and across
  // restarts (rotate it by setting AGENTKIT_SHARE_SECRET, which revokes every token made before).
  const shareSecret = config.shareSecret ? new TextEncoder().encode(config.shareSecret) : await store.secret("share-tokens");
  const auth = createAuthenticator(keys, { shareSecret });

  const retention =
    config.eventRetentionHours === undefined ? undefined : startRetention({ store, retentionHours: config.eventRetentionHours, logger });
  const recovered = await runner.recover();
  if (opened.cluster) logger.info("cluster mode", { node, role: config.role, lease_ms: config.leaseMs });
  if (recovered.interrupted + recovered.requeued + recovered.resumed > 0) {
    logger.info("recovered tasks from the previous run", recovered);
  }

  // One count of watchers for WebSocket connections and SSE streams alike.
  const watchers = createWatcherLimits({ perTask: config.maxWatchersPerTask, perKey: config.maxWatchersPerKey });
  const sockets = createTaskWebSockets({
    store,
    feed,
    runner,
    logger,
    heartbeatMs: config.heartbeatMs,
    maxFrameBytes: config.maxFrameBytes,
    watchers,
    slowClientBytes: config.slowClientBytes,
    slowClientGraceMs: config.slowClientGraceMs,
    follow: follower ? (task) => follower.watch(task) : undefined,
    interaction,
    telemetry,
  });
  let server: Bun.Server<Connection>;
  // Every event stream cut off for not reading (SSE, A2A, AG-UI) counts as an `sse` slow close.
  const streams = createEventStreams({ onSlow: () => metrics.telemetry.slowClientClosed("sse") });
  const app = createApp({
    store,
    feed,
    slowClientBytes: config.slowClientBytes,
    slowClientGraceMs: config.slowClientGraceMs,
    streams,
    watchers,
    runner,
    agents,
    auth,
    logger,
    version: VERSION,
    maxBodyBytes: config.maxBodyBytes,
    corsOrigins: config.corsOrigins,
    follow: follower ? (task) => follower.watch(task) : undefined,
    node: { id: node, role: config.role, cluster: opened.cluster !== undefined },
    interaction,
    databaseReachable: opened.cluster ? (timeoutMs) => opened.cluster!.ping(timeoutMs) : undefined,
    storeHealth,
    shareSecret,
    webhooks: { allowlist: createWebhookAllowlist(config.webhookAllowHosts), secret: formatWebhookSecret(webhookSecret) },
    metrics: () => metrics.render(),
    telemetry,
    upgrade: (request, watch, headers) => server.upgrade(request, { data: { ...watch, closed: false, lastSeen: performance.now() }, headers }),
  });
  server = listen(config.host, config.port, () => Bun.serve<Connection>({
    port: config.port,
    hostname: config.host,
    // Bun shares the port with any other process that also asks (SO_REUSEPORT) when `development`
    // is false, unless told not to: a second agentkit started by mistake would split the traffic.
    reusePort: false,
    // A backstop only: the route's own limit (body-limit.ts, which checks Content-Length first)
    // answers with the JSON error; Bun's answer past this one is plain text. It also bounds what a
    // chunked body (no Content-Length) can make body-limit.ts read.
    maxRequestBodySize: Math.max(config.maxBodyBytes * 2, 16 * 1024 * 1024),
    // The web console at / (its scripts and styles at /chunk-*, added by Bun); a worker serves /health only.
    // Production bundling always (no dev server, no HMR, nothing printed), as in the compiled binary.
    development: false,
    routes: config.role === "worker" ? {} : { "/": { GET: consolePage }, "/ui": { GET: () => redirectToConsole() } },
    fetch: config.accessLog ? withAccessLog((request: Request, bunServer: Bun.Server<Connection>) => app.fetch(request, bunServer), logger) : (request, bunServer) => app.fetch(request, bunServer),
    websocket: sockets.handler,
    error(error) {
      logger.error("unhandled server error", { error: String(error) });
      return Response.json({ error: { code: "internal", message: "Internal server error" } }, { status: 500 });
    },
  }));
  // Every node delivers (pending rows of a previous run or another node included): rows are claimed, each by one node.
  webhookDelivery.current = startWebhookDelivery({
    store,
    key: webhookSecret,
    logger,
    timeoutMs: config.webhookTimeoutMs,
    maxAttempts: config.webhookMaxAttempts,
    retryMs: config.webhookRetryMs,
    perDestination: config.webhookPerDestination,
    pollMs: Math.min(1000, config.webhookRetryMs),
  });
  bus.bind(server as Bun.Server<unknown>, (topic) => {
    const taskId = taskOfTopic(topic);
    if (taskId) sockets.closeSlowWatchers(taskId);
  });

  let stopping: Promise<void> | undefined;
  return {
    url: server.url,
    port: server.port ?? config.port,
    store,
    runner,
    node,
    stop() {
      stopping ??= (async () => {
        // Running tasks end first, so watchers see their result frames before the close.
        retention?.stop();
        clearInterval(storeWatch);
        clearInterval(waitSweep);
        await runner.shutdown();
        await webhookDelivery.current?.stop();
        sockets.closeAll(CloseCode.goingAway, "Server shutting down");
        // Event streams (SSE, A2A, AG-UI) still open follow tasks that go on (handed over, or
        // resumed at the next start): end them, so that their clients see a whole response and
        // reconnect, and so that no stream takes the closing of its connection for the client's
        // going away (an AG-UI run would cancel its task). Their last bytes get a moment to go out.
        if (streams.size > 0) {
          streams.closeAll();
          await Promise.race([server.stop(false).catch(() => {}), Bun.sleep(STREAMS_DRAIN_MS)]);
        }
        await server.stop(true);
        await telemetry.close(); // the last spans (traces)
        follower?.close();
        await mcp?.close();
        await store.close();
        dataDirLock?.release();
      })();
      return stopping;
    },
  };
}

function redirectToConsole(): Response {
  return new Response(null, { status: 308, headers: { Location: "/" } });
}

/** Starts listening; a failure is one line naming the address and what is wrong with it. */
function listen<T>(host: string, port: number, start: () => T): T {
  try {
    return start();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const address = `${host.includes(":") ? `[${host}]` : host}:${port}`;
    const why =
      code === "EADDRINUSE"
        ? "another process listens on that port (choose another with --port)"
        : code === "EADDRNOTAVAIL"
          ? "that address is not one of this machine's (--host)"
          : code === "EACCES"
            ? "permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE)"
            : code === "EINVAL"
              ? "not an address this machine can listen on (--host takes an IP address or a name that resolves to one here)"
              : error instanceof Error
                ? error.message
                : String(error);
    throw new Error(`cannot listen on ${address}: ${why}${typeof code === "string" ? ` (${code})` : ""}`);
  }
}
