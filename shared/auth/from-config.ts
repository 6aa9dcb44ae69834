/**
 * Builds the configured authenticator chain, with its AWS clients: the one place that knows which
 * authenticators exist and in which order they are asked.
 */
import { LambdaClient } from '@aws-sdk/client-lambda';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { type AuthErrorReporter, type Authenticator, type PasswordDocument, PasswordFile } from '../auth.js';
import type { MosquittoPasswordFile } from '../mosquitto-passwords.js';
import { HookAuthenticator } from './authorizer-hook.js';
import { AuthenticatorChain } from './chain.js';
import { DynamoUserDirectory } from './dynamo-user-directory.js';
import type { EnhancedAuthenticator } from './enhanced.js';
import { JwtAuthenticator } from './jwt-authenticator.js';
import { LambdaAuthorizer } from './lambda-authorizer.js';
import { directoryScramSource, ScramAuthenticator, type ScramCredentialSource } from './scram.js';
import type { AuthSettings } from './settings.js';
import { TableAuthenticator } from './table-authenticator.js';

export interface AuthConfig {
  /** The users document of the environment (`NIMBUS_AUTH_USERS`). */
  readonly authUsers?: PasswordDocument;
  /** The Mosquitto password file, as read at cold start (shared/security.ts). */
  readonly passwordFile?: MosquittoPasswordFile;
  readonly auth?: AuthSettings;
}

export interface AuthDependencies {
  /** The document client the users table is read with. */
  readonly db: () => DynamoDBDocumentClient;
  /** Where failures of a JWKS or the authorizer function are reported. */
  readonly onError?: AuthErrorReporter;
  /** The Lambda client of the authorizer hook. @default a new LambdaClient */
  readonly lambda?: () => LambdaClient;
}

/**
 * The authenticator the configuration asks for, or undefined when none is configured (anyone may
 * connect). Cheapest first: the users document (one SHA-256), then tokens (a signature check once
 * the keys are cached; a password that is no token is refused unread), then the password file (a
 * key derivation, in memory), then the users table (a GetItem and a key derivation), then the
 * authorizer function (a Lambda invocation). The first that says ok wins; every one names the user
 * and says why it refused, so the CONNECT handler sees the same decision whichever answered.
 *
 * @example
 * const authenticator = authenticatorFrom(config, { db: () => createDocumentClient(config) });
 */
export function authenticatorFrom(
  config: AuthConfig,
  dependencies: AuthDependencies,
): Authenticator | undefined {
  const { auth = {}, authUsers, passwordFile } = config;
  const { onError } = dependencies;
  const chain: Authenticator[] = [];
  if (authUsers) chain.push(new PasswordFile(authUsers));
  if (auth.jwt) chain.push(new JwtAuthenticator(auth.jwt, onError));
  if (passwordFile) chain.push(passwordFile);
  if (auth.usersTable)
    chain.push(new TableAuthenticator(new DynamoUserDirectory(dependencies.db(), auth.usersTable)));
  if (auth.authorizerFunction) {
    const lambda = dependencies.lambda?.() ?? new LambdaClient({});
    chain.push(new HookAuthenticator(new LambdaAuthorizer(lambda, auth.authorizerFunction), onError));
  }
  if (chain.length === 0) return undefined;
  return chain.length === 1 ? chain[0] : new AuthenticatorChain(chain);
}

/**
 * The MQTT 5 enhanced authentication methods the configuration allows: SCRAM-SHA-512 when there
 * are `$7$` hashes to check it against (the password file, then the users table); undefined when
 * there are none, so a CONNECT naming a method is refused 0x8C (docs/adr/0022).
 *
 * @example
 * const enhanced = enhancedAuthenticatorFrom(config, { db: () => createDocumentClient(config) });
 */
export function enhancedAuthenticatorFrom(
  config: Pick<AuthConfig, 'auth' | 'passwordFile'>,
  dependencies: Pick<AuthDependencies, 'db'>,
): EnhancedAuthenticator | undefined {
  const { auth = {}, passwordFile } = config;
  const sources: ScramCredentialSource[] = [];
  if (passwordFile) sources.push(passwordFile);
  if (auth.usersTable)
    sources.push(directoryScramSource(new DynamoUserDirectory(dependencies.db(), auth.usersTable)));
  if (sources.length === 0) return undefined;
  return new ScramAuthenticator({
    async scramCredentials(username) {
      for (const source of sources) {
        const found = await source.scramCredentials(username);
        if (found) return found;
      }
      return undefined;
    },
  });
}
