import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IConnectPacket, IPublishPacket } from 'mqtt-packet';
import { fanOut } from '../shared/broker/fanout.js';
import { trackedReceiveMaximum } from '../shared/broker/flow-control.js';
import {
  connectAs,
  publishPacket,
  sendPackets,
  subscribePacket,
  type TestBroker,
  testContext,
} from './support/broker-context.js';

// MQTT 5 flow control toward the client: never more unacknowledged QoS 1/2 PUBLISHes than its
// Receive Maximum; the rest held back and sent in order as acknowledgements free places.

const publishesTo = (broker: TestBroker, connectionId: string) =>
  broker.gateway.packetsTo(connectionId).filter((p): p is IPublishPacket => p.cmd === 'publish');

async function subscriber(
  broker: TestBroker,
  qos: 1 | 2,
  extra: Partial<IConnectPacket> = {},
  receiveMaximum: number | 'none' = 2,
): Promise<void> {
  await connectAs(broker, 'sub', 'bob', {
    protocolVersion: 5,
    ...extra,
    properties: { ...extra.properties, ...(receiveMaximum === 'none' ? {} : { receiveMaximum }) },
  });
  await sendPackets(broker, 'sub', [subscribePacket(1, ['t', qos])], 5);
  broker.gateway.clear();
}

async function publish(broker: TestBroker, count: number, qos: 1 | 2 = 1): Promise<void> {
  await connectAs(broker, 'pub', 'alice');
  await sendPackets(
    broker,
    'pub',
    Array.from({ length: count }, (_, i) => publishPacket('t', `m${i}`, qos, { messageId: i + 1 })),
  );
  await broker.stream();
}

async function ack(broker: TestBroker, cmd: 'puback' | 'pubrec' | 'pubcomp', messageId: number) {
  await sendPackets(broker, 'sub', [{ cmd, messageId }], 5);
}

test('[MQTT-3.3.4-9] Receive Maximum 2: two QoS 1 PUBLISHes go out, the rest wait for PUBACKs, in order', async () => {
  const broker = testContext();
  await subscriber(broker, 1);
  await publish(broker, 5);
  const first = publishesTo(broker, 'sub');
  assert.deepEqual(
    first.map((p) => p.payload.toString()),
    ['m0', 'm1'],
  );
  for (const p of first) await ack(broker, 'puback', p.messageId ?? 0);
  await ack(broker, 'puback', publishesTo(broker, 'sub')[2]?.messageId ?? 0);
  await ack(broker, 'puback', publishesTo(broker, 'sub')[3]?.messageId ?? 0);
  assert.deepEqual(
    publishesTo(broker, 'sub').map((p) => p.payload.toString()),
    ['m0', 'm1', 'm2', 'm3', 'm4'],
  );
});

test('[MQTT-3.3.4-9] a QoS 2 PUBLISH keeps its place until PUBCOMP, not PUBREC', async () => {
  const broker = testContext();
  await subscriber(broker, 2, {}, 1);
  await publish(broker, 2, 2);
  const [first] = publishesTo(broker, 'sub');
  assert.equal(publishesTo(broker, 'sub').length, 1);
  await ack(broker, 'pubrec', first?.messageId ?? 0);
  assert.equal(publishesTo(broker, 'sub').length, 1, 'PUBREC does not free the place');
  await ack(broker, 'pubcomp', first?.messageId ?? 0);
  assert.deepEqual(
    publishesTo(broker, 'sub').map((p) => p.payload.toString()),
    ['m0', 'm1'],
  );
});

test('[MQTT-3.3.4-9] concurrent fan-outs never put more than the Receive Maximum in flight', async () => {
  const broker = testContext();
  await subscriber(broker, 1);
  await connectAs(broker, 'pub', 'alice');
  await sendPackets(
    broker,
    'pub',
    Array.from({ length: 8 }, (_, i) => publishPacket('t', `m${i}`, 1, { messageId: i + 1 })),
  );
  // Every message's fan-out at once, as concurrent stream shards would run them.
  await Promise.all(broker.store.accepted.map((m) => fanOut(broker.ctx, m)));
  assert.equal(publishesTo(broker, 'sub').length, 2);
  for (let acked = 0; acked < 8; acked++) {
    const unacked = publishesTo(broker, 'sub').length - acked;
    assert.ok(unacked <= 2, `${unacked} in flight`);
    await ack(broker, 'puback', publishesTo(broker, 'sub')[acked]?.messageId ?? 0);
  }
  assert.equal(publishesTo(broker, 'sub').length, 8, 'all delivered in the end');
});

test('a persistent session: held messages are queued too, and a reconnect resends only the Receive Maximum at once', async () => {
  const broker = testContext();
  const persistent = { clean: false, properties: { sessionExpiryInterval: 600 } };
  await subscriber(broker, 1, persistent);
  await publish(broker, 4);
  assert.equal(publishesTo(broker, 'sub').length, 2);
  // The client drops before acknowledging anything, and comes back allowing 2 again.
  await connectAs(broker, 'sub2', 'bob', {
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 600, receiveMaximum: 2 },
  });
  const resent = publishesTo(broker, 'sub2');
  assert.deepEqual(
    resent.map((p) => p.payload.toString()),
    ['m0', 'm1'],
  );
  broker.gateway.speaks('sub2', 5);
  await sendPackets(broker, 'sub2', [{ cmd: 'puback', messageId: resent[0]?.messageId ?? 0 }], 5);
  await sendPackets(broker, 'sub2', [{ cmd: 'puback', messageId: resent[1]?.messageId ?? 0 }], 5);
  assert.deepEqual(
    publishesTo(broker, 'sub2').map((p) => p.payload.toString()),
    ['m0', 'm1', 'm2', 'm3'],
  );
});

test('a client that sends no Receive Maximum is not tracked: no flow control write per delivery', async () => {
  const broker = testContext();
  let writes = 0;
  const store = broker.store;
  const take = store.takeSendPlace.bind(store);
  store.takeSendPlace = async (...args) => {
    writes++;
    return take(...args);
  };
  await subscriber(broker, 1, {}, 'none');
  await publish(broker, 5);
  assert.equal(publishesTo(broker, 'sub').length, 5, 'all at once');
  assert.equal(writes, 0);
});

test('a connection that comes back starts with every place free', async () => {
  const broker = testContext();
  await subscriber(broker, 1);
  await publish(broker, 2);
  // Gone without acknowledging; a clean start on a new connection.
  await connectAs(broker, 'sub2', 'bob', { protocolVersion: 5, properties: { receiveMaximum: 2 } });
  await sendPackets(broker, 'sub2', [subscribePacket(1, ['t', 1])], 5);
  broker.gateway.clear();
  await sendPackets(broker, 'pub', [
    publishPacket('t', 'n0', 1, { messageId: 10 }),
    publishPacket('t', 'n1', 1, { messageId: 11 }),
  ]);
  await broker.stream();
  assert.deepEqual(
    publishesTo(broker, 'sub2').map((p) => p.payload.toString()),
    ['n0', 'n1'],
  );
});

test('trackedReceiveMaximum: tracked below 65,535 only, and only for 5.0', () => {
  assert.equal(trackedReceiveMaximum(5, { receiveMaximum: 10 }), 10);
  assert.equal(trackedReceiveMaximum(5, { receiveMaximum: 65_535 }), undefined);
  assert.equal(trackedReceiveMaximum(5, {}), undefined);
  assert.equal(trackedReceiveMaximum(4, { receiveMaximum: 10 }), undefined);
});

// The broker's own Receive Maximum: QoS 2 PUBLISHes from a 5.0 client awaiting PUBREL.

async function publisherV5(broker: TestBroker) {
  const [connack] = await connectAs(broker, 'pub5', 'carol', { protocolVersion: 5 });
  return connack;
}

const q2 = (id: number) => publishPacket('t', `q${id}`, 2, { messageId: id });

test('[MQTT-3.3.4-8] the broker announces its Receive Maximum in CONNACK', async () => {
  const broker = testContext({ limits: { receiveMaximum: 3 } });
  const connack = await publisherV5(broker);
  assert.ok(connack?.cmd === 'connack');
  assert.equal(connack.properties?.receiveMaximum, 3);
});

test('[MQTT-3.3.4-8] one QoS 2 PUBLISH more than the Receive Maximum awaiting PUBREL: DISCONNECT 0x93', async () => {
  const broker = testContext({ limits: { receiveMaximum: 2 } });
  await publisherV5(broker);
  await sendPackets(broker, 'pub5', [q2(1), q2(2)], 5);
  const outcome = await sendPackets(broker, 'pub5', [q2(3)], 5);
  assert.ok(outcome.closed);
  const last = broker.gateway.packetsTo('pub5').at(-1);
  assert.ok(last?.cmd === 'disconnect');
  assert.equal(last.reasonCode, 0x93);
  assert.deepEqual(
    broker.store.accepted.map((m) => m.topic && Buffer.from(m.payload).toString()),
    ['q1', 'q2'],
  );
});

test('[MQTT-3.3.4-8] PUBREL frees a place: a client that waits for PUBCOMP is never disconnected', async () => {
  const broker = testContext({ limits: { receiveMaximum: 1 } });
  await publisherV5(broker);
  for (let id = 1; id <= 5; id++) {
    const outcome = await sendPackets(broker, 'pub5', [q2(id), { cmd: 'pubrel', messageId: id }], 5);
    assert.equal(outcome.closed, undefined);
  }
  assert.equal(broker.store.accepted.length, 5);
});

test('a 3.1.1 client is not told a Receive Maximum and is not held to one', async () => {
  const broker = testContext({ limits: { receiveMaximum: 1 } });
  await connectAs(broker, 'pub4', 'dave');
  const outcome = await sendPackets(broker, 'pub4', [q2(1), q2(2), q2(3)]);
  assert.equal(outcome.closed, undefined);
  assert.equal(broker.store.accepted.length, 3);
});
