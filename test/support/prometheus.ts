import assert from 'node:assert/strict';

export interface ParsedSample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

export interface ParsedFamily {
  readonly type: string;
  readonly help: string;
  readonly samples: ParsedSample[];
}

const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const labelPair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/y;

function parseLabels(text: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  if (!text) return labels;
  labelPair.lastIndex = 0;
  while (labelPair.lastIndex < text.length) {
    const match = labelPair.exec(text);
    assert.ok(match, `malformed labels: {${text}}`);
    labels[match[1]] = match[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  }
  return labels;
}

function parseValue(text: string): number {
  if (text === '+Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  if (text === 'NaN') return Number.NaN;
  const value = Number(text);
  assert.ok(!Number.isNaN(value), `not a number: ${text}`);
  return value;
}

/**
 * A strict reader of the Prometheus text format for tests: every sample must belong to a family
 * announced by `# HELP` and `# TYPE` before it, histogram buckets must be cumulative and end in
 * `le="+Inf"` equal to `_count`. Fails the test on anything else.
 */
export function parseExposition(text: string): Map<string, ParsedFamily> {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a line feed');
  const families = new Map<string, ParsedFamily>();
  const helps = new Map<string, string>();
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ')) {
      const [, name, ...help] = line.split(' ').slice(1);
      assert.ok(!helps.has(name), `one HELP per family: ${name}`);
      helps.set(name, help.join(' '));
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [name, type, ...rest] = line.slice('# TYPE '.length).split(' ');
      assert.equal(rest.length, 0, line);
      assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type), line);
      assert.ok(!families.has(name), `one TYPE per family: ${name}`);
      assert.ok(helps.has(name), `HELP before TYPE for ${name}`);
      families.set(name, { type, help: helps.get(name) ?? '', samples: [] });
      continue;
    }
    const match = sampleLine.exec(line);
    assert.ok(match, `not a sample line: ${line}`);
    const name = match[1];
    const base = name.replace(/_(bucket|sum|count)$/, '');
    const family =
      families.get(name) ?? (families.get(base)?.type === 'histogram' ? families.get(base) : undefined);
    assert.ok(family, `sample ${name} has no # TYPE'd family before it`);
    family.samples.push({ name, labels: parseLabels(match[2]), value: parseValue(match[3]) });
  }
  for (const [name, family] of families) {
    if (family.type === 'histogram') checkHistogram(name, family);
    if (family.type === 'counter')
      for (const s of family.samples) assert.ok(s.value >= 0, `counter ${name} is negative`);
  }
  return families;
}

function checkHistogram(name: string, family: ParsedFamily): void {
  const series = new Map<string, ParsedSample[]>();
  for (const sample of family.samples) {
    const { le: _le, ...rest } = sample.labels;
    const key = JSON.stringify(rest);
    series.set(key, [...(series.get(key) ?? []), sample]);
  }
  for (const [key, samples] of series) {
    const buckets = samples.filter((s) => s.name === `${name}_bucket`);
    const count = samples.find((s) => s.name === `${name}_count`);
    assert.ok(count && samples.some((s) => s.name === `${name}_sum`), `${name}${key} has _sum and _count`);
    assert.ok(buckets.length > 0, `${name}${key} has buckets`);
    let previous = { le: Number.NEGATIVE_INFINITY, count: 0 };
    for (const bucket of buckets) {
      const le = parseValue(bucket.labels.le);
      assert.ok(le > previous.le, `${name}${key} buckets in increasing order`);
      assert.ok(bucket.value >= previous.count, `${name}${key} buckets are cumulative`);
      previous = { le, count: bucket.value };
    }
    assert.equal(previous.le, Number.POSITIVE_INFINITY, `${name}${key} ends with le="+Inf"`);
    assert.equal(previous.count, count.value, `${name}${key}: the +Inf bucket equals _count`);
  }
}

/** The value of the one sample of `family` whose labels include `labels`; 0 when there is none. */
export function sampleValue(
  families: Map<string, ParsedFamily>,
  family: string,
  labels: Record<string, string> = {},
  name = family,
): number {
  const found = families
    .get(family)
    ?.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok((found?.length ?? 0) <= 1, `more than one ${name} sample matches ${JSON.stringify(labels)}`);
  return found?.[0]?.value ?? 0;
}
