/**
 * The request body's size limit (413 `payload_too_large`). A body with a Content-Length is judged
 * by it before anything is read. One without (`Transfer-Encoding: chunked`) is read as it arrives
 * and judged on the way: past the limit it is refused at once, the rest unread.
 *
 * Each chunk costs the server a little (Bun parses it, JavaScript takes it): a body sent as a
 * million one-byte chunks held the event loop 0.75–1 s read chunk by chunk (hono's body-limit),
 * and still 60–80 ms read in one native call. So a body that comes in more than `MAX_SMALL_CHUNKS`
 * pieces averaging under `SMALL_CHUNK_BYTES` is refused (400) when that count is reached. Either
 * refusal closes the connection (`Connection: close`): Bun would otherwise read the rest of the
 * body to reuse it. Bun itself refuses a body past `maxRequestBodySize` (serve.ts).
 */
import type { Context, MiddlewareHandler } from "hono";
import { AgentkitError } from "../errors.ts";

/** A chunked body may come in this many pieces whatever their size (ordinary clients send far fewer)… */
export const MAX_SMALL_CHUNKS = 1024;
/** …and in more only if they average at least this many bytes. */
export const SMALL_CHUNK_BYTES = 1024;

export function limitBody(maxBytes: number): MiddlewareHandler {
  const tooLarge = () => new AgentkitError("payload_too_large", `Request body is larger than ${maxBytes} bytes`);
  return async (c, next) => {
    const request = c.req.raw;
    if (!request.body) return next();
    const length = request.headers.get("content-length");
    if (length !== null && !request.headers.has("transfer-encoding")) {
      if (Number.parseInt(length, 10) > maxBytes) throw tooLarge();
      return next();
    }
    const reader = request.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      chunks.push(value);
      const refusal =
        size > maxBytes
          ? tooLarge()
          : chunks.length > MAX_SMALL_CHUNKS && size < chunks.length * SMALL_CHUNK_BYTES
            ? new AgentkitError(
                "bad_request",
                `Request body came in more than ${MAX_SMALL_CHUNKS} chunks of under ${SMALL_CHUNK_BYTES} bytes on average: send a Content-Length, or larger chunks`,
              )
            : undefined;
      if (refusal) {
        reader.cancel().catch(() => {});
        return refuse(c, refusal);
      }
    }
    c.req.raw = new Request(request, { body: Buffer.concat(chunks, size) });
    return next();
  };
}

/** The error's answer, closing the connection (what the client still sends is not read). */
function refuse(c: Context, error: AgentkitError): Response {
  return c.json(error.toJSON(), error.httpStatus as 400 | 413, { Connection: "close" });
}
