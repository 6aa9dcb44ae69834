import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import { connectionGone } from '../shared/broker/lifecycle.js';
import { messageProperties, publishProperties, remainingExpiry } from '../shared/message-properties.js';
import {
  connectAs,
  publishPacket,
  sendPackets,
  subscribePacket,
  type TestBroker,
  testContext,
} from './support/broker-context.js';

// MQTT 5 application-message properties, publisher to subscriber, and the
// Message Expiry Interval: live, queued for an offline session, retained, wills.

const v5 = { protocolVersion: 5 as const };

async function subscriber(broker: TestBroker, connectionId: string, clientId: string, version: 4 | 5 = 5) {
  await connectAs(broker, connectionId, clientId, { protocolVersion: version });
  await sendPackets(broker, connectionId, [subscribePacket(1, ['t/#', 1])], version);
}

async function publish(broker: TestBroker, packet: IPublishPacket): Promise<Packet[]> {
  if (!broker.gateway.packetsTo('pub').length) await connectAs(broker, 'pub', 'alice', v5);
  const before = broker.gateway.packetsTo('pub').length;
  await sendPackets(broker, 'pub', [packet], 5);
  return broker.gateway.packetsTo('pub').slice(before);
}

const publishesTo = (broker: TestBroker, connectionId: string) =>
  broker.gateway.packetsTo(connectionId).filter((p): p is IPublishPacket => p.cmd === 'publish');

const everything = {
  payloadFormatIndicator: true,
  contentType: 'application/json',
  responseTopic: 'replies/alice',
  correlationData: Buffer.from([0, 1, 2, 0xff]),
  userProperties: { region: 'eu', trace: ['a', 'b', 'a'], empty: '' },
};

describe('MQTT 5 message properties', () => {
  test('[MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20] every property reaches a 5.0 subscriber unchanged, user property order and duplicates kept', async () => {
    const broker = testContext();
    await subscriber(broker, 'sub', 'bob');
    await publish(broker, publishPacket('t/a', '{"x":1}', 1, { messageId: 3, properties: everything }));
    await broker.stream();
    const [delivered] = publishesTo(broker, 'sub');
    assert.ok(delivered);
    const props = delivered.properties ?? {};
    assert.equal(props.payloadFormatIndicator, true);
    assert.equal(props.contentType, 'application/json');
    assert.equal(props.responseTopic, 'replies/alice');
    assert.deepEqual([...(props.correlationData ?? [])], [0, 1, 2, 0xff]);
    assert.deepEqual({ ...props.userProperties }, everything.userProperties);
    assert.deepEqual(Object.keys(props.userProperties ?? {}), ['region', 'trace', 'empty']);
    assert.equal(props.messageExpiryInterval, undefined, 'no expiry invented');
  });

  test('a 3.1.1 subscriber gets the plain message, no properties', async () => {
    const broker = testContext();
    await subscriber(broker, 'old', 'carol', 4);
    await publish(broker, publishPacket('t/a', 'hi', 1, { messageId: 3, properties: everything }));
    await broker.stream();
    const [delivered] = publishesTo(broker, 'old');
    assert.equal(delivered?.payload.toString(), 'hi');
    assert.equal(delivered?.properties, undefined);
  });

  test('a 3.1.1 publisher’s message reaches a 5.0 subscriber without properties', async () => {
    const broker = testContext();
    await subscriber(broker, 'sub', 'bob');
    await connectAs(broker, 'p4', 'dave');
    await sendPackets(broker, 'p4', [publishPacket('t/a', 'plain', 1, { messageId: 1 })]);
    await broker.stream();
    assert.equal(publishesTo(broker, 'sub')[0]?.properties, undefined);
  });

  test('the message item keeps user properties as ordered name/value pairs', () => {
    assert.deepEqual(messageProperties({ userProperties: { b: '1', a: ['2', '3'] } })?.userProperties, [
      ['b', '1'],
      ['a', '2'],
      ['a', '3'],
    ]);
    const out = publishProperties({ userProperties: [['__proto__', 'x']] }, undefined);
    assert.deepEqual(Object.entries(out?.userProperties ?? {}), [['__proto__', ['x']]]);
  });

  for (const qos of [1, 2] as const) {
    test(`[MQTT-3.3.2-4] payload format indicator 1 with a payload that is not UTF-8: QoS ${qos} acknowledged 0x99 with a reason string, nothing stored`, async () => {
      const broker = testContext();
      const replies = await publish(broker, {
        ...publishPacket('t/a', '', qos, { messageId: 8, properties: { payloadFormatIndicator: true } }),
        payload: Buffer.from([0xc3, 0x28]),
      });
      assert.equal(replies.length, 1);
      const [ack] = replies;
      assert.ok(ack?.cmd === (qos === 1 ? 'puback' : 'pubrec'));
      assert.equal(ack.reasonCode, 0x99);
      assert.match(String(ack.properties?.reasonString), /UTF-8/);
      assert.deepEqual(broker.store.accepted, []);
    });
  }

  test('[MQTT-3.3.2-4] payload format indicator 1 with a bad payload at QoS 0: DISCONNECT 0x99', async () => {
    const broker = testContext();
    await connectAs(broker, 'pub', 'alice', v5);
    const outcome = await sendPackets(
      broker,
      'pub',
      [
        {
          ...publishPacket('t/a', '', 0, { properties: { payloadFormatIndicator: true } }),
          payload: Buffer.from([0xff]),
        },
      ],
      5,
    );
    assert.ok(outcome.closed);
    const disconnect = broker.gateway.packetsTo('pub').find((p) => p.cmd === 'disconnect');
    assert.equal(disconnect?.cmd === 'disconnect' && disconnect.reasonCode, 0x99);
    assert.deepEqual(broker.store.accepted, []);
  });

  test('payload format indicator 1 with UTF-8 text is accepted and forwarded', async () => {
    const broker = testContext();
    await subscriber(broker, 'sub', 'bob');
    const replies = await publish(
      broker,
      publishPacket('t/a', 'héllo ✓', 1, { messageId: 2, properties: { payloadFormatIndicator: true } }),
    );
    assert.equal(replies[0]?.cmd === 'puback' && (replies[0].reasonCode ?? 0), 0);
    await broker.stream();
    assert.equal(publishesTo(broker, 'sub')[0]?.properties?.payloadFormatIndicator, true);
  });

  test('[MQTT-3.1.2-8] a will’s properties reach its subscribers', async () => {
    const broker = testContext();
    await subscriber(broker, 'sub', 'bob');
    await connectAs(broker, 'w', 'willer', {
      protocolVersion: 5,
      will: {
        topic: 't/will',
        payload: Buffer.from('gone'),
        qos: 1,
        retain: false,
        properties: {
          contentType: 'text/plain',
          userProperties: { why: 'crash' },
          messageExpiryInterval: 30,
        },
      },
    });
    broker.clock.advance(60_000); // a will's expiry starts when it is published, not at CONNECT
    await connectionGone(broker.ctx, 'w');
    await broker.stream();
    const [delivered] = publishesTo(broker, 'sub');
    assert.equal(delivered?.properties?.contentType, 'text/plain');
    assert.deepEqual({ ...delivered?.properties?.userProperties }, { why: 'crash' });
    assert.equal(delivered?.properties?.messageExpiryInterval, 30);
  });
});

describe('Message Expiry Interval', () => {
  test('[MQTT-3.3.2-6] the interval forwarded is what is left: whole seconds waited are taken off', async () => {
    const broker = testContext();
    await subscriber(broker, 'sub', 'bob');
    await publish(
      broker,
      publishPacket('t/a', 'x', 1, { messageId: 1, properties: { messageExpiryInterval: 10 } }),
    );
    broker.clock.advance(2_500);
    await broker.stream();
    assert.equal(publishesTo(broker, 'sub')[0]?.properties?.messageExpiryInterval, 8);
    assert.equal(remainingExpiry({ properties: { messageExpiryInterval: 10 }, publishedAt: 0 }, 9_999), 1);
  });

  test('[MQTT-3.3.2-5] a live message whose interval has passed when the fan-out reaches it is not delivered', async () => {
    const broker = testContext();
    await subscriber(broker, 'sub', 'bob');
    await publish(
      broker,
      publishPacket('t/a', 'late', 1, { messageId: 1, properties: { messageExpiryInterval: 2 } }),
    );
    broker.clock.advance(2_000);
    await broker.stream();
    assert.deepEqual(publishesTo(broker, 'sub'), []);
  });

  test('[MQTT-3.3.2-5] a queued message that expired before the session came back is deleted, not sent; one still alive is sent with what is left', async () => {
    const broker = testContext();
    await connectAs(broker, 'sub', 'bob', {
      ...v5,
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    await sendPackets(broker, 'sub', [subscribePacket(1, ['t/#', 1])], 5);
    await connectionGone(broker.ctx, 'sub');
    await publish(
      broker,
      publishPacket('t/a', 'short', 1, { messageId: 1, properties: { messageExpiryInterval: 5 } }),
    );
    await publish(
      broker,
      publishPacket('t/b', 'long', 1, {
        messageId: 2,
        properties: { messageExpiryInterval: 100, userProperties: { k: 'v' } },
      }),
    );
    await broker.stream();
    assert.equal((await broker.store.outboundMessages('bob')).length, 2);
    broker.clock.advance(7_000);
    const replies = await connectAs(broker, 'sub2', 'bob', {
      ...v5,
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    const resent = replies.filter((p): p is IPublishPacket => p.cmd === 'publish');
    assert.deepEqual(
      resent.map((p) => [
        p.payload.toString(),
        p.properties?.messageExpiryInterval,
        { ...p.properties?.userProperties },
      ]),
      [['long', 93, { k: 'v' }]],
    );
    assert.deepEqual(
      (await broker.store.outboundMessages('bob')).map((m) => m.topic),
      ['t/b'],
      'the expired copy is gone from the queue',
    );
  });

  test('[MQTT-3.3.2-5] a message posted to a connection already gone has not started onward delivery: it expires in the queue, and a live one comes without DUP', async () => {
    const broker = testContext();
    const persistent = { ...v5, clean: false, properties: { sessionExpiryInterval: 3600 } };
    await connectAs(broker, 'sub', 'bob', persistent);
    await sendPackets(broker, 'sub', [subscribePacket(1, ['t/#', 1])], 5);
    // The client has left, but its $disconnect is not handled yet: the session still names 'sub'.
    broker.gateway.markGone('sub');
    await publish(
      broker,
      publishPacket('t/a', 'short', 1, { messageId: 1, properties: { messageExpiryInterval: 5 } }),
    );
    await publish(broker, publishPacket('t/b', 'long', 1, { messageId: 2 }));
    await broker.stream();
    assert.deepEqual(
      (await broker.store.outboundMessages('bob')).map((m) => [m.topic, m.sent]),
      [
        ['t/a', false],
        ['t/b', false],
      ],
      'kept as never sent',
    );
    broker.clock.advance(7_000);
    const replies = await connectAs(broker, 'sub2', 'bob', persistent);
    const resent = replies.filter((p): p is IPublishPacket => p.cmd === 'publish');
    assert.deepEqual(
      resent.map((p) => [p.payload.toString(), p.dup]),
      [['long', false]],
    );
  });

  test('[MQTT-3.3.2-5] an expired retained message is not sent at SUBSCRIBE; a live one is, with its properties and what is left of its interval', async () => {
    const broker = testContext();
    await publish(
      broker,
      publishPacket('t/old', 'old', 1, {
        messageId: 1,
        retain: true,
        properties: { messageExpiryInterval: 5 },
      }),
    );
    await publish(
      broker,
      publishPacket('t/new', 'new', 1, {
        messageId: 2,
        retain: true,
        properties: { messageExpiryInterval: 60, responseTopic: 'r/1' },
      }),
    );
    broker.clock.advance(10_000);
    await subscriber(broker, 'sub', 'bob');
    const retained = publishesTo(broker, 'sub');
    assert.deepEqual(
      retained.map((p) => [
        p.topic,
        p.retain,
        p.properties?.messageExpiryInterval,
        p.properties?.responseTopic,
      ]),
      [['t/new', true, 50, 'r/1']],
    );
  });

  test('a message without an interval never expires', async () => {
    const broker = testContext();
    await subscriber(broker, 'sub', 'bob');
    await publish(broker, publishPacket('t/a', 'forever', 1, { messageId: 1 }));
    broker.clock.advance(365 * 24 * 3600_000);
    await broker.stream();
    assert.equal(publishesTo(broker, 'sub').length, 1);
  });
});

describe('limits and refusals', () => {
  test('[MQTT-3.1.2-25] properties count toward the subscriber’s Maximum Packet Size: a message too large with them is not sent', async () => {
    const broker = testContext();
    await connectAs(broker, 'small', 'tiny', { protocolVersion: 5, properties: { maximumPacketSize: 200 } });
    await sendPackets(broker, 'small', [subscribePacket(1, ['t/#', 1])], 5);
    const big = { userProperties: { note: 'x'.repeat(190) } };
    await publish(broker, publishPacket('t/a', 'small payload', 1, { messageId: 1, properties: big }));
    await publish(broker, publishPacket('t/b', 'small payload', 1, { messageId: 2 }));
    await broker.stream();
    assert.deepEqual(
      publishesTo(broker, 'small').map((p) => p.topic),
      ['t/b'],
    );
  });

  test('a will declared UTF-8 whose payload is not: CONNACK 0x99 with a reason string', async () => {
    const broker = testContext();
    const replies = await connectAs(broker, 'w', 'willer', {
      protocolVersion: 5,
      will: {
        topic: 't/will',
        payload: Buffer.from([0xff, 0xfe]),
        qos: 0,
        retain: false,
        properties: { payloadFormatIndicator: true },
      },
    });
    const [connack] = replies;
    assert.ok(connack?.cmd === 'connack');
    assert.equal(connack.reasonCode, 0x99);
    assert.match(String(connack.properties?.reasonString), /UTF-8/);
  });

  test('a refused PUBLISH says why in a reason string', async () => {
    const broker = testContext();
    await connectAs(broker, 'pub', 'alice', v5);
    await sendPackets(broker, 'pub', [publishPacket('t/+', 'x', 1, { messageId: 1 })], 5);
    const disconnect = broker.gateway.packetsTo('pub').find((p) => p.cmd === 'disconnect');
    assert.ok(disconnect?.cmd === 'disconnect');
    assert.equal(disconnect.reasonCode, 0x90);
    assert.equal(disconnect.properties?.reasonString, 'invalid topic name');
  });

  test('[MQTT-3.14.2-3] a reason string that would make the DISCONNECT larger than the client takes is left out', async () => {
    const broker = testContext();
    await connectAs(broker, 'pub', 'alice', { protocolVersion: 5, properties: { maximumPacketSize: 16 } });
    await sendPackets(broker, 'pub', [publishPacket('t/+', 'x', 1, { messageId: 1 })], 5);
    const disconnect = broker.gateway.packetsTo('pub').find((p) => p.cmd === 'disconnect');
    assert.ok(disconnect?.cmd === 'disconnect');
    assert.equal(disconnect.reasonCode, 0x90);
    assert.equal(disconnect.properties?.reasonString, undefined);
  });

  test('[MQTT-3.3.2-14] a Response Topic with wildcards is a protocol error', async () => {
    const broker = testContext();
    await connectAs(broker, 'pub', 'alice', v5);
    const outcome = await sendPackets(
      broker,
      'pub',
      [publishPacket('t/a', 'x', 1, { messageId: 1, properties: { responseTopic: 'r/#' } })],
      5,
    );
    assert.ok(outcome.closed);
    assert.deepEqual(broker.store.accepted, []);
  });
});
