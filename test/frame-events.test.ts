import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SQSRecord } from 'aws-lambda';
import { frameFromRecord } from '../functions/message/events.js';

const attribute = (stringValue: string) => ({
  stringValue,
  stringListValues: [],
  binaryListValues: [],
  dataType: 'String',
});

function record(attributes: Record<string, string>): SQSRecord {
  return {
    messageId: 'm1',
    receiptHandle: 'r',
    body: 'EAwABE1RVFQ=',
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: '0',
      SenderId: 's',
      ApproximateFirstReceiveTimestamp: '0',
      MessageGroupId: 'conn=',
    },
    messageAttributes: Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, attribute(v)])),
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:eu-west-1:000000000000:q.fifo',
    awsRegion: 'eu-west-1',
  };
}

test('a frame carries the source address the route put next to the connection id, for login throttling', () => {
  assert.deepEqual(frameFromRecord(record({ connectionId: 'conn=', sourceIp: '203.0.113.9' })), {
    connectionId: 'conn=',
    frame: 'EAwABE1RVFQ=',
    frameId: 'm1',
    sourceIp: '203.0.113.9',
  });
  assert.equal(frameFromRecord(record({ connectionId: 'conn=' })).sourceIp, undefined);
});

test("a frame carries the queue's SentTimestamp as sentAt, the publish rate quota's clock", () => {
  const sent = record({ connectionId: 'conn=' });
  assert.equal(
    frameFromRecord({ ...sent, attributes: { ...sent.attributes, SentTimestamp: '1767225600123' } }).sentAt,
    1767225600123,
  );
  // No usable time: the handler falls back to its own clock.
  assert.equal(frameFromRecord(sent).sentAt, undefined);
});
