/**
 * A server whose agent floods its watchers: `steps` calls of a `blob` tool that returns 32 KiB each
 * (or `blobChars`), as fast as the engine goes. `beforeStep` runs before each model step (given how
 * many results the model has seen), to hold the flood until the test is ready and to pace it.
 */
import { z } from "zod";
import type { ConfigInput } from "../../src/config/config.ts";
import { defineTool } from "../../src/tools/tool.ts";
import { createScriptedModel, type ScriptStep } from "./scripted-model.ts";
import { startTestServer, type TestServer } from "./server.ts";

export function startFloodServer(
  steps: number,
  beforeStep: (done: number) => Promise<void> | void,
  config: Partial<ConfigInput> = {},
  blobChars = 32 * 1024,
  /** Ends the flood before `steps` once it says so (asked before each step, with the results so far). */
  enough?: (done: number) => boolean,
): Promise<TestServer> {
  const blob = defineTool({
    name: "blob",
    description: "returns 32 KiB",
    inputSchema: z.object({ n: z.number() }),
    execute: async ({ n }) => `${n}:`.padEnd(blobChars, "x"),
  });
  const step: ScriptStep = async function* (request) {
    const done = request.messages.filter((message) => message.role === "tool").length;
    await beforeStep(done);
    if (done >= steps || enough?.(done)) {
      yield { type: "text-delta", text: "end" };
      yield { type: "finish", finishReason: "stop", usage: { inputTokens: 1, outputTokens: 1 } };
      return;
    }
    yield { type: "tool-call", call: { id: `b${done}`, name: "blob", arguments: JSON.stringify({ n: done }) } };
    yield { type: "finish", finishReason: "tool-calls", usage: { inputTokens: 1, outputTokens: 1 } };
  };
  return startTestServer({
    models: { m: createScriptedModel([step], { repeatLast: true }) },
    tools: [blob],
    agents: [{ model: "test/m", tools: ["blob"], max_steps: steps + 1 }],
    config,
  });
}

/** The usual pacing: hold the flood until `release`, then give the event loop a turn every 20 steps. */
export function heldUntil(release: Promise<void>): (done: number) => Promise<void> {
  return async (done) => {
    if (done === 0) await release;
    else if (done % 20 === 0) await Bun.sleep(1);
  };
}
