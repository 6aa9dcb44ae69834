import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DynamoDBStreamEvent, SQSEvent } from 'aws-lambda';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { exposition, Histogram } from '../emulator/exposition.js';
import { Meter } from '../emulator/meter.js';
import { cached, framePacketTypes, meterFamilies, TrafficMetrics } from '../emulator/metrics.js';
import { bill, formatBill, prices } from '../emulator/prices.js';
import { disconnectBody, eventTypeAttribute } from '../shared/frame-queue.js';
import { parseExposition, sampleValue } from './support/prometheus.js';
import { sqsRecord } from './support/sqs-records.js';

const frame = (...packets: Packet[]) =>
  Buffer.concat(packets.map((p) => mqttPacket.generate(p))).toString('base64');
const publish = (topic: string): Packet => ({
  cmd: 'publish',
  topic,
  payload: Buffer.from('x'),
  qos: 0,
  retain: false,
  dup: false,
});

test('exposition: HELP and TYPE lines, labels, escaping and special values', () => {
  const text = exposition([
    {
      name: 'demo_total',
      help: 'Back\\slash and\nnewline.',
      type: 'counter',
      samples: [{ labels: { path: 'a"b\\c\nd' }, value: 3 }, { value: Number.POSITIVE_INFINITY }],
    },
    { name: 'demo_gauge', help: 'Gauge.', type: 'gauge', samples: [{ value: Number.NaN }] },
  ]);
  assert.equal(
    text,
    [
      '# HELP demo_total Back\\\\slash and\\nnewline.',
      '# TYPE demo_total counter',
      'demo_total{path="a\\"b\\\\c\\nd"} 3',
      'demo_total +Inf',
      '# HELP demo_gauge Gauge.',
      '# TYPE demo_gauge gauge',
      'demo_gauge NaN',
      '',
    ].join('\n'),
  );
  const parsed = parseExposition(text);
  assert.equal(parsed.get('demo_total')?.samples[0].labels.path, 'a"b\\c\nd');
});

test('a histogram is written as cumulative buckets ending in +Inf, then _sum and _count', () => {
  const histogram = new Histogram([0.1, 1]);
  for (const value of [0.05, 0.1, 0.5, 3]) histogram.observe(value);
  const text = exposition([
    {
      name: 'lat_seconds',
      help: 'Latency.',
      type: 'histogram',
      series: [{ labels: { stage: 'post' }, value: histogram.snapshot() }],
    },
  ]);
  assert.deepEqual(text.split('\n').slice(2, -1), [
    'lat_seconds_bucket{stage="post",le="0.1"} 2', // a value on a bound falls in that bucket
    'lat_seconds_bucket{stage="post",le="1"} 3',
    'lat_seconds_bucket{stage="post",le="+Inf"} 4',
    'lat_seconds_sum{stage="post"} 3.65',
    'lat_seconds_count{stage="post"} 4',
  ]);
  parseExposition(text);
});

test('framePacketTypes reads the types of every packet in a frame from their fixed headers', () => {
  assert.deepEqual(framePacketTypes(frame(publish('a'), { cmd: 'pingreq' }, publish('b/c'))), [
    'publish',
    'pingreq',
    'publish',
  ]);
  // A malformed Remaining Length stops the walk; what came before still counts.
  const bytes = Buffer.concat([mqttPacket.generate({ cmd: 'pingreq' }), Buffer.from([0x30, 0x80, 0x00])]);
  assert.deepEqual(framePacketTypes(bytes.toString('base64')), ['pingreq']);
  assert.deepEqual(framePacketTypes(''), []);
});

test('TrafficMetrics counts publishes in and deliveries out, and times post per PUBLISH posted', () => {
  const traffic = new TrafficMetrics();
  traffic.inbound(frame(publish('a'), publish('b')));
  traffic.inbound(frame({ cmd: 'pingreq' }));
  traffic.outbound(frame(publish('a')), 2);
  traffic.outbound(frame({ cmd: 'pingresp' }), 1);
  const families = parseExposition(exposition(traffic.families()));
  assert.equal(sampleValue(families, 'nimbus_mqtt_publishes_total'), 2);
  assert.equal(sampleValue(families, 'nimbus_mqtt_deliveries_total'), 1);
  assert.equal(sampleValue(families, 'nimbus_mqtt_packets_total', { direction: 'out', type: 'pingresp' }), 1);
  const post = (suffix: string) =>
    sampleValue(
      families,
      'nimbus_publish_stage_seconds',
      { stage: 'post' },
      `nimbus_publish_stage_seconds_${suffix}`,
    );
  assert.equal(post('count'), 1);
  assert.equal(post('sum'), 0.002);
});

test('messageBatch observes frame_queue and message_handler once per PUBLISH, skipping $disconnect notices', async () => {
  const traffic = new TrafficMetrics();
  const sentAt = Date.now() - 1_000;
  const event: SQSEvent = {
    Records: [
      sqsRecord(frame(publish('a'), publish('b')), sentAt),
      sqsRecord(frame({ cmd: 'pingreq' }), sentAt),
      sqsRecord(disconnectBody, sentAt, {
        messageAttributes: { [eventTypeAttribute]: { stringValue: 'DISCONNECT', dataType: 'String' } },
      }),
    ],
  };
  assert.equal(await traffic.messageBatch(event, async () => 'answer'), 'answer');
  const families = parseExposition(exposition(traffic.families()));
  const stage = (name: string, suffix: string) =>
    sampleValue(
      families,
      'nimbus_publish_stage_seconds',
      { stage: name },
      `nimbus_publish_stage_seconds_${suffix}`,
    );
  assert.equal(stage('frame_queue', 'count'), 2);
  assert.ok(stage('frame_queue', 'sum') >= 2 * 1, 'each waited at least the second since it was sent');
  assert.equal(stage('message_handler', 'count'), 2);
  assert.equal(stage('fanout', 'count'), 0);
});

test('fanoutBatch observes stream_wait from the stored publishedAt and fanout, also when the invocation fails', async () => {
  const traffic = new TrafficMetrics();
  const publishedAt = Date.now() - 500;
  const event = {
    Records: [
      { eventName: 'INSERT', dynamodb: { NewImage: { publishedAt: { N: String(publishedAt) } } } },
      { eventName: 'REMOVE', dynamodb: { OldImage: { publishedAt: { N: String(publishedAt) } } } },
    ],
  } as DynamoDBStreamEvent;
  await assert.rejects(
    traffic.fanoutBatch(event, async () => {
      throw new Error('boom');
    }),
    /boom/,
  );
  const families = parseExposition(exposition(traffic.families()));
  const stage = (name: string, suffix: string) =>
    sampleValue(
      families,
      'nimbus_publish_stage_seconds',
      { stage: name },
      `nimbus_publish_stage_seconds_${suffix}`,
    );
  assert.equal(stage('stream_wait', 'count'), 1);
  assert.ok(stage('stream_wait', 'sum') >= 0.5);
  assert.equal(stage('fanout', 'count'), 1);
});

test('meterFamilies prices the reading with the one price table', () => {
  const meter = new Meter();
  for (let i = 0; i < 4; i++) meter.gatewayMessage('in', 40 * 1024); // 2 billed messages each
  meter.lambdaInvocation('message', 100, 1024, 1);
  meter.dynamoRequest('PutItem', 0, 3);
  meter.sqsRequest('SendMessage', 10);
  const reading = meter.read();
  const families = parseExposition(exposition(meterFamilies(reading)));
  assert.equal(sampleValue(families, 'nimbus_gateway_billed_messages_total'), 8);
  assert.equal(
    sampleValue(families, 'nimbus_cost_usd_total', { service: 'apigateway' }),
    (8 * prices.gatewayPerMillionMessages) / 1e6,
  );
  assert.equal(
    sampleValue(families, 'nimbus_cost_usd_total', { service: 'lambda' }),
    prices.lambdaPerMillionRequests / 1e6 + 0.1 * prices.lambdaPerGbSecond,
  );
  assert.equal(sampleValue(families, 'nimbus_lambda_gb_seconds_total', { function: 'message' }), 0.1);
  assert.equal(sampleValue(families, 'nimbus_dynamodb_requests_total', { operation: 'PutItem' }), 1);
  const text = formatBill(bill(reading));
  assert.match(text, /^Estimated AWS bill .*us-east-1/);
  assert.match(text, /\n {2}dynamodb +0\.0 RRU \+ 3\.0 WRU +\$0\.000002\n/);
  assert.match(text, /\n {2}total +\$\d+\.\d{6}$/);
});

test('cached fetches at most once per interval and shares a fetch in flight', async () => {
  let fetches = 0;
  const read = cached(async () => ++fetches, 60_000);
  assert.deepEqual(await Promise.all([read(), read()]), [1, 1]);
  assert.equal(await read(), 1);
  let fail = true;
  const flaky = cached(async () => {
    if (fail) throw new Error('down');
    return 7;
  }, 0);
  assert.equal(await flaky(), undefined);
  fail = false;
  assert.equal(await flaky(), 7);
});
