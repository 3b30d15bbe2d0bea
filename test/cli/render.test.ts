/** The terminal rendering of `agentkit run` / `watch` (src/cli/render.ts) on scripted frame sequences. */
import { expect, test } from "bun:test";
import type { WatchFrame } from "../../src/client/index.ts";
import { createRenderer, renderFrames, summary } from "../../src/cli/render.ts";

const ID = "5471fb3c-151b-4d94-9cdb-80b7921bac51";
const at = "2026-11-25T03:43:31.124Z";
const step = (seq: number, stepNumber: number, event_type: string, data: unknown): WatchFrame => ({ type: "step", seq, data: { event_type, step: stepNumber, data, timestamp: at } });
const delta = (stepNumber: number, text: string, kind: "text" | "reasoning" = "text"): WatchFrame => ({ type: "delta", step: stepNumber, data: { kind, text } });

/** The demo model's 17*23, as a live watcher gets it: deltas before each step's durable events. */
const LIVE: WatchFrame[] = [
  { type: "connected", task_id: ID, status: "queued", last_seq: 0 },
  delta(1, "I'll compute "),
  delta(1, "17*23 with "),
  delta(1, "the calculator."),
  step(1, 1, "usage", { input_tokens: 18, output_tokens: 18 }),
  step(2, 1, "thought", { text: "I'll compute 17*23 with the calculator." }),
  step(3, 1, "tool_call", { id: "call_1", name: "calculator", arguments: { expression: "17*23" } }),
  step(4, 1, "tool_result", { id: "call_1", name: "calculator", result: { expression: "17*23", value: 391 } }),
  delta(2, "17*23 "),
  delta(2, "= 391"),
  step(5, 2, "usage", { input_tokens: 37, output_tokens: 4 }),
  {
    type: "result",
    seq: 6,
    data: { status: "completed", task_id: ID, stop_reason: "final_answer", total_steps: 2, total_tokens: 77, usage: { input_tokens: 55, output_tokens: 22 }, output: "17*23 = 391", cost_usd: 0.000123 },
  },
];
const DURABLE = LIVE.filter((frame) => frame.type !== "delta");

/** Erases what the live region drew, the way a terminal would: keeps only what stays on screen. */
function screen(output: string): string {
  const lines: string[] = [""];
  for (const token of output.match(/\u001b\[\d*[A-Za-z]|\n|[^\u001b\n]+/g) ?? []) {
    const move = /^\u001b\[(\d*)F$/.exec(token);
    if (move) {
      lines.splice(lines.length - 1 - Number(move[1] || 1));
      lines.push("");
    } else if (token === "\u001b[J" || /^\u001b\[\d*m$/.test(token)) {
      // erase below (already dropped) / colour
    } else if (token === "\n") lines.push("");
    else lines[lines.length - 1] += token;
  }
  return lines.join("\n");
}

test("plain (a pipe): one line per event, the answer and the usage, no escape codes; deltas ignored", () => {
  const expected = [
    `task ${ID} · queued`,
    "I'll compute 17*23 with the calculator.",
    '→ calculator {"expression":"17*23"}',
    '✓ calculator → {"expression":"17*23","value":391}',
    "17*23 = 391",
    "✓ completed · 2 steps · 77 tokens (55 in, 22 out) · $0.000123",
    "",
  ].join("\n");
  expect(renderFrames(DURABLE, { color: false, live: false })).toBe(expected);
  // The same with the deltas in (a plain watcher asks for none, but they must not show if sent).
  expect(renderFrames(LIVE, { color: false, live: false })).toBe(expected);
});

test("live: text typed from the deltas, never printed twice; the tool call ends as one line; colour only when asked", () => {
  const output = renderFrames(LIVE, { color: false, live: true, columns: () => 80 });
  expect(output).not.toMatch(/\u001b\[[\d;]*m/);
  // Typed piece by piece: each delta's text is written as it comes.
  expect(output).toContain("I'll compute 17*23 with the calculator.");
  expect(output.split("17*23 with").length).toBe(2);
  expect(output.split("= 391").length).toBe(2);
  // The spinner line of the call was drawn, then erased for the permanent line.
  expect(output).toMatch(/⠋ calculator \{"expression":"17\*23"\}\n\u001b\[1F\u001b\[J✓ calculator/);
  expect(screen(output)).toBe(
    [
      `task ${ID} · queued`,
      "I'll compute 17*23 with the calculator.",
      '✓ calculator {"expression":"17*23"} → {"expression":"17*23","value":391}',
      "17*23 = 391",
      "✓ completed · 2 steps · 77 tokens (55 in, 22 out) · $0.000123",
      "",
    ].join("\n"),
  );
  const colored = renderFrames(LIVE, { color: true, live: true });
  expect(colored).toContain("\u001b[32m✓\u001b[39m calculator");
  expect(screen(colored)).toBe(screen(output));
});

test("live: text the deltas missed (a reconnect) is completed from the durable events", () => {
  const frames = LIVE.filter((frame) => !(frame.type === "delta" && (frame.data.text === "the calculator." || frame.data.text === "= 391")));
  const output = screen(renderFrames(frames, { color: false, live: true }));
  expect(output).toContain("I'll compute 17*23 with the calculator.\n");
  expect(output).toContain("\n17*23 = 391\n");
  // Deltas that do not match the stored text (lost in the middle): the stored text on its own line.
  const garbled = screen(renderFrames([LIVE[0]!, delta(1, "I will"), ...DURABLE.slice(1)], { color: false, live: true }));
  expect(garbled).toContain("I will\nI'll compute 17*23 with the calculator.\n");
});

test("live: the spinner animates only while something runs, and stops at the result", () => {
  const renderer = createRenderer({ color: false, live: true });
  renderer.frame(LIVE[0]!);
  renderer.frame(step(1, 1, "usage", { input_tokens: 1, output_tokens: 1 }));
  renderer.frame(step(2, 1, "tool_call", { id: "a", name: "calculator", arguments: { expression: "1+1" } }));
  const frames = [renderer.tick(), renderer.tick()];
  expect(frames[0]).toBe('\u001b[1F\u001b[J⠙ calculator {"expression":"1+1"}\n');
  expect(frames[1]).toBe('\u001b[1F\u001b[J⠹ calculator {"expression":"1+1"}\n');
  // Two calls at once: two lines, erased together.
  renderer.frame(step(3, 1, "tool_call", { id: "b", name: "current_time", arguments: {} }));
  expect(renderer.tick()).toBe('\u001b[2F\u001b[J⠸ calculator {"expression":"1+1"}\n⠸ current_time {}\n');
  expect(renderer.frame(step(4, 1, "tool_error", { id: "b", name: "current_time", error: { code: "timeout", message: "took too long", retryable: true } }))).toBe(
    '\u001b[2F\u001b[J✗ current_time {} → timeout: took too long\n⠸ calculator {"expression":"1+1"}\n',
  );
  renderer.frame({ type: "result", seq: 5, data: { status: "cancelled", task_id: ID, stop_reason: "cancelled" } });
  expect(renderer.tick()).toBe("");
  // Plain mode never animates.
  const plain = createRenderer({ color: false, live: false });
  plain.frame(step(1, 1, "tool_call", { id: "a", name: "calculator", arguments: {} }));
  expect(plain.tick()).toBe("");
});

test("approvals and questions: shown clearly, with how to decide when nobody is asked at the terminal", () => {
  const frames: WatchFrame[] = [
    { type: "connected", task_id: ID, status: "running", last_seq: 0 },
    step(1, 1, "tool_call", { id: "call_1", name: "http_fetch", arguments: { url: "https://status.example.com" } }),
    step(2, 1, "approval_requested", { id: "call_1", name: "http_fetch", arguments: { url: "https://status.example.com" }, expires_at: "2026-11-26T03:43:31.124Z" }),
    step(3, 1, "approval_decided", { id: "call_1", name: "http_fetch", decision: "rejected", reason: "not now", by: "alice" }),
    step(4, 1, "tool_error", { id: "call_1", name: "http_fetch", error: { code: "rejected", message: "The user rejected this call", retryable: false } }),
    step(5, 2, "tool_call", { id: "call_2", name: "ask_user", arguments: { question: "Which region?" } }),
    step(6, 2, "question", { id: "call_2", name: "ask_user", question: "Which region?", expires_at: null }),
    step(7, 2, "answer", { id: "call_2", name: "ask_user", text: "eu-west", by: "alice" }),
    step(8, 3, "user_input", { id: "in_1", text: "be brief", by: "bob" }),
    step(9, 3, "resumed", { attempt: 1, node: null, after_seq: 8, not_rerun: [], rerun: [], reason: "continued" }),
    step(10, 3, "output_invalid", { message: "expected object", attempt: 1 }),
    step(10, 3, "output_invalid", { message: "the model's answer was empty", attempt: 2, kind: "empty" }),
    step(11, 3, "some_future_event", {}),
    { type: "resync", data: { task_id: ID, status: "failed", stop_reason: "error", output: null, error: null, last_seq: 20, pruned_through: 18, total_steps: 3, total_tokens: 10 } },
    { type: "reconnecting", attempt: 2, delay_ms: 500, reason: "connection lost (1006)" },
    {
      type: "result",
      seq: 21,
      data: { status: "failed", task_id: ID, stop_reason: "error", total_steps: 3, total_tokens: 10, error: { code: "rate_limited", message: "openai/gpt: HTTP 429\nslow down", retryable: true } },
    },
  ];
  const plain = renderFrames(frames, { color: false, live: false, interactive: false });
  expect(plain.split("\n")).toEqual([
    `task ${ID} · running`,
    '→ http_fetch {"url":"https://status.example.com"}',
    `⏸ approval needed: http_fetch {"url":"https://status.example.com"} (call call_1, until 2026-11-26T03:43:31.124Z) — decide with POST /tasks/${ID}/approvals {"call_id":"call_1","decision":"approve"|"reject"}`,
    "✗ rejected http_fetch (by alice: not now)",
    "✗ http_fetch → rejected: The user rejected this call",
    '→ ask_user {"question":"Which region?"}',
    `? the agent asks: Which region? (call call_2) — answer with POST /tasks/${ID}/answers {"call_id":"call_2","text":"…"}`,
    "↳ answered by alice: eu-west",
    "» bob: be brief",
    "↻ resumed (continued, attempt 1)",
    "! the answer did not match the output schema (attempt 1): expected object",
    "! the answer was sent back (attempt 2): the model's answer was empty",
    "· some_future_event",
    "… events through seq 18 were pruned; the task is failed",
    "reconnecting (attempt 2, in 500 ms): connection lost (1006)",
    "✗ failed: rate_limited: openai/gpt: HTTP 429 ⏎ slow down · 3 steps · 10 tokens",
    "",
  ]);
  // At a terminal where the person is asked, no REST hint; the waiting call stays in the live region.
  const renderer = createRenderer({ color: false, live: true, interactive: true });
  renderer.frame(frames[0]!);
  renderer.frame(frames[1]!);
  const asked = renderer.frame(frames[2]!);
  expect(asked).not.toContain("POST /tasks");
  expect(asked).toEndWith('⏸ http_fetch {"url":"https://status.example.com"} waiting for approval\n');
  expect(renderer.suspend()).toBe("\u001b[1F\u001b[J");
  expect(renderer.resume()).toBe('⏸ http_fetch {"url":"https://status.example.com"} waiting for approval\n');
});

test("reasoning is dim and typed live; a replay shows the stored reasoning once", () => {
  const frames: WatchFrame[] = [
    delta(1, "Let me think", "reasoning"),
    delta(1, "The answer is 4."),
    step(1, 1, "usage", { input_tokens: 1, output_tokens: 1 }),
    step(2, 1, "thought", { text: "The answer is 4.", reasoning: "Let me think" }),
  ];
  const live = renderFrames(frames, { color: true, live: true });
  expect(live).toContain("\u001b[2mthinking: \u001b[2mLet me think\u001b[0m\nThe answer is 4.\n");
  expect(live.split("Let me think").length).toBe(2);
  const replay = renderFrames(frames.slice(2), { color: false, live: false });
  expect(replay).toBe("thinking: Let me think\nThe answer is 4.\n");
});

test("the summary: status, steps, tokens, cost", () => {
  expect(summary({ status: "completed", task_id: ID, stop_reason: "final_answer", total_steps: 1, total_tokens: 5, usage: { input_tokens: 3, output_tokens: 2 }, cost_usd: 0.25 })).toBe(
    "✓ completed · 1 step · 5 tokens (3 in, 2 out) · $0.2500",
  );
  expect(summary({ status: "timed_out", task_id: ID, stop_reason: "deadline" })).toBe("✗ timed_out (deadline)");
});
