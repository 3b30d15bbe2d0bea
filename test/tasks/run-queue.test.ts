/**
 * The runner's queue against the scan it replaced (an array walked from the front, passing over
 * tasks whose thread is busy): the same tasks start in the same order, through random pushes,
 * first-in-line requeues, cancels, starts and ends.
 */
import { describe, expect, test } from "bun:test";
import { RunQueue } from "../../src/tasks/run-queue.ts";

interface Entry {
  task: { id: string; thread_id: string | null };
}

/** The old `pump`'s queue: one array, scanned from the front. */
class ScanQueue {
  readonly items: Entry[] = [];
  take(busy: (entry: Entry) => boolean): Entry | undefined {
    const index = this.items.findIndex((entry) => !busy(entry));
    return index < 0 ? undefined : this.items.splice(index, 1)[0];
  }
}

function seeded(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

describe("RunQueue", () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    test(`starts what the scan started, in its order (seed ${seed})`, () => {
      const random = seeded(seed);
      const heads = new Map<string, string>();
      const isHead = (entry: Entry) => entry.task.thread_id !== null && heads.get(entry.task.thread_id) === entry.task.id;
      const busy = (entry: Entry) => {
        const head = entry.task.thread_id === null ? undefined : heads.get(entry.task.thread_id);
        return head !== undefined && head !== entry.task.id;
      };
      const queue = new RunQueue<Entry>(isHead);
      const scan = new ScanQueue();
      const running: Entry[] = [];
      const parked: Entry[] = []; // heads waiting for people, out of the queue
      const started: string[][] = [[], []];
      let next = 0;
      const make = (): Entry => {
        const thread = random() < 0.8 ? `t${Math.floor(random() * 4)}` : null;
        return { task: { id: `e${next++}`, thread_id: thread } };
      };
      const startUpTo = (slots: number) => {
        while (running.length < slots) {
          const a = queue.take(busy);
          const b = scan.take(busy);
          expect(a?.task.id).toBe(b?.task.id);
          if (!a) return;
          if (a.task.thread_id !== null) heads.set(a.task.thread_id, a.task.id);
          running.push(a);
          started[0]!.push(a.task.id);
          started[1]!.push(b!.task.id);
        }
      };
      const release = (entry: Entry) => {
        const thread = entry.task.thread_id;
        if (thread !== null && heads.get(thread) === entry.task.id) {
          heads.delete(thread);
          queue.threadFree(thread);
        }
      };
      for (let step = 0; step < 3000; step++) {
        const roll = random();
        if (roll < 0.4) {
          const entry = make();
          queue.push(entry);
          scan.items.push(entry);
        } else if (roll < 0.45 && parked.length > 0) {
          // A waiting task was decided: queued again as its thread's head.
          const entry = parked.splice(Math.floor(random() * parked.length), 1)[0]!;
          queue.push(entry);
          scan.items.push(entry);
        } else if (roll < 0.5) {
          // A run the store cut: first in line again (its thread's head, if it had one, kept).
          const entry = running.length > 0 && random() < 0.5 ? running.splice(0, 1)[0]! : make();
          queue.unshift(entry);
          scan.items.unshift(entry);
        } else if (roll < 0.6 && scan.items.length > 0) {
          const entry = scan.items.splice(Math.floor(random() * scan.items.length), 1)[0]!;
          expect(queue.remove(entry)).toBe(true);
          release(entry);
        } else if (roll < 0.9 && running.length > 0) {
          const entry = running.splice(Math.floor(random() * running.length), 1)[0]!;
          if (entry.task.thread_id !== null && random() < 0.15) parked.push(entry); // waits for people, keeps its thread
          else release(entry);
        }
        startUpTo(3);
        expect(queue.size).toBe(scan.items.length);
      }
      expect(started[0]!.length).toBeGreaterThan(500);
      expect(started[0]).toEqual(started[1]!);
    });
  }

  test("an entry cancelled while no slot frees is not held (its heap item dropped): submit-and-cancel while every slot is busy held each task whole", () => {
    const queue = new RunQueue<Entry>(() => false);
    const refs: WeakRef<Entry>[] = [];
    (() => {
      for (let index = 0; index < 1000; index++) {
        const entry = { task: { id: `e${index}`, thread_id: index % 2 === 0 ? null : `t${index}` } };
        queue.push(entry);
        refs.push(new WeakRef(entry));
        expect(queue.remove(entry)).toBe(true);
      }
    })();
    Bun.gc(true);
    expect(queue.size).toBe(0);
    expect(refs.filter((ref) => ref.deref() !== undefined).length).toBeLessThan(100);
  });
});
