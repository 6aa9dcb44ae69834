import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { constantTimeEqual, hashPassword, PasswordFile, parsePasswordDocument } from '../shared/auth.js';
import { authUsersEnv, configFromEnv } from '../shared/config.js';
import { tableDefinitions } from '../shared/tables.js';

const bytes = (text: string) => Buffer.from(text, 'utf8');

describe('hashPassword', () => {
  test('is hex SHA-256 of the salt followed by the password', () => {
    const entry = hashPassword('s3cret', 'a41b');
    assert.deepEqual(entry, {
      sha256: createHash('sha256').update('a41bs3cret').digest('hex'),
      salt: 'a41b',
    });
  });

  test('picks a fresh random 16-byte salt each time', () => {
    const one = hashPassword('same');
    const two = hashPassword('same');
    assert.match(one.salt, /^[0-9a-f]{32}$/);
    assert.notEqual(one.salt, two.salt);
    assert.notEqual(one.sha256, two.sha256);
  });
});

describe('constantTimeEqual', () => {
  test('equal bytes are equal, different bytes are not', () => {
    assert.equal(constantTimeEqual(bytes('abc'), bytes('abc')), true);
    assert.equal(constantTimeEqual(bytes('abc'), bytes('abd')), false);
  });

  test('unequal lengths are false, not an exception', () => {
    assert.equal(constantTimeEqual(bytes('ab'), bytes('abc')), false);
    assert.equal(constantTimeEqual(bytes(''), bytes('a')), false);
    assert.equal(constantTimeEqual(bytes('abcd'), bytes('a')), false);
  });
});

describe('PasswordFile', () => {
  const auth = new PasswordFile({ users: { alice: hashPassword('s3cret'), bob: hashPassword('') } });
  const check = async (username?: string, password?: Uint8Array) =>
    (await auth.authenticate({ clientId: 'c1', username, password })).ok;

  test('accepts the right username and password', async () => {
    assert.equal(await check('alice', bytes('s3cret')), true);
    assert.equal(await check('bob', bytes('')), true, 'an empty password is a password [MQTT-3.1.3-11]');
  });

  test('refuses a wrong password, of any length, without throwing', async () => {
    for (const password of ['', 's', 's3cre', 's3cret!', 'x'.repeat(70_000)]) {
      assert.equal(await check('alice', bytes(password)), false, `password of length ${password.length}`);
    }
  });

  test('refuses an unknown user, a missing username and a missing password', async () => {
    assert.equal(await check('mallory', bytes('s3cret')), false);
    assert.equal(await check(undefined, bytes('s3cret')), false);
    assert.equal(await check('alice', undefined), false);
    assert.equal(await check('__proto__', bytes('')), false);
  });

  test('compares password bytes, so binary passwords work', async () => {
    const binary = Uint8Array.from([0, 255, 128, 7]);
    const file = new PasswordFile({ users: { dev: hashPassword(binary) } });
    assert.deepEqual(await file.authenticate({ clientId: 'd', username: 'dev', password: binary }), {
      ok: true,
      user: 'dev',
    });
  });

  test('a malformed users document is refused at construction', () => {
    assert.throws(() => new PasswordFile({ users: { a: { sha256: 'abc', salt: '00' } } }), /sha256/);
    assert.throws(
      () => new PasswordFile({ users: { a: { sha256: 'a'.repeat(64), salt: 'not hex' } } }),
      /salt/,
    );
    assert.throws(() => parsePasswordDocument('{"alice":{}}'), /users/);
    assert.throws(() => parsePasswordDocument('not json'));
  });
});

describe('configuration', () => {
  const base = Object.fromEntries([
    ...tableDefinitions.map((t) => [t.envVar, t.id]),
    ['NIMBUS_MANAGEMENT_ENDPOINT', 'http://localhost'],
  ]);

  test(`${authUsersEnv} unset: no authentication`, () => {
    assert.equal(configFromEnv(base).authUsers, undefined);
  });

  test(`${authUsersEnv} holds the users document`, () => {
    const users = { alice: hashPassword('s3cret') };
    const config = configFromEnv({ ...base, [authUsersEnv]: JSON.stringify({ users }) });
    assert.deepEqual(config.authUsers, { users });
  });

  test(`a malformed ${authUsersEnv} stops the function at init`, () => {
    assert.throws(() => configFromEnv({ ...base, [authUsersEnv]: '{"users": 1}' }), new RegExp(authUsersEnv));
  });
});
