import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IConnackPacket, IPublishPacket, ISubackPacket, ISubscribePacket } from 'mqtt-packet';
import { AclAuthorizer, parseAcl } from '../shared/acl.js';
import type { Authenticator } from '../shared/auth.js';
import { fanOut } from '../shared/broker/fanout.js';
import { connectionGone } from '../shared/broker/lifecycle.js';
import { removeExpiredSessions } from '../shared/broker/session-expiry.js';
import {
  connectAs,
  publishPacket,
  sendPackets,
  type TestBroker,
  testContext,
} from './support/broker-context.js';

// MQTT 5.0 §4.8.2 Shared Subscriptions through handleFrame, the fan-out and the ends of sessions.

type Options = { qos?: 0 | 1 | 2; rap?: boolean; rh?: number };

function subscribe(
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

/** A 5.0 client on connection `clientId`; `expiry` > 0 keeps its session that long after the connection. */
async function member(
  broker: TestBroker,
  clientId: string,
  filters: string[],
  expiry = 0,
  qos: 0 | 1 | 2 = 1,
) {
  const connack = await connectAs(broker, clientId, clientId, {
    protocolVersion: 5,
    clean: expiry === 0,
    ...(expiry > 0 ? { properties: { sessionExpiryInterval: expiry } } : {}),
  });
  if (filters.length > 0)
    await sendPackets(
      broker,
      clientId,
      [
        subscribe(
          1,
          filters.map((f) => [f, { qos }]),
        ),
      ],
      5,
    );
  return connack[0] as IConnackPacket;
}

let nextId = 1;
async function publish(broker: TestBroker, topic: string, payload: string, qos: 0 | 1 | 2 = 1) {
  await sendPackets(
    broker,
    'pub',
    [publishPacket(topic, payload, qos, qos > 0 ? { messageId: nextId++ } : {})],
    5,
  );
  await broker.stream();
}

async function publisher(broker: TestBroker) {
  await connectAs(broker, 'pub', 'pub', { protocolVersion: 5 });
}

const publishesTo = (broker: TestBroker, connectionId: string) =>
  broker.gateway.packetsTo(connectionId).filter((p): p is IPublishPacket => p.cmd === 'publish');

const payloadsTo = (broker: TestBroker, connectionId: string) =>
  publishesTo(broker, connectionId).map((p) => p.payload.toString());

const subackTo = (broker: TestBroker, connectionId: string) =>
  broker.gateway.packetsTo(connectionId).find((p): p is ISubackPacket => p.cmd === 'suback');

describe('Shared Subscriptions: subscribing', () => {
  test('CONNACK says Shared Subscription Available 1', async () => {
    const broker = testContext();
    const connack = await member(broker, 'w1', []);
    assert.equal(connack.properties?.sharedSubscriptionAvailable, true);
  });

  test('[MQTT-4.8.2-1] [MQTT-4.8.2-2] a well-formed $share/ filter is granted its QoS; malformed ones get 0x8F', async () => {
    const broker = testContext();
    await member(broker, 'w1', []);
    await sendPackets(
      broker,
      'w1',
      [
        subscribe(1, [
          ['$share/g/jobs/+', { qos: 2 }],
          ['$share//jobs'],
          ['$share/g'],
          ['$share/g/'],
          ['$share/a+b/jobs'],
          ['$share/a#/jobs'],
          ['$share/g/jobs/#/x'],
        ]),
      ],
      5,
    );
    assert.deepEqual(subackTo(broker, 'w1')?.granted, [2, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f, 0x8f]);
    assert.deepEqual(
      (await broker.store.subscriptionsMatching('jobs/1')).map((s) => s.filter),
      ['$share/g/jobs/+'],
    );
  });

  test('a 3.1.1 client may make Shared Subscriptions too, and a malformed one is refused with 0x80', async () => {
    const broker = testContext();
    await connectAs(broker, 'old', 'old');
    await sendPackets(broker, 'old', [subscribe(1, [['$share/g/jobs'], ['$share//jobs']])]);
    assert.deepEqual(subackTo(broker, 'old')?.granted, [1, 0x80]);
    await member(broker, 'w1', ['$share/g/jobs']);
    await publisher(broker);
    for (let i = 0; i < 20; i++) await publish(broker, 'jobs', `m${i}`);
    const old = payloadsTo(broker, 'old');
    const w1 = payloadsTo(broker, 'w1');
    assert.equal(old.length + w1.length, 20);
    assert.ok(old.length > 0 && w1.length > 0, `${old.length} / ${w1.length}`);
  });

  test('§4.8.2 retained messages are not sent when a Shared Subscription is made', async () => {
    const broker = testContext();
    await publisher(broker);
    await sendPackets(broker, 'pub', [publishPacket('jobs', 'kept', 1, { messageId: 1, retain: true })], 5);
    await broker.stream();
    await member(broker, 'w1', ['$share/g/jobs', 'jobs']);
    // Only the non-shared subscription gets the retained message.
    assert.deepEqual(payloadsTo(broker, 'w1'), ['kept']);
  });

  test('UNSUBSCRIBE $share/g/filter ends that membership only', async () => {
    const broker = testContext();
    await member(broker, 'w1', ['$share/g/jobs', '$share/h/jobs']);
    await sendPackets(
      broker,
      'w1',
      [{ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['$share/g/jobs'] }],
      5,
    );
    assert.deepEqual(
      (await broker.store.subscriptionsMatching('jobs')).map((s) => s.filter),
      ['$share/h/jobs'],
    );
    await publisher(broker);
    await publish(broker, 'jobs', 'one');
    assert.deepEqual(payloadsTo(broker, 'w1'), ['one']);
  });

  test('authorization judges the topic filter, not the $share/ prefix', async () => {
    const namedUser: Authenticator = {
      async authenticate({ username }) {
        return username ? { ok: true, user: username } : { ok: false, reason: 'not-authorized' };
      },
    };
    const acl = parseAcl('user alice\ntopic read jobs/#\n');
    const broker = testContext({ authenticator: namedUser, authorizer: new AclAuthorizer(acl) });
    await connectAs(broker, 'w1', 'w1', { protocolVersion: 5, username: 'alice' });
    await sendPackets(broker, 'w1', [subscribe(1, [['$share/any/jobs/+'], ['$share/any/other/+']])], 5);
    assert.deepEqual(subackTo(broker, 'w1')?.granted, [1, 0x87]);
  });
});

describe('Shared Subscriptions: the fan-out', () => {
  test('§4.8.2 each message goes to exactly one member of each group, spread across the members', async () => {
    const broker = testContext();
    for (const w of ['a1', 'a2', 'a3']) await member(broker, w, ['$share/a/jobs/+']);
    await member(broker, 'b1', ['$share/b/jobs/#']);
    await publisher(broker);
    const sent = Array.from({ length: 60 }, (_, i) => `m${i}`);
    for (const m of sent) await publish(broker, 'jobs/x', m);
    const groupA = ['a1', 'a2', 'a3'].map((w) => payloadsTo(broker, w));
    assert.deepEqual(groupA.flat().sort(), [...sent].sort(), 'group a: each once');
    for (const got of groupA) assert.ok(got.length >= 8, `spread: ${groupA.map((g) => g.length)}`);
    assert.deepEqual(payloadsTo(broker, 'b1'), sent, 'group b: all, in order');
  });

  test('a client with a shared and a non-shared subscription gets the message through each', async () => {
    const broker = testContext();
    await member(broker, 'w1', ['$share/g/jobs', 'jobs', '$share/h/jobs']);
    await publisher(broker);
    await publish(broker, 'jobs', 'one');
    assert.deepEqual(payloadsTo(broker, 'w1'), ['one', 'one', 'one']);
  });

  test('[MQTT-4.8.2-3] a member gets the message at the QoS it was granted', async () => {
    const broker = testContext();
    await member(broker, 'w1', ['$share/g/jobs'], 0, 0);
    await publisher(broker);
    await publish(broker, 'jobs', 'one', 2);
    assert.deepEqual(
      publishesTo(broker, 'w1').map((p) => p.qos),
      [0],
    );
  });

  test('§3.3.4 a member gets only its own Subscription Identifier', async () => {
    const broker = testContext();
    await connectAs(broker, 'w1', 'w1', { protocolVersion: 5 });
    await sendPackets(broker, 'w1', [subscribe(1, [['$share/g/jobs']], 7)], 5);
    await connectAs(broker, 'w2', 'w2', { protocolVersion: 5 });
    await sendPackets(broker, 'w2', [subscribe(1, [['$share/g/jobs']], 9)], 5);
    await publisher(broker);
    for (let i = 0; i < 10; i++) await publish(broker, 'jobs', `m${i}`);
    for (const [w, id] of [
      ['w1', 7],
      ['w2', 9],
    ] as const)
      for (const p of publishesTo(broker, w)) assert.equal(p.properties?.subscriptionIdentifier, id);
  });

  test('online members are preferred; with none online, one persistent member queues the message', async () => {
    const broker = testContext();
    await member(broker, 'away', ['$share/g/jobs'], 3600);
    await member(broker, 'here', ['$share/g/jobs']);
    await connectionGone(broker.ctx, 'away');
    await publisher(broker);
    for (let i = 0; i < 10; i++) await publish(broker, 'jobs', `m${i}`);
    assert.equal(payloadsTo(broker, 'here').length, 10);
    assert.deepEqual(await broker.store.outboundMessages('away'), []);
    for (const p of publishesTo(broker, 'here'))
      await sendPackets(broker, 'here', [{ cmd: 'puback', messageId: p.messageId }], 5);
    await connectionGone(broker.ctx, 'here');
    await publish(broker, 'jobs', 'later');
    assert.deepEqual(
      (await broker.store.outboundMessages('away')).map((m) => Buffer.from(m.payload).toString()),
      ['later'],
    );
  });

  test('a member that may not read the topic is passed over, and the group still gets the message', async () => {
    const named: Authenticator = {
      async authenticate({ username }) {
        return username ? { ok: true, user: username } : { ok: false, reason: 'not-authorized' };
      },
    };
    const acl = parseAcl(
      'user full\ntopic readwrite jobs/#\nuser partial\ntopic read jobs/#\ntopic deny jobs/secret\n',
    );
    const broker = testContext({ authenticator: named, authorizer: new AclAuthorizer(acl) });
    for (const [w, user] of [
      ['w1', 'full'],
      ['w2', 'partial'],
    ]) {
      await connectAs(broker, w, w, { protocolVersion: 5, username: user });
      await sendPackets(broker, w, [subscribe(1, [['$share/g/jobs/#']])], 5);
    }
    await connectAs(broker, 'pub', 'pub', { protocolVersion: 5, username: 'full' });
    for (let i = 0; i < 10; i++) await publish(broker, 'jobs/secret', `s${i}`);
    assert.equal(payloadsTo(broker, 'w1').length, 10);
    assert.deepEqual(payloadsTo(broker, 'w2'), []);
  });

  test('a retried fan-out picks the same member, and QoS 2 is not duplicated', async () => {
    const broker = testContext();
    for (const w of ['w1', 'w2', 'w3']) await member(broker, w, ['$share/g/jobs'], 0, 2);
    await publisher(broker);
    await publish(broker, 'jobs', 'once', 2);
    const [message] = broker.store.accepted;
    await fanOut(broker.ctx, message);
    const got = ['w1', 'w2', 'w3'].map((w) => publishesTo(broker, w));
    const receivers = got.filter((g) => g.length > 0);
    assert.equal(receivers.length, 1);
    // The retry resends the same packet id with DUP, which the receiver discards [MQTT-4.3.3-2].
    assert.deepEqual(
      receivers[0].map((p) => [p.messageId, p.dup]),
      [
        [receivers[0][0].messageId, false],
        [receivers[0][0].messageId, true],
      ],
    );
  });
});

describe('Shared Subscriptions: a member that goes away', () => {
  /** Members w1..wn of `$share/g/jobs`; returns which received what of `count` QoS `qos` messages. */
  async function groupWithTraffic(broker: TestBroker, expiry: number, qos: 1 | 2, count = 12) {
    for (const w of ['w1', 'w2', 'w3']) await member(broker, w, ['$share/g/jobs'], expiry, qos);
    await publisher(broker);
    for (let i = 0; i < count; i++) await publish(broker, 'jobs', `m${i}`, qos);
  }

  test('§4.8.2 a clean member’s unacknowledged QoS 1 messages go to the rest of the group when it disconnects', async () => {
    const broker = testContext();
    await groupWithTraffic(broker, 0, 1);
    const [leaving, ...staying] = ['w1', 'w2', 'w3'].sort(
      (a, b) => publishesTo(broker, b).length - publishesTo(broker, a).length,
    );
    const left = publishesTo(broker, leaving);
    assert.ok(left.length > 1);
    // It acknowledges the first; the rest are in flight when its connection ends.
    await sendPackets(broker, leaving, [{ cmd: 'puback', messageId: left[0].messageId }], 5);
    broker.gateway.clear();
    await connectionGone(broker.ctx, leaving);
    const handed = staying.flatMap((w) => payloadsTo(broker, w)).sort();
    assert.deepEqual(
      handed,
      left
        .slice(1)
        .map((p) => p.payload.toString())
        .sort(),
    );
    assert.deepEqual(await broker.store.outboundMessages(leaving), []);
  });

  test('a clean member’s PUBACK removes the copy kept for the hand-off', async () => {
    const broker = testContext();
    await groupWithTraffic(broker, 0, 1, 3);
    for (const w of ['w1', 'w2', 'w3'])
      for (const p of publishesTo(broker, w))
        await sendPackets(broker, w, [{ cmd: 'puback', messageId: p.messageId }], 5);
    for (const w of ['w1', 'w2', 'w3']) assert.deepEqual(await broker.store.outboundMessages(w), []);
  });

  test('[MQTT-4.8.2-5] a QoS 2 message already sent is not handed to another member', async () => {
    const broker = testContext();
    await groupWithTraffic(broker, 3600, 2);
    assert.ok(publishesTo(broker, 'w1').length > 0);
    await connectionGone(broker.ctx, 'w1');
    broker.gateway.clear();
    broker.clock.advance(3_601_000);
    assert.equal(await removeExpiredSessions(broker.ctx), 1);
    assert.deepEqual(payloadsTo(broker, 'w2'), []);
    assert.deepEqual(payloadsTo(broker, 'w3'), []);
  });

  test('§4.8.2 a persistent member’s queue goes to the others when its session expires', async () => {
    const broker = testContext();
    for (const w of ['w1', 'w2']) await member(broker, w, ['$share/g/jobs'], 60);
    await publisher(broker);
    // Both offline: the group's messages queue at one or the other.
    await connectionGone(broker.ctx, 'w1');
    await connectionGone(broker.ctx, 'w2');
    for (let i = 0; i < 10; i++) await publish(broker, 'jobs', `m${i}`);
    const queuedAtW1 = (await broker.store.outboundMessages('w1')).map((m) =>
      Buffer.from(m.payload).toString(),
    );
    assert.ok(queuedAtW1.length > 0);
    // w2 comes back (and stays), w1 never does.
    await member(broker, 'w2', [], 60);
    broker.gateway.clear();
    broker.clock.advance(61_000);
    assert.equal(await removeExpiredSessions(broker.ctx), 1);
    assert.deepEqual(payloadsTo(broker, 'w2').sort(), queuedAtW1.sort());
  });

  test('a Clean Start over a member’s old session hands its queue on too', async () => {
    const broker = testContext();
    for (const w of ['w1', 'w2']) await member(broker, w, ['$share/g/jobs'], 3600);
    await connectionGone(broker.ctx, 'w1');
    await connectionGone(broker.ctx, 'w2');
    await publisher(broker);
    for (let i = 0; i < 10; i++) await publish(broker, 'jobs', `m${i}`);
    const queuedAtW1 = (await broker.store.outboundMessages('w1')).map((m) =>
      Buffer.from(m.payload).toString(),
    );
    await member(broker, 'w2', [], 3600);
    broker.gateway.clear();
    await member(broker, 'w1', [], 0); // clean start: w1's old session and its subscriptions end
    const w2 = payloadsTo(broker, 'w2');
    assert.deepEqual(w2.sort(), queuedAtW1.sort());
    assert.deepEqual(payloadsTo(broker, 'w1'), []);
  });

  test('a member whose connection is gone without a $disconnect: its QoS 1 share goes to the others', async () => {
    const broker = testContext();
    for (const w of ['w1', 'w2', 'w3']) await member(broker, w, ['$share/g/jobs']);
    broker.gateway.markGone('w1');
    await publisher(broker);
    const sent = Array.from({ length: 12 }, (_, i) => `m${i}`);
    for (const m of sent) await publish(broker, 'jobs', m);
    assert.deepEqual([...payloadsTo(broker, 'w2'), ...payloadsTo(broker, 'w3')].sort(), [...sent].sort());
    assert.equal(await broker.store.getSession('w1'), undefined);
  });

  test('with no other member left, a departing member’s messages end with its session', async () => {
    const broker = testContext();
    await member(broker, 'w1', ['$share/g/jobs']);
    await publisher(broker);
    await publish(broker, 'jobs', 'm');
    await connectionGone(broker.ctx, 'w1');
    assert.deepEqual(await broker.store.outboundMessages('w1'), []);
  });
});
