/**
 * SCRAM-SHA-512 (RFC 5802; the SHA-512 variant of RFC 7677's scheme) as an MQTT 5 enhanced
 * authentication method, against the `$7$` hashes the broker already keeps. A `$7$` hash is
 * PBKDF2-HMAC-SHA-512 of the password over the salt, 64 bytes: exactly SCRAM-SHA-512's
 * SaltedPassword = Hi(password, salt, i). So the users of a Mosquitto password file or of the users
 * table can log in with SCRAM, and the password never crosses the wire, with nothing re-hashed
 * (docs/adr/0022-enhanced-authentication-and-sys-topics.md). No AWS types here.
 *
 * Exchange: CONNECT carries client-first (`n,,n=alice,r=…`), AUTH 0x18 answers server-first
 * (`r=…,s=…,i=…`), the client's AUTH 0x18 carries client-final (`c=biws,r=…,p=…`), and CONNACK
 * 0x00 carries server-final (`v=…`), which proves the broker knew the salted password.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { constantTimeEqual } from '../auth.js';
import { type AuthClient, type AuthStep, authFailure, type EnhancedAuthenticator } from './enhanced.js';
import { defaultHashIterations, parseMosquittoHash } from './mosquitto-hash.js';
import { maxUsernameBytes } from './table-authenticator.js';
import type { UserDirectory } from './user-directory.js';

/** The Authentication Method clients name. */
export const scramSha512 = 'SCRAM-SHA-512';

/** What SCRAM needs of a user: the salt, the iteration count and Hi(password, salt, i). */
export interface ScramCredentials {
  readonly salt: Uint8Array;
  readonly iterations: number;
  readonly saltedPassword: Uint8Array;
}

/** Where SCRAM finds a user's credentials: the password file, the users table. */
export interface ScramCredentialSource {
  /** The user's credentials; undefined for an unknown user or one whose hash SCRAM cannot use. */
  scramCredentials(username: string): Promise<ScramCredentials | undefined>;
}

/** What the server remembers between client-first and client-final. */
interface ScramState {
  readonly user: string;
  readonly gs2Header: string;
  readonly clientFirstBare: string;
  readonly serverFirst: string;
}

const hmac = (key: Uint8Array, text: string) => createHmac('sha512', key).update(text, 'utf8').digest();
const sha512 = (bytes: Uint8Array) => createHash('sha512').update(bytes).digest();
/** `printable` of RFC 5802 §7 minus ',': what a nonce may hold. */
const nonceText = /^[\x21-\x2b\x2d-\x7e]+$/;
const base64Text = /^[A-Za-z0-9+/]*={0,2}$/;

/** A saslname with `=2C` and `=3D` decoded; undefined when another `=` escape makes it invalid. */
function decodeSaslName(text: string): string | undefined {
  if (/=(?!2C|3D)/.test(text)) return undefined;
  return text.replaceAll('=2C', ',').replaceAll('=3D', '=');
}

/** The `k=v` attributes of a SCRAM message, in order; undefined when one is not of that form. */
function attributes(text: string): Array<[string, string]> | undefined {
  const parts = text.split(',').map((part) => [part.slice(0, 1), part.slice(2)] as [string, string]);
  return text.split(',').every((part) => /^[A-Za-z]=/.test(part)) ? parts : undefined;
}

/** client-first-message: gs2-header and bare part, or undefined when malformed or asking for what we do not do. */
function parseClientFirst(
  text: string,
): { gs2Header: string; bare: string; user: string; nonce: string } | undefined {
  // gs2-header: 'n' (no channel binding) or 'y' (client could, thinks we cannot); no authzid.
  // 'p=' asks for channel binding, which a WebSocket through API Gateway cannot offer.
  const match = /^([ny]),,(.*)$/s.exec(text);
  if (!match) return undefined;
  const [, flag, bare] = match;
  const attrs = attributes(bare);
  if (!attrs || attrs.length < 2 || attrs[0][0] !== 'n' || attrs[1][0] !== 'r') return undefined;
  // A mandatory extension ('m=') we do not know fails the exchange (RFC 5802 §5.1).
  if (attrs.some(([key]) => key === 'm')) return undefined;
  const user = decodeSaslName(attrs[0][1]);
  const nonce = attrs[1][1];
  if (user === undefined || user === '' || !nonceText.test(nonce)) return undefined;
  return { gs2Header: `${flag},,`, bare, user, nonce };
}

/**
 * A salt for a user who does not exist, the same every time for the name, so probing names does
 * not tell which exist by whether the salt changes between tries.
 */
function decoySalt(user: string): Buffer {
  return createHmac('sha256', 'nimbus-scram-unknown-user').update(user, 'utf8').digest().subarray(0, 12);
}

/**
 * SCRAM-SHA-512 over a credential source. The server does no key derivation (the client does):
 * a login costs the broker two HMACs and two hashes, less than a password check.
 *
 * @example
 * const scram = new ScramAuthenticator(passwordFile);
 * const first = await scram.start('SCRAM-SHA-512', Buffer.from('n,,n=alice,r=abc'), { clientId: 'c1' });
 */
export class ScramAuthenticator implements EnhancedAuthenticator {
  readonly methods = [scramSha512];

  constructor(private readonly source: ScramCredentialSource) {}

  async start(_method: string, data: Uint8Array | undefined, client: AuthClient): Promise<AuthStep> {
    const first = data && parseClientFirst(Buffer.from(data).toString('utf8'));
    if (!first) return authFailure('not-authorized');
    // The CONNECT's User Name, when given, must be the one SCRAM authenticates.
    if (client.username !== undefined && client.username !== first.user) return authFailure('not-authorized');
    const credentials = await this.source.scramCredentials(first.user);
    const salt = credentials?.salt ?? decoySalt(first.user);
    const iterations = credentials?.iterations ?? defaultHashIterations;
    const nonce = first.nonce + randomBytes(18).toString('base64');
    const serverFirst = `r=${nonce},s=${Buffer.from(salt).toString('base64')},i=${iterations}`;
    const state: ScramState = {
      user: first.user,
      gs2Header: first.gs2Header,
      clientFirstBare: first.bare,
      serverFirst,
    };
    return { step: 'continue', state: JSON.stringify(state), data: Buffer.from(serverFirst, 'utf8') };
  }

  async continue(
    _method: string,
    state: string,
    data: Uint8Array | undefined,
    _client?: AuthClient,
  ): Promise<AuthStep> {
    const { user, gs2Header, clientFirstBare, serverFirst } = JSON.parse(state) as ScramState;
    const text = data ? Buffer.from(data).toString('utf8') : '';
    const proofAt = text.lastIndexOf(',p=');
    const attrs = proofAt > 0 ? attributes(text.slice(0, proofAt)) : undefined;
    const proofText = text.slice(proofAt + 3);
    const serverNonce = serverFirst.slice(2, serverFirst.indexOf(','));
    if (
      attrs?.[0]?.[0] !== 'c' ||
      attrs[1]?.[0] !== 'r' ||
      // [RFC 5802 §5.1] the channel binding echoes the gs2-header; the nonce is the server's.
      attrs[0][1] !== Buffer.from(gs2Header, 'utf8').toString('base64') ||
      attrs[1][1] !== serverNonce ||
      !base64Text.test(proofText)
    )
      return authFailure('not-authorized');
    const credentials = await this.source.scramCredentials(user);
    if (!credentials) return authFailure('bad-credentials');
    const authMessage = `${clientFirstBare},${serverFirst},${text.slice(0, proofAt)}`;
    const storedKey = sha512(hmac(credentials.saltedPassword, 'Client Key'));
    const signature = hmac(storedKey, authMessage);
    const proof = Buffer.from(proofText, 'base64');
    if (proof.length !== signature.length) return authFailure('bad-credentials');
    const clientKey = Buffer.from(proof.map((byte, i) => byte ^ signature[i]));
    if (!constantTimeEqual(sha512(clientKey), storedKey)) return authFailure('bad-credentials');
    const serverSignature = hmac(hmac(credentials.saltedPassword, 'Server Key'), authMessage);
    return { step: 'success', user, data: Buffer.from(`v=${serverSignature.toString('base64')}`, 'utf8') };
  }
}

/**
 * SCRAM credentials from a user directory of `$7$` hashes (the users table).
 *
 * @example
 * new ScramAuthenticator(directoryScramSource(new DynamoUserDirectory(db, 'nimbus-Users')));
 */
export function directoryScramSource(directory: UserDirectory): ScramCredentialSource {
  return {
    async scramCredentials(username) {
      // DynamoDB refuses long keys; such a name is no user.
      if (Buffer.byteLength(username, 'utf8') > maxUsernameBytes) return undefined;
      const entry = await directory.find(username);
      const parsed = entry && parseMosquittoHash(entry.passwordHash);
      return parsed
        ? { salt: parsed.salt, iterations: parsed.iterations, saltedPassword: parsed.hash }
        : undefined;
    },
  };
}
