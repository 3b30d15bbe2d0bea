/**
 * Resuming a task from its durable log (cluster takeover, or a restart after a crash).
 *
 * The stored step events hold everything the engine put in the conversation: each step's text
 * (`thought`), the calls it made (`tool_call`) and their observations (`tool_result` /
 * `tool_error`). `resumeFromLog` rebuilds the messages the engine would have sent to the model for
 * its next step, with the totals and the calls that were announced but never got a result; those
 * go to `runReAct` as `pendingCalls`, never run again unless their tool is idempotent.
 *
 * What the log cannot give back byte for byte (and what the model gets instead):
 * - tool-call arguments are stored parsed, so the rebuilt `arguments` text is their compact JSON
 *   (`{"a": 1}` → `{"a":1}`, empty text → `{}`); arguments that were not JSON are stored, and
 *   rebuilt, as the raw text. Either way they parse to the same value (`toolCallInput`, what the
 *   providers are sent, is identical). One ambiguity: arguments that were a JSON *string* literal
 *   whose content is not itself JSON (`"abc"`) are rebuilt as that content (`abc`), as if the model
 *   had sent it raw; both are invalid arguments and their stored observation says so already.
 * - a step's text that was only whitespace is not stored (no `thought`): it is rebuilt as "" (the
 *   provider prompt drops an empty text part);
 * - a tool result whose JSON form is a string (an object with `toJSON`, like a Date) is shown as
 *   that string, without the JSON quotes.
 *
 * A step whose model output was lost (its `usage` stored, and maybe its `thought`, but no
 * `tool_call`: the answer, the tool calls or the stop were not stored) is run again under the same
 * number: `nextStep` is that step. Its tokens were spent, so they stay in the totals.
 */
import type { ChatMessage, ToolCallRequest } from "../llm/model.ts";
import {
  AnswerEvent,
  ApprovalDecidedEvent,
  ApprovalRequestedEvent,
  OutputInvalidEvent,
  QuestionEvent,
  ResumedEvent,
  ThoughtEvent,
  ToolCallEvent,
  ToolErrorEvent,
  ToolResultEvent,
  UsageEvent,
  UserInputEvent,
  resumedEvent,
} from "../protocol/events.ts";
import { nestsTooDeep } from "../protocol/limits.ts";
import { StepFrame } from "../protocol/frames.ts";
import { forEachLogEvent, type StoredEvent, type TaskStore } from "../store/store.ts";
import type { Tool } from "../tools/tool.ts";
import { outputFeedback, type PendingToolCall } from "./react.ts";
import { isIdempotentTool, observationText } from "./tool-execution.ts";

export interface ResumeState {
  /** The conversation to continue: pass it to `runReAct` as `messages`. */
  messages: ChatMessage[];
  /** The step the engine makes next: `runReAct`'s `firstStep`. */
  nextStep: number;
  /** What the stored `usage` events add up to (`steps`: the highest step with a `usage`). */
  totals: { steps: number; inputTokens: number; outputTokens: number };
  /** Announced, without a stored result, in call order: `runReAct`'s `pendingCalls`. */
  unfinished: PendingToolCall[];
  /** A `result` frame is stored: the task has ended, there is nothing to resume. */
  finished: boolean;
  /** The highest step of any stored event (0: none): the `step` of the `resumed` event. */
  lastStep: number;
  /** The last stored seq (0: none): `after_seq` of the `resumed` event. */
  lastSeq: number;
  /** `resumed` events already in the log: this resume is attempt `resumes + 1`. */
  resumes: number;
  /** Ids of the people's inputs already in the conversation (`user_input`): never delivered twice. */
  consumedInputs: Set<string>;
  /** Bad final answers already sent back to the model (`output_invalid`). */
  outputRetriesUsed: number;
  /** How long the task waited for people in all (ms): not counted against its time limit. */
  waitedMs: number;
  /** Calls that wait for a person and have no decision yet: the task goes on waiting. */
  awaiting: PendingToolCall[];
  /** Every call a person decided or answered (or whose wait timed out), finished or not. */
  decided: Set<string>;
}

/** The log cannot be read back: a frame is not valid JSON, breaks its schema, or contradicts the log. */
export class ResumeLogError extends Error {
  constructor(
    /** Where: the frame's seq when it has one, else its position in the log (1-based). */
    readonly at: { seq: number } | { frame: number },
    message: string,
  ) {
    super(`cannot resume from the task's log: ${"seq" in at ? `seq ${at.seq}` : `frame ${at.frame}`}: ${message}`);
    this.name = "ResumeLogError";
  }
}

/** The step events that shape the conversation, by type; other step events are skipped. */
const EVENT_SCHEMAS = {
  usage: UsageEvent,
  thought: ThoughtEvent,
  tool_call: ToolCallEvent,
  tool_result: ToolResultEvent,
  tool_error: ToolErrorEvent,
  resumed: ResumedEvent,
  user_input: UserInputEvent,
  approval_requested: ApprovalRequestedEvent,
  approval_decided: ApprovalDecidedEvent,
  question: QuestionEvent,
  answer: AnswerEvent,
  output_invalid: OutputInvalidEvent,
} as const;

/**
 * Rebuilds a task's conversation from its stored frames (in seq order: the frame texts, or the
 * store's events). `input` is the task's input (the first user message). Unknown frame and event
 * types are skipped; a corrupt or contradictory frame throws a `ResumeLogError`.
 */
export function resumeFromLog(input: string, frames: readonly string[] | readonly StoredEvent[]): ResumeState {
  const replay = logReplay(input);
  for (const [index, entry] of frames.entries()) replay.add(entry, index);
  return replay.state();
}

/**
 * `resumeFromLog` over the task's log in the store, read and parsed a slice at a time
 * (`forEachLogEvent`): a long log never holds the event loop, nor sits in memory whole.
 */
export async function resumeFromStore(store: Pick<TaskStore, "events">, task: { id: string; input: string }): Promise<ResumeState> {
  const replay = logReplay(task.input);
  let index = 0;
  await forEachLogEvent(store, task.id, (event) => replay.add(event, index++));
  return replay.state();
}

/**
 * The calls announced without a result, in call order, found by id at once: a step of thousands of
 * calls made each of its events (an approval, a result) search all of them, every time a decision
 * replays the log. Ids may repeat (some providers reuse them): the first open call with an id is it.
 */
class OpenCalls implements Iterable<PendingToolCall> {
  private readonly order = new Set<PendingToolCall>();
  private readonly byId = new Map<string, PendingToolCall[]>();

  get size(): number {
    return this.order.size;
  }
  [Symbol.iterator](): Iterator<PendingToolCall> {
    return this.order.values();
  }
  add(pending: PendingToolCall): void {
    this.order.add(pending);
    const same = this.byId.get(pending.call.id);
    if (same) same.push(pending);
    else this.byId.set(pending.call.id, [pending]);
  }
  /** The first open call with this id. */
  find(id: string): PendingToolCall | undefined {
    return this.byId.get(id)?.[0];
  }
  /** Removes and returns the first open call with this id (its result came). */
  take(id: string): PendingToolCall | undefined {
    const same = this.byId.get(id);
    const pending = same?.shift();
    if (same?.length === 0) this.byId.delete(id);
    if (pending) this.order.delete(pending);
    return pending;
  }
  ids(): string {
    return [...this.order].map((pending) => pending.call.id).join(", ");
  }
}

/** Replays frames one by one (`add`, in seq order; `index`: the frame's position, 0-based), then tells the state. */
function logReplay(input: string): { add(entry: string | StoredEvent, index: number): void; state(): ResumeState } {
  const messages: ChatMessage[] = [{ role: "user", content: input }];
  const totals = { steps: 0, inputTokens: 0, outputTokens: 0 };
  const unfinished = new OpenCalls();
  let finished = false;
  let lastSeq = 0;
  let lastStep = 0;
  let resumes = 0;
  const consumedInputs = new Set<string>();
  const decided = new Set<string>();
  let outputRetriesUsed = 0;
  let waitedMs = 0;
  /** When the latest wait for a person began (the time of its request event). */
  let waitStartedAt: number | undefined;
  /** The step in progress: its number, its text, and its assistant message once it announced calls. */
  let current: { step: number; text: string; assistant?: Extract<ChatMessage, { role: "assistant" }> } | undefined;

  return {
    add(entry, index) {
      const text = typeof entry === "string" ? entry : entry.frame;
      const storedSeq = typeof entry === "string" ? undefined : entry.seq;
      let at: { seq: number } | { frame: number } = storedSeq === undefined ? { frame: index + 1 } : { seq: storedSeq };
      const fail: (message: string) => never = (message) => {
        throw new ResumeLogError(at, message);
      };

      let frame: unknown;
      try {
        frame = JSON.parse(text);
      } catch (error) {
        fail(`not JSON (${(error as Error).message})`);
      }
      const type = typeof frame === "object" && frame !== null ? (frame as { type?: unknown }).type : undefined;
      const seq = typeof frame === "object" && frame !== null ? (frame as { seq?: unknown }).seq : undefined;
      if (typeof type !== "string" || typeof seq !== "number" || !Number.isInteger(seq) || seq < 1) {
        fail(`not a frame (no type or seq): ${text.slice(0, 200)}`);
      }
      const frameSeq = seq as number;
      at = { seq: frameSeq };
      if (storedSeq !== undefined && storedSeq !== frameSeq) fail(`stored under seq ${storedSeq}, the frame says ${frameSeq}`);
      if (frameSeq <= lastSeq) fail(`frames out of order: seq ${frameSeq} after ${lastSeq}`);
      lastSeq = frameSeq;

      if (type === "result") {
        finished = true;
        return;
      }
      if (type !== "step") return; // not a durable frame this version knows: nothing in the conversation

      const parsedFrame = StepFrame.safeParse(frame);
      if (!parsedFrame.success) fail(`invalid step frame: ${parsedFrame.error.issues.map((issue) => issue.message).join("; ")}`);
      const { event_type: eventType, step, data, timestamp } = parsedFrame.data.data;
      if (eventType === "final_answer") {
        finished = true; // never stored as a step by the runner; if it is, the task has its answer
        return;
      }
      if (!Object.hasOwn(EVENT_SCHEMAS, eventType)) return; // an event type from a newer version
      const schema = EVENT_SCHEMAS[eventType as keyof typeof EVENT_SCHEMAS];
      const parsed = schema.safeParse({ event_type: eventType, step, data });
      if (!parsed.success) fail(`invalid '${eventType}' event: ${parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`).join("; ")}`);
      const event = parsed.data;
      lastStep = Math.max(lastStep, event.step);

      /** The step's text, said without calling tools, becomes a turn of the conversation (see runReAct). */
      const closeTextTurn = () => {
        if (current && !current.assistant && current.step === event.step) {
          current.assistant = { role: "assistant", content: current.text };
          messages.push(current.assistant);
        }
      };
      const openCall = (id: string, what: string) => {
        const pending = unfinished.find(id);
        if (!pending) fail(`${what} for call '${id}', which was not announced or already has a result`);
        return pending;
      };

      switch (event.event_type) {
        case "resumed":
          resumes++;
          // A run began after these decisions: the approved calls may have started. A rejection, a
          // timeout or an answer runs nothing: it stands, whatever happened to that run.
          for (const pending of unfinished) if (pending.decision?.kind === "approved") pending.started = true;
          if (event.data.reason === "continued" && waitStartedAt !== undefined) {
            const at = Date.parse(timestamp);
            if (Number.isFinite(at)) waitedMs += Math.max(0, at - waitStartedAt);
            waitStartedAt = undefined;
          }
          break;
        case "user_input":
          if (unfinished.size > 0) fail(`user_input while calls had no result (${unfinished.ids()})`);
          closeTextTurn();
          consumedInputs.add(event.data.id);
          messages.push({ role: "user", content: event.data.text });
          break;
        case "output_invalid":
          if (!current || current.step !== event.step || current.assistant?.toolCalls) fail(`output_invalid of step ${event.step} out of place`);
          closeTextTurn();
          outputRetriesUsed = Math.max(outputRetriesUsed, event.data.attempt);
          messages.push({ role: "user", content: outputFeedback(event.data.message, event.data.kind) });
          break;
        case "approval_requested":
        case "question": {
          const pending = openCall(event.data.id, event.event_type);
          pending.awaiting = event.event_type === "question" ? "question" : "approval";
          const at = Date.parse(timestamp);
          if (Number.isFinite(at)) waitStartedAt = at;
          break;
        }
        case "approval_decided": {
          const pending = openCall(event.data.id, "approval_decided");
          if (pending.awaiting !== "approval" || pending.decision) fail(`approval_decided for call '${event.data.id}', which awaits no approval`);
          const { decision, by, reason } = event.data;
          pending.decision =
            decision === "approved" ? { kind: "approved", by } : decision === "rejected" ? { kind: "rejected", by, ...(reason ? { reason } : {}) } : { kind: "timed_out" };
          decided.add(event.data.id);
          break;
        }
        case "answer": {
          const pending = openCall(event.data.id, "answer");
          if (pending.awaiting !== "question" || pending.decision) fail(`answer for call '${event.data.id}', which awaits no answer`);
          pending.decision = { kind: "answered", by: event.data.by, text: event.data.text };
          decided.add(event.data.id);
          break;
        }
        case "usage": {
          if (current && event.step < current.step) fail(`usage of step ${event.step} after step ${current.step}`);
          if (current?.assistant && event.step === current.step) fail(`step ${event.step} began again after it called tools`);
          if (unfinished.size > 0) {
            fail(`step ${event.step} began while calls of step ${[...unfinished][0]!.step} had no result (${unfinished.ids()})`);
          }
          // A new step, or a step whose output was lost being run again: either way it starts afresh.
          current = { step: event.step, text: "" };
          totals.steps = Math.max(totals.steps, event.step);
          totals.inputTokens += event.data.input_tokens;
          totals.outputTokens += event.data.output_tokens;
          break;
        }
        case "thought":
          if (!current || current.step !== event.step || current.assistant) fail(`thought of step ${event.step} out of place`);
          current.text = event.data.text;
          break;
        case "tool_call": {
          if (!current || current.step !== event.step) fail(`tool_call of step ${event.step} outside its step`);
          const step = current;
          if (!step.assistant) {
            // What the engine appends before running a step's tools: the step's text and its calls.
            step.assistant = { role: "assistant", content: step.text, toolCalls: [] };
            messages.push(step.assistant);
          }
          const call: ToolCallRequest = { id: event.data.id, name: event.data.name, arguments: argumentsText(event.data.arguments) };
          step.assistant.toolCalls!.push(call);
          unfinished.add({ step: event.step, call });
          break;
        }
        case "tool_result":
        case "tool_error": {
          // Results come in call order; a call id may repeat (some providers reuse ids), so the
          // first open call with this id is the one.
          const taken = unfinished.take(event.data.id);
          if (!taken) fail(`${event.event_type} for call '${event.data.id}', which was not announced or already has a result`);
          const { call } = taken;
          if (call.name !== event.data.name) fail(`${event.event_type} for call '${call.id}' names tool '${event.data.name}', the call '${call.name}'`);
          const outcome =
            event.event_type === "tool_result"
              ? { ok: true as const, call, result: event.data.result }
              : { ok: false as const, call, error: event.data.error };
          messages.push({ role: "tool", toolCallId: call.id, toolName: call.name, content: observationText(outcome), isError: !outcome.ok });
          break;
        }
      }
    },
    state() {
      // A step that announced calls is done with the model: the next one follows. A step without
      // (its output lost) is run again.
      const nextStep = current === undefined ? 1 : current.assistant ? current.step + 1 : current.step;
      const open = [...unfinished];
      const awaiting = open.filter((pending) => pending.awaiting && !pending.decision);
      return { messages, nextStep, totals, unfinished: open, finished, lastStep, lastSeq, resumes, consumedInputs, outputRetriesUsed, waitedMs, awaiting, decided };
    },
  };
}

/**
 * The model's argument text, back from what `tool_call` stores (`argumentsForDisplay` in react.ts:
 * the parsed JSON, `{}` for empty text, or the raw text when it is not JSON). See the file comment.
 */
export function argumentsText(stored: unknown): string {
  if (stored === undefined) return "";
  if (typeof stored !== "string") return JSON.stringify(stored);
  // A string that is JSON (or blank) cannot be raw text the engine failed to parse: it was the
  // value of a JSON string literal — unless it nests too deep to be parsed (shown as it came).
  return stored.trim() === "" || (isJson(stored) && !nestsTooDeep(stored)) ? JSON.stringify(stored) : stored;
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Which pending calls `runReAct` will run again, and which it reports as interrupted. */
export function pendingCallPlan(
  pendingCalls: readonly PendingToolCall[],
  tools: ReadonlyMap<string, Tool>,
  idempotentTools: readonly string[] = [],
): { rerun: string[]; notRerun: string[] } {
  const rerun: string[] = [];
  const notRerun: string[] = [];
  for (const { call, awaiting, decision, started } of pendingCalls) {
    if (awaiting && (!decision || !started)) continue; // waits for a person, or runs as they decided
    (isIdempotentTool(call.name, tools, idempotentTools) ? rerun : notRerun).push(call.id);
  }
  return { rerun, notRerun };
}

/**
 * The `resumed` event for resuming `state` with these tools: its step, attempt, `after_seq` and the
 * calls that will (`rerun`) and will not (`not_rerun`) run again — the same split `runReAct` makes.
 */
export function resumedEventFor(
  state: ResumeState,
  options: {
    tools: ReadonlyMap<string, Tool>;
    idempotentTools?: readonly string[];
    node: string | null;
    reason: ResumedEvent["data"]["reason"];
  },
): ResumedEvent {
  const plan = pendingCallPlan(state.unfinished, options.tools, options.idempotentTools);
  return resumedEvent({
    step: state.lastStep,
    attempt: state.resumes + 1,
    node: options.node,
    afterSeq: state.lastSeq,
    notRerun: plan.notRerun,
    rerun: plan.rerun,
    reason: options.reason,
  });
}
