import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { ISubackPacket, Packet } from 'mqtt-packet';
import { connect } from '../client/index.js';
import type { Emulator } from '../emulator/index.js';
import { connectClient, eventually, inbox, startTestEmulator } from './support/emulator.js';

// The attacks of a logged-in user on other users, through the emulator with stock MQTT.js clients
// (3.1.1 and 5.0). test/fixtures/mosquitto.passwd was written by mosquitto_passwd (passwords
// alice-pass, bob-pass, carol-pass, legacy-pass: see test/mosquitto-passwords.test.ts);
// test/fixtures/nimbus.acl by hand: alice owns alice/#, reads shared/# except shared/secret/#;
// bob owns bob/#, writes shared/#; carol reads and writes # and reads $SYS/#.
let emulator: Emulator & { logs: string[] };
const clients: MqttClient[] = [];

before(async () => {
  emulator = await startTestEmulator({
    passwordFile: 'test/fixtures/mosquitto.passwd',
    aclFile: 'test/fixtures/nimbus.acl',
  });
});
after(async () => {
  for (const client of clients) client.end(true);
  await emulator?.settle();
  await emulator?.stop();
});

async function login(user: string, version: 4 | 5, options: IClientOptions = {}): Promise<MqttClient> {
  const client = await connectClient(emulator.url, {
    protocolVersion: version,
    username: user,
    password: `${user}-pass`,
    ...options,
  });
  clients.push(client);
  return client;
}

/** The CONNACK code of a refused connection (MQTT.js reports it as the error's code). */
async function refusedWith(options: IClientOptions): Promise<number | undefined> {
  const error = await connectClient(emulator.url, options).then(
    (client) => {
      client.end(true);
      return undefined;
    },
    (e: Error & { code?: number }) => e,
  );
  assert.ok(error, 'the CONNECT was refused');
  return error.code;
}

/** The SUBACK codes as sent (MQTT.js reports a refusal as an error, without the codes). */
const subscribeCodes = (client: MqttClient, filters: string[]) =>
  new Promise<number[]>((resolve) => {
    const onPacket = (packet: Packet) => {
      if (packet.cmd !== 'suback') return;
      client.off('packetreceive', onPacket);
      resolve((packet as ISubackPacket).granted as number[]);
    };
    client.on('packetreceive', onPacket);
    client.subscribe(filters, { qos: 1 }, () => {});
  });

/** The PUBACK reason code MQTT.js saw: 0 when accepted. */
const publishCode = (client: MqttClient, topic: string, options: { retain?: boolean } = {}) =>
  new Promise<number>((resolve) =>
    client.publish(topic, 'x', { qos: 1, ...options }, (error) =>
      resolve(error ? ((error as Error & { code?: number }).code ?? -1) : 0),
    ),
  );

describe('who may connect', () => {
  test('no credentials: 3.1.1 CONNACK 5, 5.0 0x87; a wrong password: 4 / 0x86', async () => {
    assert.equal(await refusedWith({ protocolVersion: 4 }), 5);
    assert.equal(await refusedWith({ protocolVersion: 5 }), 0x87);
    assert.equal(await refusedWith({ protocolVersion: 4, username: 'alice', password: 'nope' }), 4);
    assert.equal(await refusedWith({ protocolVersion: 5, username: 'bob', password: 'nope' }), 0x86);
  });
});

describe('reading what is not yours', () => {
  test('SUBSCRIBE # and $SYS/#: refused (0x80 in 3.1.1, 0x87 in 5.0), the granted filters in the same packet stay', async () => {
    const v4 = await login('alice', 4);
    assert.deepEqual(await subscribeCodes(v4, ['#', '$SYS/#', 'alice/#']), [0x80, 0x80, 1]);
    const v5 = await login('bob', 5);
    assert.deepEqual(await subscribeCodes(v5, ['#', '$SYS/#', 'alice/#', 'bob/#']), [0x87, 0x87, 0x87, 1]);
  });

  test('a granted filter with a denied part inside: the denied topics are not delivered', async () => {
    const alice = await login('alice', 5);
    const got = inbox(alice);
    assert.deepEqual(await subscribeCodes(alice, ['shared/#']), [1]);
    const bob = await login('bob', 4);
    await publishCode(bob, 'shared/secret/plan');
    await publishCode(bob, 'shared/news');
    await eventually('shared/news at alice', () => got.length > 0);
    await emulator.settle();
    assert.deepEqual(
      got.map((m) => m.topic),
      ['shared/news'],
    );
  });
});

describe('writing what is not yours', () => {
  test('5.0: a retained PUBLISH on another user topic gets PUBACK 0x87 and is not retained', async () => {
    const alice = await login('alice', 5);
    assert.equal(await publishCode(alice, 'bob/status', { retain: true }), 0x87);
    assert.equal(await publishCode(alice, 'alice/status', { retain: true }), 0);
  });

  test('3.1.1: acknowledged but neither forwarded nor retained', async () => {
    const alice = await login('alice', 4);
    assert.equal(await publishCode(alice, 'bob/status', { retain: true }), 0);
    await emulator.settle();
    const bob = await login('bob', 4);
    const got = inbox(bob);
    assert.deepEqual(await subscribeCodes(bob, ['bob/#']), [1]);
    await emulator.settle();
    assert.deepEqual(got, [], 'no retained message on bob/status');
  });

  test('$SYS and $aws topics: no one writes them, not even carol who is granted #', async () => {
    const carol = await login('carol', 5);
    const watcher = await login('carol', 4, { clientId: 'carol-watch' });
    const got = inbox(watcher);
    assert.deepEqual(await subscribeCodes(watcher, ['$SYS/#']), [1]);
    assert.equal(await publishCode(carol, '$SYS/broker/uptime'), 0x87);
    assert.equal(await publishCode(carol, '$aws/things/x/shadow/update'), 0x87);
    await emulator.settle();
    assert.deepEqual(got, []);
  });

  test('a will on another user topic or on $SYS is not published', async () => {
    const carol = await login('carol', 4, { clientId: 'carol-wills' });
    const got = inbox(carol);
    assert.deepEqual(await subscribeCodes(carol, ['#', '$SYS/#']), [1, 1]);
    for (const [clientId, topic] of [
      ['will-a', 'bob/will'],
      ['will-b', '$SYS/will'],
      ['will-c', 'alice/will'],
    ]) {
      const client = await login('alice', 4, {
        clientId,
        will: { topic, payload: Buffer.from('gone'), qos: 0, retain: false },
      });
      // An abnormal end: the stream closes without DISCONNECT.
      client.stream.destroy();
    }
    await eventually('alice/will at carol', () => got.some((m) => m.topic === 'alice/will'));
    await emulator.settle();
    assert.deepEqual(
      got.filter((m) => !m.retain).map((m) => m.topic),
      ['alice/will'],
    );
  });
});

describe("another user's client id", () => {
  test('refused (3.1.1 CONNACK 2, 5.0 0x85); the owner keeps its session and its queued messages', async () => {
    const owner = await login('alice', 4, { clientId: 'alice-phone', clean: false });
    assert.deepEqual(await subscribeCodes(owner, ['alice/inbox']), [1]);
    owner.end();
    await emulator.settle();
    const sender = await login('carol', 4, { clientId: 'carol-sender' });
    await publishCode(sender, 'alice/inbox');
    await emulator.settle();
    const as = (version: 4 | 5) => ({
      protocolVersion: version,
      clientId: 'alice-phone',
      username: 'bob',
      password: 'bob-pass',
      clean: true,
    });
    assert.equal(await refusedWith(as(4)), 2);
    assert.equal(await refusedWith(as(5)), 0x85);
    const { client, got, sessionPresent } = await connectClientCollecting('alice', 'alice-phone');
    clients.push(client);
    assert.equal(sessionPresent, true, 'the session survived the attempts');
    await eventually('the queued message', () => got.length === 1);
  });
});

/** Reconnects to a persistent session, collecting from the first packet on. */
async function connectClientCollecting(user: string, clientId: string) {
  const client = connect(emulator.url, {
    protocolVersion: 4,
    clientId,
    clean: false,
    username: user,
    password: `${user}-pass`,
    reconnectPeriod: 0,
  });
  const got = inbox(client);
  const sessionPresent = await new Promise<boolean>((resolve, reject) => {
    client.once('connect', (connack) => resolve(connack.sessionPresent));
    client.once('error', reject);
  });
  return { client, got, sessionPresent };
}

describe('password guessing', () => {
  test('after 5 wrong passwords for a name, even the right one is refused for a while (5 / 0x9F)', async () => {
    for (let i = 0; i < 6; i++)
      assert.equal(await refusedWith({ protocolVersion: 4, username: 'legacy', password: `guess-${i}` }), 4);
    assert.equal(await refusedWith({ protocolVersion: 4, username: 'legacy', password: 'legacy-pass' }), 5);
    assert.equal(
      await refusedWith({ protocolVersion: 5, username: 'legacy', password: 'legacy-pass' }),
      0x9f,
    );
    // The block is short (1 s after the sixth failure): the real user is back within seconds.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const client = await login('legacy', 4).catch(() => undefined);
      if (client) break;
      assert.ok(Date.now() < deadline, 'legacy let in again');
      await new Promise((r) => setTimeout(r, 250));
    }
  });
});
