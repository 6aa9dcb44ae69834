/**
 * `npm run bench -- <workload> [--scale S]` runs a workload of the suite (bench/suite.ts); without one:
 *
 * `npm run bench [-- --messages N --inflight N --qos 0|1|2 --persistent --skip-aedes]`
 *
 * `--qos` (default 1) is the QoS of every publish and of the subscription. `--persistent` connects the
 * subscriber with clean session 0 and a fixed client id, so deliveries go to a persistent session.
 * Both apply to Nimbus and Aedes alike.
 *
 * Publish-to-deliver and PUBACK latency, throughput, and billed units per message of Nimbus in the
 * emulator, against Aedes on the same machine in the same run. Progress goes to stderr, the table to
 * stdout, and the figures to bench/results/latest.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import type { MqttClient } from 'mqtt';
import type { Emulator } from '../emulator/index.js';
import { type Broker, startAedes, startNimbus } from './brokers.js';
import {
  type CostPerMillion,
  costPerMillion,
  meterDelta,
  type UnitsPerMessage,
  unitsPerMessage,
} from './cost.js';
import { formatReport } from './report.js';
import { runSuite } from './suite.js';
import { runWorkload, type WorkloadResult } from './workload.js';

const lossTimeoutMs = 30_000;
const maxConsecutiveLosses = 5;
const settleTimeoutMs = 60_000;

export interface PhaseResult {
  phase: 'latency' | 'throughput';
  workload: WorkloadResult;
  /** Nimbus only: billed units over this phase, from emulator.meter() deltas. */
  units?: UnitsPerMessage;
  cost?: CostPerMillion;
}

export interface BrokerResult {
  broker: Broker['name'];
  url: string;
  readyMs: number;
  phases: PhaseResult[];
}

export interface BenchConfig {
  messages: number;
  inflight: number;
  /** Publish QoS and subscription QoS. */
  qos: 0 | 1 | 2;
  /** The subscriber connects with clean: false and the fixed client id `subscriberClientId`. */
  persistent: boolean;
  subscriberClientId: string;
  skipAedes: boolean;
  lossTimeoutMs: number;
}

/** Six significant digits are plenty for figures measured this coarsely; NaN (no samples) becomes null. */
const jsonNumbers = (_key: string, value: unknown) =>
  typeof value === 'number' ? (Number.isFinite(value) ? Number(value.toPrecision(6)) : null) : value;

const progress = (line: string) => process.stderr.write(`${line}\n`);

function positiveInteger(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} wants a positive integer, got ${value}`);
  return n;
}

function parseConfig(): BenchConfig {
  const { values } = parseArgs({
    options: {
      messages: { type: 'string', default: '200' },
      inflight: { type: 'string', default: '16' },
      qos: { type: 'string', default: '1' },
      persistent: { type: 'boolean', default: false },
      'skip-aedes': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const qos = Number(values.qos);
  if (qos !== 0 && qos !== 1 && qos !== 2) throw new Error(`--qos wants 0, 1 or 2, got ${values.qos}`);
  const persistent = values.persistent;
  return {
    messages: positiveInteger('messages', values.messages),
    inflight: positiveInteger('inflight', values.inflight),
    qos,
    persistent,
    // A persistent session is found again by its client id; a clean one gets a fresh id per run.
    subscriberClientId: persistent ? 'bench-sub' : `bench-sub-${process.pid}`,
    skipAedes: values['skip-aedes'],
    lossTimeoutMs,
  };
}

async function settle(emulator: Emulator): Promise<void> {
  // The subscriber's last PUBACK may still be on the wire; give it a moment to reach the gateway.
  await new Promise((resolve) => setTimeout(resolve, 250));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      progress('emulator did not settle within 60 s; metering what it has');
      resolve();
    }, settleTimeoutMs);
  });
  await Promise.race([emulator.settle(), timeout]).finally(() => clearTimeout(timer));
}

async function benchBroker(
  broker: Broker,
  config: BenchConfig,
  emulator: Emulator | undefined,
): Promise<BrokerResult> {
  const clients: MqttClient[] = [];
  try {
    const subscriber = await broker.connect(config.subscriberClientId, { clean: !config.persistent });
    clients.push(subscriber);
    const publisher = await broker.connect(`bench-pub-${process.pid}`);
    clients.push(publisher);
    const granted = await subscriber.subscribeAsync('bench/+/t', { qos: config.qos });
    if (granted[0]?.qos !== config.qos) {
      throw new Error(`${broker.name} granted QoS ${granted[0]?.qos} for bench/+/t, not ${config.qos}`);
    }

    const workload = (label: string, topic: string, messages: number, inflight: number) =>
      runWorkload(publisher, subscriber, {
        label: `${broker.name} ${label}`,
        topic,
        qos: config.qos,
        messages,
        inflight,
        lossTimeoutMs: config.lossTimeoutMs,
        maxConsecutiveLosses,
        progress,
      });

    // Warm-up at the wider window starts the function instances that window needs, so neither phase
    // counts cold starts; it is neither timed nor metered.
    progress(`[${broker.name}] warm-up: ${config.inflight} messages`);
    await workload('warm-up', 'bench/warmup/t', config.inflight, config.inflight);
    if (emulator) await settle(emulator);

    const phases: PhaseResult[] = [];
    for (const [phase, inflight] of [
      ['latency', 1],
      ['throughput', config.inflight],
    ] as const) {
      progress(
        `[${broker.name}] ${phase}: ${config.messages} QoS ${config.qos} messages, in-flight ${inflight}`,
      );
      const before = emulator?.meter();
      const result = await workload(phase, `bench/${phase}/t`, config.messages, inflight);
      const entry: PhaseResult = { phase, workload: result };
      if (emulator && before) {
        await settle(emulator);
        entry.units = unitsPerMessage(meterDelta(before, emulator.meter()), result.sent, result.delivered);
        entry.cost = costPerMillion(entry.units);
      }
      phases.push(entry);
    }
    return { broker: broker.name, url: broker.url, readyMs: broker.readyMs, phases };
  } finally {
    await Promise.all(
      clients.map((client) =>
        Promise.race([client.endAsync(), new Promise((resolve) => setTimeout(resolve, 5_000))]),
      ),
    );
  }
}

/** Nimbus ÷ Aedes per figure: above 1 means Nimbus is slower (latency) or faster (throughput). */
function ratios(nimbus: BrokerResult, aedes: BrokerResult) {
  return nimbus.phases.map((n, i) => {
    const a = aedes.phases[i];
    // Three significant digits: throughput ratios can be far below 1.
    const ratio = (x: number, y: number | undefined) =>
      y && Number.isFinite(x / y) ? Number((x / y).toPrecision(3)) : null;
    const figures = (metric: 'deliver' | 'puback' | 'pubrec' | 'arrive') =>
      Object.fromEntries(
        (['p50', 'p90', 'p99', 'max'] as const).map((p) => [
          p,
          ratio(n.workload[metric]?.[p] ?? Number.NaN, a?.workload[metric]?.[p]),
        ]),
      );
    return {
      phase: n.phase,
      deliver: figures('deliver'),
      puback: figures('puback'),
      ...(n.workload.pubrec ? { pubrec: figures('pubrec'), arrive: figures('arrive') } : {}),
      throughput: ratio(n.workload.throughput, a?.workload.throughput),
    };
  });
}

export type Ratios = ReturnType<typeof ratios>;

async function main(): Promise<void> {
  const config = parseConfig();
  const startedAt = new Date().toISOString();
  // Other work on the machine skews every figure: the load averages show whether the run had it alone.
  const loadAtStart = os.loadavg();
  progress(
    `bench: ${config.messages} QoS ${config.qos} messages per phase, in-flight 1 then ${config.inflight}, ` +
      `${config.persistent ? `persistent session (${config.subscriberClientId})` : 'clean session'}` +
      (config.skipAedes ? ', Aedes skipped' : ''),
  );

  // One broker at a time, so neither competes with the other for the two cores.
  progress('[nimbus] starting the emulator (DynamoDB Local, function workers, gateway)');
  const nimbus = await startNimbus();
  progress(`[nimbus] ready in ${nimbus.readyMs.toFixed(0)} ms at ${nimbus.url}`);
  let nimbusResult: BrokerResult;
  try {
    nimbusResult = await benchBroker(nimbus, config, nimbus.emulator);
    if (nimbus.emulator.failedBatches.length) {
      progress(`[nimbus] the fan-out gave up on ${nimbus.emulator.failedBatches.length} batch(es)`);
    }
  } finally {
    progress('[nimbus] stopping the emulator');
    await nimbus.stop();
  }

  let aedesResult: BrokerResult | undefined;
  if (!config.skipAedes) {
    const aedes = await startAedes();
    progress(`[aedes] ready in ${aedes.readyMs.toFixed(0)} ms at ${aedes.url}`);
    try {
      aedesResult = await benchBroker(aedes, config, undefined);
    } finally {
      await aedes.stop();
    }
  }

  const results = {
    startedAt,
    machine: {
      node: process.version,
      platform: `${os.platform()} ${os.arch()}`,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      loadAverage: { atStart: loadAtStart, atEnd: os.loadavg() },
    },
    config,
    nimbus: nimbusResult,
    aedes: aedesResult,
    ratios: aedesResult ? ratios(nimbusResult, aedesResult) : undefined,
  };
  process.stdout.write(formatReport(results));
  const dir = new URL('./results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  const file = new URL('latest.json', dir);
  writeFileSync(file, `${JSON.stringify(results, jsonNumbers, 2)}\n`);
  progress(`results written to bench/results/latest.json`);
}

export type BenchResults = {
  startedAt: string;
  machine: { cpus: number; loadAverage: { atStart: number[]; atEnd: number[] } };
  config: BenchConfig;
  nimbus: BrokerResult;
  aedes?: BrokerResult;
  ratios?: Ratios;
};

// A workload name first (`npm run bench -- w1 --scale 0.1`) runs the workload suite (bench/suite.ts).
const suiteArgs = process.argv.slice(2);
const first = suiteArgs[0];
const run = first !== undefined && !first.startsWith('-') ? runSuite(suiteArgs) : main();

run.then(
  () => {
    // A stray handle (a socket a broker did not close) must not keep the benchmark alive.
    setTimeout(() => {
      progress('forcing exit: handles still open after the run');
      process.exit(0);
    }, 5_000).unref();
  },
  (error: unknown) => {
    progress(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
