import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IConnackPacket, Packet } from 'mqtt-packet';
import type { Authenticator, Credentials } from '../shared/auth.js';
import { handleFrame } from '../shared/broker/inbound.js';
import { connectionGone } from '../shared/broker/lifecycle.js';
import { connectAs, frameOf, sendPackets, testContext } from './support/broker-context.js';
import { connectPacket } from './support/raw-client.js';

// CONNECT through handleFrame on the in-memory store: CONNACKs, refusals,
// session state, takeover and authentication.

const connack = (packets: Packet[]): IConnackPacket => {
  assert.equal(packets[0]?.cmd, 'connack', `expected a CONNACK, got ${packets.map((p) => p.cmd)}`);
  return packets[0] as IConnackPacket;
};

/** An authenticator that accepts only user `u` with password `p`, and notes what it was asked. */
function passwordIsP(): Authenticator & { asked: Credentials[] } {
  const asked: Credentials[] = [];
  return {
    asked,
    async authenticate(credentials) {
      asked.push(credentials);
      if (credentials.username === undefined) return { ok: false, reason: 'not-authorized' };
      const ok = credentials.username === 'u' && Buffer.from(credentials.password ?? []).toString() === 'p';
      return ok ? { ok: true, user: 'u' } : { ok: false, reason: 'bad-credentials' };
    },
  };
}

describe('CONNECT accepted', () => {
  test('[MQTT-3.2.0-1] a 3.1.1 CONNECT gets CONNACK 0 and stores connection and session', async () => {
    const broker = testContext();
    const reply = connack(await connectAs(broker, 'c1', 'alice'));
    assert.equal(reply.returnCode, 0);
    assert.equal(reply.sessionPresent, false);
    assert.deepEqual(broker.gateway.closed, []);
    const record = await broker.store.getConnection('c1');
    assert.equal(record?.clientId, 'alice');
    assert.equal(record?.keepAliveSeconds, 60);
    assert.equal(record?.connectedAt, broker.clock.now());
    const session = await broker.store.getSession('alice');
    assert.equal(session?.connectionId, 'c1');
    assert.equal(session?.sessionId, record?.sessionId);
  });

  test('a 5.0 CONNACK states the broker limits and no assigned id for a named client', async () => {
    const broker = testContext({ maxPacketSize: 4096 });
    const reply = connack(await connectAs(broker, 'c1', 'alice', { protocolVersion: 5 }));
    assert.equal(reply.reasonCode, 0);
    assert.equal(reply.properties?.maximumPacketSize, 4096);
    assert.equal(reply.properties?.topicAliasMaximum, 10);
    assert.equal(reply.properties?.sharedSubscriptionAvailable, true);
    assert.equal(reply.properties?.assignedClientIdentifier, undefined);
  });

  test('[MQTT-3.1.3-6] an empty client id is assigned one; a 5.0 CONNACK names it', async () => {
    const broker = testContext();
    const reply = connack(await connectAs(broker, 'c1', '', { protocolVersion: 5 }));
    assert.equal(reply.reasonCode, 0);
    assert.equal(reply.properties?.assignedClientIdentifier, 'nimbus-id-1');
    assert.equal((await broker.store.getConnection('c1'))?.clientId, 'nimbus-id-1');
  });

  test('[MQTT-3.1.3-6] a 3.1.1 client with an empty id and clean session is accepted under an assigned id', async () => {
    const broker = testContext();
    assert.equal(connack(await connectAs(broker, 'c1', '')).returnCode, 0);
    assert.equal((await broker.store.getSession('nimbus-id-1'))?.connectionId, 'c1');
  });

  test('[MQTT-3.2.2-2] [MQTT-3.1.2-4] a persistent session is resumed with session present', async () => {
    const broker = testContext();
    await connectAs(broker, 'c1', 'alice', { clean: false });
    const sessionId = (await broker.store.getSession('alice'))?.sessionId;
    await connectionGone(broker.ctx, 'c1');
    const reply = connack(await connectAs(broker, 'c2', 'alice', { clean: false }));
    assert.equal(reply.sessionPresent, true);
    assert.equal((await broker.store.getSession('alice'))?.sessionId, sessionId);
  });

  test('[MQTT-3.2.2-1] a clean session CONNACK has session present 0 even when a session existed', async () => {
    const broker = testContext();
    await connectAs(broker, 'c1', 'alice', { clean: false });
    await connectionGone(broker.ctx, 'c1');
    assert.equal(connack(await connectAs(broker, 'c2', 'alice', { clean: true })).sessionPresent, false);
  });

  test('[MQTT-4.4.0-1] a resumed session gets unacknowledged PUBLISH (DUP) and PUBREL after the CONNACK', async () => {
    const broker = testContext();
    await connectAs(broker, 'sub', 'bob', { clean: false });
    await sendPackets(broker, 'sub', [
      { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 't/#', qos: 2 }] },
    ]);
    await connectAs(broker, 'pub', 'alice');
    await sendPackets(broker, 'pub', [
      {
        cmd: 'publish',
        topic: 't/1',
        payload: Buffer.from('one'),
        qos: 1,
        retain: false,
        dup: false,
        messageId: 1,
      },
      {
        cmd: 'publish',
        topic: 't/2',
        payload: Buffer.from('two'),
        qos: 2,
        retain: false,
        dup: false,
        messageId: 2,
      },
    ]);
    await broker.stream();
    const [first, second] = broker.gateway.packetsTo('sub').filter((p) => p.cmd === 'publish');
    assert.ok(first?.cmd === 'publish' && second?.cmd === 'publish');
    // The QoS 2 delivery got as far as PUBREC; the QoS 1 one was never acknowledged.
    await sendPackets(broker, 'sub', [{ cmd: 'pubrec', messageId: second.messageId }]);
    await connectionGone(broker.ctx, 'sub');

    const replies = await connectAs(broker, 'sub2', 'bob', { clean: false });
    assert.deepEqual(
      replies.map((p) => p.cmd),
      ['connack', 'publish', 'pubrel'],
    );
    const resent = replies[1];
    assert.ok(resent.cmd === 'publish');
    assert.equal(resent.dup, true);
    assert.equal(resent.messageId, first.messageId);
    assert.equal(resent.payload.toString(), 'one');
    assert.equal(replies[2].cmd === 'pubrel' && replies[2].messageId, second.messageId);
  });

  test('a CONNECT redelivered by the queue (same frame id) is finished, not taken for a second CONNECT', async () => {
    const broker = testContext();
    await sendPackets(broker, 'c1', [connectPacket('alice')], 4, 'frame-1');
    await sendPackets(broker, 'c1', [connectPacket('alice')], 4, 'frame-1');
    assert.deepEqual(
      broker.gateway.packetsTo('c1').map((p) => p.cmd),
      ['connack', 'connack'],
    );
    assert.deepEqual(broker.gateway.closed, []);
  });
});

describe('CONNECT refused', () => {
  test('[MQTT-3.1.2-2] protocol level 3 gets return code 1 and the connection closes', async () => {
    const broker = testContext();
    const reply = connack(
      await connectAs(broker, 'c1', 'alice', { protocolId: 'MQIsdp', protocolVersion: 3 }),
    );
    assert.equal(reply.returnCode, 1);
    assert.deepEqual(broker.gateway.closed, ['c1']);
  });

  test('[MQTT-3.1.3-8] a 3.1.1 empty client id with clean session 0 gets return code 2', async () => {
    const broker = testContext();
    // mqtt-packet refuses to encode this CONNECT: clear the clean session flag by hand.
    const bytes = Buffer.from(frameOf([connectPacket('')]), 'base64');
    const flags = 9; // fixed header (2), protocol name (6), level (1)
    assert.equal(bytes[flags], 0x02);
    bytes[flags] = 0;
    await handleFrame(broker.ctx, 'c1', bytes.toString('base64'));
    const reply = connack(broker.gateway.packetsTo('c1'));
    assert.equal(reply.returnCode, 2);
    assert.equal(reply.sessionPresent, false);
    assert.deepEqual(broker.gateway.closed, ['c1']);
    assert.equal(await broker.store.getConnection('c1'), undefined);
  });

  test('a client id with U+0000 is rejected: 3.1.1 code 2, 5.0 reason 0x85', async () => {
    const broker = testContext();
    assert.equal(connack(await connectAs(broker, 'c1', 'a\u0000b')).returnCode, 2);
    assert.equal(connack(await connectAs(broker, 'c2', 'a\u0000b', { protocolVersion: 5 })).reasonCode, 0x85);
    assert.deepEqual(broker.gateway.closed, ['c1', 'c2']);
  });

  test('[MQTT-4.8.0-1] a will with a wildcard topic: 3.1.1 closes without CONNACK, 5.0 says 0x90', async () => {
    const broker = testContext();
    const will = { topic: 'w/#', payload: Buffer.from('x'), qos: 0 as const, retain: false };
    assert.deepEqual(await connectAs(broker, 'c1', 'alice', { will }), []);
    assert.equal(
      connack(await connectAs(broker, 'c2', 'bob', { will, protocolVersion: 5 })).reasonCode,
      0x90,
    );
    assert.deepEqual(broker.gateway.closed, ['c1', 'c2']);
    assert.equal(await broker.store.getSession('alice'), undefined);
  });

  test('[MQTT-3.2.2-5] bad credentials: code 4 / 0x86, nothing stored, the connection closes', async () => {
    const authenticator = passwordIsP();
    const broker = testContext({ authenticator });
    const wrong = { username: 'u', password: Buffer.from('nope') };
    assert.equal(connack(await connectAs(broker, 'c1', 'alice', wrong)).returnCode, 4);
    assert.equal(
      connack(await connectAs(broker, 'c2', 'alice', { ...wrong, protocolVersion: 5 })).reasonCode,
      0x86,
    );
    assert.deepEqual(broker.gateway.closed, ['c1', 'c2']);
    assert.equal(await broker.store.getConnection('c1'), undefined);
    assert.equal(await broker.store.getSession('alice'), undefined);
  });

  test('no user name when one is required: code 5 / 0x87', async () => {
    const broker = testContext({ authenticator: passwordIsP() });
    assert.equal(connack(await connectAs(broker, 'c1', 'alice')).returnCode, 5);
    assert.equal(connack(await connectAs(broker, 'c2', 'alice', { protocolVersion: 5 })).reasonCode, 0x87);
  });

  test('good credentials are accepted; the authenticator sees the assigned client id', async () => {
    const authenticator = passwordIsP();
    const broker = testContext({ authenticator });
    const reply = connack(await connectAs(broker, 'c1', '', { username: 'u', password: Buffer.from('p') }));
    assert.equal(reply.returnCode, 0);
    assert.equal(authenticator.asked[0]?.clientId, 'nimbus-id-1');
  });

  test('a refused client takes over nothing: the connection holding its client id stays', async () => {
    const broker = testContext({ authenticator: passwordIsP() });
    await connectAs(broker, 'c1', 'alice', { username: 'u', password: Buffer.from('p') });
    await connectAs(broker, 'c2', 'alice', { username: 'u', password: Buffer.from('x') });
    assert.deepEqual(broker.gateway.closed, ['c2']);
    assert.equal((await broker.store.getSession('alice'))?.connectionId, 'c1');
  });
});

describe('CONNECT protocol rules', () => {
  test('[MQTT-3.1.0-2] a second CONNECT in the same frame closes the connection', async () => {
    const broker = testContext();
    const outcome = await sendPackets(broker, 'c1', [connectPacket('alice'), connectPacket('alice')]);
    assert.deepEqual(outcome.handled, ['connect', 'connect']);
    assert.equal(outcome.closed, 'second CONNECT');
    assert.deepEqual(broker.gateway.closed, ['c1']);
  });

  test('[MQTT-3.1.0-2] a second CONNECT in a later frame closes; a 5.0 client first gets DISCONNECT 0x82', async () => {
    const broker = testContext();
    await connectAs(broker, 'c1', 'alice', { protocolVersion: 5 });
    const replies = await connectAs(broker, 'c1', 'alice', { protocolVersion: 5 });
    assert.equal(replies.length, 1);
    assert.equal(replies[0]?.cmd === 'disconnect' && replies[0].reasonCode, 0x82);
    assert.deepEqual(broker.gateway.closed, ['c1']);
  });

  test('[MQTT-3.1.0-1] a packet before CONNECT closes the connection unanswered', async () => {
    const broker = testContext();
    const outcome = await sendPackets(broker, 'c1', [{ cmd: 'pingreq' }]);
    assert.equal(outcome.closed, 'PINGREQ before CONNECT');
    assert.deepEqual(broker.gateway.sent, []);
    assert.deepEqual(broker.gateway.closed, ['c1']);
  });

  test('[MQTT-3.1.4-2] a CONNECT with a client id in use closes the existing connection', async () => {
    const broker = testContext();
    await connectAs(broker, 'c1', 'alice');
    assert.equal(connack(await connectAs(broker, 'c2', 'alice')).returnCode, 0);
    assert.deepEqual(broker.gateway.closed, ['c1']);
    assert.equal((await broker.store.getSession('alice'))?.connectionId, 'c2');
  });

  test('[MQTT-3.1.2-6] a clean session discards the previous session: subscriptions and queued messages', async () => {
    const broker = testContext();
    await connectAs(broker, 'c1', 'bob', { clean: false });
    await sendPackets(broker, 'c1', [
      { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 't', qos: 1 }] },
    ]);
    await connectionGone(broker.ctx, 'c1');
    await connectAs(broker, 'p', 'alice');
    await sendPackets(broker, 'p', [
      {
        cmd: 'publish',
        topic: 't',
        payload: Buffer.from('queued'),
        qos: 1,
        retain: false,
        dup: false,
        messageId: 1,
      },
    ]);
    await broker.stream();
    assert.equal((await broker.store.outboundMessages('bob')).length, 1);

    await connectAs(broker, 'c2', 'bob', { clean: true });
    assert.deepEqual(await broker.store.outboundMessages('bob'), []);
    const current = (await broker.store.getSession('bob'))?.sessionId;
    const left = (await broker.store.subscriptionsMatching('t')).filter((s) => s.clientId === 'bob');
    assert.ok(left.every((s) => s.sessionId === current));
    assert.deepEqual(left, []);
  });
});
