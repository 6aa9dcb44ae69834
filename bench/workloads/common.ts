import type { MqttClient } from 'mqtt';
import type { Emulator } from '../../emulator/index.js';
import type { MeterReading } from '../../emulator/meter.js';
import { bill } from '../../emulator/prices.js';
import type { Broker } from '../brokers.js';
import { meterDelta } from '../cost.js';
import type { Bill, WorkloadSpec } from '../economics.js';

/** What every workload is handed: the brokers running for this invocation and the scale. */
export interface BenchContext {
  scale: number;
  /**
   * Run traffic workloads at the full-size aggregate rate (`--full-rate`): the fewer devices publish
   * as much more often. Off, they publish at the real per-device rate, so the aggregate is scaled too.
   */
  fullRate?: boolean;
  /** Subscribers of the burst (`--subscribers`), instead of 10,000 × scale. */
  subscribers?: number;
  nimbus: Broker & { emulator: Emulator };
  /** Brokers to compare speed with (Aedes, and Mosquitto when installed). */
  others: Broker[];
  progress: (line: string) => void;
}

/** A cost workload's outcome: the full-size spec, what was actually run, and the three bills. */
export interface CostOutcome {
  kind: 'cost';
  name: string;
  title: string;
  spec: WorkloadSpec;
  /** What was scaled down, in words. */
  scaled: string;
  measured: {
    publishes: number;
    deliveries: number;
    /** What went missing (lost connections, unsent publishes, missing deliveries), when anything did. */
    shortfall?: string;
    perPublish: Record<string, number>;
    /** Calls per publish by service and operation (`dynamodb PutItem`, `lambda message`), to see where units go. */
    callsPerPublish?: Record<string, number>;
    /** The frame queue's mean batch and the mean wait of a frame before a poller received it. */
    frameQueue?: { framesPerBatch: number; meanWaitMs: number };
  };
  nimbus: Bill;
  iotCore: Bill;
  floor: Bill;
}

/** The `n` of a full-size count at `scale`, never below `min`. */
export const scaled = (n: number, scale: number, min = 1) => Math.max(min, Math.round(n * scale));

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One client; a connect that times out on a loaded machine is tried twice more. */
async function connectRetrying(
  broker: Broker,
  id: string,
  options: { keepalive?: number },
): Promise<MqttClient> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await broker.connect(id, options);
    } catch (error) {
      if (attempt === 3) throw error;
    }
  }
}

/** Opens `count` clients, a few at a time so the connects do not time out on a loaded machine. */
export async function connectMany(
  broker: Broker,
  prefix: string,
  count: number,
  options: { keepalive?: number } = {},
): Promise<MqttClient[]> {
  const clients: MqttClient[] = [];
  const batch = 10;
  for (let i = 0; i < count; i += batch) {
    const ids = Array.from(
      { length: Math.min(batch, count - i) },
      (_, k) => `${prefix}-${i + k}-${process.pid}`,
    );
    clients.push(...(await Promise.all(ids.map((id) => connectRetrying(broker, id, options)))));
  }
  return clients;
}

/** Closes clients, never waiting more than 5 s for one that does not answer. */
export async function closeAll(clients: readonly MqttClient[]): Promise<void> {
  await Promise.all(clients.map((client) => Promise.race([client.endAsync(), sleep(5_000)])));
}

/** Waits for the emulator to go quiet (at most a minute), so the meter holds the whole workload. */
export async function settle(emulator: Emulator): Promise<void> {
  await sleep(250);
  await Promise.race([emulator.settle(), sleep(60_000)]);
}

/** USD of a meter delta at list prices, connection-minutes left out (they are priced from the spec). */
export function usdWithoutConnections(delta: MeterReading): number {
  const traffic = { ...delta, gateway: { ...delta.gateway, connectionMinutes: 0 } };
  return bill(traffic).reduce((sum, line) => sum + line.usd, 0);
}

/** The meter delta of what `work` made the emulator do, once it settled. */
export async function metered<T>(
  emulator: Emulator,
  work: () => Promise<T>,
): Promise<{ value: T; delta: MeterReading }> {
  await settle(emulator);
  const before = emulator.meter();
  const value = await work();
  await settle(emulator);
  return { value, delta: meterDelta(before, emulator.meter()) };
}

/** Billed units per publish, by service, for the report. */
export function unitsPer(delta: MeterReading, n: number): Record<string, number> {
  const lambda = Object.values(delta.lambda);
  return {
    gatewayMessages: delta.gateway.billedMessages / n,
    lambdaRequests: lambda.reduce((sum, l) => sum + l.requests, 0) / n,
    lambdaGbSeconds: lambda.reduce((sum, l) => sum + l.gbSeconds, 0) / n,
    dynamoWru: delta.dynamodb.writeUnits / n,
    dynamoRru: delta.dynamodb.readUnits / n,
    sqsRequests: (delta.sqs?.billedRequests ?? 0) / n,
  };
}

/**
 * Calls per publish by service and operation, and the message queue's mean batch (messages per
 * `ReceiveMessage`): what the units of `unitsPer` are made of.
 *
 * @example
 * callsPer(delta, 300); // { 'dynamodb PutItem': 1, 'sqs ReceiveMessage': 0.25, 'lambda message': 0.25, … }
 */
export function callsPer(delta: MeterReading, n: number): Record<string, number> {
  const calls: Record<string, number> = {};
  for (const [op, count] of Object.entries(delta.dynamodb.requests)) calls[`dynamodb ${op}`] = count / n;
  for (const [op, count] of Object.entries(delta.sqs?.requests ?? {})) calls[`sqs ${op}`] = count / n;
  for (const [name, l] of Object.entries(delta.lambda)) {
    calls[`lambda ${name}`] = l.requests / n;
    calls[`lambda ${name} GB-s`] = l.gbSeconds / n;
    // Instances first seen in this run: each one's init (a cold start) is in its first invocation.
    calls[`lambda ${name} new instances`] = l.instances.length / n;
  }
  return calls;
}
