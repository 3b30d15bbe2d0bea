/**
 * Reads what the AI SDK threw (usually an `APICallError`) into the fields our retry loop and our
 * `ProviderError` need: status, whether to retry, the provider's `Retry-After`, and the provider's
 * own message — and builds the final, human-readable error once retries are exhausted.
 */
import { APICallError } from "ai";
import { errorMessage } from "../../errors.ts";
import { ProviderError, type ProviderErrorCode } from "./provider-error.ts";
import { isRetryableStatus, retryAfterMs } from "./retry-policy.ts";

/** One failed attempt to open a model stream (before any of it reached the engine). */
export interface RequestFailure {
  code: Extract<ProviderErrorCode, "http_error" | "network_error" | "timeout" | "request_failed" | "stream_error" | "stream_interrupted">;
  status: number | undefined;
  retryable: boolean;
  /** What the provider asked for via `Retry-After` / `retry-after-ms`, in ms. */
  retryAfterMs: number | undefined;
  /** The provider's message (or the transport's), without our prefix. */
  detail: string;
  /** The final error's `cause` when it is not the error thrown (a stream error: see `readStreamError`). */
  cause?: unknown;
}

const BODY_EXCERPT_LENGTH = 300;

/** Classifies an error thrown while opening a stream. `timedOut`: our per-request timer fired. */
export function classifyRequestFailure(error: unknown, timedOut: boolean): RequestFailure {
  if (timedOut) {
    return { code: "timeout", status: undefined, retryable: true, retryAfterMs: undefined, detail: "no response" };
  }
  if (APICallError.isInstance(error) && isEventStream(error.responseHeaders) && error.data === undefined && error.responseBody === undefined && error.cause !== undefined) {
    // A 200 event stream that broke while the SDK read ahead for an early error (OpenAI's reads up
    // to the first output: a reasoning model's role chunk, then minutes of thinking): the SDK wraps
    // the transport's failure as "Failed to process successful response". Nothing reached the
    // engine: a cut, tried again like one before the response.
    return { code: "stream_interrupted", status: undefined, retryable: true, retryAfterMs: undefined, detail: messageWithCauses(error.cause) };
  }
  if (APICallError.isInstance(error) && isEventStream(error.responseHeaders)) {
    // The response was a 200 event stream whose first event was an error: the SDK (OpenAI's,
    // Anthropic's) throws it as an HTTP error with a status of its own making (500 for a type it
    // does not know). It is the provider's word in the stream, as a named endpoint reports it.
    const report = readStreamError(error);
    return { code: "stream_error", status: undefined, retryable: report.transient, retryAfterMs: undefined, detail: report.detail, cause: report.cause };
  }
  if (APICallError.isInstance(error)) {
    const status = error.statusCode;
    if (status === undefined) {
      // No HTTP status: the SDK marks connection failures (refused, reset…) as retryable.
      return {
        code: error.isRetryable ? "network_error" : "request_failed",
        status,
        retryable: error.isRetryable,
        retryAfterMs: undefined,
        detail: withoutRuntimeHint(error.message),
      };
    }
    return {
      code: "http_error",
      status,
      // Our policy, not the SDK's (which also retries 408/409): rate limits and server errors.
      retryable: isRetryableStatus(status),
      retryAfterMs: retryAfterMs(error.responseHeaders),
      detail: providerMessage(error),
    };
  }
  return { code: "request_failed", status: undefined, retryable: false, retryAfterMs: undefined, detail: errorMessage(error) };
}

/** The error `stream()` rejects with once no (more) retries will be made. */
export function requestFailureError(options: {
  modelId: string;
  failure: RequestFailure;
  attempts: number;
  timeoutMs: number;
  cause: unknown;
}): ProviderError {
  const { modelId, failure, attempts } = options;
  const after = `after ${attempts} attempt${attempts === 1 ? "" : "s"}`;
  const message =
    failure.code === "stream_error"
      ? `${modelId}: provider error in stream${attempts === 1 ? "" : ` ${after}`}: ${failure.detail}`
      : failure.code === "stream_interrupted"
      ? `${modelId}: stream interrupted ${after}: ${failure.detail}`
      : failure.code === "http_error"
      ? `${modelId}: HTTP ${failure.status} ${after}: ${failure.detail}`
      : failure.code === "network_error"
        ? `${modelId}: network error ${after}: ${failure.detail}`
        : failure.code === "timeout"
          ? `${modelId}: no response within ${options.timeoutMs} ms ${after}`
          : `${modelId}: request failed ${after}: ${failure.detail}`;
  return new ProviderError({
    code: failure.code,
    modelId,
    message,
    status: failure.status,
    retryable: failure.retryable,
    attempts,
    cause: "cause" in failure ? failure.cause : options.cause,
  });
}

/**
 * Error types a provider reports inside its stream that its documentation calls transient: tried
 * again when nothing was delivered yet, and classified by the status the SDK gives them
 * (`rate_limited`, `provider_unavailable`). Anthropic: `overloaded_error` (529), `rate_limit_error`
 * (429), `api_error` (500). OpenAI: `server_error` (500), `rate_limit_exceeded` (429).
 */
const TRANSIENT_STREAM_ERROR_TYPES: ReadonlySet<string> = new Set(["overloaded_error", "rate_limit_error", "api_error", "server_error", "rate_limit_exceeded"]);

/** What the provider said in an error event of its stream. */
export interface StreamErrorReport {
  /** The provider's own words. */
  detail: string;
  /** Its type (or code) is one of `TRANSIENT_STREAM_ERROR_TYPES`. */
  transient: boolean;
  /**
   * The `cause` for our error. The task's code is read from a `statusCode` on it (src/tasks/task-error.ts):
   * a transient error keeps the SDK's error and the status the SDK gave its type; any other is the
   * provider's own error object, with no status — a status the SDK made up (500 for a type it does
   * not know) would make it `provider_unavailable` and retried, its words replaced by "HTTP 500".
   */
  cause: unknown;
}

/**
 * Reads an in-stream error whatever shape it reached us in: the `APICallError` the OpenAI and
 * Anthropic SDKs throw for an error before any output, the provider stream error they put in the
 * stream after output (both with a `statusCode` of the SDK's choosing), or the provider's raw error
 * object (the OpenAI-compatible SDK: named endpoints, Ollama).
 */
export function readStreamError(error: unknown): StreamErrorReport {
  const fields = (value: unknown): Record<string, unknown> | undefined =>
    typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;
  const outer = fields(error);
  const hasStatus = typeof outer?.statusCode === "number";
  // The provider's own object: OpenAI's SDK keeps it as `data`; Anthropic's, as the JSON `responseBody`.
  let frame = outer?.data;
  if (frame === undefined && APICallError.isInstance(error) && error.responseBody !== undefined) {
    try {
      frame = JSON.parse(error.responseBody);
    } catch {
      // Not JSON: the SDK's own message stands for it.
    }
  }
  const own = fields(frame) ?? outer;
  const nested = fields(own?.error);
  const said = (key: string) => [own?.[key], nested?.[key], outer?.[key]].find((value): value is string => typeof value === "string" && value !== "");
  const type = said("type");
  const code = said("code");
  const transient = [type, code].some((value) => value !== undefined && TRANSIENT_STREAM_ERROR_TYPES.has(value));
  const detail = said("message") ?? (frame !== undefined ? streamErrorDetail(frame) : streamErrorDetail(error));
  return { detail, transient, cause: transient || !hasStatus ? error : (frame ?? { message: detail, type, code }) };
}

/** Whether a response's headers say it was an event stream (the SDK threw after reading it). */
function isEventStream(headers: Record<string, string> | undefined): boolean {
  const contentType = Object.entries(headers ?? {}).find(([name]) => name.toLowerCase() === "content-type")?.[1];
  return contentType !== undefined && /^\s*text\/event-stream\b/i.test(contentType);
}

/**
 * The provider's message. The SDK parses the provider's JSON error body; when the body was not in
 * the shape it knows (an HTML page from a proxy, FastAPI's `{"detail": …}` from a local server) it
 * falls back to the status text, so we append an excerpt of the body to keep the real reason.
 */
function providerMessage(error: APICallError): string {
  const body = error.responseBody?.trim() ?? "";
  const message = error.message.trim();
  if (error.data !== undefined || body === "" || body === message) return message || "(no message)";
  const excerpt = body.length > BODY_EXCERPT_LENGTH ? `${body.slice(0, BODY_EXCERPT_LENGTH)}…` : body;
  return message ? `${message}: ${excerpt}` : excerpt;
}

/**
 * An error's message followed by those of its causes (`a: b: c`), skipping repeats. The SDK wraps
 * transport failures in generic errors ("Failed to process successful response"); the reason that
 * helps — the socket was reset — is in the cause.
 */
export function messageWithCauses(error: unknown): string {
  const messages: string[] = [];
  const seen = new Set<unknown>();
  for (let current = error; current !== undefined && current !== null && !seen.has(current); ) {
    seen.add(current);
    const message = withoutRuntimeHint(streamErrorDetail(current)).trim();
    if (message !== "" && !messages.some((earlier) => earlier.includes(message))) messages.push(message);
    current = current instanceof Error ? current.cause : undefined;
  }
  return messages.join(": ");
}

/** Bun's advice to the programmer at the end of a fetch error ("For more information, pass `verbose: true` …"): not for a task's reader. */
function withoutRuntimeHint(message: string): string {
  const hint = message.indexOf(" For more information, pass `verbose: true`");
  return hint === -1 ? message : message.slice(0, hint);
}

/** A readable message for an error part inside a stream (its shape is provider-defined). */
export function streamErrorDetail(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === "object" && error !== null) {
    const message = (error as { message?: unknown }).message;
    if (typeof message === "string") return message;
    try {
      return JSON.stringify(error);
    } catch {
      // Not serialisable (cycles): fall back to the default string form.
      return String(error);
    }
  }
  return String(error);
}
