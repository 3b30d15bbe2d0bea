/**
 * The one-node runner's queue of tasks waiting for a slot, in FIFO order, where a thread's tasks
 * start one at a time: a task whose thread is busy is passed over, and what is behind it may start.
 *
 * It was one array scanned from the front on every submit and every task's end: with tasks queued
 * behind a few busy threads, each scan walked all of them (and `splice`d the array) — 20,000 tasks
 * queued on 4 busy threads spent half the server's CPU in that scan, a submit ~26–48 ms. Here a
 * busy thread's tasks wait in the thread's own line, and only its first is among the tasks that may
 * start (a heap in queue order): taking the next task costs a few heap steps, not a walk of the queue.
 */

/** What the queue needs of an entry: its task's id and thread. */
export interface Queued {
  readonly task: { readonly id: string; readonly thread_id: string | null };
}

/** A thread's line: its queued tasks in order, from `first` on. */
interface Line<T> {
  items: (T | undefined)[];
  first: number;
}

export class RunQueue<T extends Queued> {
  /**
   * Each queued entry's place in the queue (lower first), and whether it waits in its thread's line
   * (not a thread's head: that one may start whatever its line holds); absent once taken or removed.
   */
  readonly #order = new Map<T, { order: number; lined: boolean }>();
  /** Entries that may be next (thread-less ones, and the first of each thread's line), by order; may hold stale ones. */
  readonly #heap: { order: number; entry: T }[] = [];
  readonly #lines = new Map<string, Line<T>>();
  #last = 0;
  #lowest = 0;
  /** Heap items whose entry was removed since the heap was last rebuilt (see `#dropped`). */
  #stale = 0;

  /**
   * `isThreadHead(entry)`: the entry is the task its thread is already on (a task that waited for
   * people and was decided, a run the store cut): it is never held by its thread, so it waits in
   * no line — the scan started it past any task of its thread before it.
   */
  constructor(private readonly isThreadHead: (entry: T) => boolean) {}

  get size(): number {
    return this.#order.size;
  }

  /** Queues `entry` last. */
  push(entry: T): void {
    this.#add(entry, ++this.#last, false);
  }

  /** Queues `entry` first (it was next, and is again). */
  unshift(entry: T): void {
    this.#add(entry, --this.#lowest, true);
  }

  /**
   * Takes the first entry that may start now — whose thread is not `busy` — or undefined. A busy
   * thread's line waits until `threadFree` says the thread's task ended.
   */
  take(busy: (entry: T) => boolean): T | undefined {
    while (this.#heap.length > 0) {
      const { entry } = this.#pop();
      const queued = this.#order.get(entry);
      if (!queued) {
        if (this.#stale > 0) this.#stale--;
        continue; // taken or removed since it was put here
      }
      const thread = entry.task.thread_id;
      if (thread !== null && queued.lined) {
        const line = this.#lines.get(thread)!;
        if (line.items[line.first] !== entry) continue; // no longer its thread's first
        if (busy(entry)) continue; // back in the heap once its thread is free (`threadFree`)
        line.items[line.first++] = undefined;
        if (line.first === line.items.length) this.#lines.delete(thread);
        else if (line.first >= 1024 && line.first * 2 >= line.items.length) {
          line.items = line.items.slice(line.first); // the taken ones' slots, given back now and then
          line.first = 0;
        }
      }
      this.#order.delete(entry);
      return entry;
    }
    return undefined;
  }

  /** The thread's task ended: the first of its line may start. */
  threadFree(thread: string): void {
    this.#offerFirst(thread);
  }

  /** Takes `entry` out of the queue (a cancel); false if it was not queued. */
  remove(entry: T): boolean {
    const queued = this.#order.get(entry);
    if (!queued) return false;
    this.#order.delete(entry);
    this.#dropped();
    const thread = entry.task.thread_id;
    if (thread === null || !queued.lined) return true; // its heap item is skipped when it comes up
    const line = this.#lines.get(thread)!;
    const index = line.items.indexOf(entry, line.first);
    line.items.splice(index, 1);
    if (line.first === line.items.length) this.#lines.delete(thread);
    else if (index === line.first) this.#offerFirst(thread);
    return true;
  }

  clear(): void {
    this.#order.clear();
    this.#heap.length = 0;
    this.#lines.clear();
    this.#stale = 0;
  }

  /**
   * A removed entry's heap item stays until it comes up, and nothing comes up while no slot frees:
   * tasks submitted and cancelled while every slot is busy piled up there, each held whole. Once
   * most of the heap is such items it is rebuilt from the entries still queued.
   */
  #dropped(): void {
    if (++this.#stale < 64 || this.#stale * 2 < this.#heap.length) return;
    const heap = this.#heap;
    const seen = new Set<T>();
    const kept = heap.filter(({ entry }) => this.#order.has(entry) && !seen.has(entry) && (seen.add(entry), true));
    kept.sort((a, b) => a.order - b.order); // an array in order is a heap
    heap.length = 0;
    for (const item of kept) heap.push(item);
    this.#stale = 0;
  }

  #add(entry: T, order: number, first: boolean): void {
    const thread = entry.task.thread_id;
    const lined = thread !== null && !this.isThreadHead(entry);
    this.#order.set(entry, { order, lined });
    if (!lined) return this.#push(order, entry);
    let line = this.#lines.get(thread);
    if (!line) this.#lines.set(thread, (line = { items: [], first: 0 }));
    if (line.first === line.items.length || !first) {
      line.items.push(entry);
      if (line.items.length - line.first === 1) this.#push(order, entry);
      return;
    }
    if (line.first > 0) line.items[--line.first] = entry;
    else line.items.unshift(entry);
    this.#push(order, entry);
  }

  #offerFirst(thread: string): void {
    const line = this.#lines.get(thread);
    const entry = line?.items[line.first];
    if (entry) this.#push(this.#order.get(entry)!.order, entry);
  }

  #push(order: number, entry: T): void {
    const heap = this.#heap;
    heap.push({ order, entry });
    let index = heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (heap[parent]!.order <= order) break;
      heap[index] = heap[parent]!;
      index = parent;
    }
    heap[index] = { order, entry };
  }

  #pop(): { order: number; entry: T } {
    const heap = this.#heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      let index = 0;
      for (;;) {
        const left = index * 2 + 1;
        if (left >= heap.length) break;
        const right = left + 1;
        const child = right < heap.length && heap[right]!.order < heap[left]!.order ? right : left;
        if (heap[child]!.order >= last.order) break;
        heap[index] = heap[child]!;
        index = child;
      }
      heap[index] = last;
    }
    return top;
  }
}
