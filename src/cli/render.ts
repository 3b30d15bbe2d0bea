/**
 * How `agentkit run` and `agentkit watch` show a task in the terminal: a function of the frames a
 * watch yields, kept free of I/O so a test can feed it a scripted sequence and read the text.
 *
 * Two modes:
 * - **live** (stdout is a terminal): the text is typed as the `delta` frames bring it; the tool
 *   calls that have not ended are a *live region* under the text — one line each, with a spinner
 *   (`tick()` redraws it) — erased and redrawn around everything else that is printed, so each call
 *   ends as one permanent line `✓ name {args} → result` (or `✗ … → code: message`);
 * - **plain** (a pipe or a file): one line per event, no cursor movement, no spinner, no deltas
 *   (the durable `thought` and `result` carry the whole text).
 * Colour (ANSI SGR) is separate: the caller turns it on for a terminal without `NO_COLOR`.
 *
 * Text is never printed twice: what the deltas of a step typed is remembered, and the step's
 * durable `thought` (or the `result`'s output, for the final step) adds only what is missing — or,
 * when the typed text is not a prefix of it (a reconnect lost deltas), prints it whole on a line
 * of its own.
 */
import type { WatchFrame } from "../client/index.ts";

export interface RenderOptions {
  /** ANSI colours. */
  color: boolean;
  /** A terminal: type deltas, keep a live region of running tool calls with spinners. */
  live: boolean;
  /** The terminal's width (live lines are cut to it so the region can be erased exactly); default 100. */
  columns?: () => number;
  /**
   * Someone at the terminal is asked to approve, reject or answer (the caller prompts); when false
   * the line says how to decide elsewhere.
   */
  interactive?: boolean;
}

export interface Renderer {
  /** The text to write to stdout for one frame. */
  frame(frame: WatchFrame): string;
  /** One animation step of the spinners (live mode; empty when there is nothing to animate). */
  tick(): string;
  /** Erases the live region (before something else writes to the terminal: a prompt, stderr). */
  suspend(): string;
  /** Redraws the live region after `suspend()`. */
  resume(): string;
  /** Ends the output: the live region erased and the cursor at the start of a line. */
  end(): string;
}

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const ESC = "\u001b[";

interface PendingCall {
  name: string;
  arguments: unknown;
  /** Waiting for a person: an approval or an answer. */
  waiting?: "approval" | "answer";
}

/** Renders frames as text; see the module's header. */
export function createRenderer(options: RenderOptions): Renderer {
  const paint = palette(options.color);
  const columns = () => Math.max(20, options.columns?.() ?? 100);
  /** Text typed by deltas, per step, not yet settled by its `thought` or the `result`. */
  const typed = new Map<number, string>();
  const reasoningTyped = new Map<number, string>();
  /** The step whose typed text the result's output may complete (the final answer's step). */
  let lastTypedStep: number | undefined;
  /** Which kind of delta text is open on the current line, if any. */
  let openKind: "text" | "reasoning" | undefined;
  /** The cursor is not at the start of a line. */
  let lineOpen = false;
  const pending = new Map<string, PendingCall>();
  let regionLines = 0;
  let spin = 0;
  let connectedOnce = false;
  let ended = false;
  let taskId = "";

  /** Closes a partly typed line. */
  const newline = () => {
    if (!lineOpen) return "";
    lineOpen = false;
    openKind = undefined;
    return options.color ? `${ESC}0m\n` : "\n";
  };

  const erase = () => {
    if (regionLines === 0) return "";
    const text = `${ESC}${regionLines}F${ESC}J`;
    regionLines = 0;
    return text;
  };

  const draw = () => {
    if (!options.live || lineOpen || ended) return "";
    const lines: string[] = [];
    const glyph = SPINNER[spin % SPINNER.length]!;
    for (const call of pending.values()) {
      // Cut to the width, so that no line wraps and the region can be erased by its line count.
      const waiting = call.waiting === "approval" ? " waiting for approval" : call.waiting === "answer" ? " waiting for an answer" : "";
      const label = fit(`${call.name} ${compact(call.arguments)}`, columns() - 3 - waiting.length);
      if (call.waiting) lines.push(`${paint.yellow(call.waiting === "approval" ? "⏸" : "?")} ${label}${paint.yellow(waiting)}`);
      else lines.push(`${paint.cyan(glyph)} ${label}`);
    }
    if (lines.length === 0 && connectedOnce) lines.push(paint.dim(`${glyph} working…`));
    regionLines = lines.length;
    return lines.map((line) => `${line}\n`).join("");
  };

  /** Permanent output: erase the region, print, redraw. */
  const print = (text: string) => {
    if (!options.live) return text;
    return erase() + text + draw();
  };
  const line = (text: string) => print(newline() + text + "\n");

  /** What deltas typed for `step`, completed to `full` (or `full` on its own line when they differ). */
  const settle = (step: number | undefined, full: string): string => {
    const already = step === undefined ? undefined : typed.get(step);
    if (step !== undefined) typed.delete(step);
    if (step !== undefined && step === lastTypedStep) lastTypedStep = undefined;
    if (already !== undefined && full.startsWith(already) && openKind !== "reasoning") {
      const rest = full.slice(already.length);
      const close = lineOpen || rest !== "" ? "\n" : "";
      lineOpen = false;
      openKind = undefined;
      return print(rest + close);
    }
    return line(full);
  };

  const settleReasoning = (step: number, reasoning: string | undefined): string => {
    const already = reasoningTyped.get(step);
    reasoningTyped.delete(step);
    if (!reasoning || already !== undefined) return "";
    return line(paint.dim(`thinking: ${reasoning}`));
  };

  const step = (frame: Extract<WatchFrame, { type: "step" }>): string => {
    const { event_type: type, step: number } = frame.data;
    const data = (frame.data.data ?? {}) as Record<string, unknown>;
    switch (type) {
      case "usage":
        return "";
      case "thought": {
        const reasoning = settleReasoning(number, typeof data.reasoning === "string" ? data.reasoning : undefined);
        const text = typeof data.text === "string" ? data.text : "";
        return reasoning + (text === "" && !typed.has(number) ? "" : settle(number, text));
      }
      case "tool_call": {
        const call = { name: String(data.name), arguments: data.arguments };
        pending.set(String(data.id), call);
        // Live: the region shows it with a spinner; plain: a line now, and one when it ends.
        return options.live ? print(newline()) : line(`${paint.cyan("→")} ${call.name} ${fit(compact(call.arguments), 200)}`);
      }
      case "tool_result": {
        const call = pending.get(String(data.id));
        pending.delete(String(data.id));
        const label = options.live ? `${String(data.name)} ${fit(compact(call?.arguments), Math.max(20, columns() / 2))}` : String(data.name);
        return line(`${paint.green("✓")} ${label} ${paint.dim("→")} ${fit(short(data.result), 200)}`);
      }
      case "tool_error": {
        const call = pending.get(String(data.id));
        pending.delete(String(data.id));
        const error = (data.error ?? {}) as { code?: string; message?: string };
        const label = options.live ? `${String(data.name)} ${fit(compact(call?.arguments), Math.max(20, columns() / 2))}` : String(data.name);
        return line(`${paint.red("✗")} ${label} ${paint.dim("→")} ${paint.red(`${error.code ?? "error"}: ${fit(oneLine(error.message ?? ""), 200)}`)}`);
      }
      case "approval_requested": {
        const id = String(data.id);
        const call = pending.get(id) ?? { name: String(data.name), arguments: data.arguments };
        pending.set(id, { ...call, waiting: "approval" });
        const until = typeof data.expires_at === "string" ? `, until ${data.expires_at}` : "";
        const how = options.interactive ? "" : paint.dim(` — decide with POST /tasks/${taskId || "<id>"}/approvals {"call_id":"${id}","decision":"approve"|"reject"}`);
        return line(`${paint.yellow("⏸ approval needed:")} ${String(data.name)} ${fit(compact(data.arguments), 200)} ${paint.dim(`(call ${id}${until})`)}${how}`);
      }
      case "approval_decided": {
        const id = String(data.id);
        const decision = String(data.decision);
        const call = pending.get(id);
        if (call) pending.set(id, { name: call.name, arguments: call.arguments });
        const reason = typeof data.reason === "string" && data.reason ? `: ${data.reason}` : "";
        const text = `${decision} ${String(data.name)} (by ${String(data.by)}${reason})`;
        return line(decision === "approved" ? `${paint.green("✓")} ${text}` : `${paint.red("✗")} ${text}`);
      }
      case "question": {
        const id = String(data.id);
        const call = pending.get(id) ?? { name: String(data.name), arguments: {} };
        pending.set(id, { ...call, waiting: "answer" });
        const how = options.interactive ? "" : paint.dim(` — answer with POST /tasks/${taskId || "<id>"}/answers {"call_id":"${id}","text":"…"}`);
        return line(`${paint.yellow("? the agent asks:")} ${paint.bold(String(data.question))} ${paint.dim(`(call ${id})`)}${how}`);
      }
      case "answer": {
        const call = pending.get(String(data.id));
        if (call) pending.set(String(data.id), { name: call.name, arguments: call.arguments });
        const text = data.text === null ? paint.dim("no answer in time") : String(data.text);
        return line(`${paint.dim("↳")} answered by ${String(data.by)}: ${text}`);
      }
      case "user_input":
        return line(`${paint.magenta("»")} ${String(data.by)}: ${String(data.text)}`);
      case "resumed":
        return line(paint.dim(`↻ resumed (${String(data.reason)}, attempt ${String(data.attempt)}${data.node ? ` on ${String(data.node)}` : ""})`));
      case "output_invalid":
        return line(paint.yellow(`! ${data.kind === undefined ? "the answer did not match the output schema" : "the answer was sent back"} (attempt ${String(data.attempt)}): ${oneLine(String(data.message))}`));
      default:
        return line(paint.dim(`· ${type}`));
    }
  };

  return {
    frame(frame) {
      switch (frame.type) {
        case "connected": {
          taskId = frame.task_id;
          if (connectedOnce) return "";
          connectedOnce = true;
          return line(paint.dim(`task ${frame.task_id} · ${frame.status}`));
        }
        case "delta": {
          if (!options.live) return "";
          const { kind, text } = frame.data;
          const map = kind === "text" ? typed : reasoningTyped;
          map.set(frame.step, (map.get(frame.step) ?? "") + text);
          let out = erase();
          if (openKind !== kind) {
            out += newline();
            if (kind === "reasoning") out += paint.dimOpen("thinking: ");
          }
          if (kind === "text") lastTypedStep = frame.step;
          openKind = kind;
          out += kind === "reasoning" && options.color ? paint.dimOpen(text) : text;
          lineOpen = !text.endsWith("\n");
          if (!lineOpen) {
            openKind = undefined;
            out += draw();
          }
          return out;
        }
        case "step":
          return step(frame);
        case "result": {
          const data = frame.data;
          pending.clear();
          ended = true;
          let out = "";
          if (typeof data.output === "string" && data.output !== "") out += settle(lastTypedStep, data.output);
          else out += print(newline());
          out += erase();
          out += summary(data, paint) + "\n";
          return out;
        }
        case "resync":
          return line(paint.dim(`… events through seq ${frame.data.pruned_through} were pruned; the task is ${frame.data.status}`));
        case "reconnecting":
          return line(paint.yellow(`reconnecting (attempt ${frame.attempt}, in ${frame.delay_ms} ms): ${frame.reason}`));
        case "error":
          return line(paint.red(`error: ${frame.data.message}${frame.data.code ? ` (${frame.data.code})` : ""}`));
        default:
          return "";
      }
    },
    tick() {
      if (!options.live || regionLines === 0) return "";
      spin++;
      return erase() + draw();
    },
    suspend() {
      return erase() + newline();
    },
    resume() {
      return regionLines === 0 ? draw() : "";
    },
    end() {
      ended = true;
      return erase() + newline();
    },
  };
}

type Paint = ReturnType<typeof palette>;

function palette(color: boolean) {
  const wrap = (open: number, close: number) => (text: string) => (color ? `${ESC}${open}m${text}${ESC}${close}m` : text);
  return {
    bold: wrap(1, 22),
    dim: wrap(2, 22),
    red: wrap(31, 39),
    green: wrap(32, 39),
    yellow: wrap(33, 39),
    magenta: wrap(35, 39),
    cyan: wrap(36, 39),
    /** Dim without closing (typed reasoning; the line's end resets). */
    dimOpen: (text: string) => (color ? `${ESC}2m${text}` : text),
  };
}

/** `completed · 2 steps · 92 tokens (62 in, 30 out) · $0.000123` */
export function summary(data: Extract<WatchFrame, { type: "result" }>["data"], paint: Paint = palette(false)): string {
  const parts: string[] = [];
  switch (data.status) {
    case "completed":
      parts.push(paint.green(`✓ ${data.status}`));
      break;
    case "cancelled":
      parts.push(paint.yellow(`■ ${data.status}`));
      break;
    default: {
      const why = data.error ? `: ${data.error.code}: ${oneLine(data.error.message)}` : data.stop_reason ? ` (${data.stop_reason})` : "";
      parts.push(paint.red(`✗ ${data.status}${why}`));
    }
  }
  if (data.total_steps !== undefined) parts.push(`${data.total_steps} step${data.total_steps === 1 ? "" : "s"}`);
  if (data.total_tokens !== undefined) {
    const usage = data.usage ? ` (${data.usage.input_tokens} in, ${data.usage.output_tokens} out)` : "";
    parts.push(`${data.total_tokens} tokens${usage}`);
  }
  if (data.cost_usd !== undefined) parts.push(`$${formatCost(data.cost_usd)}`);
  return parts.join(paint.dim(" · "));
}

function formatCost(usd: number): string {
  if (usd === 0) return "0";
  if (usd >= 0.01) return usd.toFixed(4);
  return usd.toPrecision(3);
}

/** Compact JSON on one line. */
function compact(value: unknown): string {
  if (value === undefined) return "";
  try {
    return oneLine(JSON.stringify(value) ?? String(value));
  } catch {
    return String(value);
  }
}

/** A tool's result in a few words: a string as it is, else compact JSON. */
function short(value: unknown): string {
  return typeof value === "string" ? oneLine(value) : compact(value);
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ⏎ ");
}

/** Cuts to `width` characters (code points), with an ellipsis. */
export function fit(text: string, width: number): string {
  const chars = [...text];
  if (chars.length <= width) return text;
  return `${chars.slice(0, Math.max(1, width - 1)).join("")}…`;
}

/** Renders a whole frame sequence (tests, and replays to a file). */
export function renderFrames(frames: Iterable<WatchFrame>, options: RenderOptions): string {
  const renderer = createRenderer(options);
  let out = "";
  for (const frame of frames) out += renderer.frame(frame);
  return out + renderer.end();
}
