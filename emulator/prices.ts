/**
 * The one price table: the benchmark's cost per million messages, the emulator's
 * `nimbus_cost_usd_total` metric and the bill it prints when it stops all price the meter with it.
 */
import type { MeterReading } from './meter.js';

/** The region the prices below are for, and the date of the table: change the date with the prices. */
export const priceSource = { region: 'us-east-1', date: '2026-11-26' } as const;

/** On-demand list prices in USD (Lambda on arm64, SQS FIFO, DynamoDB on-demand, API Gateway WebSocket first tier). */
export const prices = {
  gatewayPerMillionMessages: 1.0,
  gatewayPerMillionConnectionMinutes: 0.25,
  lambdaPerMillionRequests: 0.2,
  lambdaPerGbSecond: 0.0000133334,
  dynamoPerMillionWriteUnits: 0.625,
  dynamoPerMillionReadUnits: 0.125,
  /** FIFO queues; one request per 64 KB of payload. */
  sqsFifoPerMillionRequests: 0.5,
} as const;

/** The services the broker is billed for, as named in metric labels and the bill. */
export const billedServices = ['apigateway', 'lambda', 'dynamodb', 'sqs'] as const;
export type BilledService = (typeof billedServices)[number];

export interface BillLine {
  readonly service: BilledService;
  /** The billed units, in words: "1,204 messages + 0.5 connection-minutes". */
  readonly units: string;
  readonly usd: number;
}

const count = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

/**
 * What a meter reading costs at list prices, per service. Free tiers are ignored: this is the
 * marginal price of the traffic, not an invoice.
 *
 * @example
 * bill(emulator.meter()).reduce((sum, line) => sum + line.usd, 0); // 0.000042
 */
export function bill(reading: MeterReading): BillLine[] {
  const { gateway, dynamodb } = reading;
  const lambda = Object.values(reading.lambda);
  const requests = lambda.reduce((sum, l) => sum + l.requests, 0);
  const gbSeconds = lambda.reduce((sum, l) => sum + l.gbSeconds, 0);
  const sqsBilled = reading.sqs?.billedRequests ?? 0;
  return [
    {
      service: 'apigateway',
      units: `${count(gateway.billedMessages)} messages + ${count(gateway.connectionMinutes, 1)} connection-minutes`,
      usd:
        (gateway.billedMessages * prices.gatewayPerMillionMessages +
          gateway.connectionMinutes * prices.gatewayPerMillionConnectionMinutes) /
        1e6,
    },
    {
      service: 'lambda',
      units: `${count(requests)} requests + ${count(gbSeconds, 3)} GB-s`,
      usd: (requests * prices.lambdaPerMillionRequests) / 1e6 + gbSeconds * prices.lambdaPerGbSecond,
    },
    {
      service: 'dynamodb',
      units: `${count(dynamodb.readUnits, 1)} RRU + ${count(dynamodb.writeUnits, 1)} WRU`,
      usd:
        (dynamodb.readUnits * prices.dynamoPerMillionReadUnits +
          dynamodb.writeUnits * prices.dynamoPerMillionWriteUnits) /
        1e6,
    },
    {
      service: 'sqs',
      units: `${count(sqsBilled)} requests`,
      usd: (sqsBilled * prices.sqsFifoPerMillionRequests) / 1e6,
    },
  ];
}

/**
 * The bill as a short text table, one line per service and a total.
 *
 * @example
 * process.stderr.write(formatBill(bill(emulator.meter())));
 */
export function formatBill(lines: readonly BillLine[]): string {
  const total = lines.reduce((sum, line) => sum + line.usd, 0);
  const width = Math.max(...lines.map((line) => line.units.length));
  const usd = (n: number) => `$${n.toFixed(6)}`;
  return [
    `Estimated AWS bill for this run (${priceSource.region} list prices of ${priceSource.date}, no free tier):`,
    ...lines.map((line) => `  ${line.service.padEnd(11)} ${line.units.padEnd(width)}  ${usd(line.usd)}`),
    `  ${'total'.padEnd(11)} ${''.padEnd(width)}  ${usd(total)}`,
  ].join('\n');
}

/**
 * AWS IoT Core's list prices, for comparing a workload's bill with the managed broker. Source:
 * https://aws.amazon.com/iot-core/pricing/ and its "additional metering details" page (us-east-1,
 * read 2026-12-02). Messaging is the first tier (the first billion messages a month; later tiers
 * are cheaper and not modelled here).
 */
export const iotCorePriceSource = {
  url: 'https://aws.amazon.com/iot-core/pricing/',
  region: 'us-east-1',
  date: '2026-12-02',
} as const;

export const iotCorePrices = {
  /** MQTT messages, metered in 5 KB increments of topic + payload, per publish received and per publish sent. */
  perMillionMessages: 1.0,
  messageUnitBytes: 5 * 1024,
  /** Connectivity, metered in one-minute increments per connection. */
  perMillionConnectionMinutes: 0.08,
} as const;
