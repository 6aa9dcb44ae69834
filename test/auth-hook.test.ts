import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LambdaClient } from '@aws-sdk/client-lambda';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import {
  type AuthorizerInvoker,
  type AuthorizerRequest,
  HookAuthenticator,
} from '../shared/auth/authorizer-hook.js';
import { authenticatorFrom } from '../shared/auth/from-config.js';
import { LambdaAuthorizer } from '../shared/auth/lambda-authorizer.js';
import { authEnvironment, authSettingsFromEnv } from '../shared/auth/settings.js';
import { hashPassword } from '../shared/auth.js';
import { configFromEnv } from '../shared/config.js';
import { functionEnvironment } from '../shared/function-environment.js';
import { tableDefinitions } from '../shared/tables.js';

/** An authorizer that records what it was asked and answers with `answer`. */
class FakeAuthorizer implements AuthorizerInvoker {
  readonly requests: AuthorizerRequest[] = [];
  constructor(private readonly answer: (request: AuthorizerRequest) => unknown) {}
  async invoke(request: AuthorizerRequest): Promise<unknown> {
    this.requests.push(request);
    return this.answer(request);
  }
}

describe('HookAuthenticator', () => {
  test('the hook gets the client id, user name, base64 password and source address', async () => {
    const hook = new FakeAuthorizer(() => ({ allow: true }));
    const password = Uint8Array.from([0, 1, 254, 255]);
    await new HookAuthenticator(hook).authenticate({
      clientId: 'c1',
      username: 'u',
      password,
      sourceIp: '192.0.2.7',
    });
    assert.deepEqual(hook.requests, [
      { clientId: 'c1', username: 'u', password: 'AAH+/w==', sourceIp: '192.0.2.7' },
    ]);
  });

  test('allow: ok, as the user the hook names, else the user name', async () => {
    const named = new HookAuthenticator(new FakeAuthorizer(() => ({ allow: true, user: 'tenant-a/dev-1' })));
    assert.deepEqual(await named.authenticate({ clientId: 'c', username: 'u' }), {
      ok: true,
      user: 'tenant-a/dev-1',
    });
    const plain = new HookAuthenticator(new FakeAuthorizer(() => ({ allow: true })));
    assert.deepEqual(await plain.authenticate({ clientId: 'c', username: 'u' }), { ok: true, user: 'u' });
    assert.deepEqual(await plain.authenticate({ clientId: 'c' }), { ok: true });
  });

  test('deny: not-authorized, or the reason the hook gives', async () => {
    const deny = new HookAuthenticator(new FakeAuthorizer(() => ({ allow: false })));
    assert.deepEqual(await deny.authenticate({ clientId: 'c' }), { ok: false, reason: 'not-authorized' });
    const bad = new HookAuthenticator(
      new FakeAuthorizer(() => ({ allow: false, reason: 'bad-credentials' })),
    );
    assert.deepEqual(await bad.authenticate({ clientId: 'c' }), { ok: false, reason: 'bad-credentials' });
  });

  test('a hook that fails or answers nonsense refuses the client and is reported (fail closed)', async () => {
    for (const answer of [
      () => {
        throw new Error('boom');
      },
      () => undefined,
      () => ({ allow: 'yes' }),
      () => ({ allow: true, user: 42 }),
      () => ({ allow: true, user: '' }),
      () => ({ allow: false, reason: 'banned' }),
      () => 'true',
    ]) {
      const reported: unknown[] = [];
      const auth = new HookAuthenticator(new FakeAuthorizer(answer), (_message, error) =>
        reported.push(error),
      );
      assert.deepEqual(await auth.authenticate({ clientId: 'c', username: 'u' }), {
        ok: false,
        reason: 'not-authorized',
      });
      assert.equal(reported.length, 1);
    }
  });
});

describe('LambdaAuthorizer', () => {
  const lambda = (result: { Payload?: Uint8Array; FunctionError?: string }, sent: unknown[] = []) =>
    ({
      send: async (command: { input: unknown }) => {
        sent.push(command.input);
        return result;
      },
    }) as unknown as LambdaClient;

  test('invokes the function synchronously with the request as JSON and returns its JSON answer', async () => {
    const sent: Array<{ FunctionName?: string; InvocationType?: string; Payload?: Uint8Array }> = [];
    const hook = new LambdaAuthorizer(lambda({ Payload: Buffer.from('{"allow":true}') }, sent), 'arn:fn');
    assert.deepEqual(await hook.invoke({ clientId: 'c', username: 'u' }), { allow: true });
    assert.equal(sent[0]?.FunctionName, 'arn:fn');
    assert.equal(sent[0]?.InvocationType, 'RequestResponse');
    assert.deepEqual(JSON.parse(Buffer.from(sent[0]?.Payload ?? []).toString()), {
      clientId: 'c',
      username: 'u',
    });
  });

  test("a function error is thrown with the function's message", async () => {
    const hook = new LambdaAuthorizer(
      lambda({ FunctionError: 'Unhandled', Payload: Buffer.from('{"errorMessage":"no db"}') }),
      'arn:fn',
    );
    await assert.rejects(hook.invoke({ clientId: 'c' }), /failed \(Unhandled\).*no db/);
  });
});

describe('authentication settings', () => {
  const tables = Object.fromEntries(tableDefinitions.map((t) => [t.id, `nimbus-${t.id}`])) as Parameters<
    typeof functionEnvironment
  >[1]['tables'];
  const auth = {
    usersTable: 'nimbus-Users',
    jwt: {
      issuer: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC',
      audience: ['app-1', 'app-2'],
      jwksUrl: 'https://keys.example/jwks.json',
      userClaim: 'cognito:username',
      algorithms: ['RS256'],
      clockToleranceSeconds: 10,
      username: 'match' as const,
    },
    authorizerFunction: 'arn:aws:lambda:eu-west-1:123456789012:function:authorize',
  };

  test("the message function's environment carries them, and configFromEnv reads back the same settings", () => {
    const env = functionEnvironment('message', { tables, managementEndpoint: 'http://x', auth });
    assert.equal(env.NIMBUS_USERS_TABLE, 'nimbus-Users');
    assert.equal(env.NIMBUS_JWT_AUDIENCE, 'app-1,app-2');
    assert.deepEqual(configFromEnv(env).auth, auth);
    for (const fn of ['connect', 'fanout', 'sweeper'] as const) {
      const other = functionEnvironment(fn, { tables, managementEndpoint: 'http://x', auth });
      assert.deepEqual(authSettingsFromEnv(other), {}, `${fn} gets no authentication settings`);
    }
  });

  test('bad JWT settings fail when the environment is built, naming the problem', () => {
    const jwt = (extra: object) => ({ jwt: { issuer: 'https://issuer.example', ...extra } });
    assert.throws(() => authEnvironment({ jwt: { issuer: 'issuer.example' } }), /issuer must be a URL/);
    assert.throws(() => authEnvironment(jwt({ algorithms: ['none'] })), /"none" or HMAC/);
    assert.throws(() => authEnvironment(jwt({ algorithms: ['HS256'] })), /"none" or HMAC/);
    assert.throws(() => authEnvironment(jwt({ clockToleranceSeconds: -1 })), /clock tolerance/);
    assert.throws(
      () => authSettingsFromEnv({ NIMBUS_JWT_ISSUER: 'https://i.example', NIMBUS_JWT_USERNAME: 'maybe' }),
      /"match" or "ignore"/,
    );
  });
});

describe('authenticatorFrom', () => {
  const db = () => ({}) as DynamoDBDocumentClient;

  test('nothing configured: no authenticator, anyone may connect', () => {
    assert.equal(authenticatorFrom({ auth: {} }, { db }), undefined);
  });

  test('the users document and the hook in one chain: a document user passes without asking the hook', async () => {
    const asked: string[] = [];
    const lambda = () =>
      ({
        send: async (command: { input: { Payload: Uint8Array } }) => {
          asked.push(JSON.parse(Buffer.from(command.input.Payload).toString()).clientId);
          return { Payload: Buffer.from('{"allow":false,"reason":"bad-credentials"}') };
        },
      }) as unknown as LambdaClient;
    const auth = authenticatorFrom(
      { authUsers: { users: { alice: hashPassword('pw') } }, auth: { authorizerFunction: 'arn:fn' } },
      { db, lambda },
    );
    assert.deepEqual(
      await auth?.authenticate({ clientId: 'one', username: 'alice', password: Buffer.from('pw') }),
      {
        ok: true,
        user: 'alice',
      },
    );
    assert.deepEqual(
      await auth?.authenticate({ clientId: 'two', username: 'alice', password: Buffer.from('no') }),
      {
        ok: false,
        reason: 'bad-credentials',
      },
    );
    assert.deepEqual(asked, ['two']);
  });
});
