/**
 * A task's timeline: one DOM entry per durable event (`li.entry[data-seq]`), appended as frames
 * come, never re-rendered. Frames are queued and drawn once per animation frame (a timer stands
 * in when the tab is hidden and animation frames stop), so thousands of events — and a model
 * typing hundreds of deltas a second — cost one DOM update per frame drawn. Deltas type into a
 * live entry (`li.typing`) that the step's durable event replaces. Every text goes in as text.
 */
import { append, h, setText } from "./dom.ts";
import { compact, cost, json, time, tokens } from "./format.ts";

/** Frames the timeline draws (the watch's frames, loosely typed: unknown event types are shown as they are). */
export type TimelineFrame =
  | { type: "step"; seq: number; data: { event_type: string; step: number; data: unknown; timestamp: string } }
  | { type: "result"; seq: number; data: ResultData }
  | { type: "delta"; step: number; data: { kind: "text" | "reasoning"; text: string } }
  | { type: "resync"; data: { status: string; pruned_through: number; last_seq: number; output?: string | null; error?: TaskErrorData | null } }
  | { type: "notice"; level: "info" | "error"; text: string }
  /** The live stream was cut (a reconnect): text typed so far is dropped; the durable events hold it whole. */
  | { type: "typing_reset" };

interface TaskErrorData {
  code: string;
  message: string;
  retryable?: boolean;
}

interface ResultData {
  status: string;
  stop_reason: string;
  output?: string;
  total_steps?: number;
  total_tokens?: number;
  usage?: { input_tokens: number; output_tokens: number };
  cost_usd?: number;
  error?: TaskErrorData;
  output_json?: unknown;
}

/** What a person can do from the timeline (approvals and questions). Each resolves once the server stored it. */
export interface TimelineActions {
  approve(callId: string): Promise<void>;
  reject(callId: string, reason: string | undefined): Promise<void>;
  answer(callId: string, text: string): Promise<void>;
}

export interface Totals {
  steps: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number | null;
}

/** Texts longer than this are folded into a <details> (shown whole when opened: nothing is cut). */
const FOLD_CHARS = 2_000;

export class Timeline {
  readonly element: HTMLOListElement;
  /** The highest seq drawn or queued. */
  lastSeq = 0;
  /** Durable entries in the DOM. */
  entries = 0;
  readonly totals: Totals = { steps: 0, inputTokens: 0, outputTokens: 0, costUsd: null };

  private queue: TimelineFrame[] = [];
  private scheduled = false;
  private readonly typing = new Map<string, { entry: HTMLLIElement; text: Text }>();
  private readonly pendingCalls = new Map<string, HTMLLIElement>();
  private readonly openControls = new Map<string, HTMLElement>();
  private ended = false;

  constructor(
    private readonly actions: TimelineActions,
    private readonly scroller: HTMLElement,
    private readonly onDrawn: (timeline: Timeline) => void,
  ) {
    this.element = h("ol", { class: "timeline", attrs: { "aria-label": "Timeline", id: "timeline" } });
  }

  push(frame: TimelineFrame): void {
    if (frame.type === "step" || frame.type === "result") {
      if (frame.seq <= this.lastSeq) return; // already drawn (a watch restarted after a key prompt)
      this.lastSeq = frame.seq;
    } else if (frame.type === "resync") {
      this.lastSeq = Math.max(this.lastSeq, frame.data.pruned_through);
    }
    this.queue.push(frame);
    this.schedule();
  }

  /** Draws everything queued now (tests and teardown). */
  flush(): void {
    this.scheduled = false;
    if (this.queue.length === 0) return;
    const frames = this.queue;
    this.queue = [];
    const follow = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight < 48;
    // New entries go into a fragment and join the list once; typing entries already in the list
    // are updated in place.
    const fragment = document.createDocumentFragment();
    // Deltas of one batch are joined before they touch the DOM.
    let deltaKey: string | undefined;
    let deltaText = "";
    const flushDelta = () => {
      if (deltaKey === undefined) return;
      const [step, kind] = deltaKey.split(":") as [string, "text" | "reasoning"];
      this.typingEntry(Number(step), kind, fragment).text.appendData(deltaText);
      deltaKey = undefined;
      deltaText = "";
    };
    for (const frame of frames) {
      if (frame.type === "delta") {
        const key = `${frame.step}:${frame.data.kind}`;
        if (key !== deltaKey) flushDelta();
        deltaKey = key;
        deltaText += frame.data.text;
        continue;
      }
      flushDelta();
      this.draw(frame, fragment);
    }
    flushDelta();
    this.element.appendChild(fragment);
    if (follow) this.scroller.scrollTop = this.scroller.scrollHeight;
    this.onDrawn(this);
  }

  dispose(): void {
    this.queue = [];
    this.element.remove();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const run = () => {
      if (this.scheduled) this.flush();
    };
    requestAnimationFrame(run);
    // Hidden tabs get no animation frames: a timer keeps the timeline (and its counts) current.
    setTimeout(run, 250);
  }

  private typingEntry(step: number, kind: "text" | "reasoning", fragment: DocumentFragment): { entry: HTMLLIElement; text: Text } {
    const key = `${step}:${kind}`;
    let typing = this.typing.get(key);
    if (!typing) {
      const text = document.createTextNode("");
      const entry = h(
        "li",
        { class: `typing ${kind}`, attrs: { "data-step": step, "aria-busy": "true" } },
        h("div", { class: "meta" }, h("span", { class: "kind" }, kind === "reasoning" ? "thinking" : "typing"), h("span", { class: "step" }, `step ${step}`)),
        h("div", { class: "text" }, text, h("span", { class: "caret", attrs: { "aria-hidden": "true" } })),
      );
      fragment.appendChild(entry);
      typing = { entry, text };
      this.typing.set(key, typing);
    }
    return typing;
  }

  /** The durable text of a step arrived (or the task ended): its live typing entries go. */
  private endTyping(step?: number): void {
    for (const [key, typing] of this.typing) {
      if (step === undefined || key.startsWith(`${step}:`)) {
        typing.entry.remove();
        this.typing.delete(key);
      }
    }
  }

  private draw(frame: Exclude<TimelineFrame, { type: "delta" }>, into: DocumentFragment): void {
    switch (frame.type) {
      case "step":
        into.appendChild(this.stepEntry(frame.seq, frame.data));
        this.entries++;
        return;
      case "result":
        this.endTyping();
        this.ended = true;
        for (const controls of this.openControls.values()) this.closeControls(controls, "The task ended before this was decided.");
        this.openControls.clear();
        for (const call of this.pendingCalls.values()) call.classList.remove("pending");
        this.pendingCalls.clear();
        into.appendChild(this.resultEntry(frame.seq, frame.data));
        this.entries++;
        return;
      case "resync":
        into.appendChild(
          entry("resync", "notice", undefined, undefined, [
            h("p", {}, `Events 1–${frame.data.pruned_through} were pruned by retention; the task was ${frame.data.status} then.`),
          ]),
        );
        return;
      case "typing_reset":
        this.endTyping();
        return;
      case "notice":
        into.appendChild(entry(frame.level === "error" ? "error" : "notice", "notice", undefined, undefined, [h("p", {}, frame.text)]));
        return;
    }
  }

  private stepEntry(seq: number, event: { event_type: string; step: number; data: unknown; timestamp: string }): HTMLLIElement {
    const data = (event.data ?? {}) as Record<string, unknown>;
    const str = (value: unknown) => (typeof value === "string" ? value : value === undefined || value === null ? "" : String(value));
    const id = str(data.id);
    switch (event.event_type) {
      case "usage": {
        const input = Number(data.input_tokens) || 0;
        const output = Number(data.output_tokens) || 0;
        this.totals.steps = Math.max(this.totals.steps, event.step);
        this.totals.inputTokens += input;
        this.totals.outputTokens += output;
        return entry("usage", "usage", seq, event, [h("p", {}, `${tokens(input)} tokens in, ${tokens(output)} out`)]);
      }
      case "thought": {
        this.endTyping(event.step);
        const reasoning = str(data.reasoning);
        return entry("thought", "thought", seq, event, [
          reasoning ? h("details", { class: "reasoning" }, h("summary", {}, "reasoning"), h("p", { class: "text" }, reasoning)) : null,
          h("p", { class: "text" }, str(data.text)),
        ]);
      }
      case "tool_call": {
        const item = entry("tool_call", "tool call", seq, event, [h("p", {}, h("code", { class: "tool" }, str(data.name)), " ", h("span", { class: "id" }, id)), block("arguments", data.arguments)]);
        if (!this.ended) {
          item.classList.add("pending");
          this.pendingCalls.set(id, item);
        }
        return item;
      }
      case "tool_result": {
        this.settleCall(id);
        return entry("tool_result", "tool result", seq, event, [h("p", {}, h("code", { class: "tool" }, str(data.name)), " ", h("span", { class: "id" }, id)), block("result", data.result)]);
      }
      case "tool_error": {
        this.settleCall(id);
        const error = (data.error ?? {}) as Record<string, unknown>;
        return entry("tool_error", "tool error", seq, event, [
          h("p", {}, h("code", { class: "tool" }, str(data.name)), " ", h("span", { class: "id" }, id)),
          h("p", { class: "error-text" }, h("code", {}, str(error.code)), " ", str(error.message)),
        ]);
      }
      case "approval_requested": {
        const controls = this.ended ? null : this.approvalControls(id);
        return entry("approval", "approval needed", seq, event, [
          h("p", {}, h("code", { class: "tool" }, str(data.name)), " ", h("span", { class: "id" }, id), data.expires_at ? h("span", { class: "expires" }, ` · until ${time(str(data.expires_at))}`) : null),
          block("arguments", data.arguments),
          controls,
        ]);
      }
      case "approval_decided": {
        this.decided(id);
        const decision = str(data.decision);
        return entry(`decided ${decision}`, "decision", seq, event, [
          h("p", {}, h("strong", {}, decision), ` by ${str(data.by)}: `, h("code", { class: "tool" }, str(data.name)), data.reason ? ` — ${str(data.reason)}` : null),
        ]);
      }
      case "question": {
        const controls = this.ended ? null : this.answerControls(id);
        return entry("question", "question", seq, event, [h("p", { class: "text" }, str(data.question)), controls]);
      }
      case "answer": {
        this.decided(id);
        return entry("answer", "answer", seq, event, [
          h("p", {}, `by ${str(data.by)}: `, data.text === null ? h("em", {}, "no answer in time") : h("span", { class: "text" }, str(data.text))),
        ]);
      }
      case "user_input":
        return entry("user_input", "message", seq, event, [h("p", {}, `from ${str(data.by)}: `, h("span", { class: "text" }, str(data.text)))]);
      case "resumed":
        this.endTyping(); // the cut step is asked again: its text types anew
        return entry("resumed", "resumed", seq, event, [
          h("p", {}, `${str(data.reason)} · attempt ${str(data.attempt)}${data.node ? ` on ${str(data.node)}` : ""}`),
        ]);
      case "output_invalid":
        return entry("output_invalid", "invalid output", seq, event, [h("p", { class: "error-text" }, `attempt ${str(data.attempt)}: ${str(data.message)}`)]);
      default:
        return entry("other", event.event_type, seq, event, [block("data", event.data)]);
    }
  }

  private resultEntry(seq: number, data: ResultData): HTMLLIElement {
    const usage = data.usage;
    if (usage) {
      this.totals.inputTokens = usage.input_tokens;
      this.totals.outputTokens = usage.output_tokens;
    }
    if (data.total_steps !== undefined) this.totals.steps = data.total_steps;
    if (data.cost_usd !== undefined) this.totals.costUsd = data.cost_usd;
    const facts = [
      `${data.status} (${data.stop_reason})`,
      data.total_steps !== undefined ? `${data.total_steps} steps` : "",
      data.total_tokens !== undefined ? `${tokens(data.total_tokens)} tokens` : "",
      usage ? `${tokens(usage.input_tokens)} in / ${tokens(usage.output_tokens)} out` : "",
      data.cost_usd !== undefined ? cost(data.cost_usd) : "",
    ].filter(Boolean);
    return entry(`result ${data.status}`, "result", seq, undefined, [
      h("p", { class: "facts" }, facts.join(" · ")),
      data.output !== undefined ? h("div", { class: "output" }, fold(data.output, "p")) : null,
      data.output_json !== undefined && data.output_json !== null ? block("output_json", data.output_json) : null,
      data.error ? h("p", { class: "error-text" }, h("code", {}, data.error.code), " ", data.error.message) : null,
    ]);
  }

  private settleCall(id: string): void {
    this.pendingCalls.get(id)?.classList.remove("pending");
    this.pendingCalls.delete(id);
  }

  private decided(id: string): void {
    const controls = this.openControls.get(id);
    if (controls) this.closeControls(controls, "Decided.");
    this.openControls.delete(id);
  }

  private closeControls(controls: HTMLElement, text: string): void {
    controls.replaceChildren(h("p", { class: "muted" }, text));
    controls.classList.add("closed");
  }

  private approvalControls(callId: string): HTMLElement {
    const reasonId = `reason-${callId}`;
    const reason = h("input", { attrs: { id: reasonId, type: "text", name: "reason", maxlength: 2000, autocomplete: "off" } });
    const status = h("p", { class: "action-status", attrs: { role: "status" } });
    const approve = h("button", { class: "approve", attrs: { type: "button" } }, "Approve");
    const reject = h("button", { class: "reject", attrs: { type: "button" } }, "Reject");
    const run = async (action: () => Promise<void>) => {
      approve.disabled = reject.disabled = true;
      setText(status, "Sending…");
      try {
        await action();
        setText(status, "Sent; waiting for the task.");
      } catch (error) {
        approve.disabled = reject.disabled = false;
        setText(status, `Not sent: ${(error as Error).message}`);
      }
    };
    approve.addEventListener("click", () => void run(() => this.actions.approve(callId)));
    reject.addEventListener("click", () => void run(() => this.actions.reject(callId, reason.value.trim() || undefined)));
    const controls = h(
      "div",
      { class: "controls", attrs: { "data-call": callId } },
      h("div", { class: "row" }, approve, reject, h("label", { attrs: { for: reasonId } }, "Reason (optional)"), reason),
      status,
    );
    this.openControls.set(callId, controls);
    return controls;
  }

  private answerControls(callId: string): HTMLElement {
    const answerId = `answer-${callId}`;
    const text = h("textarea", { attrs: { id: answerId, name: "answer", rows: 2, maxlength: 32000, required: true } });
    const send = h("button", { attrs: { type: "submit" } }, "Answer");
    const status = h("p", { class: "action-status", attrs: { role: "status" } });
    const form = h("form", { class: "controls", attrs: { "data-call": callId } }, h("label", { attrs: { for: answerId } }, "Your answer"), text, h("div", { class: "row" }, send), status);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      send.disabled = true;
      setText(status, "Sending…");
      this.actions.answer(callId, text.value).then(
        () => setText(status, "Sent; waiting for the task."),
        (error: Error) => {
          send.disabled = false;
          setText(status, `Not sent: ${error.message}`);
        },
      );
    });
    this.openControls.set(callId, form);
    return form;
  }
}

function entry(
  kind: string,
  label: string,
  seq: number | undefined,
  event: { step: number; timestamp: string } | undefined,
  body: (HTMLElement | null)[],
): HTMLLIElement {
  const item = h(
    "li",
    { class: `entry ${kind}`, attrs: { "data-seq": seq, "data-kind": kind.split(" ")[0] } },
    h(
      "div",
      { class: "meta" },
      h("span", { class: "kind" }, label),
      event ? h("span", { class: "step" }, `step ${event.step}`) : null,
      seq !== undefined ? h("span", { class: "seq" }, `#${seq}`) : null,
      event ? h("time", { attrs: { datetime: event.timestamp } }, time(event.timestamp)) : null,
    ),
  );
  if (seq === undefined) item.classList.remove("entry"); // notices are not events: only durable frames count as entries
  append(item, ...body);
  return item;
}

/** A labelled block of JSON (or text). */
function block(label: string, value: unknown): HTMLElement {
  return h("div", { class: `block ${label}` }, h("span", { class: "label" }, label), fold(json(value), "pre"));
}

/** Long text folds (a summary of its start, the whole text inside) instead of being cut. */
function fold(text: string, tag: "pre" | "p"): HTMLElement {
  if (text.length <= FOLD_CHARS) return h(tag, { class: "text" }, text);
  return h("details", { class: "fold" }, h("summary", {}, `${compact(text, 100)} (${text.length.toLocaleString("en-US")} characters)`), h(tag, { class: "text" }, text));
}
