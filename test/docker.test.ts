/**
 * The Dockerfile, checked without a Docker engine: what the image runs (ENTRYPOINT, CMD, HEALTHCHECK,
 * ENV) must be what the binary accepts, and the server started with exactly the image's environment
 * must be found healthy by the image's HEALTHCHECK command line.
 */
import { BUILD_FLAGS, listeningPort } from "./helpers/binary.ts";
import { afterAll, expect, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseCommand } from "../src/cli/args.ts";
import { ENVIRONMENT, loadConfig } from "../src/config/config.ts";
import { within } from "./helpers/deferred.ts";
import { tempDir } from "./helpers/server.ts";

const root = join(import.meta.dir, "..");
const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8");

interface Instruction {
  keyword: string;
  args: string;
}

/** The instructions of each stage, with `\` continuations joined and comments dropped. */
function stages(text: string): { from: string; instructions: Instruction[] }[] {
  const logical = text
    .split("\n")
    .filter((line) => !/^\s*#/.test(line))
    .join("\n")
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
  const result: { from: string; instructions: Instruction[] }[] = [];
  for (const line of logical) {
    const [, keyword = "", args = ""] = /^(\S+)\s*(.*)$/.exec(line)!;
    if (keyword.toUpperCase() === "FROM") result.push({ from: args, instructions: [] });
    else result.at(-1)?.instructions.push({ keyword: keyword.toUpperCase(), args });
  }
  return result;
}

const [build, runtime, ...extra] = stages(dockerfile);
const last = (keyword: string) => runtime!.instructions.filter((instruction) => instruction.keyword === keyword).at(-1)?.args;
/** Exec form only (`["a", "b"]`): shell form would put `sh -c` between tini and agentkit. */
const execForm = (args: string | undefined) => JSON.parse(args ?? "null") as string[];

/** ENV of the runtime stage, `A=1 B=2` form. */
const imageEnv: Record<string, string> = Object.fromEntries(
  runtime!.instructions
    .filter((instruction) => instruction.keyword === "ENV")
    .flatMap((instruction) => [...instruction.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)].map((match) => [match[1]!, match[2]!.replace(/^"|"$/g, "")])),
);
const entrypoint = execForm(last("ENTRYPOINT"));
const cmd = execForm(last("CMD"));
const healthcheck = execForm(/\bCMD\s+(\[.*\])$/.exec(last("HEALTHCHECK") ?? "")?.[1]);

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

test("two stages: the binary built on oven/bun of this Bun version, shipped on debian:bookworm-slim", () => {
  expect(extra).toEqual([]);
  expect(build!.from).toBe(`oven/bun:${Bun.version} AS build`);
  expect(runtime!.from).toBe("debian:bookworm-slim");
  const compile = build!.instructions.find((instruction) => instruction.args.includes("--compile"))!.args;
  const output = /--outfile\s+(\S+)/.exec(compile)![1]!;
  expect(compile).toContain("src/main.ts");
  // The image ships what the tests run and `bun run build` makes: the same flags.
  const buildScript = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: { build: string } }).scripts.build;
  for (const flag of BUILD_FLAGS) {
    expect(compile.split(/\s+/)).toContain(flag);
    expect(buildScript.split(/\s+/)).toContain(flag);
  }
  expect(last("COPY")).toBe(`--from=build ${output} /usr/local/bin/agentkit`); // on PATH for HEALTHCHECK
  // Everything the build reads is copied in.
  for (const copy of build!.instructions.filter((instruction) => instruction.keyword === "COPY")) {
    for (const source of copy.args.split(/\s+/).slice(0, -1)) expect(Bun.file(join(root, source)).size).toBeGreaterThan(0);
  }
});

test("tini is PID 1 and runs `agentkit serve`; the user is uid 10001", () => {
  const install = runtime!.instructions.find((instruction) => instruction.args.includes("apt-get install"))!.args;
  expect(install).toMatch(/apt-get install -y --no-install-recommends [^&]*\btini\b/);
  expect(entrypoint).toEqual(["/usr/bin/tini", "--", "agentkit"]);
  expect(parseCommand(cmd)).toMatchObject({ kind: "serve" });
  expect(cmd).toEqual(["serve"]);
  // `docker run agentkit --port 9000` replaces CMD: still serve.
  expect(parseCommand(["--port", "9000"])).toMatchObject({ kind: "serve", flags: { port: "9000" } });
  expect(last("USER")).toBe("agentkit");
  expect(dockerfile).toMatch(/useradd [^\n]*--uid 10001 [^\n]*agentkit/);
  expect(dockerfile).toMatch(/groupadd [^\n]*--gid 10001 agentkit/);
  expect(last("WORKDIR")).toBe(imageEnv.AGENTKIT_DATA_DIR!); // a config at /data/agentkit.json is found
});

test("ENV and HEALTHCHECK name only what the binary accepts", () => {
  expect(Object.keys(imageEnv).sort()).toEqual(["AGENTKIT_DATA_DIR", "AGENTKIT_HOST", "PORT"]);
  for (const name of Object.keys(imageEnv)) expect(ENVIRONMENT).toHaveProperty(name);
  expect(loadConfig({ env: imageEnv, readFile: false })).toMatchObject({ host: "0.0.0.0", port: Number(imageEnv.PORT), dataDir: "/data" });
  expect(dockerfile).toContain(`EXPOSE ${imageEnv.PORT}`);
  expect(healthcheck[0]).toBe("agentkit");
  expect(parseCommand(healthcheck.slice(1))).toMatchObject({ kind: "healthcheck" });
});

/** `agentkit` in the image's command lines, here. */
const agentkit = [process.execPath, join(root, "src/main.ts")];

async function serveLikeTheImage(env: Record<string, string>, args: string[]) {
  const dataDir = env.AGENTKIT_DATA_DIR!;
  const child = Bun.spawn([...agentkit, ...args], { env, cwd: dataDir, stdout: "pipe", stderr: "pipe" });
  const { port } = await listeningPort(child, 10_000);
  return { child, port };
}

function runHealthcheck(env: Record<string, string>) {
  const result = Bun.spawnSync([...agentkit, ...healthcheck.slice(1)], { env, cwd: env.AGENTKIT_DATA_DIR, stdout: "pipe", stderr: "pipe" });
  return { code: result.exitCode, output: `${result.stdout}${result.stderr}` };
}

async function freePort(): Promise<number> {
  const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = probe.port!;
  await probe.stop(true);
  return port;
}

test("the image's command and environment serve; its HEALTHCHECK command finds them healthy", async () => {
  const dataDir = tempDir();
  dirs.push(dataDir);
  // Exactly the image's ENV, but a temp data dir and a port that is free here.
  const env = { ...imageEnv, AGENTKIT_DATA_DIR: dataDir, PORT: String(await freePort()) };
  const { child, port } = await serveLikeTheImage(env, entrypoint.slice(3).concat(cmd));
  try {
    expect(port).toBe(Number(env.PORT));
    const check = runHealthcheck(env);
    expect(check.output).toContain(`healthy: GET http://127.0.0.1:${port}/health`);
    expect(check.code).toBe(0);
  } finally {
    child.kill("SIGTERM");
  }
  expect(await within(child.exited, 10_000, "exit")).toBe(0);
  expect(runHealthcheck(env).code).toBe(1);
});

test("`docker run agentkit serve --port N` is found by the image's plain HEALTHCHECK (PORT still says 8000)", async () => {
  const dataDir = tempDir();
  dirs.push(dataDir);
  const env = { ...imageEnv, AGENTKIT_DATA_DIR: dataDir };
  const { child, port } = await serveLikeTheImage(env, ["serve", "--port", "0"]);
  try {
    expect(port).not.toBe(Number(imageEnv.PORT));
    const check = runHealthcheck(env);
    expect(check.output).toContain(`healthy: GET http://127.0.0.1:${port}/health (address from ${join(dataDir, "agentkit.addr.json")}`);
    expect(check.code).toBe(0);
  } finally {
    child.kill("SIGTERM");
  }
  expect(await within(child.exited, 10_000, "exit")).toBe(0);
});
