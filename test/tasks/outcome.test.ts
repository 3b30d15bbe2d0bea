/**
 * Every way a run can end → the task's outcome and its `result` data: one `TaskError` shape
 * (`{code, message, retryable}`), a closed set of codes, the provider's cause kept.
 */
import { describe, expect, test } from "bun:test";
import { AgentkitError } from "../../src/errors.ts";
import { ProviderError, type ProviderErrorCode } from "../../src/llm/providers/provider-error.ts";
import { ResultData } from "../../src/protocol/frames.ts";
import { Task, TaskError, type TaskErrorCode } from "../../src/protocol/task.ts";
import { AgentNotConfiguredError, TaskAbort, toOutcome, toResultData, type RunEnd } from "../../src/tasks/outcome.ts";

const totals = { steps: 2, inputTokens: 10, outputTokens: 5, costUsd: null };
const at = new Date("2026-01-01T00:00:00Z");

function providerError(code: ProviderErrorCode, status?: number, cause?: unknown): ProviderError {
  const message = status === undefined ? `openai/gpt-test: ${code}` : `openai/gpt-test: HTTP ${status} after 2 attempts: nope`;
  return new ProviderError({ code, modelId: "openai/gpt-test", message, status, retryable: true, attempts: 2, cause });
}

function errorOf(end: Exclude<RunEnd, { kind: "waiting" }>) {
  const outcome = toOutcome(end, at);
  const data = toResultData("t1", outcome);
  // The frame carries the task's object itself, and both validate against the one schema.
  expect(ResultData.parse(data).error ?? null).toEqual(outcome.error);
  if (outcome.error !== null) expect(TaskError.strict().parse(outcome.error)).toEqual(outcome.error);
  return { status: outcome.status, stop_reason: outcome.stopReason, error: outcome.error };
}

describe("provider failures keep their cause", () => {
  const cases: [string, ProviderError, TaskErrorCode, boolean][] = [
    ["429", providerError("http_error", 429), "rate_limited", true],
    ["401", providerError("http_error", 401), "authentication", false],
    ["403", providerError("http_error", 403), "authentication", false],
    ["404 (unknown model)", providerError("http_error", 404), "bad_request", false],
    ["400 (context too long)", providerError("http_error", 400), "bad_request", false],
    ["413", providerError("http_error", 413), "bad_request", false],
    ["408", providerError("http_error", 408), "timeout", true],
    ["500", providerError("http_error", 500), "provider_unavailable", true],
    ["529 (overloaded)", providerError("http_error", 529), "provider_unavailable", true],
    ["501 (a retry cannot change it)", providerError("http_error", 501), "bad_request", false],
    ["the request timeout", providerError("timeout"), "timeout", true],
    ["a network error", providerError("network_error"), "network_error", true],
    ["a cut stream", providerError("stream_interrupted"), "stream_interrupted", true],
    ["an opaque error in the stream", providerError("stream_error", undefined, { message: "boom" }), "stream_error", false],
    ["an overloaded error in the stream", providerError("stream_error", undefined, { message: "Overloaded", statusCode: 529 }), "provider_unavailable", true],
    ["a rate limit in the stream", providerError("stream_error", undefined, { message: "slow down", statusCode: 429 }), "rate_limited", true],
    ["anything else the SDK rejected with", providerError("request_failed"), "request_failed", false],
  ];
  for (const [what, error, code, retryable] of cases) {
    test(`${what} → ${code}`, () => {
      expect(errorOf({ kind: "error", error, totals })).toEqual({
        status: "failed",
        stop_reason: "error",
        error: { code, message: error.message, retryable },
      });
    });
  }

  test("the HTTP status stays in the message", () => {
    expect(errorOf({ kind: "error", error: providerError("http_error", 429), totals }).error!.message).toContain("HTTP 429");
  });
});

test("the task's own limits and ends; cancelled and completed have no error", () => {
  expect(errorOf({ kind: "stopped", reason: "max_steps", message: "reached 3 steps", totals })).toEqual({
    status: "failed",
    stop_reason: "max_steps",
    error: { code: "max_steps", message: "Stopped: reached 3 steps", retryable: false },
  });
  expect(errorOf({ kind: "stopped", reason: "token_budget", message: "used 45 tokens", totals }).error).toEqual({
    code: "token_budget",
    message: "Stopped: used 45 tokens",
    retryable: false,
  });
  expect(errorOf({ kind: "aborted", abort: new TaskAbort("deadline", "Task exceeded its 150 ms time limit"), totals })).toEqual({
    status: "timed_out",
    stop_reason: "deadline",
    error: { code: "deadline", message: "Task exceeded its 150 ms time limit", retryable: false },
  });
  expect(errorOf({ kind: "aborted", abort: new TaskAbort("shutdown", "Interrupted: the server shut down"), totals })).toEqual({
    status: "failed",
    stop_reason: "interrupted",
    error: { code: "interrupted", message: "Interrupted: the server shut down", retryable: true },
  });
  expect(errorOf({ kind: "interrupted", totals }).error).toMatchObject({ code: "interrupted", retryable: true });
  expect(errorOf({ kind: "error", error: new AgentNotConfiguredError("writer"), totals }).error).toEqual({
    code: "agent_not_configured",
    message: "Agent 'writer' is not configured",
    retryable: false,
  });
  for (const error of [new Error("engine ended without an answer"), new AgentkitError("conflict", "seq"), "a string"]) {
    expect(errorOf({ kind: "error", error, totals }).error).toMatchObject({ code: "internal", retryable: false });
  }
  // A cancelled or completed task has no error, and its result frame no error key.
  const cancelled = toOutcome({ kind: "aborted", abort: new TaskAbort("cancelled", "Cancelled by a client"), totals }, at);
  expect(cancelled).toMatchObject({ status: "cancelled", stopReason: "cancelled", error: null });
  expect("error" in toResultData("t1", cancelled)).toBe(false);
  const completed = toOutcome({ kind: "answer", output: "42", totals }, at);
  expect(completed.error).toBeNull();
  expect("error" in toResultData("t1", completed)).toBe(false);
});

test("the REST task and the result frame share one closed set of codes", () => {
  expect(Task.shape.error.unwrap()).toBe(TaskError);
  expect(ResultData.shape.error.unwrap()).toBe(TaskError);
  expect(TaskError.safeParse({ code: "error", message: "old shape", retryable: false }).success).toBe(false);
  expect(TaskError.safeParse("a message alone").success).toBe(false);
});
