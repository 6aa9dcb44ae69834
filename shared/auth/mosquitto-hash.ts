/**
 * Mosquitto's `$7$` password hash: PBKDF2-HMAC-SHA512, written
 * `$7$<iterations>$<base64 salt>$<base64 64-byte hash>` as `mosquitto_passwd` writes it, so one
 * format serves the Mosquitto password file (shared/mosquitto-passwords.ts) and the users table.
 * The one implementation of the scheme. No AWS types here.
 */
import { pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const derive = promisify(pbkdf2);

/**
 * Iterations of new hashes. Lambda gives a 256 MB function about a seventh of a vCPU, so 10,000
 * PBKDF2-SHA512 rounds (about 10 ms on one core) cost about 50–100 ms per CONNECT there: slow enough
 * to make offline guessing 10,000 times dearer than one SHA-256, cheap enough for CONNECT latency.
 * `mosquitto_passwd` uses 101; both verify here, since the count travels in the hash.
 */
export const defaultHashIterations = 10_000;
/** Above this a stored hash is refused rather than verified: a typo must not cost seconds per CONNECT. */
export const maxHashIterations = 10_000_000;
const saltBytes = 12;
const hashBytes = 64;

/** A parsed `$7$` hash. */
export interface MosquittoHash {
  readonly iterations: number;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

const base64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Parses a `$7$` hash, or returns undefined for anything else (another scheme, a malformed field,
 * an iteration count outside 1..{@link maxHashIterations}).
 *
 * @example
 * parseMosquittoHash('$7$101$c2FsdA==$…')?.iterations; // 101
 */
export function parseMosquittoHash(text: string): MosquittoHash | undefined {
  const parts = text.split('$');
  if (parts.length !== 5 || parts[0] !== '' || parts[1] !== '7') return undefined;
  const [, , count, salt, hash] = parts;
  if (!/^[1-9][0-9]{0,8}$/.test(count) || !base64.test(salt) || !base64.test(hash)) return undefined;
  const iterations = Number(count);
  if (iterations > maxHashIterations) return undefined;
  const parsed = { iterations, salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') };
  return parsed.hash.length === hashBytes && parsed.salt.length > 0 ? parsed : undefined;
}

const bytesOf = (password: string | Uint8Array) =>
  typeof password === 'string' ? Buffer.from(password, 'utf8') : password;

/**
 * The `$7$` hash of a password (UTF-8, or the bytes given), with a fresh 12-byte salt.
 *
 * @example
 * await hashMosquittoPassword('s3cret'); // '$7$10000$…$…'
 */
export async function hashMosquittoPassword(
  password: string | Uint8Array,
  iterations = defaultHashIterations,
): Promise<string> {
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > maxHashIterations) {
    throw new Error(`iterations must be a whole number from 1 to ${maxHashIterations}, not ${iterations}`);
  }
  const salt = randomBytes(saltBytes);
  const hash = await derive(bytesOf(password), salt, iterations, hashBytes, 'sha512');
  return `$7$${iterations}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/**
 * Whether `password` matches a `$7$` hash (its text, or as parsed), comparing in constant time. A
 * hash that does not parse is `false`. Runs PBKDF2 on libuv's thread pool, so the function's other
 * connections proceed meanwhile.
 *
 * @example
 * await verifyMosquittoHash(await hashMosquittoPassword('s3cret'), 's3cret'); // true
 */
export async function verifyMosquittoHash(
  stored: string | MosquittoHash,
  password: string | Uint8Array,
): Promise<boolean> {
  const parsed = typeof stored === 'string' ? parseMosquittoHash(stored) : stored;
  if (!parsed || parsed.hash.length !== hashBytes) return false;
  const derived = await derive(bytesOf(password), parsed.salt, parsed.iterations, hashBytes, 'sha512');
  return timingSafeEqual(derived, parsed.hash);
}
