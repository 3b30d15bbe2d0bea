/**
 * A2A streams that join a task while it moves: the status read, the log read and the task's next
 * change interleave. A stream must end at the task's end or at its park for a person, whatever
 * came between its reads — it must never stay open showing `working` for a task that waits or ended.
 * The timing is forced with a store wrapper (a read held until the task has moved).
 */
import { afterEach, expect, test } from "bun:test";
import type { TaskStore } from "../../src/store/store.ts";
import { until, within } from "../helpers/deferred.ts";
import { answer, callTools, createScriptedModel, type ScriptStep } from "../helpers/scripted-model.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

type Json = Record<string, any>;

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** A store whose methods the test may hold: `hooks[name]` runs before the real call. */
function holdable(hooks: Partial<Record<keyof TaskStore, (args: unknown[]) => Promise<void>>>) {
  let inner!: TaskStore;
  const wrapStore = (store: TaskStore) => {
    inner = store;
    return new Proxy(store, {
      get(target, key) {
        const value = (target as any)[key];
        if (typeof value !== "function") return value;
        const hook = hooks[key as keyof TaskStore];
        if (!hook) return value.bind(target);
        return async (...args: unknown[]) => {
          await hook(args);
          return value.apply(target, args);
        };
      },
    });
  };
  return { wrapStore, inner: () => inner };
}

/** Reads an SSE response's `data:` events until it ends (or `ms` pass: then `ended` is false). */
async function readEvents(response: Response, ms: number): Promise<{ events: Json[]; ended: boolean }> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let ended = false;
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const read = await Promise.race([reader.read(), Bun.sleep(Math.max(0, deadline - Date.now())).then(() => "timeout" as const)]);
    if (read === "timeout") break;
    if (read.done) {
      ended = true;
      break;
    }
    text += decoder.decode(read.value, { stream: true });
  }
  await reader.cancel().catch(() => {});
  const events = text
    .split("\n")
    .filter((line) => line.startsWith("data:"))
    .map((line) => JSON.parse(line.slice(5)) as Json);
  return { events, ended };
}

function rpc(body: Json): Promise<Response> {
  return server!.http("/a2a/default", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, ...body }) });
}

const calculator = (id: string, expression: string) => callTools([{ id, name: "calculator", arguments: JSON.stringify({ expression }) }]);

test("resubscribe while an approval is stored and the park is on its way: the stream ends at input-required, with the call", async () => {
  const park = Promise.withResolvers<void>();
  let parking = false;
  const store = holdable({
    waitTask: async () => {
      parking = true;
      await park.promise;
    },
  });
  server = await startTestServer({
    models: { m: createScriptedModel([calculator("c1", "1+1")]) },
    agents: [{ name: "default", model: "test/m", tools: ["calculator"], approval: ["calculator"] }],
    wrapStore: store.wrapStore,
  });
  const task = await server.createTask({ input: "hi" });
  await until(() => parking, "the run stores the approval request and parks");
  // Its status read says running; its log read has the request.
  const response = await rpc({ method: "tasks/resubscribe", params: { id: task.id } });
  const reading = readEvents(response, 4000);
  await Bun.sleep(50);
  park.resolve();
  const { events, ended } = await reading;
  expect((await store.inner().getTask(task.id))?.status).toBe("waiting");
  expect(ended).toBe(true);
  const last = events.at(-1)!.result;
  expect(last.status.state).toBe("input-required");
  expect(JSON.stringify(last.status.message)).toContain("c1");
});

test("resubscribe to a running task that ends while the view reads its log: the stream goes on to the final state and ends", async () => {
  const finish = Promise.withResolvers<void>();
  const step: ScriptStep = async function* () {
    await finish.promise;
    yield { type: "text-delta", text: "done" };
    yield { type: "finish", finishReason: "stop", usage: { inputTokens: 1, outputTokens: 1 } };
  } as unknown as ScriptStep;
  let armed = false;
  const store = holdable({
    events: async (args) => {
      if (!armed) return;
      armed = false;
      // The task ends while this read is on its way (as with PostgreSQL, or a read that yields).
      finish.resolve();
      await until(async () => (await store.inner().getTask(args[0] as string))?.status === "completed", "the task ends");
    },
  });
  server = await startTestServer({ models: { m: createScriptedModel([step]) }, agents: [{ name: "default", model: "test/m" }], wrapStore: store.wrapStore });
  const task = await server.createTask({ input: "hi" });
  await until(async () => (await store.inner().getTask(task.id))?.status === "running", "the task runs");
  armed = true;
  const { events, ended } = await readEvents(await rpc({ method: "tasks/resubscribe", params: { id: task.id } }), 4000);
  expect(ended).toBe(true);
  expect(events[0]!.result).toMatchObject({ kind: "task", status: { state: "working" } });
  expect(events.at(-1)!.result).toMatchObject({ kind: "status-update", status: { state: "completed" } });
});

test("a blocking send that continues a task which asks again before the send reads its status: answered input-required, not held", async () => {
  const park = Promise.withResolvers<void>();
  let parks = 0;
  let decided = false;
  let readsAfterDecision = 0;
  const store = holdable({
    // The second park (after the approval) waits for the test.
    waitTask: async () => {
      if (++parks === 2) await park.promise;
    },
    appendWhileWaiting: async () => {
      decided = true;
    },
    // The send's own status read after its decision (A2A's continueTask) comes once the run has
    // stored its next request, whose park is still on its way.
    getTask: async () => {
      if (!decided || readsAfterDecision > 0 || !new Error().stack?.includes("continueTask")) return;
      readsAfterDecision++;
      await until(() => parks === 2, "the run stores its second approval request");
      setTimeout(() => park.resolve(), 50);
    },
  });
  server = await startTestServer({
    models: { m: createScriptedModel([calculator("c1", "1+1"), calculator("c2", "2+2")]) },
    agents: [{ name: "default", model: "test/m", tools: ["calculator"], approval: ["calculator"] }],
    wrapStore: store.wrapStore,
  });
  const task = await server.createTask({ input: "hi" });
  await until(async () => (await store.inner().getTask(task.id))?.status === "waiting", "the first park");
  const message = { kind: "message", messageId: "m1", role: "user", taskId: task.id, parts: [{ kind: "text", text: "approve" }] };
  const response = await rpc({ method: "message/send", params: { message, configuration: { blocking: true } } });
  const answered = (await within(response.text(), 8000, "the blocking send's answer")).trim();
  const json = JSON.parse(answered) as Json;
  expect(readsAfterDecision).toBe(1); // the hold happened
  expect(json.result).toMatchObject({ kind: "task", status: { state: "input-required" } });
  expect(JSON.stringify(json.result.status.message)).toContain("c2");
});

test("a task viewed again (GetTask polled) reads only the events after the last view's, and shows the same history", async () => {
  const reads: number[] = [];
  const store = holdable({
    events: async (args) => {
      reads.push(args[1] as number);
    },
  });
  // Ten steps of thought + tool call, then the answer.
  const steps = Array.from({ length: 10 }, (_, index) => callTools([{ id: `c${index}`, name: "calculator", arguments: JSON.stringify({ expression: `${index}+1` }) }], `step ${index + 1}`));
  server = await startTestServer({
    models: { m: createScriptedModel([...steps, answer("done")]) },
    agents: [{ name: "default", model: "test/m", tools: ["calculator"], max_steps: 20 }],
    wrapStore: store.wrapStore,
  });
  const task = await server.createTask({ input: "hi" });
  await until(async () => (await store.inner().getTask(task.id))?.status === "completed", "the task completes");
  const lastSeq = (await store.inner().getTask(task.id))!.last_seq;
  const get = async () => (await (await rpc({ method: "GetTask", params: { id: task.id } })).json()) as Json;
  reads.length = 0;
  const first = await get();
  expect(reads[0]).toBe(0); // the whole log, once
  const texts = (view: Json) => (view.result.history as Json[]).map((message) => message.parts[0].text);
  expect(texts(first)).toEqual(["hi", ...Array.from({ length: 10 }, (_, index) => `step ${index + 1}`)]);
  reads.length = 0;
  const second = await get();
  expect(reads.every((after) => after === lastSeq)).toBe(true); // only what came after the first view
  expect(second.result).toEqual(first.result);
});

test("a message naming a new contextId refused for a full queue leaves no thread behind; once admitted, the context is made", async () => {
  server = await startTestServer({ agents: [{ name: "default", model: "demo/slow" }], config: { maxConcurrentTasks: 1, maxQueuedTasks: 0 } });
  const busy = await server.createTask({ input: "keeps the only slot" });
  const send = async () =>
    (await (
      await rpc({ method: "message/send", params: { message: { kind: "message", role: "user", messageId: crypto.randomUUID(), contextId: "ctx-new", parts: [{ kind: "text", text: "hello" }] }, configuration: { blocking: false } } })
    ).json()) as Json;
  const refused = await send();
  expect(refused.error).toBeDefined();
  expect((await server.http("/threads/ctx-new")).status).toBe(404);
  await server.http(`/tasks/${busy.id}/cancel`, { method: "POST" });
  const sent = await send();
  expect(sent.result).toMatchObject({ kind: "task", contextId: "ctx-new" });
  expect((await server.http("/threads/ctx-new")).status).toBe(200);
  await server.http(`/tasks/${sent.result.id}/cancel`, { method: "POST" });
});
