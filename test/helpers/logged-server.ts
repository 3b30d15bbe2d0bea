/**
 * A real agentkit server (like startTestServer) whose log lines are captured, to assert what the
 * server logs and at which level.
 */
import { rmSync } from "node:fs";
import { AgentDefinition } from "../../src/agents/agent.ts";
import { loadConfig, type ConfigInput } from "../../src/config/config.ts";
import { createLogger, type LogLevel } from "../../src/lib/logger.ts";
import { startServer, type RunningServer } from "../../src/server/serve.ts";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import type { TaskStore } from "../../src/store/store.ts";
import { tempDir } from "./server.ts";

export interface LogLine {
  level: Exclude<LogLevel, "silent">;
  line: string;
}

export interface LoggedServer extends RunningServer {
  baseUrl: string;
  lines: LogLine[];
  close(): Promise<void>;
}

export async function startLoggedServer(options: { config?: Partial<ConfigInput>; wrapStore?: (store: TaskStore) => TaskStore } = {}): Promise<LoggedServer> {
  const dataDir = tempDir();
  const lines: LogLine[] = [];
  // createLogger writes "<timestamp> <level padded to 5> <message>…": the level is the second word.
  const logger = createLogger("debug", (line) => {
    lines.push({ level: line.split(/\s+/)[1] as LogLine["level"], line });
  });
  const config = loadConfig({
    env: {},
    readFile: false,
    flags: { port: 0, host: "127.0.0.1", dataDir, logLevel: "debug", agents: [AgentDefinition.parse({ name: "default" })], ...options.config },
  });
  const store = options.wrapStore ? options.wrapStore(createSqliteStore({ dataDir })) : undefined;
  const server = await startServer({ config, logger, env: {}, store });
  return {
    ...server,
    baseUrl: `http://127.0.0.1:${server.port}`,
    lines,
    async close() {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
