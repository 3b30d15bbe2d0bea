/**
 * Adapts an AI SDK language model (v4 provider contract) to our `ChatModel`: one model step per
 * `stream()` call, the engine in control.
 *
 * Why `doStream` and not `streamText`: `streamText` is a loop of its own — it parses and validates
 * tool input against schemas (and may repair or drop a call), retries with its own policy, and
 * turns failures into callbacks and stream parts. The engine already owns all of that: it wants the
 * model's raw argument text (bad JSON becomes a `tool_error` the model can read) and one HTTP
 * request per step. `doStream` is exactly that: the versioned provider contract, one request, tool
 * input as the raw string the model produced.
 *
 * Why retry around `doStream` rather than inside `fetch`: `doStream` settles once the response
 * headers arrived (and, for OpenAI and Anthropic, once the first event was checked for an error),
 * before any part reached us — so retrying it can never replay half a step. And its rejection is an
 * `APICallError` with the status, the headers (`Retry-After`) and the provider's message already
 * parsed, while the attempt count stays a local variable of this call.
 */
import type { JSONSchema7 } from "ai";
import { raceAbort, sleep as abortableSleep } from "../../lib/abort.ts";
import { backgroundSlice } from "../../lib/turn.ts";
import { TooManyToolCallsError, type ChatModel, type FinishReason, type ModelRequest, type ModelStreamPart } from "../model.ts";
import { ProviderError } from "./provider-error.ts";
import { toSdkPrompt, toSdkToolChoice, toSdkTools } from "./prompt-conversion.ts";
import { classifyRequestFailure, messageWithCauses, readStreamError, requestFailureError, streamErrorDetail } from "./request-failure.ts";
import { createRequestScope, type RequestScope } from "./request-scope.ts";
import { resolveRetryOptions, retryDelayMs, type RetryOptions } from "./retry-policy.ts";
import type { SdkCallOptions, SdkLanguageModel, SdkStreamPart } from "./sdk-types.ts";

type SdkProviderOptions = NonNullable<SdkCallOptions["providerOptions"]>;

/** Waits `ms`, rejecting with the signal's reason as soon as it aborts. Injectable for tests. */
export type Sleep = (ms: number, abortSignal: AbortSignal) => Promise<void>;

export const DEFAULT_REQUEST_TIMEOUT_MS = 120_000;

export interface AiSdkChatModelOptions {
  /** `provider/model`, e.g. `openai/gpt-4.1-mini`; prefixes every error message. */
  id: string;
  model: SdkLanguageModel;
  retry?: RetryOptions;
  /** Limit for one HTTP request, from sending it to the last byte of its stream. Default 120 s. */
  requestTimeoutMs?: number;
  sleep?: Sleep;
  /** Jitter source in [0, 1). Default `Math.random`. */
  random?: () => number;
  /**
   * The model is known not to reason (OpenAI's gpt-4.1…), and its provider refuses a reasoning
   * effort for it: the request's `reasoningEffort` is left out — unless the request's provider
   * options say `forceReasoning: true` (the AI SDK's "treat it as a reasoning model") — and
   * `unsentSettings` says so, for a warning at start-up.
   */
  reasoningUnsupported?: boolean;
}

/**
 * Wraps an AI SDK model as a `ChatModel`.
 * @example
 * const model = createAiSdkChatModel({
 *   id: "openai/gpt-4.1-mini",
 *   model: createOpenAI({ apiKey }).chat("gpt-4.1-mini"),
 * });
 */
export function createAiSdkChatModel(options: AiSdkChatModelOptions): ChatModel {
  const retry = resolveRetryOptions(options.retry);
  const timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const sleep = options.sleep ?? abortableSleep;
  const random = options.random ?? Math.random;
  const { id, model } = options;

  /** Opens the stream, retrying failures that happen before any part was delivered. */
  async function open(request: ModelRequest, callOptions: SdkCallOptions, firstAttempt = 1) {
    for (let attempt = firstAttempt; ; attempt++) {
      request.abortSignal.throwIfAborted();
      const scope = createRequestScope(request.abortSignal, timeoutMs);
      try {
        const result = await model.doStream({ ...callOptions, abortSignal: scope.signal });
        return { stream: result.stream, scope, attempt, contentType: result.response?.headers?.["content-type"] };
      } catch (error) {
        scope.dispose();
        if (request.abortSignal.aborted) throw request.abortSignal.reason;
        const failure = classifyRequestFailure(error, scope.timedOut);
        const delay =
          failure.retryable && attempt <= retry.maxRetries
            ? retryDelayMs({ retry: attempt, retryAfterMs: failure.retryAfterMs, policy: retry, random })
            : undefined;
        if (delay === undefined) throw requestFailureError({ modelId: id, failure, attempts: attempt, timeoutMs, cause: error });
        await sleep(delay, request.abortSignal);
      }
    }
  }

  /** Whether the request's reasoning effort stays out of the request (see `reasoningUnsupported`). */
  const dropsReasoningEffort = (request: Pick<ModelRequest, "reasoningEffort" | "providerOptions">): boolean =>
    options.reasoningUnsupported === true &&
    request.reasoningEffort !== undefined &&
    request.providerOptions?.[id.split("/")[0] ?? ""]?.forceReasoning !== true;

  return {
    id,
    unsentSettings(settings) {
      if (!dropsReasoningEffort(settings)) return [];
      const provider = id.split("/")[0];
      return [
        `reasoning_effort '${settings.reasoningEffort}' is not sent to ${id}: it is not a reasoning model, and the provider refuses the parameter for it ` +
          `(remove it, or set provider_options.${provider}.forceReasoning: true if the model does reason)`,
      ];
    },
    async *stream(request: ModelRequest): AsyncGenerator<ModelStreamPart> {
      const { reasoningEffort: _unsent, ...sent } = request;
      const callOptions = toSdkCallOptions(dropsReasoningEffort(request) ? sent : request);
      let nextAttempt = 1;
      for (;;) {
        const retryIn = yield* streamOnce(request, callOptions, nextAttempt);
        if (retryIn === undefined) return;
        await sleep(retryIn.delayMs, request.abortSignal);
        nextAttempt = retryIn.attempt + 1;
      }
    },
  };

  /**
   * One response: its parts, or — for a transient error the provider reported inside the stream
   * before any part was yielded (Anthropic sends `message_start`, then `overloaded_error`), or a
   * stream cut before then — when to ask again, while retries are left. A step that has yielded a
   * part is never asked again.
   */
  async function* streamOnce(
    request: ModelRequest,
    callOptions: SdkCallOptions,
    firstAttempt: number,
  ): AsyncGenerator<ModelStreamPart, { attempt: number; delayMs: number } | undefined> {
    const { stream, scope, attempt, contentType } = await open(request, callOptions, firstAttempt);
    const context = { id, timeoutMs, attempt };
    /** Whether a part went to the engine: from then on this step is never asked again. */
    let yielded = false;
    const reader = stream.getReader();
    let finish: Extract<SdkStreamPart, { type: "finish" }> | undefined;
    /** The SDK said the body ended without the provider's finish (OpenAI-compatible: an error part). */
    let endedWithoutFinish = false;
    let completed = false;
    /**
     * Whether anything came from the response's body: the SDK makes `stream-start` itself, and a
     * `finish` when the body ends without the provider's (with reason `interrupted` or `other`; the
     * OpenAI-compatible SDK, an `error` part before it: `isEndWithoutFinish`).
     */
    let heard = false;
    /** The step's tool calls so far (by id: a call's start and its end are one), when they are limited. */
    const calls = new Set<string>();
    const countCall = (callId: string) => {
      calls.add(callId);
      if (calls.size > request.maxToolCalls!) throw new TooManyToolCallsError(request.maxToolCalls!);
    };
    try {
      for (;;) {
        // A body already here is parsed in one chain of promises, however long: thousands of tool
        // calls (or one 10 MB argument in 64 KiB pieces) held the event loop for up to a second.
        // Read it in slices, giving the loop a turn between them.
        if (backgroundSlice.spent) await backgroundSlice.next();
        const next = await readPart(reader.read(), scope, request.abortSignal, context);
        if (next.done) break;
        const part = next.value;
        const sdkOwn = part.type === "stream-start" || part.type === "finish" || (part.type === "error" && isEndWithoutFinish(part.error));
        if (!sdkOwn) heard = true;
        switch (part.type) {
          case "text-delta":
            if (part.delta !== "") {
              yielded = true;
              yield { type: "text-delta", text: part.delta };
            }
            break;
          case "reasoning-delta":
            if (part.delta !== "") {
              yielded = true;
              yield { type: "reasoning-delta", text: part.delta };
            }
            break;
          case "tool-input-start":
            // A call begins (its arguments stream next; the SDK makes its `tool-call` when they end —
            // for OpenAI, at the reply's end): one too many stops the step now, unread past it.
            if (!part.providerExecuted && request.maxToolCalls !== undefined) countCall(part.id);
            break;
          case "tool-call":
            // Provider-executed calls (web search…) are the provider's business; we offer none.
            if (!part.providerExecuted) {
              if (request.maxToolCalls !== undefined) countCall(part.toolCallId);
              yielded = true;
              yield { type: "tool-call", call: { id: part.toolCallId, name: part.toolName, arguments: part.input } };
            }
            break;
          case "error":
            throwIfStopped(scope, request.abortSignal, context, part.error);
            // A chunk the SDK could not parse is a broken stream (a proxy's glitch, a cut line),
            // not something the provider said: it may well go through next time.
            if (isUnreadableChunk(part.error)) {
              throw new ProviderError({
                code: "stream_interrupted",
                modelId: id,
                message: `${id}: stream interrupted: the provider sent a chunk that cannot be read: ${streamErrorDetail(part.error).slice(0, 300)}`,
                retryable: true,
                attempts: attempt,
                cause: part.error,
              });
            }
            // The OpenAI-compatible provider (named endpoints, Ollama) reports a body that ended
            // without a finish reason as an error part of its own, then a finish: the stream was
            // cut, as OpenAI's and Anthropic's `interrupted` finish says. Handled with those below.
            if (isEndWithoutFinish(part.error)) {
              endedWithoutFinish = true;
              break;
            }
            {
              // Its `cause` carries the task's code (see readStreamError). Asked again only when
              // its type is transient and nothing of the step is out yet.
              const report = readStreamError(part.error);
              const delayMs = report.transient && !yielded && attempt <= retry.maxRetries
                ? retryDelayMs({ retry: attempt, retryAfterMs: undefined, policy: retry, random })
                : undefined;
              if (delayMs !== undefined) return { attempt, delayMs };
              throw new ProviderError({
                code: "stream_error",
                modelId: id,
                message: `${id}: provider error in stream${report.transient && !yielded && attempt > 1 ? ` after ${attempt} attempts` : ""}: ${report.detail}`,
                retryable: report.transient && !yielded,
                attempts: attempt,
                cause: report.cause,
              });
            }
          case "finish":
            finish = part;
            break;
          default:
            // Block boundaries, tool-input deltas, metadata, sources, pings: nothing the engine uses.
            break;
        }
      }
      if (!finish || endedWithoutFinish || finish.finishReason.unified === "interrupted") {
        throwIfStopped(scope, request.abortSignal, context, undefined);
        // Not a stream cut short but no stream at all: a web page (a wrong baseURL, a proxy's
        // login page) answered 200. Trying again gets the same page.
        if (!heard && contentType !== undefined && !/^\s*text\/event-stream\b/i.test(contentType)) {
          throw new ProviderError({
            code: "request_failed",
            modelId: id,
            message: `${id}: the provider's URL answered with ${oneLineOf(contentType)}, not an event stream: check the provider's baseURL`,
            retryable: false,
            attempts: attempt,
          });
        }
        throw new ProviderError({
          code: "stream_interrupted",
          modelId: id,
          message: `${id}: stream interrupted: the response ended before the provider signalled completion`,
          retryable: true,
          attempts: attempt,
        });
      }
      completed = true;
      yield {
        type: "finish",
        finishReason: toFinishReason(finish.finishReason.unified),
        usage: {
          inputTokens: finish.usage.inputTokens.total ?? 0,
          outputTokens: finish.usage.outputTokens.total ?? 0,
        },
      };
      return undefined;
    } catch (error) {
      // A stream cut before any of the step went out (the connection broke, the body ended with
      // nothing in it) is a network error before the output: asked again while retries are left.
      if (error instanceof ProviderError && error.code === "stream_interrupted" && !yielded && !request.abortSignal.aborted && attempt <= retry.maxRetries) {
        const delayMs = retryDelayMs({ retry: attempt, retryAfterMs: undefined, policy: retry, random });
        if (delayMs !== undefined) return { attempt, delayMs };
      }
      throw error;
    } finally {
      // Reached on success, on error, before a retry and when the consumer stops iterating early.
      // Unless it succeeded, the HTTP request may still be running: abort its signal, which the SDK
      // hands to `fetch` by contract, and cancel the reader, which reaches the socket only if every
      // stream wrapper of the provider forwards cancellation. Either alone closes it today.
      if (completed) scope.dispose();
      else scope.close();
      reader.cancel().catch(() => {
        // The stream already failed or was aborted; its error was handled (or is being thrown) above.
      });
    }
  }
}

/**
 * Our request → the SDK's call options (all but the abort signal). Settings the request leaves out
 * are left out here too, so the provider sends its own defaults (no `"temperature": null` on the wire).
 *
 * Reasoning effort goes in the provider contract's portable `reasoning` option, which each installed
 * provider maps itself: OpenAI to `reasoning_effort` (only for models its catalog says reason, and to
 * the nearest effort the model supports), Anthropic to a thinking budget or effort (by model),
 * OpenAI-compatible servers to `reasoning_effort`. A provider-specific setting the user gives in
 * `providerOptions` (`openai.reasoningEffort`, `anthropic.thinking`/`effort`…) wins over it, by the
 * SDK's own rule, so nothing needs merging here.
 */
export function toSdkCallOptions(request: ModelRequest): Omit<SdkCallOptions, "abortSignal"> {
  const tools = toSdkTools(request.tools);
  return {
    prompt: toSdkPrompt(request.system, request.messages),
    // Without tools a tool choice means nothing (and OpenAI rejects `tool_choice` without `tools`).
    ...(tools.length > 0 ? { tools, toolChoice: toSdkToolChoice(request.toolChoice ?? "auto") } : {}),
    ...(request.maxOutputTokens !== undefined ? { maxOutputTokens: request.maxOutputTokens } : {}),
    ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
    ...(request.topP !== undefined ? { topP: request.topP } : {}),
    ...(request.reasoningEffort !== undefined ? { reasoning: request.reasoningEffort } : {}),
    ...(request.responseFormat !== undefined
      ? { responseFormat: { type: "json" as const, schema: request.responseFormat.schema as JSONSchema7 } }
      : {}),
    ...(request.providerOptions !== undefined && Object.keys(request.providerOptions).length > 0
      ? // Config values are JSON (validated by the agent schema); the SDK types them as JSONObject.
        { providerOptions: request.providerOptions as SdkProviderOptions }
      : {}),
  };
}

/** Reads one part, turning transport failures into the right error: abort reason, timeout, or cut. */
async function readPart<Result>(
  pending: Promise<Result>,
  scope: RequestScope,
  taskSignal: AbortSignal,
  context: { id: string; timeoutMs: number; attempt: number },
): Promise<Result> {
  try {
    // Racing the scope's signal keeps abort prompt even if a stream layer is slow to propagate it.
    return await raceAbort(pending, scope.signal);
  } catch (error) {
    throwIfStopped(scope, taskSignal, context, error);
    if (error instanceof ProviderError) throw error;
    throw new ProviderError({
      code: "stream_interrupted",
      modelId: context.id,
      message: `${context.id}: stream interrupted: ${messageWithCauses(error)}`,
      retryable: true,
      attempts: context.attempt,
      cause: error,
    });
  }
}

/**
 * When the stream failed because we stopped it — the task aborted or the timeout fired — throws
 * that instead (the task's own reason, or a timeout error), whatever shape the SDK gave the failure.
 */
function throwIfStopped(
  scope: RequestScope,
  taskSignal: AbortSignal,
  context: { id: string; timeoutMs: number; attempt: number },
  cause: unknown,
): void {
  if (taskSignal.aborted) throw taskSignal.reason;
  if (scope.timedOut) {
    throw new ProviderError({
      code: "timeout",
      modelId: context.id,
      message: `${context.id}: the response did not complete within ${context.timeoutMs} ms`,
      retryable: true,
      attempts: context.attempt,
      cause,
    });
  }
}

function toFinishReason(unified: Extract<SdkStreamPart, { type: "finish" }>["finishReason"]["unified"]): FinishReason {
  switch (unified) {
    case "stop":
    case "length":
    case "tool-calls":
    case "error":
      return unified;
    default:
      // content-filter and other: the engine only distinguishes the reasons above.
      return "other";
  }
}

/** The AI SDK's own errors for a stream chunk that is not JSON, or not the shape the provider's API promises. */
function isUnreadableChunk(error: unknown): boolean {
  return error instanceof Error && (error.name === "AI_JSONParseError" || error.name === "AI_TypeValidationError");
}

/**
 * The OpenAI-compatible SDK's error part for a response body that ended before any chunk carried a
 * finish reason (`InvalidResponseDataError`, "Response stream ended without a finish reason."): not
 * the provider's word, a cut stream.
 */
function isEndWithoutFinish(error: unknown): boolean {
  return error instanceof Error && error.name === "AI_InvalidResponseDataError" && /ended without a finish reason/i.test(error.message);
}

/** A header value as one short line for a message. */
function oneLineOf(value: string): string {
  const line = value.replace(/\s+/g, " ").trim();
  return line.length > 100 ? `${line.slice(0, 100)}…` : line;
}
