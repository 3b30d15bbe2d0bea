/** The single binary: `bun build --compile`, then run it with no environment at all. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { within } from "./helpers/deferred.ts";
import { tempDir } from "./helpers/server.ts";
import { connect } from "./helpers/ws-client.ts";

const root = join(import.meta.dir, "..");
let workDir: string;
let binary: string;

beforeAll(async () => {
  workDir = tempDir();
  binary = join(workDir, "agentkit");
  const build = Bun.spawnSync(["bun", "build", "--compile", "src/main.ts", "--outfile", binary], { cwd: root, stderr: "pipe", stdout: "pipe" });
  if (build.exitCode !== 0) throw new Error(`build failed: ${build.stderr.toString()}`);
}, 60_000);

afterAll(() => rmSync(workDir, { recursive: true, force: true }));

test("--version and --help", () => {
  const version = Bun.spawnSync([binary, "--version"], { env: {} });
  expect(version.exitCode).toBe(0);
  expect(version.stdout.toString()).toMatch(/^agentkit \d+\.\d+\.\d+\n$/);
  const help = Bun.spawnSync([binary, "--help"], { env: {} });
  expect(help.exitCode).toBe(0);
  expect(help.stdout.toString()).toContain("--data-dir DIR");
});

test("a bad configuration value stops start-up with one line naming it, exit code 2", () => {
  const result = Bun.spawnSync([binary, "serve"], { env: { PORT: "not-a-port" }, cwd: workDir });
  expect(result.exitCode).toBe(2);
  const lines = result.stderr.toString().trim().split("\n");
  expect(lines.length).toBe(1);
  expect(lines[0]).toStartWith("agentkit: invalid configuration: PORT:");
  const flag = Bun.spawnSync([binary, "--port", "99999"], { env: {}, cwd: workDir });
  expect(flag.exitCode).toBe(2);
  expect(flag.stderr.toString()).toContain("--port");
});

test("with no environment it serves a task end to end, then stops cleanly on SIGTERM", async () => {
  const child = Bun.spawn([binary, "--port", "0"], { env: {}, cwd: workDir, stderr: "pipe", stdout: "pipe" });
  try {
    const reader = child.stderr.getReader();
    let log = "";
    const port = await within(
      (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`exited early: ${log}`);
          log += new TextDecoder().decode(value);
          const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(log);
          if (match) return Number(match[1]);
        }
      })(),
      10_000,
      "the listening line",
    );
    expect(log).toContain("no AGENTKIT_API_KEY set");
    expect(log).toContain("built-in demo model");
    const base = `http://127.0.0.1:${port}`;
    expect((await fetch(`${base}/health`)).status).toBe(200);
    const created = await fetch(`${base}/tasks`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input: "What is (2 + 3) * 4?" }),
    });
    expect(created.status).toBe(201);
    const task = (await created.json()) as { id: string };
    const socket = await connect(`ws://127.0.0.1:${port}/ws/tasks/${task.id}`);
    expect((await socket.result()).data).toMatchObject({ status: "completed", output: "(2 + 3) * 4 = 20" });
    expect(existsSync(join(workDir, "agentkit-data", "agentkit.sqlite"))).toBe(true);
    const healthcheck = Bun.spawnSync([binary, "healthcheck", "--url", `${base}/health`], { env: {} });
    expect(healthcheck.exitCode).toBe(0);
  } finally {
    child.kill("SIGTERM");
  }
  expect(await within(child.exited, 10_000, "the binary to exit")).toBe(0);
  const down = Bun.spawnSync([binary, "healthcheck", "--url", "http://127.0.0.1:1/health"], { env: {} });
  expect(down.exitCode).toBe(1);
});
