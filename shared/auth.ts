/**
 * Who may connect: the `Authenticator` port the CONNECT handler asks, and
 * `PasswordFile`, which checks MQTT CONNECT username/password against salted
 * SHA-256 hashes (docs/adr/0005-authentication.md). No AWS types here.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** What a CONNECT presents. The password is bytes: MQTT allows binary data [MQTT-3.1.3-11]. */
export interface Credentials {
  readonly clientId: string;
  readonly username?: string;
  readonly password?: Uint8Array;
  /** The client's address as the gateway saw it, for throttling failed logins. */
  readonly sourceIp?: string;
}

/**
 * What an authenticator decided. `user` is the identity ACLs and client-id ownership use (the
 * CONNECT user name for a password file; a token's subject for others). 'bad-credentials' answers
 * CONNACK 4 / 0x86, 'not-authorized' CONNACK 5 / 0x87.
 */
export type AuthDecision =
  | { readonly ok: true; readonly user?: string }
  | { readonly ok: false; readonly reason: 'bad-credentials' | 'not-authorized' };

/** Decides whether a CONNECT may proceed, and as whom. Absent from the broker context: everyone may, anonymously. */
export interface Authenticator {
  authenticate(credentials: Credentials): Promise<AuthDecision>;
}

/** Called with failures of the services an authenticator depends on (a JWKS, a Lambda hook). */
export type AuthErrorReporter = (message: string, error: unknown) => void;

/** Credentials were presented and did not hold: CONNACK 4 / 0x86. */
export const badCredentials: AuthDecision = { ok: false, reason: 'bad-credentials' };
/** Nothing usable was presented, or the identity may not connect: CONNACK 5 / 0x87. */
export const notAuthorized: AuthDecision = { ok: false, reason: 'not-authorized' };

/**
 * The refusal of a user name/password check, the same for every authenticator that checks one: no
 * (or an empty) user name is "not authorized"; a wrong or missing password, or an unknown user, is
 * "bad user name or password".
 */
export function passwordRefusal(username: string | undefined): AuthDecision {
  return username === undefined || username === '' ? notAuthorized : badCredentials;
}

/** One user's stored secret: hex SHA-256 of the salt's text followed by the password's bytes. */
export interface PasswordHash {
  readonly sha256: string;
  readonly salt: string;
}

/** The users document, as `NIMBUS_AUTH_USERS` holds it. */
export interface PasswordDocument {
  readonly users: Readonly<Record<string, PasswordHash>>;
}

const hexDigest = /^[0-9a-f]{64}$/;
const hexSalt = /^[0-9a-f]{2,}$/;

function digest(salt: string, password: Uint8Array | string): Buffer {
  return createHash('sha256')
    .update(Buffer.from(salt, 'utf8'))
    .update(typeof password === 'string' ? Buffer.from(password, 'utf8') : password)
    .digest();
}

/**
 * The entry to store for a password: SHA-256 over the salt (its hex text, UTF-8) followed by the
 * password (UTF-8, or the bytes given). A random 16-byte salt unless one is given.
 *
 * @example
 * hashPassword('s3cret'); // { sha256: '9f2c…', salt: 'a41b…' }
 */
export function hashPassword(
  password: string | Uint8Array,
  salt = randomBytes(16).toString('hex'),
): PasswordHash {
  return { sha256: digest(salt, password).toString('hex'), salt };
}

/**
 * Compares two byte strings in time that depends only on their lengths; unequal lengths are
 * `false`, never an exception (`crypto.timingSafeEqual` throws on them).
 *
 * @example
 * constantTimeEqual(Buffer.from('ab'), Buffer.from('abc')); // false
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) {
    // Still do the work of a comparison, so a length mismatch is not faster than a content one.
    timingSafeEqual(a, a);
    return false;
  }
  return timingSafeEqual(a, b);
}

/**
 * Checks and returns a users document, throwing on anything that is not one: a configuration
 * mistake should stop the function at init, not refuse every client.
 *
 * @example
 * parsePasswordDocument('{"users":{"alice":{"sha256":"…64 hex…","salt":"a41b"}}}').users.alice;
 */
export function parsePasswordDocument(json: string | unknown): PasswordDocument {
  const document = typeof json === 'string' ? (JSON.parse(json) as unknown) : json;
  const users = (document as { users?: unknown } | null)?.users;
  if (typeof users !== 'object' || users === null || Array.isArray(users)) {
    throw new Error('The users document must be { "users": { "<username>": { "sha256", "salt" } } }');
  }
  for (const [name, entry] of Object.entries(users)) {
    const { sha256, salt } = (entry ?? {}) as Partial<PasswordHash>;
    if (typeof sha256 !== 'string' || !hexDigest.test(sha256)) {
      throw new Error(`User "${name}": sha256 must be 64 lowercase hex digits`);
    }
    if (typeof salt !== 'string' || !hexSalt.test(salt)) {
      throw new Error(`User "${name}": salt must be lowercase hex`);
    }
  }
  return { users: users as Record<string, PasswordHash> };
}

/** Hashed against when the username is unknown, so unknown and known users take the same time. */
const decoy = hashPassword('', '00000000000000000000000000000000');

/**
 * Username/password authentication against a users document of salted SHA-256 hashes. A CONNECT
 * without a username, without a password or with an unknown username is refused.
 *
 * @example
 * const auth = new PasswordFile({ users: { alice: hashPassword('s3cret') } });
 * await auth.authenticate({ clientId: 'c1', username: 'alice', password: Buffer.from('s3cret') }); // { ok: true, user: 'alice' }
 */
export class PasswordFile implements Authenticator {
  private readonly users: ReadonlyMap<string, { digest: Buffer; salt: string }>;

  constructor(document: PasswordDocument) {
    const checked = parsePasswordDocument(document);
    this.users = new Map(
      Object.entries(checked.users).map(([name, entry]) => [
        name,
        { digest: Buffer.from(entry.sha256, 'hex'), salt: entry.salt },
      ]),
    );
  }

  async authenticate({ username, password }: Credentials): Promise<AuthDecision> {
    if (username === undefined || password === undefined) return passwordRefusal(username);
    const user = this.users.get(username);
    const stored = user ?? { digest: Buffer.from(decoy.sha256, 'hex'), salt: decoy.salt };
    const matches = constantTimeEqual(digest(stored.salt, password), stored.digest);
    return user !== undefined && matches ? { ok: true, user: username } : passwordRefusal(username);
  }
}
