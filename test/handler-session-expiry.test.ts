import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IConnackPacket, IDisconnectPacket, IPublishPacket, Packet } from 'mqtt-packet';
import { connectionGone } from '../shared/broker/lifecycle.js';
import { sweep } from '../shared/broker/sweep.js';
import {
  connectAs,
  publishPacket,
  sendPackets,
  subscribePacket,
  type TestBroker,
  testContext,
} from './support/broker-context.js';

// MQTT 5 Session Expiry Interval: how long a session outlives its connection,
// changed at DISCONNECT, expired sessions removed at CONNECT and by the sweep;
// 3.1.1's clean-session rule unchanged. The fake clock stands in for time.

/** Connects a 5.0 client asking for `expiry` seconds (undefined: the property left out). */
async function connect5(
  broker: TestBroker,
  connectionId: string,
  clientId: string,
  expiry: number | undefined,
  clean = false,
): Promise<IConnackPacket> {
  const replies = await connectAs(broker, connectionId, clientId, {
    protocolVersion: 5,
    clean,
    ...(expiry === undefined ? {} : { properties: { sessionExpiryInterval: expiry } }),
  });
  return replies[0] as IConnackPacket;
}

/** Subscribes to `t` at QoS 1, then ends the connection with DISCONNECT (and its $disconnect). */
async function subscribeAndLeave(broker: TestBroker, connectionId: string, expiry?: number) {
  await sendPackets(broker, connectionId, [subscribePacket(1, ['t', 1])], 5);
  await disconnect(broker, connectionId, expiry);
}

async function disconnect(broker: TestBroker, connectionId: string, expiry?: number) {
  const packet: IDisconnectPacket = {
    cmd: 'disconnect',
    ...(expiry === undefined ? {} : { properties: { sessionExpiryInterval: expiry } }),
  };
  await sendPackets(broker, connectionId, [packet], 5);
  await connectionGone(broker.ctx, connectionId);
}

async function publishT(broker: TestBroker, payload: string) {
  await connectAs(broker, 'pub', 'publisher');
  await sendPackets(broker, 'pub', [publishPacket('t', payload, 1, { messageId: 1 })]);
  await broker.stream();
}

const publishes = (packets: Packet[]) =>
  packets.filter((p): p is IPublishPacket => p.cmd === 'publish').map((p) => p.payload.toString());

describe('Session Expiry Interval', () => {
  test('[MQTT-3.1.2-11] absent or 0: the session ends with the connection, nothing is queued', async () => {
    const broker = testContext();
    await connect5(broker, 'c1', 'alice', undefined);
    await subscribeAndLeave(broker, 'c1');
    assert.equal(await broker.store.getSession('alice'), undefined);
    await publishT(broker, 'lost');
    const connack = await connect5(broker, 'c2', 'alice', 0);
    assert.equal(connack.sessionPresent, false);
    assert.deepEqual(await broker.store.subscriptionsMatching('t'), []);
  });

  test('[MQTT-3.1.2-23] N seconds: the session is kept and resumed within N, queued messages resent', async () => {
    const broker = testContext();
    await connect5(broker, 'c1', 'alice', 60);
    await subscribeAndLeave(broker, 'c1');
    await publishT(broker, 'kept');
    broker.clock.advance(59_000);
    const replies = await connectAs(broker, 'c2', 'alice', {
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    assert.equal((replies[0] as IConnackPacket).sessionPresent, true);
    assert.deepEqual(publishes(replies), ['kept']);
  });

  test('[MQTT-3.1.2-23] past N seconds: a CONNECT finds the session expired and starts fresh, session present 0', async () => {
    const broker = testContext();
    await connect5(broker, 'c1', 'alice', 60);
    await subscribeAndLeave(broker, 'c1');
    await publishT(broker, 'stale');
    broker.clock.advance(60_000);
    const replies = await connectAs(broker, 'c2', 'alice', { protocolVersion: 5, clean: false });
    assert.equal((replies[0] as IConnackPacket).sessionPresent, false);
    assert.deepEqual(publishes(replies), []);
    assert.deepEqual(await broker.store.subscriptionsMatching('t'), []);
    assert.deepEqual(await broker.store.outboundMessages('alice'), []);
  });

  test('[MQTT-3.1.2-23] a message published after the expiry is not queued for the expired session', async () => {
    const broker = testContext();
    await connect5(broker, 'c1', 'alice', 60);
    await subscribeAndLeave(broker, 'c1');
    broker.clock.advance(61_000);
    await publishT(broker, 'too late');
    assert.deepEqual(await broker.store.outboundMessages('alice'), []);
  });

  test('the sweep removes expired sessions with their subscriptions and queue, and leaves the others', async () => {
    const broker = testContext();
    await connect5(broker, 'c1', 'short', 60);
    await subscribeAndLeave(broker, 'c1');
    await connect5(broker, 'c2', 'long', 3600);
    await subscribeAndLeave(broker, 'c2');
    await connect5(broker, 'c3', 'forever', 0xffff_ffff);
    await subscribeAndLeave(broker, 'c3');
    await publishT(broker, 'queued');
    broker.clock.advance(60_000);
    const result = await sweep(broker.ctx);
    assert.equal(result.expiredSessions, 1);
    assert.equal(await broker.store.getSession('short'), undefined);
    assert.deepEqual(await broker.store.outboundMessages('short'), []);
    assert.deepEqual((await broker.store.subscriptionsMatching('t')).map((s) => s.clientId).sort(), [
      'forever',
      'long',
    ]);
    // 0xFFFFFFFF never expires.
    broker.clock.advance(365 * 24 * 3600_000);
    assert.equal((await sweep(broker.ctx)).expiredSessions, 1);
    assert.ok(await broker.store.getSession('forever'));
    assert.equal((await broker.store.outboundMessages('forever')).length, 1);
  });

  test('the sweep leaves a session whose client came back before it expired', async () => {
    const broker = testContext();
    await connect5(broker, 'c1', 'alice', 60);
    await subscribeAndLeave(broker, 'c1');
    broker.clock.advance(30_000);
    await connect5(broker, 'c2', 'alice', 60);
    broker.clock.advance(60_000);
    assert.equal((await sweep(broker.ctx)).expiredSessions, 0);
    assert.equal((await broker.store.getSession('alice'))?.connectionId, 'c2');
  });

  test('[MQTT-3.1.2-4] Clean Start with an expiry: the old session is discarded, the new one outlives the connection', async () => {
    const broker = testContext();
    await connect5(broker, 'c1', 'alice', 600);
    await subscribeAndLeave(broker, 'c1');
    const connack = await connect5(broker, 'c2', 'alice', 600, true);
    assert.equal(connack.sessionPresent, false);
    assert.deepEqual(await broker.store.subscriptionsMatching('t'), []);
    await subscribeAndLeave(broker, 'c2');
    assert.equal((await connect5(broker, 'c3', 'alice', 600)).sessionPresent, true);
  });

  test('DISCONNECT may change the interval: to 0 ends the session with the connection', async () => {
    const broker = testContext();
    await connect5(broker, 'c1', 'alice', 600);
    await subscribeAndLeave(broker, 'c1', 0);
    assert.equal(await broker.store.getSession('alice'), undefined);
    assert.deepEqual(await broker.store.subscriptionsMatching('t'), []);
  });

  test('DISCONNECT may change the interval: a longer one keeps the session longer', async () => {
    const broker = testContext();
    await connect5(broker, 'c1', 'alice', 10);
    await subscribeAndLeave(broker, 'c1', 600);
    broker.clock.advance(300_000);
    assert.equal((await sweep(broker.ctx)).expiredSessions, 0);
    assert.equal((await connect5(broker, 'c2', 'alice', 10)).sessionPresent, true);
  });

  test('[MQTT-3.14.2-2] DISCONNECT raising an interval of 0 is a protocol error (0x82); the session still ends', async () => {
    const broker = testContext();
    await connect5(broker, 'c1', 'alice', 0);
    broker.gateway.clear();
    await sendPackets(broker, 'c1', [{ cmd: 'disconnect', properties: { sessionExpiryInterval: 60 } }], 5);
    const reply = broker.gateway.packetsTo('c1').find((p): p is IDisconnectPacket => p.cmd === 'disconnect');
    assert.equal(reply?.reasonCode, 0x82);
    assert.deepEqual(broker.gateway.closed, ['c1']);
    await connectionGone(broker.ctx, 'c1');
    assert.equal(await broker.store.getSession('alice'), undefined);
  });

  test('the broker caps the interval at its maximum and says so in CONNACK', async () => {
    const broker = testContext({ limits: { maxSessionExpirySeconds: 3600 } });
    const capped = await connect5(broker, 'c1', 'alice', 86_400);
    assert.equal(capped.properties?.sessionExpiryInterval, 3600);
    await subscribeAndLeave(broker, 'c1');
    assert.equal((await broker.store.getSession('alice'))?.sessionExpiresAt, broker.clock.now() + 3600_000);
    // Not capped: the CONNACK leaves the property out, the client's value stands.
    const granted = await connect5(broker, 'c2', 'bob', 60);
    assert.equal(granted.properties?.sessionExpiryInterval, undefined);
  });

  test('[MQTT-3.1.4-2] a 5.0 client taken over hears DISCONNECT 0x8E Session taken over before it is closed', async () => {
    const broker = testContext();
    await connect5(broker, 'old', 'alice', 60);
    broker.gateway.clear();
    await connect5(broker, 'new', 'alice', 60);
    const told = broker.gateway.packetsTo('old');
    assert.deepEqual(
      told.map((p) => [p.cmd, (p as IDisconnectPacket).reasonCode]),
      [['disconnect', 0x8e]],
    );
    assert.deepEqual(broker.gateway.closed, ['old']);
  });
});

describe('3.1.1 keeps its clean-session rule', () => {
  test('[MQTT-3.1.2-6] clean session 1 ends with the connection; clean session 0 never expires', async () => {
    const broker = testContext();
    await connectAs(broker, 'c1', 'clean', { clean: true });
    await connectAs(broker, 'c2', 'kept', { clean: false });
    await sendPackets(broker, 'c2', [subscribePacket(1, ['t', 1])]);
    await connectionGone(broker.ctx, 'c1');
    await connectionGone(broker.ctx, 'c2');
    assert.equal(await broker.store.getSession('clean'), undefined);
    broker.clock.advance(10 * 365 * 24 * 3600_000);
    assert.equal((await sweep(broker.ctx)).expiredSessions, 0);
    const [connack] = await connectAs(broker, 'c3', 'kept', { clean: false });
    assert.equal((connack as IConnackPacket).sessionPresent, true);
  });
});
