/**
 * The A2A view's log digest (src/protocols/a2a/view.ts): frames it does not read are skipped
 * without being parsed, with the same result as parsing them; the cache of digests is bounded by
 * the text they hold, least recently used first out.
 */
import { expect, test } from "bun:test";
import { stepFrame } from "../../src/protocol/frames.ts";
import type { StepEvent } from "../../src/protocol/events.ts";
import type { Task } from "../../src/protocol/task.ts";
import { DigestCache, LogDigest } from "../../src/protocols/a2a/view.ts";

const task = { id: "t1", thread_id: null, input: "hi", metadata: {}, status: "waiting" } as unknown as Task;
const frame = (seq: number, event: StepEvent) => ({ seq, frame: JSON.stringify(stepFrame(seq, event, new Date(0))) });

test("a digest reads the history and the open asks; tool results close asks only while one is open", () => {
  const digest = new LogDigest(task);
  const events = [
    frame(1, { event_type: "usage", step: 1, data: { input_tokens: 1, output_tokens: 1 } }),
    frame(2, { event_type: "thought", step: 1, data: { text: "let me ask" } }),
    frame(3, { event_type: "tool_call", step: 1, data: { id: "a", name: "calculator", arguments: { expression: "1+1" } } }),
    frame(4, { event_type: "tool_result", step: 1, data: { id: "a", name: "calculator", result: 2 } }),
    frame(5, { event_type: "approval_requested", step: 2, data: { id: "b", name: "calculator", arguments: {}, expires_at: null } }),
    frame(6, { event_type: "question", step: 2, data: { id: "c", name: "ask_user", question: "why?", expires_at: null } }),
    frame(7, { event_type: "tool_error", step: 2, data: { id: "b", name: "calculator", error: { code: "rejected", message: "no", retryable: false } } }),
    { seq: 8, frame: "not JSON at all" },
  ];
  for (const event of events) digest.add(event);
  expect(digest.lastSeq).toBe(8);
  expect(digest.history.map((message) => message.parts[0])).toEqual([{ text: "let me ask", mediaType: "text/plain" }]);
  expect(digest.asks.map((ask) => ask.callId)).toEqual(["c"]);
  // A copy goes on from there; the original stays as it was.
  const copy = digest.clone();
  copy.add(frame(9, { event_type: "user_input", step: 3, data: { id: "i", text: "because", by: "k" } }));
  expect(copy.history).toHaveLength(2);
  expect(digest.history).toHaveLength(1);
  expect(copy.lastSeq).toBe(9);
  expect(digest.lastSeq).toBe(8);
  // Settling an ask in the copy leaves the original's open asks as they were.
  copy.add(frame(10, { event_type: "answer", step: 3, data: { id: "c", name: "ask_user", text: "because", by: "k" } }));
  expect(copy.asks).toEqual([]);
  expect(digest.asks.map((ask) => ask.callId)).toEqual(["c"]);
});

test("the digest cache keeps what fits in its budget, the least recently used leaving first; one too big for it is not kept", () => {
  const sized = (chars: number) => Object.assign(new LogDigest(task), { chars });
  const cache = new DigestCache(16_000); // a digest counts its text + 1,024; one over 2,000 in all is not kept
  for (let index = 0; index < 8; index++) cache.set(`t${index}`, sized(900)); // 8 × 1,924 = 15,392
  expect(cache.size).toBe(8);
  cache.get("t0"); // t0 is used: t1 is now the oldest
  cache.set("t8", sized(900)); // 17,316 > 16,000: t1 leaves
  expect(cache.size).toBe(8);
  expect(cache.get("t1")).toBeUndefined();
  for (const kept of ["t0", "t2", "t8"]) expect(cache.get(kept)).toBeDefined();
  cache.set("huge", sized(1_000)); // 2,024: more than an eighth of the budget
  expect(cache.get("huge")).toBeUndefined();
  cache.set("t0", sized(0)); // replacing an entry counts it once
  cache.delete("t2");
  expect(cache.size).toBe(7);
  for (let index = 0; index < 8; index++) cache.set(`u${index}`, sized(900)); // all the t's leave but the newest ones that fit
  expect(cache.size).toBe(8);
});
