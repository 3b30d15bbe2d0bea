/** `agentkit healthcheck`: which address it checks, and why (the binary itself: binary.test.ts). */
import { afterEach, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { healthcheck, healthcheckTarget } from "../../src/cli/healthcheck.ts";
import { ADDRESS_FILE, connectHost, liveServerOf, removeAddressFile, writeAddressFile } from "../../src/server/address-file.ts";
import { startTestServer, tempDir } from "../helpers/server.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function dataDir(): string {
  const dir = tempDir();
  dirs.push(dir);
  return dir;
}

test("a wildcard bind is checked on loopback; a specific address as itself", () => {
  expect(connectHost("0.0.0.0")).toBe("127.0.0.1");
  expect(connectHost("::")).toBe("[::1]");
  expect(connectHost("[::]")).toBe("[::1]");
  expect(connectHost("::1")).toBe("[::1]");
  expect(connectHost("fd00::5")).toBe("[fd00::5]");
  expect(connectHost("10.1.2.3")).toBe("10.1.2.3");
  expect(connectHost("localhost")).toBe("localhost");
});

test("precedence: --url, then --port/--host, then the live address file, then PORT/AGENTKIT_HOST", async () => {
  const dir = dataDir();
  const env = { PORT: "8000", AGENTKIT_HOST: "0.0.0.0", AGENTKIT_DATA_DIR: dir };
  expect(healthcheckTarget({ env })).toMatchObject({ url: "http://127.0.0.1:8000/health" });
  writeAddressFile(dir, { url: "http://[::]:9000", host: "::", port: 9000, pid: process.pid });
  expect(healthcheckTarget({ env })).toEqual({ url: "http://[::1]:9000/health", from: `${join(dir, ADDRESS_FILE)}, written by pid ${process.pid}` });
  // The data dir as a flag, like serve's.
  expect(healthcheckTarget({ env: {}, flags: { dataDir: dir } }).url).toBe("http://[::1]:9000/health");
  expect(healthcheckTarget({ env, flags: { port: "9100" } })).toEqual({ url: "http://127.0.0.1:9100/health", from: "--port" });
  expect(healthcheckTarget({ env, flags: { host: "10.0.0.7" } }).url).toBe("http://10.0.0.7:8000/health");
  expect(healthcheckTarget({ env, url: "http://h:1/health" })).toEqual({ url: "http://h:1/health", from: "--url" });
  // Removed only by the process that wrote it.
  removeAddressFile(dir, process.pid + 1);
  expect(healthcheckTarget({ env }).url).toBe("http://[::1]:9000/health");
  removeAddressFile(dir);
  expect(healthcheckTarget({ env }).url).toBe("http://127.0.0.1:8000/health");
});

test("a dead writer's file is ignored; port 0 or a bad value is unhealthy with the reason", async () => {
  const dir = dataDir();
  const gone = Bun.spawn([process.execPath, "-e", "0"]);
  await gone.exited;
  writeAddressFile(dir, { url: "http://127.0.0.1:9000", host: "127.0.0.1", port: 9000, pid: gone.pid });
  expect(healthcheckTarget({ env: { AGENTKIT_DATA_DIR: dir, PORT: "8123" } }).url).toBe("http://127.0.0.1:8123/health");
  expect(await healthcheck({ env: { AGENTKIT_DATA_DIR: dir, PORT: "0" } })).toEqual({
    healthy: false,
    line: expect.stringContaining("port 0") as unknown as string,
  });
  expect((await healthcheck({ env: { PORT: "eighty" } })).line).toStartWith("unhealthy: invalid configuration: PORT:");
});

test("healthy only on a 2xx from /health with agentkit's JSON (a status); --url may be the server's base URL", async () => {
  let status = 200;
  let body = JSON.stringify({ status: "ok", version: "0.1.0" });
  const paths: string[] = [];
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (request) => {
      paths.push(new URL(request.url).pathname);
      return new Response(body, { status });
    },
  });
  try {
    const flags = { port: String(server.port), host: "127.0.0.1" };
    const tried = `GET http://127.0.0.1:${server.port}/health (address from --port and --host)`;
    expect(await healthcheck({ env: {}, flags })).toEqual({ healthy: true, line: `healthy: ${tried}: 200` });
    // Client commands take --url as the server's base URL: the same URL checks its /health.
    for (const url of [`http://127.0.0.1:${server.port}`, `http://127.0.0.1:${server.port}/`]) {
      expect(await healthcheck({ env: {}, url })).toEqual({ healthy: true, line: `healthy: GET http://127.0.0.1:${server.port}/health (address from --url): 200` });
    }
    // Behind a proxy's path prefix, as client commands take it: its /health; one ending in /health as given.
    expect((await healthcheck({ env: {}, url: `http://127.0.0.1:${server.port}/agentkit` })).healthy).toBe(true);
    expect((await healthcheck({ env: {}, url: `http://127.0.0.1:${server.port}/agentkit/health` })).healthy).toBe(true);
    expect(paths).toEqual(["/health", "/health", "/health", "/agentkit/health", "/agentkit/health"]);
    // Another server answering 2xx on that port is not agentkit being healthy.
    for (const other of ["<html>console</html>", "{}", "null", "x".repeat(100_000)]) {
      body = other;
      expect(await healthcheck({ env: {}, flags })).toEqual({ healthy: false, line: `unhealthy: ${tried}: HTTP 200, but not agentkit's /health (no JSON with a status)` });
    }
    body = JSON.stringify({ status: "degraded" });
    expect((await healthcheck({ env: {}, flags })).healthy).toBe(true);
    status = 503;
    expect(await healthcheck({ env: {}, flags })).toEqual({ healthy: false, line: `unhealthy: ${tried}: HTTP 503` });
  } finally {
    server.stop(true);
  }
});

test("liveServerOf: a live agentkit named by a SQLite server's address file owns the data dir; a PostgreSQL-mode server's, a dead pid's, or an address that is not agentkit do not", async () => {
  const server = await startTestServer();
  try {
    const dir = tempDir();
    const record = { url: server.baseUrl, host: "127.0.0.1", port: server.port, pid: process.ppid }; // alive, not this process
    writeAddressFile(dir, { ...record, store: "sqlite" });
    expect(await liveServerOf(dir)).toMatchObject({ port: server.port, store: "sqlite" });
    writeAddressFile(dir, record); // an older build's file: no store named, taken as SQLite's
    expect(await liveServerOf(dir)).toMatchObject({ port: server.port });
    writeAddressFile(dir, { ...record, store: "postgres" });
    expect(await liveServerOf(dir)).toBeUndefined();
    writeAddressFile(dir, { ...record, store: "sqlite", pid: 2 ** 22 + 7 }); // no such process
    expect(await liveServerOf(dir)).toBeUndefined();
    writeAddressFile(dir, { ...record, store: "sqlite", pid: process.pid }); // this process: a restart in a container
    expect(await liveServerOf(dir)).toBeUndefined();
    const notAgentkit = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => Response.json({ ok: true }) });
    writeAddressFile(dir, { ...record, store: "sqlite", port: notAgentkit.port! });
    expect(await liveServerOf(dir)).toBeUndefined();
    notAgentkit.stop(true);
    rmSync(dir, { recursive: true, force: true });
  } finally {
    await server.close();
  }
});
