import assert from 'node:assert/strict';
import { test } from 'node:test';
import { limitsEnv, limitsFromEnv } from '../shared/config.js';
import { functionEnvironment } from '../shared/function-environment.js';
import { defaultLimits, dynamoSortKeyLimit, limitsFault } from '../shared/limits.js';
import { subscriptionKey } from '../shared/storage/keys.js';

// The quotas keep every key a client string becomes within DynamoDB's limits.

test('the default quotas fit every key: the longest filter and client id make a Subscriptions sort key of at most 1,024 bytes', () => {
  assert.equal(limitsFault(defaultLimits), undefined);
  const key = subscriptionKey(
    'f'.repeat(defaultLimits.maxFilterBytes),
    'c'.repeat(defaultLimits.maxClientIdBytes),
  );
  assert.ok(Buffer.byteLength(key.filterClient) <= dynamoSortKeyLimit);
});

test('quotas that would let a key overflow are refused, saying which key', () => {
  assert.match(limitsFault({ ...defaultLimits, maxClientIdBytes: 2000 }) ?? '', /Deliveries sort key/);
  assert.match(limitsFault({ ...defaultLimits, maxTopicBytes: 1025 }) ?? '', /Retained sort key/);
  assert.match(limitsFault({ ...defaultLimits, maxFilterBytes: 1000 }) ?? '', /Subscriptions sort key/);
  assert.match(limitsFault({ ...defaultLimits, maxPacketsPerFrame: 0 }) ?? '', /positive integer/);
});

test('a publish rate of 0 switches the quota off; a burst of 0 or a negative rate is refused', () => {
  assert.equal(limitsFault({ ...defaultLimits, maxPublishesPerSecond: 0 }), undefined);
  assert.match(limitsFault({ ...defaultLimits, maxPublishesPerSecond: -1 }) ?? '', /or 0 \(no limit\)/);
  assert.match(
    limitsFault({ ...defaultLimits, publishBurst: 0 }) ?? '',
    /publishBurst must be a positive integer/,
  );
});

test('the function environment carries the quotas set, and the functions read them back', () => {
  const env = functionEnvironment('message', {
    tables: {
      Connections: 'c',
      Sessions: 's',
      Subscriptions: 'u',
      Messages: 'm',
      Deliveries: 'd',
      Retained: 'r',
      LoginAttempts: 'l',
    },
    managementEndpoint: 'http://127.0.0.1:1',
    limits: { maxFiltersPerSubscribe: 10, maxClientIdBytes: 64 },
  });
  assert.equal(env[limitsEnv.maxFiltersPerSubscribe], '10');
  assert.deepEqual(limitsFromEnv(env), {
    ...defaultLimits,
    maxFiltersPerSubscribe: 10,
    maxClientIdBytes: 64,
  });
});

test('a quota no key can hold fails before any function runs', () => {
  assert.throws(
    () =>
      functionEnvironment('message', {
        tables: {
          Connections: 'c',
          Sessions: 's',
          Subscriptions: 'u',
          Messages: 'm',
          Deliveries: 'd',
          Retained: 'r',
          LoginAttempts: 'l',
        },
        managementEndpoint: 'http://127.0.0.1:1',
        limits: { maxTopicBytes: 4096 },
      }),
    /Retained sort key/,
  );
  assert.throws(() => limitsFromEnv({ [limitsEnv.maxClientIdBytes]: '5000' }), /NIMBUS_MAX_CLIENT_ID_BYTES/);
});
