#!/usr/bin/env bun
/**
 * The `agentkit` executable: parse the command line, then serve until a signal, or run a client command (src/cli/commands.ts).
 * Each command loads its own modules (`import()`), so `--version`, `--help`, `healthcheck`, `compact` and
 * the client commands do not evaluate the server, and `serve` does not evaluate the client.
 */
import { COMMAND_USAGE, parseCommand, UsageError, USAGE } from "./cli/args.ts";
import type { ConfigInput } from "./config/config.ts";
import { VERSION } from "./version.ts";
import { readFileSync } from "node:fs";

async function main(argv: string[]): Promise<number> {
  let command;
  try {
    command = parseCommand(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`agentkit: ${error.message}\nRun 'agentkit ${error.command ? `${error.command} ` : ""}--help' for usage.\n`);
      return 2;
    }
    throw error;
  }
  switch (command.kind) {
    case "help":
      process.stdout.write(command.command ? COMMAND_USAGE[command.command] : USAGE);
      return 0;
    case "version":
      process.stdout.write(`agentkit ${VERSION}\n`);
      return 0;
    case "healthcheck": {
      // One line, saying what was tried: Docker keeps it in `docker inspect`.
      const { healthcheck } = await import("./cli/healthcheck.ts");
      const { healthy, line } = await healthcheck({ url: command.url, flags: command.flags });
      (healthy ? process.stdout : process.stderr).write(`agentkit healthcheck: ${line}\n`);
      return healthy ? 0 : 1;
    }
    case "serve":
      return serve(command.flags);
    case "compact":
      return (await import("./cli/compact.ts")).runCompact({ flags: command.flags });
    case "run":
    case "watch":
    case "tasks":
    case "cancel":
    case "agents":
      return (await import("./cli/commands.ts")).runClientCommand(command);
  }
}

async function serve(flags: Partial<ConfigInput>): Promise<number> {
  const [{ ConfigError, loadConfig }, { createLogger }, { startServer }, { removeAddressFile, writeAddressFile }] = await Promise.all([
    import("./config/config.ts"),
    import("./lib/logger.ts"),
    import("./server/serve.ts"),
    import("./server/address-file.ts"),
  ]);
  let config;
  try {
    config = loadConfig({ flags });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`agentkit: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const logger = createLogger(config.logLevel, undefined, config.logFormat);
  // Code agentkit runs but does not own (a tools module, an MCP SDK callback) may leave a promise
  // rejected that nobody awaits, or throw from a timer: by default that ends the process — every
  // task on the node with it. Logged, and the server goes on (the call it came from, if any,
  // already ended as its own tool error or timeout).
  process.on("unhandledRejection", (reason) => {
    logger.error("a promise was rejected and nothing handled it (a tool's stray promise?); the server goes on", { error: describeThrown(reason) });
  });
  process.on("uncaughtException", (error) => {
    logger.error("an exception was thrown outside any request or task (a tool's timer?); the server goes on", { error: describeThrown(error) });
  });
  // A signal during start-up (up to ~10 s while MCP servers start) stops the server once it is
  // made — before, it killed the process outright (exit 143) and left MCP server processes behind.
  const { promise: stopped, resolve } = Promise.withResolvers<number>();
  const starting = new AbortController();
  let stop: (() => void) | undefined;
  const onSignal = (signal: string) => {
    logger.info(`${signal}: shutting down`);
    if (stop) stop();
    else starting.abort();
  };
  process.once("SIGINT", () => onSignal("SIGINT"));
  process.once("SIGTERM", () => onSignal("SIGTERM"));
  let server;
  try {
    server = await startServer({ config, logger, signal: starting.signal });
  } catch (error) {
    // Port in use, unreadable data dir, an agent naming an unknown tool or provider: one clear line.
    process.stderr.write(`agentkit: cannot start: ${error instanceof Error ? error.message : String(error)}\n`);
    return 2;
  }
  if (!config.apiKey && config.apiKeys.length === 0) {
    logger.warn("no AGENTKIT_API_KEY set: the API and WebSocket are open to anyone who can reach this port");
  }
  for (const agent of config.agents) {
    if (agent.model.startsWith("demo")) {
      logger.info(`agent '${agent.name}' uses the built-in demo model (no LLM provider configured)`);
    }
  }

  // Each watcher and each connection holds a file descriptor. Bun raises the soft limit to the hard
  // one; at the limit, Bun 1.4.4's accept loop retries without pause (a core spent, /health not
  // answered) until connections close: say so at start-up when the limit is low.
  const openFiles = openFileLimit();
  if (openFiles !== undefined && openFiles < LOW_OPEN_FILES) {
    logger.warn(`the open-file limit is ${openFiles}: each connection and watcher holds one, and at the limit the server spins a core until some close; raise it (ulimit -n, docker --ulimit nofile=65536, systemd LimitNOFILE=)`, {
      limit: openFiles,
    });
  }

  // Where `agentkit healthcheck` finds this server, whatever port and host it was given.
  let addressFile = false;
  try {
    writeAddressFile(config.dataDir, {
      url: server.url.href.replace(/\/$/, ""),
      host: config.host,
      port: server.port,
      pid: process.pid,
      store: config.databaseUrl ? "postgres" : "sqlite",
    });
    addressFile = true;
  } catch (error) {
    logger.warn("cannot write the address file for 'agentkit healthcheck'", { error: String(error) });
  }

  const running = server;
  stop = () => {
    running.stop().then(
      () => {
        if (addressFile) removeAddressFile(config.dataDir);
        resolve(0);
      },
      (error) => {
        logger.error("shutdown failed", { error: String(error) });
        resolve(1);
      },
    );
  };
  if (starting.signal.aborted) {
    stop();
    return stopped;
  }

  // Last: "listening" is the line that says the server is ready — a SIGTERM sent as soon as it is
  // read stops it cleanly (the handlers are in place: before them, the signal killed it outright).
  logger.info(`agentkit ${VERSION} listening on ${server.url.href.replace(/\/$/, "")}`, {
    data_dir: config.dataDir,
    ...(config.configPath ? { config: config.configPath } : {}),
  });
  return stopped;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`agentkit: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);

/** What was thrown, in one line with where (a stack's first frame), for the log. */
function describeThrown(thrown: unknown): string {
  if (!(thrown instanceof Error)) return String(thrown);
  const where = thrown.stack?.split("\n").find((line) => line.trim().startsWith("at "))?.trim();
  return `${thrown.name}: ${thrown.message}${where ? ` (${where})` : ""}`;
}

/** Below this many open files, a start-up warning (see `openFileLimit`). */
const LOW_OPEN_FILES = 4096;

/** The process's soft open-file limit, from /proc (Linux); undefined elsewhere or unlimited. */
function openFileLimit(): number | undefined {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((entry) => entry.startsWith("Max open files"));
    const soft = line?.split(/\s{2,}/)[1];
    return soft && /^\d+$/.test(soft) ? Number(soft) : undefined;
  } catch {
    return undefined;
  }
}
