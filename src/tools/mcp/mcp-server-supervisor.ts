/**
 * One MCP server, kept connected. The supervisor connects (spawns the process or dials the URL),
 * lists the server's tools and runs calls. When the server fails to start, exits, or stops answering,
 * calls fail at once with a ToolError that says so, and it reconnects in the background with
 * exponential backoff. Nothing here rejects unobserved or throws from an event handler: a broken
 * server must never take agentkit down.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { existsSync, readFileSync } from "node:fs";
import { ErrorCode, McpError, type Tool as McpToolDefinition } from "@modelcontextprotocol/sdk/types.js";
import type { jsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/types.js";
import { errorMessage } from "../../errors.ts";
import { raceAbort } from "../../lib/abort.ts";
import type { Logger } from "../../lib/logger.ts";
import { ToolError } from "../tool.ts";
import { mcpResultToObservation, type McpCallResult } from "./mcp-call-result.ts";
import { classifyCallFailure, describeStartFailure } from "./mcp-failure.ts";
import { lazyValidator, type ArgumentsCheck } from "./mcp-input-schema.ts";
import type { McpServerConfig } from "./mcp-server-config.ts";
import { buildToolListing, listAllTools, placeholderTools, toolNamesForLog, type McpListedTool } from "./mcp-tool-listing.ts";
import { createMcpTransport } from "./mcp-transport.ts";

/**
 * - `idle`: not started yet
 * - `connecting`: spawning or dialling, initializing, listing tools (calls wait for the outcome)
 * - `ready`: calls go to the server
 * - `waiting_to_restart`: the last attempt failed or the connection was lost; calls fail at once
 * - `closed`: shut down for good
 */
export type McpServerState = "idle" | "connecting" | "ready" | "waiting_to_restart" | "closed";

/** A snapshot of one server, for logs, health checks and tests. */
export interface McpServerStatus {
  name: string;
  transport: "stdio" | "http";
  state: McpServerState;
  /** Names (as the model sees them) of the tools from the last successful listing. */
  tools: string[];
  /** Successful connections so far: 1 after starting, +1 per restart. */
  connections: number;
  /** Why the server is not ready, when it is not. Never contains its stderr or secrets. */
  lastError?: string;
  /** The process id of a connected stdio server. */
  processId?: number;
  /** When the next reconnect attempt is due (epoch ms), while `waiting_to_restart`. */
  nextAttemptAt?: number;
}

/** Delays between reconnect attempts: doubling from `initialDelayMs` up to `maxDelayMs`. */
export interface RestartBackoff {
  initialDelayMs: number;
  maxDelayMs: number;
}

export interface McpServerSupervisorOptions {
  config: McpServerConfig;
  logger: Logger;
  backoff: RestartBackoff;
  /** Compiles input schemas; shared by every server of a manager. */
  validator: jsonSchemaValidator;
  clientInfo: { name: string; version: string };
  onStatusChange(status: McpServerStatus): void;
}

interface Connection {
  readonly client: Client;
  readonly transport: Transport;
  readonly processId: number | null;
  readonly connectedAt: number;
  healthCheck?: Promise<void>;
}

/** A ping that takes longer than this (or the server's own timeout, if shorter) means "hung". */
const HEALTH_CHECK_TIMEOUT_MS = 5_000;
/** More messages than this from a server in one second is a flood: it is cut off (see #guardFlood). */
export const MAX_MESSAGES_PER_SECOND = 1_000;
const STDERR_TAIL_LINES = 10;

export class McpServerSupervisor {
  readonly name: string;
  readonly #options: McpServerSupervisorOptions;
  readonly #shutdown = new AbortController();
  #state: McpServerState = "idle";
  #connection: Connection | undefined;
  /** By server tool name. Kept while the server is down, so its tools stay listed (and fail clearly). */
  #listing = new Map<string, McpListedTool>();
  #listedOnce = false;
  #attempt: Promise<void> | undefined;
  #restartTimer: ReturnType<typeof setTimeout> | undefined;
  #nextAttemptAt: number | undefined;
  /** Restarts since the server last stayed up for `maxDelayMs`: the backoff exponent. */
  #restartsInRow = 0;
  #connections = 0;
  #lastError: string | undefined;
  /** The last stderr lines of the current process, for the log when it fails. */
  #stderrTail: string[] = [];
  /** Clients being closed (a stdio close waits for the process to exit); `close()` waits for them. */
  readonly #closing = new Set<Promise<void>>();
  #closed: Promise<void> | undefined;

  constructor(options: McpServerSupervisorOptions) {
    this.name = options.config.name;
    this.#options = options;
  }

  /** Starts the first connection attempt; resolves when it has succeeded or failed. Never rejects. */
  start(): Promise<void> {
    if (this.#state === "idle") this.#attempt = this.#connect();
    return this.#attempt ?? Promise.resolve();
  }

  /**
   * The tools to expose: those of the last successful listing or, while the server has never been
   * reached, one placeholder per name of the config's `tools` allowlist (so its calls fail with a
   * clear error instead of "unknown tool").
   */
  listedTools(): McpListedTool[] {
    if (this.#listedOnce) return [...this.#listing.values()];
    return placeholderTools(this.name, this.#options.config.tools);
  }

  /** The argument check of the server's current schema for a tool, if known. */
  argumentsCheck(serverToolName: string): ArgumentsCheck | undefined {
    return this.#listing.get(serverToolName)?.check;
  }

  /**
   * Calls a tool. Resolves with what the model should read; rejects with a ToolError (server down,
   * timeout, `isError` result…) or, when `abortSignal` aborts, with its reason.
   */
  async call(tool: { name: string; serverToolName: string }, input: Record<string, unknown>, abortSignal: AbortSignal, renewedSession = false): Promise<unknown> {
    abortSignal.throwIfAborted();
    // Right after start (or during a restart), wait for the attempt rather than fail at once.
    if (this.#state === "connecting" && this.#attempt) await raceAbort(this.#attempt, abortSignal);
    const connection = this.#connection;
    if (!connection) throw this.#unavailable(tool.name);
    if (!this.#listing.has(tool.serverToolName)) {
      throw new ToolError("unknown_tool", `MCP server '${this.name}' does not offer the tool '${tool.serverToolName}' (any more)`, false);
    }
    // The SDK never removes the abort listener it adds to a request's signal; a signal made for this
    // call keeps it off the task's signal, which lives for the whole task.
    const callSignal = linkedAbortSignal(abortSignal);
    let result: McpCallResult;
    try {
      result = await connection.client.callTool({ name: tool.serverToolName, arguments: input }, undefined, {
        signal: callSignal.signal,
        timeout: this.#options.config.timeoutMs,
      });
    } catch (error) {
      if (abortSignal.aborted) {
        // Cancel reached the server as notifications/cancelled. A server that ignores it may be hung.
        this.#checkHealth(connection);
        throw abortSignal.reason;
      }
      if (!renewedSession && sessionExpired(error, connection)) {
        // The server forgot our session (a restart, an expiry): it did not run the call. The spec
        // says to initialize anew; then the call is sent once more.
        await raceAbort(this.#renewSession(connection), abortSignal);
        return this.call(tool, input, abortSignal, true);
      }
      const failure = classifyCallFailure(error, { serverName: this.name, toolName: tool.name, timeoutMs: this.#options.config.timeoutMs });
      if (failure.connectionInDoubt) this.#checkHealth(connection);
      throw failure.error;
    } finally {
      callSignal.dispose();
    }
    return mcpResultToObservation(result, tool.name);
  }

  status(): McpServerStatus {
    return {
      name: this.name,
      transport: this.#options.config.transport,
      state: this.#state,
      tools: [...this.#listing.values()].map((tool) => tool.name),
      connections: this.#connections,
      ...(this.#lastError === undefined ? {} : { lastError: this.#lastError }),
      ...(this.#connection?.processId == null ? {} : { processId: this.#connection.processId }),
      ...(this.#nextAttemptAt === undefined ? {} : { nextAttemptAt: this.#nextAttemptAt }),
    };
  }

  /** Stops reconnecting, closes the connection (a stdio server's process exits) and waits for it. */
  close(): Promise<void> {
    this.#closed ??= this.#closeOnce();
    return this.#closed;
  }

  async #closeOnce(): Promise<void> {
    this.#shutdown.abort(new Error(`MCP server '${this.name}' is shut down`));
    clearTimeout(this.#restartTimer);
    this.#nextAttemptAt = undefined;
    const connection = this.#connection;
    this.#connection = undefined;
    if (connection) this.#retire(connection.client);
    // An attempt in flight sees the shutdown signal and retires its own client.
    await this.#attempt;
    while (this.#closing.size > 0) await Promise.all(this.#closing);
    this.#setState("closed");
  }

  async #connect(): Promise<void> {
    const { config, logger } = this.#options;
    this.#stderrTail = [];
    this.#setState("connecting");
    const attemptSignal = linkedAbortSignal(this.#shutdown.signal);
    let client: Client | undefined;
    let handle: ReturnType<typeof createMcpTransport> | undefined;
    let spawned: number | null = null;
    try {
      handle = createMcpTransport(config, {
        onStderrLine: (line) => this.#onStderrLine(line),
        onStderrError: (error) => logger.debug("MCP server stderr stream failed", { server: this.name, error: errorMessage(error) }),
        onMessageTooLarge: (kind, limitBytes) =>
          logger.warn("MCP server sent a message over the size limit; it was not read", { server: this.name, kind, limitBytes }),
      });
      // Set once ready; until then a close shows up as the failure of connect or listTools instead.
      let connection: Connection | undefined;
      client = new Client(this.#options.clientInfo, {
        capabilities: {},
        // Output schemas: compiled when their tool is first called, not all at each listing.
        jsonSchemaValidator: lazyValidator(this.#options.validator),
        listChanged: {
          tools: {
            autoRefresh: false,
            onChanged: () => {
              if (connection) void this.#refreshTools(connection);
            },
          },
        },
      });
      /** Why the transport gave up, when it did before the close (the SDK closes a stdio server whose message outgrew its read buffer). */
      let transportFailure: string | undefined;
      client.onerror = (error) => {
        const message = errorMessage(error);
        if (/ReadBuffer exceeded/.test(message)) transportFailure = `it sent a message larger than the MCP SDK's stdio limit (${message}); it was stopped`;
        logger.debug("MCP transport error", { server: this.name, error: message });
      };
      client.onclose = () => {
        const reason = transportFailure ?? (config.transport === "stdio" ? "the server process exited" : "the connection closed");
        if (connection) this.#connectionLost(connection, reason);
      };
      const requestOptions = { timeout: config.timeoutMs, signal: attemptSignal.signal };
      const connecting = client.connect(handle.transport, requestOptions);
      // Spawned by now (the transport starts within connect's first step); the SDK forgets the
      // process when a failed connect closes it, so it is noted here.
      spawned = handle.processId();
      await connecting;
      const tools = await listAllTools(client, requestOptions, config.tools);
      const listing = await this.#buildListing(tools);
      if (!client.transport) throw new McpError(ErrorCode.ConnectionClosed, "Connection closed");
      if (this.#shutdown.signal.aborted) {
        const pid = handle.processId();
        this.#retire(client);
        if (pid !== null) killProcess(pid, this.#options.logger);
        return;
      }
      this.#setListing(listing);
      connection = { client, processId: handle.processId(), connectedAt: Date.now(), transport: handle.transport };
      this.#guardFlood(handle.transport, connection);
      this.#connection = connection;
      this.#connections++;
      this.#lastError = undefined;
      logger.info("MCP server connected", { server: this.name, tools: toolNamesForLog(this.#listing) });
      this.#setState("ready");
    } catch (error) {
      // A process that never became a server (it hung in initialize, or start-up was cut short)
      // has nothing to finish: the SDK's close gives it seconds on unref'd timers, and a server
      // stopping meanwhile left it running on its own (parent PID 1). Its pid is known only while
      // it runs (read before the close forgets it).
      const pid = handle?.processId() ?? spawned;
      if (client) this.#retire(client);
      if (pid !== null && processRuns(pid)) killProcess(pid, this.#options.logger);
      if (this.#shutdown.signal.aborted) return;
      this.#lastError = describeStartFailure(error, config);
      logger.warn("MCP server failed to start", { server: this.name, error: this.#lastError, stderr: this.#stderrTail });
      this.#scheduleRestart();
    } finally {
      attemptSignal.dispose();
    }
  }

  #buildListing(tools: readonly McpToolDefinition[]): Promise<Map<string, McpListedTool>> {
    const { config, validator, logger } = this.#options;
    return buildToolListing(this.name, tools, { allowlist: config.tools, validator, logger });
  }

  #setListing(listing: Map<string, McpListedTool>): void {
    this.#listing = listing;
    this.#listedOnce = true;
  }

  /** The server said its tool list changed: list again (never rejects). */
  async #refreshTools(connection: Connection): Promise<void> {
    try {
      const tools = await listAllTools(connection.client, { timeout: this.#options.config.timeoutMs }, this.#options.config.tools);
      const listing = await this.#buildListing(tools);
      if (connection !== this.#connection) return;
      this.#setListing(listing);
      this.#options.logger.info("MCP server tools changed", { server: this.name, tools: toolNamesForLog(this.#listing) });
      this.#notifyStatus();
    } catch (error) {
      this.#options.logger.warn("MCP tool list refresh failed", { server: this.name, error: errorMessage(error) });
    }
  }

  /**
   * Starts a new session at once (no backoff: the server answers, it just forgot the session) and
   * resolves when that attempt is over. Calls that hit the same expiry share the attempt.
   */
  #renewSession(connection: Connection): Promise<void> {
    if (connection === this.#connection && !this.#shutdown.signal.aborted) {
      this.#connection = undefined;
      this.#options.logger.info("MCP server session expired (HTTP 404); starting a new one", { server: this.name });
      this.#retire(connection.client);
      this.#attempt = this.#connect();
    }
    return this.#attempt ?? Promise.resolve();
  }

  /** Pings the server after a call that got no answer; a failed ping means hung or gone: reconnect. */
  #checkHealth(connection: Connection): void {
    if (connection !== this.#connection || connection.healthCheck) return;
    const timeout = Math.min(this.#options.config.timeoutMs, HEALTH_CHECK_TIMEOUT_MS);
    connection.healthCheck = connection.client.ping({ timeout }).then(
      () => {
        connection.healthCheck = undefined;
      },
      (error: unknown) => {
        if (connection !== this.#connection) return;
        this.#connectionLost(connection, `it failed a health check (ping): ${errorMessage(error)}`);
        // A process that cannot answer a ping would only make the SDK's graceful close wait for it.
        if (connection.processId !== null) killProcess(connection.processId, this.#options.logger);
      },
    );
  }

  /**
   * A server (stdio or HTTP) that sends more than MAX_MESSAGES_PER_SECOND messages in a second is
   * cut off and restarted (with backoff): a stream of notifications kept the event loop reading its pipe, and
   * agentkit answered nothing else (10 s of flood, 10 s of /health unanswered).
   */
  #guardFlood(transport: Transport, connection: Connection): void {
    const deliver = transport.onmessage;
    if (!deliver) return;
    let windowStart = performance.now();
    let count = 0;
    transport.onmessage = (message, extra) => {
      if (connection !== this.#connection) return;
      const now = performance.now();
      if (now - windowStart >= 1000) {
        windowStart = now;
        count = 0;
      }
      if (++count > MAX_MESSAGES_PER_SECOND) {
        const cut = connection.processId !== null ? "it was stopped" : "it was disconnected";
        this.#connectionLost(connection, `it sent more than ${MAX_MESSAGES_PER_SECOND} messages in a second; ${cut}`);
        if (connection.processId !== null) killProcess(connection.processId, this.#options.logger);
        return;
      }
      deliver.call(transport, message, extra);
    };
  }

  #connectionLost(connection: Connection, reason: string): void {
    if (connection !== this.#connection) return;
    this.#connection = undefined;
    this.#lastError = reason;
    if (Date.now() - connection.connectedAt >= this.#options.backoff.maxDelayMs) this.#restartsInRow = 0;
    this.#options.logger.warn("MCP server connection lost", { server: this.name, reason, stderr: this.#stderrTail });
    this.#retire(connection.client);
    this.#scheduleRestart();
  }

  #scheduleRestart(): void {
    if (this.#shutdown.signal.aborted) return;
    const { initialDelayMs, maxDelayMs } = this.#options.backoff;
    const base = Math.min(maxDelayMs, initialDelayMs * 2 ** this.#restartsInRow);
    // Jitter, so many agentkit nodes do not hit a recovering server at the same instant.
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.#restartsInRow++;
    this.#nextAttemptAt = Date.now() + delay;
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      this.#nextAttemptAt = undefined;
      this.#attempt = this.#connect();
    }, delay);
    // A pending restart alone must not keep a finishing process (e.g. a CLI run) alive.
    this.#restartTimer.unref();
    this.#options.logger.info("MCP server restart scheduled", { server: this.name, inMs: delay });
    this.#setState("waiting_to_restart");
  }

  #unavailable(toolName: string): ToolError {
    if (this.#shutdown.signal.aborted) {
      return new ToolError("execution_failed", `Tool '${toolName}' is unavailable: MCP server '${this.name}' is shut down`, false);
    }
    const reason = this.#lastError ?? "it is not connected";
    const next = this.#nextAttemptAt === undefined ? "" : ` Next reconnect attempt in about ${Math.max(1, Math.ceil((this.#nextAttemptAt - Date.now()) / 1000))} s.`;
    return new ToolError("execution_failed", `Tool '${toolName}' is unavailable: MCP server '${this.name}' is down (${reason}).${next}`, true);
  }

  /** Closes a client in the background; `close()` waits for every one of them. */
  #retire(client: Client): void {
    const closing = client.close().catch((error: unknown) => {
      this.#options.logger.debug("Closing an MCP connection failed", { server: this.name, error: errorMessage(error) });
    });
    this.#closing.add(closing);
    void closing.finally(() => this.#closing.delete(closing));
  }

  #onStderrLine(line: string): void {
    this.#stderrTail.push(line);
    if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift();
    this.#options.logger.debug("MCP server stderr", { server: this.name, line });
  }

  #setState(state: McpServerState): void {
    this.#state = state;
    this.#notifyStatus();
  }

  #notifyStatus(): void {
    try {
      this.#options.onStatusChange(this.status());
    } catch (error) {
      // A listener's bug must not break reconnecting; it is logged, not swallowed.
      this.#options.logger.error("MCP status listener threw", { server: this.name, error: errorMessage(error) });
    }
  }
}

function killProcess(processId: number, logger: Logger): void {
  try {
    process.kill(processId, "SIGKILL");
  } catch (error) {
    // Usually ESRCH: it exited on its own in the meantime, which is what we wanted.
    logger.debug("Killing a hung MCP server process failed", { processId, error: errorMessage(error) });
  }
}

/** A Streamable HTTP request answered 404 while it carried a session id: the session is gone (MCP spec, "Session Management"). */
function sessionExpired(error: unknown, connection: Connection): boolean {
  return error instanceof StreamableHTTPError && error.code === 404 && connection.transport instanceof StreamableHTTPClientTransport && connection.transport.sessionId !== undefined;
}

/** An AbortSignal that follows `parent`, and a `dispose` that unhooks it from `parent` again. */
function linkedAbortSignal(parent: AbortSignal): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const forward = () => controller.abort(parent.reason);
  if (parent.aborted) forward();
  else parent.addEventListener("abort", forward, { once: true });
  return { signal: controller.signal, dispose: () => parent.removeEventListener("abort", forward) };
}

/**
 * Whether `pid` is still a running child of this process (not a zombie, and not some other process
 * that got the number since). Without /proc (not Linux): whether anything answers signal 0.
 */
function processRuns(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT" && existsSync("/proc/self")) return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }
  // "pid (comm) state ppid …": comm may hold spaces and parentheses; the fields follow its last ')'.
  const [state, parent] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return state !== "Z" && Number(parent) === process.pid;
}
