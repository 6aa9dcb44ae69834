import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connectionGone } from '../shared/broker/lifecycle.js';
import { connectAs, sendPackets, subscribePacket, testContext } from './support/broker-context.js';

// The will: published when a connection ends without DISCONNECT.

const will = { topic: 'status/alice', payload: Buffer.from('offline'), qos: 1 as const, retain: false };

test('[MQTT-3.1.2-8] an abnormal end publishes the will to subscribers', async () => {
  const broker = testContext();
  await connectAs(broker, 'w', 'watcher');
  await sendPackets(broker, 'w', [subscribePacket(1, ['status/#', 1])]);
  await connectAs(broker, 'c1', 'alice', { will });
  broker.gateway.clear();
  await connectionGone(broker.ctx, 'c1');
  await broker.stream();
  const [delivered] = broker.gateway.packetsTo('w');
  assert.ok(delivered?.cmd === 'publish');
  assert.equal(delivered.topic, 'status/alice');
  assert.equal(delivered.payload.toString(), 'offline');
  assert.equal(delivered.qos, 1);
  assert.equal(broker.store.accepted[0]?.publisher, 'alice');
});

test('the will is published once however many times the end is noticed', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice', { will });
  await connectionGone(broker.ctx, 'c1');
  await connectionGone(broker.ctx, 'c1');
  assert.equal(broker.store.accepted.length, 1);
});

test('[MQTT-3.1.2-17] a will with the retain flag becomes the retained message', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice', { will: { ...will, retain: true } });
  await connectionGone(broker.ctx, 'c1');
  const [retained] = await broker.store.retainedMatching('status/alice');
  assert.equal(Buffer.from(retained?.payload ?? []).toString(), 'offline');
});

test('a connection taken over ends without ending the session now served elsewhere', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice', { will, clean: false });
  await connectAs(broker, 'c2', 'alice', { clean: false });
  await connectionGone(broker.ctx, 'c1'); // the old connection's $disconnect
  assert.equal((await broker.store.getSession('alice'))?.connectionId, 'c2');
  assert.equal(broker.store.accepted.length, 1, 'the old connection ended abnormally: its will is published');
});
