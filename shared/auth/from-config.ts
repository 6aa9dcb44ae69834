/**
 * Builds the configured authenticator chain, with its AWS clients: the one place that knows which
 * authenticators exist and in which order they are asked.
 */
import { LambdaClient } from '@aws-sdk/client-lambda';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { type PasswordDocument, PasswordFile } from '../auth.js';
import { HookAuthenticator } from './authorizer-hook.js';
import { AuthenticatorChain } from './chain.js';
import type { AuthErrorReporter, Authenticator } from './decision.js';
import { DynamoUserDirectory } from './dynamo-user-directory.js';
import { JwtAuthenticator } from './jwt-authenticator.js';
import { LambdaAuthorizer } from './lambda-authorizer.js';
import type { AuthSettings } from './settings.js';
import { TableAuthenticator } from './table-authenticator.js';

export interface AuthConfig {
  /** The users document of the environment (`NIMBUS_AUTH_USERS`). */
  readonly authUsers?: PasswordDocument;
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
 * connect). Cheapest first: the users document, then tokens (a signature check once the keys are
 * cached), then the users table (a GetItem and a slow key derivation), then the authorizer function
 * (a Lambda invocation). The first that says ok wins.
 *
 * @example
 * const authenticator = authenticatorFrom(config, { db: () => createDocumentClient(config) });
 */
export function authenticatorFrom(
  config: AuthConfig,
  dependencies: AuthDependencies,
): Authenticator | undefined {
  const { auth = {}, authUsers } = config;
  const { onError } = dependencies;
  const chain: Authenticator[] = [];
  if (authUsers) chain.push(passwordFileAuthenticator(new PasswordFile(authUsers)));
  if (auth.jwt) chain.push(new JwtAuthenticator(auth.jwt, onError));
  if (auth.usersTable)
    chain.push(new TableAuthenticator(new DynamoUserDirectory(dependencies.db(), auth.usersTable)));
  if (auth.authorizerFunction) {
    const lambda = dependencies.lambda?.() ?? new LambdaClient({});
    chain.push(new HookAuthenticator(new LambdaAuthorizer(lambda, auth.authorizerFunction), onError));
  }
  if (chain.length === 0) return undefined;
  return chain.length === 1 ? chain[0] : new AuthenticatorChain(chain);
}

/** The users document's yes/no answer as a decision: the user is the user name. */
function passwordFileAuthenticator(file: PasswordFile): Authenticator {
  return {
    async authenticate(credentials) {
      if (await file.authenticate(credentials)) return { ok: true, user: credentials.username };
      return { ok: false, reason: credentials.username === undefined ? 'not-authorized' : 'bad-credentials' };
    },
  };
}
