import { prices } from '../bench/cost.js';
import type { MeterReading } from './meter.js';

/** The price list the bill uses (USD, us-east-1 list prices). */
export type PriceList = typeof prices;

/** The one place the emulator reads prices from. */
export function priceList(): PriceList {
  return prices;
}

/** One service's share of the running bill. */
export interface BillLine {
  readonly service: string;
  /** What was billed, in AWS's units, e.g. `12 messages, 0.5 connection-minutes`. */
  readonly usage: string;
  readonly usd: number;
}

export interface Bill {
  readonly lines: BillLine[];
  readonly totalUsd: number;
}

const perMillion = (units: number, price: number) => (units / 1e6) * price;
const count = (n: number, unit: string) => `${Number.isInteger(n) ? n : n.toFixed(2)} ${unit}`;

/**
 * What a meter reading would cost on AWS, per service: API Gateway messages and connection-minutes,
 * Lambda requests and GB-seconds, DynamoDB read and write units, SQS FIFO requests.
 *
 * @example
 * billFor(emulator.meter()).totalUsd; // 0.0000123
 */
export function billFor(reading: MeterReading, list: PriceList = priceList()): Bill {
  const lambdas = Object.values(reading.lambda);
  const requests = lambdas.reduce((sum, l) => sum + l.requests, 0);
  const gbSeconds = lambdas.reduce((sum, l) => sum + l.gbSeconds, 0);
  const sqs = reading.sqs?.billedRequests ?? 0;
  const lines: BillLine[] = [
    {
      service: 'API Gateway',
      usage: `${count(reading.gateway.billedMessages, 'messages')}, ${count(reading.gateway.connectionMinutes, 'connection-minutes')}`,
      usd:
        perMillion(reading.gateway.billedMessages, list.gatewayPerMillionMessages) +
        perMillion(reading.gateway.connectionMinutes, list.gatewayPerMillionConnectionMinutes),
    },
    {
      service: 'Lambda',
      usage: `${count(requests, 'requests')}, ${gbSeconds.toFixed(3)} GB-s`,
      usd: perMillion(requests, list.lambdaPerMillionRequests) + gbSeconds * list.lambdaPerGbSecond,
    },
    {
      service: 'DynamoDB',
      usage: `${count(reading.dynamodb.writeUnits, 'WRU')}, ${count(reading.dynamodb.readUnits, 'RRU')}`,
      usd:
        perMillion(reading.dynamodb.writeUnits, list.dynamoPerMillionWriteUnits) +
        perMillion(reading.dynamodb.readUnits, list.dynamoPerMillionReadUnits),
    },
    {
      service: 'SQS FIFO',
      usage: count(sqs, 'requests'),
      usd: perMillion(sqs, list.sqsFifoPerMillionRequests),
    },
  ];
  return { lines, totalUsd: lines.reduce((sum, line) => sum + line.usd, 0) };
}
