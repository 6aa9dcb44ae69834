import assert from 'node:assert/strict';
import { test } from 'node:test';
import { marshall } from '@aws-sdk/util-dynamodb';
import type { StoredMessage } from '../shared/ports.js';
import { messageFromStreamImage } from '../shared/storage/stream-record.js';

// A Messages item as the stream delivers it to the fan-out: JSON, binary attributes as base64.

/** The JSON form of an attribute value, as a Lambda event carries it. */
function asJson(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (_, v) =>
      v && typeof v === 'object' && v.type === 'Buffer' ? Buffer.from(v.data).toString('base64') : v,
    ),
  );
}

const message: StoredMessage = {
  publisher: 'alice',
  messageId: 'm1',
  topic: 't/a',
  payload: Uint8Array.of(1, 2, 3),
  qos: 1,
  retain: false,
  publishedAt: 1_000,
  properties: {
    payloadFormatIndicator: false,
    messageExpiryInterval: 30,
    contentType: 'application/octet-stream',
    responseTopic: 'r',
    correlationData: Uint8Array.of(0, 255),
    userProperties: [
      ['b', '1'],
      ['a', '2'],
      ['b', '3'],
    ],
  },
};

test('[MQTT-3.3.2-18] a stream image gives back the message with its properties, binary inside them included', () => {
  const image = marshall(
    {
      ...message,
      payload: Buffer.from(message.payload),
      properties: { ...message.properties, correlationData: Buffer.from([0, 255]) },
    },
    { removeUndefinedValues: true },
  );
  const read = messageFromStreamImage(asJson(image) as Record<string, unknown>);
  assert.deepEqual(
    {
      ...read,
      payload: [...(read?.payload ?? [])],
      properties: { ...read?.properties, correlationData: [...(read?.properties?.correlationData ?? [])] },
    },
    { ...message, payload: [1, 2, 3], properties: { ...message.properties, correlationData: [0, 255] } },
  );
});

test('a stream image without properties gives a message without them', () => {
  const { properties: _, ...plain } = message;
  const image = marshall({ ...plain, payload: Buffer.from(plain.payload) });
  assert.equal(messageFromStreamImage(asJson(image) as Record<string, unknown>)?.properties, undefined);
});
