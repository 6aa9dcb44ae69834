import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IConnackPacket, IConnectPacket, IDisconnectPacket } from 'mqtt-packet';
import type { Authenticator } from '../shared/auth.js';
import { connectionGone } from '../shared/broker/lifecycle.js';
import {
  connectAs,
  publishPacket,
  sendPackets,
  type TestBroker,
  testContext,
} from './support/broker-context.js';

const limits = { maxPublishesPerSecond: 10, publishBurst: 20 };

async function connected(version: 4 | 5, options: Parameters<typeof testContext>[0] = { limits }) {
  const broker = testContext(options);
  await connectAs(broker, 'c1', 'alice', { protocolVersion: version });
  broker.gateway.clear();
  return broker;
}

/** Sends one QoS 0 PUBLISH per frame, the frames `gapMs` apart by the queue's clock. */
async function publishEvery(broker: TestBroker, count: number, gapMs: number, version: 4 | 5, start = 0) {
  for (let i = 0; i < count && broker.gateway.closed.length === 0; i++)
    await sendPackets(
      broker,
      'c1',
      [publishPacket('t', `m${i}`)],
      version,
      `f${i}`,
      undefined,
      start + i * gapMs,
    );
}

describe('publish rate per connection', () => {
  test('a client over the rate is closed: 5.0 DISCONNECT 0x96 Message rate too high, 3.1.1 a close', async () => {
    for (const version of [4, 5] as const) {
      const broker = await connected(version);
      await publishEvery(broker, 100, 10, version); // 100/s against 10/s, burst 20
      assert.deepEqual(broker.gateway.closed, ['c1']);
      const packets = broker.gateway.packetsTo('c1');
      if (version === 5) {
        assert.deepEqual(
          packets.map((p) => p.cmd),
          ['disconnect'],
        );
        assert.equal((packets[0] as IDisconnectPacket).reasonCode, 0x96);
      } else assert.deepEqual(packets, []);
      // The burst and what the rate refilled meanwhile were accepted, nothing after.
      const accepted = broker.store.accepted.length;
      assert.ok(accepted >= 20 && accepted <= 23, `accepted ${accepted}`);
    }
  });

  test('a client at the rate keeps its connection, and its bucket costs no write', async () => {
    const broker = await connected(5);
    let writes = 0;
    const save = broker.store.savePublishBucket.bind(broker.store);
    broker.store.savePublishBucket = async (id, bucket) => {
      writes++;
      await save(id, bucket);
    };
    await publishEvery(broker, 300, 100, 5); // exactly 10/s
    assert.deepEqual(broker.gateway.closed, []);
    assert.equal(broker.store.accepted.length, 300);
    assert.equal(writes, 0);
  });

  test('the queue time, not the handling time, is the clock: a backlog handled at once is no burst', async () => {
    const broker = await connected(4);
    // The broker's own clock stands still while 60 frames sent over 6 s are handled.
    await publishEvery(broker, 60, 100, 4);
    assert.deepEqual(broker.gateway.closed, []);
    assert.equal(broker.store.accepted.length, 60);
  });

  test('packets of one frame count one by one: those before the excess are handled', async () => {
    const broker = await connected(5);
    const frame = Array.from({ length: 25 }, (_, i) => publishPacket('t', `m${i}`));
    await sendPackets(broker, 'c1', frame, 5, 'f1', undefined, 0);
    assert.equal(broker.store.accepted.length, 20);
    assert.deepEqual(broker.gateway.closed, ['c1']);
  });

  test('a bucket below half is written to the record, so another instance goes on from it', async () => {
    const broker = await connected(4);
    await sendPackets(
      broker,
      'c1',
      Array.from({ length: 15 }, () => publishPacket('t', 'x')),
      4,
      'f1',
      undefined,
      0,
    );
    assert.deepEqual((await broker.store.getConnection('c1'))?.publishBucket, { tokens: 5, at: 0 });
    // Another instance: no memory of the bucket, only the record.
    const other = { ...broker, ctx: { ...broker.ctx, publishRates: undefined } };
    await sendPackets(
      other,
      'c1',
      Array.from({ length: 6 }, () => publishPacket('t', 'y')),
      4,
      'f2',
      undefined,
      0,
    );
    assert.deepEqual(broker.gateway.closed, ['c1']);
    assert.equal(broker.store.accepted.length, 20);
  });

  test('0 switches the quota off', async () => {
    const broker = await connected(5, { limits: { maxPublishesPerSecond: 0, publishBurst: 1 } });
    await sendPackets(
      broker,
      'c1',
      Array.from({ length: 500 }, () => publishPacket('t', 'x')),
      5,
      'f1',
      undefined,
      0,
    );
    assert.deepEqual(broker.gateway.closed, []);
    assert.equal(broker.store.accepted.length, 500);
  });

  test('packets other than PUBLISH take nothing from the bucket', async () => {
    const broker = await connected(4, { limits: { maxPublishesPerSecond: 1, publishBurst: 1 } });
    await sendPackets(
      broker,
      'c1',
      Array.from({ length: 50 }, () => ({ cmd: 'pingreq' as const })),
      4,
      'f1',
      undefined,
      0,
    );
    await sendPackets(broker, 'c1', [publishPacket('t', 'x')], 4, 'f2', undefined, 0);
    assert.deepEqual(broker.gateway.closed, []);
    assert.equal(broker.store.accepted.length, 1);
  });
});

// Any password equal to the user name is right; the user is the user name.
const passwordIsName: Authenticator = {
  async authenticate({ username, password }) {
    return username !== undefined && Buffer.from(password ?? []).toString() === username
      ? { ok: true, user: username }
      : { ok: false, reason: 'bad-credentials' };
  },
};

function usersBroker(maxConnectionsPerUser = 2) {
  return testContext({ authenticator: passwordIsName, limits: { maxConnectionsPerUser } });
}

async function login(
  broker: TestBroker,
  connectionId: string,
  clientId: string,
  user: string,
  version: 4 | 5,
) {
  const packets = await connectAs(broker, connectionId, clientId, {
    protocolVersion: version,
    username: user,
    password: Buffer.from(user),
  });
  return packets[0] as IConnackPacket;
}

const accepted = (connack: IConnackPacket) => (connack.reasonCode ?? connack.returnCode) === 0;

describe('connections per user', () => {
  test("a user's connection past the quota is refused: 3.1.1 CONNACK 3, 5.0 CONNACK 0x97, nothing of its session touched", async () => {
    for (const version of [4, 5] as const) {
      const broker = usersBroker();
      assert.ok(accepted(await login(broker, 'a1', 'alice-1', 'alice', version)));
      assert.ok(accepted(await login(broker, 'a2', 'alice-2', 'alice', version)));
      const refused = await login(broker, 'a3', 'alice-3', 'alice', version);
      assert.equal(version === 5 ? refused.reasonCode : refused.returnCode, version === 5 ? 0x97 : 3);
      assert.deepEqual(broker.gateway.closed, ['a3']);
      assert.equal(await broker.store.getSession('alice-3'), undefined);
      assert.equal(await broker.store.getConnection('a3'), undefined);
      // Other users have their own count.
      assert.ok(accepted(await login(broker, 'b1', 'bob-1', 'bob', version)));
    }
  });

  test('when one of the connections ends, the next one connects; a second notice of the end counts nothing', async () => {
    const broker = usersBroker();
    await login(broker, 'a1', 'alice-1', 'alice', 5);
    await login(broker, 'a2', 'alice-2', 'alice', 5);
    await connectionGone(broker.ctx, 'a1');
    await connectionGone(broker.ctx, 'a1');
    assert.ok(accepted(await login(broker, 'a3', 'alice-3', 'alice', 5)));
    assert.equal((await login(broker, 'a4', 'alice-4', 'alice', 5)).reasonCode, 0x97);
  });

  test("[MQTT-3.1.4-2] a takeover of one of the user's client ids does not count twice", async () => {
    const broker = usersBroker();
    await login(broker, 'a1', 'alice-1', 'alice', 4);
    await login(broker, 'a2', 'alice-2', 'alice', 4);
    assert.ok(accepted(await login(broker, 'a3', 'alice-1', 'alice', 4)));
    assert.ok(broker.gateway.closed.includes('a1'));
    await connectionGone(broker.ctx, 'a1');
    assert.deepEqual((await broker.store.userConnections('alice')).sort(), ['a2', 'a3']);
  });

  test('a retried CONNECT frame counts its connection once', async () => {
    const broker = usersBroker(1);
    const connect: IConnectPacket = {
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clientId: 'alice-1',
      clean: true,
      keepalive: 60,
      username: 'alice',
      password: Buffer.from('alice'),
    };
    await sendPackets(broker, 'a1', [connect], 4, 'frame-1');
    broker.gateway.clear();
    await sendPackets(broker, 'a1', [connect], 4, 'frame-1');
    assert.equal((broker.gateway.packetsTo('a1')[0] as IConnackPacket).returnCode, 0);
  });

  test('a connection whose end was never reported does not lock its user out', async () => {
    const broker = usersBroker(1);
    await login(broker, 'a1', 'alice-1', 'alice', 5);
    await broker.store.deleteConnection('a1'); // expired, its $disconnect lost
    assert.ok(accepted(await login(broker, 'a2', 'alice-2', 'alice', 5)));
    assert.deepEqual(await broker.store.userConnections('alice'), ['a2']);
  });

  test('0 switches the quota off; anonymous clients are not counted', async () => {
    const off = usersBroker(0);
    for (let i = 0; i < 5; i++) assert.ok(accepted(await login(off, `a${i}`, `alice-${i}`, 'alice', 5)));
    const anonymous = testContext({ limits: { maxConnectionsPerUser: 1 } });
    for (let i = 0; i < 3; i++)
      assert.ok(accepted((await connectAs(anonymous, `c${i}`, `x-${i}`))[0] as IConnackPacket));
  });
});
