import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import mqttPacket, { type IConnackPacket, type IDisconnectPacket, type IPublishPacket } from 'mqtt-packet';
import { AclAuthorizer, parseAcl } from '../shared/acl.js';
import type { Authenticator } from '../shared/auth.js';
import { fanOut } from '../shared/broker/fanout.js';
import { limitsFromEnv } from '../shared/config.js';
import { functionEnvironment } from '../shared/function-environment.js';
import { defaultLimits, limitsFault } from '../shared/limits.js';
import type { SendResult } from '../shared/ports.js';
import { type TableId, tableDefinitions } from '../shared/tables.js';
import {
  connectAs,
  publishPacket,
  sendPackets,
  subscribePacket,
  type TestBroker,
  testContext,
} from './support/broker-context.js';

// MQTT 5 Topic Aliases, client → broker (the connection's mapping, resolved before anything else
// sees the PUBLISH) and broker → client (assigned by the fan-out, sent alone only once confirmed).

const v5 = { protocolVersion: 5 as const };

const aliasOnly = (alias: number, payload: string, qos: 0 | 1 | 2 = 0, extra: Partial<IPublishPacket> = {}) =>
  publishPacket('', payload, qos, { properties: { topicAlias: alias }, ...extra });
const withAlias = (
  topic: string,
  alias: number,
  payload: string,
  qos: 0 | 1 | 2 = 0,
  extra: Partial<IPublishPacket> = {},
) => publishPacket(topic, payload, qos, { properties: { topicAlias: alias }, ...extra });

const publishesTo = (broker: TestBroker, connectionId: string) =>
  broker.gateway.packetsTo(connectionId).filter((p): p is IPublishPacket => p.cmd === 'publish');

function disconnectCode(broker: TestBroker, connectionId: string): number | undefined {
  const packets = broker.gateway.packetsTo(connectionId);
  return (packets.find((p) => p.cmd === 'disconnect') as IDisconnectPacket | undefined)?.reasonCode;
}

/** Counts the calls of one store method. */
function countCalls(
  broker: TestBroker,
  method: 'setInboundTopicAliases' | 'assignTopicAlias' | 'confirmTopicAlias',
) {
  const calls = { count: 0 };
  const original = broker.store[method].bind(broker.store) as (...args: never[]) => Promise<unknown>;
  (broker.store as unknown as Record<string, unknown>)[method] = (...args: never[]) => {
    calls.count++;
    return original(...args);
  };
  return calls;
}

describe('Topic Aliases from the client', () => {
  test('[MQTT-3.2.2-17] the CONNACK announces the Topic Alias Maximum setting; 0 when turned off', async () => {
    for (const [topicAliasMaximum, announced] of [
      [undefined, 10],
      [3, 3],
      [0, 0],
    ] as const) {
      const broker = testContext(topicAliasMaximum === undefined ? {} : { limits: { topicAliasMaximum } });
      const [connack] = (await connectAs(broker, 'c1', 'alice', v5)) as IConnackPacket[];
      assert.equal(connack.properties?.topicAliasMaximum, announced);
    }
  });

  test('[MQTT-3.3.2-12] topic + alias sets the mapping; an empty topic with the alias publishes to it, the stored message carries the topic only', async () => {
    const broker = testContext();
    await connectAs(broker, 'pub', 'alice', v5);
    await sendPackets(broker, 'pub', [withAlias('sensors/kitchen/temp', 1, 'a', 1, { messageId: 1 })], 5);
    await sendPackets(broker, 'pub', [aliasOnly(1, 'b', 1, { messageId: 2 })], 5);
    assert.deepEqual(
      broker.store.accepted.map((m) => [m.topic, Buffer.from(m.payload).toString(), m.properties]),
      [
        ['sensors/kitchen/temp', 'a', undefined],
        ['sensors/kitchen/temp', 'b', undefined],
      ],
    );
    const acks = broker.gateway.packetsTo('pub').filter((p) => p.cmd === 'puback');
    assert.deepEqual(
      acks.map((p) => (p as { reasonCode?: number }).reasonCode ?? 0),
      [0, 0],
    );
    assert.deepEqual(broker.gateway.closed, []);
  });

  test('a mapping is kept on the connection record and written only when it is set or changed', async () => {
    const broker = testContext();
    await connectAs(broker, 'pub', 'alice', v5);
    const writes = countCalls(broker, 'setInboundTopicAliases');
    await sendPackets(
      broker,
      'pub',
      [withAlias('a/b/c', 1, '1'), aliasOnly(1, '2'), withAlias('a/b/c', 1, '3'), aliasOnly(1, '4')],
      5,
    );
    assert.equal(
      writes.count,
      1,
      'one write for the one mapping set; repeats and alias-only PUBLISH cost none',
    );
    assert.deepEqual((await broker.store.getConnection('pub'))?.inboundTopicAliases, { 1: 'a/b/c' });
    // A later frame reads it with the connection record it reads anyway.
    await sendPackets(broker, 'pub', [aliasOnly(1, '5')], 5);
    assert.equal(writes.count, 1);
    assert.deepEqual(
      broker.store.accepted.map((m) => m.topic),
      ['a/b/c', 'a/b/c', 'a/b/c', 'a/b/c', 'a/b/c'],
    );
  });

  test('a topic + alias PUBLISH remaps the alias for the PUBLISHes after it', async () => {
    const broker = testContext();
    await connectAs(broker, 'pub', 'alice', v5);
    await sendPackets(broker, 'pub', [withAlias('first/topic', 2, '1'), aliasOnly(2, '2')], 5);
    await sendPackets(broker, 'pub', [withAlias('second/topic', 2, '3'), aliasOnly(2, '4')], 5);
    assert.deepEqual(
      broker.store.accepted.map((m) => m.topic),
      ['first/topic', 'first/topic', 'second/topic', 'second/topic'],
    );
  });

  test('[MQTT-3.3.2-8] Topic Alias 0 closes with DISCONNECT 0x94, nothing published', async () => {
    const broker = testContext();
    await connectAs(broker, 'pub', 'alice', v5);
    await sendPackets(broker, 'pub', [withAlias('a/b', 0, 'x')], 5);
    assert.equal(disconnectCode(broker, 'pub'), 0x94);
    assert.deepEqual(broker.store.accepted, []);
  });

  test('[MQTT-3.3.2-9] [MQTT-3.3.2-12] aliases up to the announced maximum are accepted, one above closes with 0x94', async () => {
    const broker = testContext({ limits: { topicAliasMaximum: 3 } });
    await connectAs(broker, 'pub', 'alice', v5);
    await sendPackets(broker, 'pub', [withAlias('t/1', 1, 'x'), withAlias('t/3', 3, 'x')], 5);
    assert.deepEqual(broker.gateway.closed, []);
    await sendPackets(broker, 'pub', [withAlias('t/4', 4, 'x')], 5);
    assert.equal(disconnectCode(broker, 'pub'), 0x94);
    assert.deepEqual(
      broker.store.accepted.map((m) => m.topic),
      ['t/1', 't/3'],
    );
  });

  test('[MQTT-3.2.2-17] with topic aliases turned off any alias closes with 0x94', async () => {
    const broker = testContext({ limits: { topicAliasMaximum: 0 } });
    await connectAs(broker, 'pub', 'alice', v5);
    await sendPackets(broker, 'pub', [withAlias('a/b', 1, 'x')], 5);
    assert.equal(disconnectCode(broker, 'pub'), 0x94);
  });

  test('an empty topic with an alias the client never set is a Protocol Error: DISCONNECT 0x82', async () => {
    const broker = testContext();
    await connectAs(broker, 'pub', 'alice', v5);
    await sendPackets(broker, 'pub', [withAlias('a/b', 1, 'x'), aliasOnly(2, 'y')], 5);
    assert.equal(disconnectCode(broker, 'pub'), 0x82);
    assert.deepEqual(
      broker.store.accepted.map((m) => m.topic),
      ['a/b'],
    );
  });

  test('an empty topic without a Topic Alias is a Protocol Error: DISCONNECT 0x82', async () => {
    const broker = testContext();
    await connectAs(broker, 'pub', 'alice', v5);
    await sendPackets(broker, 'pub', [publishPacket('', 'x')], 5);
    assert.equal(disconnectCode(broker, 'pub'), 0x82);
    assert.deepEqual(broker.store.accepted, []);
  });

  test('[MQTT-3.3.2-2] a topic with a wildcard and an alias is refused (0x90) and not kept as a mapping', async () => {
    const broker = testContext();
    await connectAs(broker, 'pub', 'alice', v5);
    await sendPackets(broker, 'pub', [withAlias('a/+', 1, 'x')], 5);
    assert.equal(disconnectCode(broker, 'pub'), 0x90);
    assert.equal((await broker.store.getConnection('pub'))?.inboundTopicAliases, undefined);
  });

  test('[MQTT-3.3.2-7] mappings end with the network connection: the next connection of the same session has none', async () => {
    const broker = testContext();
    const persistent = { ...v5, clean: false, properties: { sessionExpiryInterval: 3600 } };
    await connectAs(broker, 'first', 'alice', persistent);
    await sendPackets(broker, 'first', [withAlias('a/b/c', 1, 'x')], 5);
    await connectAs(broker, 'second', 'alice', persistent);
    const [connack] = broker.gateway.packetsTo('second') as IConnackPacket[];
    assert.equal(connack.sessionPresent, true, 'the session is the same');
    await sendPackets(broker, 'second', [aliasOnly(1, 'y')], 5);
    assert.equal(disconnectCode(broker, 'second'), 0x82);
    assert.deepEqual(
      broker.store.accepted.map((m) => m.topic),
      ['a/b/c'],
    );
  });

  test('authorization sees the aliased topic: an alias-only PUBLISH to a denied topic is refused 0x87', async () => {
    const authorizer = new AclAuthorizer(parseAcl('user alice\ntopic readwrite open/#\n'));
    const anyone: Authenticator = { authenticate: async ({ username }) => ({ ok: true, user: username }) };
    const broker = testContext({ authorizer, authenticator: anyone });
    await connectAs(broker, 'pub', 'alice', { ...v5, username: 'alice' });
    await sendPackets(
      broker,
      'pub',
      [withAlias('secret/plans', 1, 'x', 1, { messageId: 1 }), aliasOnly(1, 'y', 1, { messageId: 2 })],
      5,
    );
    const codes = broker.gateway
      .packetsTo('pub')
      .filter((p) => p.cmd === 'puback')
      .map((p) => (p as { reasonCode?: number }).reasonCode);
    assert.deepEqual(codes, [0x87, 0x87]);
    assert.deepEqual(broker.store.accepted, []);
  });

  test('[MQTT-3.3.1-5] a retained alias-only PUBLISH is retained under its topic name', async () => {
    const broker = testContext();
    await connectAs(broker, 'pub', 'alice', v5);
    await sendPackets(
      broker,
      'pub',
      [withAlias('rooms/hall', 4, 'a'), aliasOnly(4, 'b', 0, { retain: true })],
      5,
    );
    const retained = await broker.store.retainedMatching('rooms/#');
    assert.deepEqual(
      retained.map((m) => [m.topic, Buffer.from(m.payload).toString()]),
      [['rooms/hall', 'b']],
    );
  });

  test('subscribers get the topic name of a message published with an alias, never the publisher’s alias', async () => {
    const broker = testContext();
    await connectAs(broker, 'sub', 'bob', v5);
    await sendPackets(broker, 'sub', [subscribePacket(1, ['a/#', 0])], 5);
    await connectAs(broker, 'pub', 'alice', v5);
    await sendPackets(broker, 'pub', [withAlias('a/long/topic', 7, '1'), aliasOnly(7, '2')], 5);
    await broker.stream();
    const received = publishesTo(broker, 'sub');
    assert.deepEqual(
      received.map((p) => [p.topic, p.properties?.topicAlias]),
      [
        ['a/long/topic', undefined],
        ['a/long/topic', undefined],
      ],
    );
  });
});

/** A subscriber to `t/#` (QoS 1) that allows `aliases` topic aliases. */
async function aliasingSubscriber(
  broker: TestBroker,
  connectionId: string,
  aliases: number | undefined,
  extra: object = {},
) {
  await connectAs(broker, connectionId, `client-${connectionId}`, {
    ...v5,
    ...extra,
    properties: {
      ...(aliases === undefined ? {} : { topicAliasMaximum: aliases }),
      ...('properties' in extra ? (extra.properties as object) : {}),
    },
  });
  await sendPackets(broker, connectionId, [subscribePacket(1, ['t/#', 0])], 5);
}

async function publishAll(broker: TestBroker, topics: readonly string[]) {
  if (!broker.gateway.packetsTo('pub').length) await connectAs(broker, 'pub', 'publisher', v5);
  await sendPackets(
    broker,
    'pub',
    topics.map((topic, i) => publishPacket(topic, `m${i}`)),
    5,
  );
  await broker.stream();
}

const shape = (p: IPublishPacket) => [p.topic, p.properties?.topicAlias];

describe('Topic Aliases to the client', () => {
  test('[MQTT-3.3.2-10] [MQTT-3.3.2-11] the first PUBLISH on a topic carries topic and alias, later ones the alias alone; no alias above the client’s maximum', async () => {
    const broker = testContext();
    await aliasingSubscriber(broker, 'sub', 2);
    await publishAll(broker, [
      't/one/x',
      't/one/x',
      't/two/x',
      't/two/x',
      't/three/x',
      't/one/x',
      't/three/x',
    ]);
    assert.deepEqual(publishesTo(broker, 'sub').map(shape), [
      ['t/one/x', 1],
      ['', 1],
      ['t/two/x', 2],
      ['', 2],
      ['t/three/x', undefined],
      ['', 1],
      ['t/three/x', undefined],
    ]);
  });

  test('[MQTT-3.1.2-26] the broker’s own setting caps the aliases it uses when the client allows more', async () => {
    const broker = testContext({ limits: { topicAliasMaximum: 1 } });
    await aliasingSubscriber(broker, 'sub', 50);
    await publishAll(broker, ['t/one/x', 't/two/x', 't/two/x', 't/one/x']);
    assert.deepEqual(publishesTo(broker, 'sub').map(shape), [
      ['t/one/x', 1],
      ['t/two/x', undefined],
      ['t/two/x', undefined],
      ['', 1],
    ]);
  });

  test('[MQTT-3.1.2-27] no aliases to a client that allows none, to a 3.1.1 client, or with the feature off', async () => {
    for (const [limits, aliases, version] of [
      [{}, undefined, 5],
      [{}, 0, 5],
      [{ topicAliasMaximum: 0 }, 10, 5],
      [{}, undefined, 4],
    ] as const) {
      const broker = testContext({ limits });
      if (version === 4) {
        await connectAs(broker, 'sub', 'old');
        await sendPackets(broker, 'sub', [subscribePacket(1, ['t/#', 0])]);
      } else await aliasingSubscriber(broker, 'sub', aliases);
      await publishAll(broker, ['t/one/x', 't/one/x']);
      assert.deepEqual(
        publishesTo(broker, 'sub').map(shape),
        [
          ['t/one/x', undefined],
          ['t/one/x', undefined],
        ],
        JSON.stringify({ limits, aliases, version }),
      );
    }
  });

  test('topics shorter than 6 bytes go out in full: an alias would save nothing', async () => {
    const broker = testContext();
    await aliasingSubscriber(broker, 'sub', 5);
    await publishAll(broker, ['t/a', 't/a']);
    assert.deepEqual(publishesTo(broker, 'sub').map(shape), [
      ['t/a', undefined],
      ['t/a', undefined],
    ]);
  });

  test('an alias goes out alone only after a post carrying topic and alias returned, whatever order concurrent fan-outs run in', async () => {
    const broker = testContext();
    await aliasingSubscriber(broker, 'sub', 5);
    await connectAs(broker, 'pub', 'publisher', v5);
    await sendPackets(broker, 'pub', [publishPacket('t/slow/x', '1'), publishPacket('t/slow/x', '2')], 5);
    const [first, second] = broker.store.accepted;
    // The first post to the subscriber hangs until released, as a slow PostToConnection would.
    const send = broker.gateway.send.bind(broker.gateway);
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let posts = 0;
    broker.gateway.send = async (connectionId: string, frame: string): Promise<SendResult> => {
      if (connectionId === 'sub' && posts++ === 0) await released;
      return send(connectionId, frame);
    };
    const slow = fanOut(broker.ctx, first);
    await new Promise((resolve) => setImmediate(resolve));
    await fanOut(broker.ctx, second);
    release();
    await slow;
    await fanOut(broker.ctx, first);
    const sent = publishesTo(broker, 'sub').map(shape);
    // The second message's post went first and carried the topic (with the alias or, when this
    // instance's remembered session did not know the assignment yet, without): never the alias alone.
    assert.equal(sent.length, 3);
    assert.equal(sent[0]?.[0], 't/slow/x');
    assert.deepEqual(sent[1], ['t/slow/x', 1]);
    assert.deepEqual(sent[2], ['', 1]);
  });

  test('an alias assigned but not yet confirmed goes out with its topic again, which confirms it', async () => {
    const broker = testContext();
    await aliasingSubscriber(broker, 'sub', 5);
    // Assigned by a delivery whose post never returned (a crashed instance).
    assert.equal(await broker.store.assignTopicAlias('client-sub', 'sub', 't/orphan/x', 1), true);
    await publishAll(broker, ['t/orphan/x', 't/orphan/x']);
    assert.deepEqual(publishesTo(broker, 'sub').map(shape), [
      ['t/orphan/x', 1],
      ['', 1],
    ]);
  });

  test('a post to a gone connection confirms nothing', async () => {
    const broker = testContext();
    await aliasingSubscriber(broker, 'sub', 5);
    const confirms = countCalls(broker, 'confirmTopicAlias');
    broker.gateway.markGone('sub');
    await publishAll(broker, ['t/one/x']);
    assert.equal(confirms.count, 0);
  });

  test('[MQTT-3.3.2-7] a new connection of the session starts without aliases; resent messages carry their topic', async () => {
    const broker = testContext();
    const persistent = { clean: false, properties: { sessionExpiryInterval: 3600, topicAliasMaximum: 5 } };
    await aliasingSubscriber(broker, 'sub1', 5, persistent);
    await sendPackets(broker, 'sub1', [subscribePacket(2, ['q/#', 1])], 5);
    await publishAll(broker, ['t/one/x', 't/one/x']);
    assert.deepEqual(publishesTo(broker, 'sub1').map(shape), [
      ['t/one/x', 1],
      ['', 1],
    ]);
    // A QoS 1 message the first connection never acknowledged…
    await sendPackets(broker, 'pub', [publishPacket('q/unacked/x', 'u', 1, { messageId: 9 })], 5);
    await broker.stream();
    // …is resent at the next CONNECT with its topic, and new deliveries start from alias 1 again.
    const replies = await connectAs(broker, 'sub2', 'client-sub1', { ...v5, ...persistent });
    const resent = replies.filter((p): p is IPublishPacket => p.cmd === 'publish');
    assert.deepEqual(resent.map(shape), [['q/unacked/x', undefined]]);
    await publishAll(broker, ['t/one/x', 't/one/x']);
    assert.deepEqual(publishesTo(broker, 'sub2').slice(1).map(shape), [
      ['t/one/x', 1],
      ['', 1],
    ]);
  });

  test('[MQTT-3.1.2-24] topic and alias are not sent when the alias would take the PUBLISH past the client’s Maximum Packet Size', async () => {
    const broker = testContext();
    const topic = 't/exactly/fits';
    const payload = 'p'.repeat(20);
    // Exactly the PUBLISH with its topic: with topic and alias it is 3 bytes too large.
    const exact = mqttPacket.generate(publishPacket(topic, payload, 0, { properties: {} }), v5).length;
    await aliasingSubscriber(broker, 'sub', 5, { properties: { maximumPacketSize: exact } });
    await connectAs(broker, 'pub', 'publisher', v5);
    await sendPackets(broker, 'pub', [publishPacket(topic, payload)], 5);
    await broker.stream();
    const sent = publishesTo(broker, 'sub').filter((p) => p.payload.toString() === payload);
    assert.deepEqual(sent.map(shape), [[topic, undefined]]);
  });

  test('the bytes saved: a 40-byte topic sent 100 times', async () => {
    const sizes: Record<string, number> = {};
    for (const aliases of [0, 10]) {
      const broker = testContext();
      await aliasingSubscriber(broker, 'sub', aliases);
      const topic = `t/${'x'.repeat(38)}`;
      await publishAll(
        broker,
        Array.from({ length: 100 }, () => topic),
      );
      sizes[aliases] = broker.gateway.sent
        .filter((f) => f.connectionId === 'sub' && f.packets[0]?.cmd === 'publish')
        .reduce((sum, f) => sum + Buffer.from(f.frame, 'base64').length, 0);
    }
    // Each alias-only PUBLISH is 40 bytes of topic shorter and 3 bytes of alias longer; the first is 3 longer.
    assert.equal(sizes[0] - sizes[10], 99 * (40 - 3) - 3);
  });
});

describe('the Topic Alias Maximum setting', () => {
  test('NIMBUS_TOPIC_ALIAS_MAXIMUM reaches every function and is read back; 10 when unset', () => {
    const tables = Object.fromEntries(tableDefinitions.map((t) => [t.id, `nimbus-${t.id}`])) as Record<
      TableId,
      string
    >;
    const env = functionEnvironment('fanout', {
      tables,
      managementEndpoint: 'http://localhost',
      limits: { topicAliasMaximum: 4 },
    });
    assert.equal(env.NIMBUS_TOPIC_ALIAS_MAXIMUM, '4');
    assert.equal(limitsFromEnv(env).topicAliasMaximum, 4);
    assert.equal(limitsFromEnv({}).topicAliasMaximum, 10);
  });

  test('0 turns aliases off; a negative value, one above 65,535, or more topic bytes than a record keeps are refused', () => {
    assert.equal(limitsFault({ ...defaultLimits, topicAliasMaximum: 0 }), undefined);
    assert.match(limitsFault({ ...defaultLimits, topicAliasMaximum: -1 }) ?? '', /or 0 \(off\)/);
    assert.match(
      limitsFault({ ...defaultLimits, maxTopicBytes: 1, topicAliasMaximum: 65_536 }) ?? '',
      /above 65,535/,
    );
    assert.match(
      limitsFault({ ...defaultLimits, topicAliasMaximum: 100 }) ?? '',
      /lower topicAliasMaximum or maxTopicBytes/,
    );
    assert.equal(limitsFault({ ...defaultLimits, maxTopicBytes: 256, topicAliasMaximum: 256 }), undefined);
  });
});
