import assert from 'node:assert/strict';
import { test } from 'node:test';
import { billFor, priceList } from '../emulator/bill.js';
import { Meter } from '../emulator/meter.js';

/** Prices are sums of products of floats: equal up to rounding. */
const near = (actual: number, expected: number) =>
  assert.ok(Math.abs(actual - expected) < 1e-15, `${actual} ≈ ${expected}`);

test('the bill prices each service’s billed units at the list prices', () => {
  const meter = new Meter();
  meter.gatewayMessage('in', 100);
  meter.gatewayMessage('out', 40 * 1024); // two 32 KB units
  meter.connectionOpened('c1', 0);
  meter.lambdaInvocation('message', 100, 1024, 1); // 0.1 GB-s
  meter.dynamoRequest('PutItem', 0, 2);
  meter.dynamoRequest('Query', 0.5, 0);
  meter.sqsRequest('SendMessage', 10);
  const bill = billFor(meter.read(60_000)); // one connection-minute
  const prices = priceList();
  const byService = Object.fromEntries(bill.lines.map((line) => [line.service, line]));
  assert.equal(byService['API Gateway'].usage, '3 messages + 1.0 connection-minutes');
  near(
    byService['API Gateway'].usd,
    (3 / 1e6) * prices.gatewayPerMillionMessages + (1 / 1e6) * prices.gatewayPerMillionConnectionMinutes,
  );
  near(byService.Lambda.usd, (1 / 1e6) * prices.lambdaPerMillionRequests + 0.1 * prices.lambdaPerGbSecond);
  near(
    byService.DynamoDB.usd,
    (2 / 1e6) * prices.dynamoPerMillionWriteUnits + (0.5 / 1e6) * prices.dynamoPerMillionReadUnits,
  );
  near(byService['SQS FIFO'].usd, (1 / 1e6) * prices.sqsFifoPerMillionRequests);
  assert.equal(
    bill.totalUsd,
    bill.lines.reduce((sum, line) => sum + line.usd, 0),
  );
  assert.ok(bill.totalUsd > 0);
});

test('a fresh meter bills nothing', () => {
  const bill = billFor(new Meter().read());
  assert.equal(bill.totalUsd, 0);
  assert.deepEqual(
    bill.lines.map((line) => line.service),
    ['API Gateway', 'Lambda', 'DynamoDB', 'SQS FIFO'],
  );
});
