import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import type { LambdaClient } from '@aws-sdk/client-lambda';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { IConnackPacket, ISubackPacket } from 'mqtt-packet';
import { AclAuthorizer, parseAcl } from '../shared/acl.js';
import type { AuthorizerRequest } from '../shared/auth/authorizer-hook.js';
import { authenticatorFrom } from '../shared/auth/from-config.js';
import { hashPassword } from '../shared/auth.js';
import { configFromEnv } from '../shared/config.js';
import { functionEnvironment } from '../shared/function-environment.js';
import { MemoryLoginAttempts, StoredLoginThrottle } from '../shared/login-throttle.js';
import { MosquittoPasswordFile } from '../shared/mosquitto-passwords.js';
import { securityFromConfig } from '../shared/security.js';
import { tableDefinitions } from '../shared/tables.js';
import { connectAs, sendPackets, subscribePacket, testContext } from './support/broker-context.js';

// The configured authenticator chain as the CONNECT handler sees it: one decision, naming the user
// and the reason, whichever authenticator answered; the login throttle in front of all of them.

const passwordFile = new MosquittoPasswordFile(
  readFileSync(new URL('./fixtures/mosquitto.passwd', import.meta.url), 'utf8'),
);
const db = () => ({}) as DynamoDBDocumentClient;
const pw = (text: string) => Buffer.from(text, 'utf8');

/** A Lambda client whose authorizer lets in password `device-secret` as user `device-<client id>`. */
function hookLambda(asked: AuthorizerRequest[]): () => LambdaClient {
  return () =>
    ({
      send: async (command: { input: { Payload: Uint8Array } }) => {
        const request = JSON.parse(Buffer.from(command.input.Payload).toString()) as AuthorizerRequest;
        asked.push(request);
        const allow = Buffer.from(request.password ?? '', 'base64').toString() === 'device-secret';
        const answer = allow ? { allow, user: `device-${request.clientId}` } : { allow };
        return { Payload: Buffer.from(JSON.stringify(answer)) };
      },
    }) as unknown as LambdaClient;
}

function chain(asked: AuthorizerRequest[]) {
  const auth = authenticatorFrom(
    {
      authUsers: { users: { dora: hashPassword('dora-pw') } },
      passwordFile,
      auth: { authorizerFunction: 'arn:aws:lambda:eu-west-1:123456789012:function:auth' },
    },
    { db, lambda: hookLambda(asked) },
  );
  assert.ok(auth);
  return auth;
}

describe('the authenticator chain', () => {
  test('users document, password file and hook each let their users in, as themselves', async () => {
    const asked: AuthorizerRequest[] = [];
    const auth = chain(asked);
    const login = (clientId: string, username: string | undefined, password: string) =>
      auth.authenticate({ clientId, username, password: pw(password), sourceIp: '198.51.100.4' });
    assert.deepEqual(await login('c1', 'dora', 'dora-pw'), { ok: true, user: 'dora' });
    assert.deepEqual(await login('c2', 'alice', 'alice-pass'), { ok: true, user: 'alice' });
    assert.deepEqual(asked, [], 'the hook is not asked for users the files know');
    assert.deepEqual(await login('sensor-9', undefined, 'device-secret'), {
      ok: true,
      user: 'device-sensor-9',
    });
    assert.deepEqual(asked, [
      { clientId: 'sensor-9', password: pw('device-secret').toString('base64'), sourceIp: '198.51.100.4' },
    ]);
  });

  test('all refuse: a wrong password is bad-credentials even when the hook says not-authorized', async () => {
    const auth = chain([]);
    assert.deepEqual(await auth.authenticate({ clientId: 'c', username: 'alice', password: pw('nope') }), {
      ok: false,
      reason: 'bad-credentials',
    });
    assert.deepEqual(await auth.authenticate({ clientId: 'c', password: pw('nope') }), {
      ok: false,
      reason: 'not-authorized',
    });
  });
});

describe('the chain behind CONNECT', () => {
  const acl = new AclAuthorizer(parseAcl('pattern readwrite users/%u/#\n'));

  test("the hook's user owns the session and is the ACL's %u; the hook sees the source address", async () => {
    const asked: AuthorizerRequest[] = [];
    const b = testContext({ authenticator: chain(asked), authorizer: acl });
    const connect = {
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clean: true,
      clientId: 'sensor-9',
      keepalive: 0,
      username: 'fleet',
      password: pw('device-secret'),
    } as const;
    await sendPackets(b, 'c1', [connect], 4, undefined, '203.0.113.9');
    assert.equal((b.gateway.packetsTo('c1')[0] as IConnackPacket).returnCode, 0);
    assert.deepEqual(
      asked.map((r) => [r.username, r.sourceIp]),
      [['fleet', '203.0.113.9']],
    );
    await sendPackets(b, 'c1', [subscribePacket(1, ['users/device-sensor-9/#', 1], ['users/fleet/#', 1])]);
    const suback = b.gateway.packetsTo('c1').find((p) => p.cmd === 'suback') as ISubackPacket;
    assert.deepEqual(suback.granted, [1, 0x80], "the user is the hook's, not the CONNECT user name");
    // The session belongs to the hook's user: a password-file user may not take its client id.
    const taken = await connectAs(b, 'c2', 'sensor-9', { username: 'alice', password: pw('alice-pass') });
    assert.equal((taken[0] as IConnackPacket).returnCode, 2);
  });

  test('the login throttle guards the whole chain: failures counted against the hook block the file too', async () => {
    const b = testContext({
      authenticator: chain([]),
      loginThrottle: new StoredLoginThrottle(new MemoryLoginAttempts(), () => 0),
    });
    for (let i = 0; i < 6; i++) {
      const reply = await connectAs(b, `x${i}`, `x${i}`, { username: 'alice', password: pw('guess') });
      assert.equal((reply[0] as IConnackPacket).returnCode, 4);
    }
    const right = await connectAs(b, 'y', 'y', { username: 'alice', password: pw('alice-pass') });
    assert.equal((right[0] as IConnackPacket).returnCode, 5, 'throttled, though the password is right');
  });

  test('every authentication method alone gets the login throttle; none gets neither', () => {
    const tables = Object.fromEntries(tableDefinitions.map((t) => [t.id, `nimbus-${t.id}`])) as Record<
      (typeof tableDefinitions)[number]['id'],
      string
    >;
    const security = (options: Parameters<typeof functionEnvironment>[1]['auth'] & object) =>
      securityFromConfig(
        configFromEnv(
          functionEnvironment('message', { tables, managementEndpoint: 'http://x', auth: options }),
        ),
        db(),
        () => 0,
      );
    const methods = [
      { usersTable: 'nimbus-Users' },
      { jwt: { issuer: 'https://issuer.example' } },
      { authorizerFunction: 'arn:aws:lambda:eu-west-1:123456789012:function:auth' },
    ];
    for (const method of methods) {
      const { authenticator, loginThrottle } = security(method);
      assert.ok(authenticator && loginThrottle, JSON.stringify(method));
    }
    assert.deepEqual(security({}), {});
  });
});
