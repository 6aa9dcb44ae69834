import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IPublishPacket } from 'mqtt-packet';
import { fanOut } from '../shared/broker/fanout.js';
import { connectionGone } from '../shared/broker/lifecycle.js';
import {
  connectAs,
  publishPacket,
  sendPackets,
  subscribePacket,
  type TestBroker,
  testContext,
} from './support/broker-context.js';

// The fan-out of PUBLISHed messages to subscribers: what the gateway is
// asked to send, what is queued, and how a gone subscriber is cleaned up.

async function publishAndStream(broker: TestBroker, ...packets: IPublishPacket[]) {
  await connectAs(broker, 'pub', 'alice');
  await sendPackets(broker, 'pub', packets);
  await broker.stream();
}

const publishesTo = (broker: TestBroker, connectionId: string) =>
  broker.gateway.packetsTo(connectionId).filter((p): p is IPublishPacket => p.cmd === 'publish');

describe('fan-out', () => {
  test('[MQTT-3.3.1-9] a subscriber gets the message in its own frame, retain flag cleared', async () => {
    const broker = testContext();
    await connectAs(broker, 'sub', 'bob');
    await sendPackets(broker, 'sub', [subscribePacket(1, ['sensors/+', 1])]);
    broker.gateway.clear();
    await publishAndStream(broker, publishPacket('sensors/t', '21.5', 1, { messageId: 9, retain: true }));
    const frames = broker.gateway.sent.filter((f) => f.connectionId === 'sub');
    assert.equal(frames.length, 1);
    const [delivered] = frames[0]?.packets ?? [];
    assert.ok(delivered?.cmd === 'publish');
    assert.equal(delivered.topic, 'sensors/t');
    assert.equal(delivered.payload.toString(), '21.5');
    assert.equal(delivered.qos, 1);
    assert.equal(delivered.retain, false);
    assert.equal(delivered.dup, false);
    assert.equal(typeof delivered.messageId, 'number');
  });

  test('[MQTT-3.3.5-1] delivery QoS is the lower of the message QoS and the subscription QoS', async () => {
    const broker = testContext();
    await connectAs(broker, 'low', 'low');
    await sendPackets(broker, 'low', [subscribePacket(1, ['t', 0])]);
    await connectAs(broker, 'high', 'high');
    await sendPackets(broker, 'high', [subscribePacket(1, ['t', 2])]);
    await publishAndStream(broker, publishPacket('t', 'x', 1, { messageId: 1 }));
    assert.deepEqual(
      publishesTo(broker, 'low').map((p) => p.qos),
      [0],
    );
    assert.deepEqual(
      publishesTo(broker, 'high').map((p) => p.qos),
      [1],
    );
  });

  test('[MQTT-3.3.5-1] overlapping subscriptions of one client deliver once, at the highest QoS', async () => {
    const broker = testContext();
    await connectAs(broker, 'sub', 'bob');
    await sendPackets(broker, 'sub', [subscribePacket(1, ['a/#', 0], ['a/+', 2])]);
    await publishAndStream(broker, publishPacket('a/b', 'x', 2, { messageId: 1 }));
    assert.deepEqual(
      publishesTo(broker, 'sub').map((p) => p.qos),
      [2],
    );
  });

  test('a message to an offline persistent session is queued, then resent on reconnect', async () => {
    const broker = testContext();
    await connectAs(broker, 'sub', 'bob', { clean: false });
    await sendPackets(broker, 'sub', [subscribePacket(1, ['t', 1])]);
    await connectionGone(broker.ctx, 'sub');
    await connectAs(broker, 'pub', 'alice');
    await sendPackets(broker, 'pub', [
      publishPacket('t', 'queued', 1, { messageId: 1 }),
      publishPacket('t', 'dropped', 0),
    ]);
    assert.deepEqual(
      { ...(await fanOut(broker.ctx, broker.store.accepted[0])) },
      { sent: 0, queued: 1, dropped: 0, gone: 0 },
    );
    assert.deepEqual(
      { ...(await fanOut(broker.ctx, broker.store.accepted[1])) },
      { sent: 0, queued: 0, dropped: 1, gone: 0 },
    );
    const replies = await connectAs(broker, 'sub2', 'bob', { clean: false });
    assert.deepEqual(
      replies.map((p) => (p.cmd === 'publish' ? [p.cmd, p.payload.toString(), p.dup] : [p.cmd])),
      [['connack'], ['publish', 'queued', false]],
    );
  });

  test('[MQTT-4.3.3-2] a retried QoS 2 fan-out resends with the same packet id and DUP', async () => {
    const broker = testContext();
    await connectAs(broker, 'sub', 'bob');
    await sendPackets(broker, 'sub', [subscribePacket(1, ['t', 2])]);
    await publishAndStream(broker, publishPacket('t', 'x', 2, { messageId: 1 }));
    const [message] = broker.store.accepted;
    assert.ok(message);
    await fanOut(broker.ctx, message);
    const [first, retry] = publishesTo(broker, 'sub');
    assert.equal(retry?.messageId, first?.messageId);
    assert.deepEqual([first?.dup, retry?.dup], [false, true]);
  });

  test('a subscriber whose connection is gone is cleaned up: its clean session ends', async () => {
    const broker = testContext();
    await connectAs(broker, 'sub', 'bob');
    await sendPackets(broker, 'sub', [subscribePacket(1, ['t', 0])]);
    broker.gateway.markGone('sub');
    await connectAs(broker, 'pub', 'alice');
    await sendPackets(broker, 'pub', [publishPacket('t', 'x')]);
    const [message] = broker.store.accepted;
    assert.ok(message);
    assert.equal((await fanOut(broker.ctx, message)).gone, 1);
    assert.equal(await broker.store.getConnection('sub'), undefined);
    assert.equal(await broker.store.getSession('bob'), undefined);
    assert.deepEqual(await broker.store.subscriptionsMatching('t'), []);
  });

  test('no subscriber: nothing is sent', async () => {
    const broker = testContext();
    await publishAndStream(broker, publishPacket('nobody/listens', 'x', 1, { messageId: 1 }));
    assert.deepEqual(
      broker.gateway.sent.filter((f) => f.connectionId !== 'pub'),
      [],
    );
  });
});
