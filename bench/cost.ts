import type { MeterReading } from '../emulator/meter.js';
import { prices } from '../emulator/prices.js';

/** What one workload consumed: the meter after minus the meter before. */
export function meterDelta(before: MeterReading, after: MeterReading): MeterReading {
  const lambda: MeterReading['lambda'] = {};
  for (const [name, end] of Object.entries(after.lambda)) {
    const start = before.lambda[name];
    if (end.requests === (start?.requests ?? 0)) continue; // not invoked by this workload
    lambda[name] = {
      requests: end.requests - (start?.requests ?? 0),
      gbSeconds: end.gbSeconds - (start?.gbSeconds ?? 0),
      // Only instances first seen in this workload: a count of its cold starts.
      instances: end.instances.filter((id) => !start?.instances.includes(id)),
    };
  }
  const requests: Record<string, number> = {};
  for (const [operation, count] of Object.entries(after.dynamodb.requests)) {
    const delta = count - (before.dynamodb.requests[operation] ?? 0);
    if (delta) requests[operation] = delta;
  }
  const sqsRequests: Record<string, number> = {};
  for (const [operation, count] of Object.entries(after.sqs?.requests ?? {})) {
    const delta = count - (before.sqs?.requests[operation] ?? 0);
    if (delta) sqsRequests[operation] = delta;
  }
  return {
    gateway: {
      messagesIn: after.gateway.messagesIn - before.gateway.messagesIn,
      messagesOut: after.gateway.messagesOut - before.gateway.messagesOut,
      billedMessages: after.gateway.billedMessages - before.gateway.billedMessages,
      connectionMinutes: after.gateway.connectionMinutes - before.gateway.connectionMinutes,
    },
    lambda,
    dynamodb: {
      requests,
      readUnits: after.dynamodb.readUnits - before.dynamodb.readUnits,
      writeUnits: after.dynamodb.writeUnits - before.dynamodb.writeUnits,
    },
    sqs: {
      requests: sqsRequests,
      billedRequests: (after.sqs?.billedRequests ?? 0) - (before.sqs?.billedRequests ?? 0),
    },
  };
}

export interface UnitsPerMessage {
  publishes: number;
  deliveries: number;
  gateway: { messagesInPerPublish: number; messagesOutPerPublish: number; billedPerPublish: number };
  lambdaRequestsPerPublish: Record<string, number>;
  lambdaRequestsPerPublishTotal: number;
  gbSecondsPerPublish: number;
  dynamoRequestsPerPublish: Record<string, number>;
  dynamoRequestsPerDelivery: Record<string, number>;
  readUnitsPerPublish: number;
  writeUnitsPerPublish: number;
  /** SQS API calls by operation (the `$default` FIFO queue and its event source mapping). */
  sqsRequestsPerPublish: Record<string, number>;
  /** SQS billed requests (64 KB units). */
  sqsBilledPerPublish: number;
  /** Function instances that served their first invocation during the workload (cold starts). */
  newInstances: Record<string, number>;
  /** Connection-minutes the two benchmark clients held during the workload; not per message. */
  connectionMinutes: number;
}

const per = (record: Record<string, number>, n: number) =>
  Object.fromEntries(Object.entries(record).map(([key, value]) => [key, n ? value / n : Number.NaN]));

export function unitsPerMessage(delta: MeterReading, publishes: number, deliveries: number): UnitsPerMessage {
  const lambdaRequests = Object.fromEntries(Object.entries(delta.lambda).map(([n, l]) => [n, l.requests]));
  const gbSeconds = Object.values(delta.lambda).reduce((sum, l) => sum + l.gbSeconds, 0);
  const totalRequests = Object.values(lambdaRequests).reduce((sum, n) => sum + n, 0);
  return {
    publishes,
    deliveries,
    gateway: {
      messagesInPerPublish: delta.gateway.messagesIn / publishes,
      messagesOutPerPublish: delta.gateway.messagesOut / publishes,
      billedPerPublish: delta.gateway.billedMessages / publishes,
    },
    lambdaRequestsPerPublish: per(lambdaRequests, publishes),
    lambdaRequestsPerPublishTotal: totalRequests / publishes,
    gbSecondsPerPublish: gbSeconds / publishes,
    dynamoRequestsPerPublish: per(delta.dynamodb.requests, publishes),
    dynamoRequestsPerDelivery: per(delta.dynamodb.requests, deliveries),
    readUnitsPerPublish: delta.dynamodb.readUnits / publishes,
    writeUnitsPerPublish: delta.dynamodb.writeUnits / publishes,
    sqsRequestsPerPublish: per(delta.sqs?.requests ?? {}, publishes),
    sqsBilledPerPublish: (delta.sqs?.billedRequests ?? 0) / publishes,
    newInstances: Object.fromEntries(Object.entries(delta.lambda).map(([n, l]) => [n, l.instances.length])),
    connectionMinutes: delta.gateway.connectionMinutes,
  };
}

export interface CostPerMillion {
  gateway: number;
  lambdaRequests: number;
  lambdaCompute: number;
  dynamoWrites: number;
  dynamoReads: number;
  sqs: number;
  total: number;
  /** One line per item: units per message × 1e6 × price. */
  arithmetic: string[];
}

/** Cost of a million published messages (each delivered to one subscriber), connection-minutes excluded. */
export function costPerMillion(units: UnitsPerMessage): CostPerMillion {
  const line = (name: string, perMessage: number, unit: string, price: number, priceUnit: string) => {
    const cost = perMessage * price;
    return {
      cost,
      text: `${name.padEnd(17)} ${perMessage.toFixed(4)} ${unit}/msg × 1M msgs × $${price}/${priceUnit} = $${cost.toFixed(4)}`,
    };
  };
  const gateway = line(
    'API Gateway',
    units.gateway.billedPerPublish,
    'billed msgs',
    prices.gatewayPerMillionMessages,
    'M msgs',
  );
  const requests = line(
    'Lambda requests',
    units.lambdaRequestsPerPublishTotal,
    'requests',
    prices.lambdaPerMillionRequests,
    'M req',
  );
  // GB-s are priced per unit, not per million: a million messages use 1e6 × GB-s per message.
  const computeCost = units.gbSecondsPerPublish * 1e6 * prices.lambdaPerGbSecond;
  const compute = {
    cost: computeCost,
    text: `${'Lambda compute'.padEnd(17)} ${units.gbSecondsPerPublish.toFixed(6)} GB-s/msg × 1M msgs × $${prices.lambdaPerGbSecond}/GB-s = $${computeCost.toFixed(4)}`,
  };
  const writes = line(
    'DynamoDB writes',
    units.writeUnitsPerPublish,
    'WRU',
    prices.dynamoPerMillionWriteUnits,
    'M WRU',
  );
  const reads = line(
    'DynamoDB reads',
    units.readUnitsPerPublish,
    'RRU',
    prices.dynamoPerMillionReadUnits,
    'M RRU',
  );
  const sqs = line(
    'SQS FIFO requests',
    units.sqsBilledPerPublish,
    'requests',
    prices.sqsFifoPerMillionRequests,
    'M req',
  );
  const total = gateway.cost + requests.cost + compute.cost + writes.cost + reads.cost + sqs.cost;
  return {
    gateway: gateway.cost,
    lambdaRequests: requests.cost,
    lambdaCompute: compute.cost,
    dynamoWrites: writes.cost,
    dynamoReads: reads.cost,
    sqs: sqs.cost,
    total,
    arithmetic: [
      gateway.text,
      requests.text,
      compute.text,
      writes.text,
      reads.text,
      sqs.text,
      `${'total'.padEnd(17)} $${total.toFixed(4)} per million messages (excludes connection-minutes at $${prices.gatewayPerMillionConnectionMinutes}/M, which depend on how long clients stay connected, not on messages)`,
    ],
  };
}
