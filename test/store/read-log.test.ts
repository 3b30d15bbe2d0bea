/**
 * Reading a task's whole log back (A2A views, decisions on a waiting task, resumes, thread history):
 * the SQLite store answers synchronously, so the reader itself gives the event loop a turn every few
 * milliseconds — a log of 60,000 events read and parsed in one go held the server for 100–300 ms.
 */
import { expect, test } from "bun:test";
import { resumeFromLog, resumeFromStore } from "../../src/engine/resume.ts";
import { stepFrame } from "../../src/protocol/frames.ts";
import type { StepEvent } from "../../src/protocol/events.ts";
import { forEachLogEvent, readLog, type StoredEvent, type TaskStore } from "../../src/store/store.ts";
import { nextTurn } from "../helpers/deferred.ts";

/** A store that answers at once (as SQLite does), with the pages it was asked for counted. */
function storeOf(events: readonly StoredEvent[]) {
  const reads: number[] = [];
  const store = {
    events: async (_id: string, after: number, limit: number) => {
      reads.push(after);
      return events.filter((event) => event.seq > after).slice(0, limit);
    },
  } as unknown as TaskStore;
  return { store, reads };
}

function busy(ms: number) {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

test("forEachLogEvent: every event once, in seq order, page after page; a long read gives the event loop turns", async () => {
  const events = Array.from({ length: 2_500 }, (_, index) => ({ seq: index + 1, frame: `{"seq":${index + 1}}` }));
  const { store, reads } = storeOf(events);
  const visited: number[] = [];
  let visitedWhenDue: number | undefined;
  await nextTurn(); // the read begins with the shared budget whole, not with what earlier tests spent
  setImmediate(() => (visitedWhenDue = visited.length));
  await forEachLogEvent(store, "t", (event) => {
    busy(0.02); // ~50 ms in all: a parse per event
    visited.push(event.seq);
  });
  expect(visited).toEqual(events.map((event) => event.seq));
  expect(reads).toEqual([0, 1000, 2000]); // pages of 1,000, each read once
  expect(visitedWhenDue).toBeGreaterThan(0);
  expect(visitedWhenDue).toBeLessThan(events.length / 2); // within the first slices, not after the read
  expect((await readLog(store, "t")).map((event) => event.seq)).toEqual(visited);
  expect(await readLog(storeOf([]).store, "t")).toEqual([]);
});

test("resumeFromStore rebuilds the same state as resumeFromLog over the same log", async () => {
  const at = new Date("2026-11-26T12:00:00.000Z");
  const steps: StepEvent[] = [];
  for (let step = 1; step <= 700; step++) {
    steps.push({ event_type: "usage", step, data: { input_tokens: 3, output_tokens: 2 } });
    steps.push({ event_type: "thought", step, data: { text: `step ${step}` } });
    steps.push({ event_type: "tool_call", step, data: { id: `c${step}`, name: "calculator", arguments: { expression: `${step}+1` } } });
    if (step < 700) steps.push({ event_type: "tool_result", step, data: { id: `c${step}`, name: "calculator", result: { value: step + 1 } } });
  }
  const events = steps.map((event, index) => ({ seq: index + 1, frame: JSON.stringify(stepFrame(index + 1, event, at)) }));
  const fromStore = await resumeFromStore(storeOf(events).store, { id: "t", input: "count" });
  const fromLog = resumeFromLog("count", events);
  expect(fromStore).toEqual(fromLog);
  expect(fromStore).toMatchObject({ nextStep: 701, lastSeq: events.length, totals: { steps: 700, inputTokens: 2100, outputTokens: 1400 } });
  expect(fromStore.unfinished.map((pending) => pending.call.id)).toEqual(["c700"]);
  // A corrupt frame in a later page fails the same way.
  const corrupt = [...events.slice(0, 1500), { seq: 1501, frame: "{not json" }];
  await expect(resumeFromStore(storeOf(corrupt).store, { id: "t", input: "count" })).rejects.toThrow("seq 1501: not JSON");
});
