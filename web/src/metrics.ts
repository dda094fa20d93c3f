// Just enough of the Prometheus text format to show /metrics to a person: samples with labels,
// sums by label, and quantiles estimated from histogram buckets (as histogram_quantile does).

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(LABEL)) {
      labels[l[1]] = l[2].replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
    }
    const value = m[3] === "+Inf" ? Infinity : m[3] === "-Inf" ? -Infinity : Number(m[3]);
    out.push({ name: m[1], labels, value });
  }
  return out;
}

export function select(samples: Sample[], name: string, where: Record<string, string> = {}): Sample[] {
  return samples.filter(
    (s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v),
  );
}

export function sumBy(samples: Sample[], name: string, label: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of select(samples, name)) {
    const key = s.labels[label] ?? "";
    out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}

export interface HistogramSummary {
  count: number;
  mean: number;
  p50: number;
  p95: number;
}

export function histogram(
  samples: Sample[],
  name: string,
  where: Record<string, string> = {},
): HistogramSummary | null {
  const count = select(samples, `${name}_count`, where).reduce((a, s) => a + s.value, 0);
  const sum = select(samples, `${name}_sum`, where).reduce((a, s) => a + s.value, 0);
  if (!count) return null;
  const buckets = new Map<number, number>();
  for (const s of select(samples, `${name}_bucket`, where)) {
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + s.value);
  }
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  return { count, mean: sum / count, p50: quantile(0.5, sorted), p95: quantile(0.95, sorted) };
}

/** Linear interpolation inside the bucket holding the rank, like PromQL's histogram_quantile. */
export function quantile(q: number, buckets: [number, number][]): number {
  if (!buckets.length) return NaN;
  const total = buckets[buckets.length - 1][1];
  if (!total) return NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, cumulative] of buckets) {
    if (cumulative >= rank) {
      if (le === Infinity) return prevLe; // beyond the last finite bucket: its bound is all we know
      const inBucket = cumulative - prevCount;
      return inBucket ? prevLe + ((le - prevLe) * (rank - prevCount)) / inBucket : le;
    }
    prevLe = le;
    prevCount = cumulative;
  }
  return prevLe;
}
