/** The live feed's audience check for live-only frames (`wantsDeltas`): a delta nobody reads is not sent. */
import { expect, test } from "bun:test";
import { deltaTopic, type EventBus } from "../../src/bus/bus.ts";
import { createLiveFeed } from "../../src/bus/live-feed.ts";

test("wantsDeltas: the bus's delta subscribers or an in-process listener; a bus that cannot tell counts as an audience", () => {
  const subscribed = new Map<string, number>();
  const bus: EventBus = { publish() {}, subscribers: (topic) => subscribed.get(topic) ?? 0 };
  const feed = createLiveFeed(bus);
  feed.open("t", 0);
  expect(feed.wantsDeltas("t")).toBe(false);
  subscribed.set(deltaTopic("t"), 1);
  expect(feed.wantsDeltas("t")).toBe(true);
  expect(feed.wantsDeltas("other")).toBe(false);
  subscribed.clear();
  const stop = feed.listen("t", () => {});
  expect(feed.wantsDeltas("t")).toBe(true);
  stop();
  expect(feed.wantsDeltas("t")).toBe(false);
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
