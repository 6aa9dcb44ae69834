import { priceSource } from '../emulator/prices.js';
import type { BenchResults, BrokerResult, PhaseResult } from './run.js';
import type { LatencySummary } from './stats.js';

/** Left-aligned first column, right-aligned figures. */
function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const ms = (value: number | null | undefined) =>
  value === null || value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(1);
const num = (value: number | undefined, digits = 3) =>
  value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits);
const ratio = (value: number | null | undefined) =>
  value === null || value === undefined ? '-' : `${value}×`;

function latencyRow(label: string, s: LatencySummary, phase: PhaseResult, withCounts: boolean): string[] {
  const w = phase.workload;
  return [
    label,
    ms(s.p50),
    ms(s.p90),
    ms(s.p99),
    ms(s.max),
    withCounts ? w.throughput.toFixed(1) : '',
    withCounts ? `${w.delivered}/${w.sent}` : '',
    withCounts ? String(w.lost) : '',
  ];
}

function latencyTable(results: BenchResults): string {
  const rows: string[][] = [['', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'msgs/s', 'delivered', 'lost']];
  const brokers: BrokerResult[] = [results.nimbus, ...(results.aedes ? [results.aedes] : [])];
  results.nimbus.phases.forEach((nimbusPhase, i) => {
    rows.push([`${nimbusPhase.phase} phase, in-flight ${nimbusPhase.workload.inflight}`]);
    for (const broker of brokers) {
      const phase = broker.phases[i];
      if (!phase) continue;
      const w = phase.workload;
      rows.push(latencyRow(`  ${broker.broker} publish→deliver`, w.deliver, phase, true));
      if (w.arrive) rows.push(latencyRow(`  ${broker.broker} publish→arrive`, w.arrive, phase, false));
      if (w.pubrec) rows.push(latencyRow(`  ${broker.broker} publish→PUBREC`, w.pubrec, phase, false));
      const ack = w.ackPacket ?? 'PUBACK (none at QoS 0)';
      rows.push(latencyRow(`  ${broker.broker} publish→${ack}`, w.puback, phase, false));
    }
    const r = results.ratios?.[i];
    if (r) {
      for (const metric of ['deliver', 'arrive', 'pubrec', 'puback'] as const) {
        const f = r[metric];
        if (!f) continue;
        rows.push([
          `  Nimbus/Aedes ${metric}`,
          ratio(f.p50),
          ratio(f.p90),
          ratio(f.p99),
          ratio(f.max),
          metric === 'deliver' ? ratio(r.throughput) : '',
        ]);
      }
    }
  });
  return table(rows);
}

function unitsTable(phases: PhaseResult[]): string {
  const metered = phases.filter((p) => p.units);
  const header = [
    'Nimbus units per message',
    ...metered.map((p) => `${p.phase} (in-flight ${p.workload.inflight})`),
  ];
  const rows: string[][] = [header];
  const add = (label: string, value: (p: PhaseResult) => number | undefined, digits = 3) =>
    rows.push([label, ...metered.map((p) => num(value(p), digits))]);
  add('API Gateway messages in / publish', (p) => p.units?.gateway.messagesInPerPublish);
  add('API Gateway messages out / publish', (p) => p.units?.gateway.messagesOutPerPublish);
  add('API Gateway billed units / publish', (p) => p.units?.gateway.billedPerPublish);
  const functions = [
    ...new Set(metered.flatMap((p) => Object.keys(p.units?.lambdaRequestsPerPublish ?? {}))),
  ];
  for (const name of functions.sort()) {
    add(`Lambda ${name} requests / publish`, (p) => p.units?.lambdaRequestsPerPublish[name] ?? 0);
  }
  add('Lambda requests / publish (all)', (p) => p.units?.lambdaRequestsPerPublishTotal);
  add('Lambda GB-s / publish', (p) => p.units?.gbSecondsPerPublish, 6);
  const operations = [
    ...new Set(metered.flatMap((p) => Object.keys(p.units?.dynamoRequestsPerPublish ?? {}))),
  ];
  for (const op of operations.sort()) {
    add(`DynamoDB ${op} / publish`, (p) => p.units?.dynamoRequestsPerPublish[op] ?? 0);
    add(`DynamoDB ${op} / delivery`, (p) => p.units?.dynamoRequestsPerDelivery[op] ?? 0);
  }
  add('DynamoDB write units / publish', (p) => p.units?.writeUnitsPerPublish);
  add('DynamoDB read units / publish', (p) => p.units?.readUnitsPerPublish);
  const sqsOperations = [
    ...new Set(metered.flatMap((p) => Object.keys(p.units?.sqsRequestsPerPublish ?? {}))),
  ];
  for (const op of sqsOperations.sort()) {
    add(`SQS ${op} / publish`, (p) => p.units?.sqsRequestsPerPublish[op] ?? 0);
  }
  add('SQS billed requests / publish', (p) => p.units?.sqsBilledPerPublish);
  for (const name of functions) {
    add(`Lambda ${name} new instances in phase`, (p) => p.units?.newInstances[name] ?? 0, 0);
  }
  add('connection-minutes in phase (2 clients)', (p) => p.units?.connectionMinutes);
  return table(rows);
}

export function formatReport(results: BenchResults): string {
  const { config, nimbus } = results;
  const lines = [
    '',
    `Nimbus MQTT benchmark, ${results.startedAt}`,
    `${config.messages} QoS ${config.qos} messages per phase (publish and subscription QoS ${config.qos}), ` +
      `1 publisher → 1 subscriber on bench/+/t, all on 127.0.0.1; loss timeout ${config.lossTimeoutMs / 1000} s`,
    `Subscriber session: ${
      config.persistent
        ? `persistent (clean: false, client id ${config.subscriberClientId})`
        : 'clean (clean: true, client id per run)'
    }`,
    ...(config.qos === 2
      ? [
          'QoS 2: arrive = the PUBLISH reaching the subscriber; deliver = its message event, which MQTT.js ' +
            'raises on PUBREL (one more round trip through the broker)',
        ]
      : []),
    `Machine: ${results.machine.cpus} CPUs; 1-minute load average ` +
      `${num(results.machine.loadAverage.atStart[0], 2)} at start, ${num(results.machine.loadAverage.atEnd[0], 2)} at end`,
    `Nimbus: emulator start-to-ready ${nimbus.readyMs.toFixed(0)} ms (startEmulator call to resolution)`,
    results.aedes
      ? `Aedes: ${results.aedes.url}, ready in ${results.aedes.readyMs.toFixed(0)} ms`
      : 'Aedes: skipped',
    '',
    latencyTable(results),
    '',
    unitsTable(nimbus.phases),
    '',
  ];
  for (const phase of nimbus.phases) {
    if (!phase.cost) continue;
    lines.push(
      `Cost per million messages, ${phase.phase} phase (${priceSource.region} list prices of ${priceSource.date}, Lambda arm64; emulator durations):`,
    );
    lines.push(...phase.cost.arithmetic.map((line) => `  ${line}`), '');
  }
  return `${lines.join('\n')}\n`;
}
