import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  connectAs,
  publishPacket,
  sendPackets,
  type TestBroker,
  testContext,
} from './support/broker-context.js';

// PUBLISH from a client through handleFrame: the acknowledgement, the message
// stored for the stream, the retained store, exactly once for QoS 2.

async function connected(version: 4 | 5 = 4): Promise<TestBroker> {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice', { protocolVersion: version });
  broker.gateway.clear();
  return broker;
}

const payloads = (broker: TestBroker) => broker.store.accepted.map((m) => Buffer.from(m.payload).toString());

describe('PUBLISH', () => {
  test('QoS 0: no reply; the message is stored for the stream with its publisher and time', async () => {
    const broker = await connected();
    const outcome = await sendPackets(broker, 'c1', [publishPacket('t/a', 'zero')]);
    assert.deepEqual(outcome.handled, ['publish']);
    assert.deepEqual(broker.gateway.sent, []);
    const [stored] = broker.store.accepted;
    assert.equal(stored?.publisher, 'alice');
    assert.equal(stored?.topic, 't/a');
    assert.equal(stored?.qos, 0);
    assert.equal(stored?.publishedAt, broker.clock.now());
    assert.equal(Buffer.from(stored?.payload ?? []).toString(), 'zero');
  });

  test('[MQTT-4.3.2-2] QoS 1: PUBACK with the packet id, after the message is stored', async () => {
    const broker = await connected();
    await sendPackets(broker, 'c1', [publishPacket('t', 'one', 1, { messageId: 42 })]);
    assert.deepEqual(
      broker.gateway.packetsTo('c1').map((p) => [p.cmd, p.messageId]),
      [['puback', 42]],
    );
    assert.deepEqual(payloads(broker), ['one']);
  });

  test('[MQTT-4.3.3-2] QoS 2: PUBREC; a resent PUBLISH gets PUBREC again but is not stored twice', async () => {
    const broker = await connected();
    await sendPackets(broker, 'c1', [publishPacket('t', 'two', 2, { messageId: 5 })]);
    await sendPackets(broker, 'c1', [publishPacket('t', 'two', 2, { messageId: 5, dup: true })]);
    assert.deepEqual(
      broker.gateway.packetsTo('c1').map((p) => [p.cmd, p.messageId]),
      [
        ['pubrec', 5],
        ['pubrec', 5],
      ],
    );
    assert.deepEqual(payloads(broker), ['two']);
  });

  test('[MQTT-4.3.3-2] after PUBREL the packet id is free: a new PUBLISH with it is a new message', async () => {
    const broker = await connected();
    await sendPackets(broker, 'c1', [publishPacket('t', 'first', 2, { messageId: 5 })]);
    await sendPackets(broker, 'c1', [{ cmd: 'pubrel', messageId: 5 }]);
    await sendPackets(broker, 'c1', [publishPacket('t', 'second', 2, { messageId: 5 })]);
    assert.deepEqual(
      broker.gateway.packetsTo('c1').map((p) => [p.cmd, p.messageId]),
      [
        ['pubrec', 5],
        ['pubcomp', 5],
        ['pubrec', 5],
      ],
    );
    assert.deepEqual(payloads(broker), ['first', 'second']);
  });

  test('several packets in one frame are answered in one frame, in order', async () => {
    const broker = await connected();
    await sendPackets(broker, 'c1', [
      publishPacket('t', 'a', 1, { messageId: 1 }),
      publishPacket('t', 'b', 2, { messageId: 2 }),
      { cmd: 'pingreq' },
    ]);
    assert.equal(broker.gateway.sent.length, 1);
    assert.deepEqual(
      broker.gateway.packetsTo('c1').map((p) => p.cmd),
      ['puback', 'pubrec', 'pingresp'],
    );
  });

  test('[MQTT-3.3.1-5] [MQTT-3.3.1-10] retain stores the message; an empty payload clears it', async () => {
    const broker = await connected();
    await sendPackets(broker, 'c1', [publishPacket('r', 'kept', 1, { retain: true, messageId: 1 })]);
    const [retained] = await broker.store.retainedMatching('r');
    assert.equal(Buffer.from(retained?.payload ?? []).toString(), 'kept');
    assert.equal(retained?.qos, 1);
    await sendPackets(broker, 'c1', [publishPacket('r', '', 0, { retain: true })]);
    assert.deepEqual(await broker.store.retainedMatching('r'), []);
  });

  test('[MQTT-3.3.2-2] a wildcard in the topic name closes the connection; 5.0 gets DISCONNECT 0x90', async () => {
    const broker = await connected(5);
    const outcome = await sendPackets(broker, 'c1', [publishPacket('t/#', 'x')], 5);
    assert.equal(outcome.closed, 'invalid topic name');
    const [reply] = broker.gateway.packetsTo('c1');
    assert.equal(reply?.cmd === 'disconnect' && reply.reasonCode, 0x90);
    assert.deepEqual(broker.gateway.closed, ['c1']);
    assert.deepEqual(broker.store.accepted, []);
  });

  test('[MQTT-3.3.2-2] a 3.1.1 client publishing to a wildcard topic is closed without a reply', async () => {
    const broker = await connected();
    await sendPackets(broker, 'c1', [publishPacket('t/+', 'x')]);
    assert.deepEqual(broker.gateway.sent, []);
    assert.deepEqual(broker.gateway.closed, ['c1']);
  });
});
