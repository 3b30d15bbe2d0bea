/**
 * Tool execution phase of a ReAct step: look up, validate, run with a deadline, and turn every
 * failure into an observation the model can read (`toolErrorPolicy`).
 */
import { z } from "zod";
import { raceAbort } from "../lib/abort.ts";
import { errorMessage } from "../errors.ts";
import { MAX_ARGUMENT_DEPTH, nestsTooDeep } from "../protocol/limits.ts";
import type { ToolCallRequest } from "../llm/model.ts";
import { ToolError, type Tool, type ToolContext } from "../tools/tool.ts";

export type ToolOutcome =
  /** `text`: the observation the model reads, when already made (`observationText` makes it otherwise). */
  | { ok: true; call: ToolCallRequest; result: unknown; text?: string }
  | { ok: false; call: ToolCallRequest; error: { code: string; message: string; retryable: boolean } };

export interface ExecuteToolOptions {
  tools: ReadonlyMap<string, Tool>;
  timeoutMs: number;
  /** The task's signal: when it aborts, the task stops — that is not a tool error. */
  abortSignal: AbortSignal;
  /** The task's id, passed on to the tool (`ToolContext.taskId`). */
  taskId?: string;
  /** Told of every call once it settled (telemetry): how long it took and, if it failed, its error code (`aborted` for the task's abort). */
  onToolCall?: (call: ToolCallTiming) => void;
  /** A result longer than this as text is cut to it (see `boundedResult`); default DEFAULT_TOOL_RESULT_MAX_CHARS. */
  maxResultChars?: number;
}

/** The agent's `tool_result_max_chars` when it sets none. */
export const DEFAULT_TOOL_RESULT_MAX_CHARS = 200_000;

/** What `onToolCall` is told. */
export interface ToolCallTiming {
  id: string;
  name: string;
  /** False when no tool has that name. */
  known: boolean;
  /** Epoch ms when the call began. */
  startedAt: number;
  durationMs: number;
  error?: string;
}

/** Parses the model's raw argument text; empty text means "no arguments". */
export function parseToolArguments(text: string): unknown {
  if (text.trim() === "") return {};
  if (nestsTooDeep(text)) throw new ToolError("invalid_arguments", `Arguments nest deeper than ${MAX_ARGUMENT_DEPTH} levels`, true);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ToolError("invalid_arguments", `Arguments are not valid JSON: ${errorMessage(error)}`, true);
  }
}

/**
 * Runs one tool call. Resolves with a result or a tool error; rejects only when the task itself was
 * aborted (cancel or deadline), which ends the run.
 */
export async function executeToolCall(call: ToolCallRequest, options: ExecuteToolOptions): Promise<ToolOutcome> {
  return startToolCall(call, options);
}

/**
 * `executeToolCall` without a promise when the call settles at once (a pure tool's `async execute`
 * that never awaits, an unknown tool, bad arguments): the outcome itself. The engine's loop then
 * takes it without a promise hop per layer. Still running: a promise, as `executeToolCall`'s. Throws
 * (or rejects) only when the task was aborted.
 */
export function startToolCall(call: ToolCallRequest, options: ExecuteToolOptions): ToolOutcome | Promise<ToolOutcome> {
  const observe = options.onToolCall;
  if (!observe) return runToolCall(call, options);
  const started = performance.now();
  const report = (error: string) => {
    const durationMs = performance.now() - started;
    observe({ id: call.id, name: call.name, known: options.tools.has(call.name), startedAt: performance.timeOrigin + started, durationMs, error: error || undefined });
  };
  let outcome: ToolOutcome | Promise<ToolOutcome>;
  try {
    outcome = runToolCall(call, options);
  } catch (error) {
    report("aborted");
    throw error;
  }
  if (!(outcome instanceof Promise)) {
    report(outcome.ok ? "" : outcome.error.code);
    return outcome;
  }
  return outcome.then(
    (settled) => {
      report(settled.ok ? "" : settled.error.code);
      return settled;
    },
    (error: unknown) => {
      report("aborted");
      throw error;
    },
  );
}

function runToolCall(call: ToolCallRequest, options: ExecuteToolOptions): ToolOutcome | Promise<ToolOutcome> {
  const limit = new CallLimit(options.abortSignal, options.timeoutMs);
  try {
    const tool = options.tools.get(call.name);
    if (!tool) {
      const known = [...options.tools.keys()].join(", ") || "none";
      throw new ToolError("unknown_tool", `Unknown tool '${call.name}'. Available tools: ${known}`, true);
    }
    const parsed = tool.inputSchema.safeParse(parseToolArguments(call.arguments));
    if (!parsed.success) {
      throw new ToolError("invalid_arguments", `Invalid arguments for '${call.name}': ${z.prettifyError(parsed.error)}`, true);
    }
    const pending = tool.execute(parsed.data, limit.context(options.taskId));
    // A tool that already finished (the common case for pure functions) needs no timer, no race and
    // no promise: its result is taken now. One still running is raced with the call's signal, so a
    // tool that ignores it cannot hold the task; so is another kind of thenable (made a promise
    // first: `Bun.peek` takes any non-promise for a value, and it would be awaited with no bound).
    if (pending instanceof Promise ? Bun.peek.status(pending) === "fulfilled" : !isThenable(pending)) {
      return boundedResult(call, Bun.peek(pending), options.maxResultChars ?? DEFAULT_TOOL_RESULT_MAX_CHARS);
    }
    return settleToolCall(call, options, limit, pending instanceof Promise ? pending : Promise.resolve(pending));
  } catch (error) {
    return failedOutcome(error, call, options, limit);
  }
}

async function settleToolCall(call: ToolCallRequest, options: ExecuteToolOptions, limit: CallLimit, pending: Promise<unknown>): Promise<ToolOutcome> {
  try {
    const result = Bun.peek.status(pending) === "pending" ? await raceAbort(pending, limit.signal) : await pending;
    return boundedResult(call, result, options.maxResultChars ?? DEFAULT_TOOL_RESULT_MAX_CHARS);
  } catch (error) {
    return failedOutcome(error, call, options, limit);
  }
}

const isThenable = (value: unknown): boolean =>
  (typeof value === "object" || typeof value === "function") && value !== null && typeof (value as { then?: unknown }).then === "function";

/** A failed call's outcome (`toolErrorPolicy`); throws the task's abort reason when the task was aborted. */
function failedOutcome(error: unknown, call: ToolCallRequest, options: ExecuteToolOptions, limit: CallLimit): ToolOutcome {
  if (options.abortSignal.aborted) throw options.abortSignal.reason;
  const failure = toolErrorPolicy(error, call, limit.timedOut, options.timeoutMs);
  // An error's message is bounded like a result (an MCP error result is all of its text).
  const maxChars = options.maxResultChars ?? DEFAULT_TOOL_RESULT_MAX_CHARS;
  return { ok: false, call, error: failure.message.length > maxChars ? { ...failure, message: cutText(failure.message, maxChars) } : failure };
}

/**
 * A tool's result as the model will read it (a string as is, anything else as JSON), made once. A
 * result longer than `maxChars` becomes that text cut to `maxChars`, with a line saying how long it
 * was: a tool (an MCP server's, a module's) cannot put an unbounded observation into the task's log,
 * every watcher's stream and the model's next request. A result that is not JSON (a cycle, a
 * BigInt) is the tool's error, not a crash of the run.
 */
function boundedResult(call: ToolCallRequest, result: unknown, maxChars: number): ToolOutcome {
  let text: string | undefined;
  try {
    text = typeof result === "string" ? result : JSON.stringify(result ?? null);
  } catch (error) {
    throw new ToolError("execution_failed", `Tool '${call.name}' returned a result that cannot be written as JSON: ${errorMessage(error)}`, false);
  }
  if (text === undefined) return { ok: true, call, result: null, text: "null" }; // a function or a symbol: nothing JSON holds
  if (text.length <= maxChars) return { ok: true, call, result, text };
  const cut = cutText(text, maxChars);
  return { ok: true, call, result: cut, text: cut };
}

/** `text` cut to at most `maxChars` (never between the halves of a surrogate pair), with a line saying so. */
function cutText(text: string, maxChars: number): string {
  const high = text.charCodeAt(maxChars - 1);
  const end = high >= 0xd800 && high <= 0xdbff ? maxChars - 1 : maxChars;
  return `${text.slice(0, end)}\n[truncated: the result is ${text.length} characters; the first ${end} are shown]`;
}

/**
 * One call's abort signal — the task's signal or the per-call timeout, whichever fires first —
 * made on first use: building it costs a timer and listeners on every call, which showed up as ~10%
 * of an instant task's CPU, while a pure tool never looks at it. The timeout still counts from the
 * call's start.
 */
class CallLimit {
  readonly #started = performance.now();
  #timeout: AbortSignal | undefined;
  #signal: AbortSignal | undefined;

  constructor(
    readonly taskSignal: AbortSignal,
    readonly timeoutMs: number,
  ) {}

  get signal(): AbortSignal {
    if (!this.#signal) {
      const left = Math.max(0, Math.ceil(this.timeoutMs - (performance.now() - this.#started)));
      this.#timeout = AbortSignal.timeout(left);
      this.#signal = AbortSignal.any([this.taskSignal, this.#timeout]);
    }
    return this.#signal;
  }

  get timedOut(): boolean {
    return this.#timeout?.aborted === true;
  }

  /** What the tool receives: `abortSignal` is made when the tool first reads it. */
  context(taskId: string | undefined): ToolContext {
    const limit = this;
    return {
      get abortSignal() {
        return limit.signal;
      },
      taskId,
      timeoutMs: this.timeoutMs,
    };
  }
}

/**
 * The one place that decides what a failed tool call looks like to the model: a code, a message it
 * can act on, and whether trying again may help.
 */
export function toolErrorPolicy(
  error: unknown,
  call: ToolCallRequest,
  timedOut: boolean,
  timeoutMs: number,
): { code: string; message: string; retryable: boolean } {
  if (timedOut) {
    return { code: "timeout", message: `Tool '${call.name}' did not finish within ${timeoutMs} ms`, retryable: true };
  }
  if (error instanceof ToolError) return { code: error.code, message: error.message, retryable: error.retryable };
  return { code: "execution_failed", message: `Tool '${call.name}' failed: ${errorMessage(error)}`, retryable: false };
}

/** What the model is told about an announced call that was never settled (see `interruptedOutcome`). */
export const INTERRUPTED_MESSAGE = "interrupted before it finished (the server running this task stopped); not run again";

/**
 * The outcome of a call that was announced (its `tool_call` stored) but has no stored result when
 * the task resumes, and whose tool is not idempotent: it may or may not have had its effect, so it
 * is not run again and the model is told so.
 */
export function interruptedOutcome(call: ToolCallRequest): ToolOutcome {
  return { ok: false, call, error: { code: "interrupted", message: INTERRUPTED_MESSAGE, retryable: false } };
}

/**
 * Whether an interrupted call of `name` may be run again: the tool says it is idempotent, or the
 * agent lists it in `idempotent_tools`.
 */
export function isIdempotentTool(name: string, tools: ReadonlyMap<string, Tool>, idempotentTools: readonly string[] = []): boolean {
  return tools.get(name)?.idempotent === true || idempotentTools.includes(name);
}

/** What the model reads back as the tool's observation. */
export function observationText(outcome: ToolOutcome): string {
  if (!outcome.ok) return `Error (${outcome.error.code}): ${outcome.error.message}`;
  if (outcome.text !== undefined) return outcome.text;
  return typeof outcome.result === "string" ? outcome.result : JSON.stringify(outcome.result ?? null);
}

/** What a person (or a wait's timeout) decided about a call that waited for them. */
export type CallDecision =
  | { kind: "approved"; by: string }
  | { kind: "rejected"; by: string; reason?: string }
  /** Nobody decided the approval in time (and the agent's timeout outcome is `reject`). */
  | { kind: "timed_out" }
  /** The answer to a question; `text` null when nobody answered in time. */
  | { kind: "answered"; by: string; text: string | null };

/**
 * The outcome of a call a person decided without it running: a rejection (or a timeout) is a
 * `tool_error` the model reads and can act on; an answer is the question tool's result.
 */
export function decidedOutcome(call: ToolCallRequest, decision: Exclude<CallDecision, { kind: "approved" }>): ToolOutcome {
  switch (decision.kind) {
    case "rejected":
      return {
        ok: false,
        call,
        error: {
          code: "rejected",
          message: `The user rejected this call to '${call.name}'${decision.reason ? `: ${decision.reason}` : ""}`,
          retryable: false,
        },
      };
    case "timed_out":
      return { ok: false, call, error: { code: "approval_timeout", message: `Nobody approved this call to '${call.name}' in time`, retryable: false } };
    case "answered":
      return decision.text === null
        ? { ok: false, call, error: { code: "no_answer", message: "The user did not answer in time", retryable: false } }
        : { ok: true, call, result: decision.text };
  }
}
