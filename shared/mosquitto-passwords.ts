/**
 * Mosquitto's password file (`password_file`, written by `mosquitto_passwd`): one `user:hash` line
 * per user, the hash either `$7$<iterations>$<salt>$<hash>` (PBKDF2-HMAC-SHA512, what
 * `mosquitto_passwd` 2.x writes) or `$6$<salt>$<hash>` (SHA-512 of the password then the salt,
 * Mosquitto 1.x and `-H sha512`), salt and hash in standard base64. No I/O, no AWS types.
 */
import { createHash } from 'node:crypto';
import {
  defaultHashIterations,
  type MosquittoHash,
  maxHashIterations,
  parseMosquittoHash,
  verifyMosquittoHash,
} from './auth/mosquitto-hash.js';
import type { ScramCredentialSource, ScramCredentials } from './auth/scram.js';
import {
  type AuthDecision,
  type Authenticator,
  type Credentials,
  constantTimeEqual,
  passwordRefusal,
} from './auth.js';

/** One user's stored secret: a `$7$` hash (shared/auth/mosquitto-hash.ts) or a legacy `$6$` one. */
export type PasswordEntry =
  | ({ readonly kind: 'pbkdf2-sha512' } & MosquittoHash)
  | { readonly kind: 'sha512'; readonly salt: Buffer; readonly hash: Buffer };

const base64 = /^[A-Za-z0-9+/]+={0,2}$/;

function decode(field: string | undefined, what: string, line: number): Buffer {
  if (field === undefined || !base64.test(field))
    throw new Error(`password file line ${line}: ${what} is not base64`);
  return Buffer.from(field, 'base64');
}

/** Reads one hash field (`$7$…` or `$6$…`); `line` is for the message. */
export function parsePasswordEntry(text: string, line = 1): PasswordEntry {
  const fields = text.split('$');
  if (fields[0] !== '' || (fields[1] !== '7' && fields[1] !== '6')) {
    throw new Error(
      `password file line ${line}: the hash must start with $7$ (PBKDF2-SHA512) or $6$ (SHA-512); plain-text passwords are not read: hash them with \`npx nimbus passwd\` or \`mosquitto_passwd -U\``,
    );
  }
  if (fields[1] === '6') {
    if (fields.length !== 4) throw new Error(`password file line ${line}: expected $6$<salt>$<hash>`);
    return { kind: 'sha512', salt: decode(fields[2], 'salt', line), hash: decode(fields[3], 'hash', line) };
  }
  const parsed = parseMosquittoHash(text);
  if (!parsed) {
    throw new Error(
      `password file line ${line}: expected $7$<iterations 1..${maxHashIterations}>$<base64 salt>$<base64 64-byte hash>`,
    );
  }
  return { kind: 'pbkdf2-sha512', ...parsed };
}

/**
 * Parses a password file into users and their hashes, throwing with the line number on anything
 * else, so a damaged file stops the broker at start. Empty lines and `#` comments are skipped.
 *
 * @example
 * parseMosquittoPasswords('alice:$7$101$mo7x…$92az…==\n').get('alice')?.kind; // 'pbkdf2-sha512'
 */
export function parseMosquittoPasswords(text: string): Map<string, PasswordEntry> {
  const users = new Map<string, PasswordEntry>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === '' || raw.startsWith('#')) return;
    const colon = raw.indexOf(':');
    if (colon <= 0) throw new Error(`password file line ${line}: expected <user>:<hash>`);
    users.set(raw.slice(0, colon), parsePasswordEntry(raw.slice(colon + 1).trim(), line));
  });
  return users;
}

/**
 * Whether a password matches a stored entry, compared in constant time; `$7$` through the one
 * PBKDF2 implementation (shared/auth/mosquitto-hash.ts), off the main thread.
 *
 * @example
 * await verifyPasswordEntry(parsePasswordEntry('$6$c2mG…$LTvg…=='), Buffer.from('legacy-pass')); // true
 */
export async function verifyPasswordEntry(stored: PasswordEntry, password: Uint8Array): Promise<boolean> {
  if (stored.kind === 'pbkdf2-sha512') return verifyMosquittoHash(stored, password);
  return constantTimeEqual(createHash('sha512').update(password).update(stored.salt).digest(), stored.hash);
}

/**
 * The file's text with `user`'s entry added or replaced, other lines kept as they were.
 *
 * @example
 * withPasswordEntry('bob:$7$…\n', 'alice', '$7$…'); // 'bob:$7$…\nalice:$7$…\n'
 */
export function withPasswordEntry(text: string, user: string, entry: string): string {
  if (user === '' || user.includes(':') || /[\r\n]/.test(user)) {
    throw new Error('a user name must be non-empty and hold no ":" or line break');
  }
  const lines = text.split(/\r?\n/).filter((line, i, all) => !(line === '' && i === all.length - 1));
  const at = lines.findIndex((line) => line.slice(0, line.indexOf(':')) === user && line.includes(':'));
  if (at === -1) lines.push(`${user}:${entry}`);
  else lines[at] = `${user}:${entry}`;
  return `${lines.join('\n')}\n`;
}

/** Compared against when the user is unknown, so unknown and known users cost the same. */
function decoyFor(users: ReadonlyMap<string, PasswordEntry>): PasswordEntry {
  // As dear as the file's dearest entry (mosquitto_passwd writes 101 rounds, `nimbus passwd` more),
  // so an unknown user is not told apart by a quicker refusal.
  const counts = [...users.values()].map((entry) => (entry.kind === 'pbkdf2-sha512' ? entry.iterations : 1));
  const iterations = counts.length > 0 ? Math.max(...counts) : defaultHashIterations;
  return { kind: 'pbkdf2-sha512', iterations, salt: Buffer.alloc(12), hash: Buffer.alloc(64) };
}

/**
 * Username/password authentication against a Mosquitto password file. The user is the CONNECT
 * user name. A CONNECT without a user name is "not authorized"; a wrong password or unknown user
 * "bad user name or password".
 *
 * @example
 * const auth = new MosquittoPasswordFile(readFileSync('passwd', 'utf8'));
 * await auth.authenticate({ clientId: 'c', username: 'alice', password: Buffer.from('alice-pass') }); // { ok: true, user: 'alice' }
 */
export class MosquittoPasswordFile implements Authenticator, ScramCredentialSource {
  private readonly users: ReadonlyMap<string, PasswordEntry>;
  /** Verified against for an unknown user. */
  private readonly decoy: PasswordEntry;

  constructor(text: string) {
    this.users = parseMosquittoPasswords(text);
    this.decoy = decoyFor(this.users);
  }

  /** How many users the file lists. */
  get size(): number {
    return this.users.size;
  }

  /** SCRAM-SHA-512's credentials of a `$7$` user (shared/auth/scram.ts); a `$6$` hash cannot serve. */
  async scramCredentials(username: string): Promise<ScramCredentials | undefined> {
    const stored = this.users.get(username);
    if (stored?.kind !== 'pbkdf2-sha512') return undefined;
    return { salt: stored.salt, iterations: stored.iterations, saltedPassword: stored.hash };
  }

  async authenticate({ username, password }: Credentials): Promise<AuthDecision> {
    if (username === undefined || password === undefined) return passwordRefusal(username);
    const stored = this.users.get(username);
    const matches = await verifyPasswordEntry(stored ?? this.decoy, password);
    return stored && matches ? { ok: true, user: username } : passwordRefusal(username);
  }
}
