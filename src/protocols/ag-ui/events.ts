/**
 * AG-UI 1.0 events (as `@ag-ui/core` 1.0 defines them), written by hand so the server imports no
 * AG-UI package at run time, and the translation of one agentkit task's frames into them.
 *
 * One AG-UI run is one stretch of one agentkit task: from its start (or from the decisions that
 * resume it) to its `result`, or to the moment it waits for a person. `RunTranslator` is a pure
 * state machine: agentkit frames in (durable `step`/`result` frames and live `delta` frames),
 * AG-UI events out, in an order `@ag-ui/client`'s verifier accepts:
 *
 * - `RUN_STARTED` first; `RUN_FINISHED` (success, cancelled or interrupt outcome) or `RUN_ERROR` last.
 * - `STEP_STARTED`/`STEP_FINISHED` `"step N"` around each model step (steps only move forward).
 * - `TEXT_MESSAGE_START/CONTENT/END` from the step's text deltas; the step's durable text (its
 *   `thought`, or the final answer in `result.output`) completes the message, so the content is
 *   whole even when deltas were missed (a late join, a task followed from another node).
 * - `REASONING_*` from reasoning deltas (and a thought's stored reasoning), the same way.
 * - `TOOL_CALL_START/ARGS/END` for each `tool_call`, `TOOL_CALL_RESULT` for its `tool_result` or
 *   `tool_error`.
 * - `CUSTOM` `agentkit.<event_type>` for agentkit events AG-UI has no event for (approval requests
 *   and decisions, questions and answers, steering inputs, resumes, invalid outputs).
 */
import { forEachLogEvent, type TaskStore } from "../../store/store.ts";

export type AgUiEvent = { type: AgUiEventType; timestamp?: number } & Record<string, unknown>;

export type AgUiEventType =
  | "RUN_STARTED"
  | "RUN_FINISHED"
  | "RUN_ERROR"
  | "STEP_STARTED"
  | "STEP_FINISHED"
  | "TEXT_MESSAGE_START"
  | "TEXT_MESSAGE_CONTENT"
  | "TEXT_MESSAGE_END"
  | "TOOL_CALL_START"
  | "TOOL_CALL_ARGS"
  | "TOOL_CALL_END"
  | "TOOL_CALL_RESULT"
  | "REASONING_START"
  | "REASONING_MESSAGE_START"
  | "REASONING_MESSAGE_CONTENT"
  | "REASONING_MESSAGE_END"
  | "REASONING_END"
  | "CUSTOM";

/** A call of a waiting task that waits for a person: an AG-UI interrupt. */
export interface OpenCall {
  kind: "approval" | "question";
  callId: string;
  name: string;
  arguments?: unknown;
  question?: string;
  expiresAt: string | null;
}

/** An AG-UI tool call id for an agentkit call: call ids (`call_1`) repeat across the tasks of a thread. */
export function toolCallIdOf(taskId: string, callId: string): string {
  return `${taskId}/${callId}`;
}

/** The schema of the answer each kind of interrupt takes (`ResumeEntry.payload`). */
export const APPROVAL_RESPONSE_SCHEMA = {
  type: "object",
  properties: { approved: { type: "boolean" }, reason: { type: "string", description: "Why not (sent to the model when rejected)" } },
  required: ["approved"],
} as const;
export const QUESTION_RESPONSE_SCHEMA = {
  type: "object",
  properties: { text: { type: "string", description: "The answer" } },
  required: ["text"],
} as const;

/** The AG-UI interrupt of an open call (`RUN_FINISHED.outcome.interrupts[]`). */
export function interruptOf(taskId: string, call: OpenCall): Record<string, unknown> {
  const id = toolCallIdOf(taskId, call.callId);
  return {
    id,
    reason: call.kind === "approval" ? "tool_approval" : "question",
    message: call.kind === "approval" ? `Approve the call of '${call.name}' with ${JSON.stringify(call.arguments ?? {})}?` : (call.question ?? ""),
    toolCallId: id,
    responseSchema: call.kind === "approval" ? APPROVAL_RESPONSE_SCHEMA : QUESTION_RESPONSE_SCHEMA,
    ...(call.expiresAt ? { expiresAt: call.expiresAt } : {}),
    metadata: { agentkit: { task_id: taskId, call_id: call.callId, tool: call.name } },
  };
}

interface OpenMessage {
  step: number;
  messageId: string;
  /** The text sent so far. */
  sent: string;
  open: boolean;
}

/** How a run ended, once it has. */
export type RunEnding = "finished" | "cancelled" | "error" | "interrupted";

export interface RunTranslatorOptions {
  threadId: string;
  runId: string;
  taskId: string;
  /** `provider/model` of the task's agent, for `usage`. */
  model?: string;
  now?: () => number;
}

export class RunTranslator {
  /** Set once the run's last event was produced. */
  ending: RunEnding | undefined;
  /** Approvals or questions were requested in this run and not decided in it (the task may be parking). */
  waitRequested = false;
  private step = 0;
  private stepOpen = false;
  private text: OpenMessage | undefined;
  private reasoning: OpenMessage | undefined;
  private readonly toolCallsStarted = new Set<string>();
  private readonly toolResults = new Set<string>();
  private readonly undecided = new Set<string>();
  private inputTokens = 0;
  private outputTokens = 0;
  private sawUsage = false;
  private readonly now: () => number;

  constructor(private readonly options: RunTranslatorOptions) {
    this.now = options.now ?? Date.now;
  }

  private event(type: AgUiEventType, fields: Record<string, unknown> = {}): AgUiEvent {
    return { type, timestamp: this.now(), ...fields };
  }

  start(): AgUiEvent[] {
    const { threadId, runId, taskId } = this.options;
    return [this.event("RUN_STARTED", { threadId, runId, metadata: { agentkit: { task_id: taskId, thread_id: threadId } } })];
  }

  /** Translates one agentkit frame (its JSON text, parsed). Frames after the end are ignored. */
  frame(frame: unknown): AgUiEvent[] {
    if (this.ending || !isObject(frame)) return [];
    if (frame.type === "delta") return this.delta(frame);
    if (frame.type === "step" && isObject(frame.data)) return this.stepEvent(frame.data);
    if (frame.type === "result" && isObject(frame.data)) return this.result(frame.data);
    return [];
  }

  /** The task waits for people: closes what is open and ends the run with the interrupt outcome. */
  interrupt(calls: readonly OpenCall[]): AgUiEvent[] {
    if (this.ending) return [];
    if (calls.length === 0) return [];
    const out = this.closeAll();
    this.ending = "interrupted";
    const { threadId, runId, taskId } = this.options;
    out.push(
      this.event("RUN_FINISHED", {
        threadId,
        runId,
        outcome: { type: "interrupt", interrupts: calls.map((call) => interruptOf(taskId, call)) },
        ...this.usage(),
      }),
    );
    return out;
  }

  /** The run cannot go on (a server fault while streaming): `RUN_ERROR`. */
  fail(message: string, code: string): AgUiEvent[] {
    if (this.ending) return [];
    this.ending = "error";
    return [this.event("RUN_ERROR", { message, code })];
  }

  // ---- steps ------------------------------------------------------------------------------

  /** Moves to model step `step` (steps only move forward): closes the messages of the previous one. */
  private enterStep(step: number, out: AgUiEvent[]) {
    if (!Number.isInteger(step) || step <= this.step) return;
    this.closeMessages(out);
    if (this.stepOpen) out.push(this.event("STEP_FINISHED", { stepName: `step ${this.step}` }));
    this.step = step;
    this.stepOpen = true;
    out.push(this.event("STEP_STARTED", { stepName: `step ${step}` }));
  }

  private closeMessages(out: AgUiEvent[]) {
    this.endText(out);
    this.endReasoning(out);
  }

  private closeAll(): AgUiEvent[] {
    const out: AgUiEvent[] = [];
    this.closeMessages(out);
    if (this.stepOpen) out.push(this.event("STEP_FINISHED", { stepName: `step ${this.step}` }));
    this.stepOpen = false;
    return out;
  }

  // ---- text and reasoning ------------------------------------------------------------------

  private textId(step: number) {
    return `${this.options.taskId}/step-${step}/text`;
  }

  private reasoningId(step: number) {
    return `${this.options.taskId}/step-${step}/reasoning`;
  }

  /** Appends `piece` to the step's text message, opening it first. */
  private appendText(step: number, piece: string, out: AgUiEvent[]) {
    if (piece === "") return;
    if (!this.text || this.text.step !== step) {
      this.endText(out);
      this.text = { step, messageId: this.textId(step), sent: "", open: true };
      out.push(this.event("TEXT_MESSAGE_START", { messageId: this.text.messageId, role: "assistant" }));
    }
    if (!this.text.open) return;
    this.text.sent += piece;
    out.push(this.event("TEXT_MESSAGE_CONTENT", { messageId: this.text.messageId, delta: piece }));
  }

  /** The step's whole text is known: sends what the deltas did not, and closes the message. */
  private completeText(step: number, full: string, out: AgUiEvent[]) {
    if (this.text?.step === step && !this.text.open) return;
    const sent = this.text?.step === step ? this.text.sent : "";
    // Deltas are a prefix of the durable text; if they are not (a provider that revised its text),
    // nothing can be taken back: the message keeps what it has.
    if (full.startsWith(sent)) this.appendText(step, full.slice(sent.length), out);
    this.endText(out);
  }

  private endText(out: AgUiEvent[]) {
    if (this.text?.open) {
      this.text.open = false;
      out.push(this.event("TEXT_MESSAGE_END", { messageId: this.text.messageId }));
    }
  }

  private appendReasoning(step: number, piece: string, out: AgUiEvent[]) {
    if (piece === "") return;
    if (!this.reasoning || this.reasoning.step !== step) {
      this.endReasoning(out);
      const messageId = this.reasoningId(step);
      this.reasoning = { step, messageId, sent: "", open: true };
      out.push(this.event("REASONING_START", { messageId }), this.event("REASONING_MESSAGE_START", { messageId, role: "reasoning" }));
    }
    if (!this.reasoning.open) return;
    this.reasoning.sent += piece;
    out.push(this.event("REASONING_MESSAGE_CONTENT", { messageId: this.reasoning.messageId, delta: piece }));
  }

  private completeReasoning(step: number, full: string, out: AgUiEvent[]) {
    if (this.reasoning?.step === step && !this.reasoning.open) return;
    const sent = this.reasoning?.step === step ? this.reasoning.sent : "";
    if (full.startsWith(sent)) this.appendReasoning(step, full.slice(sent.length), out);
    this.endReasoning(out);
  }

  private endReasoning(out: AgUiEvent[]) {
    if (this.reasoning?.open) {
      this.reasoning.open = false;
      const { messageId } = this.reasoning;
      out.push(this.event("REASONING_MESSAGE_END", { messageId }), this.event("REASONING_END", { messageId }));
    }
  }

  private delta(frame: Record<string, unknown>): AgUiEvent[] {
    const step = frame.step;
    const data = frame.data;
    if (typeof step !== "number" || !isObject(data) || typeof data.text !== "string") return [];
    if (step < this.step) return [];
    const out: AgUiEvent[] = [];
    this.enterStep(step, out);
    if (data.kind === "reasoning") this.appendReasoning(step, data.text, out);
    else if (data.kind === "text") this.appendText(step, data.text, out);
    return out;
  }

  // ---- durable events -----------------------------------------------------------------------

  private stepEvent(event: Record<string, unknown>): AgUiEvent[] {
    const type = typeof event.event_type === "string" ? event.event_type : "unknown";
    const step = typeof event.step === "number" ? event.step : 0;
    const data = isObject(event.data) ? event.data : {};
    const out: AgUiEvent[] = [];
    const { taskId } = this.options;
    switch (type) {
      case "usage":
        this.enterStep(step, out);
        if (typeof data.input_tokens === "number" && typeof data.output_tokens === "number") {
          this.sawUsage = true;
          this.inputTokens += data.input_tokens;
          this.outputTokens += data.output_tokens;
        }
        return out;
      case "thought":
        this.enterStep(step, out);
        if (typeof data.reasoning === "string") this.completeReasoning(step, data.reasoning, out);
        else this.endReasoning(out);
        if (typeof data.text === "string") this.completeText(step, data.text, out);
        return out;
      case "tool_call": {
        this.enterStep(step, out);
        this.closeMessages(out);
        const callId = String(data.id);
        if (this.toolCallsStarted.has(callId)) return out; // a call run again after a restart
        this.toolCallsStarted.add(callId);
        const toolCallId = toolCallIdOf(taskId, callId);
        const parent = this.text?.step === step ? this.text.messageId : undefined;
        out.push(
          this.event("TOOL_CALL_START", {
            toolCallId,
            toolCallName: String(data.name),
            ...(parent ? { parentMessageId: parent } : {}),
            metadata: { agentkit: { task_id: taskId, call_id: callId } },
          }),
          this.event("TOOL_CALL_ARGS", { toolCallId, delta: typeof data.arguments === "string" ? data.arguments : JSON.stringify(data.arguments ?? {}) }),
          this.event("TOOL_CALL_END", { toolCallId }),
        );
        return out;
      }
      case "tool_result":
      case "tool_error": {
        this.enterStep(step, out);
        const callId = String(data.id);
        if (this.toolResults.has(callId)) return out;
        this.toolResults.add(callId);
        const toolCallId = toolCallIdOf(taskId, callId);
        const content =
          type === "tool_result"
            ? typeof data.result === "string"
              ? data.result
              : JSON.stringify(data.result ?? null)
            : JSON.stringify({ error: data.error ?? null });
        out.push(this.event("TOOL_CALL_RESULT", { messageId: `${toolCallId}/result`, toolCallId, content, role: "tool" }));
        return out;
      }
      case "approval_requested":
      case "question":
        this.undecided.add(String(data.id));
        this.waitRequested = true;
        out.push(this.custom(type, data));
        return out;
      case "approval_decided":
      case "answer":
        this.undecided.delete(String(data.id));
        this.waitRequested = this.undecided.size > 0;
        out.push(this.custom(type, data));
        return out;
      case "user_input":
        this.enterStep(step, out);
        out.push(this.custom(type, data));
        return out;
      default:
        // resumed, output_invalid, and any event type added later: passed on as they are.
        out.push(this.custom(type, data));
        return out;
    }
  }

  private custom(eventType: string, data: Record<string, unknown>): AgUiEvent {
    return this.event("CUSTOM", { name: `agentkit.${eventType}`, value: { task_id: this.options.taskId, ...data } });
  }

  private result(data: Record<string, unknown>): AgUiEvent[] {
    const { threadId, runId } = this.options;
    const status = data.status;
    const out: AgUiEvent[] = [];
    if (status === "completed") {
      if (typeof data.output === "string") this.completeText(Math.max(this.step, 1), data.output, out);
      out.push(...this.closeAll());
      this.ending = "finished";
      const result = data.output_json !== undefined && data.output_json !== null ? data.output_json : data.output;
      out.push(
        this.event("RUN_FINISHED", {
          threadId,
          runId,
          ...(result !== undefined && result !== null ? { result } : {}),
          outcome: { type: "success" },
          ...this.usage(),
        }),
      );
      return out;
    }
    out.push(...this.closeAll());
    if (status === "cancelled") {
      // AG-UI 1.0: a run stopped on purpose is not a failure — RUN_FINISHED with the cancelled outcome.
      this.ending = "cancelled";
      out.push(this.event("RUN_FINISHED", { threadId, runId, outcome: { type: "cancelled" }, ...this.usage() }));
      return out;
    }
    this.ending = "error";
    const error = isObject(data.error) ? data.error : {};
    out.push(
      this.event("RUN_ERROR", {
        message: typeof error.message === "string" ? error.message : `The task ended ${String(status)}`,
        code: typeof error.code === "string" ? error.code : String(status),
        ...this.usage(),
      }),
    );
    return out;
  }

  /** `usage` of what this run's model calls used (a resumed run counts only its own). */
  private usage(): { usage?: Record<string, unknown>[] } {
    if (!this.sawUsage) return {};
    const [provider, ...rest] = (this.options.model ?? "").split("/");
    return {
      usage: [
        {
          ...(provider ? { provider } : {}),
          ...(rest.length > 0 ? { model: rest.join("/") } : {}),
          inputTokens: this.inputTokens,
          outputTokens: this.outputTokens,
          totalTokens: this.inputTokens + this.outputTokens,
        },
      ],
    };
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The calls of a task that wait for a person, from its stored frames: requested (`approval_requested`,
 * `question`) and not decided (`approval_decided`, `answer`).
 */
export function openCallsOf(frames: readonly string[]): OpenCall[] {
  const open = new Map<string, OpenCall>();
  for (const text of frames) trackOpenCall(open, text);
  return [...open.values()];
}

/** `openCallsOf` over the task's log in the store, read a slice at a time (a long log never holds the event loop). */
export async function readOpenCalls(store: Pick<TaskStore, "events">, taskId: string): Promise<OpenCall[]> {
  const open = new Map<string, OpenCall>();
  await forEachLogEvent(store, taskId, (event) => trackOpenCall(open, event.frame));
  return [...open.values()];
}

function trackOpenCall(open: Map<string, OpenCall>, text: string) {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    return;
  }
  if (!isObject(frame) || frame.type !== "step" || !isObject(frame.data) || !isObject(frame.data.data)) return;
  const type = frame.data.event_type;
  const data = frame.data.data;
  const id = String(data.id);
  if (type === "approval_requested") {
    open.set(id, { kind: "approval", callId: id, name: String(data.name), arguments: data.arguments, expiresAt: typeof data.expires_at === "string" ? data.expires_at : null });
  } else if (type === "question") {
    open.set(id, { kind: "question", callId: id, name: String(data.name), question: String(data.question ?? ""), expiresAt: typeof data.expires_at === "string" ? data.expires_at : null });
  } else if (type === "approval_decided" || type === "answer") {
    open.delete(id);
  }
}
