/**
 * The authentication sources beyond the users document, as the message function's environment
 * carries them: written by `functionEnvironment` (shared/function-environment.ts), read back by
 * `configFromEnv` (shared/config.ts). No AWS types here.
 */
import { usersTable } from '../tables.js';
import type { JwtSettings } from './jwt-authenticator.js';

/** Where CONNECT credentials are checked, besides the users document. */
export interface AuthSettings {
  /** Name of the users table (shared/tables.ts `usersTable`). */
  readonly usersTable?: string;
  /** Tokens in the password field. */
  readonly jwt?: JwtSettings;
  /** Name or ARN of the Lambda function asked about each CONNECT. */
  readonly authorizerFunction?: string;
}

export const usersTableEnv = usersTable.envVar;
export const jwtIssuerEnv = 'NIMBUS_JWT_ISSUER';
/** Comma-separated accepted audiences. */
export const jwtAudienceEnv = 'NIMBUS_JWT_AUDIENCE';
export const jwtJwksUrlEnv = 'NIMBUS_JWT_JWKS_URL';
export const jwtUserClaimEnv = 'NIMBUS_JWT_USER_CLAIM';
/** Comma-separated accepted `alg` values. */
export const jwtAlgorithmsEnv = 'NIMBUS_JWT_ALGORITHMS';
/** Seconds. */
export const jwtClockToleranceEnv = 'NIMBUS_JWT_CLOCK_TOLERANCE';
/** `match` or `ignore`. */
export const jwtUsernameEnv = 'NIMBUS_JWT_USERNAME';
export const authorizerFunctionEnv = 'NIMBUS_AUTHORIZER_FUNCTION';

const list = (values: readonly string[] | undefined) => (values?.length ? values.join(',') : undefined);

/**
 * The environment variables for `settings`; unset settings are left out. Validated here, so a bad
 * setting fails at synth or emulator start, not at the first CONNECT.
 *
 * @example
 * authEnvironment({ jwt: { issuer: 'https://issuer.example' } }); // { NIMBUS_JWT_ISSUER: 'https://issuer.example' }
 */
export function authEnvironment(settings: AuthSettings): Record<string, string> {
  const { jwt } = settings;
  if (jwt) checkJwtSettings(jwt);
  const entries: Array<[string, string | undefined]> = [
    [usersTableEnv, settings.usersTable],
    [jwtIssuerEnv, jwt?.issuer],
    [jwtAudienceEnv, list(jwt?.audience)],
    [jwtJwksUrlEnv, jwt?.jwksUrl],
    [jwtUserClaimEnv, jwt?.userClaim],
    [jwtAlgorithmsEnv, list(jwt?.algorithms)],
    [jwtClockToleranceEnv, jwt?.clockToleranceSeconds?.toString()],
    [jwtUsernameEnv, jwt?.username],
    [authorizerFunctionEnv, settings.authorizerFunction],
  ];
  return Object.fromEntries(entries.filter((entry): entry is [string, string] => entry[1] !== undefined));
}

/**
 * The settings in `env`; throws, naming the variable, on one that is malformed.
 *
 * @example
 * authSettingsFromEnv({ NIMBUS_USERS_TABLE: 'nimbus-Users' }); // { usersTable: 'nimbus-Users' }
 */
export function authSettingsFromEnv(env: NodeJS.ProcessEnv): AuthSettings {
  const value = (name: string) => env[name] || undefined;
  const split = (name: string) =>
    value(name)
      ?.split(',')
      .map((v) => v.trim())
      .filter((v) => v !== '');
  const issuer = value(jwtIssuerEnv);
  const tolerance = value(jwtClockToleranceEnv);
  const username = value(jwtUsernameEnv);
  const jwt: JwtSettings | undefined = issuer
    ? defined({
        issuer,
        audience: split(jwtAudienceEnv),
        jwksUrl: value(jwtJwksUrlEnv),
        userClaim: value(jwtUserClaimEnv),
        algorithms: split(jwtAlgorithmsEnv),
        clockToleranceSeconds: tolerance === undefined ? undefined : Number(tolerance),
        username: username as JwtSettings['username'],
      })
    : undefined;
  if (jwt) checkJwtSettings(jwt);
  return defined({ usersTable: value(usersTableEnv), jwt, authorizerFunction: value(authorizerFunctionEnv) });
}

/** `object` without its undefined properties, so settings read back compare equal to those written. */
function defined<T extends object>(object: T): T {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined)) as T;
}

/**
 * A URL, or a value CDK fills in at deploy (a Cognito pool's provider URL is `${Token[…]}` at synth).
 */
const urlOrToken = (value: string) => /^https?:\/\/\S+$/.test(value) || value.includes('${Token[');

function checkJwtSettings(jwt: JwtSettings): void {
  const problems: string[] = [];
  if (!urlOrToken(jwt.issuer)) problems.push(`the issuer must be a URL, not "${jwt.issuer}"`);
  if (jwt.jwksUrl !== undefined && !urlOrToken(jwt.jwksUrl)) {
    problems.push(`the JWKS URL must be a URL, not "${jwt.jwksUrl}"`);
  }
  const tolerance = jwt.clockToleranceSeconds;
  if (tolerance !== undefined && !(Number.isFinite(tolerance) && tolerance >= 0 && tolerance <= 3600)) {
    problems.push(`the clock tolerance must be 0 to 3600 seconds, not ${tolerance}`);
  }
  if (jwt.username !== undefined && jwt.username !== 'match' && jwt.username !== 'ignore') {
    problems.push(`the user name rule must be "match" or "ignore", not "${jwt.username}"`);
  }
  if (jwt.algorithms?.some((alg) => alg.toLowerCase() === 'none' || alg.startsWith('HS'))) {
    problems.push('the algorithms may not include "none" or HMAC (HS*): the key set is public');
  }
  if (problems.length > 0) throw new Error(`JWT settings: ${problems.join('; ')}`);
}
