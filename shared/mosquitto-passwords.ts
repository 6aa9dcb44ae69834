/**
 * Mosquitto's password file (`password_file`, written by `mosquitto_passwd`): one `user:hash` line
 * per user, the hash either `$7$<iterations>$<salt>$<hash>` (PBKDF2-HMAC-SHA512, what
 * `mosquitto_passwd` 2.x writes) or `$6$<salt>$<hash>` (SHA-512 of the password then the salt,
 * Mosquitto 1.x and `-H sha512`), salt and hash in standard base64. No I/O, no AWS types.
 */
import { createHash, pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import {
  type AuthDecision,
  type Authenticator,
  type Credentials,
  constantTimeEqual,
  passwordRefusal,
} from './auth.js';

const pbkdf2Async = promisify(pbkdf2);

/** One user's stored secret. */
export type MosquittoHash =
  | {
      readonly kind: 'pbkdf2-sha512';
      readonly iterations: number;
      readonly salt: Buffer;
      readonly hash: Buffer;
    }
  | { readonly kind: 'sha512'; readonly salt: Buffer; readonly hash: Buffer };

/** PBKDF2 rounds `nimbus passwd` writes (mosquitto_passwd 2.0 writes 101; more costs an attacker more). */
export const defaultIterations = 1000;
/** More rounds than this is a damaged file, or one that would make every CONNECT a CPU burner. */
const maxIterations = 10_000_000;
const base64 = /^[A-Za-z0-9+/]+={0,2}$/;

function decode(field: string | undefined, what: string, line: number): Buffer {
  if (field === undefined || !base64.test(field))
    throw new Error(`password file line ${line}: ${what} is not base64`);
  return Buffer.from(field, 'base64');
}

/** Reads one hash field (`$7$…` or `$6$…`); `line` is for the message. */
export function parseMosquittoHash(text: string, line = 1): MosquittoHash {
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
  const iterations = Number(fields[2]);
  if (fields.length !== 5 || !Number.isInteger(iterations) || iterations < 1 || iterations > maxIterations) {
    throw new Error(`password file line ${line}: expected $7$<iterations 1..${maxIterations}>$<salt>$<hash>`);
  }
  return {
    kind: 'pbkdf2-sha512',
    iterations,
    salt: decode(fields[3], 'salt', line),
    hash: decode(fields[4], 'hash', line),
  };
}

/**
 * Parses a password file into users and their hashes, throwing with the line number on anything
 * else, so a damaged file stops the broker at start. Empty lines and `#` comments are skipped.
 *
 * @example
 * parseMosquittoPasswords('alice:$7$101$mo7x…$92az…==\n').get('alice')?.kind; // 'pbkdf2-sha512'
 */
export function parseMosquittoPasswords(text: string): Map<string, MosquittoHash> {
  const users = new Map<string, MosquittoHash>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === '' || raw.startsWith('#')) return;
    const colon = raw.indexOf(':');
    if (colon <= 0) throw new Error(`password file line ${line}: expected <user>:<hash>`);
    users.set(raw.slice(0, colon), parseMosquittoHash(raw.slice(colon + 1).trim(), line));
  });
  return users;
}

async function digestOf(stored: MosquittoHash, password: Uint8Array): Promise<Buffer> {
  if (stored.kind === 'sha512') return createHash('sha512').update(password).update(stored.salt).digest();
  return pbkdf2Async(password, stored.salt, stored.iterations, stored.hash.length, 'sha512');
}

/**
 * Whether a password matches a stored hash, compared in constant time.
 *
 * @example
 * await verifyMosquittoHash(parseMosquittoHash('$6$c2mG…$LTvg…=='), Buffer.from('legacy-pass')); // true
 */
export async function verifyMosquittoHash(stored: MosquittoHash, password: Uint8Array): Promise<boolean> {
  return constantTimeEqual(await digestOf(stored, password), stored.hash);
}

/**
 * A `$7$` entry for a password, as `mosquitto_passwd` writes it: 12 random salt bytes, a 64-byte
 * PBKDF2-HMAC-SHA512 hash.
 *
 * @example
 * await hashMosquittoPassword('s3cret'); // '$7$1000$mo7xE6SSwWzxiENQ$92az…=='
 */
export async function hashMosquittoPassword(
  password: string | Uint8Array,
  iterations = defaultIterations,
  salt: Buffer = randomBytes(12),
): Promise<string> {
  const hash = await pbkdf2Async(password, salt, iterations, 64, 'sha512');
  return `$7$${iterations}$${salt.toString('base64')}$${hash.toString('base64')}`;
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
const decoy: MosquittoHash = {
  kind: 'pbkdf2-sha512',
  iterations: defaultIterations,
  salt: Buffer.alloc(12),
  hash: Buffer.alloc(64),
};

/**
 * Username/password authentication against a Mosquitto password file. The user is the CONNECT
 * user name. A CONNECT without a user name is "not authorized"; a wrong password or unknown user
 * "bad user name or password".
 *
 * @example
 * const auth = new MosquittoPasswordFile(readFileSync('passwd', 'utf8'));
 * await auth.authenticate({ clientId: 'c', username: 'alice', password: Buffer.from('alice-pass') }); // { ok: true, user: 'alice' }
 */
export class MosquittoPasswordFile implements Authenticator {
  private readonly users: ReadonlyMap<string, MosquittoHash>;

  constructor(text: string) {
    this.users = parseMosquittoPasswords(text);
  }

  /** How many users the file lists. */
  get size(): number {
    return this.users.size;
  }

  async authenticate({ username, password }: Credentials): Promise<AuthDecision> {
    if (username === undefined || password === undefined) return passwordRefusal(username);
    const stored = this.users.get(username);
    const matches = await verifyMosquittoHash(stored ?? decoy, password);
    return stored && matches ? { ok: true, user: username } : passwordRefusal(username);
  }
}
