import assert from 'node:assert/strict';
import { test } from 'node:test';
import { enhancedMethods } from '../shared/auth/enhanced.js';
import { hashMosquittoPassword } from '../shared/auth/mosquitto-hash.js';
import { directoryScramSource, ScramAuthenticator, scramSha512 } from '../shared/auth/scram.js';
import { MemoryUserDirectory } from '../shared/auth/user-directory.js';
import { MosquittoPasswordFile } from '../shared/mosquitto-passwords.js';
import { scramClient } from './support/scram-client.js';

const text = (data: Uint8Array | undefined) => Buffer.from(data ?? []).toString('utf8');
const bytes = (s: string) => Buffer.from(s, 'utf8');

async function passwordFile() {
  return new MosquittoPasswordFile(`alice:${await hashMosquittoPassword('alice-pass', 1000)}\n`);
}

/** Runs the whole exchange; returns the last step and the client. */
async function exchange(scram: ScramAuthenticator, user: string, password: string) {
  const client = scramClient(user, password);
  const first = await scram.start(scramSha512, bytes(client.first), { clientId: 'c1' });
  assert.equal(first.step, 'continue');
  if (first.step !== 'continue') throw new Error('unreachable');
  const last = await scram.continue(scramSha512, first.state, bytes(client.final(text(first.data))), {
    clientId: 'c1',
  });
  return { last, client };
}

test('SCRAM-SHA-512 against a Mosquitto $7$ hash: the right password succeeds and the server proves itself', async () => {
  const { last, client } = await exchange(
    new ScramAuthenticator(await passwordFile()),
    'alice',
    'alice-pass',
  );
  assert.equal(last.step, 'success');
  if (last.step !== 'success') return;
  assert.equal(last.user, 'alice');
  assert.ok(client.verify(text(last.data)), 'server-final verifies');
});

test('SCRAM-SHA-512 against the users table entry', async () => {
  const directory = new MemoryUserDirectory([
    { username: 'bob', passwordHash: await hashMosquittoPassword('bob-pass', 1000) },
  ]);
  const { last } = await exchange(new ScramAuthenticator(directoryScramSource(directory)), 'bob', 'bob-pass');
  assert.equal(last.step, 'success');
});

test('a wrong password, or an unknown user, fails at the proof: bad credentials', async () => {
  const scram = new ScramAuthenticator(await passwordFile());
  assert.deepEqual((await exchange(scram, 'alice', 'wrong')).last, {
    step: 'failure',
    reason: 'bad-credentials',
  });
  // An unknown user gets a server-first like anyone's (a salt that does not change between tries).
  const one = await scram.start(scramSha512, bytes(scramClient('mallory', 'x').first), { clientId: 'c' });
  const two = await scram.start(scramSha512, bytes(scramClient('mallory', 'y').first), { clientId: 'c' });
  assert.ok(one.step === 'continue' && two.step === 'continue');
  const salt = (step: typeof one) => (step.step === 'continue' ? text(step.data).split(',')[1] : '');
  assert.equal(salt(one), salt(two));
  assert.equal((await exchange(scram, 'mallory', 'x')).last.step, 'failure');
});

test('malformed or unsupported client-first: not authorized (channel binding, authzid, mandatory extension, no nonce)', async () => {
  const scram = new ScramAuthenticator(await passwordFile());
  for (const first of [
    '',
    'p=tls-unique,,n=alice,r=abc',
    'n,a=bob,n=alice,r=abc',
    'n,,m=x,n=alice,r=abc',
    'n,,n=alice',
    'n,,n=al=ice,r=abc',
  ]) {
    assert.deepEqual(
      await scram.start(scramSha512, bytes(first), { clientId: 'c' }),
      {
        step: 'failure',
        reason: 'not-authorized',
      },
      first,
    );
  }
  // The CONNECT's User Name must be the SCRAM user.
  assert.equal(
    (
      await scram.start(scramSha512, bytes(scramClient('alice', 'p').first), {
        clientId: 'c',
        username: 'bob',
      })
    ).step,
    'failure',
  );
});

test('client-final with a nonce or channel binding other than agreed: not authorized', async () => {
  const scram = new ScramAuthenticator(await passwordFile());
  const client = scramClient('alice', 'alice-pass');
  const first = await scram.start(scramSha512, bytes(client.first), { clientId: 'c' });
  if (first.step !== 'continue') throw new Error('expected continue');
  const final = client.final(text(first.data));
  const otherNonce = final.replace(/r=[^,]+/, 'r=somethingelse');
  const otherBinding = final.replace(/c=[^,]+/, `c=${Buffer.from('y,,').toString('base64')}`);
  for (const bad of [otherNonce, otherBinding, 'garbage'])
    assert.equal(
      (await scram.continue(scramSha512, first.state, bytes(bad), { clientId: 'c' })).step,
      'failure',
    );
});

test('enhancedMethods routes by method; an unknown method is a bad method', async () => {
  const methods = enhancedMethods([new ScramAuthenticator(await passwordFile())]);
  assert.deepEqual(methods.methods, [scramSha512]);
  assert.deepEqual(await methods.start('KERBEROS', undefined, { clientId: 'c' }), {
    step: 'failure',
    reason: 'bad-method',
  });
});
