import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import mqttPacket, {
  type IConnackPacket,
  type IDisconnectPacket,
  type ISubackPacket,
  type Packet,
} from 'mqtt-packet';
import { publishSize } from '../shared/broker/delivery.js';
import { handleFrame, isTransientError } from '../shared/broker/inbound.js';
import { connectionGone } from '../shared/broker/lifecycle.js';
import { GATEWAY_MESSAGE_LIMIT } from '../shared/protocol/wire.js';
import {
  connectAs,
  publishPacket,
  sendPackets,
  subscribePacket,
  type TestBroker,
  testContext,
} from './support/broker-context.js';
import {
  mqttString,
  properties,
  property,
  rawConnect,
  rawPacket,
  rawPublish,
  rawSubscribe,
  rawUnsubscribe,
} from './support/raw-packets.js';

// Hostile input through handleFrame: every refusal is a protocol answer for
// the offending connection only, decided before the store sees the input.

async function sendBytes(
  broker: TestBroker,
  connectionId: string,
  bytes: Uint8Array,
  version: 4 | 5 = 4,
  frameId?: string,
) {
  broker.gateway.speaks(connectionId, version);
  return handleFrame(broker.ctx, connectionId, Buffer.from(bytes).toString('base64'), frameId);
}

async function connected(version: 4 | 5 = 4, options: Parameters<typeof testContext>[0] = {}) {
  const broker = testContext(options);
  await connectAs(broker, 'c1', 'alice', { protocolVersion: version });
  broker.gateway.clear();
  return broker;
}

function onlyPacket<T extends Packet['cmd']>(broker: TestBroker, id: string, cmd: T) {
  const packets = broker.gateway.packetsTo(id);
  assert.deepEqual(
    packets.map((p) => p.cmd),
    [cmd],
  );
  return packets[0] as Extract<Packet, { cmd: T }>;
}

/** Asserts the connection was closed, after a 5.0 DISCONNECT with `code` or nothing for 3.1.1. */
function assertViolation(broker: TestBroker, version: 4 | 5, code: number) {
  assert.deepEqual(broker.gateway.closed, ['c1']);
  if (version === 4) assert.deepEqual(broker.gateway.packetsTo('c1'), []);
  else assert.equal((onlyPacket(broker, 'c1', 'disconnect') as IDisconnectPacket).reasonCode, code);
}

describe('quotas on lengths, before DynamoDB is touched', () => {
  test('[MQTT-3.1.3-5] a client id over the quota: 3.1.1 CONNACK 2, 5.0 CONNACK 0x85, no session', async () => {
    for (const version of [4, 5] as const) {
      const broker = testContext({ limits: { maxClientIdBytes: 16 } });
      await sendBytes(broker, 'c1', rawConnect({ clientId: 'x'.repeat(17), level: version }), version);
      const connack = onlyPacket(broker, 'c1', 'connack') as IConnackPacket;
      assert.equal(version === 5 ? connack.reasonCode : connack.returnCode, version === 5 ? 0x85 : 2);
      assert.deepEqual(broker.gateway.closed, ['c1']);
      assert.equal(await broker.store.getSession('x'.repeat(17)), undefined);
      assert.equal(await broker.store.getConnection('c1'), undefined);
    }
  });

  test('a 3,000-byte client id is refused with the default quota', async () => {
    const broker = testContext();
    await sendBytes(broker, 'c1', rawConnect({ clientId: 'x'.repeat(3000) }));
    assert.equal((onlyPacket(broker, 'c1', 'connack') as IConnackPacket).returnCode, 2);
  });

  test('a will topic over the quota: 5.0 CONNACK 0x90, 3.1.1 closed without CONNACK; nothing stored', async () => {
    for (const version of [4, 5] as const) {
      const broker = testContext();
      const will = { topic: 'w'.repeat(1100), payload: 'bye', retain: true, qos: 1 };
      await sendBytes(broker, 'c1', rawConnect({ clientId: 'willy', level: version, will }), version);
      if (version === 5)
        assert.equal((onlyPacket(broker, 'c1', 'connack') as IConnackPacket).reasonCode, 0x90);
      else assert.deepEqual(broker.gateway.packetsTo('c1'), []);
      assert.deepEqual(broker.gateway.closed, ['c1']);
      assert.equal(await broker.store.getConnection('c1'), undefined);
    }
  });

  test('[MQTT-4.7.3-3] a PUBLISH topic over the quota: closed (5.0 DISCONNECT 0x90), nothing stored or retained', async () => {
    for (const version of [4, 5] as const) {
      const broker = await connected(version);
      await sendBytes(
        broker,
        'c1',
        rawPublish({
          topic: 't'.repeat(1100),
          qos: 1,
          retain: true,
          payload: 'x',
          props: version === 5 ? properties() : undefined,
        }),
        version,
      );
      assertViolation(broker, version, 0x90);
      assert.deepEqual(broker.store.accepted, []);
      assert.deepEqual(await broker.store.retainedMatching('#'), []);
    }
  });

  test('[MQTT-3.9.3-2] a filter over the quota is refused in the SUBACK (0x80, 5.0 0x8F); the others are granted', async () => {
    for (const version of [4, 5] as const) {
      const broker = await connected(version);
      await sendPackets(broker, 'c1', [subscribePacket(1, ['f'.repeat(800), 1], ['ok', 1])], version);
      const suback = onlyPacket(broker, 'c1', 'suback') as ISubackPacket;
      assert.deepEqual(suback.granted, [version === 5 ? 0x8f : 0x80, 1]);
      assert.deepEqual(
        (await broker.store.subscriptionsMatching('ok')).map((s) => s.filter),
        ['ok'],
      );
      assert.deepEqual(broker.gateway.closed, []);
    }
  });

  test('filters past the per-SUBSCRIBE quota get 0x97 Quota exceeded (3.1.1: 0x80) and are not stored', async () => {
    for (const version of [4, 5] as const) {
      const broker = await connected(version, { limits: { maxFiltersPerSubscribe: 2 } });
      await sendPackets(broker, 'c1', [subscribePacket(1, ['a', 0], ['b', 1], ['c', 2], ['d', 0])], version);
      const suback = onlyPacket(broker, 'c1', 'suback') as ISubackPacket;
      const refused = version === 5 ? 0x97 : 0x80;
      assert.deepEqual(suback.granted, [0, 1, refused, refused]);
      assert.deepEqual(await broker.store.subscriptionsMatching('c'), []);
    }
  });

  test('subscriptions past the per-session quota get 0x97 (3.1.1: 0x80); re-subscribing a held filter still works', async () => {
    for (const version of [4, 5] as const) {
      const broker = await connected(version, { limits: { maxSubscriptionsPerSession: 2 } });
      await sendPackets(broker, 'c1', [subscribePacket(1, ['a', 0], ['b', 0])], version);
      broker.gateway.clear();
      await sendPackets(broker, 'c1', [subscribePacket(2, ['a', 1], ['c', 1])], version);
      const suback = onlyPacket(broker, 'c1', 'suback') as ISubackPacket;
      assert.deepEqual(suback.granted, [1, version === 5 ? 0x97 : 0x80]);
      assert.deepEqual(await broker.store.subscriptionsMatching('c'), []);
      assert.deepEqual(broker.gateway.closed, []);
    }
  });

  test('10,000 filters in one SUBSCRIBE: the first 100 are stored, the rest refused', async () => {
    const broker = await connected(5);
    const filters = Array.from({ length: 10_000 }, (_, i) => `f/${i}`);
    await sendBytes(broker, 'c1', rawSubscribe(1, filters, properties()), 5);
    const suback = onlyPacket(broker, 'c1', 'suback') as ISubackPacket;
    assert.equal(suback.granted.length, 10_000);
    assert.equal(suback.granted.filter((g) => g === 1).length, 100);
    assert.equal(suback.granted.filter((g) => g === 0x97).length, 9_900);
  });
});

describe('work per frame', () => {
  test('a frame over the packets-per-frame quota closes (5.0 DISCONNECT 0x96) before any packet is handled', async () => {
    for (const version of [4, 5] as const) {
      const broker = await connected(version, { limits: { maxPacketsPerFrame: 2 } });
      await sendPackets(
        broker,
        'c1',
        [publishPacket('t', 'x'), publishPacket('t', 'y'), publishPacket('t', 'z')],
        version,
      );
      assertViolation(broker, version, 0x96);
      assert.deepEqual(broker.store.accepted, []);
    }
  });

  test('a frame at the quota is handled', async () => {
    const broker = await connected(4, { limits: { maxPacketsPerFrame: 2 } });
    await sendPackets(broker, 'c1', [{ cmd: 'pingreq' }, { cmd: 'pingreq' }]);
    assert.deepEqual(
      broker.gateway.packetsTo('c1').map((p) => p.cmd),
      ['pingresp', 'pingresp'],
    );
  });
});

describe('packets the spec refuses', () => {
  test('[MQTT-3.8.3-3] SUBSCRIBE without filters closes the connection (5.0 DISCONNECT 0x82), no exception', async () => {
    for (const version of [4, 5] as const) {
      const broker = await connected(version);
      await sendBytes(broker, 'c1', rawSubscribe(1, [], version === 5 ? properties() : undefined), version);
      assertViolation(broker, version, 0x82);
    }
  });

  test('[MQTT-3.10.3-2] UNSUBSCRIBE without filters closes the connection (5.0 DISCONNECT 0x82)', async () => {
    for (const version of [4, 5] as const) {
      const broker = await connected(version);
      await sendBytes(broker, 'c1', rawUnsubscribe(1, [], version === 5 ? properties() : undefined), version);
      assertViolation(broker, version, 0x82);
    }
  });

  test('[MQTT-2.3.1-1] packet identifier 0 on a QoS 1 PUBLISH or a SUBSCRIBE closes the connection', async () => {
    let broker = await connected();
    await sendBytes(broker, 'c1', rawPublish({ topic: 't', qos: 1, packetId: 0, payload: 'x' }));
    assertViolation(broker, 4, 0x82);
    assert.deepEqual(broker.store.accepted, []);
    broker = await connected(5);
    await sendBytes(broker, 'c1', rawSubscribe(0, ['t'], properties()), 5);
    assertViolation(broker, 5, 0x82);
  });

  test('[MQTT-2.3.1-1] [MQTT-2.3.1-6] packet identifier 0 on PUBACK, PUBREC, PUBREL or PUBCOMP closes the connection; no PUBCOMP 0', async () => {
    for (const version of [4, 5] as const) {
      for (const first of [0x40, 0x50, 0x62, 0x70]) {
        const broker = await connected(version);
        await sendBytes(broker, 'c1', Buffer.from([first, 2, 0, 0]), version);
        assertViolation(broker, version, 0x82);
      }
    }
  });

  test('[MQTT-3.1.0-2] a CONNECT at an unknown level on an open connection is a second CONNECT: DISCONNECT 0x82, no CONNACK', async () => {
    for (const version of [4, 5] as const) {
      const broker = await connected(version);
      await sendBytes(broker, 'c1', rawConnect({ level: 6 }), version);
      assertViolation(broker, version, 0x82);
    }
  });

  test('[MQTT-3.3.1-2] DUP set on a QoS 0 PUBLISH closes the connection', async () => {
    const broker = await connected(5);
    await sendBytes(
      broker,
      'c1',
      rawPublish({ topic: 't', dup: true, payload: 'x', props: properties() }),
      5,
    );
    assertViolation(broker, 5, 0x82);
    assert.deepEqual(broker.store.accepted, []);
  });

  test('[MQTT-3.1.2-2] protocol level 6: CONNACK 1 (0x01 Unacceptable protocol version), then close', async () => {
    const broker = testContext();
    await sendBytes(broker, 'c1', rawConnect({ level: 6 }));
    assert.equal((onlyPacket(broker, 'c1', 'connack') as IConnackPacket).returnCode, 1);
    assert.deepEqual(broker.gateway.closed, ['c1']);
  });

  test('[MQTT-1.5.3-1] ill-formed UTF-8 in a client id closes the connection: no session under the U+FFFD look-alike', async () => {
    const broker = testContext();
    await sendBytes(broker, 'c1', rawConnect({ clientId: Buffer.from([0x61, 0xff]) }));
    await sendBytes(broker, 'c2', rawConnect({ clientId: Buffer.from([0x61, 0xfe]) }));
    assert.deepEqual(broker.gateway.closed, ['c1', 'c2']);
    assert.deepEqual(broker.gateway.sent, []);
    assert.equal(await broker.store.getSession('a\ufffd'), undefined);
  });

  test('[MQTT-1.5.3-1] ill-formed UTF-8 in a topic closes the connection (5.0 DISCONNECT 0x81); nothing published', async () => {
    for (const version of [4, 5] as const) {
      const broker = await connected(version);
      const topic = Buffer.from([0x74, 0x2f, 0xc3, 0x28]); // 't/' then a cut two-byte sequence
      await sendBytes(
        broker,
        'c1',
        rawPublish({ topic, payload: 'x', props: version === 5 ? properties() : undefined }),
        version,
      );
      assertViolation(broker, version, 0x81);
      assert.deepEqual(broker.store.accepted, []);
    }
  });

  test('[MQTT-1.5.3-2] [MQTT-1.5.4-2] U+0000 in a topic, a filter or an UNSUBSCRIBE filter closes the connection (5.0 DISCONNECT 0x81)', async () => {
    const nul = Buffer.from([0x61, 0x00, 0x61]);
    for (const version of [4, 5] as const) {
      const props = version === 5 ? properties() : undefined;
      const packets = [
        rawPublish({ topic: nul, payload: 'x', props }),
        rawSubscribe(1, [nul], props),
        rawPacket(0xa2, Buffer.from([0, 1]), props ?? Buffer.alloc(0), mqttString(nul)),
      ];
      for (const bytes of packets) {
        const broker = await connected(version);
        await sendBytes(broker, 'c1', bytes, version);
        assertViolation(broker, version, 0x81);
        assert.deepEqual(broker.store.accepted, []);
        assert.deepEqual(await broker.store.subscriptionsMatching('a\u0000a'), []);
      }
    }
  });

  test('[MQTT-1.5.3-1] an encoded surrogate (ED A0 80) in a filter is ill-formed, though it decodes to as many bytes', async () => {
    const broker = await connected();
    await sendBytes(broker, 'c1', rawSubscribe(1, [Buffer.from([0x61, 0xed, 0xa0, 0x80])]));
    assertViolation(broker, 4, 0x81);
  });
});

describe('MQTT 5 properties', () => {
  const connect5 = (props: Uint8Array) => rawConnect({ level: 5, clientId: 'p5', props });

  test('a property given twice in CONNECT: CONNACK 0x82 Protocol Error', async () => {
    const broker = testContext();
    await sendBytes(
      broker,
      'c1',
      connect5(properties(property.receiveMaximum(5), property.receiveMaximum(6))),
      5,
    );
    assert.equal((onlyPacket(broker, 'c1', 'connack') as IConnackPacket).reasonCode, 0x82);
    assert.equal(await broker.store.getSession('p5'), undefined);
  });

  test('a property given twice whose first value is 0 (Payload Format Indicator 0, 1) is a Protocol Error: DISCONNECT 0x82', async () => {
    const broker = await connected(5);
    const props = properties(property.payloadFormatIndicator(0), property.payloadFormatIndicator(1));
    await sendBytes(broker, 'c1', rawPublish({ topic: 't', payload: 'x', props }), 5);
    assertViolation(broker, 5, 0x82);
    assert.deepEqual(broker.store.accepted, []);
  });

  test('Receive Maximum 0 and Maximum Packet Size 0 in CONNECT: CONNACK 0x82', async () => {
    for (const bad of [property.receiveMaximum(0), property.maximumPacketSize(0)]) {
      const broker = testContext();
      await sendBytes(broker, 'c1', connect5(properties(bad)), 5);
      assert.equal((onlyPacket(broker, 'c1', 'connack') as IConnackPacket).reasonCode, 0x82);
    }
  });

  test('a property not defined for the packet (a Topic Alias in SUBSCRIBE) is malformed (§2.2.2.2): DISCONNECT 0x81', async () => {
    const broker = await connected(5);
    await sendBytes(broker, 'c1', rawSubscribe(1, ['t'], properties(property.topicAlias(1))), 5);
    assertViolation(broker, 5, 0x81);
    assert.deepEqual(await broker.store.subscriptionsMatching('t'), []);
  });

  test('a Session Expiry Interval in PUBLISH is malformed (§2.2.2.2): DISCONNECT 0x81, nothing published', async () => {
    const broker = await connected(5);
    const props = properties(property.sessionExpiryInterval(1));
    await sendBytes(broker, 'c1', rawPublish({ topic: 't', payload: 'x', props }), 5);
    assertViolation(broker, 5, 0x81);
    assert.deepEqual(broker.store.accepted, []);
  });

  test('a Payload Format Indicator of 7 is a Protocol Error (§3.3.2.3.2: 0 or 1): DISCONNECT 0x82, nothing published', async () => {
    const broker = await connected(5);
    const props = properties(property.payloadFormatIndicator(7));
    await sendBytes(broker, 'c1', rawPublish({ topic: 't', payload: 'x', props }), 5);
    assertViolation(broker, 5, 0x82);
    assert.deepEqual(broker.store.accepted, []);
  });

  test('Request Problem Information 2 in CONNECT is a Protocol Error (§3.1.2.11.7): closed, no session', async () => {
    const broker = testContext();
    await sendBytes(broker, 'c1', connect5(properties(property.requestProblemInformation(2))), 5);
    assert.deepEqual(broker.gateway.closed, ['c1']);
    assert.ok(!broker.gateway.packetsTo('c1').some((p) => p.cmd === 'connack' && p.reasonCode === 0));
    assert.equal(await broker.store.getSession('p5'), undefined);
  });

  test('[MQTT-3.3.4-6] a Subscription Identifier in a client PUBLISH closes with DISCONNECT 0x82', async () => {
    const broker = await connected(5);
    const props = properties(property.subscriptionIdentifier(3));
    await sendBytes(broker, 'c1', rawPublish({ topic: 't', payload: 'x', props }), 5);
    assertViolation(broker, 5, 0x82);
  });

  test('[MQTT-3.3.2-9] a Topic Alias above the announced maximum (10) closes with DISCONNECT 0x94', async () => {
    const broker = await connected(5);
    const props = properties(property.topicAlias(11));
    await sendBytes(broker, 'c1', rawPublish({ topic: 't', payload: 'x', props }), 5);
    assertViolation(broker, 5, 0x94);
    assert.deepEqual(broker.store.accepted, []);
  });
});

describe('a packet that makes a handler throw', () => {
  test('an error that is the packet’s fault closes that connection (5.0 DISCONNECT 0x83), no retry', async () => {
    const broker = await connected(5);
    broker.store.putSubscriptions = async () => {
      throw Object.assign(new Error('One or more parameter values were invalid'), {
        name: 'ValidationException',
      });
    };
    const outcome = await sendPackets(broker, 'c1', [subscribePacket(1, ['t', 1])], 5);
    assert.match(outcome.failure?.message ?? '', /parameter values/);
    assertViolation(broker, 5, 0x83);
  });

  test('the replies of the packets before the failing one are still sent', async () => {
    const broker = await connected();
    broker.store.putSubscriptions = async () => {
      throw new TypeError('boom');
    };
    await sendPackets(broker, 'c1', [{ cmd: 'pingreq' }, subscribePacket(1, ['t', 1])]);
    assert.deepEqual(
      broker.gateway.packetsTo('c1').map((p) => p.cmd),
      ['pingresp'],
    );
    assert.deepEqual(broker.gateway.closed, ['c1']);
  });

  test('throttling is thrown on, so the queue retries the frame', async () => {
    const broker = await connected();
    broker.store.putSubscriptions = async () => {
      throw Object.assign(new Error('Rate exceeded'), { name: 'ProvisionedThroughputExceededException' });
    };
    await assert.rejects(sendPackets(broker, 'c1', [subscribePacket(1, ['t', 1])]), /Rate exceeded/);
    assert.deepEqual(broker.gateway.closed, []);
  });

  test('which errors are transient', () => {
    const named = (name: string, extra: object = {}) => Object.assign(new Error(name), { name, ...extra });
    assert.equal(isTransientError(named('ThrottlingException')), true);
    assert.equal(isTransientError(named('Whatever', { $metadata: { httpStatusCode: 503 } })), true);
    assert.equal(isTransientError(named('Whatever', { $retryable: {} })), true);
    assert.equal(isTransientError(Object.assign(new Error('reset'), { code: 'ECONNRESET' })), true);
    assert.equal(
      isTransientError(
        named('TransactionCanceledException', { CancellationReasons: [{ Code: 'TransactionConflict' }] }),
      ),
      true,
    );
    assert.equal(
      isTransientError(named('ValidationException', { $metadata: { httpStatusCode: 400 } })),
      false,
    );
    assert.equal(isTransientError(new TypeError('x')), false);
    assert.equal(isTransientError('a string'), false);
  });
});

describe('replies that fit the gateway', () => {
  const payload70k = 'p'.repeat(70 * 1024);

  async function queueFor(broker: TestBroker, count: number, qos: 1 | 2 = 1) {
    await connectAs(broker, 'sub', 'bob', { clean: false });
    await sendPackets(broker, 'sub', [subscribePacket(1, ['big/#', qos])]);
    await connectionGone(broker.ctx, 'sub');
    await connectAs(broker, 'pub', 'alice');
    await sendPackets(
      broker,
      'pub',
      Array.from({ length: count }, (_, i) => publishPacket(`big/${i}`, payload70k, 1, { messageId: i + 1 })),
    );
    await broker.stream();
    broker.gateway.clear();
  }

  test('CONNACK and 3 × 70 KB resumed messages leave in several posts of at most 128 KB; all arrive', async () => {
    const broker = testContext();
    await queueFor(broker, 3);
    const replies = await connectAs(broker, 'sub2', 'bob', { clean: false });
    assert.deepEqual(
      replies.map((p) => p.cmd),
      ['connack', 'publish', 'publish', 'publish'],
    );
    const posts = broker.gateway.sent.filter((f) => f.connectionId === 'sub2');
    assert.ok(posts.length >= 3, `${posts.length} posts`);
    for (const post of posts) assert.ok(post.frame.length <= GATEWAY_MESSAGE_LIMIT, `${post.frame.length}`);
  });

  test('SUBACK and 2 × 80 KB retained messages: several posts; a retried SUBSCRIBE frame queues no second copy', async () => {
    const broker = testContext();
    await connectAs(broker, 'pub', 'alice');
    await sendPackets(broker, 'pub', [
      publishPacket('r/1', 'a'.repeat(80 * 1024), 1, { retain: true, messageId: 1 }),
      publishPacket('r/2', 'b'.repeat(80 * 1024), 1, { retain: true, messageId: 2 }),
    ]);
    await connectAs(broker, 'sub', 'bob', { clean: false });
    broker.gateway.clear();
    for (let attempt = 0; attempt < 3; attempt++)
      await sendPackets(broker, 'sub', [subscribePacket(1, ['r/#', 1])], 4, 'frame-7');
    const posts = broker.gateway.sent.filter((f) => f.connectionId === 'sub');
    for (const post of posts) assert.ok(post.frame.length <= GATEWAY_MESSAGE_LIMIT);
    assert.equal(broker.gateway.packetsTo('sub').filter((p) => p.cmd === 'suback').length, 3);
    const queued = await broker.store.outboundMessages('bob');
    assert.deepEqual(queued.map((m) => m.topic).sort(), ['r/1', 'r/2']);
  });

  test('[MQTT-3.1.2-25] a message over the client’s Maximum Packet Size is not sent, and not kept queued', async () => {
    const broker = testContext();
    await connectAs(broker, 'sub', 'bob', {
      protocolVersion: 5,
      clean: false,
      properties: { maximumPacketSize: 1024, sessionExpiryInterval: 3600 },
    });
    await sendPackets(broker, 'sub', [subscribePacket(1, ['t', 1])], 5);
    await connectAs(broker, 'pub', 'alice');
    broker.gateway.clear();
    await sendPackets(broker, 'pub', [
      publishPacket('t', 'x'.repeat(2000), 1, { messageId: 1 }),
      publishPacket('t', 'small', 1, { messageId: 2 }),
    ]);
    await broker.stream();
    const delivered = broker.gateway.packetsTo('sub').filter((p) => p.cmd === 'publish');
    assert.deepEqual(
      delivered.map((p) => p.cmd === 'publish' && p.payload.toString()),
      ['small'],
    );
    assert.deepEqual(
      (await broker.store.outboundMessages('bob')).map((m) => m.payload.length),
      [5],
    );
  });

  test('a queued message too large for the reconnecting client is dropped from the queue at resume', async () => {
    const broker = testContext();
    await queueFor(broker, 1);
    const replies = await connectAs(broker, 'sub2', 'bob', {
      protocolVersion: 5,
      clean: false,
      properties: { maximumPacketSize: 4096 },
    });
    assert.deepEqual(
      replies.map((p) => p.cmd),
      ['connack'],
    );
    assert.deepEqual(await broker.store.outboundMessages('bob'), []);
  });
});

test('publishSize is the size mqtt-packet encodes, around each Remaining Length step', () => {
  for (const payloadLength of [0, 120, 127, 16_380, 16_384, 70_000])
    for (const qos of [0, 1] as const)
      for (const version of [4, 5] as const) {
        const message = { topic: 'a/b', payload: new Uint8Array(payloadLength) };
        const encoded = mqttPacket.generate(
          {
            cmd: 'publish',
            topic: 'a/b',
            payload: Buffer.alloc(payloadLength),
            qos,
            retain: false,
            dup: false,
            ...(qos > 0 ? { messageId: 1 } : {}),
          },
          { protocolVersion: version },
        );
        assert.equal(
          publishSize(message, qos, version),
          encoded.length,
          `${payloadLength} ${qos} ${version}`,
        );
      }
});

test('a CONNECT whose handling fails gets CONNACK 3 (Server unavailable), 5.0 0x83, then the close', async () => {
  for (const version of [4, 5] as const) {
    const broker = testContext();
    broker.store.replaceSession = async () => {
      throw new RangeError('bug');
    };
    const outcome = await connectAs(broker, 'c1', 'alice', { protocolVersion: version });
    const connack = outcome[0] as IConnackPacket;
    assert.equal(version === 5 ? connack.reasonCode : connack.returnCode, version === 5 ? 0x83 : 3);
    assert.deepEqual(broker.gateway.closed, ['c1']);
  }
});
