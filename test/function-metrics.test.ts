import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import type { APIGatewayProxyResultV2 } from 'aws-lambda';
import { metricsServiceName } from '../shared/metric-names.js';

// As Lambda runs the functions: EMF on, no dev mode; set before any Metrics instance exists.
process.env.POWERTOOLS_METRICS_NAMESPACE = 'NimbusTest';
process.env.POWERTOOLS_SERVICE_NAME = metricsServiceName;
process.env.POWERTOOLS_METRICS_DISABLED = 'false';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
delete process.env.POWERTOOLS_DEV;

interface EmfDocument {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: Array<{
      Namespace: string;
      Dimensions: string[][];
      Metrics: Array<{ Name: string; Unit: string }>;
    }>;
  };
  [key: string]: unknown;
}

/** Runs `fn` with stdout and stderr captured; returns what was written. */
async function outputOf(fn: () => unknown): Promise<string> {
  const written: string[] = [];
  const streams = [process.stdout, process.stderr];
  const writes = streams.map((stream) => stream.write);
  for (const stream of streams)
    stream.write = ((chunk: string | Uint8Array) => {
      written.push(chunk.toString());
      return true;
    }) as typeof stream.write;
  try {
    await fn();
  } finally {
    streams.forEach((stream, i) => {
      stream.write = writes[i];
    });
  }
  return written.join('');
}

/** The EMF documents `fn` wrote. */
async function emfOf(fn: () => unknown): Promise<EmfDocument[]> {
  return (await outputOf(fn))
    .split('\n')
    .filter((line) => line.includes('"_aws"'))
    .map((line) => JSON.parse(line) as EmfDocument);
}

const metricNames = (doc: EmfDocument) => doc._aws.CloudWatchMetrics[0].Metrics.map((m) => m.Name);

type ConnectHandler = (event: unknown) => Promise<APIGatewayProxyResultV2>;
let connectHandler: ConnectHandler;

before(async () => {
  ({ handler: connectHandler } = (await import('../functions/connect/index.js')) as {
    handler: ConnectHandler;
  });
});

const handshake = (protocol?: string) => ({
  headers: protocol ? { 'Sec-WebSocket-Protocol': protocol } : {},
  requestContext: { routeKey: '$connect', eventType: 'CONNECT', connectionId: 'c1' },
  isBase64Encoded: false,
});

test('$connect writes one EMF document per invocation: ConnectionsOpened in the namespace, with the service dimension', async () => {
  const [doc, ...more] = await emfOf(() => connectHandler(handshake('mqtt')));
  assert.equal(more.length, 0);
  const directive = doc._aws.CloudWatchMetrics[0];
  assert.equal(directive.Namespace, 'NimbusTest');
  assert.deepEqual(directive.Dimensions, [['service']]);
  assert.equal(doc.service, metricsServiceName);
  assert.deepEqual(metricNames(doc), ['ConnectionsOpened']);
  assert.equal(doc.ConnectionsOpened, 1);
  assert.equal(directive.Metrics[0].Unit, 'Count');
});

test('$connect counts a refused handshake as ConnectionsRefused', async () => {
  const [doc] = await emfOf(() => connectHandler(handshake('graphql-ws')));
  assert.deepEqual(metricNames(doc), ['ConnectionsRefused']);
  assert.equal(doc.ConnectionsRefused, 1);
});

test('recordFanOut emits deliveries by outcome and the lag from publishedAt', async () => {
  const { functionMetrics, flushMetrics, recordFanOut } = await import('../shared/function-metrics.js');
  const metrics = functionMetrics();
  const [doc] = await emfOf(() => {
    recordFanOut(metrics, { sent: 3, queued: 1, dropped: 0, gone: 2 }, 1_000, 1_250);
    flushMetrics(metrics);
  });
  assert.deepEqual(
    new Set(metricNames(doc)),
    new Set(['DeliveriesSent', 'DeliveriesQueued', 'DeliveriesDropped', 'DeliveriesGone', 'FanoutLag']),
  );
  assert.deepEqual(
    [doc.DeliveriesSent, doc.DeliveriesQueued, doc.DeliveriesDropped, doc.DeliveriesGone, doc.FanoutLag],
    [3, 1, 0, 2, 250],
  );
  const lag = doc._aws.CloudWatchMetrics[0].Metrics.find((m) => m.Name === 'FanoutLag');
  assert.equal(lag?.Unit, 'Milliseconds');
});

test('an invocation that recorded nothing writes nothing (no empty-metrics warning either)', async () => {
  const { functionMetrics, flushMetrics } = await import('../shared/function-metrics.js');
  assert.equal(await outputOf(() => flushMetrics(functionMetrics())), '');
});
