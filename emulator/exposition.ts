/**
 * The Prometheus text exposition format (version 0.0.4) and a histogram, for the emulator's
 * `/metrics` endpoint (emulator/metrics.ts).
 *
 * Written here rather than with prom-client: every counter already lives in the Meter and is read
 * at scrape time, so what a registry would add is one histogram and ~40 lines of text formatting,
 * against a dependency on @opentelemetry/api and tdigest and a process-wide default registry that
 * two emulators in one test process would share.
 */
export type Labels = Readonly<Record<string, string>>;

/** One metric family: a counter or gauge with its samples, or a histogram with its series. */
export type MetricFamily =
  | {
      readonly name: string;
      readonly help: string;
      readonly type: 'counter' | 'gauge';
      readonly samples: ReadonlyArray<{ readonly labels?: Labels; readonly value: number }>;
    }
  | {
      readonly name: string;
      readonly help: string;
      readonly type: 'histogram';
      readonly series: ReadonlyArray<{ readonly labels?: Labels; readonly value: HistogramSnapshot }>;
    };

/** The Content-Type of the text format. */
export const expositionContentType = 'text/plain; version=0.0.4; charset=utf-8';

const escapeHelp = (text: string) => text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeLabel = (text: string) => text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

function formatLabels(labels: Labels | undefined): string {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return '';
  return `{${entries.map(([name, value]) => `${name}="${escapeLabel(value)}"`).join(',')}}`;
}

/**
 * Writes metric families in the Prometheus text format: a `# HELP` and a `# TYPE` line per family,
 * then its samples; a histogram as cumulative `_bucket` lines (the last `le="+Inf"`), `_sum` and `_count`.
 *
 * @example
 * exposition([{ name: 'up', help: 'Is it up.', type: 'gauge', samples: [{ value: 1 }] }]);
 * // '# HELP up Is it up.\n# TYPE up gauge\nup 1\n'
 */
export function exposition(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`);
    if (family.type !== 'histogram') {
      for (const { labels, value } of family.samples)
        lines.push(`${family.name}${formatLabels(labels)} ${formatValue(value)}`);
      continue;
    }
    for (const { labels, value } of family.series) {
      for (const [le, cumulative] of value.buckets)
        lines.push(`${family.name}_bucket${formatLabels({ ...labels, le: formatValue(le) })} ${cumulative}`);
      lines.push(`${family.name}_sum${formatLabels(labels)} ${formatValue(value.sum)}`);
      lines.push(`${family.name}_count${formatLabels(labels)} ${value.count}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export interface HistogramSnapshot {
  /** Upper bounds with cumulative counts; the last bound is +Inf and its count is `count`. */
  readonly buckets: ReadonlyArray<readonly [number, number]>;
  readonly sum: number;
  readonly count: number;
}

/** Bounds in seconds: 1 ms (a local hop) to 10 s (a retried batch). */
export const stageBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** A Prometheus histogram: counts per bucket, kept non-cumulative and summed up when read. */
export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(private readonly bounds: readonly number[] = stageBuckets) {
    this.counts = new Array(bounds.length + 1).fill(0);
  }

  observe(value: number): void {
    const index = this.bounds.findIndex((bound) => value <= bound);
    this.counts[index < 0 ? this.bounds.length : index]++;
    this.sum += value;
    this.count++;
  }

  snapshot(): HistogramSnapshot {
    let cumulative = 0;
    const buckets = [...this.bounds, Number.POSITIVE_INFINITY].map((bound, i) => {
      cumulative += this.counts[i];
      return [bound, cumulative] as const;
    });
    return { buckets, sum: this.sum, count: this.count };
  }
}
