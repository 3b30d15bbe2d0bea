/**
 * The task list: rows keyed by task id, updated in place (a row's status changes without the list
 * being rebuilt), newest first. The app polls the first page every few seconds; older pages come
 * with "Load more", and their rows that have not ended are polled one by one (`unsettled`).
 */
import { h, setText } from "./dom.ts";
import { excerpt, time } from "./format.ts";
import { TERMINAL_STATUSES } from "../protocol/statuses.ts";

/** Statuses a task does not leave. */
const ENDED: ReadonlySet<string> = new Set(TERMINAL_STATUSES);

export interface TaskSummary {
  id: string;
  agent: string;
  input: string;
  status: string;
  created_at: string;
}

interface Row {
  item: HTMLLIElement;
  link: HTMLAnchorElement;
  status: HTMLSpanElement;
  task: TaskSummary;
}

export class TaskList {
  private readonly rows = new Map<string, Row>();
  private selected: string | undefined;
  /** Where the next `unsettled` call starts in the list of rows that have not ended. */
  private unsettledFrom = 0;

  constructor(private readonly list: HTMLUListElement) {}

  /**
   * Merges a page of tasks (newest first). `top`: the newest page, so tasks not yet shown go above
   * the rows already there; otherwise the page goes below them (older pages).
   */
  merge(tasks: readonly TaskSummary[], top: boolean): void {
    const fresh: HTMLLIElement[] = [];
    for (const task of tasks) {
      const row = this.rows.get(task.id);
      if (row) this.update(row, task);
      else fresh.push(this.add(task).item);
    }
    if (fresh.length === 0) return;
    if (top) this.list.prepend(...fresh);
    else this.list.append(...fresh);
  }

  /** Updates one task's row (from the selected task's watch, a cancel…), adding it on top if new. */
  upsert(task: TaskSummary): void {
    const row = this.rows.get(task.id);
    if (row) this.update(row, task);
    else this.list.prepend(this.add(task).item);
  }

  setStatus(id: string, status: string): void {
    const row = this.rows.get(id);
    if (row) this.update(row, { ...row.task, status });
  }

  clear(): void {
    this.rows.clear();
    this.list.replaceChildren();
  }

  /**
   * Up to `limit` rows of tasks that have not ended, apart from `except` (the page just merged):
   * the next ones after those of the last call, round the list (newest first), so that with more
   * than `limit` of them every one is read again within a few polls, the oldest too.
   */
  unsettled(except: ReadonlySet<string>, limit: number): string[] {
    const ids: string[] = [];
    for (const item of this.list.children) {
      const id = (item as HTMLElement).dataset.task;
      const row = id === undefined ? undefined : this.rows.get(id);
      if (row && !except.has(row.task.id) && !ENDED.has(row.task.status)) ids.push(row.task.id);
    }
    if (ids.length <= limit) {
      this.unsettledFrom = 0;
      return ids;
    }
    const from = this.unsettledFrom % ids.length;
    this.unsettledFrom = from + limit;
    return [...ids.slice(from, from + limit), ...ids.slice(0, Math.max(0, from + limit - ids.length))];
  }

  get size(): number {
    return this.rows.size;
  }

  select(id: string | undefined): void {
    if (this.selected) this.rows.get(this.selected)?.link.removeAttribute("aria-current");
    this.selected = id;
    if (id) this.rows.get(id)?.link.setAttribute("aria-current", "page");
  }

  private add(task: TaskSummary): Row {
    const status = h("span", { class: `status ${task.status}` }, task.status.replace("_", " "));
    const link = h(
      "a",
      { class: "task-link", attrs: { href: `#/tasks/${encodeURIComponent(task.id)}`, "data-task": task.id, "aria-current": task.id === this.selected ? "page" : undefined } },
      h("span", { class: "input" }, excerpt(task.input) || "(empty)"),
      h("span", { class: "facts" }, status, h("span", { class: "agent" }, task.agent), h("time", { attrs: { datetime: task.created_at } }, time(task.created_at))),
    );
    const row: Row = { item: h("li", { attrs: { "data-task": task.id } }, link), link, status, task };
    this.rows.set(task.id, row);
    return row;
  }

  private update(row: Row, task: TaskSummary): void {
    if (row.task.status !== task.status) {
      row.status.className = `status ${task.status}`;
      setText(row.status, task.status.replace("_", " "));
    }
    row.task = task;
  }
}
