/**
 * What was thrown → the `TaskError` a client sees (`{code, message, retryable}`): the one place
 * where provider failures, the task's own limits and everything else get their public code.
 *
 * `retryable` answers "may submitting the same task again succeed?" — true for what is transient
 * (rate limits, provider outages, timeouts, network failures, cut streams, a server restart),
 * false for what would fail the same way again (credentials, a request the provider refuses, the
 * task's own limits, a missing agent, our own bugs).
 */
import { errorMessage } from "../errors.ts";
import { TooManyToolCallsError } from "../llm/model.ts";
import { ProviderError } from "../llm/providers/provider-error.ts";
import type { TaskError, TaskErrorCode } from "../protocol/task.ts";

/** The runner ends a task with this when the task's agent is not in the configuration. */
export class AgentNotConfiguredError extends Error {
  constructor(readonly agent: string) {
    super(`Agent '${agent}' is not configured`);
    this.name = "AgentNotConfiguredError";
  }
}

/** Whether trying again may help, per public code (the provider's own flag is not used: see below). */
const RETRYABLE: Record<TaskErrorCode, boolean> = {
  rate_limited: true,
  authentication: false,
  bad_request: false,
  provider_unavailable: true,
  timeout: true,
  network_error: true,
  stream_interrupted: true,
  stream_error: false,
  request_failed: false,
  max_steps: false,
  token_budget: false,
  deadline: false,
  interrupted: true,
  agent_not_configured: false,
  approval_timeout: false,
  // The model may well answer in shape next time.
  invalid_output: true,
  // A model that made thousands of calls in one step (a loop, a garbage reply) likely does it again.
  too_many_tool_calls: false,
  internal: false,
};

export function taskError(code: TaskErrorCode, message: string, retryable: boolean = RETRYABLE[code]): TaskError {
  return { code, message, retryable };
}

/** The public code of an HTTP status a provider answered with. */
export function codeOfStatus(status: number): TaskErrorCode {
  if (status === 429) return "rate_limited";
  if (status === 401 || status === 403) return "authentication";
  if (status === 408) return "timeout";
  // 501 Not Implemented and 505 HTTP Version Not Supported will not change on a retry.
  if (status === 501 || status === 505) return "bad_request";
  if (status >= 500) return "provider_unavailable";
  if (status >= 400) return "bad_request";
  return "request_failed";
}

/** A run that ended by throwing (not an abort of ours): provider failures keep their cause. */
export function toTaskError(error: unknown): TaskError {
  if (error instanceof ProviderError) return fromProviderError(error);
  if (error instanceof AgentNotConfiguredError) return taskError("agent_not_configured", error.message);
  if (error instanceof TooManyToolCallsError) return taskError("too_many_tool_calls", error.message);
  return taskError("internal", errorMessage(error));
}

function fromProviderError(error: ProviderError): TaskError {
  switch (error.code) {
    case "http_error":
      return taskError(error.status === undefined ? "request_failed" : codeOfStatus(error.status), error.message);
    case "stream_error": {
      // An error event inside the stream: the AI SDK gives it the HTTP status it stands for when the
      // provider's error type implies one (Anthropic's `overloaded_error` is 529, `rate_limit_error`
      // 429…). Classify by that status; without one the error is opaque.
      const status = (error.cause as { statusCode?: unknown } | null | undefined)?.statusCode;
      return typeof status === "number" && status >= 400
        ? taskError(codeOfStatus(status), error.message)
        : taskError("stream_error", error.message);
    }
    case "not_configured":
      return taskError("agent_not_configured", error.message);
    case "network_error":
    case "timeout":
    case "stream_interrupted":
    case "request_failed":
      return taskError(error.code, error.message);
  }
}
