/**
 * The fetch agentkit hands the MCP SDK (src/tools/mcp/mcp-http-fetch.ts), on its own: what it passes
 * on of a server's SSE stream, and how.
 */
import { expect, test } from "bun:test";
import { createGuardedFetch } from "../../src/tools/mcp/mcp-http-fetch.ts";

test("an SSE response read in one big chunk is handed on in slices of at most 16 KiB, with a turn of the event loop between them, bytes unchanged", async () => {
  const events = Array.from({ length: 400 }, (_, index) => `data: ${JSON.stringify({ jsonrpc: "2.0", method: "notifications/message", params: { n: index, text: "x".repeat(400) } })}\n\n`).join("");
  const bytes = new TextEncoder().encode(events);
  expect(bytes.length).toBeGreaterThan(150_000);
  const base = async () =>
    new Response(
      new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(bytes); // all of it at once, as a fast server's flood arrives
          controller.close();
        },
      }),
      { headers: { "content-type": "text/event-stream" } },
    );
  const guarded = createGuardedFetch({}, base);
  const response = await guarded("http://127.0.0.1:1/mcp", { method: "POST", body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "t" } }) });
  let turns = 0;
  let ticking = true;
  const tick = () => {
    turns++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  const reader = response.body!.getReader();
  const sizes: number[] = [];
  const turnsAt: number[] = [];
  const received: Uint8Array[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    sizes.push(value.length);
    turnsAt.push(turns);
    received.push(value);
  }
  ticking = false;
  expect(Math.max(...sizes)).toBeLessThanOrEqual(16 * 1024);
  expect(sizes.length).toBeGreaterThanOrEqual(Math.ceil(bytes.length / (16 * 1024)));
  for (let index = 1; index < turnsAt.length; index++) expect(turnsAt[index]!).toBeGreaterThan(turnsAt[index - 1]!);
  expect(new TextDecoder().decode(Buffer.concat(received))).toBe(events);
});
