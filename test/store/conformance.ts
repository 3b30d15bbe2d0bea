/**
 * The TaskStore contract (src/store/store.ts), one suite for every store: SQLite and PostgreSQL run
 * the same tests (test/store/sqlite-store.test.ts, test/store/postgres-store.test.ts). Each test
 * proves a promise of the README's "Guarantees" at the store: gapless `seq`, a duplicate or a gap
 * refused, a batch stored all or none, the first terminal state wins (also when two stores race, as
 * two nodes or two processes would), the state machine's transitions and no others, retention,
 * tenant filtering, stable pagination, data stored exactly as given, and fencing: a run that was
 * taken over can write nothing more.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { TERMINAL_STATUSES, type Task, type TaskStatus } from "../../src/protocol/task.ts";
import { FencedError, pageMayContinue, type NewTask, type NewWebhook, type StoredEvent, type TaskOutcome, type TaskStore } from "../../src/store/store.ts";
import { canTransition } from "../../src/tasks/state.ts";

export interface StoreHarness {
  /** A new, empty store. */
  open(): Promise<TaskStore>;
  /** Another store on the data of the last `open()`: a restart, or a second node / process. */
  openAgain(): Promise<TaskStore>;
  /** After each test, once its stores are closed. */
  cleanup?(): Promise<void> | void;
}

export const newTask = (id: string, overrides: Partial<NewTask> = {}): NewTask => ({
  id,
  owner: "anonymous",
  agent: "default",
  input: `input of ${id}`,
  metadata: {},
  createdAt: new Date("2026-03-04T05:06:07.089Z"),
  ...overrides,
});

export const outcome = (status: TaskOutcome["status"], overrides: Partial<TaskOutcome> = {}): TaskOutcome => ({
  status,
  stopReason: status === "completed" ? "final_answer" : status === "timed_out" ? "deadline" : status === "cancelled" ? "cancelled" : "error",
  output: status === "completed" ? "ok" : null,
  error:
    status === "failed" || status === "timed_out"
      ? { code: status === "failed" ? "internal" : "deadline", message: `it ${status}`, retryable: false }
      : null,
  totalSteps: 1,
  inputTokens: 2,
  outputTokens: 1,
  costUsd: null,
  finishedAt: new Date("2026-03-04T05:07:00.000Z"),
  ...overrides,
});

const frames = (events: StoredEvent[]) => events.map((event) => event.frame);
const run = (first: number, count: number, tag = "e"): StoredEvent[] =>
  Array.from({ length: count }, (_, index) => ({ seq: first + index, frame: `{"${tag}":${first + index}}` }));


export function storeConformance(name: string, makeHarness: () => StoreHarness): void {
  describe(`TaskStore contract: ${name}`, () => {
    let harness: StoreHarness | undefined;
    const opened: TaskStore[] = [];
    afterEach(async () => {
      for (const store of opened.splice(0)) await store.close();
      await harness?.cleanup?.();
      harness = undefined;
    });
    async function open(): Promise<TaskStore> {
      harness = makeHarness();
      const store = await harness.open();
      opened.push(store);
      return store;
    }
    async function openAgain(): Promise<TaskStore> {
      const store = await harness!.openAgain();
      opened.push(store);
      return store;
    }

    describe("tasks", () => {
      test("a new task reads back exactly as created: every field, ISO 8601 times with milliseconds", async () => {
        const s = await open();
        const created = await s.createTask(newTask("t1", { owner: "alice", agent: "helper", input: "What is 2+2?", metadata: { a: 1 } }));
        const expected: Task = {
          id: "t1",
          owner: "alice",
          agent: "helper",
          input: "What is 2+2?",
          metadata: { a: 1 },
          status: "queued",
          stop_reason: null,
          output: null,
          error: null,
          total_steps: 0,
          total_tokens: 0,
          input_tokens: 0,
          output_tokens: 0,
          cost_usd: null,
          thread_id: null,
          output_json: null,
          wait_until: null,
          last_seq: 0,
          pruned_through: 0,
          created_at: "2026-03-04T05:06:07.089Z",
          started_at: null,
          finished_at: null,
        };
        expect(created).toEqual(expected);
        expect(Object.keys(created)).toEqual(Object.keys(expected));
        expect(await s.getTask("t1")).toEqual(expected);
        expect(await s.getTask("nope")).toBeUndefined();
        await expect(s.createTask(newTask("t1"))).rejects.toThrow();
      });

      test("metadata round-trips as the same object, key order kept; any text (unicode, NUL, emoji) round-trips", async () => {
        const s = await open();
        const metadata = {
          zebra: 1,
          alpha: { nested: [1, 2.5, -3, 1e21, true, false, null, "x"], empty: {} },
          "": "empty key",
          "ключ": "значение",
          emoji: "👩🏽‍💻 🇫🇷",
          nul: "a\u0000b",
          quotes: "\"'\\/{}[],:",
          big: 12345678901234,
          tiny: 1e-7,
        };
        const input = "Zero\u0000byte, RTL \u05e9\u05dc\u05d5\u05dd, combining e\u0301, astral 𝄞, newline\n\ttab, NULL";
        const created = await s.createTask(newTask("m", { input, metadata }));
        for (const task of [created, (await s.getTask("m"))!, (await s.listTasks({ limit: 5 })).tasks[0]!]) {
          expect(task.metadata).toEqual(metadata);
          expect(JSON.stringify(task.metadata)).toBe(JSON.stringify(metadata));
          expect(task.input).toBe(input);
        }
        const output = "Answer with NUL \u0000 and 🎉 and \\u0000 literally";
        const error = { code: "internal" as const, message: "provider said: «nope» \u0000 ✗", retryable: false };
        expect(await s.markRunning("m", new Date())).toBe(true);
        expect(await s.finishTask("m", outcome("failed", { output, error }), 1, "{}")).toBe(true);
        const ended = (await s.getTask("m"))!;
        expect(ended.output).toBe(output);
        expect(ended.error).toEqual(error);
      });

      test("createTask rejects a duplicate id and leaves the first task as it was", async () => {
        const s = await open();
        await s.createTask(newTask("dup", { input: "first" }));
        await expect(s.createTask(newTask("dup", { input: "second" }))).rejects.toThrow();
        expect((await s.getTask("dup"))?.input).toBe("first");
      });

      test("getTask, listTasks and tasksWithStatus return the same Task object", async () => {
        const s = await open();
        await s.createTask(newTask("same", { metadata: { k: [1, { v: "w" }] } }));
        await s.markRunning("same", new Date("2026-03-04T05:06:08.000Z"));
        await s.appendEvents("same", run(1, 2));
        const one = await s.getTask("same");
        expect(one).toMatchObject({ status: "running", started_at: "2026-03-04T05:06:08.000Z", last_seq: 2 });
        expect((await s.listTasks({ limit: 10 })).tasks).toEqual([one!]);
        expect(await s.tasksWithStatus(["running"])).toEqual([one!]);
      });

      test("data is durable: a restart (or another node) sees tasks, outcomes and events as written", async () => {
        const s = await open();
        await s.createTask(newTask("d", { metadata: { nested: { x: [1] } } }));
        await s.markRunning("d", new Date("2026-03-04T05:06:08.123Z"));
        await s.appendEvents("d", run(1, 3));
        await s.finishTask("d", outcome("completed", { costUsd: 0.00125 }), 4, '{"type":"result"}');
        const before = await s.getTask("d");
        const eventsBefore = await s.events("d", 0, 100);
        await s.close();
        opened.splice(opened.indexOf(s), 1);
        const again = await openAgain();
        expect(await again.getTask("d")).toEqual(before!);
        expect(await again.events("d", 0, 100)).toEqual(eventsBefore);
        expect(before).toMatchObject({ status: "completed", cost_usd: 0.00125, last_seq: 4, finished_at: "2026-03-04T05:07:00.000Z" });
      });
    });

    describe("event log", () => {
      test("events get a gapless seq from 1; a duplicate, a gap or an unknown task is refused and writes nothing", async () => {
        const s = await open();
        await s.createTask(newTask("t"));
        await s.appendEvents("t", [{ seq: 1, frame: '{"n":1}' }]);
        await s.appendEvents("t", [{ seq: 2, frame: '{"n":2}' }]);
        await expect(s.appendEvents("t", [{ seq: 2, frame: '{"dup":2}' }])).rejects.toThrow("not the next in sequence");
        await expect(s.appendEvents("t", [{ seq: 1, frame: '{"dup":1}' }])).rejects.toThrow("not the next in sequence");
        await expect(s.appendEvents("t", [{ seq: 4, frame: '{"gap":4}' }])).rejects.toThrow("not the next in sequence");
        await expect(s.appendEvents("missing", [{ seq: 1, frame: "{}" }])).rejects.toThrow("not the next in sequence");
        expect(await s.events("t", 0, 10)).toEqual([
          { seq: 1, frame: '{"n":1}' },
          { seq: 2, frame: '{"n":2}' },
        ]);
        expect((await s.getTask("t"))?.last_seq).toBe(2);
        expect(await s.events("missing", 0, 10)).toEqual([]);
      });

      test("a run of events is stored in one transaction: all or none", async () => {
        const s = await open();
        await s.createTask(newTask("a"));
        await s.appendEvents("a", run(1, 3));
        await expect(s.appendEvents("a", [{ seq: 4, frame: "a4" }, { seq: 6, frame: "a6-gap" }])).rejects.toThrow("must be consecutive");
        await expect(s.appendEvents("a", [{ seq: 5, frame: "a5" }, { seq: 4, frame: "a4" }])).rejects.toThrow("must be consecutive");
        await expect(s.appendEvents("a", [{ seq: 4, frame: "a4" }, { seq: 4, frame: "a4-again" }])).rejects.toThrow("must be consecutive");
        // The first event is stale, the rest would be new: none of them is stored.
        await expect(s.appendEvents("a", [{ seq: 3, frame: "again" }, { seq: 4, frame: "a4" }])).rejects.toThrow("not the next in sequence");
        expect(frames(await s.events("a", 0, 10))).toEqual(frames(run(1, 3)));
        expect((await s.getTask("a"))?.last_seq).toBe(3);
        await s.appendEvents("a", []);
        expect((await s.getTask("a"))?.last_seq).toBe(3);
        await s.appendEvents("a", run(4, 16));
        expect((await s.events("a", 0, 100)).map((event) => event.seq)).toEqual(Array.from({ length: 19 }, (_, index) => index + 1));
      });

      test("appends racing for the same seqs (two nodes): exactly one lands, whole", async () => {
        const s = await open();
        const other = await openAgain();
        await s.createTask(newTask("race"));
        for (let round = 0; round < 5; round++) {
          const first = round * 3 + 1;
          const results = await Promise.allSettled([
            s.appendEvents("race", run(first, 3, "left")),
            other.appendEvents("race", run(first, 3, "right")),
            s.appendEvents("race", run(first, 3, "third")),
          ]);
          expect(results.filter((result) => result.status === "fulfilled")).toHaveLength(1);
        }
        const events = await s.events("race", 0, 100);
        expect(events.map((event) => event.seq)).toEqual(Array.from({ length: 15 }, (_, index) => index + 1));
        // Each round of three came from one writer.
        for (let round = 0; round < 5; round++) {
          const tags = new Set(events.slice(round * 3, round * 3 + 3).map((event) => Object.keys(JSON.parse(event.frame))[0]));
          expect(tags.size).toBe(1);
        }
        expect((await other.getTask("race"))?.last_seq).toBe(15);
      });

      test("events(after, limit) pages through the log in order", async () => {
        const s = await open();
        await s.createTask(newTask("p"));
        for (let first = 1; first <= 50; first += 10) await s.appendEvents("p", run(first, 10));
        const paged: StoredEvent[] = [];
        for (let after = 0; ; ) {
          const page = await s.events("p", after, 7);
          if (page.length === 0) break;
          expect(page.length).toBeLessThanOrEqual(7);
          paged.push(...page);
          after = page.at(-1)!.seq;
        }
        expect(paged).toEqual(run(1, 50));
        expect(await s.events("p", 49, 10)).toEqual(run(50, 1));
        expect(await s.events("p", 50, 10)).toEqual([]);
        expect(await s.events("p", 500, 10)).toEqual([]);
        expect(await s.events("p", 10, 1)).toEqual(run(11, 1));
      });

      test("frames are stored exactly as given: unicode, escapes, SQL and array metacharacters, large frames", async () => {
        const s = await open();
        await s.createTask(newTask("f"));
        const texts = [
          JSON.stringify({ type: "step", data: { text: "héllo wörld — 你好 — 👋🏾 — \u0000 — \u2028" } }),
          '{"quote":"\\"","backslash":"\\\\","braces":"{}","comma":",","null":null}',
          "NULL",
          "",
          " padded ",
          "'); DROP TABLE events; --",
          JSON.stringify({ big: "x".repeat(1024 * 1024) }),
          JSON.stringify({ many: Array.from({ length: 2000 }, (_, index) => ({ index, text: "ü".repeat(index % 17) })) }),
        ];
        const events = texts.map((frame, index) => ({ seq: index + 1, frame }));
        await s.appendEvents("f", events);
        const back = await s.events("f", 0, 100);
        expect(back.length).toBe(texts.length);
        back.forEach((event, index) => expect(event.frame).toBe(texts[index]!));
      });
    });

    describe("state machine", () => {
      test("markRunning moves queued → running only", async () => {
        const s = await open();
        await s.createTask(newTask("q"));
        expect(await s.markRunning("q", new Date("2026-03-04T05:06:09.000Z"))).toBe(true);
        expect(await s.getTask("q")).toMatchObject({ status: "running", started_at: "2026-03-04T05:06:09.000Z" });
        expect(await s.markRunning("q", new Date("2026-03-04T05:06:10.000Z"))).toBe(false);
        expect((await s.getTask("q"))?.started_at).toBe("2026-03-04T05:06:09.000Z");
        expect(await s.markRunning("unknown", new Date())).toBe(false);
        // A queued task that was cancelled can no longer start.
        await s.createTask(newTask("c"));
        expect(await s.finishTask("c", outcome("cancelled"), 1, "{}")).toBe(true);
        expect(await s.markRunning("c", new Date())).toBe(false);
        expect((await s.getTask("c"))?.status).toBe("cancelled");
      });

      test("finishTask writes exactly the transitions of src/tasks/state.ts", async () => {
        const s = await open();
        for (const from of ["queued", "running"] as const satisfies TaskStatus[]) {
          for (const to of TERMINAL_STATUSES as TaskOutcome["status"][]) {
            const id = `${from}-${to}`;
            await s.createTask(newTask(id));
            if (from === "running") await s.markRunning(id, new Date());
            const allowed = canTransition(from, to);
            expect({ id, finished: await s.finishTask(id, outcome(to), 1, `{"to":"${to}"}`) }).toEqual({ id, finished: allowed });
            const task = (await s.getTask(id))!;
            expect(task.status).toBe(allowed ? to : from);
            expect(frames(await s.events(id, 0, 10))).toEqual(allowed ? [`{"to":"${to}"}`] : []);
          }
        }
      });

      test("the first terminal state wins; a finish with the wrong seq writes nothing", async () => {
        const s = await open();
        await s.createTask(newTask("t"));
        expect(await s.markRunning("t", new Date())).toBe(true);
        await s.appendEvents("t", run(1, 2));
        expect(await s.finishTask("t", outcome("cancelled"), 2, '{"r":"stale"}')).toBe(false);
        expect(await s.finishTask("t", outcome("cancelled"), 4, '{"r":"gap"}')).toBe(false);
        expect((await s.getTask("t"))?.status).toBe("running");
        expect(await s.finishTask("t", outcome("cancelled"), 3, '{"r":"cancelled"}')).toBe(true);
        expect(await s.finishTask("t", outcome("completed"), 4, '{"r":"completed"}')).toBe(false);
        expect(await s.finishTask("t", outcome("failed"), 3, '{"r":"failed"}')).toBe(false);
        expect(await s.getTask("t")).toMatchObject({ status: "cancelled", last_seq: 3, stop_reason: "cancelled", output: null });
        expect(frames(await s.events("t", 0, 10))).toEqual([...frames(run(1, 2)), '{"r":"cancelled"}']);
        expect(await s.finishTask("missing", outcome("cancelled"), 1, "{}")).toBe(false);
      });

      test("finishTask with the run's last events: they and the end are stored in one write, all or none", async () => {
        const s = await open();
        await s.createTask(newTask("b"));
        await s.markRunning("b", new Date());
        await s.appendEvents("b", run(1, 2));
        // Events that do not end just before the result, or with a gap: refused, nothing written.
        await expect(s.finishTask("b", outcome("completed"), 7, '{"r":"x"}', undefined, undefined, run(3, 3))).rejects.toThrow("must follow its last event");
        await expect(s.finishTask("b", outcome("completed"), 6, '{"r":"x"}', undefined, undefined, [...run(3, 1), ...run(5, 1)])).rejects.toThrow("consecutive");
        // Events that do not follow the log (a stale seq): false, nothing written.
        expect(await s.finishTask("b", outcome("completed"), 5, '{"r":"x"}', undefined, undefined, run(2, 3, "stale"))).toBe(false);
        expect(await s.getTask("b")).toMatchObject({ status: "running", last_seq: 2 });
        expect(frames(await s.events("b", 0, 10))).toEqual(frames(run(1, 2)));
        // The run's last events and its result, together.
        expect(await s.finishTask("b", outcome("completed"), 6, '{"r":"done"}', undefined, undefined, run(3, 3, "last"))).toBe(true);
        expect(await s.getTask("b")).toMatchObject({ status: "completed", last_seq: 6 });
        expect(frames(await s.events("b", 0, 10))).toEqual([...frames(run(1, 2)), ...frames(run(3, 3, "last")), '{"r":"done"}']);
        // An ended task: false, and none of the events is stored.
        expect(await s.finishTask("b", outcome("failed"), 9, '{"r":"late"}', undefined, undefined, run(7, 2, "late"))).toBe(false);
        expect(frames(await s.events("b", 6, 10))).toEqual([]);
        // Fenced like the rest: a run that was taken over writes none of them.
        const other = await openAgain();
        await s.createTask(newTask("bf"));
        await s.markRunning("bf", new Date());
        expect(await other.takeOver("bf")).toBe(2);
        const stale = s.finishTask("bf", outcome("completed"), 3, '{"r":"stale"}', 1, undefined, run(1, 2, "stale"));
        expect(await stale.then(() => undefined, (error: unknown) => error)).toBeInstanceOf(FencedError);
        expect(await other.getTask("bf")).toMatchObject({ status: "running", last_seq: 0 });
        expect(await other.finishTask("bf", outcome("completed"), 3, '{"r":"new"}', 2, undefined, run(1, 2, "new"))).toBe(true);
        expect(frames(await other.events("bf", 0, 10))).toEqual([...frames(run(1, 2, "new")), '{"r":"new"}']);
      });

      test(
        "a terminal task's log ends with its result: no event is appended after it",
        async () => {
          const s = await open();
          await s.createTask(newTask("closed"));
          await s.markRunning("closed", new Date());
          expect(await s.finishTask("closed", outcome("completed"), 1, '{"type":"result"}')).toBe(true);
          await expect(s.appendEvents("closed", run(2, 1))).rejects.toThrow("not the next in sequence");
          expect(frames(await s.events("closed", 0, 10))).toEqual(['{"type":"result"}']);
          expect((await s.getTask("closed"))?.last_seq).toBe(1);
        },
      );

      test("concurrent finishTask calls (two nodes): exactly one wins; the task has one result", async () => {
        const s = await open();
        const other = await openAgain();
        const statuses = ["completed", "failed", "cancelled", "timed_out"] as const;
        for (let round = 0; round < 4; round++) {
          const id = `race-${round}`;
          await s.createTask(newTask(id));
          await s.markRunning(id, new Date());
          await s.appendEvents(id, run(1, 1));
          const attempts = statuses.map((status, index) =>
            (index % 2 === 0 ? s : other).finishTask(id, outcome(status), 2, `{"winner":"${status}"}`).then((won) => ({ status, won })),
          );
          const results = await Promise.all(attempts);
          const winners = results.filter((result) => result.won);
          expect(winners).toHaveLength(1);
          const task = (await other.getTask(id))!;
          expect(task.status).toBe(winners[0]!.status);
          expect(task.last_seq).toBe(2);
          expect(frames(await s.events(id, 1, 10))).toEqual([`{"winner":"${winners[0]!.status}"}`]);
        }
      });

      test("the outcome is stored: totals, cost, error object, times", async () => {
        const s = await open();
        await s.createTask(newTask("o"));
        await s.markRunning("o", new Date("2026-03-04T05:06:08.000Z"));
        const error = { code: "rate_limited" as const, message: "openai/gpt-test: HTTP 429 after 2 attempts: slow down", retryable: true };
        expect(
          await s.finishTask(
            "o",
            outcome("failed", { stopReason: "error", error, totalSteps: 7, inputTokens: 1200, outputTokens: 345, costUsd: 0.0123456789, finishedAt: new Date("2026-03-04T05:06:09.999Z") }),
            1,
            "{}",
          ),
        ).toBe(true);
        expect(await s.getTask("o")).toMatchObject({
          status: "failed",
          stop_reason: "error",
          output: null,
          error,
          total_steps: 7,
          input_tokens: 1200,
          output_tokens: 345,
          total_tokens: 1545,
          cost_usd: 0.0123456789,
          last_seq: 1,
          started_at: "2026-03-04T05:06:08.000Z",
          finished_at: "2026-03-04T05:06:09.999Z",
        });
        expect((await s.listTasks({ limit: 5 })).tasks[0]?.error).toEqual(error);
      });
    });

    describe("fencing", () => {
      /** Rejects with a FencedError of this task and fence. */
      async function fenced(write: Promise<unknown>, taskId: string, fence: number) {
        const error = await write.then(
          () => undefined,
          (thrown: unknown) => thrown,
        );
        expect(error).toBeInstanceOf(FencedError);
        expect(error).toMatchObject({ taskId, fence, name: "FencedError" });
      }

      test("takeOver: only a running task, attempt + 1 each time; markRunning is attempt 1", async () => {
        const s = await open();
        await s.createTask(newTask("t"));
        expect(await s.takeOver("t")).toBeUndefined(); // queued
        expect(await s.markRunning("t", new Date("2026-03-04T05:06:08.000Z"))).toBe(true);
        const running = await s.getTask("t");
        expect(await s.takeOver("t")).toBe(2);
        expect(await s.takeOver("t")).toBe(3);
        expect(await s.getTask("t")).toEqual(running!); // the task itself is unchanged: still running, same start
        await s.appendEvents("t", run(1, 1), 3);
        expect(await s.finishTask("t", outcome("completed"), 2, "{}", 3)).toBe(true);
        expect(await s.takeOver("t")).toBeUndefined(); // terminal
        expect(await s.takeOver("missing")).toBeUndefined();
        expect(await s.getTask("t")).toMatchObject({ status: "completed", last_seq: 2 });
      });

      test("a run that was taken over is fenced: its appends and its finish throw FencedError and write nothing", async () => {
        const s = await open();
        const other = await openAgain(); // the new run may well be on another node
        await s.createTask(newTask("f"));
        await s.markRunning("f", new Date());
        await s.appendEvents("f", run(1, 2, "old"), 1); // the first run's writes pass
        expect(await other.takeOver("f")).toBe(2);
        // The stale run, at the right seq: refused.
        await fenced(s.appendEvents("f", run(3, 2, "stale"), 1), "f", 1);
        await fenced(s.finishTask("f", outcome("completed"), 3, '{"r":"stale"}', 1), "f", 1);
        expect(await s.getTask("f")).toMatchObject({ status: "running", last_seq: 2 });
        expect(frames(await s.events("f", 0, 10))).toEqual(frames(run(1, 2, "old")));
        // The current run writes.
        await other.appendEvents("f", run(3, 2, "new"), 2);
        // The stale run, now also behind in seq: still told it was fenced, not a seq conflict.
        await fenced(s.appendEvents("f", run(3, 1, "stale"), 1), "f", 1);
        await fenced(s.appendEvents("f", run(5, 1, "stale"), 1), "f", 1);
        // A seq conflict of the current run is still a conflict.
        await expect(other.appendEvents("f", run(4, 1, "dup"), 2)).rejects.toThrow("not the next in sequence");
        await expect(other.appendEvents("f", run(4, 1, "dup"), 2)).rejects.not.toBeInstanceOf(FencedError);
        expect(await other.finishTask("f", outcome("completed"), 5, '{"r":"new"}', 2)).toBe(true);
        // After the current run ended: the stale finish is fenced (not "another terminal state won").
        await fenced(s.finishTask("f", outcome("failed"), 6, '{"r":"stale"}', 1), "f", 1);
        await fenced(s.appendEvents("f", run(6, 1, "stale"), 1), "f", 1);
        // The current run after its own end: the usual answers.
        expect(await other.finishTask("f", outcome("failed"), 6, '{"r":"again"}', 2)).toBe(false);
        await expect(other.appendEvents("f", run(6, 1, "late"), 2)).rejects.toThrow("not the next in sequence");
        expect(await s.getTask("f")).toMatchObject({ status: "completed", last_seq: 5, output: "ok" });
        expect(frames(await s.events("f", 0, 10))).toEqual([...frames(run(1, 2, "old")), ...frames(run(3, 2, "new")), '{"r":"new"}']);
        // An unknown task is no fencing matter.
        await expect(s.appendEvents("missing", run(1, 1), 1)).rejects.toThrow("not the next in sequence");
        expect(await s.finishTask("missing", outcome("cancelled"), 1, "{}", 1)).toBe(false);
      });

      test("unfenced writes are not fenced; a fence from the future is refused too", async () => {
        const s = await open();
        await s.createTask(newTask("u"));
        await s.markRunning("u", new Date());
        await s.takeOver("u");
        await s.appendEvents("u", run(1, 1)); // no fence: single-node code paths
        await fenced(s.appendEvents("u", run(2, 1), 3), "u", 3);
        expect(await s.finishTask("u", outcome("cancelled"), 2, "{}")).toBe(true);
        expect((await s.getTask("u"))?.status).toBe("cancelled");
      });
    });

    describe("listing", () => {
      async function seed(s: TaskStore, owners: string[]) {
        const ids: string[] = [];
        for (const [index, owner] of owners.entries()) {
          const id = `task-${String(index).padStart(3, "0")}`;
          // The same creation time for all: the order must come from the store, not the clock.
          await s.createTask(newTask(id, { owner }));
          ids.push(id);
        }
        return ids;
      }
      async function all(s: TaskStore, query: { owner?: string; status?: TaskStatus }, limit: number) {
        const seen: string[] = [];
        let cursor: string | undefined;
        for (;;) {
          const page = await s.listTasks({ ...query, limit, cursor });
          expect(page.tasks.length).toBeLessThanOrEqual(limit);
          seen.push(...page.tasks.map((task) => task.id));
          if (!page.nextCursor) return seen;
          cursor = page.nextCursor;
        }
      }

      test("newest first; the cursor pages through every task once; the last page has no cursor", async () => {
        const s = await open();
        const ids = await seed(s, Array(11).fill("anonymous"));
        expect(await all(s, {}, 4)).toEqual(ids.toReversed());
        expect(await all(s, {}, 11)).toEqual(ids.toReversed());
        const one = await s.listTasks({ limit: 11 });
        expect(one.nextCursor).toBeNull();
        expect((await s.listTasks({ limit: 100 })).tasks).toHaveLength(11);
        // Each task's cursor goes on right after it (a page cut short by size continues there).
        expect(one.cursors).toHaveLength(11);
        const afterThird = await s.listTasks({ limit: 3, cursor: one.cursors[2] });
        expect(afterThird.tasks.map((task) => task.id)).toEqual(ids.toReversed().slice(3, 6));
        expect(afterThird.nextCursor).toBe(afterThird.cursors[2]!);
      });

      test("pages stay stable while tasks are added", async () => {
        const s = await open();
        const ids = await seed(s, Array(10).fill("anonymous"));
        const first = await s.listTasks({ limit: 4 });
        expect(first.tasks.map((task) => task.id)).toEqual(ids.toReversed().slice(0, 4));
        for (let index = 0; index < 5; index++) await s.createTask(newTask(`new-${index}`));
        const seen = first.tasks.map((task) => task.id);
        let cursor = first.nextCursor;
        while (cursor) {
          const page = await s.listTasks({ limit: 4, cursor });
          seen.push(...page.tasks.map((task) => task.id));
          await s.createTask(newTask(`newer-${cursor}`));
          cursor = page.nextCursor;
        }
        expect(seen).toEqual(ids.toReversed());
      });

      test("tenant isolation: an owner filter returns only that owner's tasks, on every page", async () => {
        const s = await open();
        const owners = Array.from({ length: 15 }, (_, index) => ["alice", "bob", "carol"][index % 3]!);
        const ids = await seed(s, owners);
        for (const owner of ["alice", "bob", "carol"]) {
          const expected = ids.filter((_, index) => owners[index] === owner).toReversed();
          expect(await all(s, { owner }, 2)).toEqual(expected);
        }
        expect(await all(s, { owner: "mallory" }, 2)).toEqual([]);
        expect(await all(s, { owner: "alice' OR '1'='1" }, 2)).toEqual([]);
        expect(await all(s, {}, 4)).toEqual(ids.toReversed());
        // A cursor from one owner's listing never reveals another owner's tasks.
        const alicePage = await s.listTasks({ owner: "alice", limit: 1 });
        const bobAfter = await s.listTasks({ owner: "bob", limit: 100, cursor: alicePage.nextCursor! });
        expect(bobAfter.tasks.every((task) => task.owner === "bob")).toBe(true);
      });

      test("a status filter, alone and with an owner", async () => {
        const s = await open();
        const owners = ["alice", "bob", "alice", "bob", "alice", "alice"];
        const ids = await seed(s, owners);
        for (const id of [ids[0]!, ids[1]!, ids[4]!]) await s.markRunning(id, new Date());
        await s.finishTask(ids[4]!, outcome("completed"), 1, "{}");
        expect(await all(s, { status: "running" }, 1)).toEqual([ids[1]!, ids[0]!]);
        expect(await all(s, { status: "queued" }, 2)).toEqual([ids[5]!, ids[3]!, ids[2]!]);
        expect(await all(s, { status: "queued", owner: "alice" }, 1)).toEqual([ids[5]!, ids[2]!]);
        expect(await all(s, { status: "completed", owner: "bob" }, 5)).toEqual([]);
        expect(await all(s, { status: "completed" }, 5)).toEqual([ids[4]!]);
      });

      test("an invalid cursor is a bad request", async () => {
        const s = await open();
        const b64 = (text: string) => Buffer.from(text).toString("base64url");
        for (const cursor of ["garbage", "", b64("t"), b64("t-1"), b64("tabc"), b64("t1234567890123456"), b64("x12"), b64("t1 OR 1=1")]) {
          await expect(s.listTasks({ limit: 5, cursor })).rejects.toMatchObject({ code: "bad_request" });
        }
      });

      test("tasksWithStatus: only those statuses, oldest first", async () => {
        const s = await open();
        const ids = await seed(s, Array(6).fill("anonymous"));
        await s.markRunning(ids[3]!, new Date());
        await s.markRunning(ids[1]!, new Date());
        await s.markRunning(ids[5]!, new Date());
        await s.finishTask(ids[5]!, outcome("completed"), 1, "{}");
        expect((await s.tasksWithStatus(["running", "queued"])).map((task) => task.id)).toEqual([ids[0]!, ids[1]!, ids[2]!, ids[3]!, ids[4]!]);
        expect((await s.tasksWithStatus(["running"])).map((task) => task.id)).toEqual([ids[1]!, ids[3]!]);
        expect((await s.tasksWithStatus(["completed", "failed"])).map((task) => task.id)).toEqual([ids[5]!]);
        expect(await s.tasksWithStatus([])).toEqual([]);
      });
    });

    test("events with maxBytes: a page holds that many bytes of frames (UTF-8) at most, the frame that reaches it the last (at least one); pageMayContinue tells a cut page from the end", async () => {
      const s = await open();
      await s.createTask(newTask("big"));
      await s.markRunning("big", new Date());
      const frame = (seq: number) => JSON.stringify({ seq, pad: "p".repeat(90) }).padEnd(100, " ");
      await s.appendEvents("big", Array.from({ length: 10 }, (_, index) => ({ seq: index + 1, frame: frame(index + 1) })));
      expect(await s.events("big", 0, 10)).toHaveLength(10); // no maxBytes: the limit alone
      // 100 bytes each: the third reaches 250.
      const first = await s.events("big", 0, 10, 250);
      expect(first.map((event) => event.seq)).toEqual([1, 2, 3]);
      expect(pageMayContinue(first, 10, 250)).toBe(true);
      expect((await s.events("big", 0, 10, 50)).map((event) => event.seq)).toEqual([1]); // at least one
      expect((await s.events("big", 0, 10, 200)).map((event) => event.seq)).toEqual([1, 2]); // 200 reached by the second
      // Page by page to the end: every event once.
      const seen: number[] = [];
      let after = 0;
      for (;;) {
        const page = await s.events("big", after, 4, 250);
        seen.push(...page.map((event) => event.seq));
        if (!pageMayContinue(page, 4, 250)) break;
        after = page.at(-1)!.seq;
      }
      expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      const last = await s.events("big", 9, 10, 250);
      expect(last.map((event) => event.seq)).toEqual([10]);
      expect(pageMayContinue(last, 10, 250)).toBe(false);
      expect(pageMayContinue([], 10, 250)).toBe(false);
      // Bytes, not characters: 60 characters of "é" and "€" are 150 bytes.
      await s.createTask(newTask("wide"));
      await s.markRunning("wide", new Date());
      const wide = (seq: number) => JSON.stringify({ seq, text: "é€".repeat(30) });
      await s.appendEvents("wide", Array.from({ length: 4 }, (_, index) => ({ seq: index + 1, frame: wide(index + 1) })));
      const wideFrame = Buffer.byteLength(wide(1));
      const widePage = await s.events("wide", 0, 10, wideFrame + 1);
      expect(widePage.map((event) => event.seq)).toEqual([1, 2]);
      expect(pageMayContinue(widePage, 10, wideFrame + 1)).toBe(true);
    });

    describe("retention", () => {
      test("pruneEvents deletes the logs of tasks that ended before the cutoff, keeps the tasks, sets pruned_through", async () => {
        const s = await open();
        const cutoff = new Date("2026-03-04T12:00:00.000Z");
        await s.createTask(newTask("old"));
        await s.markRunning("old", new Date());
        await s.appendEvents("old", run(1, 3));
        await s.finishTask("old", outcome("completed", { finishedAt: new Date(cutoff.getTime() - 1) }), 4, "{}");
        await s.createTask(newTask("recent"));
        await s.finishTask("recent", outcome("cancelled", { finishedAt: cutoff }), 1, "{}");
        await s.createTask(newTask("running"));
        await s.markRunning("running", new Date());
        await s.appendEvents("running", run(1, 2));
        await s.createTask(newTask("queued"));
        const before = Object.fromEntries(await Promise.all(["recent", "running", "queued"].map(async (id) => [id, await s.getTask(id)])));

        expect(await s.pruneEvents(cutoff)).toBe(1);
        expect(await s.events("old", 0, 100)).toEqual([]);
        expect(await s.getTask("old")).toMatchObject({ status: "completed", last_seq: 4, pruned_through: 4 });
        for (const id of ["recent", "running", "queued"]) expect(await s.getTask(id)).toEqual(before[id]);
        expect(await s.events("recent", 0, 10)).toHaveLength(1);
        expect(await s.events("running", 0, 10)).toHaveLength(2);
        // Nothing left to prune; the running task keeps taking events.
        expect(await s.pruneEvents(cutoff)).toBe(0);
        await s.appendEvents("running", run(3, 1));
        expect(await s.pruneEvents(new Date("2100-01-01T00:00:00.000Z"))).toBe(1);
        expect(await s.getTask("recent")).toMatchObject({ last_seq: 1, pruned_through: 1 });
        expect(await s.events("running", 0, 10)).toHaveLength(3);
      });

      test("a log longer than one retention transaction takes is pruned to its end, among short ones; read meanwhile, it is always a gapless run to its last event, after pruned_through", async () => {
        const s = await open();
        const ended = (minute: number) => outcome("completed", { finishedAt: new Date(Date.UTC(2026, 0, 1, 0, minute)) });
        const short = async (id: string, minute: number) => {
          await s.createTask(newTask(id));
          await s.markRunning(id, new Date());
          await s.appendEvents(id, run(1, 3));
          await s.finishTask(id, ended(minute), 4, `{"seq":4}`);
        };
        await short("before", 1);
        await s.createTask(newTask("long"));
        await s.markRunning("long", new Date());
        const events = 25_000;
        for (let first = 1; first <= events; first += 5_000) await s.appendEvents("long", run(first, 5_000));
        await s.finishTask("long", ended(2), events + 1, `{"seq":${events + 1}}`);
        await short("after", 3);

        let done = false;
        const pruning = s.pruneEvents(new Date(Date.UTC(2026, 0, 2))).finally(() => (done = true));
        let reads = 0;
        do {
          // The events first, then the task: pruned_through can only have moved on between the two.
          const log = (await s.events("long", 0, events + 10)).map((event) => event.seq);
          const task = (await s.getTask("long"))!;
          if (log.length === 0) expect(task.pruned_through).toBe(events + 1);
          else {
            expect(log.at(-1)).toBe(events + 1);
            expect(log.every((seq, index) => seq === log[0]! + index)).toBe(true);
            expect(log[0]! - 1).toBeLessThanOrEqual(task.pruned_through);
          }
          reads++;
          await new Promise<void>((resolve) => setImmediate(resolve)); // a store that answers at once: the prune's turn
        } while (!done);
        expect(await pruning).toBe(3);
        expect(reads).toBeGreaterThan(0);
        for (const id of ["before", "long", "after"]) {
          expect(await s.events(id, 0, 10)).toEqual([]);
          const task = (await s.getTask(id))!;
          expect(task.pruned_through).toBe(task.last_seq);
        }
        expect((await s.getTask("long"))!.last_seq).toBe(events + 1);
      });

      test("pruneEvents goes through more tasks than one batch", async () => {
        const s = await open();
        const count = 520;
        for (let index = 0; index < count; index++) {
          const id = `p${index}`;
          await s.createTask(newTask(id));
          await s.finishTask(id, outcome("cancelled", { finishedAt: new Date("2026-01-01T00:00:00.000Z") }), 1, "{}");
        }
        expect(await s.pruneEvents(new Date("2026-02-01T00:00:00.000Z"))).toBe(count);
        expect(await s.events("p0", 0, 10)).toEqual([]);
        expect(await s.events(`p${count - 1}`, 0, 10)).toEqual([]);
        expect(await s.getTask(`p${count - 1}`)).toMatchObject({ pruned_through: 1, last_seq: 1 });
      });
    });

    describe("waiting, inputs, threads, secrets", () => {
      /** A task parked by its run: created, running, `events` events stored, then waiting until `until`. */
      async function parked(s: TaskStore, id: string, until: Date | null, events = 2, overrides: Partial<NewTask> = {}) {
        await s.createTask(newTask(id, overrides));
        expect(await s.markRunning(id, new Date("2026-03-04T05:06:08.000Z"))).toBe(true);
        await s.appendEvents(id, run(1, events, id), 1);
        expect(await s.waitTask(id, until, 1)).toBe(true);
        return (await s.getTask(id))!;
      }
      const until = new Date("2026-03-05T00:00:00.000Z");

      test("waitTask parks a running task only (wait_until stored); false and nothing written from any other state", async () => {
        const s = await open();
        const task = await parked(s, "w", until);
        expect(task).toMatchObject({ status: "waiting", wait_until: "2026-03-05T00:00:00.000Z", last_seq: 2, started_at: "2026-03-04T05:06:08.000Z" });
        expect(await s.tasksWithStatus(["waiting"])).toEqual([task]);
        expect((await s.listTasks({ status: "waiting", limit: 5 })).tasks).toEqual([task]);
        // Waiting already: a second park (e.g. a stale run) changes nothing.
        expect(await s.waitTask("w", new Date("2027-01-01T00:00:00.000Z"))).toBe(false);
        expect(await s.getTask("w")).toEqual(task);

        await s.createTask(newTask("queued"));
        expect(await s.waitTask("queued", until)).toBe(false);
        expect(await s.getTask("queued")).toMatchObject({ status: "queued", wait_until: null });

        await s.createTask(newTask("ended"));
        await s.markRunning("ended", new Date());
        expect(await s.finishTask("ended", outcome("completed"), 1, "{}")).toBe(true);
        expect(await s.waitTask("ended", until)).toBe(false);
        expect(await s.getTask("ended")).toMatchObject({ status: "completed", wait_until: null });
        expect(await s.waitTask("missing", until)).toBe(false);

        // No deadline: waits until a person decides.
        expect((await parked(s, "forever", null)).wait_until).toBeNull();
      });

      test("waitTask stores the totals the run used so far (a waiting task shows them; without totals they stay as they were)", async () => {
        const s = await open();
        await s.createTask(newTask("t"));
        await s.markRunning("t", new Date("2026-03-04T05:06:08.000Z"));
        await s.appendEvents("t", run(1, 2, "t"), 1);
        expect(await s.waitTask("t", until, 1, undefined, { steps: 2, inputTokens: 17, outputTokens: 16, costUsd: 0.25 })).toBe(true);
        expect(await s.getTask("t")).toMatchObject({ status: "waiting", total_steps: 2, input_tokens: 17, output_tokens: 16, total_tokens: 33, cost_usd: 0.25 });
        // No price: cost stays null.
        await s.createTask(newTask("free"));
        await s.markRunning("free", new Date());
        expect(await s.waitTask("free", until, undefined, undefined, { steps: 1, inputTokens: 3, outputTokens: 4, costUsd: null })).toBe(true);
        expect(await s.getTask("free")).toMatchObject({ total_steps: 1, total_tokens: 7, cost_usd: null });
        // No totals given: the row's are kept.
        expect((await parked(s, "none", until)).total_tokens).toBe(0);
      });

      test("waitTask is fenced: a run that was taken over cannot park the task", async () => {
        const s = await open();
        await s.createTask(newTask("f"));
        await s.markRunning("f", new Date());
        expect(await s.takeOver("f")).toBe(2);
        const error = await s.waitTask("f", until, 1).then(
          () => undefined,
          (thrown: unknown) => thrown,
        );
        expect(error).toBeInstanceOf(FencedError);
        expect(error).toMatchObject({ taskId: "f", fence: 1 });
        expect(await s.getTask("f")).toMatchObject({ status: "running", wait_until: null });
        expect(await s.waitTask("f", until, 2)).toBe(true);
        expect((await s.getTask("f"))?.status).toBe("waiting");
      });

      test("finishTask from waiting writes exactly the transitions of src/tasks/state.ts (cancel, fail; never complete)", async () => {
        const s = await open();
        for (const to of TERMINAL_STATUSES as TaskOutcome["status"][]) {
          const id = `waiting-${to}`;
          await parked(s, id, until);
          const allowed = canTransition("waiting", to);
          expect({ id, finished: await s.finishTask(id, outcome(to), 3, `{"to":"${to}"}`) }).toEqual({ id, finished: allowed });
          const task = (await s.getTask(id))!;
          expect(task.status).toBe(allowed ? to : "waiting");
          // An ended task waits for nothing any more.
          expect(task.wait_until).toBe(allowed ? null : "2026-03-05T00:00:00.000Z");
          expect(frames(await s.events(id, 2, 10))).toEqual(allowed ? [`{"to":"${to}"}`] : []);
        }
        expect(canTransition("waiting", "cancelled")).toBe(true);
      });

      test("a waiting task's log takes no appendEvents: only a decision (appendWhileWaiting) extends it", async () => {
        const s = await open();
        await parked(s, "w", until);
        await expect(s.appendEvents("w", run(3, 1, "stray"))).rejects.toThrow("not the next in sequence");
        await expect(s.appendEvents("w", run(3, 1, "stray"), 1)).rejects.toThrow("not the next in sequence");
        expect(await s.getTask("w")).toMatchObject({ status: "waiting", last_seq: 2 });
        expect(frames(await s.events("w", 0, 10))).toEqual(frames(run(1, 2, "w")));
      });

      test("appendWhileWaiting with requeue: events stored, waiting → queued, wait_until cleared — in one write", async () => {
        const s = await open();
        await parked(s, "d", until);
        expect(await s.appendWhileWaiting("d", run(3, 2, "decided"), true)).toBe(true);
        expect(await s.getTask("d")).toMatchObject({ status: "queued", wait_until: null, last_seq: 4 });
        expect(frames(await s.events("d", 0, 10))).toEqual([...frames(run(1, 2, "d")), ...frames(run(3, 2, "decided"))]);
        // Queued again: no longer waiting, so no more decisions.
        expect(await s.appendWhileWaiting("d", run(5, 1, "late"), true)).toBe(false);
        expect((await s.getTask("d"))?.last_seq).toBe(4);
        expect(await s.events("d", 4, 10)).toEqual([]);
      });

      test("appendWhileWaiting without requeue: events stored, the task keeps waiting with its wait_until", async () => {
        const s = await open();
        await parked(s, "two", until);
        expect(await s.appendWhileWaiting("two", run(3, 1, "first"), false)).toBe(true);
        expect(await s.getTask("two")).toMatchObject({ status: "waiting", wait_until: "2026-03-05T00:00:00.000Z", last_seq: 3 });
        expect(await s.appendWhileWaiting("two", run(4, 1, "second"), true)).toBe(true);
        expect(await s.getTask("two")).toMatchObject({ status: "queued", wait_until: null, last_seq: 4 });
        expect(frames(await s.events("two", 2, 10))).toEqual([...frames(run(3, 1, "first")), ...frames(run(4, 1, "second"))]);
      });

      test("appendWhileWaiting is conditional on the last seq and the waiting state: false, writing nothing, otherwise", async () => {
        const s = await open();
        await parked(s, "c", until);
        const before = await s.getTask("c");
        for (const [first, requeue] of [[2, true], [4, true], [1, false], [5, false]] as const) {
          expect(await s.appendWhileWaiting("c", run(first, 1, "wrong"), requeue)).toBe(false);
        }
        expect(await s.appendWhileWaiting("c", [], true)).toBe(false);
        await expect(s.appendWhileWaiting("c", [{ seq: 3, frame: "a" }, { seq: 5, frame: "gap" }], true)).rejects.toThrow("must be consecutive");
        expect(await s.getTask("c")).toEqual(before!);
        expect(frames(await s.events("c", 0, 10))).toEqual(frames(run(1, 2, "c")));

        // Not waiting: queued, running, ended, missing.
        await s.createTask(newTask("queued"));
        expect(await s.appendWhileWaiting("queued", run(1, 1), true)).toBe(false);
        await s.createTask(newTask("running"));
        await s.markRunning("running", new Date());
        expect(await s.appendWhileWaiting("running", run(1, 1), true)).toBe(false);
        await parked(s, "cancelled", until);
        expect(await s.finishTask("cancelled", outcome("cancelled"), 3, "{}")).toBe(true);
        expect(await s.appendWhileWaiting("cancelled", run(4, 1), true)).toBe(false);
        expect(await s.appendWhileWaiting("missing", run(1, 1), true)).toBe(false);
        expect(await s.getTask("queued")).toMatchObject({ status: "queued", last_seq: 0 });
        expect(await s.getTask("running")).toMatchObject({ status: "running", last_seq: 0 });
        expect(await s.getTask("cancelled")).toMatchObject({ status: "cancelled", last_seq: 3 });
        expect(await s.events("queued", 0, 10)).toEqual([]);
        expect(await s.events("running", 0, 10)).toEqual([]);
        expect(await s.events("cancelled", 3, 10)).toEqual([]);
        expect(await s.events("missing", 0, 10)).toEqual([]);
      });

      test("decisions racing on two stores (two nodes) for the same seq: exactly one lands, whole; the other writes nothing", async () => {
        const s = await open();
        const other = await openAgain();
        for (let round = 0; round < 5; round++) {
          const id = `race-${round}`;
          await parked(s, id, until);
          const requeue = round % 2 === 0;
          const results = await Promise.all([
            s.appendWhileWaiting(id, run(3, 2, "left"), requeue),
            other.appendWhileWaiting(id, run(3, 2, "right"), requeue),
            s.appendWhileWaiting(id, run(3, 2, "third"), requeue),
          ]);
          expect(results.filter(Boolean)).toHaveLength(1);
          const winner = ["left", "right", "third"][results.indexOf(true)]!;
          expect(frames(await other.events(id, 0, 10))).toEqual([...frames(run(1, 2, id)), ...frames(run(3, 2, winner))]);
          expect(await s.getTask(id)).toMatchObject({ status: requeue ? "queued" : "waiting", last_seq: 4 });
          // The loser, reading again, writes at the next seq (without requeue the task still waits).
          expect(await other.appendWhileWaiting(id, run(5, 1, "after"), true)).toBe(!requeue);
        }
      });

      test("expiredWaits: waiting tasks whose wait_until is before now, soonest first, at most limit", async () => {
        const s = await open();
        const now = new Date("2026-03-05T12:00:00.000Z");
        const at = (minutes: number) => new Date(now.getTime() + minutes * 60_000);
        await parked(s, "late-2", at(-2));
        await parked(s, "late-30", at(-30));
        await parked(s, "late-10", at(-10));
        await parked(s, "future", at(5));
        await parked(s, "no-deadline", null);
        await parked(s, "exactly-now", now);
        await parked(s, "decided", at(-60));
        await s.appendWhileWaiting("decided", run(3, 1), true);
        await parked(s, "cancelled", at(-60));
        await s.finishTask("cancelled", outcome("cancelled"), 3, "{}");
        await s.createTask(newTask("queued"));

        const expired = await s.expiredWaits(now, 10);
        expect(expired.map((task) => task.id)).toEqual(["late-30", "late-10", "late-2"]);
        expect(expired[0]).toEqual((await s.getTask("late-30"))!);
        expect((await s.expiredWaits(now, 2)).map((task) => task.id)).toEqual(["late-30", "late-10"]);
        expect((await s.expiredWaits(at(-20), 10)).map((task) => task.id)).toEqual(["late-30"]);
        expect(await s.expiredWaits(at(-120), 10)).toEqual([]);
        expect((await s.expiredWaits(at(6), 10)).map((task) => task.id)).toEqual(["late-30", "late-10", "late-2", "exactly-now", "future"]);
      });

      test("markRunning after a wait: the first started_at is kept, wait_until cleared, a new attempt (the old run's fence is stale)", async () => {
        const s = await open();
        await parked(s, "r", until);
        expect(await s.markRunning("r", new Date())).toBe(false); // waiting is not queued
        expect(await s.appendWhileWaiting("r", run(3, 1), true)).toBe(true);
        expect(await s.markRunning("r", new Date("2026-03-06T00:00:00.000Z"))).toBe(true);
        expect(await s.getTask("r")).toMatchObject({ status: "running", started_at: "2026-03-04T05:06:08.000Z", wait_until: null, last_seq: 3 });
        await expect(s.appendEvents("r", run(4, 1, "stale"), 1)).rejects.toBeInstanceOf(FencedError);
        await s.appendEvents("r", run(4, 1, "new"), 2);
        expect(await s.finishTask("r", outcome("completed"), 5, "{}", 2)).toBe(true);
        expect(await s.getTask("r")).toMatchObject({ status: "completed", started_at: "2026-03-04T05:06:08.000Z", last_seq: 5 });
      });

      test("addInput keeps a message for a queued, running or waiting task, durably; refused for an ended or missing one", async () => {
        const s = await open();
        const input = (id: string, minute: number, text = `text of ${id}`) => ({
          id,
          text,
          by: `key-${id}`,
          createdAt: new Date(Date.UTC(2026, 2, 4, 6, minute, 0, 123)),
        });
        await s.createTask(newTask("queued"));
        await s.createTask(newTask("running"));
        await s.markRunning("running", new Date());
        await parked(s, "waiting", until);
        await s.createTask(newTask("ended"));
        await s.finishTask("ended", outcome("cancelled"), 1, "{}");
        for (const id of ["queued", "running", "waiting"]) expect({ id, added: await s.addInput(id, input(`${id}-1`, 1)) }).toEqual({ id, added: true });
        expect(await s.addInput("ended", input("e", 1))).toBe(false);
        expect(await s.addInput("missing", input("m", 1))).toBe(false);
        expect(await s.pendingInputs("ended")).toEqual([]);
        expect(await s.pendingInputs("missing")).toEqual([]);

        const odd = "NUL \u0000, emoji 👩🏽‍💻, quotes \"'\\, RTL \u05e9\u05dc\u05d5\u05dd, newline\n";
        expect(await s.addInput("waiting", input("waiting-2", 2, odd))).toBe(true);
        expect(await s.addInput("waiting", input("waiting-3", 3, ""))).toBe(true);
        const pending = await s.pendingInputs("waiting");
        expect(pending).toEqual([input("waiting-1", 1), input("waiting-2", 2, odd), input("waiting-3", 3, "")]);
        expect(pending[1]!.createdAt).toBeInstanceOf(Date);
        // The task itself is untouched by its inbox.
        expect(await s.getTask("waiting")).toMatchObject({ status: "waiting", last_seq: 2 });

        await s.close();
        opened.splice(opened.indexOf(s), 1);
        const again = await openAgain();
        expect(await again.pendingInputs("waiting")).toEqual(pending);
        expect(await again.pendingInputs("queued")).toEqual([input("queued-1", 1)]);
        expect(await again.pendingInputCount("waiting")).toBe(3);
        expect(await again.pendingInputCount("queued")).toBe(1);
        expect(await again.pendingInputCount("missing")).toBe(0);
      });

      test("pendingInputs: oldest first; deleteInputs forgets only the given ids of that task", async () => {
        const s = await open();
        await s.createTask(newTask("a"));
        await s.createTask(newTask("b"));
        const input = (id: string, second: number) => ({ id, text: id, by: "alice", createdAt: new Date(Date.UTC(2026, 2, 4, 6, 0, second)) });
        for (let index = 0; index < 6; index++) {
          await s.addInput("a", input(`a${index}`, index));
          await s.addInput("b", input(`b${index}`, index));
        }
        expect((await s.pendingInputs("a")).map((pending) => pending.id)).toEqual(["a0", "a1", "a2", "a3", "a4", "a5"]);
        await s.deleteInputs("a", ["a1", "a3", "b2", "nope"]);
        await s.deleteInputs("a", []);
        expect((await s.pendingInputs("a")).map((pending) => pending.id)).toEqual(["a0", "a2", "a4", "a5"]);
        expect((await s.pendingInputs("b")).map((pending) => pending.id)).toEqual(["b0", "b1", "b2", "b3", "b4", "b5"]);
        await s.addInput("a", input("a6", 6));
        await s.deleteInputs("a", ["a0", "a2", "a4", "a5"]);
        expect((await s.pendingInputs("a")).map((pending) => pending.id)).toEqual(["a6"]);
        // Deleting twice is harmless.
        await s.deleteInputs("a", ["a0"]);
        expect((await s.pendingInputs("a")).map((pending) => pending.id)).toEqual(["a6"]);
      });

      test("finishTask stores output_json (the parsed final answer) exactly; none is null", async () => {
        const s = await open();
        const value = { answer: 42, items: [{ name: "ü", ok: true }, null, 1.5e-7, "NUL \u0000"], nested: { empty: {}, list: [] } };
        await s.createTask(newTask("json"));
        await s.markRunning("json", new Date());
        expect(await s.finishTask("json", outcome("completed", { output: JSON.stringify(value), outputJson: value }), 1, "{}")).toBe(true);
        const task = (await s.getTask("json"))!;
        expect(task.output_json).toEqual(value);
        expect(JSON.stringify(task.output_json)).toBe(JSON.stringify(value));
        expect((await s.listTasks({ limit: 5 })).tasks[0]).toEqual(task);

        for (const [id, outputJson] of [["scalar", "just text"], ["array", [1, "two"]], ["zero", 0], ["false", false]] as const) {
          await s.createTask(newTask(id));
          await s.finishTask(id, outcome("cancelled", { outputJson }), 1, "{}");
          expect({ id, json: (await s.getTask(id))!.output_json }).toEqual({ id, json: outputJson });
        }
        for (const [id, outputJson] of [["null", null], ["undefined", undefined]] as const) {
          await s.createTask(newTask(id));
          await s.finishTask(id, outcome("completed", { outputJson }), 1, "{}");
          expect((await s.getTask(id))!.output_json).toBeNull();
        }
        await s.close();
        opened.splice(opened.indexOf(s), 1);
        expect((await (await openAgain()).getTask("json"))!.output_json).toEqual(value);
      });

      test("threads: created empty; a task of a thread says so; the thread counts its tasks and knows the newest", async () => {
        const s = await open();
        const created = await s.createThread({ id: "th1", owner: "alice", createdAt: new Date("2026-03-04T05:06:07.089Z") });
        expect(created).toEqual({ id: "th1", owner: "alice", created_at: "2026-03-04T05:06:07.089Z", task_count: 0, last_task_id: null });
        expect(await s.getThread("th1")).toEqual(created);
        expect(await s.getThread("missing")).toBeUndefined();
        await expect(s.createThread({ id: "th1", owner: "bob", createdAt: new Date() })).rejects.toThrow();
        expect((await s.getThread("th1"))?.owner).toBe("alice");

        await s.createThread({ id: "th2", owner: "alice", createdAt: new Date() });
        const first = await s.createTask(newTask("t1", { owner: "alice", threadId: "th1" }));
        expect(first.thread_id).toBe("th1");
        await s.createTask(newTask("other", { owner: "alice", threadId: "th2" }));
        await s.createTask(newTask("t2", { owner: "alice", threadId: "th1" }));
        await s.createTask(newTask("loose", { owner: "alice" }));
        expect((await s.getTask("loose"))?.thread_id).toBeNull();
        expect(await s.getThread("th1")).toMatchObject({ task_count: 2, last_task_id: "t2" });
        expect(await s.getThread("th2")).toMatchObject({ task_count: 1, last_task_id: "other" });
        expect((await s.listThreads({ limit: 10 })).threads.find((thread) => thread.id === "th1")).toEqual((await s.getThread("th1"))!);
      });

      test("createThread with adopt: the owner's task without a thread joins the new thread (its first turn), in the same write; another's, or one in a thread, stays", async () => {
        const s = await open();
        await s.createTask(newTask("solo", { owner: "alice" }));
        await s.createTask(newTask("bobs", { owner: "bob" }));
        await s.createThread({ id: "elsewhere", owner: "alice", createdAt: new Date() });
        await s.createTask(newTask("threaded", { owner: "alice", threadId: "elsewhere" }));
        const adopted = await s.createThread({ id: "solo", owner: "alice", createdAt: new Date(), adopt: "solo" });
        expect(adopted).toMatchObject({ id: "solo", owner: "alice", task_count: 1, last_task_id: "solo" });
        expect((await s.getTask("solo"))!.thread_id).toBe("solo");
        await s.createTask(newTask("next", { owner: "alice", threadId: "solo" }));
        expect((await s.threadTasks("solo", { limit: 10 })).map((task) => task.id)).toEqual(["solo", "next"]);
        // Not the owner's task, or a task already in a thread: the thread is made, the task stays where it was.
        expect(await s.createThread({ id: "bobs", owner: "alice", createdAt: new Date(), adopt: "bobs" })).toMatchObject({ task_count: 0 });
        expect((await s.getTask("bobs"))!.thread_id).toBeNull();
        expect(await s.createThread({ id: "threaded", owner: "alice", createdAt: new Date(), adopt: "threaded" })).toMatchObject({ task_count: 0 });
        expect((await s.getTask("threaded"))!.thread_id).toBe("elsewhere");
        // A thread id taken: nothing is written (the task is not moved either).
        await s.createTask(newTask("late", { owner: "alice" }));
        await expect(s.createThread({ id: "elsewhere", owner: "alice", createdAt: new Date(), adopt: "late" })).rejects.toThrow();
        expect((await s.getTask("late"))!.thread_id).toBeNull();
      });

      test("threadTasks: a thread's tasks in creation order; a limit keeps the newest N, still in order", async () => {
        const s = await open();
        await s.createThread({ id: "th", owner: "anonymous", createdAt: new Date() });
        await s.createThread({ id: "empty", owner: "anonymous", createdAt: new Date() });
        const ids: string[] = [];
        for (let index = 0; index < 7; index++) {
          // The same creation time for all: the order must come from the store, not the clock.
          await s.createTask(newTask(`t${index}`, { threadId: "th" }));
          await s.createTask(newTask(`noise${index}`));
          ids.push(`t${index}`);
        }
        const all = await s.threadTasks("th", { limit: 100 });
        expect(all.map((task) => task.id)).toEqual(ids);
        expect(all[3]).toEqual((await s.getTask("t3"))!);
        expect((await s.threadTasks("th", { limit: 3 })).map((task) => task.id)).toEqual(["t4", "t5", "t6"]);
        expect((await s.threadTasks("th", { limit: 1 })).map((task) => task.id)).toEqual(["t6"]);
        expect((await s.threadTasks("th", { limit: 7 })).map((task) => task.id)).toEqual(ids);
        expect(await s.threadTasks("empty", { limit: 10 })).toEqual([]);
        expect(await s.threadTasks("missing", { limit: 10 })).toEqual([]);
      });

      test("threadTasks: by status, before a task, and the newest that fit in maxChars of input and output (at least one)", async () => {
        const s = await open();
        await s.createThread({ id: "th", owner: "anonymous", createdAt: new Date() });
        // t0..t5; t1 and t3 completed with answers of 10 chars, t4 running, the rest queued.
        for (let index = 0; index < 6; index++) {
          await s.createTask(newTask(`t${index}`, { threadId: "th", input: "i".repeat(100 * (index + 1)) }));
        }
        for (const id of ["t1", "t3", "t4"]) await s.markRunning(id, new Date());
        for (const id of ["t1", "t3"]) expect(await s.finishTask(id, outcome("completed", { output: "o".repeat(10) }), 1, "{}")).toBe(true);
        const ids = async (query: Parameters<TaskStore["threadTasks"]>[1]) => (await s.threadTasks("th", query)).map((task) => task.id);

        expect(await ids({ limit: 10, statuses: ["queued", "running", "waiting"] })).toEqual(["t0", "t2", "t4", "t5"]);
        expect(await ids({ limit: 2, statuses: ["queued", "running", "waiting"] })).toEqual(["t4", "t5"]);
        expect(await ids({ limit: 10, statuses: ["completed"] })).toEqual(["t1", "t3"]);
        expect(await ids({ limit: 10, statuses: [] })).toEqual([]);
        expect(await ids({ limit: 10, before: "t3" })).toEqual(["t0", "t1", "t2"]);
        expect(await ids({ limit: 10, before: "t0" })).toEqual([]);
        expect(await ids({ limit: 10, before: "unknown" })).toEqual([]);
        expect(await ids({ limit: 10, statuses: ["completed"], before: "t3" })).toEqual(["t1"]);
        // Input and output characters, newest first: t5 600, t4 500, t3 410, t2 300, t1 210, t0 100.
        expect(await ids({ limit: 10, maxChars: 1100 })).toEqual(["t4", "t5"]);
        expect(await ids({ limit: 10, maxChars: 1509 })).toEqual(["t4", "t5"]);
        expect(await ids({ limit: 10, maxChars: 1510 })).toEqual(["t3", "t4", "t5"]);
        expect(await ids({ limit: 10, maxChars: 1 })).toEqual(["t5"]); // at least one
        expect(await ids({ limit: 2, maxChars: 100_000 })).toEqual(["t4", "t5"]);
        expect(await ids({ limit: 10, statuses: ["completed"], maxChars: 620 })).toEqual(["t1", "t3"]);
        expect(await ids({ limit: 10, statuses: ["completed"], maxChars: 619 })).toEqual(["t3"]);
        const [task] = await s.threadTasks("th", { limit: 10, statuses: ["completed"], before: "t2" });
        expect(task).toEqual((await s.getTask("t1"))!);
      });

      test("threadTasks with maxChars counts a string's UTF-16 units, and reads U+0000, lone surrogates and astral characters", async () => {
        const s = await open();
        await s.createThread({ id: "th", owner: "anonymous", createdAt: new Date() });
        // Each input is 10 UTF-16 units; u1 completes with an output of 4.
        const inputs = ["\u0000".repeat(10), "\ud800x".repeat(5), "😀".repeat(5), "plain text"];
        for (const [index, input] of inputs.entries()) await s.createTask(newTask(`u${index}`, { threadId: "th", input }));
        await s.markRunning("u1", new Date());
        expect(await s.finishTask("u1", outcome("completed", { output: "\u0000😀\udc00" }), 1, "{}")).toBe(true);
        const ids = async (maxChars: number) => (await s.threadTasks("th", { limit: 10, maxChars })).map((task) => task.id);
        expect(await ids(30)).toEqual(["u2", "u3"]);
        expect(await ids(33)).toEqual(["u2", "u3"]);
        expect(await ids(34)).toEqual(["u1", "u2", "u3"]);
        expect(await ids(43)).toEqual(["u1", "u2", "u3"]);
        expect(await ids(44)).toEqual(["u0", "u1", "u2", "u3"]);
        const all = await s.threadTasks("th", { limit: 10, maxChars: 1000 });
        // Read back as stored (a lone surrogate aside: SQLite keeps text as UTF-8, where it becomes U+FFFD).
        expect(all.map((task) => task.input).filter((_, index) => index !== 1)).toEqual(inputs.filter((_, index) => index !== 1));
        expect(all[1]!.output!.slice(0, 3)).toBe("\u0000😀");
      });

      test("listThreads: newest first, an owner filter on every page, a cursor through every thread once", async () => {
        const s = await open();
        const owners = Array.from({ length: 11 }, (_, index) => ["alice", "bob"][index % 3 === 0 ? 1 : 0]!);
        const ids: string[] = [];
        for (const [index, owner] of owners.entries()) {
          const id = `th-${String(index).padStart(2, "0")}`;
          await s.createThread({ id, owner, createdAt: new Date("2026-03-04T05:06:07.089Z") });
          ids.push(id);
        }
        async function all(owner: string | undefined, limit: number) {
          const seen: string[] = [];
          let cursor: string | undefined;
          for (;;) {
            const page = await s.listThreads({ owner, limit, cursor });
            expect(page.threads.length).toBeLessThanOrEqual(limit);
            seen.push(...page.threads.map((thread) => thread.id));
            if (!page.nextCursor) return seen;
            cursor = page.nextCursor;
          }
        }
        expect(await all(undefined, 4)).toEqual(ids.toReversed());
        expect(await all(undefined, 11)).toEqual(ids.toReversed());
        expect((await s.listThreads({ limit: 11 })).nextCursor).toBeNull();
        for (const owner of ["alice", "bob"]) {
          expect(await all(owner, 2)).toEqual(ids.filter((_, index) => owners[index] === owner).toReversed());
        }
        expect(await all("mallory", 2)).toEqual([]);
        expect(await all("alice' OR '1'='1", 2)).toEqual([]);
        const firstAlice = await s.listThreads({ owner: "alice", limit: 1 });
        const bobAfter = await s.listThreads({ owner: "bob", limit: 100, cursor: firstAlice.nextCursor! });
        expect(bobAfter.threads.length).toBeGreaterThan(0);
        expect(bobAfter.threads.every((thread) => thread.owner === "bob")).toBe(true);
        await expect(s.listThreads({ limit: 5, cursor: "garbage" })).rejects.toMatchObject({ code: "bad_request" });
      });

      test("secret: 32 random bytes made once per name — the same on every call, on another store and after a restart", async () => {
        const s = await open();
        const first = await s.secret("share-tokens");
        expect(first).toBeInstanceOf(Uint8Array);
        expect(first.length).toBe(32);
        expect(first.some((byte) => byte !== 0)).toBe(true);
        expect(await s.secret("share-tokens")).toEqual(first);
        const other = await s.secret("another");
        expect(other.length).toBe(32);
        expect(Buffer.from(other).equals(Buffer.from(first))).toBe(false);
        const second = await openAgain();
        expect(await second.secret("share-tokens")).toEqual(first);
        // Two stores asking for a new name at once agree on one value.
        const [left, right] = await Promise.all([s.secret("raced"), second.secret("raced")]);
        expect(left).toEqual(right);
        await s.close();
        await second.close();
        opened.splice(0);
        const again = await openAgain();
        expect(await again.secret("share-tokens")).toEqual(first);
        expect(await again.secret("another")).toEqual(other);
        expect(await again.secret("raced")).toEqual(left);
      });
    });

    describe("webhooks (the outbox)", () => {
      const at = new Date("2026-03-04T05:07:00.000Z");
      const later = (ms: number) => new Date(at.getTime() + ms);
      const hook = (id: string, overrides: Partial<NewWebhook> = {}): NewWebhook => ({
        id,
        event: "task.finished",
        payload: JSON.stringify({ type: "task.finished", data: { id } }),
        createdAt: at,
        ...overrides,
      });
      /** A task that ends now, with these webhooks. */
      async function ended(s: TaskStore, id: string, webhooks: NewWebhook[], overrides: Partial<NewTask> = {}) {
        await s.createTask(newTask(id, overrides));
        expect(await s.finishTask(id, outcome("cancelled"), 1, "{}", undefined, webhooks)).toBe(true);
      }

      test("unfinishedTaskWebhooks: whether a task not ended yet has a webhook_url of its own", async () => {
        const s = await open();
        expect(await s.unfinishedTaskWebhooks()).toBe(false);
        await s.createTask(newTask("plain"));
        expect(await s.unfinishedTaskWebhooks()).toBe(false);
        await s.createTask(newTask("hooked", { webhookUrl: "http://task.test/hook" }));
        expect(await s.unfinishedTaskWebhooks()).toBe(true);
        await s.finishTask("hooked", outcome("cancelled"), 1, "{}", undefined, []);
        expect(await s.unfinishedTaskWebhooks()).toBe(false);
      });

      test("finishTask writes its webhooks with the end, all or none: a refused end writes none; no url: the task's own webhook_url, or nothing", async () => {
        const s = await open();
        await s.createTask(newTask("a", { webhookUrl: "http://task.test/hook?x=1" }));
        // The task's webhook_url is kept but not shown on the task.
        expect(Object.keys((await s.getTask("a"))!)).not.toContain("webhook_url");
        expect(await s.markRunning("a", new Date())).toBe(true);
        expect(await s.finishTask("a", outcome("completed"), 1, "{}", 1, [hook("w1"), hook("w2", { url: "https://agent.test/in" })])).toBe(true);
        const written = await s.taskWebhooks("a");
        expect(written).toEqual([
          {
            id: "w1",
            taskId: "a",
            url: "http://task.test/hook?x=1",
            event: "task.finished",
            payload: hook("w1").payload,
            attempts: 0,
            nextAttemptAt: at,
            status: "pending",
            lastError: null,
            createdAt: at,
            deliveredAt: null,
            toTaskUrl: true,
          },
          // An agent's url: not the task's own (whatever the configuration says later).
          { ...written[0]!, id: "w2", url: "https://agent.test/in", payload: hook("w2").payload, toTaskUrl: false },
        ]);
        // The first terminal state wins: a second end writes no webhook either.
        expect(await s.finishTask("a", outcome("cancelled"), 2, "{}", undefined, [hook("w3", { url: "http://x.test/" })])).toBe(false);
        // A fenced end (the run was taken over) writes nothing.
        await s.createTask(newTask("f", { webhookUrl: "http://task.test/f" }));
        await s.markRunning("f", new Date());
        await expect(s.finishTask("f", outcome("completed"), 1, "{}", 7, [hook("w4")])).rejects.toBeInstanceOf(FencedError);
        expect(await s.taskWebhooks("f")).toEqual([]);
        // Without a webhook_url, a webhook without a url is not written; one with a url is.
        await ended(s, "b", [hook("w5"), hook("w6", { url: "http://agent.test/" })]);
        expect((await s.taskWebhooks("b")).map((webhook) => webhook.id)).toEqual(["w6"]);
        expect(await s.taskWebhooks("a")).toEqual(written);
        expect(await s.taskWebhooks("missing")).toEqual([]);
        // What was claimed across all of them: exactly the rows written.
        expect((await s.claimWebhooks(at, 100, 1000)).map((webhook) => webhook.id)).toEqual(["w1", "w2", "w6"]);
        // After a restart (another store on the same data), the outbox is there.
        const again = await openAgain();
        expect((await again.taskWebhooks("a")).map((webhook) => webhook.id)).toEqual(["w1", "w2"]);
      });

      test("waitTask writes its webhooks with the wait; a wait refused writes none", async () => {
        const s = await open();
        await s.createTask(newTask("w"));
        await s.markRunning("w", new Date());
        const waiting = hook("ww", { url: "http://agent.test/", event: "task.waiting" });
        expect(await s.waitTask("w", null, 1, [waiting])).toBe(true);
        expect(await s.taskWebhooks("w")).toMatchObject([{ id: "ww", event: "task.waiting", status: "pending", url: "http://agent.test/" }]);
        expect(await s.waitTask("w", null, undefined, [hook("again", { url: "http://agent.test/" })])).toBe(false);
        await s.createTask(newTask("q"));
        expect(await s.waitTask("q", null, undefined, [hook("queued", { url: "http://agent.test/" })])).toBe(false);
        expect(await s.taskWebhooks("q")).toEqual([]);
        expect((await s.taskWebhooks("w")).map((webhook) => webhook.id)).toEqual(["ww"]);
      });

      test("claimWebhooks: due rows only, soonest first, at most `limit`; a claimed row is due again a lease later", async () => {
        const s = await open();
        await ended(s, "t1", [hook("h1", { url: "http://r.test/1" })]);
        await ended(s, "t2", [hook("h2", { url: "http://r.test/2", createdAt: later(-5) })]);
        await ended(s, "t3", [hook("h3", { url: "http://r.test/3", createdAt: later(10_000) })]);
        expect(await s.claimWebhooks(later(-10), 10, 1000)).toEqual([]);
        const first = await s.claimWebhooks(at, 1, 1000);
        expect(first.map((webhook) => webhook.id)).toEqual(["h2"]);
        expect(first[0]!.nextAttemptAt).toEqual(later(1000));
        expect((await s.claimWebhooks(at, 10, 1000)).map((webhook) => webhook.id)).toEqual(["h1"]);
        expect(await s.claimWebhooks(at, 10, 1000)).toEqual([]);
        expect((await s.taskWebhooks("t2"))[0]!.nextAttemptAt).toEqual(later(1000));
        // The leases run out: claimable again (a claimer that died); h3 is due by then too.
        expect((await s.claimWebhooks(later(10_000), 10, 60_000)).map((webhook) => webhook.id).sort()).toEqual(["h1", "h2", "h3"]);
      });

      test("two stores claiming at once (two nodes, two processes) never claim the same row", async () => {
        const s = await open();
        const ids: string[] = [];
        for (let index = 0; index < 40; index++) {
          const id = `c${String(index).padStart(2, "0")}`;
          ids.push(id);
          await ended(s, id, [hook(id, { url: "http://r.test/" })]);
        }
        const other = await openAgain();
        const claimed: string[] = [];
        await Promise.all(
          [s, other, s, other].map(async (store) => {
            for (;;) {
              const batch = await store.claimWebhooks(at, 3, 60_000);
              if (batch.length === 0) return;
              claimed.push(...batch.map((webhook) => webhook.id));
            }
          }),
        );
        expect(claimed.toSorted()).toEqual(ids);
      });

      test("claimWebhooks is fair by destination (a URL's origin): at most perDestination of one, less those busy; a full one is passed over while the others' rows are claimed", async () => {
        const s = await open();
        // A receiver with a backlog of 200 rows, all due before anyone else's.
        const backlog = Array.from({ length: 200 }, (_, index) =>
          hook(`dead${String(index).padStart(3, "0")}`, { url: `http://Dead.test:80/hook/${index}`, createdAt: later(-10_000 + index) }),
        );
        await ended(s, "dead", backlog);
        // Two healthy ones, due later: paths and queries differ, origins are what count.
        await ended(s, "ok", [hook("ok1", { url: "https://ok.test/a?token=1" }), hook("ok2", { url: "https://ok.test/b" }), hook("ok3", { url: "https://ok.test:443/c" })]);
        await ended(s, "other", [hook("other1", { url: "http://other.test:8080/" }), hook("other2", { url: "http://other.test:8080/x" })]);
        const fair = (busy: Record<string, number> = {}) => ({ perDestination: 4, busy: new Map(Object.entries(busy)) });
        const ids = (rows: { id: string }[]) => rows.map((row) => row.id).sort();

        // Taken in first, as the delivery worker does (a claim takes in a few dozen itself).
        expect(await s.intakeWebhooks(1000)).toBe(205);
        const first = await s.claimWebhooks(at, 16, 60_000, fair());
        // The backlog's 4 oldest, and every other due row.
        expect(ids(first)).toEqual(["dead000", "dead001", "dead002", "dead003", "ok1", "ok2", "ok3", "other1", "other2"]);
        expect(Object.fromEntries(first.map((row) => [row.id, row.destination]))).toMatchObject({
          dead000: "http://dead.test",
          ok1: "https://ok.test",
          ok3: "https://ok.test",
          other2: "http://other.test:8080",
        });
        expect(first.find((row) => row.id === "ok1")).toMatchObject({ url: "https://ok.test/a?token=1", nextAttemptAt: later(60_000), status: "pending" });
        // Its four in flight: the full destination gets none, however many it has due.
        expect(await s.claimWebhooks(at, 16, 60_000, fair({ "http://dead.test": 4 }))).toEqual([]);
        // Healthy rows written while it is full are claimed.
        await ended(s, "ok-later", [hook("ok4", { url: "https://ok.test/d" }), hook("ok5", { url: "https://ok.test/e" })]);
        expect(ids(await s.claimWebhooks(at, 16, 60_000, fair({ "http://dead.test": 4, "https://ok.test": 1 })))).toEqual(["ok4", "ok5"]);
        // One of its deliveries ended: one more of its rows, the next oldest.
        expect(ids(await s.claimWebhooks(at, 16, 60_000, fair({ "http://dead.test": 3 })))).toEqual(["dead004"]);
        // Without fairness (or with a perDestination as large), `limit` alone bounds it, oldest first.
        expect(ids(await s.claimWebhooks(at, 3, 60_000))).toEqual(["dead005", "dead006", "dead007"]);
        // The limit shares the slots among the destinations due, soonest first.
        await ended(s, "third", [hook("t1", { url: "http://third.test/", createdAt: later(-20_000) })]);
        expect(ids(await s.claimWebhooks(at, 2, 60_000, fair()))).toEqual(["dead008", "t1"]);
      });

      test("a retry due before its destination's other rows (leased for long) is claimed when it is due", async () => {
        const s = await open();
        await ended(s, "t", [hook("a", { url: "http://r.test/1" }), hook("b", { url: "http://r.test/2" })]);
        const fair = { perDestination: 4, busy: new Map<string, number>() };
        expect((await s.claimWebhooks(at, 16, 3_600_000, fair)).map((row) => row.id)).toEqual(["a", "b"]);
        // `a` failed: due again in 5 s, while `b` stays leased for an hour.
        expect(await s.recordWebhookAttempt("a", { outcome: "retry", error: "HTTP 500", nextAttemptAt: later(5000) }, later(10))).toBe(true);
        expect(await s.claimWebhooks(later(4999), 16, 1000, fair)).toEqual([]);
        expect(await s.claimWebhooks(later(5000), 16, 1000, fair)).toMatchObject([{ id: "a", attempts: 1, destination: "http://r.test" }]);
        // Delivered: nothing is due until b's lease runs out (a claimer that died), then b is.
        expect(await s.recordWebhookAttempt("a", { outcome: "delivered", at: later(5001) }, later(5001))).toBe(true);
        expect(await s.claimWebhooks(later(3_599_999), 16, 1000, fair)).toEqual([]);
        expect((await s.claimWebhooks(later(3_600_000), 16, 1000, fair)).map((row) => row.id)).toEqual(["b"]);
      });

      /**
       * How each of 300 destinations' one row went, by its number: delivered, failed, retried an hour
       * later, or (every 30th) retried 1.5 s later — after the claims' 1 s leases ran out.
       */
      const served = (index: number) =>
        index % 30 === 29
          ? ({ outcome: "retry", error: "HTTP 503", nextAttemptAt: later(1500) } as const)
          : index % 3 === 0
            ? ({ outcome: "delivered", at: later(10) } as const)
            : index % 3 === 1
              ? ({ outcome: "failed", error: "HTTP 410" } as const)
              : ({ outcome: "retry", error: "HTTP 500", nextAttemptAt: later(3_600_000) } as const);
      /** Claims (16 at a time, 1 s leases) and records every row of 300 destinations, with `claim` and `record` of this or other stores. */
      async function serve300(claim: () => Promise<{ id: string }[]>, record: (id: string, index: number) => Promise<boolean>): Promise<number> {
        let claimed = 0;
        for (let round = 0; round < 100 && claimed < 300; round++) {
          const rows = await claim();
          for (const row of rows) expect(await record(row.id, Number(row.id.slice(1)))).toBe(true);
          claimed += rows.length;
        }
        return claimed;
      }

      test("a destination whose rows were delivered, failed or retried is not left due: once the leases ran out, a new row elsewhere is taken by the first claim (300 destinations served once)", async () => {
        const s = await open();
        await ended(s, "served", Array.from({ length: 300 }, (_, index) => hook(`s${index}`, { url: `http://d${index}.test/` })));
        const fair = { perDestination: 4, busy: new Map<string, number>() };
        const claimed = await serve300(
          () => s.claimWebhooks(at, 16, 1000, fair),
          (id, index) => s.recordWebhookAttempt(id, served(index), later(10)),
        );
        expect(claimed).toBe(300);
        // Written after every lease ran out. Each claim reads a bounded number of destinations: with
        // the served ones left due (a lease's end), claims came back empty while it was due.
        await ended(s, "fresh", [hook("fresh", { url: "http://fresh.test/", createdAt: later(1500) })]);
        const first = await s.claimWebhooks(later(2000), 16, 1000, fair);
        expect(first.map((row) => row.id).sort()).toEqual(["fresh", ...Array.from({ length: 10 }, (_, n) => `s${n * 30 + 29}`)].sort());
        // The rows retried an hour later (90) are due then, every one of them, and those claimed above (11) again.
        const retried = await s.claimWebhooks(later(3_600_000), 200, 1000, { perDestination: 4, busy: new Map() });
        expect(retried).toHaveLength(90 + 11);
      });

      test("the same with two stores claiming and recording at once (two nodes), while the rows are written", async () => {
        const s = await open();
        const other = await openAgain();
        let writing = true;
        const write = (async () => {
          for (let task = 0; task < 10; task++) {
            const webhooks = Array.from({ length: 30 }, (_, n) => hook(`s${task * 30 + n}`, { url: `http://d${task * 30 + n}.test/` }));
            await ended(task % 2 === 0 ? s : other, `served${task}`, webhooks);
            await Bun.sleep(1);
          }
          writing = false;
        })();
        const claimed: string[] = [];
        const work = async (store: TaskStore, limit: number, perDestination: number) => {
          for (;;) {
            const written = !writing;
            const rows = await store.claimWebhooks(at, limit, 1000, { perDestination, busy: new Map() });
            for (const row of rows) {
              const index = Number(row.id.slice(1));
              expect(await (index % 2 === 0 ? s : other).recordWebhookAttempt(row.id, served(index), later(10))).toBe(true);
            }
            claimed.push(...rows.map((row) => row.id));
            if (rows.length > 0) continue;
            if (written) return;
            await Bun.sleep(1);
          }
        };
        await Promise.all([work(s, 4, 1), work(other, 4, 1), work(s, 3, 2), work(other, 5, 1)]);
        await write;
        // What a claim skipped at the end (a destination another claim or a record held) is claimed now.
        await work(s, 16, 4);
        expect(claimed.toSorted()).toEqual(Array.from({ length: 300 }, (_, index) => `s${index}`).toSorted());
        await ended(s, "fresh", [hook("fresh", { url: "http://fresh.test/", createdAt: later(1500) })]);
        const first = await other.claimWebhooks(later(2000), 16, 1000, { perDestination: 4, busy: new Map() });
        expect(first.map((row) => row.id).sort()).toEqual(["fresh", ...Array.from({ length: 10 }, (_, n) => `s${n * 30 + 29}`)].sort());
      });

      test("rows in flight at many destinations (claimed, not recorded yet) do not leave their destinations due: a row due elsewhere is taken by the first claim", async () => {
        const s = await open();
        await ended(s, "busy", Array.from({ length: 300 }, (_, index) => hook(`b${index}`, { url: `http://d${index}.test/` })));
        const fair = { perDestination: 4, busy: new Map<string, number>() };
        let claimed = 0;
        // Each claim makes the destinations it served due again at the lease's end, not now.
        for (let round = 0; round < 100 && claimed < 300; round++) claimed += (await s.claimWebhooks(at, 16, 60_000, fair)).length;
        expect(claimed).toBe(300);
        await ended(s, "fresh", [hook("fresh", { url: "http://fresh.test/", createdAt: later(10) })]);
        expect((await s.claimWebhooks(later(20), 16, 60_000, fair)).map((row) => row.id)).toEqual(["fresh"]);
      });

      test("a claim reads past the full destinations: more destinations due than its limit, the full ones soonest", async () => {
        const s = await open();
        // 20 destinations due first, each with a delivery in flight (full at 1 per destination), then 10 others.
        await ended(s, "full", Array.from({ length: 20 }, (_, index) => hook(`full${index}`, { url: `http://full${index}.test/`, createdAt: later(-1000 + index) })));
        await ended(s, "open", Array.from({ length: 20 }, (_, index) => hook(`open${index % 10}-${index >> 1}`, { url: `http://open${index % 10}.test/`, createdAt: later(index) })));
        const busy = new Map(Array.from({ length: 20 }, (_, index) => [`http://full${index}.test`, 1]));
        const first = await s.claimWebhooks(later(100), 4, 60_000, { perDestination: 1, busy });
        expect(first.map((row) => row.id)).toEqual(["open0-0", "open1-0", "open2-1", "open3-1"]);
        const second = await s.claimWebhooks(later(100), 4, 60_000, { perDestination: 1, busy });
        expect(second.map((row) => row.id)).toEqual(["open4-2", "open5-2", "open6-3", "open7-3"]);
      });

      test("intakeWebhooks takes rows written since in, oldest first, a batch at a time; claims see them", async () => {
        const s = await open();
        await ended(s, "t", Array.from({ length: 150 }, (_, index) => hook(`i${String(index).padStart(3, "0")}`, { url: `http://h${index % 7}.test/` })));
        expect(await s.intakeWebhooks(100)).toBe(100);
        expect(await s.intakeWebhooks(100)).toBe(50);
        expect(await s.intakeWebhooks(100)).toBe(0);
        const fair = { perDestination: 100, busy: new Map<string, number>() };
        const claimed = await s.claimWebhooks(at, 200, 1000, fair);
        expect(claimed).toHaveLength(150);
        expect(new Set(claimed.map((row) => row.destination))).toEqual(new Set(Array.from({ length: 7 }, (_, index) => `http://h${index}.test`)));
        // Delivered or failed rows are not taken in, nor claimed.
        await ended(s, "u", [hook("gone", { url: "http://g.test/" })]);
        expect(await s.recordWebhookAttempt("gone", { outcome: "failed", error: "HTTP 410" }, at)).toBe(true);
        expect(await s.intakeWebhooks(100)).toBe(0);
        expect(await s.claimWebhooks(later(10_000), 200, 1000, fair)).toHaveLength(150);
      });

      test("two stores claiming at once, fair by destination, never claim the same row; every row is claimed", async () => {
        const s = await open();
        const ids: string[] = [];
        for (let task = 0; task < 8; task++) {
          const webhooks = Array.from({ length: 10 }, (_, index) => hook(`f${task}-${index}`, { url: `http://d${(task * 10 + index) % 5}.test/${index}` }));
          ids.push(...webhooks.map((webhook) => webhook.id));
          await ended(s, `f${task}`, webhooks);
        }
        const other = await openAgain();
        const claimed: string[] = [];
        await Promise.all(
          [s, other, s, other].map(async (store) => {
            for (;;) {
              const batch = await store.claimWebhooks(at, 5, 60_000, { perDestination: 2, busy: new Map() });
              if (batch.length === 0) return;
              for (const destination of new Set(batch.map((row) => row.destination))) {
                expect(batch.filter((row) => row.destination === destination).length).toBeLessThanOrEqual(2);
              }
              claimed.push(...batch.map((webhook) => webhook.id));
            }
          }),
        );
        expect(claimed.toSorted()).toEqual(ids.toSorted());
      });

      test("recordWebhookAttempt: delivered, retried (due then, its error kept) or failed, each attempt counted; only a pending row", async () => {
        const s = await open();
        await ended(s, "t", [hook("ok", { url: "http://r.test/" }), hook("retry", { url: "http://r.test/" }), hook("bad", { url: "http://r.test/" })]);
        expect(await s.recordWebhookAttempt("retry", { outcome: "retry", error: "HTTP 500", nextAttemptAt: later(5000) }, later(1))).toBe(true);
        expect(await s.claimWebhooks(later(4999), 10, 1000).then((rows) => rows.map((row) => row.id).sort())).toEqual(["bad", "ok"]);
        expect(await s.recordWebhookAttempt("ok", { outcome: "delivered", at: later(2) }, later(2))).toBe(true);
        expect(await s.recordWebhookAttempt("bad", { outcome: "failed", error: "HTTP 410" }, later(3))).toBe(true);
        const claimed = await s.claimWebhooks(later(5000), 10, 1000);
        expect(claimed).toMatchObject([{ id: "retry", attempts: 1, lastError: "HTTP 500", status: "pending" }]);
        expect(await s.recordWebhookAttempt("retry", { outcome: "delivered", at: later(6000) }, later(6000))).toBe(true);
        // Ended rows take no more attempts, and are never claimed again.
        expect(await s.recordWebhookAttempt("ok", { outcome: "retry", error: "late", nextAttemptAt: later(1) }, later(7000))).toBe(false);
        expect(await s.recordWebhookAttempt("missing", { outcome: "delivered", at }, at)).toBe(false);
        expect(await s.claimWebhooks(later(3_600_000), 10, 1000)).toEqual([]);
        expect(await s.taskWebhooks("t")).toMatchObject([
          { id: "ok", status: "delivered", attempts: 1, lastError: null, deliveredAt: later(2) },
          { id: "retry", status: "delivered", attempts: 2, lastError: "HTTP 500", deliveredAt: later(6000) },
          { id: "bad", status: "failed", attempts: 1, lastError: "HTTP 410", deliveredAt: null },
        ]);
      });

      test("a payload is stored exactly as given", async () => {
        const s = await open();
        const payload = JSON.stringify({ text: "héllo \u0000 \u2028 \"quoted\" 🎉", n: 1.5e-7, nested: { a: [null, true] } });
        await ended(s, "p", [hook("p", { url: "http://r.test/", payload })]);
        expect((await s.taskWebhooks("p"))[0]!.payload).toBe(payload);
        expect((await s.claimWebhooks(at, 1, 1000))[0]!.payload).toBe(payload);
      });
    });
  });
}
