/** The live feed's audience check for live-only frames (`wantsDeltas`): a delta nobody reads is not sent. */
import { expect, test } from "bun:test";
import { deltaTopic, type EventBus } from "../../src/bus/bus.ts";
import { createLiveFeed } from "../../src/bus/live-feed.ts";

test("wantsDeltas: the bus's delta subscribers or an in-process listener that takes deltas; a bus that cannot tell counts as an audience", () => {
  const subscribed = new Map<string, number>();
  const bus: EventBus = { publish() {}, subscribers: (topic) => subscribed.get(topic) ?? 0 };
  const feed = createLiveFeed(bus);
  feed.open("t", 0);
  expect(feed.wantsDeltas("t")).toBe(false);
  subscribed.set(deltaTopic("t"), 1);
  expect(feed.wantsDeltas("t")).toBe(true);
  expect(feed.wantsDeltas("other")).toBe(false);
  subscribed.clear();
  // A listener of durable frames only (an SSE client with deltas=0, A2A, MCP) is no audience for deltas.
  const durableOnly = feed.listen("t", () => {});
  expect(feed.wantsDeltas("t")).toBe(false);
  const stop = feed.listen("t", () => {}, { deltas: true });
  expect(feed.wantsDeltas("t")).toBe(true);
  stop();
  expect(feed.wantsDeltas("t")).toBe(false);
  durableOnly();
  // A bus without a subscriber count (another transport): deltas are always sent.
  expect(createLiveFeed({ publish() {} }).wantsDeltas("t")).toBe(true);
});

test("parked: tells the task's onParked listeners (each time it parks), not other tasks'; a listener can stop", () => {
  const feed = createLiveFeed({ publish() {} });
  const heard: string[] = [];
  const stopA = feed.onParked("a", () => heard.push("a1"));
  feed.onParked("a", () => heard.push("a2"));
  feed.onParked("b", () => heard.push("b"));
  feed.parked("a");
  expect(heard).toEqual(["a1", "a2"]);
  stopA();
  feed.parked("a");
  feed.parked("nobody");
  expect(heard).toEqual(["a1", "a2", "a2"]);
});

test("listen: every listener gets the durable frames with their seq; only one added with {deltas: true} gets live-only frames", () => {
  const feed = createLiveFeed({ publish() {}, subscribers: () => 0 });
  feed.open("t", 0);
  const durable: [string, number | undefined][] = [];
  const all: [string, number | undefined][] = [];
  const stopDurable = feed.listen("t", (frame, seq) => durable.push([frame, seq]));
  const stopAll = feed.listen("t", (frame, seq) => all.push([frame, seq]), { deltas: true });
  feed.publish("t", 1, "one");
  feed.publishTransient("t", "delta");
  feed.publish("t", 2, "two");
  expect(durable).toEqual([["one", 1], ["two", 2]]);
  expect(all).toEqual([["one", 1], ["delta", undefined], ["two", 2]]);
  stopAll();
  feed.publish("t", 3, "three");
  feed.publishTransient("t", "gone");
  expect(all).toHaveLength(3);
  expect(durable.at(-1)).toEqual(["three", 3]);
  stopDurable();
  feed.publish("t", 4, "four");
  expect(durable).toHaveLength(3);
});

test("an ended task's tail does not open again: a stale open (a status read from before the end) cannot republish its last frames; the memory is bounded", () => {
  const sent: string[] = [];
  const feed = createLiveFeed({ publish: (_topic: string, frame: string) => sent.push(frame), bind() {} } as unknown as EventBus, { endedMemory: 2 });
  const step = (seq: number) => JSON.stringify({ type: "step", seq });
  const result = (seq: number) => JSON.stringify({ type: "result", seq, data: { status: "completed" } });
  feed.open("t", 0);
  feed.publish("t", 1, step(1));
  feed.publish("t", 2, result(2));
  feed.close("t");
  // Opened again from a read that saw the task running at seq 1: nothing opens, nothing can be published.
  feed.open("t", 1);
  expect(feed.tail("t")).toBeUndefined();
  expect(() => feed.publish("t", 2, result(2))).toThrow("not open");
  expect(sent).toEqual([step(1), result(2)]);
  // A task that only closed its tail (parked, or handed over) opens again.
  feed.open("w", 0);
  feed.publish("w", 1, step(1));
  feed.close("w");
  feed.open("w", 1);
  expect(feed.tail("w")?.lastSeq).toBe(1);
  // Two more ended tasks: "t" is forgotten (the memory holds 2).
  for (const id of ["u", "v"]) {
    feed.open(id, 0);
    feed.publish(id, 1, result(1));
    feed.close(id);
  }
  feed.open("t", 2);
  expect(feed.tail("t")?.lastSeq).toBe(2);
  feed.open("u", 0);
  expect(feed.tail("u")).toBeUndefined();
});
