import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStore } from '../shared/storage/memory-store.js';
import { storeConformance } from './support/store-conformance.js';

storeConformance('MemoryStore', async ({ now }) => ({
  store: new MemoryStore({ now }),
  close: async () => {},
}));

// Too many round trips for DynamoDB Local, so checked here only; DynamoStore computes ids with the same packetIdOf.
test('MemoryStore: reservePacketId wraps from 65535 to 1 while seq keeps counting [MQTT-2.3.1-1]', async () => {
  const store = new MemoryStore({ now: () => 0 });
  await store.replaceSession(
    { clientId: 'a', sessionId: 's1', connectionId: 'c1', protocolVersion: 4, cleanSession: false },
    undefined,
  );
  let last = { packetId: 0, seq: 0 };
  for (let i = 0; i < 65_535; i++) last = await store.reservePacketId('a');
  assert.deepEqual(last, { packetId: 65_535, seq: 65_535 });
  assert.deepEqual(await store.reservePacketId('a'), { packetId: 1, seq: 65_536 });
});
