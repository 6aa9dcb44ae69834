import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import type { Emulator } from '../emulator/index.js';
import { hashPassword } from '../shared/auth.js';
import { connectClient, emulatorDatabase, eventually, inbox, startTestEmulator } from './support/emulator.js';
import { connectPacket, RawClient } from './support/raw-client.js';

// A broker with authentication on: two users, everyone else refused at CONNECT.
let emulator: Emulator & { logs: string[] };
let db: DynamoDBDocumentClient;
const users = { alice: hashPassword('alice-pw'), bob: hashPassword('bob-pw') };
const pw = (text: string) => Buffer.from(text, 'utf8');

before(async () => {
  emulator = await startTestEmulator({ users });
  db = emulatorDatabase(emulator);
});
after(async () => {
  db?.destroy();
  // Let the last clients' $disconnect run while the gateway is still up.
  await emulator?.settle();
  await emulator?.stop();
});

const sessionOf = async (clientId: string) =>
  (await db.send(new GetCommand({ TableName: emulator.tables.Sessions, Key: { clientId } }))).Item;

/** Sends CONNECT, expects a refusing CONNACK then the close, and that nothing of the client was kept. */
async function expectRefused(
  version: 4 | 5,
  clientId: string,
  credentials: { username?: string; password?: Buffer },
): Promise<number | undefined> {
  const earlier = new Set(emulator.gateway.connectionIds);
  const client = await RawClient.open(emulator.url, { protocolVersion: version });
  const opened = emulator.gateway.connectionIds.filter((id) => !earlier.has(id));
  assert.equal(opened.length, 1, 'the gateway has the new connection');
  client.send(connectPacket(clientId, { protocolVersion: version, clean: false, ...credentials }));
  const connack = await client.next('connack');
  assert.equal(connack.sessionPresent, false);
  await client.closed;
  await emulator.settle();
  assert.ok(!emulator.gateway.connectionIds.includes(opened[0] ?? ''), 'the refused connection is gone');
  assert.equal(await sessionOf(clientId), undefined, 'the refused client left no session');
  const record = await db.send(
    new GetCommand({ TableName: emulator.tables.Connections, Key: { connectionId: opened[0] } }),
  );
  assert.equal(record.Item, undefined, 'the refused connection left no connection record');
  return version === 5 ? connack.reasonCode : connack.returnCode;
}

describe('authentication', () => {
  test('the right username and password: CONNACK 0 (3.1.1 and 5)', async () => {
    const v4 = await RawClient.open(emulator.url);
    v4.send(connectPacket('auth-ok-4', { username: 'alice', password: pw('alice-pw') }));
    assert.equal((await v4.next('connack')).returnCode, 0);
    const v5 = await RawClient.open(emulator.url, { protocolVersion: 5 });
    v5.send(connectPacket('auth-ok-5', { protocolVersion: 5, username: 'bob', password: pw('bob-pw') }));
    assert.equal((await v5.next('connack')).reasonCode, 0);
    v4.close();
    v5.close();
    await Promise.all([v4.closed, v5.closed]);
  });

  test('§3.2.2.3 a wrong password: 3.1.1 return code 4 (bad user name or password), then close [MQTT-3.2.2-5]', async () => {
    assert.equal(await expectRefused(4, 'auth-bad-4', { username: 'alice', password: pw('bob-pw') }), 4);
  });

  test('MQTT 5 a wrong password: reason 0x86 (Bad User Name or Password), then close', async () => {
    assert.equal(await expectRefused(5, 'auth-bad-5', { username: 'bob', password: pw('wrong') }), 0x86);
  });

  test('an unknown user is refused like a wrong password', async () => {
    assert.equal(await expectRefused(4, 'auth-unknown', { username: 'mallory', password: pw('x') }), 4);
  });

  test('§3.2.2.3 no username: 3.1.1 return code 5 (not authorized), MQTT 5 reason 0x87 (Not authorized)', async () => {
    assert.equal(await expectRefused(4, 'auth-anon-4', {}), 5);
    assert.equal(await expectRefused(5, 'auth-anon-5', {}), 0x87);
  });

  test('a refused CONNECT does not take over the client id: its owner stays connected and served', async () => {
    const owner = await connectClient(emulator.url, {
      clientId: 'auth-owner',
      username: 'alice',
      password: 'alice-pw',
    });
    const received = inbox(owner);
    await owner.subscribeAsync('auth/owner', { qos: 1 });
    const before = await sessionOf('auth-owner');
    assert.ok(before, 'the owner has a session');

    const intruder = await RawClient.open(emulator.url);
    intruder.send(connectPacket('auth-owner', { username: 'alice', password: pw('guess') }));
    assert.equal((await intruder.next('connack')).returnCode, 4);
    await intruder.closed;
    await emulator.settle();
    assert.deepEqual(await sessionOf('auth-owner'), before, 'the session still belongs to the owner');

    const publisher = await connectClient(emulator.url, {
      clientId: 'auth-pub',
      username: 'bob',
      password: 'bob-pw',
    });
    await publisher.publishAsync('auth/owner', 'still here', { qos: 1 });
    await eventually('delivery to the owner', () => received.length === 1);
    assert.equal(received[0]?.payload, 'still here');
    assert.equal(owner.connected, true);
    await publisher.endAsync();
    await owner.endAsync();
  });

  test('MQTT.js with wrong credentials gets the refusal as an error', async () => {
    await assert.rejects(
      connectClient(emulator.url, { clientId: 'auth-mqttjs', username: 'bob', password: 'nope' }),
      /Bad username or password|Bad User Name or Password/i,
    );
  });
});
