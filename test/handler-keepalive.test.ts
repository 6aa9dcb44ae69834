import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  checkKeepAlives,
  checkKeepAlivesFor,
  keepAliveDeadline,
  shouldTouch,
} from '../shared/broker/keepalive.js';
import { connectionGone } from '../shared/broker/lifecycle.js';
import { sweep } from '../shared/broker/sweep.js';
import { connectAs, sendPackets, type TestBroker, testContext } from './support/broker-context.js';

// Keep-alive deadlines on the in-memory store, the recording gateway and the fake clock.

const will = { topic: 'status/alice', payload: Buffer.from('gone'), qos: 0 as const, retain: false };

/**
 * Runs the checker once a second as AWS does, calling `each` before every check, until the
 * connection is closed or `limitMs` passes; returns how long after the start it was closed.
 */
async function closedAfter(
  broker: TestBroker,
  connectionId: string,
  limitMs: number,
  each: (elapsedMs: number) => Promise<void> = async () => {},
): Promise<number | undefined> {
  for (let elapsed = 0; elapsed <= limitMs; elapsed += 1_000) {
    await each(elapsed);
    await checkKeepAlives(broker.ctx);
    if (broker.gateway.closed.includes(connectionId)) return elapsed;
    broker.clock.advance(1_000);
  }
  return undefined;
}

test('[MQTT-3.1.2-24] a silent keep-alive 5 client is closed, its will published and its session ended, 10 s (2 keep-alives: CONNECT is not rewritten by the first packet) to one check later', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice', { keepalive: 5, will });
  const closedAt = await closedAfter(broker, 'c1', 60_000);
  assert.ok(closedAt !== undefined && closedAt > 10_000 && closedAt <= 11_000, `closed after ${closedAt} ms`);
  assert.deepEqual(
    broker.store.accepted.map((m) => m.topic),
    ['status/alice'],
  );
  assert.equal(await broker.store.getConnection('c1'), undefined);
  assert.equal(await broker.store.getSession('alice'), undefined); // a clean session ends [MQTT-3.1.2-6]
});

test('[MQTT-3.1.2-24] an MQTT 5 client is told 0x8D Keep Alive timeout before it is closed', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice', { keepalive: 5, protocolVersion: 5 });
  broker.gateway.clear();
  assert.ok((await closedAfter(broker, 'c1', 60_000)) !== undefined);
  const told = broker.gateway.packetsTo('c1').map((p) => [p.cmd, (p as { reasonCode?: number }).reasonCode]);
  assert.deepEqual(told, [['disconnect', 0x8d]]);
});

test('[MQTT-3.1.2-23] a client that pings every keep-alive, or a little later, is never closed', async () => {
  for (const everyMs of [5_000, 7_000]) {
    const broker = testContext();
    await connectAs(broker, 'c1', 'alice', { keepalive: 5, will });
    const closedAt = await closedAfter(broker, 'c1', 10 * 60_000, async (elapsed) => {
      if (elapsed > 0 && elapsed % everyMs === 0) await sendPackets(broker, 'c1', [{ cmd: 'pingreq' }]);
    });
    assert.equal(closedAt, undefined, `pinging every ${everyMs} ms`);
    assert.equal(broker.store.accepted.length, 0);
  }
});

test('[MQTT-3.1.2-24] a busy client that falls silent is closed between 1.5 and 2 keep-alives (plus a check) after its last packet', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice', { keepalive: 5, will });
  const lastPacketAt = 20_000;
  const closedAt = await closedAfter(broker, 'c1', 60_000, async (elapsed) => {
    if (elapsed > 0 && elapsed <= lastPacketAt) await sendPackets(broker, 'c1', [{ cmd: 'pingreq' }]);
  });
  assert.ok(closedAt !== undefined, 'closed');
  const silence = closedAt - lastPacketAt;
  assert.ok(silence > 7_500 && silence <= 11_000, `closed after ${silence} ms of silence`);
});

test('keep-alive 0 means no keep-alive: never due, never closed', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice', { keepalive: 0, will });
  broker.clock.advance(3_600_000);
  assert.deepEqual(await broker.store.connectionsDue(broker.clock.now()), []);
  assert.deepEqual(await checkKeepAlives(broker.ctx), { due: 0, expired: 0, failed: 0 });
  assert.deepEqual(broker.gateway.closed, []);
});

test('a reconnect with the same client id before the deadline is not hurt by the old connection expiring', async () => {
  const broker = testContext();
  await connectAs(broker, 'old', 'alice', { keepalive: 5, clean: false });
  broker.clock.advance(3_000);
  await connectAs(broker, 'new', 'alice', { keepalive: 5, clean: false });
  const closedAt = await closedAfter(broker, 'new', 60_000, async (elapsed) => {
    if (elapsed > 0 && elapsed % 5_000 === 0) await sendPackets(broker, 'new', [{ cmd: 'pingreq' }]);
  });
  assert.equal(closedAt, undefined);
  assert.equal((await broker.store.getSession('alice'))?.connectionId, 'new');
  assert.ok(await broker.store.getConnection('new'));
});

test('a reconnect after the old connection expired finds its persistent session', async () => {
  const broker = testContext();
  await connectAs(broker, 'old', 'alice', { keepalive: 5, clean: false });
  assert.ok((await closedAfter(broker, 'old', 60_000)) !== undefined);
  const session = await broker.store.getSession('alice');
  assert.ok(session && session.connectionId === undefined, 'offline, kept');
  const [connack] = await connectAs(broker, 'new', 'alice', { keepalive: 5, clean: false });
  assert.equal((connack as { sessionPresent?: boolean }).sessionPresent, true);
});

test('[MQTT-3.1.2-8] the will goes out exactly once with two checkers, the sweep and $disconnect racing', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice', { keepalive: 5, will });
  broker.clock.advance(10_001);
  await Promise.all([
    checkKeepAlives(broker.ctx),
    checkKeepAlives(broker.ctx),
    sweep(broker.ctx),
    connectionGone(broker.ctx, 'c1'),
  ]);
  assert.equal(broker.store.accepted.length, 1);
});

test('the index lagging a touch does not close a connection that was heard from', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice', { keepalive: 5 });
  broker.clock.advance(5_000);
  // lastSeen moved, the deadline index not (as an eventually consistent index can show).
  await broker.store.touchConnection('c1', broker.clock.now());
  broker.clock.advance(5_000);
  assert.deepEqual(await checkKeepAlives(broker.ctx), { due: 1, expired: 0, failed: 0 });
  assert.deepEqual(broker.gateway.closed, []);
});

test('a close that fails leaves the connection due, and the next check closes it; the others are not held up', async () => {
  const broker = testContext();
  await connectAs(broker, 'c1', 'alice', { keepalive: 5, will });
  await connectAs(broker, 'c2', 'bob', { keepalive: 5 });
  const close = broker.gateway.close.bind(broker.gateway);
  broker.gateway.close = async (id: string) => {
    if (id === 'c1') throw new Error('throttled');
    return close(id);
  };
  broker.clock.advance(10_001);
  const first = await checkKeepAlives(broker.ctx);
  assert.deepEqual([first.due, first.expired, first.failed], [2, 1, 1]);
  assert.deepEqual(broker.gateway.closed, ['c2']);
  broker.gateway.close = close;
  broker.clock.advance(1_000);
  assert.deepEqual(await checkKeepAlives(broker.ctx), { due: 1, expired: 1, failed: 0 });
  assert.deepEqual(broker.gateway.closed, ['c2', 'c1']);
  assert.equal(broker.store.accepted.length, 1);
});

test('a check that cannot read the index is reported and the loop goes on', async () => {
  const broker = testContext();
  const ctx = { ...broker.ctx, sleep: async (ms: number) => broker.clock.advance(ms) };
  const due = broker.store.connectionsDue.bind(broker.store);
  let calls = 0;
  broker.store.connectionsDue = async (now: number) => {
    if (++calls === 1) throw new Error('index unavailable');
    return due(now);
  };
  const failed: number[] = [];
  await checkKeepAlivesFor(ctx, 3_000, 1_000, (r) => failed.push(r.failed));
  assert.deepEqual(failed, [1, 0, 0]);
});

test('checkKeepAlivesFor checks once a period through its run', async () => {
  const broker = testContext();
  const ctx = { ...broker.ctx, sleep: async (ms: number) => broker.clock.advance(ms) };
  await connectAs(broker, 'c1', 'alice', { keepalive: 5 });
  const results: number[] = [];
  await checkKeepAlivesFor(ctx, 60_000, 1_000, (r) => results.push(r.expired));
  assert.equal(results.length, 60);
  assert.deepEqual(
    results.flatMap((expired, second) => (expired ? [second] : [])),
    [11],
  );
});

test('[MQTT-3.1.2-24] whatever the traffic, the deadline is never before 1.5 keep-alives of silence nor after 2', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 600 }),
      fc.array(fc.integer({ min: 1, max: 20_000 }), { maxLength: 40 }),
      (keepAliveSeconds, gaps) => {
        const connectedAt = 1_000_000;
        let record = { keepAliveSeconds, connectedAt, lastSeen: connectedAt };
        let lastPacket = connectedAt;
        for (const gap of gaps) {
          const now = lastPacket + gap;
          // Only packets inside the deadline reach the broker; later ones find the connection closed.
          if (now > keepAliveDeadline(record)) break;
          if (shouldTouch(record, now)) record = { ...record, lastSeen: now };
          lastPacket = now;
        }
        const deadline = keepAliveDeadline(record);
        const ka = keepAliveSeconds * 1000;
        assert.ok(deadline >= lastPacket + 1.5 * ka);
        assert.ok(deadline <= lastPacket + 2 * ka);
      },
    ),
  );
});
