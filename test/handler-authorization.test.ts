import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IConnackPacket, IPubackPacket, IPublishPacket, ISubackPacket, Packet } from 'mqtt-packet';
import { AclAuthorizer, parseAcl } from '../shared/acl.js';
import type { Authenticator } from '../shared/auth.js';
import { connectionGone } from '../shared/broker/lifecycle.js';
import { MemoryLoginAttempts, StoredLoginThrottle } from '../shared/login-throttle.js';
import {
  connectAs,
  publishPacket,
  sendPackets,
  subscribePacket,
  testContext,
} from './support/broker-context.js';

// Authorization through handleFrame: SUBACK and PUBACK codes, what the fan-out delivers, retained
// messages, wills, `$` topics, client-id ownership and login throttling.

/** Every user's password is its name. */
const passwordIsName: Authenticator = {
  async authenticate({ username, password }) {
    if (username === undefined) return { ok: false, reason: 'not-authorized' };
    return Buffer.from(password ?? []).toString() === username
      ? { ok: true, user: username }
      : { ok: false, reason: 'bad-credentials' };
  },
};

const acl = parseAcl(`user alice
topic readwrite alice/#
topic read shared/#
topic deny shared/secret/#
user bob
topic readwrite bob/#
topic write shared/#
user root
topic readwrite #
pattern readwrite devices/%c/#
`);

function broker() {
  return testContext({ authenticator: passwordIsName, authorizer: new AclAuthorizer(acl) });
}

const as = (user: string, version: 4 | 5 = 4) => ({
  username: user,
  password: Buffer.from(user),
  protocolVersion: version,
});
const only = <T extends Packet>(packets: Packet[], cmd: T['cmd']): T[] =>
  packets.filter((p) => p.cmd === cmd) as T[];
const published = (packets: Packet[]) => only<IPublishPacket>(packets, 'publish').map((p) => p.topic);

describe('SUBSCRIBE', () => {
  test('[MQTT-3.9.3-1] a 3.1.1 SUBACK refuses only the denied filter with 0x80', async () => {
    const b = broker();
    await connectAs(b, 'c1', 'a1', as('alice'));
    await sendPackets(b, 'c1', [subscribePacket(1, ['alice/#', 1], ['#', 0], ['bob/#', 0], ['shared/+', 2])]);
    const [suback] = only<ISubackPacket>(b.gateway.packetsTo('c1'), 'suback');
    assert.deepEqual(suback?.granted, [1, 0x80, 0x80, 2]);
  });

  test('a 5.0 SUBACK says 0x87 Not authorized for the denied filter', async () => {
    const b = broker();
    await connectAs(b, 'c1', 'a1', as('alice', 5));
    await sendPackets(b, 'c1', [subscribePacket(1, ['shared/secret/#', 0], ['alice/x', 1])], 5);
    const [suback] = only<ISubackPacket>(b.gateway.packetsTo('c1'), 'suback');
    assert.deepEqual(suback?.granted, [0x87, 1]);
  });

  test('retained messages the subscriber may not read are not sent at SUBSCRIBE', async () => {
    const b = broker();
    await connectAs(b, 'p', 'r1', as('root'));
    await sendPackets(b, 'p', [
      publishPacket('shared/news', 'ok', 0, { retain: true }),
      publishPacket('shared/secret/plan', 'no', 0, { retain: true }),
    ]);
    await connectAs(b, 'c1', 'a1', as('alice'));
    await sendPackets(b, 'c1', [subscribePacket(1, ['shared/#', 0])]);
    assert.deepEqual(published(b.gateway.packetsTo('c1')), ['shared/news']);
  });
});

describe('PUBLISH', () => {
  test('[MQTT-3.4.2-1] 5.0: a PUBLISH the user may not write gets PUBACK / PUBREC 0x87 and is not stored', async () => {
    const b = broker();
    await connectAs(b, 'c1', 'a1', as('alice', 5));
    await sendPackets(
      b,
      'c1',
      [publishPacket('bob/x', 'x', 1, { messageId: 1 }), publishPacket('bob/y', 'y', 2, { messageId: 2 })],
      5,
    );
    const acks = b.gateway.packetsTo('c1').filter((p) => p.cmd === 'puback' || p.cmd === 'pubrec');
    assert.deepEqual(
      acks.map((p) => [p.cmd, (p as IPubackPacket).reasonCode]),
      [
        ['puback', 0x87],
        ['pubrec', 0x87],
      ],
    );
    assert.equal(b.store.accepted.length, 0);
  });

  test('3.1.1: acknowledged as usual but not forwarded, and a retained one is not retained', async () => {
    const b = broker();
    await connectAs(b, 'c1', 'a1', as('alice'));
    await sendPackets(b, 'c1', [publishPacket('bob/x', 'x', 1, { messageId: 1, retain: true })]);
    assert.deepEqual(only(b.gateway.packetsTo('c1'), 'puback').length, 1);
    assert.equal(b.store.accepted.length, 0);
    assert.deepEqual(await b.store.retainedMatching('#'), []);
  });

  test('no client writes a $ topic, not even one granted #', async () => {
    const b = broker();
    await connectAs(b, 'c1', 'r1', as('root', 5));
    await sendPackets(
      b,
      'c1',
      [
        publishPacket('$SYS/broker/uptime', 'x', 1, { messageId: 1 }),
        publishPacket('$aws/things/t', 'x', 1, { messageId: 2 }),
      ],
      5,
    );
    const codes = only<IPubackPacket>(b.gateway.packetsTo('c1'), 'puback').map((p) => p.reasonCode);
    assert.deepEqual(codes, [0x87, 0x87]);
    assert.equal(b.store.accepted.length, 0);
  });

  test('without an authorizer, $ topics are still refused and everything else allowed', async () => {
    const b = testContext();
    await connectAs(b, 'c1', 'x', { protocolVersion: 5 });
    await sendPackets(
      b,
      'c1',
      [publishPacket('$SYS/x', 'x', 1, { messageId: 1 }), publishPacket('a', 'x', 1, { messageId: 2 })],
      5,
    );
    const codes = only<IPubackPacket>(b.gateway.packetsTo('c1'), 'puback').map((p) => p.reasonCode ?? 0);
    assert.deepEqual(codes, [0x87, 0]);
  });

  test('%c patterns: a client writes under its own client id only', async () => {
    const b = broker();
    await connectAs(b, 'c1', 'dev-1', as('bob', 5));
    await sendPackets(
      b,
      'c1',
      [
        publishPacket('devices/dev-1/state', 'x', 1, { messageId: 1 }),
        publishPacket('devices/dev-2/state', 'x', 1, { messageId: 2 }),
      ],
      5,
    );
    const codes = only<IPubackPacket>(b.gateway.packetsTo('c1'), 'puback').map((p) => p.reasonCode ?? 0);
    assert.deepEqual(codes, [0, 0x87]);
  });
});

describe('delivery', () => {
  test('a subscriber granted # gets only what it may read; denied topics under a granted filter are withheld', async () => {
    const b = broker();
    await connectAs(b, 'c1', 'a1', as('alice'));
    await sendPackets(b, 'c1', [subscribePacket(1, ['shared/#', 0])]);
    await connectAs(b, 'c2', 'b1', as('bob'));
    await sendPackets(b, 'c2', [
      publishPacket('shared/news', 'ok'),
      publishPacket('shared/secret/plan', 'no'),
    ]);
    await b.stream();
    assert.deepEqual(published(b.gateway.packetsTo('c1')), ['shared/news']);
  });
});

describe('wills', () => {
  test('a will the user may not write is not published; one it may is', async () => {
    const b = broker();
    await connectAs(b, 'c1', 'a1', {
      ...as('alice'),
      will: { topic: 'bob/x', payload: Buffer.from('w'), qos: 0, retain: false },
    });
    await connectAs(b, 'c2', 'a2', {
      ...as('alice'),
      will: { topic: 'alice/gone', payload: Buffer.from('w'), qos: 0, retain: false },
    });
    await connectAs(b, 'c3', 'r1', {
      ...as('root'),
      will: { topic: '$SYS/x', payload: Buffer.from('w'), qos: 0, retain: false },
    });
    for (const id of ['c1', 'c2', 'c3']) await connectionGone(b.ctx, id);
    assert.deepEqual(
      b.store.accepted.map((m) => m.topic),
      ['alice/gone'],
    );
  });
});

describe('client-id ownership', () => {
  test("another user's CONNECT with a session's client id is refused (2 / 0x85) and the session is untouched", async () => {
    const b = broker();
    await connectAs(b, 'c1', 'shared-id', { ...as('alice'), clean: false });
    await sendPackets(b, 'c1', [subscribePacket(1, ['alice/#', 1])]);
    await connectionGone(b.ctx, 'c1');
    const before = await b.store.getSession('shared-id');
    const v4 = (await connectAs(b, 'c2', 'shared-id', { ...as('bob'), clean: true }))[0] as IConnackPacket;
    const v5 = (await connectAs(b, 'c3', 'shared-id', { ...as('bob', 5), clean: true }))[0] as IConnackPacket;
    assert.equal(v4.returnCode, 2);
    assert.equal(v5.reasonCode, 0x85);
    assert.deepEqual(await b.store.getSession('shared-id'), before);
    assert.equal((await b.store.subscriptionsMatching('alice/x')).length, 1);
    assert.equal(await b.store.getConnection('c2'), undefined);
  });

  test('the owner takes its session back, online or not; the session records its owner', async () => {
    const b = broker();
    await connectAs(b, 'c1', 'mine', { ...as('alice'), clean: false });
    assert.equal((await b.store.getSession('mine'))?.owner, 'alice');
    assert.equal((await b.store.getConnection('c1'))?.user, 'alice');
    const reply = (await connectAs(b, 'c2', 'mine', { ...as('alice'), clean: false }))[0] as IConnackPacket;
    assert.equal(reply.returnCode, 0);
    assert.equal(reply.sessionPresent, true);
    assert.deepEqual(b.gateway.closed, ['c1'], '[MQTT-3.1.4-2] the older connection is closed');
  });
});

describe('login throttling', () => {
  test('after the free failures, even the right password is refused for a while (3.1.1: 5, 5.0: 0x9F)', async () => {
    let now = 0;
    const b = testContext({
      authenticator: passwordIsName,
      loginThrottle: new StoredLoginThrottle(new MemoryLoginAttempts(), () => now),
    });
    for (let i = 0; i < 6; i++) {
      const reply = (
        await connectAs(b, `x${i}`, 'a', { username: 'alice', password: Buffer.from('guess') })
      )[0] as IConnackPacket;
      assert.equal(reply.returnCode, 4);
    }
    const v4 = (await connectAs(b, 'y1', 'a', as('alice')))[0] as IConnackPacket;
    const v5 = (await connectAs(b, 'y2', 'a', as('alice', 5)))[0] as IConnackPacket;
    assert.equal(v4.returnCode, 5);
    assert.equal(v5.reasonCode, 0x9f);
    now = 1000;
    assert.equal(((await connectAs(b, 'y3', 'a', as('alice')))[0] as IConnackPacket).returnCode, 0);
  });

  test('the source address of the frame counts too', async () => {
    const b = testContext({
      authenticator: passwordIsName,
      loginThrottle: new StoredLoginThrottle(new MemoryLoginAttempts(), () => 0),
    });
    const connect = (id: string, user: string, password: string) =>
      sendPackets(
        b,
        id,
        [
          {
            cmd: 'connect',
            protocolId: 'MQTT',
            protocolVersion: 4,
            clean: true,
            clientId: id,
            keepalive: 0,
            username: user,
            password: Buffer.from(password),
          },
        ],
        4,
        undefined,
        '203.0.113.9',
      );
    for (let i = 0; i < 21; i++) await connect(`s${i}`, `user${i}`, 'wrong');
    await connect('ok', 'carol', 'carol');
    assert.equal((b.gateway.packetsTo('ok')[0] as IConnackPacket).returnCode, 5);
  });
});
