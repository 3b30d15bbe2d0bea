/**
 * The one error the client throws: from a REST call (`status` is the HTTP status, `code` the
 * server's stable error code), from a watch the server refused (`closeCode` is the WebSocket close
 * code, `status` the HTTP status it mirrors), or when the server could not be reached (`status` 0).
 */
export class AgentkitClientError extends Error {
  override readonly name = "AgentkitClientError";
  /** The HTTP status (a refused watch: the status its close code mirrors, 4404 → 404); 0 when no answer came. */
  readonly status: number;
  /** The server's error code (`not_found`, `unauthorized`, `validation_failed`…) or the client's own (`network_error`, `retries_exhausted`…). */
  readonly code: string;
  /** What the server added (e.g. the validation issues of a 400). */
  declare readonly details?: unknown;
  /** The WebSocket close code, for a watch that ended on one. */
  declare readonly closeCode?: number;

  constructor(init: { status: number; code: string; message: string; details?: unknown; closeCode?: number; cause?: unknown }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.status = init.status;
    this.code = init.code;
    if (init.details !== undefined) this.details = init.details;
    if (init.closeCode !== undefined) this.closeCode = init.closeCode;
  }
}

/** A code for an HTTP status that came without the server's JSON error (a proxy's page, say). */
export function codeForStatus(status: number): string {
  switch (status) {
    case 400:
      return "bad_request";
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 409:
      return "conflict";
    case 413:
      return "payload_too_large";
    case 415:
      return "unsupported_media_type";
    case 429:
      return "queue_full";
    case 501:
      return "not_implemented";
    case 502:
    case 503:
    case 504:
      return "unavailable";
    default:
      return status >= 500 ? "internal" : "http_error";
  }
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
