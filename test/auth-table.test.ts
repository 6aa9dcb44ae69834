import assert from 'node:assert/strict';
import { pbkdf2Sync } from 'node:crypto';
import { describe, test } from 'node:test';
import { AuthenticatorChain } from '../shared/auth/chain.js';
import {
  defaultHashIterations,
  hashMosquittoPassword,
  parseMosquittoHash,
  verifyMosquittoHash,
} from '../shared/auth/mosquitto-hash.js';
import { TableAuthenticator } from '../shared/auth/table-authenticator.js';
import { MemoryUserDirectory } from '../shared/auth/user-directory.js';
import type { AuthDecision, Authenticator } from '../shared/auth.js';

const pw = (text: string) => Buffer.from(text, 'utf8');

describe('$7$ hashes (Mosquitto PBKDF2-SHA512)', () => {
  test('a new hash has the default iterations, a 12-byte salt and a 64-byte hash, and verifies', async () => {
    const hash = await hashMosquittoPassword('s3cret');
    const parsed = parseMosquittoHash(hash);
    assert.equal(parsed?.iterations, defaultHashIterations);
    assert.equal(parsed?.salt.length, 12);
    assert.equal(parsed?.hash.length, 64);
    assert.equal(await verifyMosquittoHash(hash, 's3cret'), true);
    assert.equal(await verifyMosquittoHash(hash, 's3cret '), false);
  });

  test('a hash as mosquitto_passwd writes it (101 iterations) verifies: the format is PBKDF2-SHA512 of the raw salt', async () => {
    const salt = Buffer.from('0123456789ab');
    const derived = pbkdf2Sync('device-pw', salt, 101, 64, 'sha512');
    const line = `$7$101$${salt.toString('base64')}$${derived.toString('base64')}`;
    assert.equal(await verifyMosquittoHash(line, pw('device-pw')), true);
    assert.equal(await verifyMosquittoHash(line, pw('device-pX')), false);
  });

  test('binary passwords hash and verify as bytes [MQTT-3.1.3-11]', async () => {
    const bytes = Uint8Array.from([0, 255, 1, 128]);
    assert.equal(await verifyMosquittoHash(await hashMosquittoPassword(bytes, 50), bytes), true);
  });

  test('anything but a well-formed $7$ hash is refused, never verified', async () => {
    const good = await hashMosquittoPassword('x', 10);
    const [, , , salt, hash] = good.split('$');
    for (const bad of [
      '',
      'plain',
      `$6$${salt}$${hash}`,
      `$7$0$${salt}$${hash}`,
      `$7$010$${salt}$${hash}`,
      `$7$99999999999$${salt}$${hash}`,
      `$7$10$$${hash}`,
      `$7$10$${salt}$${hash.slice(4)}`,
      `$7$10$${salt}$${hash}$`,
      `$7$10$${salt}!$${hash}`,
    ]) {
      assert.equal(parseMosquittoHash(bad), undefined, bad);
      assert.equal(await verifyMosquittoHash(bad, 'x'), false, bad);
    }
  });

  test('an iteration count out of range is refused when hashing', async () => {
    await assert.rejects(hashMosquittoPassword('x', 0), /iterations/);
    await assert.rejects(hashMosquittoPassword('x', 1.5), /iterations/);
  });
});

describe('TableAuthenticator', () => {
  const setup = async () => {
    const directory = new MemoryUserDirectory([
      { username: 'alice', passwordHash: await hashMosquittoPassword('alice-pw', 100) },
      { username: 'broken', passwordHash: 'not a hash' },
    ]);
    return { directory, auth: new TableAuthenticator(directory) };
  };

  test('the right password: ok, and the user is the user name', async () => {
    const { auth } = await setup();
    assert.deepEqual(
      await auth.authenticate({ clientId: 'c', username: 'alice', password: pw('alice-pw') }),
      {
        ok: true,
        user: 'alice',
      },
    );
  });

  test('a wrong password, an unknown user, an unreadable stored hash: bad-credentials, each after a lookup', async () => {
    const { auth, directory } = await setup();
    const refused = { ok: false, reason: 'bad-credentials' };
    assert.deepEqual(
      await auth.authenticate({ clientId: 'c', username: 'alice', password: pw('nope') }),
      refused,
    );
    assert.deepEqual(
      await auth.authenticate({ clientId: 'c', username: 'mallory', password: pw('x') }),
      refused,
    );
    assert.deepEqual(
      await auth.authenticate({ clientId: 'c', username: 'broken', password: pw('x') }),
      refused,
    );
    assert.deepEqual(directory.lookups, ['alice', 'mallory', 'broken']);
  });

  test('a password equal to the decoy never lets an unknown user in', async () => {
    const { auth } = await setup();
    for (const password of [pw(''), Buffer.alloc(64), pw('alice-pw')]) {
      const decision = await auth.authenticate({ clientId: 'c', username: 'nobody', password });
      assert.equal(decision.ok, false);
    }
  });

  test('a user name longer than a table key allows is refused without a lookup (it could only fail)', async () => {
    const { auth, directory } = await setup();
    const decision = await auth.authenticate({ clientId: 'c', username: 'é'.repeat(600), password: pw('x') });
    assert.deepEqual(decision, { ok: false, reason: 'bad-credentials' });
    assert.deepEqual(directory.lookups, []);
  });

  test('no user name: not-authorized; no password: bad-credentials; neither looked up', async () => {
    const { auth, directory } = await setup();
    const refused = { ok: false, reason: 'not-authorized' };
    assert.deepEqual(await auth.authenticate({ clientId: 'c', password: pw('alice-pw') }), refused);
    assert.deepEqual(await auth.authenticate({ clientId: 'c', username: '', password: pw('x') }), refused);
    assert.deepEqual(await auth.authenticate({ clientId: 'c', username: 'alice' }), {
      ok: false,
      reason: 'bad-credentials',
    });
    assert.deepEqual(directory.lookups, []);
  });
});

describe('AuthenticatorChain', () => {
  const answering = (decision: AuthDecision, asked: string[], name: string): Authenticator => ({
    async authenticate() {
      asked.push(name);
      return decision;
    },
  });

  test('the first that says ok wins; the rest are not asked', async () => {
    const asked: string[] = [];
    const chain = new AuthenticatorChain([
      answering({ ok: false, reason: 'not-authorized' }, asked, 'a'),
      answering({ ok: true, user: 'bob' }, asked, 'b'),
      answering({ ok: true, user: 'carol' }, asked, 'c'),
    ]);
    assert.deepEqual(await chain.authenticate({ clientId: 'x' }), { ok: true, user: 'bob' });
    assert.deepEqual(asked, ['a', 'b']);
  });

  test('all refuse: bad-credentials wins over not-authorized, in any order', async () => {
    const asked: string[] = [];
    const bad = answering({ ok: false, reason: 'bad-credentials' }, asked, 'bad');
    const none = answering({ ok: false, reason: 'not-authorized' }, asked, 'none');
    for (const order of [
      [bad, none],
      [none, bad],
    ]) {
      assert.deepEqual(await new AuthenticatorChain(order).authenticate({ clientId: 'x' }), {
        ok: false,
        reason: 'bad-credentials',
      });
    }
    assert.deepEqual(await new AuthenticatorChain([none, none]).authenticate({ clientId: 'x' }), {
      ok: false,
      reason: 'not-authorized',
    });
  });
});
