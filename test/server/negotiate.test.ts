/** Accept negotiation between application/json and text/event-stream (RFC 9110 §12.5.1). */
import { expect, test } from "bun:test";
import { EVENT_STREAM_TYPE, JSON_TYPE, negotiate, wantsEventStream } from "../../src/server/negotiate.ts";

const OFFERS = [JSON_TYPE, EVENT_STREAM_TYPE];

test("q-values, ranges and specificity decide; ties go to the first offer", () => {
  const cases: [string | undefined, string | undefined][] = [
    [undefined, JSON_TYPE],
    ["", JSON_TYPE],
    ["text/event-stream", EVENT_STREAM_TYPE],
    ["TEXT/Event-Stream", EVENT_STREAM_TYPE],
    ["text/event-stream;q=0.9, application/json", JSON_TYPE],
    ["text/event-stream; q=0.9 , application/json; q=0.8", EVENT_STREAM_TYPE],
    ["*/*", JSON_TYPE],
    ["text/*", EVENT_STREAM_TYPE],
    ["text/event-stream, */*", EVENT_STREAM_TYPE],
    ["application/json, text/event-stream", JSON_TYPE],
    ["text/event-stream;q=0, */*", JSON_TYPE],
    ["application/json;q=0, */*", EVENT_STREAM_TYPE],
    ["application/json;q=0", undefined],
    ["image/png", undefined],
    ["garbage", JSON_TYPE],
    ["text/event-stream;q=bogus", EVENT_STREAM_TYPE],
    ["text/event-stream;q=1.5, application/json;q=0.9", EVENT_STREAM_TYPE],
  ];
  for (const [accept, expected] of cases) expect(negotiate(accept, OFFERS), String(accept)).toBe(expected);
});

test("the event stream only when preferred; a hostile header is read in bounded time", () => {
  expect(wantsEventStream("text/event-stream;q=0.9, application/json")).toBe(false);
  expect(wantsEventStream("image/png")).toBe(false);
  expect(wantsEventStream("text/event-stream")).toBe(true);
  const hostile = "a/b;q=0.1,".repeat(10_000) + "text/event-stream";
  expect(wantsEventStream(hostile)).toBe(false); // past the ranges read: not seen, JSON
});
