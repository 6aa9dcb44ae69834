import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { Emulator } from '../emulator/index.js';
import { parseMosquittoHash } from '../shared/auth/mosquitto-hash.js';
import { connectClient, emulatorDatabase, eventually, inbox, startTestEmulator } from './support/emulator.js';
import { connectPacket, RawClient } from './support/raw-client.js';

// An emulator with the users table and tokens of a local issuer on: users added with `nimbus users`,
// devices holding tokens, both connecting through MQTT.js.
let emulator: Emulator & { logs: string[] };
let db: DynamoDBDocumentClient;
let issuerServer: Server;
let issuer: string;
let signingKey: CryptoKey;

before(async () => {
  const pair = await generateKeyPair('ES256');
  signingKey = pair.privateKey;
  const jwks = { keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] };
  issuerServer = createServer((request, response) => {
    const found = request.url === '/pool/.well-known/jwks.json';
    response.writeHead(found ? 200 : 404, { 'content-type': 'application/json' });
    response.end(JSON.stringify(found ? jwks : {}));
  });
  await new Promise<void>((resolve) => issuerServer.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(issuerServer.address() as AddressInfo).port}/pool`;
  // No JWKS URL: the Cognito default, `${issuer}/.well-known/jwks.json`, after discovery finds nothing.
  emulator = await startTestEmulator({ usersTable: true, jwt: { issuer, userClaim: 'username' } });
  db = emulatorDatabase(emulator);
});
after(async () => {
  db?.destroy();
  await emulator?.settle();
  await emulator?.stop();
  await new Promise((resolve) => issuerServer?.close(resolve));
});

const cli = fileURLToPath(new URL('../bin/nimbus.mjs', import.meta.url));

/** Runs `nimbus users …` against the emulator's DynamoDB Local, with `input` on stdin. */
function users(args: string[], input = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(
    process.execPath,
    [cli, 'users', ...args, '--table', emulator.tables.Users ?? '', '--endpoint', emulator.dynamoEndpoint],
    { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, AWS_ACCESS_KEY_ID: '', AWS_PROFILE: '' } },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk;
  });
  child.stdin.end(input);
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

const token = (claims: Record<string, unknown>, expires: string | number = '5m') =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(issuer)
    .setIssuedAt()
    .setExpirationTime(expires)
    .sign(signingKey);

/** The CONNACK code a raw CONNECT with these credentials gets (3.1.1 return code). */
async function connackFor(clientId: string, username: string | undefined, password: string): Promise<number> {
  const client = await RawClient.open(emulator.url);
  client.send(connectPacket(clientId, { username, password: Buffer.from(password) }));
  const code = (await client.next('connack')).returnCode ?? -1;
  client.close();
  await client.closed;
  return code;
}

describe('nimbus users against the emulator', () => {
  test('add stores a $7$ hash (never the password), read from stdin; add again changes it', async () => {
    const added = await users(['add', 'alice'], 'first-pw\n');
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stderr, /Added user "alice"/);
    const changed = await users(['add', 'alice'], 'alice-pw\n');
    assert.equal(changed.code, 0, changed.stderr);
    assert.match(changed.stderr, /Changed the password of user "alice"/);
    const { Item } = await db.send(
      new GetCommand({ TableName: emulator.tables.Users, Key: { username: 'alice' } }),
    );
    assert.ok(parseMosquittoHash(String(Item?.passwordHash)), 'a $7$ hash');
    assert.doesNotMatch(JSON.stringify(Item), /alice-pw|first-pw/);
  });

  test('list prints user names; remove of a missing user fails with a message; no password, no change', async () => {
    assert.equal((await users(['add', 'bob'], 'bob-pw\n')).code, 0);
    const listed = await users(['list']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(
      listed.stdout
        .trim()
        .split('\n')
        .map((line) => line.split('\t')[0])
        .sort(),
      ['alice', 'bob'],
    );
    const missing = await users(['remove', 'nobody']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no user "nobody"/);
    const empty = await users(['add', 'carol'], '');
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /no password on stdin/);
    const usage = await users(['add']);
    assert.equal(usage.code, 2);
  });
});

describe('CONNECT with the users table and tokens', () => {
  test('a table user connects with MQTT.js, and a token holder too; they exchange a message', async () => {
    const alice = await connectClient(emulator.url, {
      clientId: 'table-alice',
      username: 'alice',
      password: 'alice-pw',
    });
    const received = inbox(alice);
    await alice.subscribeAsync('scale/+', { qos: 1 });
    const device = await connectClient(emulator.url, {
      clientId: 'jwt-device',
      username: 'ignored',
      password: await token({ username: 'sensor-9' }),
      protocolVersion: 5,
    });
    await device.publishAsync('scale/temp', '21', { qos: 1 });
    await eventually('delivery to the table user', () => received.length === 1);
    assert.equal(received[0]?.payload, '21');
    await device.endAsync();
    await alice.endAsync();
  });

  test('a wrong password, an unknown user, an expired or foreign token: return code 4', async () => {
    assert.equal(await connackFor('bad-1', 'alice', 'bob-pw'), 4);
    assert.equal(await connackFor('bad-2', 'mallory', 'x'), 4);
    const expired = await token({ username: 'sensor-9' }, Math.floor(Date.now() / 1000) - 600);
    assert.equal(await connackFor('bad-3', 'sensor-9', expired), 4);
    const foreign = await new SignJWT({ username: 'sensor-9' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(issuer)
      .setExpirationTime('5m')
      .sign((await generateKeyPair('ES256')).privateKey);
    assert.equal(await connackFor('bad-4', 'sensor-9', foreign), 4);
  });

  test('a user removed with nimbus users can no longer connect', async () => {
    assert.equal(await connackFor('bob-1', 'bob', 'bob-pw'), 0);
    const removed = await users(['remove', 'bob']);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(await connackFor('bob-2', 'bob', 'bob-pw'), 4);
  });
});

describe('emulator command line', () => {
  const emulatorCli = fileURLToPath(new URL('../emulator/cli.ts', import.meta.url));
  const run = (args: string[]) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', emulatorCli, ...args], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk;
      });
      child.once('close', (code) => resolve({ code, stderr }));
    });

  test('--jwks-url without --jwt-issuer, or a bad issuer, is refused before anything starts', async () => {
    const orphan = await run(['--jwks-url', 'http://127.0.0.1:1/keys']);
    assert.equal(orphan.code, 2);
    assert.match(orphan.stderr, /need --jwt-issuer/);
    const bad = await run(['--jwt-issuer', 'issuer.example']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /issuer must be a URL/);
  });
});
