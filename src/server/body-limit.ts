/**
 * The request body's size limit (413 `payload_too_large`). A body with a Content-Length is judged
 * by it before anything is read. One without (`Transfer-Encoding: chunked`) is read whole in one
 * native call and then judged: hono's body-limit read it chunk by chunk in JavaScript, and a body
 * sent as a million one-byte chunks held the event loop 0.75–1 s; read this way, /health waited
 * 76–82 ms (the compiled binary, 3 runs): what is left is Bun's own parsing of the chunks.
 * Bun itself refuses a body past `maxRequestBodySize` (serve.ts), chunked or not, so what is read
 * here is bounded.
 */
import type { MiddlewareHandler } from "hono";
import { AgentkitError } from "../errors.ts";

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
    const body = await request.arrayBuffer();
    if (body.byteLength > maxBytes) throw tooLarge();
    c.req.raw = new Request(request, { body });
    return next();
  };
}
