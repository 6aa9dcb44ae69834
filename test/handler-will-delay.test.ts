import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkKeepAlivesFor } from '../shared/broker/keepalive.js';
import { connectionGone } from '../shared/broker/lifecycle.js';
import { removeExpiredSessions } from '../shared/broker/session-expiry.js';
import { publishDueWills, willDueAt } from '../shared/broker/will-delay.js';
import {
  connectAs,
  sendPackets,
  subscribePacket,
  type TestBroker,
  testContext,
} from './support/broker-context.js';

// MQTT 5 Will Delay Interval: the will waits for its delay or the session's end, whichever first,
// and a reconnect within the delay means it is never published.

const will = (willDelayInterval: number) => ({
  topic: 'status/alice',
  payload: Buffer.from('offline'),
  qos: 1 as const,
  retain: false,
  properties: { willDelayInterval },
});

async function watch(broker: TestBroker): Promise<void> {
  await connectAs(broker, 'w', 'watcher', { protocolVersion: 5 });
  await sendPackets(broker, 'w', [subscribePacket(1, ['status/#', 1])], 5);
}

async function aliceWith(broker: TestBroker, delay: number, sessionExpiryInterval: number): Promise<void> {
  await connectAs(broker, 'c1', 'alice', {
    protocolVersion: 5,
    clean: false,
    will: will(delay),
    properties: { sessionExpiryInterval },
  });
}

test('[MQTT-3.1.3-9] a will with a delay is not published when the connection ends, but once the delay has passed', async () => {
  const broker = testContext();
  await watch(broker);
  await aliceWith(broker, 30, 3600);
  broker.gateway.clear();
  await connectionGone(broker.ctx, 'c1');
  assert.equal(broker.store.accepted.length, 0, 'nothing yet: the delay has not passed');
  broker.clock.advance(29_999);
  assert.equal(await publishDueWills(broker.ctx), 0);
  broker.clock.advance(1);
  assert.equal(await publishDueWills(broker.ctx), 1);
  assert.equal(await publishDueWills(broker.ctx), 0, 'published once');
  await broker.stream();
  const [delivered] = broker.gateway.packetsTo('w');
  assert.ok(delivered?.cmd === 'publish');
  assert.equal(delivered.topic, 'status/alice');
  assert.equal(delivered.payload.toString(), 'offline');
  assert.equal(broker.store.accepted[0]?.publisher, 'alice');
});

test('[MQTT-3.1.3-9] a client that reconnects within the delay: its will is never published', async () => {
  const broker = testContext();
  await aliceWith(broker, 30, 3600);
  await connectionGone(broker.ctx, 'c1');
  broker.clock.advance(10_000);
  await connectAs(broker, 'c2', 'alice', {
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 3600 },
  });
  broker.clock.advance(60_000);
  assert.equal(await publishDueWills(broker.ctx), 0);
  assert.deepEqual(broker.store.accepted, []);
});

test('[MQTT-3.1.3-9] a reconnect with Clean Start also cancels the delayed will', async () => {
  const broker = testContext();
  await aliceWith(broker, 30, 3600);
  await connectionGone(broker.ctx, 'c1');
  await connectAs(broker, 'c2', 'alice', { protocolVersion: 5, clean: true });
  broker.clock.advance(60_000);
  assert.equal(await publishDueWills(broker.ctx), 0);
  assert.deepEqual(broker.store.accepted, []);
});

test('[MQTT-3.1.3-9] a takeover before the old connection is noticed gone: the will is not published', async () => {
  const broker = testContext();
  await aliceWith(broker, 30, 3600);
  await connectAs(broker, 'c2', 'alice', {
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 3600 },
  });
  await connectionGone(broker.ctx, 'c1'); // the old connection's late $disconnect
  broker.clock.advance(60_000);
  assert.equal(await publishDueWills(broker.ctx), 0);
  assert.deepEqual(broker.store.accepted, []);
});

test('[MQTT-3.1.3-9] the session ends before the delay: the will is published when the session ends', async () => {
  const broker = testContext();
  await aliceWith(broker, 300, 10);
  await connectionGone(broker.ctx, 'c1');
  broker.clock.advance(10_000);
  // The session has expired, but it is not removed while its will is still to go.
  assert.equal(await removeExpiredSessions(broker.ctx), 0);
  assert.equal(await publishDueWills(broker.ctx), 1);
  assert.equal(await removeExpiredSessions(broker.ctx), 1);
  assert.equal(broker.store.accepted.length, 1);
});

test('[MQTT-3.1.3-9] a session that ends with the connection (expiry 0) publishes the will at once', async () => {
  const broker = testContext();
  await aliceWith(broker, 30, 0);
  await connectionGone(broker.ctx, 'c1');
  assert.equal(broker.store.accepted.length, 1);
});

test('a will without a delay is published at once, as before', async () => {
  const broker = testContext();
  await aliceWith(broker, 0, 3600);
  await connectionGone(broker.ctx, 'c1');
  assert.equal(broker.store.accepted.length, 1);
});

test('[MQTT-3.14.4-3] DISCONNECT 0x00 discards a delayed will', async () => {
  const broker = testContext();
  await aliceWith(broker, 5, 3600);
  await sendPackets(broker, 'c1', [{ cmd: 'disconnect', reasonCode: 0 }], 5);
  await connectionGone(broker.ctx, 'c1');
  broker.clock.advance(10_000);
  assert.equal(await publishDueWills(broker.ctx), 0);
  assert.deepEqual(broker.store.accepted, []);
});

test('DISCONNECT 0x04 Disconnect with Will Message keeps the will: it is published after its delay', async () => {
  const broker = testContext();
  await aliceWith(broker, 5, 3600);
  await sendPackets(broker, 'c1', [{ cmd: 'disconnect', reasonCode: 0x04 }], 5);
  await connectionGone(broker.ctx, 'c1');
  assert.deepEqual(broker.store.accepted, []);
  broker.clock.advance(5_000);
  assert.equal(await publishDueWills(broker.ctx), 1);
});

test('the per-second deadline loop publishes due wills', async () => {
  const broker = testContext();
  await aliceWith(broker, 1, 3600);
  await connectionGone(broker.ctx, 'c1');
  broker.clock.advance(1_000);
  const published: Array<number | { error: unknown }> = [];
  await checkKeepAlivesFor(broker.ctx, 0, 1_000, undefined, (wills) => published.push(wills));
  assert.deepEqual(published, [1]);
  assert.equal(broker.store.accepted.length, 1);
});

test('willDueAt: the delay, or the session expiry if sooner; never for a session ending with the connection', () => {
  assert.equal(willDueAt({ willDelaySeconds: 30, sessionExpirySeconds: 3600 }, 1_000), 31_000);
  assert.equal(willDueAt({ willDelaySeconds: 30, sessionExpirySeconds: 10 }, 1_000), 11_000);
  assert.equal(willDueAt({ willDelaySeconds: 30, sessionExpirySeconds: 0xffff_ffff }, 0), 30_000);
  assert.equal(willDueAt({ willDelaySeconds: 30, sessionExpirySeconds: 0 }, 0), undefined);
  assert.equal(willDueAt({ willDelaySeconds: 0, sessionExpirySeconds: 3600 }, 0), undefined);
  assert.equal(willDueAt({ sessionExpirySeconds: 3600 }, 0), undefined);
});
