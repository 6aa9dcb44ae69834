import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type {
  IConnackPacket,
  IDisconnectPacket,
  IPublishPacket,
  ISubscribePacket,
  Packet,
} from 'mqtt-packet';
import {
  connectAs,
  publishPacket,
  sendPackets,
  type TestBroker,
  testContext,
} from './support/broker-context.js';

// MQTT 5 subscription options (No Local, Retain As Published, Retain Handling)
// and subscription identifiers, through handleFrame and the fan-out.

type Options = { nl?: boolean; rap?: boolean; rh?: number; qos?: 0 | 1 | 2 };

function subscribe5(
  messageId: number,
  filters: Array<[topic: string, options?: Options]>,
  subscriptionIdentifier?: number,
): ISubscribePacket {
  return {
    cmd: 'subscribe',
    messageId,
    subscriptions: filters.map(([topic, { qos = 1 as const, ...options } = {}]) => ({
      topic,
      qos,
      ...options,
    })),
    ...(subscriptionIdentifier === undefined ? {} : { properties: { subscriptionIdentifier } }),
  };
}

/** A 5.0 client; `clean` false keeps its session an hour after the connection ends. */
async function client(broker: TestBroker, connectionId: string, clientId: string, clean = true) {
  return connectAs(broker, connectionId, clientId, {
    protocolVersion: 5,
    clean,
    ...(clean ? {} : { properties: { sessionExpiryInterval: 3600 } }),
  });
}

async function publish5(broker: TestBroker, connectionId: string, packet: IPublishPacket) {
  await sendPackets(broker, connectionId, [packet], 5);
  await broker.stream();
}

const publishesTo = (broker: TestBroker, connectionId: string) =>
  broker.gateway.packetsTo(connectionId).filter((p): p is IPublishPacket => p.cmd === 'publish');

const idsOf = (packet: IPublishPacket | undefined) => {
  const ids = packet?.properties?.subscriptionIdentifier;
  return ids === undefined ? [] : Array.isArray(ids) ? ids : [ids];
};

const disconnectOf = (packets: Packet[]) =>
  packets.find((p): p is IDisconnectPacket => p.cmd === 'disconnect');

describe('No Local', () => {
  test('[MQTT-3.8.3-3] a No Local subscription does not get its own client’s messages; others do', async () => {
    const broker = testContext();
    await client(broker, 'self', 'alice');
    await sendPackets(
      broker,
      'self',
      [
        subscribe5(1, [
          ['t', { nl: true }],
          ['u', {}],
        ]),
      ],
      5,
    );
    await client(broker, 'other', 'bob');
    await sendPackets(broker, 'other', [subscribe5(1, [['t', { nl: true }]])], 5);
    broker.gateway.clear();
    await publish5(broker, 'self', publishPacket('t', 'own', 1, { messageId: 1 }));
    await publish5(broker, 'self', publishPacket('u', 'own-u', 1, { messageId: 2 }));
    assert.deepEqual(
      publishesTo(broker, 'self').map((p) => p.payload.toString()),
      ['own-u'],
    );
    assert.deepEqual(
      publishesTo(broker, 'other').map((p) => p.payload.toString()),
      ['own'],
    );
  });

  test('[MQTT-3.8.3-3] No Local on one of two overlapping subscriptions: the other still delivers', async () => {
    const broker = testContext();
    await client(broker, 'self', 'alice');
    await sendPackets(
      broker,
      'self',
      [
        subscribe5(1, [
          ['t/+', { nl: true }],
          ['t/#', {}],
        ]),
      ],
      5,
    );
    broker.gateway.clear();
    await publish5(broker, 'self', publishPacket('t/x', 'own', 1, { messageId: 1 }));
    assert.equal(publishesTo(broker, 'self').length, 1);
  });

  test('[MQTT-3.8.3-4] No Local on a shared subscription is a protocol error (0x82)', async () => {
    const broker = testContext();
    await client(broker, 'c', 'alice');
    broker.gateway.clear();
    await sendPackets(broker, 'c', [subscribe5(1, [['$share/g/t', { nl: true }]])], 5);
    assert.equal(disconnectOf(broker.gateway.packetsTo('c'))?.reasonCode, 0x82);
  });
});

describe('Retain As Published', () => {
  test('[MQTT-3.3.1-12] RAP 1 forwards the RETAIN flag as published; [MQTT-3.3.1-13] RAP 0 clears it', async () => {
    const broker = testContext();
    await client(broker, 'rap', 'rap');
    await sendPackets(broker, 'rap', [subscribe5(1, [['t', { rap: true }]])], 5);
    await client(broker, 'plain', 'plain');
    await sendPackets(broker, 'plain', [subscribe5(1, [['t', {}]])], 5);
    await client(broker, 'pub', 'pub');
    broker.gateway.clear();
    await publish5(broker, 'pub', publishPacket('t', 'kept', 1, { messageId: 1, retain: true }));
    await publish5(broker, 'pub', publishPacket('t', 'live', 1, { messageId: 2 }));
    assert.deepEqual(
      publishesTo(broker, 'rap').map((p) => [p.payload.toString(), p.retain]),
      [
        ['kept', true],
        ['live', false],
      ],
    );
    assert.deepEqual(
      publishesTo(broker, 'plain').map((p) => p.retain),
      [false, false],
    );
  });

  test('[MQTT-3.3.1-12] a RAP message queued for an offline session keeps its RETAIN flag when resent', async () => {
    const broker = testContext();
    await client(broker, 's1', 'sleepy', false);
    await sendPackets(broker, 's1', [subscribe5(1, [['t', { rap: true }]])], 5);
    await sendPackets(broker, 's1', [{ cmd: 'disconnect' }], 5);
    await client(broker, 'pub', 'pub');
    await publish5(broker, 'pub', publishPacket('t', 'kept', 1, { messageId: 1, retain: true }));
    const resumed = await client(broker, 's2', 'sleepy', false);
    const resent = resumed.filter((p): p is IPublishPacket => p.cmd === 'publish');
    assert.deepEqual(
      resent.map((p) => [p.payload.toString(), p.retain]),
      [['kept', true]],
    );
  });
});

describe('Retain Handling', () => {
  async function withRetained(): Promise<TestBroker> {
    const broker = testContext();
    await client(broker, 'pub', 'pub');
    await sendPackets(broker, 'pub', [publishPacket('r', 'stored', 1, { messageId: 1, retain: true })], 5);
    await client(broker, 'c', 'alice');
    broker.gateway.clear();
    return broker;
  }
  const retainedTo = (broker: TestBroker) =>
    publishesTo(broker, 'c').map((p) => [p.payload.toString(), p.retain] as const);

  test('[MQTT-3.3.1-9] Retain Handling 0 sends the retained messages at every SUBSCRIBE, RETAIN set', async () => {
    const broker = await withRetained();
    await sendPackets(broker, 'c', [subscribe5(1, [['r', { rh: 0 }]])], 5);
    await sendPackets(broker, 'c', [subscribe5(2, [['r', { rh: 0 }]])], 5);
    assert.deepEqual(retainedTo(broker), [
      ['stored', true],
      ['stored', true],
    ]);
  });

  test('[MQTT-3.3.1-10] Retain Handling 1 sends them only when the subscription is new', async () => {
    const broker = await withRetained();
    await sendPackets(broker, 'c', [subscribe5(1, [['r', { rh: 1 }]])], 5);
    await sendPackets(broker, 'c', [subscribe5(2, [['r', { rh: 1, qos: 2 }]])], 5);
    assert.deepEqual(retainedTo(broker), [['stored', true]]);
    // The re-subscription did replace the options.
    assert.deepEqual(
      (await broker.store.subscriptionsMatching('r')).map((s) => s.qos),
      [2],
    );
  });

  test('[MQTT-3.3.1-10] Retain Handling 1 after an UNSUBSCRIBE: the subscription is new again', async () => {
    const broker = await withRetained();
    await sendPackets(broker, 'c', [subscribe5(1, [['r', { rh: 1 }]])], 5);
    await sendPackets(broker, 'c', [{ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['r'] }], 5);
    await sendPackets(broker, 'c', [subscribe5(3, [['r', { rh: 1 }]])], 5);
    assert.equal(retainedTo(broker).length, 2);
  });

  test('[MQTT-3.3.1-11] Retain Handling 2 never sends retained messages at SUBSCRIBE', async () => {
    const broker = await withRetained();
    await sendPackets(broker, 'c', [subscribe5(1, [['r', { rh: 2 }]])], 5);
    assert.deepEqual(retainedTo(broker), []);
    assert.equal(broker.gateway.packetsTo('c')[0]?.cmd, 'suback');
  });
});

describe('Subscription identifiers', () => {
  test('CONNACK announces Subscription Identifiers Available', async () => {
    const broker = testContext();
    const [connack] = (await client(broker, 'c', 'alice')) as IConnackPacket[];
    assert.notEqual(connack?.properties?.subscriptionIdentifiersAvailable, false);
  });

  test('[MQTT-3.3.4-3] a message carries the identifier of the subscription it matched', async () => {
    const broker = testContext();
    await client(broker, 'c', 'alice');
    await sendPackets(broker, 'c', [subscribe5(1, [['a/+', {}]], 42), subscribe5(2, [['b', {}]])], 5);
    await client(broker, 'pub', 'pub');
    broker.gateway.clear();
    await publish5(broker, 'pub', publishPacket('a/1', 'x', 1, { messageId: 1 }));
    await publish5(broker, 'pub', publishPacket('b', 'y', 1, { messageId: 2 }));
    const [withId, without] = publishesTo(broker, 'c');
    assert.deepEqual(idsOf(withId), [42]);
    // [MQTT-3.3.4-4] no identifier when the subscription has none.
    assert.deepEqual(idsOf(without), []);
  });

  test('[MQTT-3.3.4-5] overlapping subscriptions: one PUBLISH carrying all their identifiers, at the highest QoS', async () => {
    const broker = testContext();
    await client(broker, 'c', 'alice');
    await sendPackets(
      broker,
      'c',
      [
        subscribe5(1, [['s/#', { qos: 0 }]], 7),
        subscribe5(2, [['s/+', { qos: 2 }]], 3),
        subscribe5(3, [['+/x', {}]]),
      ],
      5,
    );
    await client(broker, 'pub', 'pub');
    broker.gateway.clear();
    await publish5(broker, 'pub', publishPacket('s/x', 'once', 2, { messageId: 1 }));
    const delivered = publishesTo(broker, 'c');
    assert.equal(delivered.length, 1);
    assert.equal(delivered[0]?.qos, 2);
    assert.deepEqual(idsOf(delivered[0]), [3, 7]);
  });

  test('[MQTT-3.8.4-3] a re-subscription replaces the identifier, or removes it', async () => {
    const broker = testContext();
    await client(broker, 'c', 'alice');
    await client(broker, 'pub', 'pub');
    await sendPackets(broker, 'c', [subscribe5(1, [['t', {}]], 5), subscribe5(2, [['t', {}]], 9)], 5);
    broker.gateway.clear();
    await publish5(broker, 'pub', publishPacket('t', 'a', 1, { messageId: 1 }));
    await sendPackets(broker, 'c', [subscribe5(3, [['t', {}]])], 5);
    await publish5(broker, 'pub', publishPacket('t', 'b', 1, { messageId: 2 }));
    assert.deepEqual(publishesTo(broker, 'c').map(idsOf), [[9], []]);
  });

  test('[MQTT-3.3.4-3] retained messages sent at SUBSCRIBE carry the identifier', async () => {
    const broker = testContext();
    await client(broker, 'pub', 'pub');
    await sendPackets(broker, 'pub', [publishPacket('r', 'stored', 0, { retain: true })], 5);
    await client(broker, 'c', 'alice');
    broker.gateway.clear();
    await sendPackets(broker, 'c', [subscribe5(1, [['r', {}]], 11)], 5);
    assert.deepEqual(publishesTo(broker, 'c').map(idsOf), [[11]]);
  });

  test('[MQTT-3.3.4-3] a message queued for an offline session is resent with its identifiers', async () => {
    const broker = testContext();
    await client(broker, 's1', 'sleepy', false);
    await sendPackets(broker, 's1', [subscribe5(1, [['t', {}]], 268_435_455)], 5);
    await sendPackets(broker, 's1', [{ cmd: 'disconnect' }], 5);
    await client(broker, 'pub', 'pub');
    await publish5(broker, 'pub', publishPacket('t', 'later', 1, { messageId: 1 }));
    const resumed = await client(broker, 's2', 'sleepy', false);
    const resent = resumed.filter((p): p is IPublishPacket => p.cmd === 'publish');
    assert.deepEqual(resent.map(idsOf), [[268_435_455]]);
  });

  test('[MQTT-3.8.2-1] Subscription Identifier 0 is a protocol error (0x82)', async () => {
    const broker = testContext();
    await client(broker, 'c', 'alice');
    broker.gateway.clear();
    await sendPackets(broker, 'c', [subscribe5(1, [['t', {}]], 0)], 5);
    assert.equal(disconnectOf(broker.gateway.packetsTo('c'))?.reasonCode, 0x82);
    assert.deepEqual(await broker.store.subscriptionsMatching('t'), []);
  });

  test('3.1.1 subscribers get no properties and a cleared RETAIN flag, whatever 5.0 clients do', async () => {
    const broker = testContext();
    await connectAs(broker, 'old', 'old');
    await sendPackets(broker, 'old', [
      { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 't', qos: 1 }] },
    ]);
    await client(broker, 'pub', 'pub');
    broker.gateway.clear();
    await publish5(broker, 'pub', publishPacket('t', 'x', 1, { messageId: 1, retain: true }));
    const [delivered] = publishesTo(broker, 'old');
    assert.equal(delivered?.retain, false);
    assert.deepEqual(idsOf(delivered), []);
  });
});
