import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BatchGetCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { batchGet } from '../shared/storage/dynamo/paging.js';

type Key = { clientId: string };

/** A document client that answers BatchGetItem after a tick, leaving the first key of each first call unprocessed. */
function fakeDb() {
  const seen = { calls: 0, inFlight: 0, mostInFlight: 0, sizes: [] as number[] };
  const retried = new Set<string>();
  const db = {
    async send(command: BatchGetCommand) {
      const keys = command.input.RequestItems?.t?.Keys as Key[];
      seen.calls++;
      seen.sizes.push(keys.length);
      seen.inFlight++;
      seen.mostInFlight = Math.max(seen.mostInFlight, seen.inFlight);
      await new Promise((resolve) => setTimeout(resolve, 5));
      seen.inFlight--;
      const [first, ...rest] = keys;
      // DynamoDB may leave keys unprocessed; they are asked for again.
      if (first && !retried.has(first.clientId)) {
        retried.add(first.clientId);
        return {
          Responses: { t: rest.map((k) => ({ ...k, found: true })) },
          UnprocessedKeys: { t: { Keys: [first] } },
        };
      }
      return { Responses: { t: keys.map((k) => ({ ...k, found: true })) } };
    },
  } as unknown as DynamoDBDocumentClient;
  return { db, seen };
}

describe('batchGet', () => {
  test('reads 1,050 keys in groups of 100, eight groups at most in flight, unprocessed keys asked again', async () => {
    const { db, seen } = fakeDb();
    const keys = Array.from({ length: 1_050 }, (_, i) => ({ clientId: `c${i}` }));
    const items = await batchGet(db, 't', keys);
    assert.deepEqual(items.map((i) => i.clientId).sort(), keys.map((k) => k.clientId).sort());
    assert.ok(
      seen.sizes.every((n) => n <= 100),
      'BatchGetItem takes at most 100 keys',
    );
    assert.equal(seen.calls, 22, 'eleven groups, each retried once for its unprocessed key');
    assert.equal(seen.mostInFlight, 8);
  });

  test('reads nothing for no keys', async () => {
    const { db, seen } = fakeDb();
    assert.deepEqual(await batchGet(db, 't', []), []);
    assert.equal(seen.calls, 0);
  });
});
