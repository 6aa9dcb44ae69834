import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { marshall } from '@aws-sdk/util-dynamodb';
import fc from 'fast-check';
import { compressFromBytes, packPayload, unpackPayload } from '../shared/storage/payload-codec.js';
import { messageFromStreamImage } from '../shared/storage/stream-record.js';

// Stored payloads are compressed when that saves DynamoDB write units; readers get the original bytes.

/** 16 KB of telemetry JSON, repetitive as readings are. */
function jsonReadings(bytes = 16 * 1024): Buffer {
  const readings: string[] = [];
  for (let i = 0; readings.join(',').length < bytes; i++)
    readings.push(`{"t":${1_700_000_000 + i},"temp":${(20 + (i % 7) / 10).toFixed(1)},"ok":true}`);
  return Buffer.from(`[${readings.join(',')}]`.slice(0, bytes));
}

test('16 KB of JSON is stored in under 1 KB (one write unit instead of seventeen) and read back exactly', () => {
  const json = jsonReadings();
  const packed = packPayload(json);
  assert.equal(packed.payloadEncoding, 'br');
  assert.ok(packed.payload.byteLength < 1024, `${packed.payload.byteLength} bytes`);
  assert.deepEqual(Buffer.from(unpackPayload(packed.payload, packed.payloadEncoding)), json);
});

test('incompressible and small payloads are stored as sent', () => {
  const random = randomBytes(16 * 1024);
  assert.deepEqual(packPayload(random), { payload: random });
  const small = Buffer.from('x'.repeat(compressFromBytes - 1));
  assert.deepEqual(packPayload(small), { payload: small });
  assert.equal(unpackPayload(small, undefined), small);
});

test('any payload comes back byte for byte', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 4096 }), fc.integer({ min: 1, max: 50 }), (bytes, repeat) => {
      // Repeated, so some compress and some do not.
      const payload = Buffer.concat(Array.from({ length: repeat }, () => bytes));
      const packed = packPayload(payload);
      assert.deepEqual(Buffer.from(unpackPayload(packed.payload, packed.payloadEncoding)), payload);
    }),
    { numRuns: 200 },
  );
});

test('an encoding this version does not know is an error, not a garbled delivery', () => {
  assert.throws(() => unpackPayload(Uint8Array.of(1), 'zstd'), /zstd/);
});

test('the stream record of a compressed message gives the fan-out the original payload', () => {
  const json = jsonReadings();
  const message = {
    publisher: 'dev-1',
    messageId: 'm1',
    topic: 'big/1',
    qos: 0,
    retain: false,
    publishedAt: 1,
  };
  const image = marshall({ ...message, ...packPayload(json), expiresAt: 2 });
  // Lambda hands stream images over as JSON: binary as base64.
  const asJson = JSON.parse(
    JSON.stringify(image, (_, v) =>
      v && typeof v === 'object' && v.type === 'Buffer' ? Buffer.from(v.data).toString('base64') : v,
    ),
  ) as Record<string, unknown>;
  const read = messageFromStreamImage(asJson);
  assert.deepEqual(Buffer.from(read?.payload ?? []), json);
  assert.equal(read?.topic, 'big/1');
  assert.equal('payloadEncoding' in (read ?? {}), false);
});
