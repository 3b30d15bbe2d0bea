/** The one Server-Sent Events writer: slow-client cut-off, paced writers, how a stream ends. */
import { expect, test } from "bun:test";
import { createEventStreams, eventStreamResponse, type EventStream, type EventStreamEnd } from "../../src/server/event-stream.ts";
import { within } from "../helpers/deferred.ts";

function open(options: { slowClientBytes: number; slowGraceMs?: number; keepAliveMs?: number; stallMs?: number; signal?: AbortSignal }) {
  let stream!: EventStream;
  const ended = Promise.withResolvers<EventStreamEnd>();
  const response = eventStreamResponse({ ...options, start: (started) => void (stream = started), onClose: (end) => ended.resolve(end) });
  return { response, stream, ended: ended.promise };
}

test("the server's registry hears of every stream cut off as slow — SSE, A2A and AG-UI all write through here — and of nothing else", async () => {
  let slow = 0;
  const registry = createEventStreams({ onSlow: () => slow++ });
  const open = (onClose: (end: EventStreamEnd) => void) => {
    let stream!: EventStream;
    eventStreamResponse({ slowClientBytes: 1000, registry, start: (started) => void (stream = started), onClose });
    return stream;
  };
  const cut = Promise.withResolvers<EventStreamEnd>();
  const flooded = open(cut.resolve);
  flooded.write(`data: ${"a".repeat(700)}\n\n`);
  flooded.write(`data: ${"b".repeat(700)}\n\n`);
  expect(await cut.promise).toBe("slow");
  const done = Promise.withResolvers<EventStreamEnd>();
  open(done.resolve).close();
  expect(await done.promise).toBe("ended");
  const stopping = Promise.withResolvers<EventStreamEnd>();
  open(stopping.resolve);
  registry.closeAll();
  expect(await stopping.promise).toBe("shutdown");
  expect(slow).toBe(1);
});

test("a writer past half the limit waits in drained(); reading the body lets it go on; the owner's close ends the stream as 'ended'", async () => {
  const { response, stream, ended } = open({ slowClientBytes: 1000 });
  expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
  stream.write(`data: ${"x".repeat(600)}\n\n`);
  expect(stream.backlogged).toBe(true);
  let woke = false;
  const waiting = stream.drained().then(() => (woke = true));
  await Bun.sleep(20);
  expect(woke).toBe(false); // nobody read yet
  const reader = response.body!.getReader();
  await reader.read();
  await within(waiting, 1_000, "the writer is woken once the client reads");
  expect(stream.backlogged).toBe(false);
  stream.close();
  expect(await ended).toBe("ended");
  expect(stream.closed).toBe(true);
});

test("writing past the limit cuts the client off as 'slow'; what was queued still drains, then the body ends", async () => {
  const { response, stream, ended } = open({ slowClientBytes: 1000 });
  stream.write(`data: ${"a".repeat(700)}\n\n`);
  stream.write(`data: ${"b".repeat(700)}\n\n`);
  expect(await ended).toBe("slow");
  stream.write("data: never\n\n"); // nothing once closed
  const body = await response.text();
  expect(body).toBe(`data: ${"a".repeat(700)}\n\ndata: ${"b".repeat(700)}\n\n`);
});

test("a burst past the limit in one turn to a client that reads at once is not cut off; past 4 times the limit (at least 2 MiB) it is, at once", async () => {
  const reading = open({ slowClientBytes: 1000, slowGraceMs: 200 });
  for (let index = 0; index < 3; index++) reading.stream.write(`data: ${String(index).repeat(900)}\n\n`); // ~2.7 × the limit
  expect(reading.stream.closed).toBe(false);
  const reader = reading.response.body!.getReader();
  let received = 0;
  while (received < 2_700) received += (await reader.read()).value!.byteLength;
  await Bun.sleep(400); // past the grace period
  expect(reading.stream.closed).toBe(false);
  reading.stream.write("data: more\n\n");
  received += (await reader.read()).value!.byteLength;
  reading.stream.close();
  expect(await reading.ended).toBe("ended");

  // Past 4 × the limit (here 4 MiB): cut off at once, without waiting for the grace period.
  const flood = open({ slowClientBytes: 1024 * 1024, slowGraceMs: 60_000 });
  const mib = `data: ${"f".repeat(1024 * 1024 - 8)}\n\n`;
  for (let index = 0; index < 4; index++) flood.stream.write(mib);
  expect(flood.stream.closed).toBe(false); // 4 MiB queued: at the hard limit, not past it
  flood.stream.write(mib);
  expect(flood.stream.closed).toBe(true);
  expect(await flood.ended).toBe("slow");
  // A small limit's hard limit is 2 MiB: the server's own bursts (a follower's page) fit under it.
  const small = open({ slowClientBytes: 64 * 1024, slowGraceMs: 60_000 });
  small.stream.write(mib);
  expect(small.stream.closed).toBe(false);
  small.stream.write(mib);
  expect(small.stream.closed).toBe(false);
  small.stream.write(mib);
  expect(small.stream.closed).toBe(true);
});

test("an uncounted write (a snapshot) of any size does not count toward the limit; counted writes beside it do", async () => {
  const { response, stream, ended } = open({ slowClientBytes: 1000 });
  stream.write(`data: ${"s".repeat(5000)}\n\n`, { uncounted: true });
  expect(stream.closed).toBe(false);
  expect(stream.backlogged).toBe(false);
  stream.write(`data: ${"a".repeat(700)}\n\n`);
  expect(stream.closed).toBe(false);
  stream.write(`data: ${"b".repeat(700)}\n\n`); // 1,400 counted bytes queued: past the limit
  expect(await ended).toBe("slow");
  expect(await response.text()).toBe(`data: ${"s".repeat(5000)}\n\ndata: ${"a".repeat(700)}\n\ndata: ${"b".repeat(700)}\n\n`);
});

test("a writer left waiting by a client that never reads: cut off as 'slow' after stallMs, and the waiter is released", async () => {
  const { stream, ended } = open({ slowClientBytes: 1000, keepAliveMs: 20, stallMs: 100 });
  stream.write(`data: ${"x".repeat(600)}\n\n`);
  const waiting = stream.drained();
  expect(await within(ended, 2_000, "the stalled stream ends")).toBe("slow");
  await within(waiting, 100, "the waiting writer is released");
  expect(stream.closed).toBe(true);
});

test("the client going away (its request's signal) ends the stream as 'client', also when it was gone before the start", async () => {
  const controller = new AbortController();
  const live = open({ slowClientBytes: 1000, signal: controller.signal });
  controller.abort();
  expect(await live.ended).toBe("client");

  const gone = AbortSignal.abort();
  const early = open({ slowClientBytes: 1000, signal: gone });
  expect(await early.ended).toBe("client");
  expect(early.stream.closed).toBe(true); // `start` ran all the same
});

test("an owner whose start throws: the error reaches the caller, the stream ends as 'ended', and no keep-alive is left ticking", async () => {
  const ends: EventStreamEnd[] = [];
  let writes = 0;
  let leaked: EventStream | undefined;
  const failing = () =>
    eventStreamResponse({
      slowClientBytes: 1000,
      keepAliveMs: 5,
      start(stream) {
        leaked = stream;
        const write = stream.write.bind(stream);
        stream.write = (text) => {
          writes++;
          write(text);
        };
        throw new Error("the owner failed");
      },
      onClose: (end) => ends.push(end),
    });
  expect(failing).toThrow("the owner failed");
  await Bun.sleep(60); // a dozen keep-alive periods
  expect(ends).toEqual(["ended"]);
  expect(leaked?.closed).toBe(true);
  expect(writes).toBe(0);
});

test("a server's stream registry ends every open stream as 'shutdown', and a stream opened after that at once", async () => {
  const streams = createEventStreams();
  const ends: EventStreamEnd[] = [];
  const open = () => eventStreamResponse({ slowClientBytes: 1000, registry: streams, start: (stream) => stream.write("data: 1\n\n"), onClose: (end) => ends.push(end) });
  const first = open();
  expect(streams.size).toBe(1);
  streams.closeAll();
  expect(ends).toEqual(["shutdown"]);
  expect(streams.size).toBe(0);
  expect(await first.text()).toBe("data: 1\n\n"); // ended whole, what was queued first
  // A request that was still on its way when the server began to stop gets a stream that ends too.
  const late = open();
  expect(await late.text()).toBe("data: 1\n\n");
  expect(ends).toEqual(["shutdown", "shutdown"]);
});
