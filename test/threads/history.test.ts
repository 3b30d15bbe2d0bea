/**
 * A thread's history with the runner's turn cache: the same messages as rebuilding every turn from
 * the logs, with each completed task's log read once — again after retention pruned it — and the
 * cache bounded by characters.
 */
import { afterEach, expect, test } from "bun:test";
import type { ChatMessage } from "../../src/llm/model.ts";
import { stepFrame } from "../../src/protocol/frames.ts";
import type { Task } from "../../src/protocol/task.ts";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import type { TaskStore } from "../../src/store/store.ts";
import { createTurnCache, threadHistory } from "../../src/threads/history.ts";

const stores: TaskStore[] = [];
afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
});

const POLICY = { max_turns: 50, max_chars: 400_000 };

/** A store with a thread of `count` completed tasks (a calculator step each), then a queued one. */
async function threadOf(count: number): Promise<{ store: TaskStore; reads: string[]; next: Task }> {
  const store = createSqliteStore({ dataDir: ":memory:" });
  stores.push(store);
  await store.createThread({ id: "thr_1", owner: "o", createdAt: new Date() });
  for (let index = 0; index < count; index++) {
    const id = `task-${index}`;
    await store.createTask({ id, owner: "o", agent: "a", input: `What is ${index}+1?`, metadata: {}, createdAt: new Date(), threadId: "thr_1" });
    await store.markRunning(id, new Date());
    // What the engine stores for a calculator step, then the answering step (its answer is the result's).
    const events = [
      { event_type: "usage", step: 1, data: { input_tokens: 5, output_tokens: 5 } },
      { event_type: "thought", step: 1, data: { text: "Adding." } },
      { event_type: "tool_call", step: 1, data: { id: "c1", name: "calculator", arguments: { expression: `${index}+1` } } },
      { event_type: "tool_result", step: 1, data: { id: "c1", name: "calculator", result: { expression: `${index}+1`, value: index + 1 } } },
      { event_type: "usage", step: 2, data: { input_tokens: 5, output_tokens: 5 } },
    ].map((event, at) => ({ seq: at + 1, frame: JSON.stringify(stepFrame(at + 1, event as never, new Date())) }));
    await store.finishTask(
      id,
      { status: "completed", stopReason: "final_answer", output: `${index + 1}`, outputJson: null, error: null, totalSteps: 2, inputTokens: 5, outputTokens: 5, costUsd: null, finishedAt: new Date(Date.now() - 60_000) },
      events.length + 1,
      JSON.stringify({ type: "result", seq: events.length + 1 }),
      undefined,
      undefined,
      events,
    );
  }
  const next = await store.createTask({ id: "task-next", owner: "o", agent: "a", input: "And now?", metadata: {}, createdAt: new Date(), threadId: "thr_1" });
  // Count the log reads.
  const reads: string[] = [];
  const events = store.events.bind(store);
  store.events = (id, after, limit) => (reads.push(id), events(id, after, limit));
  return { store, reads, next };
}

test("with the cache: the same messages as without; each earlier task's log is read once, not once per turn", async () => {
  const { store, reads, next } = await threadOf(5);
  const uncached = await threadHistory(store, next, POLICY);
  expect(reads).toHaveLength(5);
  // A thought, the call, its result, the answer — after each turn's input.
  expect(uncached.filter((message) => message.role === "user").map((message) => message.content)).toEqual(["What is 0+1?", "What is 1+1?", "What is 2+1?", "What is 3+1?", "What is 4+1?"]);
  expect(uncached.filter((message) => message.role === "tool")).toHaveLength(5);

  const cache = createTurnCache();
  reads.length = 0;
  expect(await threadHistory(store, next, POLICY, cache)).toEqual(uncached);
  expect(reads).toHaveLength(5);
  reads.length = 0;
  const again = await threadHistory(store, next, POLICY, cache);
  expect(again).toEqual(uncached);
  expect(reads).toEqual([]);
  // The cached messages are frozen: a reader that changed one would change every later turn's history.
  expect(again.every((message) => Object.isFrozen(message))).toBe(true);
  expect(() => {
    (again[0] as { content: string }).content = "changed";
  }).toThrow();
});

test("a task that retention pruned misses the cache and is rebuilt from its row (its input and answer), without its log; the cache is bounded by characters, least recently used out first", async () => {
  const { store, reads, next } = await threadOf(3);
  const cache = createTurnCache();
  await threadHistory(store, next, POLICY, cache);
  expect(await store.pruneEvents(new Date())).toBe(3);
  reads.length = 0;
  const pruned = await threadHistory(store, next, POLICY, cache);
  expect(pruned).toEqual(await threadHistory(store, next, POLICY));
  // Each turn is its input and answer only: the pruned logs' `pruned_through` missed the cache.
  expect(pruned.map((message: ChatMessage) => message.role)).toEqual(["user", "assistant", "user", "assistant", "user", "assistant"]);
  expect(reads).toEqual([]); // a pruned turn is built from the task row, without its log

  // Bounded: with room for about two turns, the least recently used goes — a read counts as a use.
  const small = createTurnCache(40);
  const tasks = await store.threadTasks("thr_1", { limit: 10 });
  const turn = () => [{ role: "user" as const, content: "x".repeat(15) }];
  small.set(tasks[0]!, turn());
  small.set(tasks[1]!, turn());
  expect(small.get(tasks[0]!)).toBeDefined(); // now tasks[1] is the least recently used
  small.set(tasks[2]!, turn());
  expect(small.size).toBe(2);
  expect(small.get(tasks[1]!)).toBeUndefined();
  expect(small.get(tasks[0]!)).toBeDefined();
  expect(small.get(tasks[2]!)).toBeDefined();
});

test("a turn whose log retention prunes while it is read (the read stops short of the task's last seq) is its input and answer only, not a part of its steps", async () => {
  const { store, next } = await threadOf(2);
  // task-1's log as a read meets it when the prune lands between two pages: its first step (settled), then nothing.
  const events = store.events.bind(store);
  store.events = async (id, after, limit) => (id === "task-1" ? (after === 0 ? (await events(id, 0, limit)).slice(0, 4) : []) : events(id, after, limit));
  const history = await threadHistory(store, next, POLICY);
  const roles = history.map((message: ChatMessage) => message.role);
  // task-0 whole (input, thought and call, result, answer); task-1 as its input and answer.
  expect(roles).toEqual(["user", "assistant", "tool", "assistant", "user", "assistant"]);
  expect(history.slice(-2).map((message: ChatMessage) => message.content)).toEqual(["What is 1+1?", "2"]);
});

test("a turn whose log retention begins to prune while it is read (from its start: the read goes on past a hole) is its input and answer only", async () => {
  const { store } = await threadOf(0);
  // A completed task of two calculator steps, then the answering step.
  await store.createTask({ id: "two", owner: "o", agent: "a", input: "What is 1+1+1?", metadata: {}, createdAt: new Date(), threadId: "thr_1" });
  await store.markRunning("two", new Date());
  const stepOf = (step: number, expression: string, value: number) => [
    { event_type: "usage", step, data: { input_tokens: 5, output_tokens: 5 } },
    { event_type: "thought", step, data: { text: `Adding ${expression}.` } },
    { event_type: "tool_call", step, data: { id: `c${step}`, name: "calculator", arguments: { expression } } },
    { event_type: "tool_result", step, data: { id: `c${step}`, name: "calculator", result: { expression, value } } },
  ];
  const events = [...stepOf(1, "1+1", 2), ...stepOf(2, "2+1", 3), { event_type: "usage", step: 3, data: { input_tokens: 5, output_tokens: 5 } }].map(
    (event, at) => ({ seq: at + 1, frame: JSON.stringify(stepFrame(at + 1, event as never, new Date())) }),
  );
  await store.finishTask(
    "two",
    { status: "completed", stopReason: "final_answer", output: "3", outputJson: null, error: null, totalSteps: 3, inputTokens: 15, outputTokens: 15, costUsd: null, finishedAt: new Date(Date.now() - 60_000) },
    events.length + 1,
    JSON.stringify({ type: "result", seq: events.length + 1 }),
    undefined,
    undefined,
    events,
  );
  const later = await store.createTask({ id: "later", owner: "o", agent: "a", input: "And?", metadata: {}, createdAt: new Date(), threadId: "thr_1" });
  // The log as a read meets it when a prune's first piece lands just before: step 1 gone, the rest
  // there (a replay of which is a turn that looks whole), and pruned_through moved (here the whole
  // prune lands then).
  const read = store.events.bind(store);
  store.events = async (id, after, limit) => {
    if (id !== "two") return read(id, after, limit);
    const page = (await read(id, after, limit)).filter((event) => event.seq > 4);
    await store.pruneEvents(new Date());
    return page;
  };
  const history = await threadHistory(store, later, POLICY);
  expect(history).toEqual([
    { role: "user", content: "What is 1+1+1?" },
    { role: "assistant", content: "3" },
  ]);
});

test("only the turns that can be kept are read: a turn whose input and answer do not fit in max_chars is not read, nor is any older one", async () => {
  const { store, reads, next } = await threadOf(5);
  // Each turn's input and answer: "What is N+1?" and "N+1", 13 characters; room for two of them.
  const policy = { max_turns: 50, max_chars: 26 };
  const history = await threadHistory(store, next, policy);
  expect(history.map((message) => message.content)).toEqual(["What is 3+1?", "4", "What is 4+1?", "5"]);
  expect(reads.sort()).toEqual(["task-3", "task-4"]);
  // The turns kept are the same as when every turn is read and then fitted.
  reads.length = 0;
  const lastTwo = await threadHistory(store, next, { max_turns: 2, max_chars: 400_000 });
  expect(lastTwo.map((message) => message.role)).toEqual(["user", "assistant", "tool", "assistant", "user", "assistant", "tool", "assistant"]);
  expect(lastTwo[0]!.content).toBe("What is 3+1?");
  expect(reads.sort()).toEqual(["task-3", "task-4"]);
});
