/**
 * One small error taxonomy. Every failure a client can see has a closed `code`; the mapping to an
 * HTTP status and a WebSocket close code lives here and nowhere else.
 */

export type ErrorCode =
  | "bad_request"
  | "validation_failed"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "method_not_allowed"
  | "conflict"
  | "payload_too_large"
  | "unsupported_media_type"
  | "queue_full"
  | "upgrade_required"
  | "too_many_watchers"
  | "unavailable"
  | "not_implemented"
  | "internal";

const HTTP_STATUS: Record<ErrorCode, 400 | 401 | 403 | 404 | 405 | 409 | 413 | 415 | 426 | 429 | 500 | 501 | 503> = {
  bad_request: 400,
  validation_failed: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  queue_full: 429,
  upgrade_required: 426,
  too_many_watchers: 429,
  unavailable: 503,
  /** A feature this server is not set up for (e.g. share tokens without a secret). */
  not_implemented: 501,
  internal: 500,
};

/** WebSocket close codes: 4xxx mirror the HTTP status where one fits. */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  /** A client past the message rate (MAX_CLIENT_FRAMES_PER_SECOND). */
  policyViolation: 1008,
  tooBig: 1009,
  serverError: 1011,
  badRequest: 4400,
  unauthorized: 4001,
  forbidden: 4003,
  notFound: 4404,
  /** Too much queued for a watcher that does not read: reconnect with `after=`. */
  tooSlow: 4008,
  /** Nothing heard from the peer (not even a pong) for the heartbeat period: reconnect with `after=`. */
  heartbeatTimeout: 4408,
  tooManyWatchers: 4029,
} as const;

const WS_CLOSE: Record<ErrorCode, number> = {
  bad_request: CloseCode.badRequest,
  validation_failed: CloseCode.badRequest,
  unauthorized: CloseCode.unauthorized,
  forbidden: CloseCode.forbidden,
  not_found: CloseCode.notFound,
  method_not_allowed: CloseCode.badRequest,
  conflict: CloseCode.badRequest,
  payload_too_large: CloseCode.tooBig,
  unsupported_media_type: CloseCode.badRequest,
  queue_full: CloseCode.serverError,
  upgrade_required: CloseCode.badRequest,
  too_many_watchers: CloseCode.tooManyWatchers,
  unavailable: CloseCode.goingAway,
  not_implemented: CloseCode.serverError,
  internal: CloseCode.serverError,
};

export class AgentkitError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options: { details?: unknown; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "AgentkitError";
    this.code = code;
    this.details = options.details;
  }

  get httpStatus() {
    return HTTP_STATUS[this.code];
  }

  get closeCode(): number {
    return WS_CLOSE[this.code];
  }

  /** The JSON body every error response has: `{"error":{"code","message"[,"details"]}}`. */
  toJSON() {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details === undefined ? {} : { details: this.details }),
      },
    };
  }
}

/** Normalise anything thrown into an AgentkitError, once, at a boundary. */
export function toAgentkitError(error: unknown): AgentkitError {
  if (error instanceof AgentkitError) return error;
  return new AgentkitError("internal", "Internal server error", { cause: error });
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/**
 * Whether an error says the database cannot be reached right now (PostgreSQL down, restarting, or
 * the connection lost): Bun.SQL's connection errors (`ERR_POSTGRES_CONNECTION_*`, e.g. "Failed to
 * connect"), and SQLSTATE class 08 (connection exception), 57P01–57P03 (shutting down, cannot
 * connect now). Clients get 503 with Retry-After, not 500.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const { code, errno } = error as { code?: unknown; errno?: unknown };
  return String(code ?? "").startsWith("ERR_POSTGRES_CONNECTION") || /^(08|57P0[123])/.test(String(errno ?? ""));
}

/**
 * Whether a store's failure passes, so that a run it cut is taken up again from its log rather than
 * ending its task `failed`: SQLite unable to write (`isStoreWriteFailure`), or PostgreSQL out of
 * reach (`isDatabaseUnavailable`) or cutting a statement short — a statement timeout or a lock
 * (57014, 55P03), a serialization conflict or deadlock (40001, 40P01), too many connections (53*),
 * a system or I/O error (58000, 58030). A sub-second failover once ended running tasks `failed`
 * with PostgreSQL's words as their error.
 */
export function isTransientStoreFailure(error: unknown): boolean {
  return isStoreWriteFailure(error) || isDatabaseUnavailable(error) || isDatabaseInterrupted(error);
}

/**
 * Whether PostgreSQL, up and reachable, cut a statement short for a reason that passes: a statement
 * timeout or a lock (57014, 55P03), a serialization conflict or deadlock (40001, 40P01), too many
 * connections or out of resources (53*), a system or I/O error (58000, 58030). Trying again shortly
 * is right. Not 58P01/58P02 (a file missing or already there): those do not pass.
 */
export function isDatabaseInterrupted(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return /^(57014|55P03|40001|40P01|53[0-9A-Z]{3}|58000|58030)$/.test(String((error as { errno?: unknown }).errno ?? ""));
}

/**
 * Whether `error` is SQLite failing to write for a reason outside the request (and likely to
 * pass): a full disk (SQLITE_FULL), an I/O error (SQLITE_IOERR_*), a file made read-only
 * (SQLITE_READONLY_*), a file it cannot open, or a lock held past the busy timeout by another
 * process (SQLITE_BUSY). Clients get 503 with Retry-After, not 500; a run cut by one is taken up
 * again from its log once writes succeed (see the runner).
 */
export function isStoreWriteFailure(error: unknown): boolean {
  if (!(error instanceof Error) || error.name !== "SQLiteError") return false;
  return /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN|BUSY)/.test(String((error as { code?: unknown }).code ?? ""));
}
