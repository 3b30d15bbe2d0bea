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
  code: Extract<ProviderErrorCode, "http_error" | "network_error" | "timeout" | "request_failed">;
  status: number | undefined;
  retryable: boolean;
  /** What the provider asked for via `Retry-After` / `retry-after-ms`, in ms. */
  retryAfterMs: number | undefined;
  /** The provider's message (or the transport's), without our prefix. */
  detail: string;
}

const BODY_EXCERPT_LENGTH = 300;

/** Classifies an error thrown while opening a stream. `timedOut`: our per-request timer fired. */
export function classifyRequestFailure(error: unknown, timedOut: boolean): RequestFailure {
  if (timedOut) {
    return { code: "timeout", status: undefined, retryable: true, retryAfterMs: undefined, detail: "no response" };
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
        detail: error.message,
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
    failure.code === "http_error"
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
    cause: options.cause,
  });
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
    const message = streamErrorDetail(current).trim();
    if (message !== "" && !messages.some((earlier) => earlier.includes(message))) messages.push(message);
    current = current instanceof Error ? current.cause : undefined;
  }
  return messages.join(": ");
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
