/**
 * Who may connect and what they may do, from a function's configuration: the authenticator chain
 * (shared/auth/from-config.ts), the ACL, and the login throttle in front of the whole chain. Files are read
 * once, at cold start; a file that cannot be read or parsed stops the function there
 * (docs/adr/0008-authorization.md).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { AclAuthorizer, type Authorizer, parseAcl } from './acl.js';
import type { EnhancedAuthenticator } from './auth/enhanced.js';
import { authenticatorFrom, enhancedAuthenticatorFrom } from './auth/from-config.js';
import type { AuthErrorReporter, Authenticator } from './auth.js';
import type { BrokerConfig } from './config.js';
import { type LoginThrottle, StoredLoginThrottle } from './login-throttle.js';
import { MosquittoPasswordFile } from './mosquitto-passwords.js';
import { DynamoLoginAttempts } from './storage/dynamo/login-attempts.js';

export interface BrokerSecurity {
  readonly authenticator?: Authenticator;
  /** MQTT 5 AUTH methods: SCRAM-SHA-512 over the password file and the users table. */
  readonly enhancedAuthenticator?: EnhancedAuthenticator;
  readonly authorizer?: Authorizer;
  readonly loginThrottle?: LoginThrottle;
}

/** A configured path: absolute as given, else inside the function's code directory (Lambda's /var/task). */
function located(path: string): string {
  return isAbsolute(path) ? path : resolve(process.env.LAMBDA_TASK_ROOT ?? process.cwd(), path);
}

function readConfigured(path: string, what: string, parse: (text: string) => void): string {
  try {
    const text = readFileSync(located(path), 'utf8');
    parse(text);
    return text;
  } catch (error) {
    throw new Error(`${what} ${path}: ${(error as Error).message}`);
  }
}

/**
 * The security parts of the broker context for this configuration.
 *
 * @example
 * const security = securityFromConfig(configFromEnv(process.env), db, Date.now);
 */
export function securityFromConfig(
  config: BrokerConfig,
  db: DynamoDBDocumentClient,
  now: () => number,
  options: { readonly onError?: AuthErrorReporter } = {},
): BrokerSecurity {
  const passwordFile = config.passwordFile
    ? new MosquittoPasswordFile(
        readConfigured(config.passwordFile, 'password file', (t) => new MosquittoPasswordFile(t)),
      )
    : undefined;
  const authenticator = authenticatorFrom(
    { ...config, passwordFile },
    { db: () => db, onError: options.onError },
  );
  const enhancedAuthenticator = enhancedAuthenticatorFrom({ ...config, passwordFile }, { db: () => db });
  const authorizer = config.aclFile
    ? new AclAuthorizer(parseAcl(readConfigured(config.aclFile, 'ACL file', parseAcl)))
    : undefined;
  return {
    ...(authenticator
      ? {
          authenticator,
          loginThrottle: new StoredLoginThrottle(
            new DynamoLoginAttempts(db, config.tables.LoginAttempts, now),
            now,
          ),
        }
      : {}),
    ...(enhancedAuthenticator ? { enhancedAuthenticator } : {}),
    ...(authorizer ? { authorizer } : {}),
  };
}
