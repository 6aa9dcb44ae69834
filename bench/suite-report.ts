/**
 * The workload suite's report, pure: the markdown of docs/benchmarks.md and two hand-written SVG
 * charts (the monthly bill per workload and service, publish-to-deliver latency per broker).
 */
import { iotCorePriceSource, priceSource } from '../emulator/prices.js';
import type { BurstOutcome } from './workloads/burst.js';
import type { CostOutcome } from './workloads/common.js';
import { type LatencyOutcome, warmUpMessages } from './workloads/latency.js';
import { minPerPublisher, type ScalingOutcome } from './workloads/scaling.js';

export interface SuiteResults {
  startedAt: string;
  machine: {
    cpuModel: string;
    cpus: number;
    memoryGb: number;
    node: string;
    platform: string;
    load: number[];
  };
  scale: number;
  streamPollIntervalMs: number;
  /** Brokers compared for speed, and why one is missing. */
  brokers: string[];
  notes: string[];
  cost: CostOutcome[];
  latency?: LatencyOutcome;
  scaling?: ScalingOutcome;
  burst?: BurstOutcome;
}

const usd = (n: number) =>
  !Number.isFinite(n)
    ? '—'
    : n >= 100
      ? `$${n.toFixed(0)}`
      : n >= 1
        ? `$${n.toFixed(2)}`
        : `$${n.toPrecision(2)}`;
const ratio = (a: number, b: number) => {
  const r = a / b;
  if (!(b > 0) || !Number.isFinite(r)) return '—';
  return `${r >= 100 ? r.toFixed(0) : r.toFixed(2)}×`;
};
const ms = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(1));
const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The bill table: per million publishes and per month, Nimbus against IoT Core and the floor. */
export function costTable(cost: readonly CostOutcome[]): string {
  const rows = cost.map((c) => {
    const idle = c.spec.publishesPerSecond === 0;
    const perMillion = (n: number) => (idle ? '—' : usd(n));
    return `| ${c.title} | ${perMillion(c.nimbus.perMillion)} | ${perMillion(c.iotCore.perMillion)} | ${perMillion(c.floor.perMillion)} | ${usd(c.nimbus.perMonth)} | ${usd(c.iotCore.perMonth)} | ${usd(c.floor.perMonth)} | ${ratio(c.nimbus.perMonth, c.iotCore.perMonth)} | ${ratio(c.nimbus.perMonth, c.floor.perMonth)} |`;
  });
  return [
    '| Workload | Nimbus / M publishes | IoT Core / M publishes | Floor / M publishes | Nimbus / month | IoT Core / month | Floor / month | Nimbus ÷ IoT Core | Nimbus ÷ floor |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
}

/** Units Nimbus was measured to use per publish (per PINGREQ for the idle fleet). */
export function unitsTable(cost: readonly CostOutcome[]): string {
  const keys = [
    'gatewayMessages',
    'lambdaRequests',
    'lambdaGbSeconds',
    'dynamoWru',
    'dynamoRru',
    'sqsRequests',
  ];
  const rows = cost.map(
    (c) =>
      `| ${c.title} | ${c.measured.publishes || '—'} | ${c.measured.deliveries || '—'} | ${keys.map((k) => (c.measured.perPublish[k] ?? Number.NaN).toPrecision(3)).join(' | ')} | ${c.scaled}${c.measured.shortfall ? `; **incomplete: ${c.measured.shortfall}**` : ''} |`,
  );
  return [
    '| Workload | Publishes | Deliveries | API GW msgs | Lambda req | Lambda GB-s | DynamoDB WRU | DynamoDB RRU | SQS req | Run as |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...rows,
  ].join('\n');
}

function latencyTable(latency: LatencyOutcome): string {
  const nimbus = (qos: 0 | 1) => latency.results.find((r) => r.broker === 'nimbus' && r.qos === qos);
  const rows = latency.results.map((r) => {
    const base = nimbus(r.qos);
    return `| ${r.broker} | ${r.qos} | ${ms(r.deliver.p50)} | ${ms(r.deliver.p99)} | ${r.lost} | ${r.broker === 'nimbus' || !base ? '—' : `${ratio(base.deliver.p50, r.deliver.p50)} / ${ratio(base.deliver.p99, r.deliver.p99)}`} |`;
  });
  const stages = Object.entries(latency.stages).map(
    ([qos, byStage]) =>
      `| ${qos} | ${Object.values(byStage)
        .map((v) => ms(v))
        .join(' | ')} |`,
  );
  const stageNames = Object.keys(Object.values(latency.stages)[0] ?? {});
  const perMessage = Object.entries(latency.perMessage).map(
    ([qos, m]) =>
      `| ${qos} | ${m.own.count} | ${ms(m.own.p50)} | ${ms(m.own.p99)} | ${ms(m.streamWait.p50)} | ${ms(m.streamWait.p99)} | ${ms(m.frameQueue.p50)} | ${ms(m.messageHandler.p50)} | ${ms(m.fanout.p50)} |`,
  );
  return [
    `${latency.messages} messages per broker and QoS, one in flight (publish call → subscriber's message event), after ${warmUpMessages[0]} warm-up messages at QoS 0 and ${warmUpMessages[1]} more at QoS 1 on Nimbus (its functions' and DynamoDB Local's JIT) and 5 on the others.`,
    '',
    '| Broker | QoS | p50 ms | p99 ms | Lost | Nimbus ÷ this (p50 / p99) |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    ...(stageNames.length
      ? [
          "Nimbus's time per stage (mean ms per publish, from `/metrics` read before and after):",
          '',
          `| QoS | ${stageNames.join(' | ')} |`,
          `|---|${stageNames.map(() => '---:').join('|')}|`,
          ...stages,
        ]
      : []),
    ...(perMessage.length
      ? [
          '',
          "Nimbus's own work per message (frame_queue + message_handler + fanout of each message, joined by the emulator's publish traces), the stream wait apart, ms:",
          '',
          '| QoS | Messages | own p50 | own p99 | stream wait p50 | stream wait p99 | frame_queue p50 | message_handler p50 | fanout p50 |',
          '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
          ...perMessage,
        ]
      : []),
  ].join('\n');
}

function scalingTable(scaling: ScalingOutcome): string {
  const brokers = [...new Set(scaling.results.map((r) => r.broker))];
  const counts = [...new Set(scaling.results.map((r) => r.publishers))];
  const of = (b: string, n: number) => scaling.results.find((r) => r.broker === b && r.publishers === n);
  return [
    `QoS 1 messages into one subscriber, 4 in flight per publisher (messages/s): ${scaling.messages} split across the publishers, each sending at least ${minPerPublisher} (five windows, so that many publishers make a stream rather than one burst), i.e. ${counts.map((n) => `${of(brokers[0] ?? '', n)?.sent ?? '?'} with ${n}`).join(', ')}.`,
    '',
    `| Broker | ${counts.map((n) => `${n} pub`).join(' | ')} | ${counts.at(-1)} ÷ ${counts[0]} |`,
    `|---|${counts.map(() => '---:').join('|')}|---:|`,
    ...brokers.map((b) => {
      const first = of(b, counts[0] ?? 1)?.throughput ?? Number.NaN;
      const last = of(b, counts.at(-1) ?? 1)?.throughput ?? Number.NaN;
      return `| ${b} | ${counts.map((n) => (of(b, n)?.throughput ?? Number.NaN).toFixed(1)).join(' | ')} | ${ratio(last, first)} |`;
    }),
  ].join('\n');
}

function burstTable(burst: BurstOutcome): string {
  return [
    `One QoS 0 publish to ${burst.subscribers.toLocaleString('en-US')} subscribers, each on its own connection: time to the first and to the last delivery${burst.load === undefined ? '' : ` (load average ${burst.load.toFixed(2)} at the publish)`}.`,
    '',
    '| Broker | ms to first delivery | ms to last delivery | Delivered |',
    '|---|---:|---:|---:|',
    ...burst.results.map(
      (r) =>
        `| ${r.broker} | ${r.firstMs === undefined ? '–' : ms(r.firstMs)} | ${ms(r.ms)} | ${r.delivered} |`,
    ),
  ].join('\n');
}

/**
 * docs/benchmarks.md: machine, date, scale, the bill table, units, speed tables and the charts.
 *
 * @example
 * writeFileSync('docs/benchmarks.md', benchmarksMarkdown(results));
 */
export function benchmarksMarkdown(results: SuiteResults): string {
  const { machine } = results;
  return [
    '# Benchmarks',
    '',
    `Generated by \`npm run bench -- all --scale ${results.scale}\` on ${results.startedAt.slice(0, 10)} (${results.startedAt}).`,
    '',
    `Machine: ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGb.toFixed(1)} GB memory, ${machine.platform}, Node ${machine.node}; load average at start ${machine.load.map((l) => l.toFixed(2)).join(' / ')}.`,
    `Emulator stream poll every ${results.streamPollIntervalMs} ms (AWS reads a shard about every 250 ms). Speed compared with: ${results.brokers.join(', ')}.`,
    '',
    '## The bill',
    '',
    `Nimbus's bill is priced from the units the emulator metered per message (API Gateway, Lambda, DynamoDB, SQS at ${priceSource.region} list prices of ${priceSource.date}, no free tier), extrapolated to the full workload over a 30-day month. AWS IoT Core's is computed from its published metering (5 KB increments per publish received and per delivery, a subscriber's QoS 1 PUBACK as one message, pings free, connectivity per connection-minute; ${iotCorePriceSource.region}, ${iotCorePriceSource.url}, read ${iotCorePriceSource.date}). The floor is what the API Gateway messages the protocol cannot avoid (each publish in, each delivery out, PUBACKs at QoS 1, pings) and the connection-minutes cost on their own.`,
    '',
    costTable(results.cost),
    '',
    '![Monthly bill per workload and service](benchmarks-bill.svg)',
    '',
    'Units Nimbus used per publish (per PINGREQ for the idle fleet), as measured:',
    '',
    unitsTable(results.cost),
    '',
    ...(results.latency
      ? ['## Latency', '', latencyTable(results.latency), '', '![Latency](benchmarks-latency.svg)', '']
      : []),
    ...(results.scaling ? ['## Scaling', '', scalingTable(results.scaling), ''] : []),
    ...(results.burst ? ['## Burst', '', burstTable(results.burst), ''] : []),
    '## What was scaled and left out',
    '',
    ...results.notes.map((n) => `- ${n}`),
    '',
  ].join('\n');
}

/** A short figure for the top of a bar: 1621, 97.2, 0.35. */
const barLabel = (v: number) =>
  !Number.isFinite(v) ? '—' : v >= 100 ? v.toFixed(0) : v >= 1 ? v.toPrecision(3) : v.toPrecision(2);

/** A bar chart as SVG: groups of bars, one colour per series, a value label on each bar. */
export function barChart(
  title: string,
  unit: string,
  groups: ReadonlyArray<{ label: string; values: readonly number[] }>,
  series: readonly string[],
): string {
  const colours = ['#2b6cb0', '#dd6b20', '#718096', '#38a169'];
  const barWidth = 22;
  const gap = 30;
  const left = 60;
  const top = 40;
  const height = 220;
  const groupWidth = series.length * barWidth + gap;
  const width = left + groups.length * groupWidth + 20;
  const finite = groups.flatMap((g) => g.values).filter((v) => Number.isFinite(v) && v > 0);
  const max = Math.max(...finite, 1e-9);
  // Bills span orders of magnitude: a log scale keeps the small ones visible.
  const floor = Math.min(...finite, max) / 10;
  const y = (v: number) =>
    top + height - (Math.log10(Math.max(v, floor) / floor) / Math.log10(max / floor)) * height;
  const bars = groups.flatMap((g, gi) =>
    g.values.map((v, si) => {
      const x = left + gi * groupWidth + si * barWidth;
      const barTop = Number.isFinite(v) && v > 0 ? y(v) : top + height;
      return `<rect x="${x}" y="${barTop.toFixed(1)}" width="${barWidth - 2}" height="${(top + height - barTop).toFixed(1)}" fill="${colours[si % colours.length]}"><title>${escapeXml(`${g.label} — ${series[si]}: ${v.toPrecision(3)} ${unit}`)}</title></rect><text x="${x + (barWidth - 2) / 2}" y="${(barTop - 3).toFixed(1)}" font-size="8" text-anchor="middle">${barLabel(v)}</text>`;
    }),
  );
  const labels = groups.map(
    (g, gi) =>
      `<text x="${left + gi * groupWidth + (series.length * barWidth) / 2}" y="${top + height + 14}" font-size="9" text-anchor="middle">${escapeXml(g.label)}</text>`,
  );
  const legend = series.map(
    (s, si) =>
      `<rect x="${left + si * 120}" y="${top + height + 26}" width="10" height="10" fill="${colours[si % colours.length]}"/><text x="${left + si * 120 + 14}" y="${top + height + 35}" font-size="10">${escapeXml(s)}</text>`,
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${top + height + 50}" font-family="sans-serif">`,
    `<text x="${left}" y="20" font-size="13" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="10" y="${top + 10}" font-size="9">${escapeXml(unit)} (log)</text>`,
    `<line x1="${left - 4}" y1="${top + height}" x2="${width - 10}" y2="${top + height}" stroke="#333"/>`,
    ...bars,
    ...labels,
    ...legend,
    '</svg>',
    '',
  ].join('\n');
}

/** The monthly bill of each workload for Nimbus, IoT Core and the floor. */
export function billSvg(cost: readonly CostOutcome[]): string {
  return barChart(
    'Bill per month (USD), full-size workload',
    'USD/month',
    cost.map((c) => ({ label: c.name, values: [c.nimbus.perMonth, c.iotCore.perMonth, c.floor.perMonth] })),
    ['Nimbus', 'AWS IoT Core', 'API Gateway floor'],
  );
}

/** Publish-to-deliver p50 and p99 per broker and QoS. */
export function latencySvg(latency: LatencyOutcome): string {
  return barChart(
    'Publish-to-deliver latency (ms)',
    'ms',
    latency.results.map((r) => ({
      label: `${r.broker} QoS ${r.qos}`,
      values: [r.deliver.p50, r.deliver.p99],
    })),
    ['p50', 'p99'],
  );
}
