/**
 * OpenTelemetry traces over OTLP/HTTP with JSON bodies, hand-written (no @opentelemetry packages).
 * Loaded only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set:
 * serve.ts imports this module dynamically, so a server without it pays nothing.
 *
 * Spans, following the GenAI semantic conventions:
 * - one per run of a task, `invoke_agent <agent>` (a root span; a task resumed after a restart, a
 *   takeover or a decision gets one span per run, all in one trace: the trace id is the task id's
 *   128 random bits), with `agentkit.task_id`, `agentkit.agent`, `agentkit.status`, `agentkit.stop_reason`;
 * - a child per model call, `chat <model>` (`gen_ai.operation.name` `chat`, `gen_ai.provider.name`
 *   and the older `gen_ai.system`, `gen_ai.request.model`, `gen_ai.usage.input_tokens`/`output_tokens`);
 * - a child per tool call, `execute_tool <tool>` (`gen_ai.tool.name`, `gen_ai.tool.call.id`).
 *
 * Export: finished spans are queued and sent in batches (every second, or at once when 512 are
 * waiting), one request at a time. The queue is bounded (2048): when the collector is down or slow,
 * spans are dropped and counted (`agentkit_trace_spans_dropped_total`), never held without bound.
 * Nothing here blocks or fails a task: hooks only record, the export runs in the background and its
 * failures are logged (once per outage) and counted.
 */
import type { Logger } from "../lib/logger.ts";
import { CallbackGauge } from "./metrics.ts";
import { epochMs, ignore, splitModelId, type ModelCall, type RunEndKind, type RunStart, type TaskEnd, type Telemetry, type ToolCall } from "./telemetry.ts";

export interface TracingOptions {
  /** Where spans are POSTed: `{OTEL_EXPORTER_OTLP_ENDPOINT}/v1/traces`. */
  url: string;
  headers?: Record<string, string>;
  /** Resource attributes; `service.name` among them. */
  resource: Record<string, string>;
  logger: Logger;
  /** Export at least this often (ms). Default 1000. */
  flushIntervalMs?: number;
  /** Spans per export request, and the queue length that triggers one at once. Default 512. */
  maxBatch?: number;
  /** Finished spans waiting at most; more are dropped. Default 2048. */
  maxQueue?: number;
  /** Per export request (ms). Default 10000 (`OTEL_EXPORTER_OTLP_TIMEOUT`). */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export interface Tracing extends Telemetry {
  /** Counters of the exporter, for /metrics. */
  readonly metrics: { render(out: string[]): void };
  stats(): { exported: number; dropped: number; queued: number; failedExports: number };
}

/** The environment variables read here (see README "Observability"). */
export interface TracingEnvironment {
  OTEL_EXPORTER_OTLP_ENDPOINT?: string;
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?: string;
  OTEL_EXPORTER_OTLP_HEADERS?: string;
  OTEL_EXPORTER_OTLP_TRACES_HEADERS?: string;
  OTEL_EXPORTER_OTLP_TIMEOUT?: string;
  OTEL_EXPORTER_OTLP_TRACES_TIMEOUT?: string;
  OTEL_EXPORTER_OTLP_PROTOCOL?: string;
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL?: string;
  OTEL_SERVICE_NAME?: string;
  OTEL_RESOURCE_ATTRIBUTES?: string;
}

/**
 * The tracer the environment asks for: spans go to `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as it is,
 * or to `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`; with the headers of
 * `OTEL_EXPORTER_OTLP_HEADERS` (`key=value,…`, values percent-decoded); the service named by
 * `OTEL_SERVICE_NAME` (default `agentkit`). A malformed endpoint throws (start-up stops with it).
 */
export function startTracingFromEnv(
  env: Record<string, string | undefined>,
  context: { logger: Logger; version: string; node: string; fetch?: typeof fetch },
): Tracing {
  const e = env as TracingEnvironment;
  const url = tracesUrl(e);
  const protocol = e.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL || e.OTEL_EXPORTER_OTLP_PROTOCOL;
  if (protocol && protocol !== "http/json") {
    context.logger.warn(`traces: OTEL_EXPORTER_OTLP_PROTOCOL=${protocol} is not supported; sending http/json (OTLP/HTTP with JSON bodies)`);
  }
  const resource: Record<string, string> = {
    ...parseKeyValues(e.OTEL_RESOURCE_ATTRIBUTES),
    "service.version": context.version,
    "service.instance.id": context.node,
    "telemetry.sdk.name": "agentkit",
    "telemetry.sdk.language": "js",
  };
  resource["service.name"] = e.OTEL_SERVICE_NAME || resource["service.name"] || "agentkit";
  const timeout = Number(e.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT || e.OTEL_EXPORTER_OTLP_TIMEOUT || 10_000);
  const tracing = createTracing({
    url,
    headers: { ...parseKeyValues(e.OTEL_EXPORTER_OTLP_HEADERS), ...parseKeyValues(e.OTEL_EXPORTER_OTLP_TRACES_HEADERS) },
    resource,
    logger: context.logger,
    timeoutMs: Number.isFinite(timeout) && timeout > 0 ? timeout : 10_000,
    fetch: context.fetch,
  });
  // The URL without credentials a user may have put in it; never the headers.
  const shown = new URL(url);
  shown.username = "";
  shown.password = "";
  context.logger.info("traces: exporting spans over OTLP/HTTP (JSON)", { url: `${shown.origin}${shown.pathname}`, service: resource["service.name"] });
  return tracing;
}

function tracesUrl(env: TracingEnvironment): string {
  const specific = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  const url = specific || (base ? `${base.replace(/\/+$/, "")}/v1/traces` : "");
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) {
    throw new Error(`OTEL_EXPORTER_OTLP_${specific ? "TRACES_" : ""}ENDPOINT must be an http:// or https:// URL`);
  }
  return url;
}

/** `key=value,key2=value2` (W3C baggage-like, as the OTel variables are), values percent-decoded. */
export function parseKeyValues(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of (text ?? "").split(",")) {
    const separator = entry.indexOf("=");
    if (separator < 1) continue;
    const key = entry.slice(0, separator).trim();
    let value = entry.slice(separator + 1).trim();
    try {
      value = decodeURIComponent(value);
    } catch {
      // Not percent-encoded after all: kept as it is.
    }
    if (key) out[key] = value;
  }
  return out;
}

type AttributeValue = string | number | boolean;
interface Attribute {
  key: string;
  value: { stringValue: string } | { intValue: string } | { doubleValue: number } | { boolValue: boolean };
}

/** A finished span as OTLP/JSON writes it. */
interface SpanJson {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Attribute[];
  status: { code: number; message?: string };
}

const SPAN_KIND = { internal: 1, client: 3 } as const;
const STATUS = { unset: 0, ok: 1, error: 2 } as const;
/** Attribute strings are cut here (a tool name a model made up can be anything). */
const MAX_STRING = 256;

interface OpenRun {
  traceId: string;
  spanId: string;
  name: string;
  startedAt: number;
  attributes: Record<string, AttributeValue>;
  status: { code: number; message?: string };
}

function hex(bytes: number): string {
  const buffer = crypto.getRandomValues(new Uint8Array(bytes));
  let out = "";
  for (const byte of buffer) out += byte.toString(16).padStart(2, "0");
  return out;
}

/** A task's trace id: its UUID's 128 bits (122 of them random), so every run of a task shares one trace. */
export function traceIdOf(taskId: string): string {
  const digits = taskId.replace(/-/g, "").toLowerCase();
  return /^[0-9a-f]{32}$/.test(digits) && !/^0+$/.test(digits) ? digits : hex(16);
}

/** Epoch ms → unix nanoseconds, as a decimal string (OTLP/JSON's int64). */
export function unixNanos(ms: number): string {
  const whole = Math.floor(ms);
  const fraction = Math.round((ms - whole) * 1e6);
  return (BigInt(whole) * 1_000_000n + BigInt(fraction)).toString();
}

function attribute(key: string, value: AttributeValue): Attribute {
  if (typeof value === "string") return { key, value: { stringValue: value.length > MAX_STRING ? value.slice(0, MAX_STRING) : value } };
  if (typeof value === "boolean") return { key, value: { boolValue: value } };
  return Number.isInteger(value) ? { key, value: { intValue: String(value) } } : { key, value: { doubleValue: value } };
}

function attributes(record: Record<string, AttributeValue | undefined>): Attribute[] {
  const out: Attribute[] = [];
  for (const [key, value] of Object.entries(record)) if (value !== undefined) out.push(attribute(key, value));
  return out;
}

export function createTracing(options: TracingOptions): Tracing {
  const { logger } = options;
  const doFetch = options.fetch ?? fetch;
  const flushIntervalMs = options.flushIntervalMs ?? 1000;
  const maxBatch = options.maxBatch ?? 512;
  const maxQueue = Math.max(options.maxQueue ?? 2048, maxBatch);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const headers = { ...options.headers, "Content-Type": "application/json" };
  const resource = { attributes: attributes(options.resource) };
  const scope = { name: "agentkit", version: options.resource["service.version"] ?? "" };

  const runs = new Map<string, OpenRun>();
  let queue: SpanJson[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  let exporting: Promise<void> | undefined;
  let closed = false;
  let failing = false;
  const counts = { exported: 0, dropped: 0, failedExports: 0 };

  const counters = [
    new CallbackGauge("agentkit_trace_spans_exported_total", "Spans the OTLP collector accepted", [], () => [[[], counts.exported]], "counter"),
    new CallbackGauge("agentkit_trace_spans_dropped_total", "Spans dropped: the queue was full, or the collector refused or could not be reached", [], () => [[[], counts.dropped]], "counter"),
    new CallbackGauge("agentkit_trace_export_failures_total", "OTLP export requests that failed", [], () => [[[], counts.failedExports]], "counter"),
  ];

  function enqueue(span: SpanJson) {
    if (queue.length >= maxQueue) {
      counts.dropped++;
      return;
    }
    queue.push(span);
    if (queue.length >= maxBatch) kick();
    else if (!timer && !exporting) {
      timer = setTimeout(kick, flushIntervalMs);
      timer.unref?.();
    }
  }

  function kick() {
    clearTimeout(timer);
    timer = undefined;
    if (exporting || queue.length === 0) return;
    exporting = exportBatch().finally(() => {
      exporting = undefined;
      if (queue.length >= maxBatch) kick();
      else if (queue.length > 0 && !closed && !timer) {
        timer = setTimeout(kick, flushIntervalMs);
        timer.unref?.();
      }
    });
  }

  async function exportBatch(deadlineMs = timeoutMs): Promise<void> {
    const batch = queue.length <= maxBatch ? queue : queue.slice(0, maxBatch);
    queue = queue.length <= maxBatch ? [] : queue.slice(maxBatch);
    const body = JSON.stringify({ resourceSpans: [{ resource, scopeSpans: [{ scope, spans: batch }] }] });
    try {
      const response = await doFetch(options.url, { method: "POST", headers, body, signal: AbortSignal.timeout(deadlineMs) });
      // The body is small (a partial-success note at most); read it so the connection is reused.
      await response.arrayBuffer().catch(() => undefined);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      counts.exported += batch.length;
      if (failing) logger.info("traces: the collector accepts spans again");
      failing = false;
    } catch (error) {
      counts.dropped += batch.length;
      counts.failedExports++;
      // Once per outage, not once per batch.
      if (!failing) {
        logger.warn("traces: could not export spans; dropping them (and counting) until the collector answers", {
          error: error instanceof Error ? error.message : String(error),
          spans: batch.length,
        });
      }
      failing = true;
    }
  }

  function spanOf(run: OpenRun, endedAt: number): SpanJson {
    return {
      traceId: run.traceId,
      spanId: run.spanId,
      name: run.name,
      kind: SPAN_KIND.internal,
      startTimeUnixNano: unixNanos(run.startedAt),
      endTimeUnixNano: unixNanos(Math.max(endedAt, run.startedAt)),
      attributes: attributes(run.attributes),
      status: run.status,
    };
  }

  function openRun(taskId: string, agent: string, startedAt: number): OpenRun {
    return {
      traceId: traceIdOf(taskId),
      spanId: hex(8),
      name: `invoke_agent ${agent}`,
      startedAt,
      attributes: { "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent, "agentkit.task_id": taskId, "agentkit.agent": agent },
      status: { code: STATUS.unset },
    };
  }

  function child(taskId: string, name: string, kind: number, startedAt: number, durationMs: number, record: Record<string, AttributeValue | undefined>, error: string | undefined) {
    if (closed) return;
    const run = runs.get(taskId);
    enqueue({
      traceId: run?.traceId ?? traceIdOf(taskId),
      spanId: hex(8),
      ...(run ? { parentSpanId: run.spanId } : {}),
      name,
      kind,
      startTimeUnixNano: unixNanos(startedAt),
      endTimeUnixNano: unixNanos(startedAt + Math.max(0, durationMs)),
      attributes: attributes({ ...record, "agentkit.task_id": taskId, ...(error === undefined ? {} : { "error.type": error }) }),
      // A cancel is not an error of the call.
      status: error === undefined || error === "aborted" ? { code: STATUS.unset } : { code: STATUS.error, message: error },
    });
  }

  const tracing: Tracing = {
    taskSubmitted: ignore,
    storeWrite: ignore,
    framePublished: ignore,
    watcherOpened: ignore,
    watcherClosed: ignore,
    slowClientClosed: ignore,

    runStarted(run: RunStart) {
      if (closed) return;
      const open = openRun(run.taskId, run.agent, epochMs());
      if (run.resume) open.attributes["agentkit.run.resume"] = run.resume;
      if (run.attempt !== undefined) open.attributes["agentkit.run.attempt"] = run.attempt;
      runs.set(run.taskId, open);
    },

    taskFinished(end: TaskEnd) {
      const now = epochMs();
      let run = runs.get(end.taskId);
      const standalone = !run;
      // Ended without a run on this node (cancelled while queued or waiting): a span of its own.
      run ??= openRun(end.taskId, end.agent, now);
      Object.assign(run.attributes, {
        "agentkit.status": end.status,
        ...(end.stopReason ? { "agentkit.stop_reason": end.stopReason } : {}),
        "gen_ai.usage.input_tokens": end.inputTokens,
        "gen_ai.usage.output_tokens": end.outputTokens,
        ...(end.errorCode ? { "error.type": end.errorCode } : {}),
      });
      run.status = end.status === "failed" || end.status === "timed_out" ? { code: STATUS.error, message: end.errorCode ?? end.status } : { code: STATUS.ok };
      if (standalone && !closed) enqueue(spanOf(run, now));
    },

    runEnded(taskId: string, kind: RunEndKind) {
      const run = runs.get(taskId);
      if (!run) return;
      runs.delete(taskId);
      run.attributes["agentkit.run.outcome"] = kind;
      if (kind === "waiting") run.attributes["agentkit.status"] = "waiting";
      if (!closed) enqueue(spanOf(run, epochMs()));
    },

    modelCall(call: ModelCall) {
      const { provider, model } = splitModelId(call.model);
      child(
        call.taskId,
        `chat ${model}`,
        SPAN_KIND.client,
        call.startedAt,
        call.durationMs,
        {
          "gen_ai.operation.name": "chat",
          "gen_ai.provider.name": provider,
          "gen_ai.system": provider,
          "gen_ai.request.model": model,
          "gen_ai.usage.input_tokens": call.inputTokens,
          "gen_ai.usage.output_tokens": call.outputTokens,
          "gen_ai.agent.name": call.agent,
        },
        call.error,
      );
    },

    toolCall(call: ToolCall) {
      child(
        call.taskId,
        `execute_tool ${call.tool}`,
        SPAN_KIND.internal,
        call.startedAt,
        call.durationMs,
        { "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": call.tool, "gen_ai.tool.call.id": call.callId, "gen_ai.tool.type": "function" },
        call.error,
      );
    },

    async close(closeTimeoutMs = 2000) {
      if (closed) return;
      // Runs still open (the server stops without ending them) are sent as they are.
      const now = epochMs();
      for (const run of runs.values()) {
        run.attributes["agentkit.run.outcome"] = "released";
        enqueue(spanOf(run, now));
      }
      runs.clear();
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      const deadline = performance.now() + closeTimeoutMs;
      while (performance.now() < deadline && (exporting || queue.length > 0)) {
        if (exporting) {
          await Promise.race([exporting, Bun.sleep(Math.max(0, deadline - performance.now()))]);
          continue;
        }
        exporting = exportBatch(Math.max(1, Math.min(timeoutMs, deadline - performance.now()))).finally(() => (exporting = undefined));
      }
      counts.dropped += queue.length;
      queue = [];
    },

    metrics: {
      render(out) {
        for (const counter of counters) counter.render(out);
      },
    },

    stats() {
      return { ...counts, queued: queue.length };
    },
  };
  return tracing;
}
