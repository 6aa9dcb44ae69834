import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IConnackPacket } from 'mqtt-packet';
import { checkKeepAlives } from '../shared/broker/keepalive.js';
import { grantKeepAlive } from '../shared/broker/server-keep-alive.js';
import { defaultLimits, limitsFault } from '../shared/limits.js';
import { connectAs, type TestBroker, testContext } from './support/broker-context.js';

// MQTT 5 Server Keep Alive: the broker tells a 5.0 client which keep-alive to use, and holds it to that.

async function connack(
  broker: TestBroker,
  keepalive: number,
  protocolVersion: 4 | 5 = 5,
): Promise<IConnackPacket> {
  const [reply] = await connectAs(broker, 'c1', 'alice', { keepalive, protocolVersion });
  assert.ok(reply?.cmd === 'connack');
  return reply;
}

test('[MQTT-3.2.2-21] a 5.0 client asking a shorter keep-alive is told the Server Keep Alive in CONNACK', async () => {
  const broker = testContext({ limits: { serverKeepAliveSeconds: 300 } });
  assert.equal((await connack(broker, 30)).properties?.serverKeepAlive, 300);
  assert.equal((await broker.store.getConnection('c1'))?.keepAliveSeconds, 300);
});

test('[MQTT-3.2.2-21] a 5.0 client asking keep-alive 0 is told the Server Keep Alive, so the gateway does not cut it idle', async () => {
  const broker = testContext({ limits: { serverKeepAliveSeconds: 120 } });
  assert.equal((await connack(broker, 0)).properties?.serverKeepAlive, 120);
});

test('[MQTT-3.2.2-21] a 5.0 client asking more than the gateway idle timeout allows is told 540', async () => {
  const broker = testContext({ limits: { serverKeepAliveSeconds: 120 } });
  assert.equal((await connack(broker, 900)).properties?.serverKeepAlive, 540);
});

test('[MQTT-3.2.2-22] a client asking a keep-alive within bounds keeps it: no Server Keep Alive is sent', async () => {
  const broker = testContext({ limits: { serverKeepAliveSeconds: 120 } });
  assert.equal((await connack(broker, 200)).properties?.serverKeepAlive, undefined);
  assert.equal((await broker.store.getConnection('c1'))?.keepAliveSeconds, 200);
});

test('[MQTT-3.2.2-22] with the setting off (the default) no Server Keep Alive is sent and the client keeps its own', async () => {
  const broker = testContext();
  assert.equal((await connack(broker, 5)).properties?.serverKeepAlive, undefined);
  assert.equal((await broker.store.getConnection('c1'))?.keepAliveSeconds, 5);
});

test('a 3.1.1 client cannot be told: it keeps its own keep-alive', async () => {
  const broker = testContext({ limits: { serverKeepAliveSeconds: 300 } });
  await connack(broker, 30, 4);
  assert.equal((await broker.store.getConnection('c1'))?.keepAliveSeconds, 30);
});

test('[MQTT-3.2.2-21] [MQTT-3.1.2-24] keep-alive enforcement uses the Server Keep Alive, not the client value', async () => {
  const broker = testContext({ limits: { serverKeepAliveSeconds: 60 } });
  await connack(broker, 5);
  // Silent for 1.5 × the client's 5 s, and more: not closed, as the broker told it 60 s.
  broker.clock.advance(30_000);
  await checkKeepAlives(broker.ctx);
  assert.deepEqual(broker.gateway.closed, []);
  // Past 2 × 60 s, the latest a client silent since CONNECT is closed (docs/adr/0015): closed.
  broker.clock.advance(91_000);
  await checkKeepAlives(broker.ctx);
  assert.deepEqual(broker.gateway.closed, ['c1']);
});

test('grantKeepAlive: the floor, the gateway ceiling, and 3.1.1 untouched', () => {
  assert.deepEqual(grantKeepAlive(5, 30, 300), { keepAliveSeconds: 300, serverKeepAlive: 300 });
  assert.deepEqual(grantKeepAlive(5, 400, 300), { keepAliveSeconds: 400 });
  assert.deepEqual(grantKeepAlive(5, 65_535, 300), { keepAliveSeconds: 540, serverKeepAlive: 540 });
  assert.deepEqual(grantKeepAlive(5, 0, 0), { keepAliveSeconds: 0 });
  assert.deepEqual(grantKeepAlive(4, 0, 300), { keepAliveSeconds: 0 });
});

test('a Server Keep Alive above 540 s is refused: API Gateway closes connections idle for 10 minutes', () => {
  assert.match(limitsFault({ ...defaultLimits, serverKeepAliveSeconds: 600 }) ?? '', /idle timeout/);
  assert.equal(limitsFault({ ...defaultLimits, serverKeepAliveSeconds: 540 }), undefined);
});
