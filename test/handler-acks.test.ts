import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IPublishPacket } from 'mqtt-packet';
import { fanOut } from '../shared/broker/fanout.js';
import {
  connectAs,
  publishPacket,
  sendPackets,
  subscribePacket,
  type TestBroker,
  testContext,
} from './support/broker-context.js';

// PUBACK, PUBREC, PUBREL and PUBCOMP through handleFrame, both directions.

/**
 * Subscriber `bob` (on `sub`, clean session as asked) subscribed to `t` at
 * QoS 2, and a message published to it at `qos` and fanned out. Returns the
 * PUBLISH bob got.
 */
async function delivered(
  qos: 1 | 2,
  clean = false,
): Promise<{ broker: TestBroker; publish: IPublishPacket }> {
  const broker = testContext();
  await connectAs(broker, 'sub', 'bob', { clean });
  await sendPackets(broker, 'sub', [subscribePacket(1, ['t', 2])]);
  await connectAs(broker, 'pub', 'alice');
  await sendPackets(broker, 'pub', [publishPacket('t', 'm', qos, { messageId: 1 })]);
  await broker.stream();
  const publish = broker.gateway.packetsTo('sub').find((p): p is IPublishPacket => p.cmd === 'publish');
  assert.ok(publish?.messageId !== undefined, 'the subscriber got the message');
  broker.gateway.clear();
  return { broker, publish };
}

describe('acknowledgements of deliveries to the client', () => {
  test('[MQTT-4.3.2-1] PUBACK ends a QoS 1 delivery: the stored copy is deleted, no reply', async () => {
    const { broker, publish } = await delivered(1);
    assert.equal((await broker.store.outboundMessages('bob')).length, 1);
    await sendPackets(broker, 'sub', [{ cmd: 'puback', messageId: publish.messageId }]);
    assert.deepEqual(await broker.store.outboundMessages('bob'), []);
    assert.deepEqual(broker.gateway.sent, []);
  });

  test('[MQTT-4.3.3-1] PUBREC is answered with PUBREL, which is what a reconnect resends', async () => {
    const { broker, publish } = await delivered(2);
    await sendPackets(broker, 'sub', [{ cmd: 'pubrec', messageId: publish.messageId }]);
    assert.deepEqual(
      broker.gateway.packetsTo('sub').map((p) => [p.cmd, p.messageId]),
      [['pubrel', publish.messageId]],
    );
    const [outbound] = await broker.store.outboundMessages('bob');
    assert.equal(outbound?.released, true);
  });

  test('[MQTT-4.3.3-1] after PUBREC a retried fan-out does not send the PUBLISH again', async () => {
    const { broker, publish } = await delivered(2);
    await sendPackets(broker, 'sub', [{ cmd: 'pubrec', messageId: publish.messageId }]);
    broker.gateway.clear();
    const [message] = broker.store.accepted;
    assert.ok(message);
    await fanOut(broker.ctx, message);
    assert.deepEqual(broker.gateway.packetsTo('sub'), []);
  });

  test('[MQTT-4.3.3-1] PUBCOMP ends a QoS 2 delivery: the stored copy is deleted', async () => {
    const { broker, publish } = await delivered(2);
    await sendPackets(broker, 'sub', [{ cmd: 'pubrec', messageId: publish.messageId }]);
    await sendPackets(broker, 'sub', [{ cmd: 'pubcomp', messageId: publish.messageId }]);
    assert.deepEqual(await broker.store.outboundMessages('bob'), []);
  });

  test('a clean session keeps no copies; its PUBACK is accepted and answered with nothing', async () => {
    const { broker, publish } = await delivered(1, true);
    assert.deepEqual(await broker.store.outboundMessages('bob'), []);
    const outcome = await sendPackets(broker, 'sub', [{ cmd: 'puback', messageId: publish.messageId }]);
    assert.deepEqual(outcome, { handled: ['puback'], closed: undefined });
    assert.deepEqual(broker.gateway.sent, []);
  });
});

describe('acknowledgements of publishes from the client', () => {
  test('[MQTT-4.3.3-2] PUBREL is answered with PUBCOMP carrying the packet id', async () => {
    const broker = testContext();
    await connectAs(broker, 'c1', 'alice');
    await sendPackets(broker, 'c1', [publishPacket('t', 'x', 2, { messageId: 3 })]);
    broker.gateway.clear();
    await sendPackets(broker, 'c1', [{ cmd: 'pubrel', messageId: 3 }]);
    assert.deepEqual(
      broker.gateway.packetsTo('c1').map((p) => [p.cmd, p.messageId]),
      [['pubcomp', 3]],
    );
  });

  test('a PUBREL for an unknown packet id still gets PUBCOMP (it may be a resend)', async () => {
    const broker = testContext();
    await connectAs(broker, 'c1', 'alice', { protocolVersion: 5 });
    broker.gateway.clear();
    await sendPackets(broker, 'c1', [{ cmd: 'pubrel', messageId: 77 }], 5);
    assert.deepEqual(
      broker.gateway.packetsTo('c1').map((p) => [p.cmd, p.messageId]),
      [['pubcomp', 77]],
    );
  });
});
