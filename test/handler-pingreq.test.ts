import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connectAs, sendPackets, testContext } from './support/broker-context.js';

// PINGREQ through handleFrame, and the keep-alive record it refreshes.

test('[MQTT-3.12.4-1] PINGREQ is answered with PINGRESP', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice', { protocolVersion: 5 });
  broker.gateway.clear();
  const outcome = await sendPackets(broker, 'c1', [{ cmd: 'pingreq' }], 5);
  assert.deepEqual(outcome, { handled: ['pingreq'], closed: undefined });
  assert.deepEqual(
    broker.gateway.packetsTo('c1').map((p) => p.cmd),
    ['pingresp'],
  );
});

test('[MQTT-3.1.2-23] CONNECT counts as seen: a packet within half a keep-alive of it writes nothing; later, one per half keep-alive does', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice', { keepalive: 10 });
  const connectedAt = broker.clock.now();
  broker.clock.advance(1_000);
  await sendPackets(broker, 'c1', [{ cmd: 'pingreq' }]);
  assert.equal((await broker.store.getConnection('c1'))?.lastSeen, connectedAt);
  assert.equal((await broker.store.getConnection('c1'))?.keepAliveDue, connectedAt + 20_000);
  broker.clock.advance(4_000);
  await sendPackets(broker, 'c1', [{ cmd: 'pingreq' }]);
  assert.equal((await broker.store.getConnection('c1'))?.lastSeen, connectedAt + 5_000);
  broker.clock.advance(1_000);
  await sendPackets(broker, 'c1', [{ cmd: 'pingreq' }]);
  const record = await broker.store.getConnection('c1');
  assert.equal(record?.lastSeen, connectedAt + 5_000);
  assert.equal(record?.keepAliveDue, connectedAt + 25_000); // the deadline index moves with it
});
