import type { MeterReading } from './meter.js';
import { type BilledService, bill, prices } from './prices.js';

/** The price list the bill uses (USD, us-east-1 list prices): the one table in emulator/prices.ts. */
export type PriceList = typeof prices;

/** The one place the console reads prices from. */
export function priceList(): PriceList {
  return prices;
}

/** One service's share of the running bill, as the console shows it. */
export interface BillLine {
  readonly service: string;
  /** What was billed, in AWS's units, e.g. `12 messages + 0.5 connection-minutes`. */
  readonly usage: string;
  readonly usd: number;
}

export interface Bill {
  readonly lines: BillLine[];
  readonly totalUsd: number;
}

const displayNames: Readonly<Record<BilledService, string>> = {
  apigateway: 'API Gateway',
  lambda: 'Lambda',
  dynamodb: 'DynamoDB',
  sqs: 'SQS FIFO',
};

/**
 * What a meter reading would cost on AWS, per service, with the names a person reads: the same
 * figures as the bill printed at stop and the `/metrics` cost families.
 *
 * @example
 * billFor(emulator.meter()).totalUsd; // 0.0000123
 */
export function billFor(reading: MeterReading): Bill {
  const lines = bill(reading).map((line) => ({
    service: displayNames[line.service],
    usage: line.units,
    usd: line.usd,
  }));
  return { lines, totalUsd: lines.reduce((sum, line) => sum + line.usd, 0) };
}
