import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkKeepAlives, disconnectGraceMs } from '../shared/broker/keepalive.js';
import { connectionGone } from '../shared/broker/lifecycle.js';
import { sweep } from '../shared/broker/sweep.js';
import { connectAs, sendPackets, testContext } from './support/broker-context.js';

// The keep-alive sweep on the in-memory store and the recording gateway.

test('[MQTT-3.1.2-24] a connection with no recorded packet for twice its keep-alive is closed; sooner, left alone', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice', { keepalive: 10 });
  broker.clock.advance(15_000);
  assert.deepEqual(await sweep(broker.ctx), { scanned: 1, closed: 0, stale: 0, expiredSessions: 0 });
  assert.deepEqual(broker.gateway.closed, []);
  broker.clock.advance(5_001);
  assert.deepEqual(await sweep(broker.ctx), { scanned: 1, closed: 1, stale: 0, expiredSessions: 0 });
  assert.deepEqual(broker.gateway.closed, ['c1']);
});

test('[MQTT-3.1.2-23] traffic keeps a connection alive past its first deadline', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice', { keepalive: 10 });
  broker.clock.advance(9_000);
  await sendPackets(broker, 'c1', [{ cmd: 'pingreq' }]);
  broker.clock.advance(12_000);
  assert.equal((await sweep(broker.ctx)).closed, 0);
  assert.deepEqual(broker.gateway.closed, []);
});

test('keep-alive 0 has no deadline', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice', { keepalive: 0 });
  broker.clock.advance(9 * 60_000);
  assert.equal((await sweep(broker.ctx)).closed, 0);
});

test('a silent connection the gateway no longer has is cleaned up and its will published, once its $disconnect is taken for lost', async () => {
  const broker = testContext();
  const will = { topic: 'status/alice', payload: Buffer.from('lost'), qos: 0 as const, retain: false };
  await connectAs(broker, 'c1', 'alice', { keepalive: 10, will });
  broker.gateway.markGone('c1');
  broker.clock.advance(20_001);
  assert.deepEqual(await sweep(broker.ctx), { scanned: 1, closed: 0, stale: 0, expiredSessions: 0 });
  broker.clock.advance(disconnectGraceMs);
  assert.deepEqual(await sweep(broker.ctx), { scanned: 1, closed: 0, stale: 1, expiredSessions: 0 });
  assert.equal(await broker.store.getConnection('c1'), undefined);
  assert.equal(await broker.store.getSession('alice'), undefined);
  assert.equal(broker.store.accepted[0]?.topic, 'status/alice');
});

test('a keep-alive 0 connection silent for over 10 minutes is probed, and cleaned up when gone', async () => {
  const broker = testContext();
  await connectAs(broker, 'alive', 'a', { keepalive: 0 });
  await connectAs(broker, 'lost', 'b', { keepalive: 0 });
  broker.gateway.markGone('lost');
  broker.clock.advance(10 * 60_000 + 1);
  assert.deepEqual(await sweep(broker.ctx), { scanned: 2, closed: 0, stale: 1, expiredSessions: 0 });
  assert.ok(await broker.store.getConnection('alive'));
  assert.equal(await broker.store.getConnection('lost'), undefined);
});

test('closing by the sweep, then the $disconnect, publishes the will once', async () => {
  const broker = testContext();
  const will = { topic: 'status/alice', payload: Buffer.from('timeout'), qos: 0 as const, retain: false };
  await connectAs(broker, 'c1', 'alice', { keepalive: 5, will });
  broker.clock.advance(10_001);
  await sweep(broker.ctx);
  await connectionGone(broker.ctx, 'c1');
  assert.equal(broker.store.accepted.length, 1);
});

test('[MQTT-3.14.4-3] a connection that left with frames still queued keeps its record until its $disconnect: its PUBLISH is taken, its DISCONNECT discards the will', async () => {
  // A frame-queue backlog: the client published, sent DISCONNECT and closed; its frames wait behind
  // others', so its recorded lastSeen is older than they are and its deadline has passed.
  const broker = testContext();
  const will = { topic: 'status/alice', payload: Buffer.from('lost'), qos: 0 as const, retain: false };
  await connectAs(broker, 'c1', 'alice', { keepalive: 3, will });
  broker.gateway.markGone('c1');
  broker.clock.advance(6_001);
  assert.deepEqual(await sweep(broker.ctx), { scanned: 1, closed: 0, stale: 0, expiredSessions: 0 });
  assert.deepEqual(await checkKeepAlives(broker.ctx), { due: 1, expired: 0, failed: 0 });
  // The queue delivers the frames, then the $disconnect.
  await sendPackets(broker, 'c1', [
    { cmd: 'publish', topic: 'dev/1/t', payload: Buffer.from('21.5'), qos: 0, dup: false, retain: false },
  ]);
  await sendPackets(broker, 'c1', [{ cmd: 'disconnect' }]);
  await connectionGone(broker.ctx, 'c1');
  assert.deepEqual(
    broker.store.accepted.map((m) => m.topic),
    ['dev/1/t'],
    'the PUBLISH stored, no will',
  );
  assert.equal(await broker.store.getConnection('c1'), undefined);
});

test('a connection gone past its deadline whose $disconnect never comes is cleaned up by the keep-alive check after the grace', async () => {
  const broker = testContext();
  const will = { topic: 'status/alice', payload: Buffer.from('lost'), qos: 0 as const, retain: false };
  await connectAs(broker, 'c1', 'alice', { keepalive: 3, will });
  broker.gateway.markGone('c1');
  broker.clock.advance(6_001 + disconnectGraceMs);
  assert.deepEqual(await checkKeepAlives(broker.ctx), { due: 1, expired: 1, failed: 0 });
  assert.equal(await broker.store.getConnection('c1'), undefined);
  assert.deepEqual(
    broker.store.accepted.map((m) => m.topic),
    ['status/alice'],
  );
});
