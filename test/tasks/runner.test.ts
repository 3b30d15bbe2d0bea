/**
 * The runner's performance-sensitive paths: `liveTask` (what a watcher's connect reads instead of
 * the store) and the shared per-turn budget (a burst leaves in few event-loop turns, yet an instant
 * task never holds the loop to itself) — with the durability promise checked on every publish.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { createAgentPool } from "../../src/agents/pool.ts";
import { AgentDefinition } from "../../src/agents/agent.ts";
import type { EventBus } from "../../src/bus/bus.ts";
import { createLiveFeed } from "../../src/bus/live-feed.ts";
import { createLogger } from "../../src/lib/logger.ts";
import { createModelResolver } from "../../src/llm/registry.ts";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import type { TaskStore } from "../../src/store/store.ts";
import { createRunner, type TaskRunner } from "../../src/tasks/runner.ts";
import { builtinTools } from "../../src/tools/registry.ts";
import { deferred, until, within } from "../helpers/deferred.ts";
import { z } from "zod";
import { defineTool } from "../../src/tools/tool.ts";
import { answer, callTools, createScriptedModel } from "../helpers/scripted-model.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

interface Rig {
  store: TaskStore;
  runner: TaskRunner;
  /** Every durable frame published, with whether the store already had it at that moment. */
  published: { topic: string; seq: number; storedFirst: boolean }[];
}

let rigs: Rig[] = [];

function rig(maxConcurrentTasks = 4): Rig {
  const store = createSqliteStore({ dataDir: ":memory:" });
  const published: Rig["published"] = [];
  const bus: EventBus = {
    // No WebSocket watchers here: nobody reads live-only frames (deltas).
    subscribers: () => 0,
    publish(topic, frame) {
      if (!topic.startsWith("task:")) return;
      const seq = (JSON.parse(frame) as { seq: number }).seq;
      const taskId = topic.slice("task:".length);
      let storedFirst = false;
      // The store is synchronous underneath: read it at the very moment of the publish.
      void store.events(taskId, seq - 1, 1).then((events) => (storedFirst = events[0]?.seq === seq));
      published.push({
        topic,
        seq,
        get storedFirst() {
          return storedFirst;
        },
      });
    },
  };
  const agents = createAgentPool({
    definitions: [AgentDefinition.parse({ name: "bench", model: "demo/bench", tools: ["calculator"], max_steps: 100_000 })],
    models: createModelResolver({}),
    tools: builtinTools(),
    mcpServers: [],
  });
  const runner = createRunner({
    store,
    feed: createLiveFeed(bus),
    agents,
    logger: createLogger("silent"),
    maxConcurrentTasks,
    maxQueuedTasks: 100,
  });
  const made = { store, runner, published };
  rigs.push(made);
  return made;
}

afterEach(async () => {
  for (const { runner, store } of rigs) {
    await runner.shutdown();
    await store.close();
  }
  rigs = [];
});

async function submit({ store, runner }: Rig, input: object) {
  const task = await store.createTask({
    id: crypto.randomUUID(),
    owner: "test",
    agent: "bench",
    input: JSON.stringify(input),
    metadata: {},
    createdAt: new Date(),
  });
  runner.submit(task);
  return task;
}

describe("runner.publishes", () => {
  test("true from submit until the end is published — also while the end is being stored, when liveTask no longer has the task", async () => {
    const setup = rig();
    const storing = deferred();
    const release = deferred();
    const finishTask = setup.store.finishTask.bind(setup.store);
    // The end's commit takes a while (PostgreSQL answers on a later turn).
    setup.store.finishTask = async (...args) => {
      storing.resolve();
      await release.promise;
      return finishTask(...args);
    };
    const task = await submit(setup, { steps: 2 });
    expect(setup.runner.publishes(task.id)).toBe(true);
    await within(storing.promise, 5000, "the end being stored");
    expect(setup.runner.liveTask(task.id)).toBeUndefined();
    // The follower asks this (cluster: isLocal): it must not take the tail the run still publishes to.
    expect(setup.runner.publishes(task.id)).toBe(true);
    release.resolve();
    await until(() => !setup.runner.publishes(task.id), "the run lets the task go");
    expect((await setup.store.getTask(task.id))?.status).toBe("completed");
    expect(setup.runner.publishes("no-such-task")).toBe(false);
  });
});

describe("runner.liveTask", () => {
  test("reports a queued task, then the running one with what it published, then nothing once it ended", async () => {
    const setup = rig(1);
    const gate = await submit(setup, { steps: 1, delay_ms: 60_000 });
    await until(async () => (await setup.store.getTask(gate.id))?.status === "running", "the gate runs");
    const task = await submit(setup, { steps: 2, delay_ms: 60_000 });

    const queued = setup.runner.liveTask(task.id);
    expect(queued).toMatchObject({ id: task.id, owner: "test", status: "queued", last_seq: 0, started_at: null, pruned_through: 0 });
    expect(setup.runner.liveTask(gate.id)?.status).toBe("running");

    await within(setup.runner.cancel(gate.id), 5000, "the gate's cancel");
    expect(setup.runner.liveTask(gate.id)).toBeUndefined();
    await until(() => setup.runner.liveTask(task.id)?.started_at != null, "the task runs");
    const running = setup.runner.liveTask(task.id)!;
    expect(running.status).toBe("running");
    expect(running.started_at).toBe((await setup.store.getTask(task.id))!.started_at);

    const ended = await within(setup.runner.cancel(task.id), 5000, "the cancel");
    expect(setup.runner.liveTask(task.id)).toBeUndefined();
    expect(ended?.status).toBe("cancelled");
  });

  test("an instant task: last_seq is the last published seq, and unknown ids give undefined", async () => {
    const setup = rig();
    expect(setup.runner.liveTask("no-such-task")).toBeUndefined();
    const task = await submit(setup, { steps: 2000 });
    const seen: number[] = [];
    await until(async () => {
      const live = setup.runner.liveTask(task.id);
      if (live) {
        const published = setup.published.filter((entry) => entry.topic === `task:${task.id}`).at(-1)?.seq ?? 0;
        expect(live.last_seq).toBe(published);
        seen.push(live.last_seq);
        return false;
      }
      return (await setup.store.getTask(task.id))?.status === "completed";
    }, "the task completes");
    // It was seen live at least once mid-way: the runner gives the loop turns during a long burst.
    expect(seen.some((seq) => seq > 0 && seq < 2000 * 3 + 2)).toBe(true);
  });
});

describe("runner: durable first, gapless, and the loop keeps turning", () => {
  test("a 5,000-step instant task: every event published once, in order, after it was stored; timers run meanwhile", async () => {
    const setup = rig();
    const task = await submit(setup, { steps: 5000 });
    let timersRan = 0;
    let ended = false;
    const tick = () => {
      if (ended) return;
      timersRan++;
      setTimeout(tick, 0);
    };
    setTimeout(tick, 0);
    await until(async () => (await setup.store.getTask(task.id))?.status === "completed", "the task completes", 60_000);
    ended = true;
    const seqs = setup.published.filter((entry) => entry.topic === `task:${task.id}`).map((entry) => entry.seq);
    expect(seqs).toEqual(Array.from({ length: 5000 * 3 + 2 }, (_, index) => index + 1));
    expect(setup.published.every((entry) => entry.storedFirst)).toBe(true);
    expect((await setup.store.getTask(task.id))!.last_seq).toBe(5000 * 3 + 2);
    // The task ran for many turns, not one: timers fired while it ran (no duration is asserted).
    expect(timersRan).toBeGreaterThan(1);
  });

  test("big frames give the loop a turn sooner: an instant task of 1.5 MB tool calls publishes them over a turn every step or two, not all in one turn of 64 events", async () => {
    const setup = rig();
    let turn = 0;
    let ended = false;
    const tick = () => {
      if (ended) return;
      turn++;
      setImmediate(tick);
    };
    setImmediate(tick);
    /** The event-loop turn each of the task's frames was published in. */
    const turns: number[] = [];
    // The rig's bus records each frame as it is published: the turn is read then.
    const recorded = setup.published.push.bind(setup.published);
    setup.published.push = (...entries) => {
      for (const _ of entries) turns.push(turn);
      return recorded(...entries);
    };
    const steps = 8;
    const task = await submit(setup, { steps, pad: 1_500_000 });
    await until(async () => (await setup.store.getTask(task.id))?.status === "completed", "the task completes", 60_000);
    ended = true;
    expect(turns).toHaveLength(steps * 3 + 2);
    // Each step's frames carry 1.5 MB, past the per-turn budget of characters: the runner gives the
    // loop a turn after every step (by the count of events alone, all 26 frames went out in one turn).
    // The counter's own setImmediate chain saw a turn every one or two steps (5 turns for 8 steps).
    expect(new Set(turns).size).toBeGreaterThanOrEqual(steps / 2);
  });

  test("concurrent instant tasks share the loop and each stays gapless", async () => {
    const setup = rig(8);
    const tasks = await Promise.all(Array.from({ length: 8 }, () => submit(setup, { steps: 300 })));
    await until(async () => {
      const all = await Promise.all(tasks.map((task) => setup.store.getTask(task.id)));
      return all.every((task) => task?.status === "completed");
    }, "all complete", 60_000);
    for (const task of tasks) {
      const seqs = setup.published.filter((entry) => entry.topic === `task:${task.id}`).map((entry) => entry.seq);
      expect(seqs).toEqual(Array.from({ length: 300 * 3 + 2 }, (_, index) => index + 1));
    }
    expect(setup.published.every((entry) => entry.storedFirst)).toBe(true);
  });
});

describe("runner: a run's end is one write", () => {
  test("the events still buffered at the end are stored with the result (finishTask), then published, gapless", async () => {
    const setup = rig();
    const writes: string[] = [];
    const { appendEvents, finishTask } = setup.store;
    setup.store.appendEvents = (id, events, fence) => (writes.push(`append ${events.length}`), appendEvents(id, events, fence));
    setup.store.finishTask = (id, outcome, seq, frame, fence, hooks, before) => (
      writes.push(`finish ${before?.length ?? 0} + result ${seq}`), finishTask(id, outcome, seq, frame, fence, hooks, before)
    );
    // 2 steps: 7 events and the result, all within one turn: a single write.
    const small = await submit(setup, { steps: 2 });
    await until(async () => (await setup.store.getTask(small.id))?.status === "completed", "the task completes");
    expect(writes).toEqual(["finish 7 + result 8"]);
    expect(setup.published.filter((entry) => entry.topic === `task:${small.id}`).map((entry) => entry.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    // 30 steps (91 events): whole batches are appended as the run goes; the rest goes with the result.
    writes.length = 0;
    const longer = await submit(setup, { steps: 30 });
    await until(async () => (await setup.store.getTask(longer.id))?.status === "completed", "the task completes");
    expect(writes.at(-1)).toMatch(/^finish [1-9]\d* \+ result 92$/);
    expect(writes.slice(0, -1).every((write) => write.startsWith("append "))).toBe(true);
    const stored = writes.reduce((sum, write) => sum + Number(/^\w+ (\d+)/.exec(write)![1]), 0);
    expect(stored).toBe(91);
    expect(setup.published.filter((entry) => entry.topic === `task:${longer.id}`).map((entry) => entry.seq)).toEqual(
      Array.from({ length: 92 }, (_, index) => index + 1),
    );
    expect(setup.published.every((entry) => entry.storedFirst)).toBe(true);
    expect((await setup.store.events(longer.id, 0, 100)).length).toBe(92);
  });
});

describe("runner: a park is told at once", () => {
  test("a task whose call needs approval parks: the feed's onParked listeners hear of it once waiting is stored", async () => {
    const store = createSqliteStore({ dataDir: ":memory:" });
    const feed = createLiveFeed({ publish() {}, subscribers: () => 0 });
    const agents = createAgentPool({
      definitions: [AgentDefinition.parse({ name: "careful", model: "demo/react", tools: ["calculator"], approval: ["calculator"] })],
      models: createModelResolver({}),
      tools: builtinTools(),
      mcpServers: [],
    });
    const runner = createRunner({ store, feed, agents, logger: createLogger("silent"), maxConcurrentTasks: 2, maxQueuedTasks: 10 });
    rigs.push({ store, runner, published: [] });
    const task = await store.createTask({ id: crypto.randomUUID(), owner: "test", agent: "careful", input: "What is 6*7?", metadata: {}, createdAt: new Date() });
    const statuses: (string | undefined)[] = [];
    const parked = new Promise<void>((resolve) =>
      feed.onParked(task.id, () => {
        void store.getTask(task.id).then((current) => {
          statuses.push(current?.status);
          resolve();
        });
      }),
    );
    runner.submit(task);
    await within(parked, 5000, "the park");
    expect(statuses).toEqual(["waiting"]);
  });
});

describe("runner: a tool call is durable before a tool with side effects runs", () => {
  test("a non-idempotent tool sees its own tool_call in the store when it starts; an idempotent one may share a commit", async () => {
    const seenAtStart: { tool: string; stored: boolean }[] = [];
    let server: TestServer | undefined;
    const probe = (name: string, idempotent: boolean) =>
      defineTool({
        name,
        description: name,
        idempotent,
        inputSchema: z.object({}),
        async execute() {
          const [task] = (await server!.store.listTasks({ limit: 1 })).tasks;
          const events = await server!.store.events(task!.id, 0, 1000);
          const stored = events.some((event) => {
            const frame = JSON.parse(event.frame) as { data: { event_type: string; data: { name?: string } } };
            return frame.data.event_type === "tool_call" && frame.data.data.name === name;
          });
          seenAtStart.push({ tool: name, stored });
          return "ok";
        },
      });
    server = await startTestServer({
      models: {
        m: createScriptedModel([
          callTools([{ id: "a", name: "send_email", arguments: "{}" }]),
          callTools([{ id: "b", name: "lookup", arguments: "{}" }]),
          answer("done"),
        ]),
      },
      tools: [probe("send_email", false), probe("lookup", true)],
      agents: [{ model: "test/m", tools: ["send_email", "lookup"] }],
    });
    try {
      const task = await server.createTask({ input: "go" });
      await (await server.watch(task.id)).result();
      expect(seenAtStart.find((entry) => entry.tool === "send_email")).toEqual({ tool: "send_email", stored: true });
      expect(seenAtStart.map((entry) => entry.tool)).toEqual(["send_email", "lookup"]);
    } finally {
      await server.close();
    }
  });
});

describe("a run's end the store refuses", () => {
  test("is logged at error level when the task is still live there (its log moved behind the run's back), and not when it had ended first", async () => {
    const store = createSqliteStore({ dataDir: ":memory:" });
    const lines: string[] = [];
    const agents = createAgentPool({
      definitions: [AgentDefinition.parse({ name: "bench", model: "demo/bench", tools: ["calculator"], max_steps: 100_000 })],
      models: createModelResolver({}),
      tools: builtinTools(),
      mcpServers: [],
    });
    /** What happens in the store just before the run's end is written. */
    let meddle: "move the log" | "end the task first" = "move the log";
    /** What the store answered to each end the run wrote. */
    const answered: boolean[] = [];
    const wrapped: TaskStore = {
      ...store,
      async finishTask(id, outcome, seq, frame, fence, webhooks, before) {
        if (meddle === "move the log") {
          // Someone else's write lands first: the log no longer ends where this run's does.
          await store.appendEvents(id, [{ seq: seq - (before?.length ?? 0), frame: '{"type":"step"}' }], fence);
        } else {
          // Someone else ends the task first (a cancel, through the real store): the first end stands.
          expect(await store.finishTask(id, { ...outcome, status: "cancelled", stopReason: "cancelled", output: null, error: null }, seq, frame, fence, undefined, before)).toBe(true);
        }
        const stored = await store.finishTask(id, outcome, seq, frame, fence, webhooks, before);
        answered.push(stored);
        return stored;
      },
    };
    const runner = createRunner({
      store: wrapped,
      feed: createLiveFeed({ publish() {}, subscribers: () => 0 }),
      agents,
      logger: createLogger("debug", (line) => lines.push(line)),
      maxConcurrentTasks: 2,
      maxQueuedTasks: 10,
    });
    rigs.push({ store, runner, published: [] });
    const task = await submit({ store, runner, published: [] }, { steps: 2 });
    await until(() => runner.liveTask(task.id) === undefined, "the run ends");
    const refused = lines.filter((line) => line.includes("refused a task's end"));
    expect(refused).toHaveLength(1);
    expect(refused[0]).toContain(" error ");
    expect(refused[0]).toContain(task.id);
    expect((await store.getTask(task.id))?.status).toBe("running"); // as the store has it: a restart resumes it

    expect(answered).toEqual([false]);

    // A task that ended otherwise first (cancelled in the store just before its run's end is
    // written, which the store then refuses): no error.
    meddle = "end the task first";
    lines.length = 0;
    answered.length = 0;
    const other = await submit({ store, runner, published: [] }, { steps: 2 });
    await until(() => runner.liveTask(other.id) === undefined, "the other run ends");
    expect(answered).toEqual([false]); // the run's end was refused…
    expect((await store.getTask(other.id))?.status).toBe("cancelled"); // …because the task had ended first
    expect(lines.filter((line) => line.includes("refused a task's end"))).toEqual([]);
  });
});

describe("the queue limit", () => {
  /** A runner with these limits, its store in memory, the bench agent, nobody watching. */
  function limited(maxConcurrentTasks: number, maxQueuedTasks: number, admissionTtlMs?: number) {
    const store = createSqliteStore({ dataDir: ":memory:" });
    const agents = createAgentPool({
      definitions: [AgentDefinition.parse({ name: "bench", model: "demo/bench", tools: ["calculator"], max_steps: 100_000 })],
      models: createModelResolver({}),
      tools: builtinTools(),
      mcpServers: [],
    });
    const runner = createRunner({ store, feed: createLiveFeed({ publish() {}, subscribers: () => 0 }), agents, logger: createLogger("silent"), maxConcurrentTasks, maxQueuedTasks, admissionTtlMs });
    rigs.push({ store, runner, published: [] });
    return { store, runner };
  }

  test("holds while a slot is free but what is queued waits for its thread's earlier task", async () => {
    const { store, runner } = limited(2, 3);
    await store.createThread({ id: "thr", owner: "test", createdAt: new Date() });
    const onThread = async (input: object) => {
      await runner.ensureCapacity();
      const task = await store.createTask({ id: crypto.randomUUID(), owner: "test", agent: "bench", input: JSON.stringify(input), metadata: {}, createdAt: new Date(), threadId: "thr" });
      runner.submit(task);
      return task;
    };
    // The thread's first task runs (one of two slots): the next ones queue behind it.
    const head = await onThread({ steps: 1, delay_ms: 60_000 });
    await until(async () => (await store.getTask(head.id))?.status === "running", "the thread's head runs");
    for (let index = 0; index < 3; index++) await onThread({ steps: 1 });
    expect(runner.stats()).toMatchObject({ running: 1, queued: 3 });
    // A slot is free, but the queue is full: refused, as any other task would be.
    await expect(runner.ensureCapacity()).rejects.toThrow("Task queue is full (3 waiting)");
    await runner.cancel(head.id);
  });

  test("tasks queued behind a busy thread are not walked again on every submit and every end (FIFO and the thread's order kept)", async () => {
    const queued = 2000;
    const { store, runner } = limited(2, queued + 100);
    await store.createThread({ id: "busy", owner: "test", createdAt: new Date() });
    const create = (input: object, threadId?: string) =>
      store.createTask({ id: crypto.randomUUID(), owner: "test", agent: "bench", input: JSON.stringify(input), metadata: {}, createdAt: new Date(), threadId });
    const head = await create({ steps: 1, delay_ms: 60_000 }, "busy");
    runner.submit(head);
    await until(async () => (await store.getTask(head.id))?.status === "running", "the thread's head runs");
    // The thread's next tasks queue behind it; how often the runner looks at them is counted.
    let looks = 0;
    const behind: string[] = [];
    for (let index = 0; index < queued; index++) {
      const task = await create({ steps: 1 }, "busy");
      behind.push(task.id);
      runner.submit(
        Object.defineProperty({ ...task }, "thread_id", {
          get: () => (looks++, "busy"),
          enumerable: true,
        }),
      );
    }
    expect(runner.stats()).toMatchObject({ running: 1, queued });
    looks = 0;
    // 50 tasks of no thread, submitted and ended through the free slot, one after another.
    for (let index = 0; index < 50; index++) {
      const task = await create({ steps: 1 });
      runner.submit(task);
      await until(async () => (await store.getTask(task.id))?.status === "completed", "a free task ends");
    }
    // Walking the queue on each of those submits and ends looked at the queued tasks 100 × 2,000 times.
    expect(looks).toBeLessThan(queued);
    // The thread's tasks then run in their order, one at a time.
    await runner.cancel(head.id);
    await until(async () => (await store.getTask(behind.at(-1)!))?.status === "completed", "the thread's last task ends", 60_000);
    const started = await Promise.all(behind.map(async (id) => (await store.getTask(id))!.started_at!));
    expect(started).toEqual([...started].sort());
  }, 120_000);

  test("tasks admitted and not yet submitted count (an AG-UI run is submitted once its stream is attached): a burst gets a slot's and the queue's worth, no more", async () => {
    const { store, runner } = limited(1, 2);
    // 60 admissions before any submit: one will start in the free slot, two will queue.
    const admitted = await Promise.allSettled(Array.from({ length: 60 }, () => runner.ensureCapacity()));
    expect(admitted.filter((result) => result.status === "fulfilled")).toHaveLength(3);
    expect(admitted.filter((result) => result.status === "rejected").map((result) => (result as PromiseRejectedResult).reason.code)).toEqual(Array(57).fill("queue_full"));
    // One of them is not stored after all: its place is free again.
    runner.releaseCapacity();
    await runner.ensureCapacity();
    await expect(runner.ensureCapacity()).rejects.toThrow("Task queue is full (2 waiting)");
    const tasks = [];
    for (let index = 0; index < 3; index++) {
      const task = await store.createTask({ id: crypto.randomUUID(), owner: "test", agent: "bench", input: JSON.stringify({ steps: 1, delay_ms: 60_000 }), metadata: {}, createdAt: new Date() });
      runner.submit(task);
      tasks.push(task);
    }
    expect(runner.stats()).toMatchObject({ running: 1, queued: 2 });
    await expect(runner.ensureCapacity()).rejects.toThrow("Task queue is full (2 waiting)");
    for (const task of tasks) await runner.cancel(task.id);
  });

  test("an admission never submitted nor released (a request that died between) stops counting after admissionTtlMs", async () => {
    const { runner } = limited(1, 0, 100);
    await runner.ensureCapacity(); // takes the free slot, and is never submitted
    await expect(runner.ensureCapacity()).rejects.toThrow("Task queue is full (0 waiting)");
    await Bun.sleep(150);
    await runner.ensureCapacity(); // forgotten: the slot is free again
  });
});
