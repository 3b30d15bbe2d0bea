/**
 * A mergeable latency histogram, cheap enough to record millions of samples in a client process:
 * 1 µs buckets up to 2 ms, then 1024 buckets per power of two (under 0.1% error), exact max.
 * Client processes send it serialised (sparse) to the orchestrator, which merges them.
 */

const LINEAR = 2048;
const PER_OCTAVE = 1024;
const OCTAVES = 21; // 2^11 µs … 2^31 µs (≈ 36 min)
const BUCKETS = LINEAR + OCTAVES * PER_OCTAVE;
const MAX_MICROS = 2 ** 31 - 1;

export interface SerializedHistogram {
  /** [bucket index, count] pairs of the non-empty buckets. */
  buckets: [number, number][];
  count: number;
  sum: number;
  max: number;
  /** Samples below zero (clock skew), recorded as 0. */
  negative: number;
}

function indexOf(micros: number): number {
  if (micros < LINEAR) return micros;
  const exponent = 31 - Math.clz32(micros); // ≥ 11
  const shift = exponent - 10;
  return LINEAR + (exponent - 11) * PER_OCTAVE + ((micros >>> shift) - PER_OCTAVE);
}

/** The middle of a bucket, in ms. */
function valueOf(index: number): number {
  if (index < LINEAR) return index / 1000;
  const octave = Math.floor((index - LINEAR) / PER_OCTAVE);
  const sub = (index - LINEAR) % PER_OCTAVE;
  const shift = octave + 1;
  const lower = (PER_OCTAVE + sub) * 2 ** shift;
  return (lower + 2 ** shift / 2) / 1000;
}

export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  sum = 0;
  max = 0;
  negative = 0;

  record(ms: number): void {
    if (!(ms >= 0)) {
      this.negative++;
      ms = 0;
    }
    const micros = Math.min(MAX_MICROS, Math.round(ms * 1000));
    const index = indexOf(micros);
    this.counts[index] = this.counts[index]! + 1;
    this.count++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }

  merge(other: SerializedHistogram): void {
    for (const [index, count] of other.buckets) this.counts[index] = this.counts[index]! + count;
    this.count += other.count;
    this.sum += other.sum;
    this.negative += other.negative;
    if (other.max > this.max) this.max = other.max;
  }

  serialize(): SerializedHistogram {
    const buckets: [number, number][] = [];
    for (let index = 0; index < BUCKETS; index++) {
      const count = this.counts[index]!;
      if (count > 0) buckets.push([index, count]);
    }
    return { buckets, count: this.count, sum: this.sum, max: this.max, negative: this.negative };
  }

  /** The value at quantile `q` (0–1) in ms; the exact max for q = 1; NaN when empty. */
  quantile(q: number): number {
    if (this.count === 0) return Number.NaN;
    if (q >= 1) return this.max;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let index = 0; index < BUCKETS; index++) {
      seen += this.counts[index]!;
      if (seen >= rank) return Math.min(valueOf(index), this.max);
    }
    return this.max;
  }

  summary(): LatencySummary {
    return {
      samples: this.count,
      p50_ms: round(this.quantile(0.5)),
      p99_ms: round(this.quantile(0.99)),
      p999_ms: round(this.quantile(0.999)),
      max_ms: round(this.max),
      mean_ms: round(this.count ? this.sum / this.count : Number.NaN),
      negative_samples: this.negative,
    };
  }

  static from(...parts: SerializedHistogram[]): LatencyHistogram {
    const histogram = new LatencyHistogram();
    for (const part of parts) histogram.merge(part);
    return histogram;
  }
}

export interface LatencySummary {
  samples: number;
  p50_ms: number;
  p99_ms: number;
  p999_ms: number;
  max_ms: number;
  mean_ms: number;
  negative_samples: number;
}

function round(value: number): number {
  return Number.isFinite(value) ? Math.round(value * 1000) / 1000 : value;
}
