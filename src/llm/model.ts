/**
 * The model seam: one streaming call per ReAct step. The engine owns the loop; a model only turns
 * a conversation (plus tool specs) into text, reasoning, tool calls and usage for one step.
 * Provider adapters (the AI SDK's, in a later issue) and the built-in demo model implement it.
 */

export type ChatMessage =
  | { role: "user"; content: string }
  | { role: "assistant"; content: string; toolCalls?: ToolCallRequest[] }
  | { role: "tool"; toolCallId: string; toolName: string; content: string; isError: boolean };

/** A tool call as the model asked for it; `arguments` is the raw JSON text the model produced. */
export interface ToolCallRequest {
  id: string;
  name: string;
  arguments: string;
}

/** What a model is told about a tool: name, description and a JSON Schema of its input. */
export interface ToolSpec {
  name: string;
  description: string;
  inputSchema: Record<string, unknown>;
}

export interface ModelRequest {
  system?: string;
  messages: readonly ChatMessage[];
  tools: readonly ToolSpec[];
  maxOutputTokens?: number;
  /**
   * The most tool calls the step may make: a model that streams one more fails with
   * `TooManyToolCallsError` as soon as that call begins, the rest of its reply unread. Absent: no limit.
   */
  maxToolCalls?: number;
  /** Sampling temperature (0..2). Absent: the provider's default. */
  temperature?: number;
  /** Nucleus sampling (0..1). Absent: the provider's default. */
  topP?: number;
  /** Whether (and which) tool the model must call. Absent: `auto` when tools are offered. Ignored without tools. */
  toolChoice?: ModelToolChoice;
  /** How hard a reasoning model thinks. Each provider maps it onto its own setting (or warns and ignores it). */
  reasoningEffort?: ReasoningEffort;
  /** Provider-specific options keyed by provider name (`{ openai: {…} }`), passed through untouched. */
  providerOptions?: Record<string, Record<string, unknown>>;
  /**
   * Ask for a JSON answer matching `schema` (the provider's structured-output mode). Meant for a step
   * where no tools are offered; providers may treat it as a hint only, so the answer is still validated.
   */
  responseFormat?: { type: "json"; schema: Record<string, unknown> };
  abortSignal: AbortSignal;
}

export type ModelToolChoice = "auto" | "required" | "none" | { type: "tool"; toolName: string };

export type ReasoningEffort = "minimal" | "low" | "medium" | "high";

export type FinishReason = "stop" | "tool-calls" | "length" | "error" | "other";

export type ModelStreamPart =
  | { type: "text-delta"; text: string }
  | { type: "reasoning-delta"; text: string }
  | { type: "tool-call"; call: ToolCallRequest }
  | { type: "finish"; finishReason: FinishReason; usage: { inputTokens: number; outputTokens: number } };

/**
 * A model step asked for more tool calls than the agent allows (`maxToolCalls`, the agent's
 * `max_tool_calls_per_step`): the task fails (code `too_many_tool_calls`). A model that loops, or a
 * provider that sends garbage, can put tens of thousands of calls in one reply; each would be
 * stored twice, run, and sent back to the model in the next request (50,000 calculator calls held
 * the server's event loop ~0.5–0.9 s and added ~180 MB to its memory).
 */
export class TooManyToolCallsError extends Error {
  constructor(readonly limit: number) {
    super(`The model asked for more than ${limit} tool calls in one step (the agent's max_tool_calls_per_step): none of them was run`);
    this.name = "TooManyToolCallsError";
  }
}

export interface ChatModel {
  /** `provider/model`, e.g. `demo/react` or `openai/gpt-4.1-mini`. */
  readonly id: string;
  /**
   * Streams one step. Must stop promptly, rejecting with the signal's reason, when `abortSignal` aborts.
   * A model whose step is known at once (a local, instant one) may return a `readyStream`.
   */
  stream(request: ModelRequest): AsyncIterable<ModelStreamPart>;
  /**
   * The settings of `settings` this model leaves out of its requests, one sentence each, for a
   * warning at start-up (e.g. `reasoning_effort` on a model known not to reason). Absent: none.
   */
  unsentSettings?(settings: Pick<ModelRequest, "reasoningEffort" | "providerOptions">): string[];
}

/** A model stream that is also a plain `Iterable`: its parts are all there once it is read. */
export type ReadyStream = AsyncIterable<ModelStreamPart> & Iterable<ModelStreamPart>;

/**
 * A stream whose parts `read` makes, all at once, when the stream is read (what it throws, the stream
 * throws). The engine reads it as an `Iterable`, without a promise and an await per part, which is
 * most of what a step of an instant model costs; read as an `AsyncIterable`, it gives the same parts.
 */
export function readyStream(read: () => Iterable<ModelStreamPart>): ReadyStream {
  return new Ready(read);
}

class Ready implements ReadyStream {
  constructor(private readonly read: () => Iterable<ModelStreamPart>) {}

  [Symbol.iterator](): Iterator<ModelStreamPart> {
    return this.read()[Symbol.iterator]();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ModelStreamPart> {
    yield* this.read();
  }
}

/** Whether a model's stream is a `ReadyStream` (read without awaiting). */
export function isReadyStream(stream: AsyncIterable<ModelStreamPart>): stream is ReadyStream {
  return Symbol.iterator in stream;
}
