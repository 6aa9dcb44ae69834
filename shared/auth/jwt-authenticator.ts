/**
 * JSON Web Tokens in the CONNECT password, verified against an issuer's JWKS (an Amazon Cognito user
 * pool, any OpenID Connect provider) with `jose`. No AWS types here.
 */
import { createRemoteJWKSet, errors, type JWTVerifyGetKey, jwtVerify } from 'jose';
import {
  type AuthDecision,
  type AuthErrorReporter,
  type Authenticator,
  badCredentials,
  type Credentials,
  notAuthorized,
} from '../auth.js';

/** Signature algorithms accepted unless configured: asymmetric ones only, since the key set is public. */
export const defaultJwtAlgorithms = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
];

export interface JwtSettings {
  /** The `iss` every token must carry, e.g. `https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf`. */
  readonly issuer: string;
  /** Accepted `aud` values; unset: the audience is not checked (Cognito access tokens have none). */
  readonly audience?: readonly string[];
  /**
   * Where the signing keys are. Unset: the `jwks_uri` of the issuer's OpenID discovery document, or
   * `${issuer}/.well-known/jwks.json` (Cognito's) when the issuer has none.
   */
  readonly jwksUrl?: string;
  /** The claim naming the user. @default 'sub' (Cognito: 'username' or 'cognito:username') */
  readonly userClaim?: string;
  /** Accepted `alg` values. @default defaultJwtAlgorithms */
  readonly algorithms?: readonly string[];
  /** Leeway for `exp` and `nbf`, in seconds. @default 5 */
  readonly clockToleranceSeconds?: number;
  /** `match`: the CONNECT user name must equal the user claim; `ignore`: any user name. @default 'ignore' */
  readonly username?: 'match' | 'ignore';
}

/** Problems of the key set, not of the token: reported, and the client refused as not authorized. */
const keySetProblems = new Set(['ERR_JWKS_TIMEOUT', 'ERR_JWKS_INVALID', 'ERR_JOSE_GENERIC']);
const compactJws = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * Verifies a JWT presented as the CONNECT password: signature by a key of the issuer's JWKS (cached
 * per instance and refetched for an unknown `kid`), an allowed `alg` (never `none`), `iss`, `aud` when
 * configured, a required `exp`, `nbf`. The user is the configured claim. A token that fails any check:
 * `bad-credentials`; no password: `not-authorized`; an unreachable key set: `not-authorized`, reported.
 *
 * @example
 * const auth = new JwtAuthenticator({ issuer: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf', userClaim: 'username' });
 * await auth.authenticate({ clientId: 'c1', password: Buffer.from(idToken) }); // { ok: true, user: 'alice' }
 */
export class JwtAuthenticator implements Authenticator {
  private keys?: Promise<JWTVerifyGetKey>;

  constructor(
    private readonly settings: JwtSettings,
    private readonly onError: AuthErrorReporter = () => {},
  ) {
    if (!/^https?:\/\//.test(settings.issuer))
      throw new Error(`JWT issuer must be a URL, not "${settings.issuer}"`);
  }

  async authenticate({ username, password }: Credentials): Promise<AuthDecision> {
    if (password === undefined || password.length === 0) return notAuthorized;
    const token = Buffer.from(password).toString('utf8');
    if (!compactJws.test(token)) return badCredentials;
    const { issuer, audience, algorithms, clockToleranceSeconds, userClaim = 'sub' } = this.settings;
    try {
      const { payload } = await jwtVerify(token, await this.keySet(), {
        issuer,
        audience: audience && audience.length > 0 ? [...audience] : undefined,
        algorithms: [...(algorithms ?? defaultJwtAlgorithms)],
        clockTolerance: clockToleranceSeconds ?? 5,
        // A token without expiry would be a password forever.
        requiredClaims: ['exp'],
      });
      const user = payload[userClaim];
      if (typeof user !== 'string' || user === '') return badCredentials;
      if (this.settings.username === 'match' && username !== user) return badCredentials;
      return { ok: true, user };
    } catch (error) {
      if (error instanceof errors.JOSEError && !keySetProblems.has(error.code)) return badCredentials;
      this.keys = undefined;
      this.onError(`JWT keys of ${issuer} could not be read; clients are refused until they can`, error);
      return notAuthorized;
    }
  }

  /** The remote key set, found once per instance; jose caches its keys. */
  private keySet(): Promise<JWTVerifyGetKey> {
    this.keys ??= this.jwksUrl().then((url) => createRemoteJWKSet(new URL(url)));
    return this.keys;
  }

  private async jwksUrl(): Promise<string> {
    if (this.settings.jwksUrl) return this.settings.jwksUrl;
    const issuer = this.settings.issuer.replace(/\/+$/, '');
    const response = await fetch(`${issuer}/.well-known/openid-configuration`, {
      signal: AbortSignal.timeout(5000),
    });
    if (response.ok) {
      const discovered = ((await response.json()) as { jwks_uri?: unknown }).jwks_uri;
      if (typeof discovered === 'string') return discovered;
    }
    return `${issuer}/.well-known/jwks.json`;
  }
}
