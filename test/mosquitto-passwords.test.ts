import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { hashMosquittoPassword } from '../shared/auth/mosquitto-hash.js';
import {
  MosquittoPasswordFile,
  parseMosquittoPasswords,
  parsePasswordEntry,
  verifyPasswordEntry,
  withPasswordEntry,
} from '../shared/mosquitto-passwords.js';

// test/fixtures/mosquitto.passwd was written by mosquitto_passwd 2.0.11:
//   mosquitto_passwd -c -b mosquitto.passwd alice alice-pass
//   mosquitto_passwd -b mosquitto.passwd bob bob-pass
//   mosquitto_passwd -b mosquitto.passwd carol carol-pass
//   mosquitto_passwd -H sha512 -b mosquitto.passwd legacy legacy-pass      ($6$)
//   mosquitto_passwd -b mosquitto.passwd 'ünï cödé' 'pässwörd ✓'
const fixture = readFileSync(new URL('./fixtures/mosquitto.passwd', import.meta.url), 'utf8');
const file = new MosquittoPasswordFile(fixture);
const login = (username: string | undefined, password: string | undefined) =>
  file.authenticate({
    clientId: 'c',
    username,
    password: password === undefined ? undefined : Buffer.from(password),
  });

describe('Mosquitto password file', () => {
  test('reads what mosquitto_passwd wrote: $7$ (PBKDF2-SHA512) and $6$ (SHA-512) entries', async () => {
    const users = parseMosquittoPasswords(fixture);
    assert.equal(users.get('alice')?.kind, 'pbkdf2-sha512');
    assert.equal(users.get('legacy')?.kind, 'sha512');
    assert.deepEqual(await login('alice', 'alice-pass'), { ok: true, user: 'alice' });
    assert.deepEqual(await login('legacy', 'legacy-pass'), { ok: true, user: 'legacy' });
    assert.deepEqual(await login('ünï cödé', 'pässwörd ✓'), { ok: true, user: 'ünï cödé' });
  });

  test('a wrong password or unknown user is bad-credentials; no user name is not-authorized', async () => {
    assert.deepEqual(await login('alice', 'bob-pass'), { ok: false, reason: 'bad-credentials' });
    assert.deepEqual(await login('alice', ''), { ok: false, reason: 'bad-credentials' });
    assert.deepEqual(await login('alice', undefined), { ok: false, reason: 'bad-credentials' });
    assert.deepEqual(await login('legacy', 'legacy-pasS'), { ok: false, reason: 'bad-credentials' });
    assert.deepEqual(await login('mallory', 'alice-pass'), { ok: false, reason: 'bad-credentials' });
    assert.deepEqual(await login(undefined, 'alice-pass'), { ok: false, reason: 'not-authorized' });
  });

  test('entries written here verify, and another salt gives another entry', async () => {
    const entry = await hashMosquittoPassword('s3cret', 101);
    assert.match(entry, /^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/);
    assert.equal(await verifyPasswordEntry(parsePasswordEntry(entry), Buffer.from('s3cret')), true);
    assert.equal(await verifyPasswordEntry(parsePasswordEntry(entry), Buffer.from('s3creT')), false);
    assert.notEqual(entry, await hashMosquittoPassword('s3cret', 101));
  });

  test('plain-text and damaged entries are refused with their line number', () => {
    assert.throws(() => parseMosquittoPasswords('alice:alice-pass'), /line 1: .*plain-text/);
    assert.throws(() => parseMosquittoPasswords('\nbob:$7$abc$x$y'), /line 2: expected \$7\$/);
    assert.throws(() => parseMosquittoPasswords('bob:$6$!!$x'), /line 1: salt is not base64/);
    assert.throws(() => parseMosquittoPasswords('no colon here'), /line 1: expected <user>:<hash>/);
  });

  test('withPasswordEntry adds a user or replaces its line, keeping the others', () => {
    const added = withPasswordEntry('bob:$6$a$b\n', 'alice', '$7$1$c$d');
    assert.equal(added, 'bob:$6$a$b\nalice:$7$1$c$d\n');
    assert.equal(withPasswordEntry(added, 'bob', '$7$1$e$f'), 'bob:$7$1$e$f\nalice:$7$1$c$d\n');
    assert.equal(withPasswordEntry('', 'alice', '$7$1$c$d'), 'alice:$7$1$c$d\n');
    assert.throws(() => withPasswordEntry('', 'a:b', 'x'), /":"/);
  });
});
