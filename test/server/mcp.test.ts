/** An agent with tools from a real MCP server process (stdio), through the whole server. */
import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { answer, callTools, createScriptedModel } from "../helpers/scripted-model.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

test("an agent lists mcp:<server>; the model sees and calls <server>__<tool>; errors become tool_error", async () => {
  const model = createScriptedModel([
    callTools([
      { id: "a", name: "fx__add", arguments: '{"a":2,"b":40}' },
      { id: "b", name: "fx__add", arguments: '{"a":"two"}' },
      { id: "c", name: "fx__fail", arguments: "{}" },
    ]),
    answer("42"),
  ]);
  server = await startTestServer({
    models: { m: model },
    agents: [{ model: "test/m", tools: ["calculator", "mcp:fx"] }],
    config: {
      mcpServers: [{ name: "fx", command: process.execPath, args: [join(import.meta.dir, "../tools/fixtures/stdio-server.ts")] }],
    },
  });
  const task = await server.createTask({ input: "add" });
  const result = await (await server.watch(task.id)).result();
  expect(result.data).toMatchObject({ status: "completed", output: "42" });

  const offered = model.requests[0]!.tools.map((tool) => tool.name);
  expect(offered).toContain("calculator");
  expect(offered).toContain("fx__add");
  const add = model.requests[0]!.tools.find((tool) => tool.name === "fx__add")!;
  expect(add.inputSchema).toMatchObject({ type: "object", properties: { a: { type: "number" }, b: { type: "number" } } });

  const events = ((await (await server.http(`/tasks/${task.id}/events`)).json()) as { events: { data: { event_type: string; data: any } }[] }).events;
  const outcomes = events.filter((event) => ["tool_result", "tool_error"].includes(event.data?.event_type)).map((event) => event.data);
  expect(outcomes.map((event) => [event.event_type, event.data.id])).toEqual([
    ["tool_result", "a"],
    ["tool_error", "b"],
    ["tool_error", "c"],
  ]);
  expect(JSON.stringify(outcomes[0]!.data.result)).toContain("42");
  expect(outcomes[1]!.data.error.code).toBe("invalid_arguments");
  expect(outcomes[2]!.data.error.message).toContain("the widget is broken");
});

test("an MCP server that never answers does not hold start-up: the server serves once the wait is up, and tasks run", async () => {
  // Before, start-up waited for the MCP server's 30 s timeout: past this test's own 20 s.
  server = await startTestServer({
    agents: [{}, { name: "with-hang", model: "demo/react", tools: ["calculator", "mcp:hang"] }],
    // A command that starts and never speaks: its initialize waits for the server's 30 s timeout.
    config: { mcpServers: [{ name: "hang", command: "sleep", args: ["60"] }] },
    mcpStartWaitMs: 300,
  });
  expect((await server.http("/health")).status).toBe(200);
  for (const agent of ["default", "with-hang"]) {
    const task = await server.createTask({ input: "What is 6*7?", agent });
    expect((await (await server.watch(task.id)).result()).data).toMatchObject({ status: "completed", output: "6*7 = 42" });
  }
});
