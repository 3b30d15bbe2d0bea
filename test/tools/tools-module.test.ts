/**
 * Tools written in TypeScript (`tools_module`, `agentkit/tools`' defineTool): loaded at start-up by
 * `bun src/main.ts` and by the compiled binary, from a temp dir outside the project (no
 * node_modules there). The README's example module is used as written; a task calls a tool through
 * the demo model ("use tool <name> with <json>"); cancel and the tool timeout reach the tool's
 * signal (the tool writes a file when it sees the abort); every way a module can fail stops
 * start-up with exit code 2 and one line naming the file.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { executeToolCall } from "../../src/engine/tool-execution.ts";
import { defineTool, isDefinedTool, z } from "../../src/tools/define.ts";
import { loadToolsModule, ToolsModuleError } from "../../src/tools/module/index.ts";
import { builtinTools } from "../../src/tools/registry.ts";
import { buildBinary, launchBinary, type BinaryProcess } from "../helpers/binary.ts";
import { until, within } from "../helpers/deferred.ts";
import { tempDir } from "../helpers/server.ts";

const root = join(import.meta.dir, "..", "..");
const readme = readFileSync(join(root, "README.md"), "utf8");
const blocks = [...readme.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((match) => ({ lang: match[1]!, text: match[2]! }));
function readmeBlock(lang: string, pick: (text: string) => boolean): string {
  const found = blocks.filter((block) => block.lang === lang && pick(block.text));
  if (found.length !== 1) throw new Error(`expected one \`\`\`${lang} block in README.md, found ${found.length}`);
  return found[0]!.text;
}
const README_MODULE = readmeBlock("ts", (text) => text.includes('from "agentkit/tools"'));
const README_CONFIG = readmeBlock("json", (text) => text.includes('"tools_module"'));

/** Tools for the abort tests: they wait on their signal, and record what they saw in files. */
const TEST_MODULE = `
import { defineTool } from "agentkit/tools";
import { z } from "zod";
import { renameSync, writeFileSync } from "node:fs";
import { suffix } from "./lib/suffix.ts";

// Written whole or not at all: the test polls for the file and reads it at once.
function record(path: string, value: unknown): void {
  writeFileSync(path + ".tmp", JSON.stringify(value));
  renameSync(path + ".tmp", path);
}

// The README's tools, re-exported as this module's default export.
export { default } from "./readme-tools.ts";

export const waitForAbort = defineTool({
  name: "wait_for_abort",
  description: "Waits until its signal aborts, and records that in <marker>.aborted",
  input: z.object({ marker: z.string() }),
  execute({ marker }, { signal, taskId, timeoutMs }) {
    record(marker + suffix("started"), { taskId, timeoutMs });
    return new Promise((_, reject) => {
      signal.addEventListener("abort", () => {
        const reason = signal.reason;
        record(marker + suffix("aborted"), { taskId, reason: reason?.name ?? String(reason) });
        reject(reason);
      }, { once: true });
    });
  },
});

// A careless tool: a promise it rejects and never awaits, and a timer that throws after it returned.
export const careless = defineTool({
  name: "careless",
  description: "Returns, leaving a stray rejection and a late throw behind",
  input: z.object({}),
  execute() {
    void Promise.reject(new Error("stray rejection from careless"));
    setTimeout(() => {
      throw new Error("late throw from careless");
    }, 50);
    return "done";
  },
});

export const NOT_A_TOOL = 42;
export function helper() { return "ignored"; }
`;

const CONFIG = {
  tools_module: "./tools.ts",
  agents: [
    { name: "toolsmith", model: "demo", tools: ["word_count", "order_status", "wait_for_abort", "calculator"] },
    { name: "hasty", model: "demo", tools: ["wait_for_abort"], tool_timeout_ms: 300 },
    { name: "careless_agent", model: "demo", tools: ["careless"] },
  ],
};

const dirs: string[] = [];
function workDir(): string {
  const dir = tempDir();
  dirs.push(dir);
  return dir;
}
let binary: string;
beforeAll(() => {
  binary = buildBinary(workDir());
}, 120_000);
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const ENV = { AGENTKIT_ACCESS_LOG: "0" };
const modes: { name: string; command: () => string[] }[] = [
  { name: "bun src/main.ts", command: () => [process.execPath, join(root, "src/main.ts")] },
  { name: "the compiled binary", command: () => [binary] },
];

interface TaskJson {
  id: string;
  status: string;
  output: string | null;
}

async function createTask(base: string, input: string, agent: string): Promise<TaskJson> {
  const response = await fetch(`${base}/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input, agent }) });
  expect(response.status).toBe(201);
  return (await response.json()) as TaskJson;
}

async function getTask(base: string, id: string): Promise<TaskJson> {
  const response = await fetch(`${base}/tasks/${id}`);
  expect(response.status).toBe(200);
  return (await response.json()) as TaskJson;
}

async function finished(base: string, id: string): Promise<TaskJson> {
  let task: TaskJson | undefined;
  await until(async () => {
    task = await getTask(base, id);
    return !["queued", "running", "waiting"].includes(task.status);
  }, `task ${id} to end`, 15_000);
  return task!;
}

function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
}

/** Writes a project (config + modules) into a fresh temp dir outside the repository. */
function project(files: Record<string, string>): string {
  const dir = workDir();
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

describe.each(modes)("with $name", ({ command }) => {
  let server: BinaryProcess;
  let dir: string;

  beforeAll(async () => {
    dir = project({
      "agentkit.json": JSON.stringify(CONFIG),
      "tools.ts": TEST_MODULE,
      "readme-tools.ts": README_MODULE,
      "lib/suffix.ts": `export const suffix = (name: string): string => "." + name;\n`,
    });
    const [program, ...args] = command();
    server = await launchBinary(program!, [...args, "serve", "--config", join(dir, "agentkit.json"), "--data-dir", join(dir, "data")], ENV, { cwd: dir });
  }, 30_000);
  afterAll(async () => {
    server?.child.kill("SIGTERM");
    await server?.exited;
  });

  test("start-up says which tools the module gave; agents list them like built-ins", async () => {
    const [loaded] = server.lines("tools module loaded");
    expect(loaded).toContain(join(dir, "tools.ts"));
    expect(loaded).toContain("word_count, order_status, wait_for_abort");
    const response = await fetch(`${server.base}/agents`);
    const { agents } = (await response.json()) as { agents: { name: string; tools: string[] }[] };
    expect(agents.find((agent) => agent.name === "toolsmith")?.tools).toEqual(["word_count", "order_status", "wait_for_abort", "calculator"]);
  });

  test("a task calls the README's word_count tool and its result comes back", async () => {
    const task = await createTask(server.base, 'use tool word_count with {"text": "one two three"}', "toolsmith");
    const done = await finished(server.base, task.id);
    expect(done.status).toBe("completed");
    expect(done.output).toBe('The word_count tool returned: {"words":3,"characters":13}');
    // The call and its result are steps like any built-in tool's.
    type Step = { type: string; data: { event_type: string; data: { name?: string; result?: unknown } } };
    const { events } = (await (await fetch(`${server.base}/tasks/${task.id}/events`)).json()) as { events: Step[] };
    const steps = events.filter((event) => event.type === "step").map((event) => event.data);
    expect(steps.find((step) => step.event_type === "tool_call")?.data.name).toBe("word_count");
    expect(steps.find((step) => step.event_type === "tool_result")?.data).toMatchObject({ name: "word_count", result: { words: 3, characters: 13 } });
  });

  test("a tool's stray rejection and late throw are logged as errors; the server goes on (by default either ended the process)", async () => {
    const task = await createTask(server.base, "use tool careless with {}", "careless_agent");
    expect((await finished(server.base, task.id)).output).toBe("The careless tool returned: done");
    await until(() => server.lines("the server goes on").length >= 2, "both to be logged", 10_000);
    expect(server.lines("the server goes on").join("\n")).toContain("stray rejection from careless");
    expect(server.lines("the server goes on").join("\n")).toContain("late throw from careless");
    expect((await fetch(`${server.base}/health`)).status).toBe(200);
    expect(server.child.exitCode).toBeNull();
  });

  test("arguments that do not match the input schema are a tool error the model reads", async () => {
    const task = await createTask(server.base, 'use tool word_count with {"words": 3}', "toolsmith");
    const done = await finished(server.base, task.id);
    expect(done.status).toBe("completed");
    expect(done.output).toStartWith("The word_count tool failed: Error (invalid_arguments)");
  });

  test("cancel reaches the tool: its signal aborts, with the task's id, and the task stays cancelled", async () => {
    const marker = join(dir, `cancel-${crypto.randomUUID()}`);
    const task = await createTask(server.base, `use tool wait_for_abort with ${JSON.stringify({ marker })}`, "toolsmith");
    await until(() => existsSync(`${marker}.started`), "the tool to start", 15_000);
    expect(readJson(`${marker}.started`)).toEqual({ taskId: task.id, timeoutMs: 30_000 });
    expect(existsSync(`${marker}.aborted`)).toBe(false);
    const cancel = await fetch(`${server.base}/tasks/${task.id}/cancel`, { method: "POST" });
    expect(cancel.status).toBe(200);
    await until(() => existsSync(`${marker}.aborted`), "the tool to see the abort", 15_000);
    expect(readJson(`${marker}.aborted`).taskId).toBe(task.id);
    expect((await finished(server.base, task.id)).status).toBe("cancelled");
    expect((await getTask(server.base, task.id)).status).toBe("cancelled");
  });

  test("the agent's tool_timeout_ms aborts the tool's signal and the model reads a timeout error", async () => {
    const marker = join(dir, `timeout-${crypto.randomUUID()}`);
    const task = await createTask(server.base, `use tool wait_for_abort with ${JSON.stringify({ marker })}`, "hasty");
    const done = await finished(server.base, task.id);
    expect(done.status).toBe("completed");
    expect(done.output).toContain("Error (timeout): Tool 'wait_for_abort' did not finish within 300 ms");
    expect(readJson(`${marker}.started`)).toEqual({ taskId: task.id, timeoutMs: 300 });
    expect(readJson(`${marker}.aborted`)).toEqual({ taskId: task.id, reason: "TimeoutError" });
  });

  describe("a module that cannot be used stops start-up: exit code 2, one line naming the file", () => {
    const tool = (name: string, input = "z.object({})") =>
      `defineTool({ name: ${JSON.stringify(name)}, description: "d", input: ${input}, execute: async () => "ok" })`;
    const cases: { name: string; module?: string; expected: string }[] = [
      { name: "missing", expected: "not found" },
      { name: "syntax error", module: "import { defineTool } from 'agentkit/tools';\nexport const broken = defineTool({ name: 'x', ;\n", expected: "cannot be compiled (line 2" },
      { name: "throws while loading", module: 'throw new Error("no database at start-up");\n', expected: "threw while loading: no database at start-up" },
      { name: "cannot resolve an import", module: 'import { chalk } from "not-installed-anywhere";\nexport default [chalk];\n', expected: "cannot be loaded: Cannot find package 'not-installed-anywhere'" },
      { name: "no tools", module: "export const answer = 42;\nexport function helper() {}\n", expected: "exports no tools" },
      { name: "an empty list", module: "export default [];\n", expected: "exports no tools" },
      { name: "a plain object, not made with defineTool", module: 'export const tools = [{ name: "x", description: "d", execute: async () => 1 }];\n', expected: "export 'tools'[0] is not a tool made with defineTool" },
      { name: "the name of a built-in", module: `import { defineTool, z } from "agentkit/tools";\nexport default ${tool("calculator")};\n`, expected: "tool 'calculator' has the name of a built-in tool" },
      { name: "http_fetch's name", module: `import { defineTool, z } from "agentkit/tools";\nexport default [${tool("http_fetch")}];\n`, expected: "tool 'http_fetch' has the name of a built-in tool" },
      { name: "an MCP-style name", module: `import { defineTool, z } from "agentkit/tools";\nexport default [${tool("files__read")}];\n`, expected: "defineTool 'files__read': name must not contain '__'" },
      { name: "two tools, one name", module: `import { defineTool, z } from "agentkit/tools";\nexport const a = ${tool("same")};\nexport const b = ${tool("same")};\n`, expected: "two tools are named 'same'" },
      { name: "input not an object schema", module: `import { defineTool, z } from "agentkit/tools";\nexport default [${tool("bad", "z.string()")}];\n`, expected: "defineTool 'bad': input must be an object schema" },
      { name: "input with no JSON Schema", module: `import { defineTool, z } from "agentkit/tools";\nexport default [${tool("when", "z.object({ at: z.date() })")}];\n`, expected: "defineTool 'when': input cannot be described as JSON Schema" },
      { name: "input not a zod schema", module: `import { defineTool } from "agentkit/tools";\nexport default [${tool("raw", '{ type: "object" }')}];\n`, expected: "defineTool 'raw': input must be a zod schema" },
      // What zod 3 makes (a module's own node_modules with zod 3, run from source): _def and safeParse, no _zod.
      { name: "input a zod 3 schema", module: `import { defineTool } from "agentkit/tools";\nexport default [${tool("old", '{ _def: { typeName: "ZodObject" }, safeParse() { return { success: true }; } }')}];\n`, expected: "defineTool 'old': input is a zod 3 schema" },
    ];
    for (const failure of cases) {
      test(failure.name, () => {
        const dir = project({
          "agentkit.json": JSON.stringify({ tools_module: "./tools.ts", agents: [{ name: "a", model: "demo" }] }),
          ...(failure.module === undefined ? {} : { "tools.ts": failure.module }),
        });
        const [program, ...args] = command();
        const result = Bun.spawnSync([program!, ...args, "serve", "--config", join(dir, "agentkit.json"), "--data-dir", join(dir, "data"), "--port", "0"], { env: ENV, cwd: dir, stdout: "pipe", stderr: "pipe" });
        const lines = result.stderr.toString().trim().split("\n");
        expect(lines).toEqual([expect.stringContaining(failure.expected)]);
        expect(lines[0]).toStartWith(`agentkit: cannot start: tools module ${join(dir, "tools.ts")}: `);
        expect(result.exitCode).toBe(2);
      });
    }

    test("AGENTKIT_TOOLS_MODULE, relative to the working directory, is named the same way", () => {
      const dir = project({ "mine/tools.ts": "export const nothing = null;\n" });
      const [program, ...args] = command();
      const result = Bun.spawnSync([program!, ...args, "serve", "--data-dir", join(dir, "data"), "--port", "0"], {
        env: { ...ENV, AGENTKIT_TOOLS_MODULE: "mine/tools.ts" },
        cwd: dir,
        stdout: "pipe",
        stderr: "pipe",
      });
      expect(result.stderr.toString().trim().split("\n")).toEqual([`agentkit: cannot start: tools module ${join(dir, "mine/tools.ts")}: ${noToolsDetail}`]);
      expect(result.exitCode).toBe(2);
    });
  });
});

const noToolsDetail =
  'exports no tools: export tools made with defineTool (from "agentkit/tools"): `export default [myTool]`, `export const tools = [myTool]`, or `export const myTool = defineTool({...})`';

describe("the module's exports (loaded in this process)", () => {
  /** A project whose node_modules is the repository's: `zod` resolves as usual (nothing provided). */
  function linkedProject(files: Record<string, string>): string {
    const dir = project(files);
    symlinkSync(join(root, "node_modules"), join(dir, "node_modules"));
    return dir;
  }

  test("default, `tools` and named exports are collected, each tool once; other exports are ignored", async () => {
    const dir = linkedProject({
      "tools.ts": `
        import { defineTool, z } from "agentkit/tools";
        const make = (name: string) => defineTool({ name, description: name, input: z.object({}), execute: async () => name });
        export const one = make("one");
        export const two = make("two");
        export const three = make("three");
        export const tools = [two, three];
        export default one;
        export const limit = 3;
      `,
    });
    const tools = await loadToolsModule(join(dir, "tools.ts"));
    expect(tools.map((tool) => tool.name).sort()).toEqual(["one", "three", "two"]);
    expect(tools.every(isDefinedTool)).toBe(true);
  });

  test("a relative path is resolved against cwd; the error is a ToolsModuleError naming the file", async () => {
    const dir = linkedProject({ "t.ts": 'import { defineTool, z } from "agentkit/tools";\nexport default [defineTool({ name: "calculator", description: "d", input: z.object({}), execute: async () => 1 })];\n' });
    const loading = loadToolsModule("t.ts", { cwd: dir, taken: builtinTools().keys() });
    await expect(loading).rejects.toBeInstanceOf(ToolsModuleError);
    await expect(loadToolsModule("t.ts", { cwd: dir, taken: builtinTools().keys() })).rejects.toThrow(`tools module ${join(dir, "t.ts")}: tool 'calculator'`);
  });

  test("execute gets the engine's signal (task abort and per-call timeout), the task id and the timeout", async () => {
    const seen: { taskId: string; timeoutMs: number; aborted: boolean }[] = [];
    const waits = defineTool({
      name: "waits",
      description: "waits for its signal",
      input: z.object({}),
      execute: (_input, { signal, taskId, timeoutMs }) =>
        new Promise((_, reject) => {
          seen.push({ taskId, timeoutMs, aborted: signal.aborted });
          signal.addEventListener("abort", () => reject(signal.reason), { once: true });
        }),
    });
    const task = new AbortController();
    const call = { id: "c1", name: "waits", arguments: "{}" };
    const running = executeToolCall(call, { tools: new Map([["waits", waits]]), timeoutMs: 60_000, abortSignal: task.signal, taskId: "task-1" });
    await until(() => seen.length === 1, "the tool to start");
    expect(seen[0]).toEqual({ taskId: "task-1", timeoutMs: 60_000, aborted: false });
    task.abort(new Error("cancelled"));
    await expect(within(running, 5000, "the call to end")).rejects.toThrow("cancelled");
  });

  test("the internal defineTool (inputSchema, execute(input, {abortSignal})) keeps working next to it", async () => {
    const { defineTool: internalDefine } = await import("../../src/tools/tool.ts");
    const internal = internalDefine({ name: "echo", description: "echo", inputSchema: z.object({ text: z.string() }), execute: async ({ text }, { abortSignal }) => `${text}:${abortSignal.aborted}` });
    const outcome = await executeToolCall({ id: "c", name: "echo", arguments: '{"text":"hi"}' }, { tools: new Map([["echo", internal]]), timeoutMs: 1000, abortSignal: new AbortController().signal });
    expect(outcome).toMatchObject({ ok: true, result: "hi:false" });
    expect(isDefinedTool(internal)).toBe(false);
  });
});
