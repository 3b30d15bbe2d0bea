/**
 * Prometheus metrics, hand-written: the text exposition format 0.0.4 (`# HELP`, `# TYPE`, one
 * sample a line; histograms as cumulative `_bucket{le}` series with `_sum` and `_count`), served by
 * `GET /metrics`. No client library: counters are numbers, a labelled series is found with one Map
 * lookup, and a histogram observation scans a fixed bucket list — O(1), and the per-frame hook is a
 * single increment.
 *
 * Label values come from closed sets (statuses, stop reasons, error codes, transports) or from the
 * configuration (agents' models, tool names); a tool name a model made up is `_unknown`. As a guard
 * against a label set that grows anyway, a family keeps at most `MAX_SERIES` series and counts the
 * rest under `_other`.
 */
import { splitModelId, type Telemetry, type Transport } from "./telemetry.ts";

/** The most series one metric family keeps; more go to one series whose labels are all `_other`. */
export const MAX_SERIES = 1000;
const OTHER = "_other";

/** Histogram buckets, in seconds. */
export const BUCKETS = {
  model: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120],
  tool: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  store: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  task: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
} as const;

/** A label value as the format writes it: `\`, `"` and line feeds escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (char) => (char === "\\" ? "\\\\" : char === '"' ? '\\"' : "\\n"));
}

/** HELP text as the format writes it: `\` and line feeds escaped. */
function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (char) => (char === "\\" ? "\\\\" : "\\n"));
}

/** A sample value: Go's float syntax (`+Inf`, `-Inf`, `NaN`, else the number). */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(value);
}

function labelText(names: readonly string[], values: readonly string[], extra?: string): string {
  const parts: string[] = [];
  for (let index = 0; index < names.length; index++) parts.push(`${names[index]}="${escapeLabelValue(values[index] ?? "")}"`);
  if (extra) parts.push(extra);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

export interface Family {
  render(out: string[]): void;
}

function header(out: string[], name: string, help: string, type: string) {
  out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
}

/** Series of a family keyed by their label values (joined with a separator no value holds). */
class Series<T> {
  readonly map = new Map<string, { values: readonly string[]; data: T }>();
  constructor(
    private readonly labelNames: readonly string[],
    private readonly create: () => T,
  ) {}

  get(values: readonly string[]): T {
    const key = values.length === 1 ? values[0]! : values.join("\u0000");
    const found = this.map.get(key);
    if (found) return found.data;
    if (this.map.size >= MAX_SERIES) return this.overflow();
    const data = this.create();
    this.map.set(key, { values: [...values], data });
    return data;
  }

  /** The one series past the cap: every label `_other`. */
  private overflow(): T {
    const values = this.labelNames.map(() => OTHER);
    const key = values.join("\u0000");
    let entry = this.map.get(key);
    if (!entry) this.map.set(key, (entry = { values, data: this.create() }));
    return entry.data;
  }
}

export class Counter implements Family {
  private readonly series: Series<{ value: number }>;
  constructor(
    readonly name: string,
    private readonly help: string,
    private readonly labelNames: readonly string[] = [],
  ) {
    this.series = new Series(labelNames, () => ({ value: 0 }));
  }
  inc(values: readonly string[] = [], by = 1) {
    this.series.get(values).value += by;
  }
  /** The series of these label values, to increment (`.value += n`) without a lookup. */
  handle(values: readonly string[]): { value: number } {
    return this.series.get(values);
  }
  /** A series that exists (at 0) from the start, so `rate()` sees its first increment. */
  touch(values: readonly string[] = []) {
    this.series.get(values);
  }
  render(out: string[]) {
    header(out, this.name, this.help, "counter");
    for (const { values, data } of this.series.map.values()) out.push(`${this.name}${labelText(this.labelNames, values)} ${formatValue(data.value)}`);
  }
}

/** A gauge (or, with `type` "counter", a counter kept elsewhere) whose value is read when scraped. */
export class CallbackGauge implements Family {
  constructor(
    readonly name: string,
    private readonly help: string,
    private readonly labelNames: readonly string[],
    private readonly read: () => Iterable<readonly [readonly string[], number]>,
    private readonly type: "gauge" | "counter" = "gauge",
  ) {}
  render(out: string[]) {
    header(out, this.name, this.help, this.type);
    for (const [values, value] of this.read()) out.push(`${this.name}${labelText(this.labelNames, values)} ${formatValue(value)}`);
  }
}

interface HistogramData {
  counts: Float64Array;
  sum: number;
  count: number;
}

export class Histogram implements Family {
  private readonly series: Series<HistogramData>;
  private readonly bounds: readonly string[];
  constructor(
    readonly name: string,
    private readonly help: string,
    private readonly labelNames: readonly string[],
    private readonly buckets: readonly number[],
  ) {
    this.series = new Series(labelNames, () => ({ counts: new Float64Array(buckets.length), sum: 0, count: 0 }));
    this.bounds = buckets.map((bound) => `le="${formatValue(bound)}"`);
  }
  observe(values: readonly string[], value: number) {
    this.observeInto(this.series.get(values), value);
  }
  /** The series of these label values, for `observeInto` without a lookup. */
  handle(values: readonly string[]): HistogramData {
    return this.series.get(values);
  }
  observeInto(data: HistogramData, value: number) {
    const { buckets } = this;
    // Non-cumulative counts (the bucket the value falls in); rendering accumulates them.
    for (let index = 0; index < buckets.length; index++) {
      if (value <= buckets[index]!) {
        data.counts[index]!++;
        break;
      }
    }
    data.sum += value;
    data.count++;
  }
  render(out: string[]) {
    header(out, this.name, this.help, "histogram");
    for (const { values, data } of this.series.map.values()) {
      let cumulative = 0;
      for (let index = 0; index < this.buckets.length; index++) {
        cumulative += data.counts[index]!;
        out.push(`${this.name}_bucket${labelText(this.labelNames, values, this.bounds[index])} ${formatValue(cumulative)}`);
      }
      out.push(`${this.name}_bucket${labelText(this.labelNames, values, 'le="+Inf"')} ${formatValue(data.count)}`);
      const labels = labelText(this.labelNames, values);
      out.push(`${this.name}_sum${labels} ${formatValue(data.sum)}`, `${this.name}_count${labels} ${formatValue(data.count)}`);
    }
  }
}

export interface Metrics {
  /** The hooks that feed these metrics. */
  readonly telemetry: Telemetry;
  /** Adds a gauge read at scrape time (queue depth, running tasks…). */
  gauge(name: string, help: string, read: () => number): void;
  /** Adds a family (e.g. the trace exporter's counters). */
  add(family: Family): void;
  /** The exposition: `text/plain; version=0.0.4`. */
  render(): string;
}

/** The `Content-Type` of `render()`'s text. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export function createMetrics(options: { version: string; node?: string } = { version: "unknown" }): Metrics {
  const submitted = new Counter("agentkit_tasks_submitted_total", "Tasks submitted to this node (queued)");
  const runsStarted = new Counter("agentkit_task_runs_started_total", "Runs of tasks started on this node, by why (first, restart, takeover, continued)", ["reason"]);
  const runsEnded = new Counter("agentkit_task_runs_ended_total", "Runs of tasks ended on this node, by how (finished, waiting for people, released to another run)", ["outcome"]);
  const finished = new Counter("agentkit_tasks_finished_total", "Tasks that reached a terminal status on this node, by status and stop reason", ["status", "stop_reason"]);
  const taskDuration = new Histogram("agentkit_task_duration_seconds", "Time from a task's first start to its end, by status", ["status"], BUCKETS.task);
  const modelRequests = new Counter("agentkit_model_requests_total", "Model calls (one per ReAct step), by provider and model", ["provider", "model"]);
  const modelErrors = new Counter("agentkit_model_request_errors_total", "Model calls that failed (after the provider's retries), by provider, model and error code", ["provider", "model", "code"]);
  const modelDuration = new Histogram("agentkit_model_request_duration_seconds", "Model call latency: the whole streamed step, by provider and model", ["provider", "model"], BUCKETS.model);
  const modelTokens = new Counter("agentkit_model_tokens_total", "Tokens used by model calls, by provider, model and type (input, output)", ["provider", "model", "type"]);
  const toolCalls = new Counter("agentkit_tool_calls_total", "Tool calls run, by tool (_unknown: a tool the model made up)", ["tool"]);
  const toolErrors = new Counter("agentkit_tool_errors_total", "Tool calls that failed, by tool and error code", ["tool", "code"]);
  const toolDuration = new Histogram("agentkit_tool_call_duration_seconds", "Tool call latency, by tool", ["tool"], BUCKETS.tool);
  const storeDuration = new Histogram("agentkit_store_write_duration_seconds", "Event-log writes: append (a batch of events) and finish (the result with the task's end)", ["operation"], BUCKETS.store);
  const storeErrors = new Counter("agentkit_store_write_errors_total", "Event-log writes that failed (including fenced ones), by operation", ["operation"]);
  const slowCloses = new Counter("agentkit_slow_client_closes_total", "Watchers cut off because they did not read (WebSocket 4008, or the event stream ended), by transport", ["transport"]);
  const aborted = "aborted";
  /** The series of each model and tool, found once: a call then costs a Map lookup and a few additions. */
  const byModel = new Map<string, { provider: string; model: string; requests: { value: number }; duration: HistogramData; input: { value: number }; output: { value: number } }>();
  const modelSeries = (id: string) => {
    let found = byModel.get(id);
    if (!found) {
      const { provider, model } = splitModelId(id);
      const labels = [provider, model];
      found = {
        provider,
        model,
        requests: modelRequests.handle(labels),
        duration: modelDuration.handle(labels),
        input: modelTokens.handle([provider, model, "input"]),
        output: modelTokens.handle([provider, model, "output"]),
      };
      if (byModel.size < MAX_SERIES) byModel.set(id, found);
    }
    return found;
  };
  const appendSeries = storeDuration.handle(["append"]);
  const finishSeries = storeDuration.handle(["finish"]);
  const byTool = new Map<string, { calls: { value: number }; duration: HistogramData }>();
  const toolSeries = (tool: string) => {
    let found = byTool.get(tool);
    if (!found) {
      found = { calls: toolCalls.handle([tool]), duration: toolDuration.handle([tool]) };
      if (byTool.size < MAX_SERIES) byTool.set(tool, found);
    }
    return found;
  };

  // The per-frame and per-batch hooks: plain numbers.
  let durableFrames = 0;
  let deltaFrames = 0;
  let appendedEvents = 0;
  const watchers = { websocket: 0, sse: 0 };

  const families: Family[] = [];
  const gauges: Family[] = [];
  const started = Math.round(performance.timeOrigin) / 1000; // when this process started
  const info = new CallbackGauge("agentkit_build_info", "The running agentkit's version (always 1)", ["version"], () => [[[options.version], 1]]);
  const startTime = new CallbackGauge("process_start_time_seconds", "Start time of the process since the Unix epoch, seconds", [], () => [[[], started]]);
  const memory = new CallbackGauge("process_resident_memory_bytes", "Resident memory size, bytes", [], () => [[[], process.memoryUsage.rss()]]);
  const watcherGauge = new CallbackGauge("agentkit_watchers", "Watchers connected to this node, by transport", ["transport"], () => [
    [["websocket"], watchers.websocket],
    [["sse"], watchers.sse],
  ]);
  const framesCounter = new CallbackGauge(
    "agentkit_frames_published_total",
    "Frames published to this node's watchers, by kind (durable: stored events and results; delta: live-only text)",
    ["kind"],
    () => [
      [["durable"], durableFrames],
      [["delta"], deltaFrames],
    ],
    "counter",
  );
  const appended = new CallbackGauge("agentkit_store_appended_events_total", "Events appended to the event log", [], () => [[[], appendedEvents]], "counter");
  for (const reason of ["first", "restart", "takeover", "continued", "store_failure"]) runsStarted.touch([reason]);
  for (const transport of ["websocket", "sse"]) slowCloses.touch([transport]);
  submitted.touch();

  const telemetry: Telemetry = {
    taskSubmitted() {
      submitted.inc();
    },
    runStarted(run) {
      runsStarted.inc([run.resume ?? "first"]);
    },
    runEnded(_taskId, kind) {
      runsEnded.inc([kind]);
    },
    taskFinished(end) {
      finished.inc([end.status, end.stopReason ?? "none"]);
      if (end.durationMs !== null) taskDuration.observe([end.status], Math.max(0, end.durationMs) / 1000);
    },
    modelCall(call) {
      const series = modelSeries(call.model);
      series.requests.value++;
      modelDuration.observeInto(series.duration, call.durationMs / 1000);
      series.input.value += call.inputTokens;
      series.output.value += call.outputTokens;
      if (call.error !== undefined && call.error !== aborted) modelErrors.inc([series.provider, series.model, call.error]);
    },
    toolCall(call) {
      const tool = call.known ? call.tool : "_unknown";
      const series = toolSeries(tool);
      series.calls.value++;
      toolDuration.observeInto(series.duration, call.durationMs / 1000);
      if (call.error !== undefined && call.error !== aborted) toolErrors.inc([tool, call.error]);
    },
    storeWrite(operation, durationMs, events, failed) {
      storeDuration.observeInto(operation === "append" ? appendSeries : finishSeries, durationMs / 1000);
      if (failed) storeErrors.inc([operation]);
      else appendedEvents += events;
    },
    framePublished(kind) {
      if (kind === "durable") durableFrames++;
      else deltaFrames++;
    },
    watcherOpened(transport: Transport) {
      watchers[transport]++;
    },
    watcherClosed(transport: Transport) {
      watchers[transport]--;
    },
    slowClientClosed(transport: Transport) {
      slowCloses.inc([transport]);
    },
    close: async () => {},
  };

  return {
    telemetry,
    gauge(name, help, read) {
      gauges.push(new CallbackGauge(name, help, [], () => [[[], read()]]));
    },
    add(family) {
      families.push(family);
    },
    render() {
      const out: string[] = [];
      for (const family of [
        info,
        startTime,
        memory,
        submitted,
        runsStarted,
        runsEnded,
        finished,
        taskDuration,
        ...gauges,
        watcherGauge,
        framesCounter,
        slowCloses,
        modelRequests,
        modelErrors,
        modelDuration,
        modelTokens,
        toolCalls,
        toolErrors,
        toolDuration,
        storeDuration,
        storeErrors,
        appended,
        ...families,
      ]) {
        family.render(out);
      }
      return out.join("\n") + "\n";
    },
  };
}
