/**
 * The client commands (`agentkit run | watch | tasks | cancel | agents`) as a user runs them: the
 * CLI as a subprocess (`bun src/main.ts …`, and the compiled binary once), against a real server,
 * its stdout read from a pipe — or from a pseudo-terminal (Bun's `terminal` option) where what a
 * terminal gets differs: colour, the spinner, typed text, the questions it asks, Ctrl-C.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeAddressFile } from "../../src/server/address-file.ts";
import { buildBinary, launchBinary } from "../helpers/binary.ts";
import { until, within } from "../helpers/deferred.ts";
import { startTestServer, tempDir, type TestServer } from "../helpers/server.ts";

const root = join(import.meta.dir, "..", "..");
const MAIN = join(root, "src", "main.ts");
const ANSI_COLOUR = /\u001b\[[\d;]*m/;
const KEY = "cli-test-key-0123456789";

let server: TestServer;
let keyed: TestServer;
let cwd: string;

beforeAll(async () => {
  cwd = tempDir(); // no ./agentkit-data here: nothing to discover by accident
  server = await startTestServer({
    agents: [
      {},
      { name: "slow", model: "demo/slow" },
      { name: "asker", tools: ["calculator", "ask_user"] },
      { name: "gate", tools: ["calculator"], approval: ["calculator"] },
    ],
    config: { providers: { prices: { "demo/*": { inputPerMillion: 1000, outputPerMillion: 2000 } } } },
  });
  keyed = await startTestServer({ config: { apiKey: KEY } });
});

afterAll(async () => {
  await server?.close();
  await keyed?.close();
  rmSync(cwd, { recursive: true, force: true });
});

/** Only what a command needs: PATH, and what the test adds (no AGENTKIT_* from the outer environment). */
function environment(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: cwd, ...extra };
}

interface Finished {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to its end, stdout and stderr piped. */
async function cli(args: string[], options: { env?: Record<string, string>; stdin?: string; command?: string[] } = {}): Promise<Finished> {
  const child = Bun.spawn([...(options.command ?? [process.execPath, MAIN]), ...args], {
    cwd,
    env: environment(options.env),
    stdin: options.stdin === undefined ? "ignore" : new Blob([options.stdin]),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await within(Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]), 20_000, `agentkit ${args.join(" ")}`);
  return { code, stdout, stderr };
}

/** Starts the CLI with piped output, to act while it runs. */
function start(args: string[], env: Record<string, string> = {}) {
  const child = Bun.spawn([process.execPath, MAIN, ...args], { cwd, env: environment(env), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let stdout = "";
  let stderr = "";
  const drain = async (stream: ReadableStream<Uint8Array>, add: (text: string) => void) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) add(decoder.decode(chunk, { stream: true }));
  };
  const drained = Promise.all([drain(child.stdout, (text) => (stdout += text)), drain(child.stderr, (text) => (stderr += text))]);
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    waitFor: (text: string) => until(() => stdout.includes(text), `stdout to show ${JSON.stringify(text)}; it has ${JSON.stringify(stdout)} (stderr ${JSON.stringify(stderr)})`, 10_000),
    finished: async (): Promise<Finished> => {
      const code = await within(child.exited, 15_000, "the CLI to exit");
      await drained;
      return { code, stdout, stderr };
    },
  };
}

/** Starts the CLI on a pseudo-terminal: stdin, stdout and stderr are a TTY, as for a person. */
function terminal(args: string[], env: Record<string, string> = {}) {
  let output = "";
  const decoder = new TextDecoder();
  const { promise: closed, resolve } = Promise.withResolvers<void>();
  const child = Bun.spawn([process.execPath, MAIN, ...args], {
    cwd,
    env: environment({ TERM: "xterm-256color", ...env }),
    terminal: {
      cols: 120,
      rows: 40,
      data: (_terminal, data) => {
        output += decoder.decode(data, { stream: true });
      },
      exit: () => resolve(),
    },
  });
  return {
    output: () => output,
    waitFor: (text: string) => until(() => output.includes(text), `the terminal to show ${JSON.stringify(text)}; it has ${JSON.stringify(output)}`, 10_000),
    type: (text: string) => child.terminal!.write(text),
    finished: async (): Promise<{ code: number; output: string }> => {
      const code = await within(child.exited, 15_000, "the CLI to exit");
      await within(closed, 5_000, "the terminal to close");
      child.terminal!.close();
      return { code, output };
    },
  };
}

async function task(id: string): Promise<{ id: string; status: string; output: string | null }> {
  return (await (await server.http(`/tasks/${id}`)).json()) as { id: string; status: string; output: string | null };
}

async function finishedTask(body: Record<string, unknown>): Promise<string> {
  const { id } = await server.createTask(body);
  await until(async () => ["completed", "failed"].includes((await task(id)).status), "the task to end");
  return id;
}

const frames = (stdout: string) => stdout.trimEnd().split("\n").map((line) => JSON.parse(line) as { type: string; seq?: number; task_id?: string; data: Record<string, unknown> });

describe("run", () => {
  test("--json prints every frame as NDJSON, ending with the result, and nothing else on stdout; exit 0", async () => {
    const { code, stdout, stderr } = await cli(["run", "What is 17*23?", "--json", "--url", server.baseUrl]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const lines = frames(stdout);
    expect(lines[0]).toMatchObject({ type: "connected" });
    expect(lines.at(-1)).toMatchObject({ type: "result", data: { status: "completed", output: "17*23 = 391" } });
    // Every durable event, once, in order (as the server stored them).
    const id = lines[0]!.task_id!;
    const stored = (await (await server.http(`/tasks/${id}/events`)).json()) as { events: unknown[] };
    expect(lines.filter((frame) => frame.seq !== undefined)).toEqual(stored.events as never);
    expect(lines.map((frame) => frame.data?.event_type ?? frame.type)).toEqual(["connected", "usage", "thought", "tool_call", "tool_result", "usage", "result"]);
  });

  test("--json into a reader slower than the task: every byte arrives before the CLI exits", async () => {
    const input = "word ".repeat(16_000).trim(); // the demo repeats it: a result frame of ~80 KB, more than a pipe holds
    // A shell pipe (Bun's own pipes to a child are socket pairs with room for more than this).
    const child = Bun.spawn(["sh", "-c", `"$0" "$1" run "$2" --json --url "$3" | { sleep 1.5; cat; }`, process.execPath, MAIN, input, server.baseUrl], {
      cwd,
      env: environment(),
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const stdout = await new Response(child.stdout).text();
    expect(await child.exited).toBe(0);
    const result = frames(stdout).at(-1)!;
    expect(result).toMatchObject({ type: "result", data: { status: "completed" } });
    expect(String(result.data.output)).toContain(input);
  });

  test("without a TTY (piped): the steps, the answer, usage and cost, no ANSI codes", async () => {
    const { code, stdout, stderr } = await cli(["run", "What", "is", "17*23?", "--url", server.baseUrl], { env: { FORCE_COLOR: "1" } });
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).not.toContain("\u001b");
    const lines = stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^task [0-9a-f-]{36} · (queued|running|completed)$/);
    expect(lines.slice(1)).toEqual([
      "I'll compute 17*23 with the calculator.",
      '→ calculator {"expression":"17*23"}',
      '✓ calculator → {"expression":"17*23","value":391}',
      "17*23 = 391",
      expect.stringMatching(/^✓ completed · 2 steps · \d+ tokens \(\d+ in, \d+ out\) · \$0\.\d{4}$/) as unknown as string,
    ]);
  });

  test("the input from stdin with '-'; --agent; an unknown agent is a usage error naming the known ones", async () => {
    const piped = await cli(["run", "-", "--json", "--agent", "asker", "--url", server.baseUrl], { stdin: "What is 6*7?\n" });
    expect(piped.code).toBe(0);
    expect(frames(piped.stdout).at(-1)).toMatchObject({ type: "result", data: { output: "6*7 = 42" } });
    expect((await task(frames(piped.stdout)[0]!.task_id!)).status).toBe("completed");
    const unknown = await cli(["run", "hi", "--agent", "nobody", "--url", server.baseUrl]);
    expect(unknown).toMatchObject({ code: 2, stdout: "" });
    expect(unknown.stderr).toBe("agentkit run: Unknown agent 'nobody'; known agents: default, slow, asker, gate\n");
  });

  test("on a TTY: colour, the spinner, the text typed; NO_COLOR turns the colour off (and only the colour)", async () => {
    const coloured = terminal(["run", "What is 17*23?", "--agent", "slow", "--url", server.baseUrl]);
    const { code, output } = await coloured.finished();
    expect(code).toBe(0);
    expect(output).toMatch(ANSI_COLOUR);
    expect(output).toContain("\u001b[32m✓\u001b[39m calculator");
    expect(output).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/); // a spinner was drawn
    expect(output).toContain("\u001b[1F\u001b[J"); // …and erased in place
    // Typed from deltas, word by word, each word once.
    expect(output.split("17*23 = 391").length).toBe(2);
    expect(output).toContain("completed");

    const plain = terminal(["run", "What is 17*23?", "--agent", "slow", "--url", server.baseUrl], { NO_COLOR: "1" });
    const uncoloured = await plain.finished();
    expect(uncoloured.code).toBe(0);
    expect(uncoloured.output).not.toMatch(ANSI_COLOUR);
    expect(uncoloured.output).toContain("✓ calculator");
    expect(uncoloured.output).toContain("\u001b[1F\u001b[J"); // still a live terminal
    expect(uncoloured.output.split("17*23 = 391").length).toBe(2);
  });

  test("on a TTY, a question is asked and the typed line is the answer; an approval is a y/n", async () => {
    const asked = terminal(["run", "ask me your name", "--agent", "asker", "--url", server.baseUrl]);
    await asked.waitFor("Your answer: ");
    expect(asked.output()).toContain("the agent asks:");
    asked.type("Ada Lovelace\r");
    const answered = await asked.finished();
    expect(answered.code).toBe(0);
    expect(answered.output).toContain("answered by anonymous: Ada Lovelace");
    expect(answered.output).toContain("You answered: Ada Lovelace");

    const gated = terminal(["run", "What is 2+3?", "--agent", "gate", "--url", server.baseUrl], { NO_COLOR: "1" });
    await gated.waitFor('Approve calculator {"expression":"2+3"}? [y/n] ');
    gated.type("n\r");
    await gated.waitFor("Reason (optional): ");
    gated.type("not today\r");
    const rejected = await gated.finished();
    expect(rejected.code).toBe(0);
    expect(rejected.output).toContain("✗ rejected calculator (by anonymous: not today)");
    expect(rejected.output).toContain("rejected: The user rejected this call to 'calculator': not today");
  });

  test("without a TTY an approval is shown with how to decide, and the run goes on once it is decided elsewhere", async () => {
    const run = start(["run", "What is 2+3?", "--agent", "gate", "--url", server.baseUrl]);
    await run.waitFor("approval needed");
    const id = /task ([0-9a-f-]{36})/.exec(run.stdout())![1]!;
    expect(run.stdout()).toContain(`decide with POST /tasks/${id}/approvals {"call_id":"`);
    const callId = /"call_id":"([^"]+)"/.exec(run.stdout())![1]!;
    expect((await server.http(`/tasks/${id}/approvals`, { method: "POST", json: { call_id: callId, decision: "approve" } })).status).toBe(200);
    const { code, stdout } = await run.finished();
    expect(code).toBe(0);
    expect(stdout).toContain("✓ approved calculator (by anonymous)");
    expect(stdout).toContain("2+3 = 5");
  });

  test("Ctrl-C (SIGINT) cancels the task: one line says so, the task ends cancelled, exit 130", async () => {
    const run = start(["run", "tell me a long story", "--agent", "slow", "--url", server.baseUrl]);
    await run.waitFor("task ");
    const id = /task ([0-9a-f-]{36})/.exec(run.stdout())![1]!;
    run.child.kill("SIGINT");
    const { code, stdout, stderr } = await run.finished();
    expect(code).toBe(130);
    expect(stderr).toBe(`agentkit: cancelling task ${id} (Ctrl-C again to stop waiting for it)\n`);
    expect(stdout).toContain("■ cancelled");
    expect((await task(id)).status).toBe("cancelled");
  });

  test("a second Ctrl-C while run's cancel has no answer yet: it stops waiting, and says the cancel may still stop the task (not that it goes on)", async () => {
    // A proxy to the server that holds the cancel request; everything else (REST, the watch's WebSocket) passes.
    const upstream = new URL(server.baseUrl);
    let releaseCancel!: () => void;
    const cancelHeld = new Promise<void>((resolve) => (releaseCancel = resolve));
    const proxy = Bun.serve<{ url: string; upstream?: WebSocket; pending: (string | Uint8Array)[] }>({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(request, bunServer) {
        const url = new URL(request.url);
        url.host = upstream.host;
        if (request.headers.get("upgrade") === "websocket") {
          url.protocol = "ws:";
          return bunServer.upgrade(request, { data: { url: url.href, pending: [] } }) ? undefined : new Response("no", { status: 400 });
        }
        if (request.method === "POST" && url.pathname.endsWith("/cancel")) await cancelHeld;
        return fetch(url, { method: request.method, headers: request.headers, body: request.body, redirect: "manual" });
      },
      websocket: {
        open(ws) {
          const far = new WebSocket(ws.data.url);
          ws.data.upstream = far;
          far.onopen = () => {
            for (const message of ws.data.pending) far.send(message);
          };
          far.onmessage = (event) => ws.send(event.data as string);
          far.onclose = () => ws.close();
        },
        message(ws, message) {
          const far = ws.data.upstream!;
          if (far.readyState === WebSocket.OPEN) far.send(message);
          else ws.data.pending.push(message);
        },
        close(ws) {
          ws.data.upstream?.close();
        },
      },
    });
    try {
      const run = start(["run", "tell me a long story", "--agent", "slow", "--url", `http://127.0.0.1:${proxy.port}`]);
      await run.waitFor("task ");
      const id = /task ([0-9a-f-]{36})/.exec(run.stdout())![1]!;
      run.child.kill("SIGINT");
      await until(() => run.stderr().includes("cancelling task"), "the first Ctrl-C's line", 10_000);
      run.child.kill("SIGINT");
      const { code, stderr } = await run.finished();
      expect(code).toBe(130);
      expect(stderr).toContain(`agentkit: detached; the cancel already sent may still stop task ${id} (agentkit watch ${id} to follow it)`);
      expect(stderr).not.toContain("goes on");
      // The cancel was sent: once it gets through, the task ends cancelled.
      releaseCancel();
      await until(async () => (await task(id)).status === "cancelled", "the held cancel to land", 10_000);
    } finally {
      releaseCancel();
      proxy.stop(true);
    }
  });

  test("Ctrl-C while the server is away: the cancel cannot be sent — one line says so, and the command ends (exit 3) instead of waiting on", async () => {
    const away = await startTestServer({ agents: [{ name: "slow", model: "demo/slow", tools: ["calculator"] }] });
    const run = start(["run", "tell me a long story", "--agent", "slow", "--url", away.baseUrl]);
    await run.waitFor("task ");
    const id = /task ([0-9a-f-]{36})/.exec(run.stdout())![1]!;
    await away.close();
    run.child.kill("SIGINT");
    const { code, stderr } = await within(run.finished(), 15_000, "the command to end");
    expect(code).toBe(3);
    expect(stderr).toContain(`agentkit: cancelling task ${id}`);
    expect(stderr).toContain(`agentkit: could not cancel task ${id}: `);
    expect(stderr).toContain(`it may still run (agentkit cancel ${id} once the server answers)`);
  });

  test("Ctrl-C on a TTY cancels too; --json on SIGINT keeps stdout to frames", async () => {
    const run = terminal(["run", "tell me a long story", "--agent", "slow", "--url", server.baseUrl]);
    await run.waitFor("You said:");
    run.type("\u0003");
    const { code, output } = await run.finished();
    expect(code).toBe(130);
    const id = /task ([0-9a-f-]{36})/.exec(output)![1]!;
    expect(output).toContain(`cancelling task ${id}`);
    expect((await task(id)).status).toBe("cancelled");

    const json = start(["run", "tell me a long story", "--agent", "slow", "--json", "--url", server.baseUrl]);
    await json.waitFor('"type":"connected"');
    json.child.kill("SIGINT");
    const ended = await json.finished();
    expect(ended.code).toBe(130);
    expect(frames(ended.stdout).at(-1)).toMatchObject({ type: "result", data: { status: "cancelled" } });
    expect(ended.stderr).toContain("cancelling task");
  });
});

describe("watch", () => {
  test("a finished task is replayed, with its exit code; --json --after N starts after N", async () => {
    const id = await finishedTask({ input: "What is 12 * (3 + 4)?" });
    const { code, stdout, stderr } = await cli(["watch", id, "--url", server.baseUrl]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout.split("\n")).toEqual([
      `task ${id} · completed`,
      "I'll compute 12 * (3 + 4) with the calculator.",
      '→ calculator {"expression":"12 * (3 + 4)"}',
      '✓ calculator → {"expression":"12 * (3 + 4)","value":84}',
      "12 * (3 + 4) = 84",
      expect.stringMatching(/^✓ completed · 2 steps · \d+ tokens \(\d+ in, \d+ out\) · \$/) as unknown as string,
      "",
    ]);
    const after = await cli(["watch", id, "--json", "--after", "4", "--url", server.baseUrl]);
    expect(after.code).toBe(0);
    expect(frames(after.stdout).map((frame) => frame.seq ?? frame.type)).toEqual(["connected", 5, 6]);
    // After the last event there is nothing to send: still the task's exit code.
    expect((await cli(["watch", id, "--json", "--after", "6", "--url", server.baseUrl])).code).toBe(0);
    // Beyond it: the server refuses the query.
    const beyond = await cli(["watch", id, "--after", "7", "--url", server.baseUrl]);
    expect(beyond.code).toBe(2);
    expect(beyond.stderr.split("\n").filter(Boolean)).toHaveLength(1);
  });

  test("Ctrl-C detaches: exit 130, the task goes on", async () => {
    // The slow demo model types its answer (which repeats the input) a word per 150 ms: ~15 s.
    const { id } = await server.createTask({ input: `tell me a story about ${"a dragon and ".repeat(25)}a knight`, agent: "slow" });
    const watch = start(["watch", id, "--url", server.baseUrl]);
    await watch.waitFor(`task ${id}`);
    watch.child.kill("SIGINT");
    const { code, stderr } = await watch.finished();
    expect(code).toBe(130);
    expect(stderr).toContain(`detached; task ${id} goes on`);
    expect((await task(id)).status).toBe("running");
    await Bun.sleep(300); // no cancel is on its way either
    expect((await task(id)).status).toBe("running");
    await server.http(`/tasks/${id}/cancel`, { method: "POST" });
  });

  test("a failed or cancelled task gives its exit code; an unknown task is one line and exit 1", async () => {
    const { id } = await server.createTask({ input: "a story", agent: "slow" });
    expect((await server.http(`/tasks/${id}/cancel`, { method: "POST" })).status).toBe(200);
    expect((await cli(["watch", id, "--url", server.baseUrl])).code).toBe(130);
    const unknown = await cli(["watch", "no-such-task", "--url", server.baseUrl]);
    expect(unknown).toEqual({ code: 1, stdout: "", stderr: "agentkit watch: No task with id 'no-such-task'\n" });
  });
});

describe("tasks, cancel, agents", () => {
  test("tasks: a table, newest first; --status filters; --limit; --json is the page", async () => {
    const id = await finishedTask({ input: "What is 1+1?" });
    const { code, stdout } = await cli(["tasks", "--url", server.baseUrl]);
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+STATUS\s+AGENT\s+CREATED\s+STEPS\s+TOKENS\s+INPUT$/);
    expect(lines.some((line) => line.startsWith(id) && /\scompleted\s+default\s/.test(line) && line.endsWith("What is 1+1?"))).toBe(true);
    const json = JSON.parse((await cli(["tasks", "--status", "completed", "--limit", "2", "--json", "--url", server.baseUrl])).stdout) as { tasks: { status: string }[]; next_cursor: string | null };
    expect(json.tasks).toHaveLength(2);
    expect(json.tasks.every((entry) => entry.status === "completed")).toBe(true);
    expect(json.next_cursor).toBeString();
    const cancelled = await cli(["tasks", "--status", "timed_out", "--url", server.baseUrl]);
    expect(cancelled.stdout).toBe("no timed_out tasks\n");
    expect(await cli(["tasks", "--limit", "0", "--url", server.baseUrl])).toMatchObject({ code: 2, stderr: expect.stringContaining("--limit must be a whole number from 1 to 100") as unknown as string });
  });

  test("cancel: a running task ends cancelled; an ended one stays as it ended; an unknown one is exit 1", async () => {
    const { id } = await server.createTask({ input: "a long story", agent: "slow" });
    expect(await cli(["cancel", id, "--url", server.baseUrl])).toEqual({ code: 0, stdout: `task ${id} is cancelled\n`, stderr: "" });
    expect((await task(id)).status).toBe("cancelled");
    const done = await finishedTask({ input: "What is 2+2?" });
    expect((await cli(["cancel", done, "--url", server.baseUrl])).stdout).toBe(`task ${done} had already ended: completed\n`);
    expect(JSON.parse((await cli(["cancel", done, "--json", "--url", server.baseUrl])).stdout)).toMatchObject({ id: done, status: "completed" });
    expect(await cli(["cancel", "nope", "--url", server.baseUrl])).toMatchObject({ code: 1, stdout: "" });
  });

  test("agents: name (* the default), model, tools, approval; --json", async () => {
    const { code, stdout } = await cli(["agents", "--url", server.baseUrl]);
    expect(code).toBe(0);
    expect(stdout.split("\n").map((line) => line.trimEnd().split(/\s{2,}/))).toEqual([
      ["NAME", "MODEL", "TOOLS", "APPROVAL", "DESCRIPTION"],
      ["default *", "demo/react", "calculator, current_time", "-"],
      ["slow", "demo/slow", "calculator, current_time", "-"],
      ["asker", "demo/react", "calculator, ask_user", "-"],
      ["gate", "demo/react", "calculator", "calculator"],
      [""],
    ]);
    const json = JSON.parse((await cli(["agents", "--json", "--url", server.baseUrl])).stdout) as { agents: { name: string; default: boolean }[] };
    expect(json.agents.map((agent) => [agent.name, agent.default])).toEqual([["default", true], ["slow", false], ["asker", false], ["gate", false]]);
  });
});

describe("finding the server, keys, usage", () => {
  test("no server there: exit 3 with one clear line saying where it looked", async () => {
    const closed = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
    const port = closed.port;
    closed.stop(true);
    for (const args of [["run", "hi"], ["watch", "x"], ["tasks"], ["cancel", "x"], ["agents"]]) {
      const { code, stdout, stderr } = await cli([...args, "--url", `http://127.0.0.1:${port}`]);
      expect({ args, code, stdout }).toEqual({ args, code: 3, stdout: "" });
      expect(stderr).toStartWith(`agentkit ${args[0]}: cannot reach the server at http://127.0.0.1:${port} (address from --url): `);
      expect(stderr.split("\n")).toHaveLength(2);
    }
    // AGENTKIT_URL, and the default: the address healthcheck would use.
    expect((await cli(["agents"], { env: { AGENTKIT_URL: `http://127.0.0.1:${port}` } })).stderr).toContain("(address from AGENTKIT_URL)");
    expect((await cli(["agents"], { env: { PORT: String(port) } })).stderr).toContain(`cannot reach the server at http://127.0.0.1:${port} (address from PORT/AGENTKIT_HOST`);
  });

  test("the local server is found like healthcheck finds it: the address file in the data dir", async () => {
    const dir = tempDir();
    try {
      writeAddressFile(dir, { url: server.baseUrl, host: "127.0.0.1", port: server.port, pid: process.pid });
      const { code, stdout } = await cli(["agents", "--json"], { env: { AGENTKIT_DATA_DIR: dir } });
      expect(code).toBe(0);
      expect(JSON.parse(stdout)).toMatchObject({ agents: [{ name: "default" }, { name: "slow" }, { name: "asker" }, { name: "gate" }] });
      expect((await cli(["agents", "--json", "--data-dir", dir])).code).toBe(0);
      expect((await cli(["agents", "--json", "--port", String(server.port)])).code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the key: AGENTKIT_API_KEY or --api-key-file; a wrong or missing one is exit 3 with one line", async () => {
    const url = ["--url", keyed.baseUrl];
    const wrong = await cli(["run", "What is 1+2?", ...url], { env: { AGENTKIT_API_KEY: "not-the-key-000" } });
    expect(wrong).toMatchObject({ code: 3, stdout: "" });
    expect(wrong.stderr).toStartWith("agentkit run: the server refused the key (AGENTKIT_API_KEY or --api-key-file):");
    expect(wrong.stderr.split("\n")).toHaveLength(2);
    const missing = await cli(["tasks", ...url]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toStartWith("agentkit tasks: the server needs a key: set AGENTKIT_API_KEY");
    // A wrong key on the watch itself (the task exists): refused too.
    const { id } = await keyed.createTask({ input: "What is 1+2?" }, { authorization: `Bearer ${KEY}` });
    expect((await cli(["watch", id, ...url], { env: { AGENTKIT_API_KEY: "not-the-key-000" } })).code).toBe(3);

    const good = await cli(["run", "What is 1+2?", "--json", ...url], { env: { AGENTKIT_API_KEY: KEY } });
    expect(good.code).toBe(0);
    expect(frames(good.stdout).at(-1)).toMatchObject({ data: { output: "1+2 = 3" } });
    const file = join(cwd, "key");
    writeFileSync(file, `${KEY}\n`);
    expect((await cli(["watch", id, "--api-key-file", file, ...url])).code).toBe(0);
    expect(await cli(["tasks", "--api-key-file", join(cwd, "missing"), ...url])).toMatchObject({ code: 2, stderr: expect.stringContaining("--api-key-file: cannot read") as unknown as string });
  });

  test("--help of each command, and usage errors (exit 2)", async () => {
    for (const name of ["run", "watch", "tasks", "cancel", "agents"]) {
      const { code, stdout } = await cli([name, "--help"]);
      expect(code).toBe(0);
      expect(stdout).toStartWith(`agentkit ${name} — `);
      expect(stdout).toContain("Exit codes:");
      expect(stdout).toContain("AGENTKIT_API_KEY");
    }
    const general = await cli(["--help"]);
    expect(general.stdout).toContain('agentkit run "What is 17*23?"');
    expect(general.stdout).toContain("agentkit healthcheck");
    expect(await cli(["watch"])).toEqual({ code: 2, stdout: "", stderr: "agentkit: watch needs a task id: agentkit watch <task id>\nRun 'agentkit watch --help' for usage.\n" });
    expect(await cli(["run"])).toMatchObject({ code: 2, stderr: expect.stringContaining("run needs the task's input") as unknown as string });
    expect(await cli(["run", "hi", "--port-typo", "1"])).toMatchObject({ code: 2, stderr: expect.stringContaining("Run 'agentkit run --help'") as unknown as string });
    expect(await cli(["tasks", "--agent", "x"])).toMatchObject({ code: 2, stderr: expect.stringContaining("--agent is not an option of tasks") as unknown as string });
    expect(await cli(["agents", "--url", "ftp://x"])).toMatchObject({ code: 2, stderr: expect.stringContaining("--url must be an http:// or https:// URL") as unknown as string });
  });
});

test("the compiled binary: serve, then run and watch with the same binary", async () => {
  const dir = tempDir();
  try {
    const binary = buildBinary(dir);
    const node = await launchBinary(binary, ["serve", "--data-dir", join(dir, "data")], environment({ AGENTKIT_API_KEY: KEY }), { cwd: dir });
    try {
      // Found through the address file the server wrote, like `agentkit healthcheck`.
      const run = await cli(["run", "What is 17*23?", "--json", "--data-dir", join(dir, "data")], { command: [binary], env: { AGENTKIT_API_KEY: KEY } });
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      const lines = frames(run.stdout);
      expect(lines.at(-1)).toMatchObject({ type: "result", data: { status: "completed", output: "17*23 = 391" } });
      const watch = await cli(["watch", lines[0]!.task_id!, "--url", node.base], { command: [binary], env: { AGENTKIT_API_KEY: KEY } });
      expect(watch.code).toBe(0);
      expect(watch.stdout).toContain("17*23 = 391\n✓ completed · 2 steps");
      expect((await cli(["agents", "--url", node.base], { command: [binary] })).code).toBe(3);
    } finally {
      node.child.kill("SIGTERM");
      await node.exited;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
