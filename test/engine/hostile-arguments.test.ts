/**
 * Tool-call arguments a model (or a provider) got badly wrong: nested far too deep. The call fails
 * as an observation the model reads, the task goes on and ends — it used to stay `running` for
 * good (writing the `tool_call` frame overflowed the stack after its seq was taken).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { z } from "zod";
import { argumentsText } from "../../src/engine/resume.ts";
import { parseToolArguments } from "../../src/engine/tool-execution.ts";
import { toolCallInput } from "../../src/llm/providers/prompt-conversion.ts";
import { MAX_ARGUMENT_DEPTH } from "../../src/protocol/limits.ts";
import { defineTool } from "../../src/tools/tool.ts";
import { answer, callTools, createScriptedModel } from "../helpers/scripted-model.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const deep = (levels: number) => `{"expression":${"[".repeat(levels)}${"]".repeat(levels)}}`;

describe("arguments nested too deep", () => {
  test("the call fails (invalid_arguments), the model reads why and the task completes; the next request replays {}", async () => {
    const model = createScriptedModel([callTools([{ id: "deep", name: "calculator", arguments: deep(100_000) }]), answer("sorry")]);
    server = await startTestServer({ models: { m: model }, agents: [{ model: "test/m", tools: ["calculator"] }] });
    const task = await server.createTask({ input: "go" });
    const watcher = await server.watch(task.id);
    const result = (await watcher.result(10_000)) as any;
    expect(result.data.status).toBe("completed");
    const call = watcher.frames.find((frame: any) => frame.data?.event_type === "tool_call") as any;
    expect(call.data.data.arguments).toBe(deep(100_000)); // the text as it came
    const error = watcher.frames.find((frame: any) => frame.data?.event_type === "tool_error") as any;
    expect(error.data.data.error).toMatchObject({ code: "invalid_arguments", message: `Arguments nest deeper than ${MAX_ARGUMENT_DEPTH} levels` });
    const replayed = model.requests[1]!.messages.find((message) => message.role === "assistant")!;
    expect(toolCallInput(replayed.toolCalls![0]!.arguments)).toEqual({});
  });

  test("the limit: as deep as allowed parses; one level more is refused, shown and read back as text", () => {
    const at = `${"[".repeat(MAX_ARGUMENT_DEPTH)}${"]".repeat(MAX_ARGUMENT_DEPTH)}`;
    expect(parseToolArguments(at)).toBeArray();
    const over = `[${at}]`;
    expect(() => parseToolArguments(over)).toThrow(`nest deeper than ${MAX_ARGUMENT_DEPTH} levels`);
    expect(argumentsText(over)).toBe(over); // not taken for a JSON string literal
    expect(argumentsText("[1]")).toBe('"[1]"'); // a stored string that parses was a string literal
  });
});

describe("an event that cannot be written as JSON", () => {
  test("fails the task instead of leaving it running with a gap in its log", async () => {
    // Its result is written once to bound it, then again in its frame: the second time it throws.
    let writes = 0;
    const twoFaced = defineTool({
      name: "two_faced",
      description: "a result that can be written once",
      inputSchema: z.object({}),
      execute: async () => ({
        toJSON() {
          if (++writes > 1) throw new Error("not again");
          return { ok: true };
        },
      }),
    });
    server = await startTestServer({
      models: { m: createScriptedModel([callTools([{ id: "a", name: "two_faced", arguments: "{}" }]), answer("done")]) },
      tools: [twoFaced],
      agents: [{ model: "test/m", tools: ["two_faced"] }],
    });
    const task = await server.createTask({ input: "go" });
    const result = (await (await server.watch(task.id)).result(10_000)) as any;
    expect(result.data.status).toBe("failed");
    expect(result.data.error).toMatchObject({ code: "internal", message: expect.stringContaining("not again") });
  });
});
