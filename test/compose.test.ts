/**
 * compose.yaml, checked without a Docker engine: PostgreSQL 16 and two agentkit nodes built from
 * the Dockerfile. Every environment variable and flag it gives agentkit must be one the binary
 * accepts, the database URL must point at the compose's own PostgreSQL with its credentials — and
 * two nodes started with exactly the compose's command and environment (only the database URL
 * pointing at a test server instead) must serve as one cluster.
 */
import { listeningPort } from "./helpers/binary.ts";
import { afterAll, expect, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseCommand } from "../src/cli/args.ts";
import { ENVIRONMENT, loadConfig } from "../src/config/config.ts";
import { within } from "./helpers/deferred.ts";
import { describePostgres } from "./helpers/postgres.ts";
import { tempDir } from "./helpers/server.ts";
import { connect } from "./helpers/ws-client.ts";

const root = join(import.meta.dir, "..");

interface Service {
  image?: string;
  build?: string | { context: string };
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}
const compose = Bun.YAML.parse(readFileSync(join(root, "compose.yaml"), "utf8")) as { services: Record<string, Service>; volumes: Record<string, unknown> };

/** Compose's `${VAR}` and `${VAR:-default}` interpolation, with `vars` as the shell environment. */
function interpolate(value: string, vars: Record<string, string> = {}): string {
  return value.replace(/\$\{(\w+)(?::-([^}]*))?\}/g, (_, name: string, fallback?: string) => vars[name] || fallback || "");
}
const interpolated = (environment: Record<string, string> = {}, vars?: Record<string, string>) =>
  Object.fromEntries(Object.entries(environment).map(([name, value]) => [name, interpolate(String(value), vars)]));

const services = Object.entries(compose.services);
const database = services.find(([, service]) => service.image?.startsWith("postgres"));
const nodes = services.filter(([, service]) => service.build !== undefined);

/** The image's ENV (what the Dockerfile sets), e.g. PORT. */
const imageEnv: Record<string, string> = Object.fromEntries(
  [...readFileSync(join(root, "Dockerfile"), "utf8").matchAll(/^(?:ENV\s+|\s+)(AGENTKIT_\w+|PORT)=(\S+)/gm)].map((match) => [match[1]!, match[2]!]),
);

test("PostgreSQL 16 (the official image) with a named volume and a healthcheck", () => {
  expect(database).toBeDefined();
  const [, postgres] = database!;
  expect(postgres.image).toBe("postgres:16");
  const [volume, path] = postgres.volumes![0]!.split(":");
  expect(path).toBe("/var/lib/postgresql/data"); // PGDATA of the postgres:16 image
  expect(compose.volumes).toHaveProperty(volume!);
  expect(postgres.healthcheck!.test.join(" ")).toContain("pg_isready");
  expect(Object.keys(postgres.environment!).sort()).toEqual(["POSTGRES_DB", "POSTGRES_PASSWORD", "POSTGRES_USER"]);
});

test("two agentkit nodes built from the Dockerfile, on two host ports, each with a node id and a volume of its own", () => {
  expect(nodes).toHaveLength(2);
  const hostPorts = new Set<string>();
  const ids = new Set<string>();
  for (const [name, node] of nodes) {
    expect(node.build).toBe(".");
    expect(Bun.file(join(root, "Dockerfile")).size).toBeGreaterThan(0);
    expect(node.ports).toHaveLength(1);
    const [host, container] = node.ports![0]!.split(":");
    expect(container).toBe(imageEnv.PORT!); // what the image listens on
    hostPorts.add(host!);
    const [volume, path] = node.volumes![0]!.split(":");
    expect(path).toBe(imageEnv.AGENTKIT_DATA_DIR!);
    expect(compose.volumes).toHaveProperty(volume!);
    const command = parseCommand(node.command!);
    expect(command).toMatchObject({ kind: "serve" });
    const config = loadConfig({ env: { ...imageEnv, ...interpolated(node.environment) }, flags: command.kind === "serve" ? command.flags : {}, readFile: false });
    expect(config.nodeId).toBe(name);
    ids.add(config.nodeId!);
    expect(node.depends_on).toEqual({ [database![0]]: { condition: "service_healthy" } });
    expect(parseCommand(node.healthcheck!.test.slice(2))).toMatchObject({ kind: "healthcheck" });
    expect(node.healthcheck!.test.slice(0, 2)).toEqual(["CMD", "agentkit"]);
  }
  expect(hostPorts.size).toBe(2);
  expect(ids.size).toBe(2);
});

test("every variable the nodes get is one agentkit reads, and the database URL is the compose's PostgreSQL with its credentials", () => {
  const [host, postgres] = database!;
  const cases: Record<string, string>[] = [{}, { POSTGRES_PASSWORD: "s3cret", AGENTKIT_API_KEY: "k3y-0123456789" }];
  for (const vars of cases) {
    const credentials = interpolated(postgres.environment, vars);
    for (const [, node] of nodes) {
      const env = interpolated(node.environment, vars);
      for (const name of Object.keys(env)) expect(ENVIRONMENT).toHaveProperty(name);
      const config = loadConfig({ env: { ...imageEnv, ...env }, readFile: false });
      expect(config.apiKey).toBe(vars.AGENTKIT_API_KEY); // unset: empty, i.e. no key
      const url = new URL(config.databaseUrl!);
      expect(url.hostname).toBe(host);
      expect(url.port).toBe("5432");
      expect(url.username).toBe(credentials.POSTGRES_USER!);
      expect(decodeURIComponent(url.password)).toBe(credentials.POSTGRES_PASSWORD!);
      expect(url.pathname).toBe(`/${credentials.POSTGRES_DB}`);
      expect(config).toMatchObject({ host: "0.0.0.0", port: Number(imageEnv.PORT), role: "all" });
    }
  }
});

describePostgres("the compose's nodes", (pg) => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  test("two nodes started with exactly the compose's command and environment (the URL aside) serve as one cluster", async () => {
    const url = await pg.createDatabase();
    const children: Bun.Subprocess[] = [];
    try {
      const started = await Promise.all(
        nodes.map(async ([, node]) => {
          const dataDir = tempDir();
          dirs.push(dataDir);
          const env = { ...imageEnv, ...interpolated(node.environment), AGENTKIT_DATA_DIR: dataDir, AGENTKIT_DATABASE_URL: url };
          const child = Bun.spawn([process.execPath, join(root, "src/main.ts"), ...node.command!, "--port", "0"], { env, cwd: dataDir, stdout: "ignore", stderr: "pipe" });
          children.push(child);
          const { port } = await listeningPort(child);
          return `127.0.0.1:${port}`;
        }),
      );
      for (const [index, address] of started.entries()) {
        expect(await (await fetch(`http://${address}/health`)).json()).toMatchObject({ status: "ok", node: nodes[index]![0], role: "all", cluster: true, database: "reachable" });
      }
      const response = await fetch(`http://${started[0]}/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input: "What is 6 * 7?" }) });
      expect(response.status).toBe(201);
      const { id } = (await response.json()) as { id: string };
      const watcher = await connect(`ws://${started[1]}/ws/tasks/${id}`);
      expect((await watcher.result(15_000)).data).toMatchObject({ status: "completed", output: "6 * 7 = 42" });
      watcher.close();
    } finally {
      for (const child of children) child.kill("SIGTERM");
      await Promise.all(children.map((child) => within(child.exited, 10_000, "a node to stop")));
    }
  }, 40_000);
});
