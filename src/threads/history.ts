/**
 * A thread's history: what the model reads before a thread task's own input. It is rebuilt from the
 * durable logs of the thread's earlier tasks every time (no second copy that could drift):
 * each earlier task that *completed* is a turn — its input, the steps it took (thoughts, tool calls
 * and their observations, people's messages) and its final answer. Tasks that failed or were
 * cancelled are left out: their turn never finished, and a half turn (a call without its result)
 * is something providers refuse.
 *
 * The policy (the agent's `history`): the last `max_turns` completed turns, and no more than
 * `max_chars` characters in all; the oldest turns are dropped first. A turn too long on its own is
 * shortened to its input and answer (its steps dropped), and dropped if even that is too long. A
 * turn whose log was pruned by retention is its input and answer too (the task keeps both).
 */
import type { ChatMessage } from "../llm/model.ts";
import type { Task } from "../protocol/task.ts";
import type { TaskStore } from "../store/store.ts";
import { resumeFromStore } from "../engine/resume.ts";

export interface HistoryPolicy {
  max_turns: number;
  max_chars: number;
}

/**
 * The turns of completed tasks, as rebuilt from their logs, kept for the next task of their thread:
 * a completed task's log never changes (only retention prunes it, and `pruned_through` is part of
 * the key), so a conversation's next turn reads one log, not `max_turns` of them (50 turns of ~20
 * events: ~3.6 ms of the event loop per turn before). Least recently used turns go first beyond
 * `maxChars` characters in all. Turns are frozen: whoever reads them copies before changing.
 */
export interface TurnCache {
  get(task: Task): readonly ChatMessage[] | undefined;
  set(task: Task, turn: readonly ChatMessage[]): void;
  readonly size: number;
}

export function createTurnCache(maxChars = 4_000_000): TurnCache {
  const turns = new Map<string, { prunedThrough: number; turn: readonly ChatMessage[]; size: number }>();
  let chars = 0;
  return {
    get(task) {
      const entry = turns.get(task.id);
      if (!entry || entry.prunedThrough !== task.pruned_through) return undefined;
      // Most recently used last.
      turns.delete(task.id);
      turns.set(task.id, entry);
      return entry.turn;
    },
    set(task, turn) {
      const size = sizeOf(turn);
      const old = turns.get(task.id);
      if (old) {
        chars -= old.size;
        turns.delete(task.id);
      }
      if (size > maxChars) return;
      for (const message of turn) Object.freeze(message);
      turns.set(task.id, { prunedThrough: task.pruned_through, turn: Object.freeze([...turn]), size });
      chars += size;
      for (const [id, entry] of turns) {
        if (chars <= maxChars) break;
        turns.delete(id);
        chars -= entry.size;
      }
    },
    get size() {
      return turns.size;
    },
  };
}

/** The messages of the thread's completed tasks before `task`, per `policy`, oldest first. */
export async function threadHistory(store: TaskStore, task: Task, policy: HistoryPolicy, cache?: TurnCache): Promise<ChatMessage[]> {
  if (task.thread_id === null || policy.max_turns === 0) return [];
  // The newest completed tasks before this one whose input and answer fit in `max_chars` (a turn is
  // at least those): a turn that could not be kept is not read, nor is its log.
  const chosen = await store.threadTasks(task.thread_id, {
    limit: policy.max_turns,
    statuses: ["completed"],
    before: task.id,
    maxChars: policy.max_chars,
  });
  const turns: (readonly ChatMessage[])[] = [];
  for (const turn of chosen) {
    let messages = cache?.get(turn);
    if (!messages) {
      messages = await turnOf(store, turn);
      cache?.set(turn, messages);
    }
    turns.push(messages);
  }
  return fitTurns(turns, policy.max_chars).flat();
}

/** The turns that fit in `maxChars`, newest kept first (each possibly shortened), oldest first. */
export function fitTurns(turns: readonly (readonly ChatMessage[])[], maxChars: number): ChatMessage[][] {
  const kept: ChatMessage[][] = [];
  let used = 0;
  for (let index = turns.length - 1; index >= 0; index--) {
    const full = turns[index]!;
    const compact = compactTurn(full);
    const candidate = sizeOf(full) + used <= maxChars ? full : sizeOf(compact) + used <= maxChars ? compact : undefined;
    if (!candidate) break; // older turns are not kept either: the history stays contiguous
    kept.unshift([...candidate]);
    used += sizeOf(candidate);
  }
  return kept;
}

async function turnOf(store: TaskStore, task: Task): Promise<ChatMessage[]> {
  const answer: ChatMessage = { role: "assistant", content: task.output ?? "" };
  if (task.pruned_through > 0) return [{ role: "user", content: task.input }, answer];
  try {
    const state = await resumeFromStore(store, task);
    // A completed task's steps are all settled; one that is not (a log from an older version) is
    // shortened — as is one whose log retention began to prune while it was read (from its start,
    // a piece at a time: the read stops short of last_seq, or goes on past a hole).
    if (state.unfinished.length > 0 || state.lastSeq !== task.last_seq) return [{ role: "user", content: task.input }, answer];
    if (((await store.getTask(task.id))?.pruned_through ?? 0) > 0) return [{ role: "user", content: task.input }, answer];
    return [...state.messages, answer];
  } catch {
    return [{ role: "user", content: task.input }, answer];
  }
}

/** A turn as its input and answer only (its first and last messages). */
function compactTurn(turn: readonly ChatMessage[]): ChatMessage[] {
  return turn.length <= 2 ? [...turn] : [turn[0]!, turn.at(-1)!];
}

function sizeOf(turn: readonly ChatMessage[]): number {
  let size = 0;
  for (const message of turn) {
    size += message.content.length;
    if (message.role === "assistant") for (const call of message.toolCalls ?? []) size += call.name.length + call.arguments.length;
  }
  return size;
}
