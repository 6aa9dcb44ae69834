/**
 * CONNECT username/password against a directory of `$7$` hashes (the users table). No AWS types here.
 */
import { type AuthDecision, type Authenticator, type Credentials, passwordRefusal } from '../auth.js';
import {
  defaultHashIterations,
  type MosquittoHash,
  parseMosquittoHash,
  verifyMosquittoHash,
} from './mosquitto-hash.js';
import type { UserDirectory } from './user-directory.js';

/**
 * Verified against when the user is unknown (or its stored hash unreadable), at the default cost, so
 * a refusal takes as long whether or not the user exists. Its hash bytes match no password.
 */
const decoyHash: MosquittoHash = {
  iterations: defaultHashIterations,
  salt: Buffer.alloc(12),
  hash: Buffer.alloc(64),
};

/**
 * Longest user name looked up, in UTF-8 bytes: DynamoDB refuses keys over 2,048 bytes, and a refused
 * GetItem would fail the CONNECT frame into the queue's retries instead of refusing it.
 */
export const maxUsernameBytes = 1024;

/**
 * Authenticates CONNECT username/password against a {@link UserDirectory}. The user is the username.
 * Refuses as every password check does ({@link passwordRefusal}); an unknown user and a wrong
 * password cost the same key derivation.
 *
 * @example
 * const auth = new TableAuthenticator(new MemoryUserDirectory([{ username: 'alice', passwordHash }]));
 * await auth.authenticate({ clientId: 'c1', username: 'alice', password: Buffer.from('pw') }); // { ok: true, user: 'alice' }
 */
export class TableAuthenticator implements Authenticator {
  constructor(private readonly directory: UserDirectory) {}

  async authenticate({ username, password }: Credentials): Promise<AuthDecision> {
    if (!username || password === undefined) return passwordRefusal(username);
    const lookable = Buffer.byteLength(username, 'utf8') <= maxUsernameBytes;
    const entry = lookable ? await this.directory.find(username) : undefined;
    // An unknown user, or an unreadable stored hash, costs the decoy's derivation.
    const parsed = entry && parseMosquittoHash(entry.passwordHash);
    const matches = await verifyMosquittoHash(parsed || decoyHash, password);
    return parsed && matches ? { ok: true, user: username } : passwordRefusal(username);
  }
}
