/**
 * How long one big model reply holds the server's event loop (not part of `bun run bench`). A fake
 * OpenAI Chat Completions provider (a process of its own, on 127.0.0.1) answers the first model
 * step with the scenario's reply in one go and every later step with "done"; the compiled server
 * runs one task of an agent on it while this process asks `GET /health` every 2 ms. Printed: the
 * task's end, the longest /health wait while it ran, and the server's resident memory after.
 *
 *   bun bench/big-reply.ts [agentkit binary = dist/agentkit] <scenario> <N>
 *
 * Scenarios: `calls` (N calculator calls in one step), `approvals` (the same, each needing
 * approval), `restart` (N slow non-idempotent calls, the server killed once they are stored and
 * started again: the resume), `deltas` (N one-character text deltas), `bigargs` (one call whose
 * argument is N characters, in one event), `fragargs` (the same in 100-character deltas),
 * `deepargs` (one call whose argument nests N levels deep). Environment: MAXCALLS sets the agent's
 * max_tool_calls_per_step; WATCH=1 attaches a WebSocket watcher (deltas are then published).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

if (process.argv[2] === "--provider") {
  const [scenario, nText] = process.argv.slice(3);
  const N = Number(nText);
  const enc = new TextEncoder();
  const chunk = (delta: unknown, finish: string | null = null) =>
    `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", created: 1, model: "m", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  const usage = `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", created: 1, model: "m", choices: [], usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } })}\n\ndata: [DONE]\n\n`;
  function firstStep(): string {
    const parts: string[] = [];
    if (scenario === "deltas") {
      for (let i = 0; i < N; i++) parts.push(chunk({ content: "x" }));
      parts.push(chunk({}, "stop"));
    } else if (scenario === "fragargs") {
      const args = JSON.stringify({ expression: "1+" + "1".repeat(N) });
      parts.push(chunk({ tool_calls: [{ index: 0, id: "call_0", type: "function", function: { name: "calculator", arguments: "" } }] }));
      for (let i = 0; i < args.length; i += 100) parts.push(chunk({ tool_calls: [{ index: 0, function: { arguments: args.slice(i, i + 100) } }] }));
      parts.push(chunk({}, "tool_calls"));
    } else if (scenario === "deepargs") {
      const args = '{"expression":' + "[".repeat(N) + "]".repeat(N) + "}";
      parts.push(chunk({ tool_calls: [{ index: 0, id: "call_0", type: "function", function: { name: "calculator", arguments: args } }] }));
      parts.push(chunk({}, "tool_calls"));
    } else if (scenario === "bigargs") {
      const args = JSON.stringify({ expression: "1+" + "1".repeat(N) });
      parts.push(chunk({ tool_calls: [{ index: 0, id: "call_0", type: "function", function: { name: "calculator", arguments: args } }] }));
      parts.push(chunk({}, "tool_calls"));
    } else {
      const tool = scenario === "restart" ? "slow_op" : "calculator";
      const args = scenario === "restart" ? '{"n":1}' : '{"expression":"1+1"}';
      for (let i = 0; i < N; i++) parts.push(chunk({ tool_calls: [{ index: i, id: `call_${i}`, type: "function", function: { name: tool, arguments: args } }] }));
      parts.push(chunk({}, "tool_calls"));
    }
    return parts.join("") + usage;
  }
  const body1 = enc.encode(firstStep());
  const body2 = enc.encode(chunk({ content: "done" }) + chunk({}, "stop") + usage);
  let requests = 0;
  const provider = Bun.serve({
    port: 0, hostname: "127.0.0.1",
    async fetch(req) {
      await req.text();
      const body = requests++ === 0 ? body1 : body2;
      return new Response(new ReadableStream({ start(c) { for (let i = 0; i < body.length; i += 65536) c.enqueue(body.subarray(i, i + 65536)); c.close(); } }), { headers: { "content-type": "text/event-stream" } });
    },
  });
  console.log(provider.port);
}

/** `slow_op`: a tool that is not idempotent and takes a minute (the `restart` scenario). */
const TOOLS_MODULE = `import { defineTool, z } from "agentkit/tools";
// Non-idempotent, slow: a restart while it runs leaves its calls without results.
const slow = defineTool({
  name: "slow_op",
  description: "slow",
  input: z.object({ n: z.number() }),
  async execute({ n }, { signal }) {
    await new Promise((r, j) => { const t = setTimeout(r, 60_000); signal.addEventListener("abort", () => { clearTimeout(t); j(new Error("aborted")); }); });
    return n;
  },
});
export default [slow];
`;

async function main() {
  const binary = resolve(process.argv[2] ?? join(import.meta.dir, "..", "dist", "agentkit"));
  const scenario = process.argv[3] ?? "calls";
  const N = Number(process.argv[4] ?? 1000);
  const providerChild = Bun.spawn(["bun", import.meta.path, "--provider", scenario, String(N)], { stdout: "pipe", stderr: "inherit" });
  const providerPort = await (async () => { const r = providerChild.stdout.getReader(); const { value } = await r.read(); return Number(new TextDecoder().decode(value).trim()); })();
  const provider = { port: providerPort, stop: async (_: boolean) => { providerChild.kill("SIGKILL"); await providerChild.exited; } };
  const dir = mkdtempSync(join(tmpdir(), "big-reply-"));
  writeFileSync(join(dir, "tools.ts"), TOOLS_MODULE);
  writeFileSync(join(dir, "agentkit.json"), JSON.stringify({
    tools_module: join(dir, "tools.ts"),
    agents: [{ name: "a", model: "openai/gpt-test", tools: ["calculator", "slow_op"], max_steps: 5, ...(process.env.MAXCALLS ? { max_tool_calls_per_step: Number(process.env.MAXCALLS) } : {}), timeout_ms: 600000,
      ...(scenario === "approvals" ? { approval: ["calculator"] } : {}) }],
  }));
  const env = { PATH: process.env.PATH!, HOME: dir, OPENAI_API_KEY: "sk-x", OPENAI_BASE_URL: `http://127.0.0.1:${provider.port}/v1`, AGENTKIT_ACCESS_LOG: "0", AGENTKIT_LOG_LEVEL: "warn", AGENTKIT_MAX_QUEUED_TASKS: "200000" };
  async function launch() {
    const child = Bun.spawn([binary, "serve", "--config", join(dir, "agentkit.json"), "--data-dir", join(dir, "data"), "--port", "0", "--log-level", "info"], { env, cwd: dir, stdout: "ignore", stderr: "pipe" });
    let log = "";
    const reader = child.stderr.getReader();
    const dec = new TextDecoder();
    let port = 0;
    while (!port) {
      const { value, done } = await reader.read();
      if (done) throw new Error("exited: " + log);
      log += dec.decode(value);
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(log);
      if (m) port = Number(m[1]);
    }
    void (async () => { for (;;) { const { done } = await reader.read(); if (done) break; } })();
    return { child, base: `http://127.0.0.1:${port}` };
  }
  let server = await launch();
  // /health every 2 ms: worst wait for an answer
  let worst = 0, probes = 0, probing = true;
  const probeLoop = (async () => {
    while (probing) {
      const t = performance.now();
      try { await fetch(`${server.base}/health`); } catch {}
      const d = performance.now() - t;
      probes++;
      if (d > worst) worst = d;
      await Bun.sleep(2);
    }
  })();
  await Bun.sleep(300); worst = 0; probes = 0;
  const t0 = performance.now();
  const created = await (await fetch(`${server.base}/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input: "go", agent: "a" }) })).json() as any;
  const id = created.id;
  let wsFrames = 0;
  if (process.env.WATCH) { const ws = new WebSocket(`${server.base.replace("http", "ws")}/ws/tasks/${id}`); ws.onmessage = () => { wsFrames++; }; }
  async function waitFor(statuses: string[], ms = Number(process.env.WAITMS ?? 300_000)) {
    const end = performance.now() + ms;
    for (;;) {
      const task = await (await fetch(`${server.base}/tasks/${id}`)).json() as any;
      if (statuses.includes(task.status)) return task;
      if (performance.now() > end) throw new Error("timeout: " + JSON.stringify(task));
      await Bun.sleep(50);
    }
  }
  let task: any;
  if (scenario === "restart") {
    // wait until the calls are stored, then kill -9 and restart: the run resumes from the log
    for (;;) { const t = await (await fetch(`${server.base}/tasks/${id}`)).json() as any; if (t.last_seq >= N) break; await Bun.sleep(50); }
    const phase1 = worst; worst = 0;
    server.child.kill(9); await server.child.exited;
    server = await launch();
    worst = 0;
    task = await waitFor(["completed", "failed", "timed_out"]);
    console.log(JSON.stringify({ scenario, N, phase1WorstMs: +phase1.toFixed(1) }));
  } else {
    task = await waitFor(["completed", "failed", "timed_out", "waiting"]);
  }
  const elapsed = performance.now() - t0;
  probing = false; await probeLoop;
  const rss = await (await fetch(`${server.base}/metrics`)).text().then((t) => /process_resident_memory_bytes (\d+)/.exec(t)?.[1]);
  console.log(JSON.stringify({ wsFrames, scenario, N, status: task.status, stop: task.stop_reason, error: task.error?.code, last_seq: task.last_seq, elapsedMs: Math.round(elapsed), probes, worstHealthMs: +worst.toFixed(1), rssMB: rss ? Math.round(Number(rss) / 1e6) : null }));
  server.child.kill("SIGTERM"); await server.child.exited; await provider.stop(true);
  rmSync(dir, { recursive: true, force: true });
}

if (process.argv[2] !== "--provider") await main();
