/**
 * `npm run bench -- <workload> [--scale S] [--seconds N] [--poll-ms MS] [--full-rate] [--subscribers N]`
 *
 * Workloads: w1 (telemetry fan-in, QoS 0 and 1), w2 (fan-out), w3 (idle fleet), w4 (16 KB messages,
 * JSON and incompressible), burst, latency, scaling, and all (every one; writes docs/benchmarks.md
 * and its charts). `--scale` shrinks device and subscriber counts to fit the machine; the bill is
 * extrapolated to the full size from the units metered per message. `--subscribers` sets the burst's
 * subscriber count whatever the scale (`npm run bench -- burst --subscribers 10000`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { type Broker, startAedes, startNimbus } from './brokers.js';
import { mosquittoInstallHint, startMosquitto } from './mosquitto.js';
import {
  benchmarksMarkdown,
  billSvg,
  costTable,
  latencySvg,
  type SuiteResults,
  unitsTable,
} from './suite-report.js';
import { burst } from './workloads/burst.js';
import { type BenchContext, settle } from './workloads/common.js';
import { fanout } from './workloads/fanout.js';
import { idle } from './workloads/idle.js';
import { large } from './workloads/large.js';
import { latency } from './workloads/latency.js';
import { scaling } from './workloads/scaling.js';
import { telemetry } from './workloads/telemetry.js';

export const workloadNames = ['w1', 'w2', 'w3', 'w4', 'burst', 'latency', 'scaling', 'all'] as const;
export type WorkloadName = (typeof workloadNames)[number];

const progress = (line: string) => process.stderr.write(`${line}\n`);

/** Six significant digits are plenty for figures measured this coarsely; NaN becomes null. */
const jsonNumbers = (_key: string, value: unknown) =>
  typeof value === 'number' ? (Number.isFinite(value) ? Number(value.toPrecision(6)) : null) : value;

function positive(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} wants a positive number, got ${value}`);
  return n;
}

/** Runs one workload (or all) and prints its tables; `all` also writes docs/benchmarks.md and the charts. */
export async function runSuite(argv: readonly string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      scale: { type: 'string', default: '0.1' },
      seconds: { type: 'string', default: '30' },
      'poll-ms': { type: 'string', default: '250' },
      'full-rate': { type: 'boolean', default: false },
      subscribers: { type: 'string' },
    },
    strict: true,
  });
  const name = positionals[0] as WorkloadName;
  if (!workloadNames.includes(name)) {
    throw new Error(`unknown workload ${positionals[0]}: choose one of ${workloadNames.join(', ')}`);
  }
  const scale = positive('scale', values.scale);
  const seconds = positive('seconds', values.seconds);
  const pollMs = positive('poll-ms', values['poll-ms']);
  const wants = (w: WorkloadName) => name === w || name === 'all';
  const speed = wants('burst') || wants('latency') || wants('scaling');

  const startedAt = new Date().toISOString();
  const load = os.loadavg();
  progress(`[nimbus] starting the emulator (stream poll every ${pollMs} ms)`);
  // A burst's pages run on instances started ahead, as provisioned concurrency would, one per core:
  // more instances would only compile the SDK's hot paths again on the same cores (docs/adr/0026).
  const nimbus = await startNimbus({
    streamPollIntervalMs: pollMs,
    ...(wants('burst') ? { fanoutPageInstances: Math.max(1, os.cpus().length) } : {}),
  });
  const others: Broker[] = [];
  const brokers = ['Nimbus (emulator, WebSocket)'];
  if (speed) {
    others.push(await startAedes());
    brokers.push('Aedes (in process, TCP)');
    const mosquitto = await startMosquitto(progress);
    if (mosquitto) {
      others.push(mosquitto.broker);
      brokers.push(
        `Mosquitto ${mosquitto.transport === 'TCP' ? '(TCP: its WebSocket listener did not start here)' : '(WebSocket listener)'}`,
      );
    } else {
      progress(mosquittoInstallHint);
      brokers.push('not Mosquitto (not installed)');
    }
  }
  const ctx: BenchContext = {
    scale,
    fullRate: values['full-rate'],
    ...(values.subscribers ? { subscribers: Math.round(positive('subscribers', values.subscribers)) } : {}),
    nimbus,
    others,
    progress,
  };
  const results: SuiteResults = {
    startedAt,
    machine: {
      cpuModel: os.cpus()[0]?.model ?? 'unknown CPU',
      cpus: os.cpus().length,
      memoryGb: os.totalmem() / 2 ** 30,
      node: process.version,
      platform: `${os.platform()} ${os.arch()}`,
      load,
    },
    scale,
    streamPollIntervalMs: pollMs,
    brokers,
    notes: [
      `Scale ${scale}: device and subscriber counts are multiplied by it (see "Run as"); ${values['full-rate'] ? "the fewer devices publish as much more often (and keep alive as much more often), so the aggregate rate, and with it the batches of the frame queue and of the stream, are the full-size workload's" : 'traffic runs at the real per-device rate, so the aggregate rate is scaled too: W1 runs at a tenth of its 100 publishes/s at scale 0.1 and a hundredth at 0.01 (--full-rate keeps the full rate, which the emulator carries only with cores to spare: it spends about 50 ms of CPU per publish, docs/adr/0025-full-rate-w1.md)'}; traffic runs for ${seconds} s. The frame queue forms batches as Lambda's pollers do (what is visible when a poller asks); the run prints frames per batch and their wait. Units are metered, not computed. Monthly figures are for the full-size workload.`,
      'A run that lost connections (a client closed by its own keep-alive when the emulator fell behind), could not send publishes or missed deliveries is marked incomplete in the units table, with what went missing; its units are per publish that reached the wire.',
      'Connects and subscribes are paid once per session and are left out of the per-message units; connection-minutes are priced from the full-size spec (every connection held all month).',
      "The keep-alive deadline check and the sweep that publishes the `$SYS/` figures (scheduled invocations, once a minute on AWS) are fixed costs of the deployment, not of a workload, and are not included; neither are free tiers nor IoT Core's cheaper tiers above a billion messages a month.",
      'Lambda GB-seconds are the durations measured in the emulator on this machine (shared, loaded); on AWS they are likely shorter, so the Lambda compute share of the bill is an upper bound.',
      'The idle fleet is run for one keep-alive period and a bit; its per-PINGREQ cost is priced at one PINGREQ per keep-alive per device.',
      'Aedes runs in the benchmark process over TCP; Nimbus over WebSocket; Mosquitto over the transport named above. Nimbus runs in the emulator on the same two cores (DynamoDB Local, worker-thread functions), so its latency is the local one, not AWS’s.',
    ],
    cost: [],
  };
  try {
    if (wants('w1')) {
      results.cost.push(await telemetry(ctx, 0, seconds));
      results.cost.push(await telemetry(ctx, 1, seconds));
    }
    if (wants('w2')) results.cost.push(await fanout(ctx, seconds));
    if (wants('w3')) results.cost.push(await idle(ctx));
    if (wants('w4')) {
      results.cost.push(await large(ctx, 'json', seconds));
      results.cost.push(await large(ctx, 'random', seconds));
    }
    if (wants('latency')) results.latency = await latency(ctx);
    if (wants('scaling')) results.scaling = await scaling(ctx);
    if (wants('burst')) results.burst = await burst(ctx);
  } finally {
    for (const broker of others) await broker.stop();
    // The clients' $disconnect invocations must finish before DynamoDB Local goes away.
    await settle(nimbus.emulator);
    progress('[nimbus] stopping the emulator');
    await nimbus.stop();
  }

  const markdown = benchmarksMarkdown(results);
  if (name === 'all') {
    const docs = new URL('../docs/', import.meta.url);
    writeFileSync(new URL('benchmarks.md', docs), markdown);
    writeFileSync(new URL('benchmarks-bill.svg', docs), billSvg(results.cost));
    if (results.latency) writeFileSync(new URL('benchmarks-latency.svg', docs), latencySvg(results.latency));
    progress('wrote docs/benchmarks.md, docs/benchmarks-bill.svg, docs/benchmarks-latency.svg');
  }
  const dir = new URL('./results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  writeFileSync(new URL(`suite-${name}.json`, dir), `${JSON.stringify(results, jsonNumbers, 2)}\n`);
  process.stdout.write(
    results.cost.length && name !== 'all'
      ? `${costTable(results.cost)}\n\n${unitsTable(results.cost)}\n`
      : `${markdown}\n`,
  );
}
