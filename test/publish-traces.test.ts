import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DynamoDBStreamEvent, SQSEvent } from 'aws-lambda';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { TrafficMetrics } from '../emulator/metrics.js';
import { PublishTraces } from '../emulator/publish-traces.js';
import { sqsRecord } from './support/sqs-records.js';

const frame = (...packets: Packet[]) =>
  Buffer.concat(packets.map((p) => mqttPacket.generate(p))).toString('base64');
const publish: Packet = {
  cmd: 'publish',
  topic: 't',
  payload: Buffer.from('x'),
  qos: 0,
  retain: false,
  dup: false,
};

const insert = (publisher: string, messageId: string, publishedAt: number) => ({
  eventName: 'INSERT',
  dynamodb: {
    NewImage: {
      publisher: { S: publisher },
      messageId: { S: messageId },
      publishedAt: { N: String(publishedAt) },
    },
  },
});

test('a stored message is joined to the frame of its publisher handled when it was published', async () => {
  const clients: Record<string, string> = { 'conn-a': 'alice', 'conn-b': 'bob' };
  const traffic = new TrafficMetrics((connectionId) => clients[connectionId]);
  const sentAt = Date.now() - 40;
  const published: Record<string, number> = {};
  const event: SQSEvent = {
    Records: [
      sqsRecord(frame(publish), sentAt, { connectionId: 'conn-a' }),
      sqsRecord(frame(publish), sentAt - 10, { connectionId: 'conn-b' }),
    ],
  };
  await traffic.messageBatch(event, async () => {
    published.alice = Date.now();
    published.bob = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 20));
  });
  // Not fanned out yet: nothing is complete.
  assert.deepEqual(traffic.traces.read(), []);
  await new Promise((resolve) => setTimeout(resolve, 30));
  const stream = {
    Records: [insert('bob', 'm-b', published.bob ?? 0), insert('alice', 'm-a', published.alice ?? 0)],
  } as DynamoDBStreamEvent;
  await traffic.fanoutBatch(stream, () => new Promise((resolve) => setTimeout(resolve, 15)));

  const traces = traffic.traces.read();
  assert.deepEqual(
    traces.map((t) => t.messageId),
    ['m-b', 'm-a'],
  );
  const [bob, alice] = traces;
  assert.ok(bob && alice);
  // Each frame's own wait in the queue; the invocations are shared.
  assert.ok(bob.frameQueueMs >= alice.frameQueueMs + 10);
  // A timer may fire up to a millisecond early by performance.now(): Node schedules it from the loop's cached clock.
  assert.ok(alice.messageHandlerMs >= 19);
  assert.ok(alice.streamWaitMs >= 30, 'the wait for the stream is from publishedAt to the fan-out');
  assert.ok(alice.fanoutMs >= 14);
  assert.equal(alice.ownMs, alice.frameQueueMs + alice.messageHandlerMs + alice.fanoutMs);
  // `since` keeps the messages published at or after it.
  assert.equal(traffic.traces.read(Date.now() + 1).length, 0);
});

test('a message whose frame was not seen (a will, a $SYS/ count) is not traced', () => {
  const traces = new PublishTraces();
  const now = Date.now();
  traces.messageInvocation(now - 100, [{ clientId: 'alice', waitMs: 1, publishes: 1 }])(10);
  // Published after that invocation ended, and by someone else.
  traces.fanoutInvocation(now, [
    { publisher: 'alice', messageId: 'late', publishedAt: now - 50 },
    { publisher: '$SYS', messageId: 'sys', publishedAt: now - 95 },
  ])(5);
  assert.deepEqual(traces.read(), []);
});

test('two messages of one frame take the frame once each; a third of the same client is not traced', () => {
  const traces = new PublishTraces();
  const now = Date.now();
  const ended = traces.messageInvocation(now, [{ clientId: 'alice', waitMs: 3, publishes: 2 }]);
  const fanned = traces.fanoutInvocation(now + 5, [
    { publisher: 'alice', messageId: '1', publishedAt: now + 1 },
    { publisher: 'alice', messageId: '2', publishedAt: now + 2 },
    { publisher: 'alice', messageId: '3', publishedAt: now + 3 },
  ]);
  fanned(4);
  assert.deepEqual(traces.read(), [], 'complete only once the message invocation has ended');
  ended(6);
  assert.deepEqual(
    traces.read().map((t) => [t.messageId, t.ownMs]),
    [
      ['1', 13],
      ['2', 13],
    ],
  );
});
