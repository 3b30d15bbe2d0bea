/**
 * The MCP server's task follower (src/protocols/mcp/follow-task.ts) on its own: a `tools/call` that
 * waits for a person answers with the requests the task waits for now — not one that its log
 * decided later, which a replay still on its way has not reached.
 */
import { expect, test } from "bun:test";
import type { EventBus } from "../../src/bus/bus.ts";
import { createLiveFeed } from "../../src/bus/live-feed.ts";
import { silentLogger } from "../../src/lib/logger.ts";
import type { Task } from "../../src/protocol/task.ts";
import { followTask } from "../../src/protocols/mcp/follow-task.ts";
import type { StoredEvent, TaskStore } from "../../src/store/store.ts";
import { nextTurn } from "../helpers/deferred.ts";

const step = (seq: number, event_type: string, data: object): StoredEvent => ({
  seq,
  frame: JSON.stringify({ type: "step", seq, data: { event_type, step: 1, data, timestamp: "2026-01-01T00:00:00.000Z" } }),
});

test("a park heard while the replay is in the middle of the log: the call waits for the request still open at the log's end", async () => {
  const log = [
    step(1, "approval_requested", { id: "c1", name: "calculator", arguments: { expression: "1+1" } }),
    step(2, "approval_decided", { id: "c1", decision: "approved", by: "admin" }),
    step(3, "approval_requested", { id: "c2", name: "calculator", arguments: { expression: "2+2" } }),
  ];
  const task = { id: "t", status: "waiting", last_seq: 3, pruned_through: 0 } as Task;
  const store = {
    events: async (_id: string, after: number, limit: number) => log.filter((event) => event.seq > after).slice(0, limit),
    getTask: async () => ({ ...task }),
  } as unknown as TaskStore;
  const feed = createLiveFeed({ publish() {}, bind() {} } as unknown as EventBus);
  await nextTurn(); // the replay begins with the shared budget whole
  const end = await followTask({
    store,
    feed,
    logger: silentLogger,
    task,
    signal: new AbortController().signal,
    waitPollMs: 60_000, // no poll: the answer comes when the stream reaches the log's end
    onStep: (seq) => {
      if (seq !== 1) return;
      // The park is heard here, and the replay gives the event loop a turn before going on.
      feed.parked("t");
      const until = performance.now() + 6;
      while (performance.now() < until);
    },
  });
  expect(end).toMatchObject({ kind: "waiting", open: [{ call_id: "c2" }] });
});
