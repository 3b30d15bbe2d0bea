/** Starts a real agentkit server on 127.0.0.1, port 0, with a temp data dir and injectable parts. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentDefinition } from "../../src/agents/agent.ts";
import { loadConfig, type ConfigInput } from "../../src/config/config.ts";
import { silentLogger, type Logger } from "../../src/lib/logger.ts";
import type { ChatModel } from "../../src/llm/model.ts";
import { createModelResolver } from "../../src/llm/registry.ts";
import { startServer, type RunningServer } from "../../src/server/serve.ts";
import { builtinTools } from "../../src/tools/registry.ts";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import type { TaskStore } from "../../src/store/store.ts";
import type { Tool } from "../../src/tools/tool.ts";
import { connect } from "./ws-client.ts";

export interface TestServerOptions {
  /** Models by name, used as `test/<name>` in agent definitions. */
  models?: Record<string, ChatModel>;
  tools?: Tool[];
  agents?: Partial<AgentDefinition>[];
  config?: Partial<ConfigInput>;
  dataDir?: string;
  /** Wraps the SQLite store (e.g. to add latency like a networked database). */
  wrapStore?: (store: TaskStore) => TaskStore;
  liveTailSize?: number;
  mcpStartWaitMs?: number;
  /** The server's logger (default: silent). */
  logger?: Logger;
}

export interface TestServer extends RunningServer {
  baseUrl: string;
  dataDir: string;
  http(path: string, init?: RequestInit & { json?: unknown }): Promise<Response>;
  createTask(body: Record<string, unknown>, headers?: Record<string, string>): Promise<{ id: string; status: string }>;
  watch(taskId: string, query?: string): ReturnType<typeof connect>;
  /** The task's stored log over REST (every page: a page stops at ~1 MiB of frames), each frame as JSON text. */
  storedLog(taskId: string): Promise<string[]>;
  /** Stops the server; removes the data dir unless `keepData`. */
  close(options?: { keepData?: boolean }): Promise<void>;
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "agentkit-test-"));
}

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dataDir = options.dataDir ?? tempDir();
  const tools = builtinTools() as Map<string, Tool>;
  const allTools = new Map(tools);
  for (const tool of options.tools ?? []) allTools.set(tool.name, tool);
  const models = options.models ?? {};
  const resolver = createModelResolver({
    test: (name) => {
      const model = models[name];
      if (!model) throw new Error(`no test model '${name}'`);
      return model;
    },
  });
  const agents = (options.agents ?? [{}]).map((agent, index) =>
    AgentDefinition.parse({ name: index === 0 ? "default" : `agent${index}`, ...agent }),
  );
  const config = loadConfig({
    env: {},
    readFile: false,
    flags: { port: 0, host: "127.0.0.1", dataDir, logLevel: "silent", ...options.config, agents },
  });
  const sqlite = createSqliteStore({ dataDir });
  const store = options.wrapStore ? options.wrapStore(sqlite) : sqlite;
  const server = await startServer({
    config,
    logger: options.logger ?? silentLogger,
    // Scripted models when given; otherwise the real provider wiring, with an empty environment.
    models: options.models ? resolver : undefined,
    env: {},
    tools: allTools,
    store,
    liveTailSize: options.liveTailSize,
    mcpStartWaitMs: options.mcpStartWaitMs,
  });
  const baseUrl = `http://127.0.0.1:${server.port}`;
  const wsBase = `ws://127.0.0.1:${server.port}`;

  const http: TestServer["http"] = (path, init = {}) => {
    const { json, ...rest } = init;
    const headers = new Headers(rest.headers);
    if (json !== undefined) headers.set("content-type", "application/json");
    return fetch(baseUrl + path, { ...rest, headers, body: json !== undefined ? JSON.stringify(json) : rest.body });
  };

  return {
    ...server,
    baseUrl,
    dataDir,
    http,
    async createTask(body, headers) {
      const response = await http("/tasks", { method: "POST", json: body, headers });
      if (response.status !== 201) throw new Error(`POST /tasks → ${response.status}: ${await response.text()}`);
      return (await response.json()) as { id: string; status: string };
    },
    watch(taskId, query = "") {
      return connect(`${wsBase}/ws/tasks/${taskId}${query ? `?${query}` : ""}`);
    },
    async storedLog(taskId) {
      const frames: string[] = [];
      for (let after = 0; ; ) {
        const response = await http(`/tasks/${taskId}/events?after=${after}&limit=1000`);
        if (response.status !== 200) throw new Error(`GET /tasks/${taskId}/events → ${response.status}: ${await response.text()}`);
        const page = (await response.json()) as { last_seq: number; events: { seq: number }[] };
        frames.push(...page.events.map((event) => JSON.stringify(event)));
        if (page.events.length === 0 || page.events.at(-1)!.seq >= page.last_seq) return frames;
        after = page.events.at(-1)!.seq;
      }
    },
    async close(closeOptions = {}) {
      await server.stop();
      if (!closeOptions.keepData && !options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
