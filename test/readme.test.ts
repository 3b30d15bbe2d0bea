/**
 * The README's examples, run as written: the sample `agentkit.json` with the README's own command
 * line, and the curl / `watch.ts` walk-through against `bun run start`. Everything is taken from
 * README.md verbatim; the only changes are `--port 0` (a free port, with the README's port
 * rewritten to it) and a PATH without `npx`, so the sample's stdio MCP server cannot download
 * anything (it fails to start with a warning, as it would on a machine without Node.js).
 */
import { listeningPort } from "./helpers/binary.ts";
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseCommand } from "../src/cli/args.ts";
import { within } from "./helpers/deferred.ts";
import { tempDir } from "./helpers/server.ts";
import { loadConfig } from "../src/config/config.ts";

const root = join(import.meta.dir, "..");
const readme = readFileSync(join(root, "README.md"), "utf8");
const blocks = [...readme.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((match) => ({ lang: match[1]!, text: match[2]! }));

/** The code block of `lang` that `test` picks (the first one, unless it is ambiguous). */
function block(lang: string, test: (text: string) => boolean): string {
  const found = blocks.filter((candidate) => candidate.lang === lang && test(candidate.text));
  if (found.length !== 1) throw new Error(`expected one \`\`\`${lang} block, found ${found.length}`);
  return found[0]!.text;
}

/** `A=1 B=2 agentkit --config x` → env and the arguments after `agentkit`. */
function commandLine(line: string): { env: Record<string, string>; args: string[] } {
  const words = line.trim().split(/\s+/);
  const at = words.indexOf("agentkit");
  const env = Object.fromEntries(words.slice(0, at).map((word) => {
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(word);
    if (!match) throw new Error(`not an environment assignment: ${word}`);
    return [match[1]!, match[2]!];
  }));
  return { env, args: words.slice(at + 1) };
}

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
function workDir(): string {
  const dir = tempDir();
  dirs.push(dir);
  return dir;
}

/** Starts `bun src/main.ts …`; resolves once it logs the listening line. */
async function start(args: string[], env: Record<string, string>, cwd: string) {
  const child = Bun.spawn([process.execPath, join(root, "src/main.ts"), ...args, "--port", "0"], { env, cwd, stdout: "pipe", stderr: "pipe" });
  const { port, log: logged } = await listeningPort(child, 10_000);
  const log = logged();
  return { child, port, log, base: `http://127.0.0.1:${port}` };
}

async function stop(child: Bun.Subprocess) {
  child.kill("SIGTERM");
  expect(await within(child.exited, 10_000, "exit")).toBe(0);
}

test("the sample agentkit.json starts with the README's command line, and serves its agents", async () => {
  const sample = block("json", (text) => text.includes('"providers"'));
  const config = JSON.parse(sample) as { default_agent: string; agents: { name: string; model: string }[] };
  const commandPattern = /^(?:[A-Z_]+=\S+ )+agentkit --config .*$/m;
  const command = commandPattern.exec(block("sh", (text) => commandPattern.test(text)))![0];
  const { env, args } = commandLine(command);
  expect(args).toEqual(["--config", "agentkit.json"]);

  const dir = workDir();
  writeFileSync(join(dir, "agentkit.json"), sample);
  const noNpx = join(dir, "bin");
  mkdirSync(noNpx);
  const server = await start(args, { ...env, PATH: noNpx }, dir);
  try {
    // The MCP servers that are not there only warn.
    expect(server.log).toContain("MCP server failed to start");
    const response = await fetch(`${server.base}/agents`);
    expect(response.status).toBe(200);
    const { agents } = (await response.json()) as { agents: { name: string; model: string; default: boolean }[] };
    expect(agents.map(({ name, model }) => ({ name, model }))).toEqual(config.agents.map(({ name, model }) => ({ name, model })));
    expect(agents.find((agent) => agent.default)?.name).toBe(config.default_agent);
  } finally {
    await stop(server.child);
  }
});

test("the README's error examples are what a bad file gives", () => {
  const examples = [...readme.matchAll(/`agentkit: invalid configuration: (agentkit\.json: agents\[\d+\] \((\w+)\)(\.\w+)?: [^`]+)`|`agentkit: invalid configuration: (agentkit\.json: providers\.[^`]+)`/g)];
  expect(examples.length).toBeGreaterThanOrEqual(3);
  const dir = workDir();
  const files: Record<string, unknown> = {
    "max_steps: Too big": { agents: [{ name: "ok" }, { name: "researcher", max_steps: 500_000 }] },
    maxSteps: { agents: [{ name: "assistant", maxSteps: 12 }] },
    baseUrl: { providers: { openai: { baseUrl: "http://127.0.0.1:9/v1" } } },
  };
  for (const example of examples) {
    const line = example[0].slice(1, -1);
    const [, content] = Object.entries(files).find(([needle]) => line.includes(needle))!;
    writeFileSync(join(dir, "agentkit.json"), JSON.stringify(content));
    const result = Bun.spawnSync([process.execPath, join(root, "src/main.ts"), "--config", "agentkit.json"], { cwd: dir, env: {}, stderr: "pipe" });
    expect(result.exitCode).toBe(2);
    expect(result.stderr.toString()).toBe(`${line}\n`);
  }
});

test("the curl and watch.ts walk-through works against `bun run start`, as shown", async () => {
  const scripts = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
  expect(block("sh", (text) => text.includes("bun run start"))).toContain("bun run start");
  const startArgs = scripts.start!.split(/\s+/);
  expect(startArgs.slice(0, 2)).toEqual(["bun", "src/main.ts"]);

  const walkThrough = block("console", (text) => text.includes("curl -s -X POST"));
  const shown = block("console", (text) => text.includes("$ bun watch.ts"));
  const watchScript = block("ts", (text) => text.includes("new WebSocket("));
  // The README's request, from its curl line.
  const curl = /curl -s -X POST localhost:8000(\/tasks) -H '([^:]+): ([^']+)' \\\s*-d '([^']+)'/.exec(walkThrough);
  expect(curl).not.toBeNull();
  const [, path, headerName, headerValue, body] = curl!;
  const shownTask = JSON.parse(walkThrough.slice(walkThrough.indexOf("\n{") + 1).replace(/\n\s*/g, "")) as Record<string, unknown>;

  const dir = workDir();
  const server = await start(startArgs.slice(2), {}, dir); // a fresh machine: no environment at all
  try {
    const response = await fetch(`${server.base}${path}`, { method: "POST", headers: { [headerName!]: headerValue! }, body });
    expect(response.status).toBe(201);
    const task = (await response.json()) as Record<string, unknown>;
    expect(Object.keys(task)).toEqual(Object.keys(shownTask));
    expect(task).toMatchObject({ agent: shownTask.agent, input: shownTask.input, status: "queued" });

    writeFileSync(join(dir, "watch.ts"), watchScript.replace("ws://127.0.0.1:8000/", `ws://127.0.0.1:${server.port}/`));
    const watch = (...args: string[]) => {
      const result = Bun.spawnSync([process.execPath, "watch.ts", ...args], { cwd: dir, env: {}, stdout: "pipe", stderr: "pipe", timeout: 10_000 });
      expect(result.stderr.toString()).toBe("");
      expect(result.exitCode).toBe(0);
      return result.stdout.toString().trim().split("\n").map((line) => JSON.parse(line) as { type: string; seq?: number; data: Record<string, unknown> });
    };
    // What the README shows, frame by frame (its ids and timestamps aside).
    const [full, resumed, ended] = shown.split(/^\$ /m).filter(Boolean).map((part) => part.split("\n").slice(1).filter((line) => line.startsWith("{")));
    const expected = full!.map((line) => JSON.parse(line.replaceAll("…", "")) as { type: string; seq?: number; data: Record<string, unknown> });
    const frames = watch(task.id as string);
    expect(frames.map((frame) => [frame.type, frame.seq, frame.data?.event_type])).toEqual(expected.map((frame) => [frame.type, frame.seq, frame.data?.event_type]));
    expect(frames.at(-1)!.data).toMatchObject({ ...expected.at(-1)!.data, task_id: task.id });
    expect(frames.slice(1, -1).map((frame) => frame.data.data)).toEqual(expected.slice(1, -1).map((frame) => frame.data.data));
    // Resume after seq 5: connected, then the result.
    const after = /\$ bun watch\.ts \S+ (\d+)/.exec(shown)![1]!;
    expect(watch(task.id as string, after).map((frame) => frame.type)).toEqual(resumed!.map((line) => /"type":"(\w+)"/.exec(line)![1]!));
    // After the last seq of an ended task: connected, and the script ends (it once waited for ever).
    const last = /\$ bun watch\.ts \S+ (\d+) +# after the result/.exec(shown)![1]!;
    expect(Number(last)).toBe(frames.at(-1)!.seq!);
    expect(watch(task.id as string, last).map((frame) => frame.type)).toEqual(ended!.map((line) => /"type":"(\w+)"/.exec(line)![1]!));
  } finally {
    await stop(server.child);
  }
});

test("the build-and-run command lines parse", () => {
  const deploy = readme.slice(readme.indexOf("## Build, run, deploy"), readme.indexOf("## Tests"));
  const lines = [...deploy.matchAll(/^(?:\.\/dist\/agentkit|docker run [^\n]*? agentkit)( [^#\n]*)?/gm)].map((match) => match[1]?.trim() ?? "");
  expect(lines.length).toBeGreaterThanOrEqual(3);
  for (const line of lines) expect(() => parseCommand(line ? line.split(/\s+/) : [])).not.toThrow();
});

test("the README's people-in-the-loop agent is a valid configuration, with the settings it describes", () => {
  const sample = block("json", (text) => text.includes('"approval"'));
  const dir = workDir();
  writeFileSync(join(dir, "agentkit.json"), sample);
  const config = loadConfig({ env: {}, flags: { configPath: join(dir, "agentkit.json") } });
  expect(config.agents[0]).toMatchObject({
    name: "ops",
    tools: ["http_fetch", "calculator", "ask_user"],
    approval: ["http_fetch"],
    approval_timeout_ms: 3_600_000,
    on_approval_timeout: "reject",
    history: { max_turns: 20, max_chars: 200_000 },
    on_busy: "steer",
  });
});
