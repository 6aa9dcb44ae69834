import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { IPublishPacket } from 'mqtt-packet';
import { publishStages } from '../emulator/metrics.js';
import { billedServices } from '../emulator/prices.js';
import { eventually, startTestEmulator } from './support/emulator.js';
import { type ParsedFamily, parseExposition, sampleValue } from './support/prometheus.js';
import { connectPacket, RawClient } from './support/raw-client.js';

const N = 6;
let emulator: Awaited<ReturnType<typeof startTestEmulator>>;
let families: Map<string, ParsedFamily>;
let contentType: string | null;
/** EMF lines the functions wrote to their stdout (worker threads' stdout is piped into this process's). */
const emf: Array<{
  _aws: { CloudWatchMetrics: Array<{ Namespace: string; Metrics: Array<{ Name: string }> }> };
}> = [];

async function scrape(): Promise<string> {
  const response = await fetch(`${emulator.managementEndpoint}/metrics`);
  assert.equal(response.status, 200);
  contentType = response.headers.get('content-type');
  return response.text();
}

// One publisher and one subscriber, each packet in its own frame so frames and packets can be
// counted exactly: CONNECT×2, SUBSCRIBE, N PUBLISH (QoS 1) and the subscriber's N PUBACKs in;
// CONNACK×2, SUBACK, N PUBACKs to the publisher and N PUBLISHes to the subscriber out (these
// coalesced per stream batch).
before(async () => {
  // The emulator silences EMF unless told otherwise; here it is turned on and captured.
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    const text = chunk.toString();
    if (!text.includes('"_aws"')) return write(chunk, ...rest);
    for (const line of text.split('\n').filter((l) => l.includes('"_aws"'))) emf.push(JSON.parse(line));
    return true;
  }) as typeof process.stdout.write;
  emulator = await startTestEmulator({ sweepIntervalMs: 0 });
  delete process.env.POWERTOOLS_METRICS_DISABLED;
  const publisher = await RawClient.open(emulator.url);
  const subscriber = await RawClient.open(emulator.url);
  publisher.send(connectPacket('metrics-pub'));
  subscriber.send(connectPacket('metrics-sub'));
  await publisher.next('connack');
  await subscriber.next('connack');
  subscriber.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'metered/#', qos: 1 }] });
  await subscriber.next('suback');
  for (let i = 1; i <= N; i++) {
    publisher.send({
      cmd: 'publish',
      topic: 'metered/t',
      payload: Buffer.from(`m${i}`),
      qos: 1,
      messageId: i,
      retain: false,
      dup: false,
    });
  }
  for (let i = 1; i <= N; i++) {
    await publisher.next('puback');
    const delivered = (await subscriber.next('publish')) as IPublishPacket;
    subscriber.send({ cmd: 'puback', messageId: delivered.messageId });
  }
  await emulator.settle();
  families = parseExposition(await scrape());
  // Worker stdout reaches this process asynchronously, possibly after the invocation's reply.
  await eventually('the EMF of every publish and delivery', () =>
    ['PublishesAccepted', 'DeliveriesSent'].every((name) => emfTotal(name) >= N),
  );
});

const emfValues = (name: string) =>
  emf.flatMap((doc) => {
    const value = (doc as unknown as Record<string, number | number[] | undefined>)[name];
    return value === undefined ? [] : [value].flat();
  });
const emfTotal = (name: string) => emfValues(name).reduce((sum, value) => sum + value, 0);
const emfNames = () =>
  emf.flatMap((doc) => doc._aws.CloudWatchMetrics.flatMap((d) => d.Metrics.map((m) => m.Name)));

after(() => emulator.stop());

test('GET /metrics answers in the text format 0.0.4 whose samples all belong to HELP/TYPE families', () => {
  assert.match(contentType ?? '', /^text\/plain; version=0\.0\.4/);
  for (const name of [
    'nimbus_gateway_messages_total',
    'nimbus_gateway_billed_messages_total',
    'nimbus_gateway_connection_minutes_total',
    'nimbus_lambda_requests_total',
    'nimbus_lambda_gb_seconds_total',
    'nimbus_dynamodb_requests_total',
    'nimbus_dynamodb_read_units_total',
    'nimbus_dynamodb_write_units_total',
    'nimbus_sqs_requests_total',
    'nimbus_sqs_billed_requests_total',
    'nimbus_cost_usd_total',
    'nimbus_mqtt_publishes_total',
    'nimbus_mqtt_deliveries_total',
  ])
    assert.equal(families.get(name)?.type, 'counter', name);
  assert.equal(families.get('nimbus_connections')?.type, 'gauge');
  assert.equal(families.get('nimbus_subscriptions')?.type, 'gauge');
  assert.equal(families.get('nimbus_publish_stage_seconds')?.type, 'histogram');
  assert.match(families.get('nimbus_cost_usd_total')?.help ?? '', /us-east-1 .* of \d{4}-\d{2}-\d{2}/);
});

test('publishes and deliveries are counted exactly, from the frames crossing the gateway', () => {
  assert.equal(sampleValue(families, 'nimbus_mqtt_publishes_total'), N);
  assert.equal(sampleValue(families, 'nimbus_mqtt_deliveries_total'), N);
  const packets = (direction: string, type: string) =>
    sampleValue(families, 'nimbus_mqtt_packets_total', { direction, type });
  assert.deepEqual(
    ['connect', 'subscribe', 'publish', 'puback'].map((t) => packets('in', t)),
    [2, 1, N, N],
  );
  assert.deepEqual(
    ['connack', 'suback', 'publish', 'puback'].map((t) => packets('out', t)),
    [2, 1, N, N],
  );
});

test('gateway messages in and out match the frames sent and posted', () => {
  const messages = (direction: string) =>
    sampleValue(families, 'nimbus_gateway_messages_total', { direction });
  assert.equal(messages('in'), 3 + 2 * N);
  // CONNACK×2, SUBACK and N PUBACKs one each; the N PUBLISHes to the subscriber leave in one
  // message per stream batch they fell into (at least one, at most N).
  const out = messages('out');
  assert.ok(out >= 3 + N + 1 && out <= 3 + 2 * N, `${out} messages out`);
  // Every message is far below 32 KB: one billed message each.
  assert.equal(sampleValue(families, 'nimbus_gateway_billed_messages_total'), messages('in') + out);
  assert.ok(sampleValue(families, 'nimbus_gateway_connection_minutes_total') > 0);
});

test('lambda, DynamoDB, SQS and cost counters moved for each function and service', () => {
  assert.equal(sampleValue(families, 'nimbus_lambda_requests_total', { function: 'connect' }), 2);
  for (const fn of ['message', 'fanout']) {
    assert.ok(sampleValue(families, 'nimbus_lambda_requests_total', { function: fn }) > 0, fn);
    assert.ok(sampleValue(families, 'nimbus_lambda_gb_seconds_total', { function: fn }) > 0, fn);
  }
  assert.ok(sampleValue(families, 'nimbus_dynamodb_requests_total', { operation: 'PutItem' }) >= N);
  assert.ok(sampleValue(families, 'nimbus_dynamodb_write_units_total') >= N);
  assert.ok(sampleValue(families, 'nimbus_dynamodb_read_units_total') > 0);
  // One SendMessage per inbound frame and per $disconnect; none closed yet.
  assert.equal(sampleValue(families, 'nimbus_sqs_requests_total', { operation: 'SendMessage' }), 3 + 2 * N);
  assert.ok(sampleValue(families, 'nimbus_sqs_billed_requests_total') >= 3 + 2 * N);
  for (const service of billedServices)
    assert.ok(sampleValue(families, 'nimbus_cost_usd_total', { service }) > 0, service);
});

test('gauges: the two open connections and the one stored subscription', () => {
  assert.equal(sampleValue(families, 'nimbus_connections'), 2);
  assert.equal(sampleValue(families, 'nimbus_subscriptions'), 1);
});

test('every publish stage was observed once per message', () => {
  for (const stage of publishStages) {
    const count = sampleValue(
      families,
      'nimbus_publish_stage_seconds',
      { stage },
      'nimbus_publish_stage_seconds_count',
    );
    assert.equal(count, N, stage);
    assert.ok(
      sampleValue(families, 'nimbus_publish_stage_seconds', { stage }, 'nimbus_publish_stage_seconds_sum') >=
        0,
    );
  }
});

test('/metrics refuses other methods with 405', async () => {
  const response = await fetch(`${emulator.managementEndpoint}/metrics`, { method: 'POST' });
  assert.equal(response.status, 405);
  assert.equal(response.headers.get('allow'), 'GET, HEAD');
});

test('the functions emit EMF in the namespace the shared environment sets, with the broker metric names', () => {
  const names = emfNames();
  for (const name of ['ConnectionsOpened', 'PublishesAccepted', 'DeliveriesSent', 'FanoutLag'])
    assert.ok(names.includes(name), `${name} in ${[...new Set(names)].join(', ')}`);
  assert.deepEqual(
    new Set(emf.flatMap((doc) => doc._aws.CloudWatchMetrics.map((d) => d.Namespace))),
    new Set(['NimbusMQTT']),
  );
  // Two clients, plus the handshake the emulator's warm-up runs through the one warm $connect instance.
  assert.equal(emfTotal('ConnectionsOpened'), 2 + 1);
  assert.equal(emfTotal('PublishesAccepted'), N);
  assert.equal(emfTotal('DeliveriesSent'), N);
});

test('every PUBLISH is traced through both invocations: its own work apart from its wait for the stream', () => {
  const traces = emulator.publishTraces().filter((t) => t.publisher === 'metrics-pub');
  assert.equal(traces.length, N);
  assert.equal(new Set(traces.map((t) => t.messageId)).size, N);
  for (const t of traces) {
    assert.ok(t.messageHandlerMs > 0 && t.fanoutMs > 0 && t.frameQueueMs >= 0 && t.streamWaitMs >= 0);
    assert.equal(t.ownMs, t.frameQueueMs + t.messageHandlerMs + t.fanoutMs);
  }
  assert.deepEqual(emulator.publishTraces(Date.now() + 60_000), []);
});

test('stopping prints the estimated bill naming each service and a total', async () => {
  await emulator.stop();
  const bill = emulator.logs.slice(emulator.logs.findIndex((l) => l.startsWith('Estimated AWS bill')));
  assert.ok(bill.length > 0, 'the bill is logged');
  for (const service of [...billedServices, 'total'])
    assert.ok(
      bill.some((line) => new RegExp(`^\\s+${service}\\s.*\\$\\d+\\.\\d{6}$`).test(line)),
      `${service} in ${bill.join('\n')}`,
    );
});
