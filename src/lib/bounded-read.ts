/**
 * A body read whole only while it is small: the bytes, or undefined once it holds more than `limit`
 * (then it is cancelled, the rest unread). For answers from elsewhere (an MCP server's JSON, a
 * health endpoint) that must not take memory and time without bound.
 */
export async function readAtMost(body: ReadableStream<Uint8Array>, limit: number): Promise<Uint8Array | undefined> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size);
}
