/**
 * A provider's event stream may not send a line longer than `MAX_STREAM_LINE_BYTES`. The AI SDK
 * parses each event whole and at once: one `data:` line carrying a 10 MB tool-call argument held
 * the event loop ~250 ms (its JSON parsed, validated, then walked character by character for the
 * argument's structure), however the reading around it is sliced. No model writes that in one
 * event — a step's whole output is bounded by its output tokens — so a longer line is a broken or
 * hostile stream: the body fails there (`stream_interrupted`, naming the limit), unread past it.
 */

/**
 * 1 MiB: real providers send events of a few KB (a server that sends a whole tool call in one,
 * as some OpenAI-compatible ones do, stays far under it). A 1 MiB argument in one event still made
 * /health wait 37–45 ms on a 2-vCPU VM (10 MB: 230–275 ms before this limit, 3–8 ms after).
 */
export const MAX_STREAM_LINE_BYTES = 1 << 20;

const LF = 10;
const CR = 13;

/** `fetch` (default: the global one, looked up per call) whose event-stream bodies fail at a line longer than `maxBytes`. */
export function boundingStreamLines(base?: typeof fetch, maxBytes = MAX_STREAM_LINE_BYTES): typeof fetch {
  const bounded = async (input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
    const response = await (base ?? globalThis.fetch)(input, init);
    if (!response.body || !response.headers.get("content-type")?.includes("text/event-stream")) return response;
    let line = 0; // bytes of the line under way
    const body = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          // A line ends at LF, CR or CRLF, as the SSE parser reads it: a stream that ends its lines
          // with CR alone is valid, and was failed once its whole body passed the limit.
          let start = 0;
          let lf = chunk.indexOf(LF);
          let cr = chunk.indexOf(CR);
          for (;;) {
            const end = lf < 0 ? cr : cr < 0 ? lf : Math.min(lf, cr);
            line += (end < 0 ? chunk.length : end) - start;
            if (line > maxBytes) {
              controller.error(new Error(`the provider sent a line of more than ${maxBytes} bytes in its event stream (one event; at most ${maxBytes})`));
              return;
            }
            if (end < 0) break;
            line = 0;
            start = end + 1;
            // Each searched again only once passed (-1: none left in this chunk).
            if (lf >= 0 && lf < start) lf = chunk.indexOf(LF, start);
            if (cr >= 0 && cr < start) cr = chunk.indexOf(CR, start);
          }
          controller.enqueue(chunk);
        },
      }),
    );
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
  return Object.assign(bounded, { preconnect: (base ?? globalThis.fetch).preconnect }) as typeof fetch;
}
