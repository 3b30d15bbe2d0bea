/**
 * The one error a provider-backed model throws: a closed `code`, the HTTP status when there was
 * one, whether trying again may help, and how many attempts were made — plus a message a person
 * can act on, e.g. `openai/gpt-4.1-mini: HTTP 500 after 4 attempts: The server had an error`.
 */

export type ProviderErrorCode =
  /** The provider answered with an HTTP error status. */
  | "http_error"
  /** No HTTP response: connection refused or reset, DNS failure… */
  | "network_error"
  /** The per-request timeout fired. */
  | "timeout"
  /** The stream stopped (connection cut, or ended without the provider's completion signal). */
  | "stream_interrupted"
  /** The provider reported an error inside the stream. */
  | "stream_error"
  /** Anything else the SDK rejected with (bad prompt, unparsable response…). */
  | "request_failed"
  /** The provider cannot be used as configured (e.g. a missing API key); raised at start-up. */
  | "not_configured";

export class ProviderError extends Error {
  readonly code: ProviderErrorCode;
  /** The provider name, e.g. `openai`, `anthropic`, `ollama`, or a named endpoint. */
  readonly provider: string;
  /** `provider/model`. */
  readonly modelId: string;
  /** HTTP status, when the provider answered with one. */
  readonly status: number | undefined;
  /** Whether trying the step again may succeed. This adapter retries only before a stream starts. */
  readonly retryable: boolean;
  /** HTTP requests made for this step (0 when none was sent). */
  readonly attempts: number;

  constructor(options: {
    code: ProviderErrorCode;
    modelId: string;
    message: string;
    status?: number;
    retryable: boolean;
    attempts: number;
    cause?: unknown;
  }) {
    super(options.message, { cause: options.cause });
    this.name = "ProviderError";
    this.code = options.code;
    this.modelId = options.modelId;
    this.provider = options.modelId.split("/")[0] ?? options.modelId;
    this.status = options.status;
    this.retryable = options.retryable;
    this.attempts = options.attempts;
  }
}
