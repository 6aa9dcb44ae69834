import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connectionGone } from '../shared/broker/lifecycle.js';
import {
  connectAs,
  publishPacket,
  sendPackets,
  subscribePacket,
  testContext,
} from './support/broker-context.js';

// DISCONNECT through handleFrame: the will is discarded and the server closes.

const will = { topic: 'status/alice', payload: Buffer.from('gone'), qos: 1 as const, retain: false };

test('[MQTT-3.14.4-1] DISCONNECT closes the connection without a reply', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice');
  broker.gateway.clear();
  const outcome = await sendPackets(broker, 'c1', [{ cmd: 'disconnect' }]);
  assert.equal(outcome.closed, 'client DISCONNECT');
  assert.deepEqual(broker.gateway.sent, []);
  assert.deepEqual(broker.gateway.closed, ['c1']);
});

test('[MQTT-3.1.2-10] DISCONNECT discards the will: the end of the connection publishes nothing', async () => {
  const broker = testContext();
  await connectAs(broker, 'w', 'watcher');
  await sendPackets(broker, 'w', [subscribePacket(1, ['status/#', 1])]);
  await connectAs(broker, 'c1', 'alice', { will });
  await sendPackets(broker, 'c1', [{ cmd: 'disconnect' }]);
  await connectionGone(broker.ctx, 'c1'); // the $disconnect event that follows the close
  await broker.stream();
  assert.deepEqual(broker.store.accepted, []);
  assert.equal(await broker.store.getConnection('c1'), undefined);
  assert.equal(await broker.store.getSession('alice'), undefined);
});

test('packets after DISCONNECT in the same frame are not handled', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice');
  const outcome = await sendPackets(broker, 'c1', [
    { cmd: 'disconnect' },
    publishPacket('t', 'late', 1, { messageId: 1 }),
  ]);
  assert.deepEqual(outcome.handled, ['disconnect']);
  assert.deepEqual(broker.store.accepted, []);
});

test('a 5.0 DISCONNECT also discards the will', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice', { will, protocolVersion: 5 });
  await sendPackets(broker, 'c1', [{ cmd: 'disconnect', reasonCode: 0 }], 5);
  await connectionGone(broker.ctx, 'c1');
  assert.deepEqual(broker.store.accepted, []);
});
