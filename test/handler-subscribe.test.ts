import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IPublishPacket, ISubackPacket, IUnsubackPacket, Packet } from 'mqtt-packet';
import {
  connectAs,
  publishPacket,
  sendPackets,
  subscribePacket,
  type TestBroker,
  testContext,
} from './support/broker-context.js';

// SUBSCRIBE and UNSUBSCRIBE through handleFrame: SUBACK codes, stored
// subscriptions, retained messages after the SUBACK, UNSUBACK.

async function connected(version: 4 | 5 = 4): Promise<TestBroker> {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice', { protocolVersion: version });
  broker.gateway.clear();
  return broker;
}

/** Stores retained messages as another client publishing them. */
async function retain(
  broker: TestBroker,
  ...messages: Array<[topic: string, payload: string, qos: 0 | 1 | 2]>
) {
  await connectAs(broker, 'p', 'publisher');
  await sendPackets(
    broker,
    'p',
    messages.map(([topic, payload, qos], i) =>
      publishPacket(topic, payload, qos, { retain: true, messageId: i + 1 }),
    ),
  );
}

const suback = (packets: Packet[]): ISubackPacket => {
  assert.equal(packets[0]?.cmd, 'suback');
  return packets[0] as ISubackPacket;
};

describe('SUBSCRIBE', () => {
  test('[MQTT-3.8.4-1] [MQTT-3.9.3-1] SUBACK grants each filter in request order; 3.1.1 refuses a bad filter with 0x80', async () => {
    const broker = await connected();
    await sendPackets(broker, 'c1', [subscribePacket(7, ['a', 0], ['b/+', 1], ['c/#', 2], ['d/#/e', 1])]);
    const reply = suback(broker.gateway.packetsTo('c1'));
    assert.equal(reply.messageId, 7);
    assert.deepEqual(reply.granted, [0, 1, 2, 0x80]);
    const stored = await broker.store.subscriptionsMatching('b/x');
    assert.deepEqual(
      stored.map((s) => [s.clientId, s.filter, s.qos]),
      [['alice', 'b/+', 1]],
    );
  });

  test('5.0 SUBACK: 0x8F for an invalid filter or a malformed shared one [MQTT-4.8.2-2]', async () => {
    const broker = await connected(5);
    await sendPackets(broker, 'c1', [subscribePacket(1, ['a/#/b', 0], ['$share/g+/t', 1], ['ok', 1])], 5);
    assert.deepEqual(suback(broker.gateway.packetsTo('c1')).granted, [0x8f, 0x8f, 1]);
    assert.deepEqual(await broker.store.subscriptionsMatching('a/x/b'), []);
  });

  test('[MQTT-3.8.4-3] a filter repeated in one SUBSCRIBE: the last request wins', async () => {
    const broker = await connected();
    await sendPackets(broker, 'c1', [subscribePacket(1, ['t', 2], ['t', 0])]);
    assert.deepEqual(suback(broker.gateway.packetsTo('c1')).granted, [2, 0]);
    assert.deepEqual(
      (await broker.store.subscriptionsMatching('t')).map((s) => s.qos),
      [0],
    );
  });

  test('[MQTT-3.3.1-6] [MQTT-3.3.1-8] matching retained messages follow the SUBACK with the retain flag set', async () => {
    const broker = await connected();
    await retain(broker, ['r/1', 'one', 0], ['r/2', 'two', 0], ['other', 'x', 0]);
    await sendPackets(broker, 'c1', [subscribePacket(1, ['r/+', 0])]);
    const packets = broker.gateway.packetsTo('c1');
    // SUBACK and the retained messages leave in one frame.
    assert.equal(broker.gateway.sent.filter((f) => f.connectionId === 'c1').length, 1);
    assert.deepEqual(
      packets.map((p) => p.cmd),
      ['suback', 'publish', 'publish'],
    );
    const publishes = packets.slice(1) as IPublishPacket[];
    assert.deepEqual(
      publishes.map((p) => [p.topic, p.payload.toString(), p.retain]),
      [
        ['r/1', 'one', true],
        ['r/2', 'two', true],
      ],
    );
  });

  test('[MQTT-3.8.4-6] a retained message is sent at the lower of its QoS and the granted QoS', async () => {
    const broker = await connected();
    await retain(broker, ['q/2', 'two', 2], ['q/0', 'zero', 0]);
    await sendPackets(broker, 'c1', [subscribePacket(1, ['q/#', 1])]);
    const publishes = broker.gateway.packetsTo('c1').filter((p): p is IPublishPacket => p.cmd === 'publish');
    assert.deepEqual(publishes.map((p) => [p.topic, p.qos]).sort(), [
      ['q/0', 0],
      ['q/2', 1],
    ]);
    const downgraded = publishes.find((p) => p.topic === 'q/2');
    assert.equal(typeof downgraded?.messageId, 'number');
  });

  test('a cleared retained message (empty payload) is not sent [MQTT-3.3.1-10]', async () => {
    const broker = await connected();
    await retain(broker, ['r', 'kept', 0]);
    await sendPackets(broker, 'p', [publishPacket('r', '', 0, { retain: true })]);
    await sendPackets(broker, 'c1', [subscribePacket(1, ['r', 0])]);
    assert.deepEqual(
      broker.gateway.packetsTo('c1').map((p) => p.cmd),
      ['suback'],
    );
  });
});

describe('UNSUBSCRIBE', () => {
  test('[MQTT-3.10.4-4] UNSUBACK carries the packet id; the subscription is gone', async () => {
    const broker = await connected();
    await sendPackets(broker, 'c1', [subscribePacket(1, ['a', 1], ['b', 1])]);
    await sendPackets(broker, 'c1', [{ cmd: 'unsubscribe', messageId: 9, unsubscriptions: ['a'] }]);
    const reply = broker.gateway.packetsTo('c1').at(-1) as IUnsubackPacket;
    assert.equal(reply.cmd, 'unsuback');
    assert.equal(reply.messageId, 9);
    assert.deepEqual(await broker.store.subscriptionsMatching('a'), []);
    assert.equal((await broker.store.subscriptionsMatching('b')).length, 1);
  });

  test('a 5.0 UNSUBACK has reason code Success for each filter', async () => {
    const broker = await connected(5);
    await sendPackets(
      broker,
      'c1',
      [{ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['a', 'never'] }],
      5,
    );
    const reply = broker.gateway.packetsTo('c1')[0] as IUnsubackPacket;
    assert.equal(reply.cmd, 'unsuback');
    assert.deepEqual(reply.granted, [0, 0]);
  });

  test('after UNSUBSCRIBE a matching publish no longer reaches the client', async () => {
    const broker = await connected();
    await sendPackets(broker, 'c1', [subscribePacket(1, ['t', 0])]);
    await sendPackets(broker, 'c1', [{ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['t'] }]);
    broker.gateway.clear();
    await connectAs(broker, 'p', 'publisher');
    await sendPackets(broker, 'p', [publishPacket('t', 'x')]);
    await broker.stream();
    assert.deepEqual(broker.gateway.packetsTo('c1'), []);
  });
});
