/**
 * A strict parser of the Prometheus text exposition format 0.0.4, for tests: it throws, naming the
 * line, on anything the format does not allow or that a scraper would reject — a sample before its
 * family's HELP/TYPE, a family split in two, a bad metric or label name, a bad escape, a duplicate
 * series, a value that is not a Go float, a histogram whose buckets are not cumulative, lack
 * `le="+Inf"`, or disagree with `_count`, or lack `_sum`.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const FLOAT = /^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)$/;

export function parseFloatGo(text: string): number {
  if (!FLOAT.test(text)) throw new Error(`not a float: '${text}'`);
  if (text === "+Inf" || text === "Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  if (text === "NaN") return Number.NaN;
  return Number(text);
}

/** Parses `{a="x",b="y\"z"}` starting at `text[start] === "{"`; returns the labels and the index after `}`. */
function parseLabels(text: string, start: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let index = start + 1;
  if (text[index] === "}") return { labels, end: index + 1 };
  for (;;) {
    const eq = text.indexOf("=", index);
    if (eq < 0) throw new Error("label without '='");
    const name = text.slice(index, eq);
    if (!LABEL_NAME.test(name) || name.startsWith("__")) throw new Error(`bad label name '${name}'`);
    if (name in labels) throw new Error(`label '${name}' twice`);
    if (text[eq + 1] !== '"') throw new Error(`label '${name}': value not quoted`);
    let value = "";
    let at = eq + 2;
    for (;;) {
      const char = text[at];
      if (char === undefined) throw new Error(`label '${name}': unterminated value`);
      if (char === "\n") throw new Error(`label '${name}': raw line feed in value`);
      if (char === '"') break;
      if (char === "\\") {
        const next = text[at + 1];
        if (next === "\\") value += "\\";
        else if (next === '"') value += '"';
        else if (next === "n") value += "\n";
        else throw new Error(`label '${name}': bad escape '\\${next}'`);
        at += 2;
        continue;
      }
      value += char;
      at++;
    }
    labels[name] = value;
    index = at + 1;
    if (text[index] === ",") {
      index++;
      if (text[index] === "}") return { labels, end: index + 1 }; // a trailing comma is allowed
      continue;
    }
    if (text[index] === "}") return { labels, end: index + 1 };
    throw new Error(`label '${name}': expected ',' or '}'`);
  }
}

function familyOf(sampleName: string, families: Map<string, MetricFamily>): MetricFamily | undefined {
  const exact = families.get(sampleName);
  if (exact) return exact;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!sampleName.endsWith(suffix)) continue;
    const family = families.get(sampleName.slice(0, -suffix.length));
    if (family && (family.type === "histogram" || (family.type === "summary" && suffix !== "_bucket"))) return family;
  }
  return undefined;
}

export function parseExposition(text: string): Map<string, MetricFamily> {
  if (!text.endsWith("\n")) throw new Error("the exposition must end with a line feed");
  const families = new Map<string, MetricFamily>();
  const seenSeries = new Set<string>();
  const closed = new Set<string>();
  let current: MetricFamily | undefined;
  const lines = text.slice(0, -1).split("\n");
  lines.forEach((line, lineIndex) => {
    const where = `line ${lineIndex + 1} '${line}'`;
    try {
      if (line === "") throw new Error("empty line");
      if (line.startsWith("#")) {
        const match = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
        if (!match) {
          if (/^# (HELP|TYPE)\b/.test(line)) throw new Error("malformed HELP/TYPE");
          return; // a comment
        }
        const [, kind, name, rest] = match as unknown as [string, "HELP" | "TYPE", string, string];
        if (!METRIC_NAME.test(name)) throw new Error(`bad metric name '${name}'`);
        let family = families.get(name);
        if (!family) {
          if (closed.has(name)) throw new Error(`family '${name}' appears twice`);
          if (current && current.name !== name) closed.add(current.name);
          family = { name, help: "", type: "untyped", samples: [] };
          families.set(name, family);
          current = family;
        } else if (family !== current || family.samples.length > 0) {
          throw new Error(`${kind} of '${name}' after its samples or another family`);
        }
        if (kind === "HELP") {
          if (family.help) throw new Error("HELP twice");
          if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ""))) throw new Error("bad escape in HELP");
          family.help = rest.replace(/\\(\\|n)/g, (_, char: string) => (char === "n" ? "\n" : "\\"));
        } else {
          if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(rest)) throw new Error(`bad TYPE '${rest}'`);
          if (family.type !== "untyped" || (family as { typed?: boolean }).typed) throw new Error("TYPE twice");
          family.type = rest as MetricFamily["type"];
          (family as { typed?: boolean }).typed = true;
        }
        return;
      }
      const nameEnd = line.search(/[{ ]/);
      if (nameEnd < 0) throw new Error("sample without a value");
      const name = line.slice(0, nameEnd);
      if (!METRIC_NAME.test(name)) throw new Error(`bad metric name '${name}'`);
      let labels: Record<string, string> = {};
      let rest = line.slice(nameEnd);
      if (rest.startsWith("{")) {
        const parsed = parseLabels(line, nameEnd);
        labels = parsed.labels;
        rest = line.slice(parsed.end);
      }
      const parts = rest.split(" ");
      if (parts[0] !== "" || parts.length < 2 || parts.length > 3) throw new Error("expected ' <value> [timestamp]'");
      const value = parseFloatGo(parts[1]!);
      if (parts[2] !== undefined && !/^-?\d+$/.test(parts[2])) throw new Error("bad timestamp");
      const family = familyOf(name, families);
      if (!family) throw new Error(`sample of '${name}' without HELP/TYPE before it`);
      if (family !== current) throw new Error(`sample of '${family.name}' outside its family's block`);
      if (!(family as { typed?: boolean }).typed || !family.help) throw new Error(`family '${family.name}' lacks HELP or TYPE`);
      const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
      if (seenSeries.has(key)) throw new Error("duplicate series");
      seenSeries.add(key);
      if (family.type === "counter" && !(value >= 0)) throw new Error("a counter must be >= 0");
      if (family.type === "histogram" && name === family.name) throw new Error("a histogram's samples are _bucket, _sum and _count");
      if (name.endsWith("_bucket") !== ("le" in labels)) throw new Error("le goes with _bucket, and only with it");
      family.samples.push({ name, labels, value });
    } catch (error) {
      throw new Error(`exposition: ${where}: ${(error as Error).message}`);
    }
  });
  for (const family of families.values()) {
    if (!(family as { typed?: boolean }).typed || !family.help) throw new Error(`exposition: family '${family.name}' lacks HELP or TYPE`);
    if (family.type === "histogram") checkHistogram(family);
  }
  return families;
}

function checkHistogram(family: MetricFamily) {
  const groups = new Map<string, { buckets: { le: number; value: number }[]; sum?: number; count?: number }>();
  for (const sample of family.samples) {
    const { le, ...rest } = sample.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { buckets: [] }));
    if (sample.name.endsWith("_bucket")) group.buckets.push({ le: parseFloatGo(le!), value: sample.value });
    else if (sample.name.endsWith("_sum")) group.sum = sample.value;
    else group.count = sample.value;
  }
  for (const [key, group] of groups) {
    const what = `histogram ${family.name}${key}`;
    if (group.sum === undefined || group.count === undefined) throw new Error(`exposition: ${what} lacks _sum or _count`);
    if (group.buckets.length === 0) throw new Error(`exposition: ${what} has no buckets`);
    for (let index = 1; index < group.buckets.length; index++) {
      const [before, after] = [group.buckets[index - 1]!, group.buckets[index]!];
      if (!(after.le > before.le)) throw new Error(`exposition: ${what}: le not increasing`);
      if (after.value < before.value) throw new Error(`exposition: ${what}: buckets not cumulative`);
    }
    const last = group.buckets.at(-1)!;
    if (last.le !== Number.POSITIVE_INFINITY) throw new Error(`exposition: ${what}: no le="+Inf" bucket last`);
    if (last.value !== group.count) throw new Error(`exposition: ${what}: +Inf bucket ${last.value} != _count ${group.count}`);
    if (group.count > 0 && !(group.sum >= 0)) throw new Error(`exposition: ${what}: bad _sum`);
  }
}

/** The value of one series (0 when the series is absent). */
export function valueOf(families: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number {
  for (const family of families.values()) {
    for (const sample of family.samples) {
      if (sample.name !== name) continue;
      const keys = Object.keys(labels);
      if (keys.length !== Object.keys(sample.labels).length) continue;
      if (keys.every((key) => sample.labels[key] === labels[key])) return sample.value;
    }
  }
  return 0;
}
