import { type AuthSettings, authSettingsFromEnv } from './auth/settings.js';
import { type PasswordDocument, parsePasswordDocument } from './auth.js';
import { type BrokerLimits, defaultLimits, limitsFault } from './limits.js';
import { MAX_FRAME_BYTES } from './protocol/wire.js';
import { type TableId, tableDefinitions } from './tables.js';

/** Environment variable naming the API Gateway management endpoint (https://{api}.execute-api.{region}.amazonaws.com/{stage}). */
export const managementEndpointEnv = 'NIMBUS_MANAGEMENT_ENDPOINT';
/** Set only by the emulator: where DynamoDB Local listens. Unset in AWS. */
export const dynamoEndpointEnv = 'NIMBUS_DYNAMODB_ENDPOINT';
/** Largest packet the broker accepts, in bytes (API Gateway caps a message at 128 KB of base64). */
export const maxPacketSizeEnv = 'NIMBUS_MAX_PACKET_SIZE';
/** Most QoS 1/2 messages kept for one persistent session; more are dropped for that session. */
export const maxQueuedPerSessionEnv = 'NIMBUS_MAX_QUEUED_PER_SESSION';
/** `NIMBUS_MAX_QUEUED_PER_SESSION` when nothing sets it. */
export const defaultMaxQueuedPerSession = 1000;
/**
 * The users document `{ "users": { "<username>": { "sha256", "salt" } } }` (salted hashes, never
 * passwords: docs/adr/0005-authentication.md). Set only for the message function; unset, any client may connect.
 */
export const authUsersEnv = 'NIMBUS_AUTH_USERS';
/** The environment variable of each quota in shared/limits.ts; unset, its default applies. */
export const limitsEnv: Readonly<Record<keyof BrokerLimits, string>> = {
  maxClientIdBytes: 'NIMBUS_MAX_CLIENT_ID_BYTES',
  maxTopicBytes: 'NIMBUS_MAX_TOPIC_BYTES',
  maxFilterBytes: 'NIMBUS_MAX_FILTER_BYTES',
  maxFiltersPerSubscribe: 'NIMBUS_MAX_FILTERS_PER_SUBSCRIBE',
  maxSubscriptionsPerSession: 'NIMBUS_MAX_SUBSCRIPTIONS_PER_SESSION',
  maxPacketsPerFrame: 'NIMBUS_MAX_PACKETS_PER_FRAME',
  maxPublishesPerSecond: 'NIMBUS_MAX_PUBLISHES_PER_SECOND',
  publishBurst: 'NIMBUS_PUBLISH_BURST',
  maxConnectionsPerUser: 'NIMBUS_MAX_CONNECTIONS_PER_USER',
  maxSessionExpirySeconds: 'NIMBUS_MAX_SESSION_EXPIRY_SECONDS',
  topicAliasMaximum: 'NIMBUS_TOPIC_ALIAS_MAXIMUM',
  serverKeepAliveSeconds: 'NIMBUS_SERVER_KEEP_ALIVE_SECONDS',
  receiveMaximum: 'NIMBUS_RECEIVE_MAXIMUM',
};

/**
 * Path of a Mosquitto password file (`mosquitto_passwd`, `npx nimbus passwd`), relative to the
 * function's code directory or absolute. The CDK construct bundles the file with the message function.
 */
export const passwordFileEnv = 'NIMBUS_PASSWORD_FILE';
/**
 * Path of an ES module whose default export is an `EnhancedAuthenticator` (shared/auth/enhanced.ts):
 * MQTT 5 AUTH methods of your own, asked before the built-in SCRAM-SHA-512. Message function only.
 */
export const enhancedAuthModuleEnv = 'NIMBUS_ENHANCED_AUTH_MODULE';
/** Path of a Mosquitto ACL file, like `NIMBUS_PASSWORD_FILE`; given to every function that publishes or delivers. */
export const aclFileEnv = 'NIMBUS_ACL_FILE';

export interface BrokerConfig {
  readonly tables: Readonly<Record<TableId, string>>;
  readonly managementEndpoint: string;
  readonly dynamoEndpoint?: string;
  readonly maxPacketSize: number;
  readonly maxQueuedPerSession: number;
  readonly limits: BrokerLimits;
  /** Who may connect; absent: no authentication. */
  readonly authUsers?: PasswordDocument;
  /** Where the Mosquitto password file is; absent: none. */
  readonly passwordFile?: string;
  /** Where the module of MQTT 5 AUTH methods of your own is; absent: none. */
  readonly enhancedAuthModule?: string;
  /** Where the Mosquitto ACL file is; absent: no topic authorization. */
  readonly aclFile?: string;
  /** The users table, tokens and the authorizer function. */
  readonly auth?: AuthSettings;
}

/**
 * Reads the configuration the CDK stack (or the emulator) gives a function.
 *
 * @example
 * const config = configFromEnv(process.env);
 * config.tables.Messages; // "nimbus-Messages"
 */
export function configFromEnv(env: NodeJS.ProcessEnv): BrokerConfig {
  const missing: string[] = [];
  const read = (name: string): string => {
    const value = env[name];
    if (!value) missing.push(name);
    return value ?? '';
  };
  const tables = Object.fromEntries(tableDefinitions.map((t) => [t.id, read(t.envVar)])) as Record<
    TableId,
    string
  >;
  const managementEndpoint = read(managementEndpointEnv);
  if (missing.length > 0) {
    throw new Error(
      `Missing environment variables ${missing.join(', ')}: deploy with the Nimbus CDK construct or run the function under the emulator.`,
    );
  }
  const maxPacketSize = Number(env[maxPacketSizeEnv] ?? MAX_FRAME_BYTES);
  const maxQueuedPerSession = Number(env[maxQueuedPerSessionEnv] ?? defaultMaxQueuedPerSession);
  const authUsers = env[authUsersEnv];
  const limits = limitsFromEnv(env);
  return {
    tables,
    managementEndpoint,
    dynamoEndpoint: env[dynamoEndpointEnv] || undefined,
    maxPacketSize,
    maxQueuedPerSession,
    limits,
    ...(authUsers ? { authUsers: usersFrom(authUsers) } : {}),
    ...(env[passwordFileEnv] ? { passwordFile: env[passwordFileEnv] } : {}),
    ...(env[aclFileEnv] ? { aclFile: env[aclFileEnv] } : {}),
    ...(env[enhancedAuthModuleEnv] ? { enhancedAuthModule: env[enhancedAuthModuleEnv] } : {}),
    auth: authSettingsFromEnv(env),
  };
}

function usersFrom(json: string): PasswordDocument {
  try {
    return parsePasswordDocument(json);
  } catch (error) {
    throw new Error(`${authUsersEnv} is not a users document: ${(error as Error).message}`);
  }
}

/**
 * The quotas the environment sets, each defaulting to `defaultLimits`.
 * @throws {Error} naming the variables, when a client could make a DynamoDB key too long under them.
 */
export function limitsFromEnv(env: NodeJS.ProcessEnv): BrokerLimits {
  const limits = Object.fromEntries(
    Object.entries(limitsEnv).map(([key, name]) => {
      const value = env[name];
      return [
        key,
        value === undefined || value === '' ? defaultLimits[key as keyof BrokerLimits] : Number(value),
      ];
    }),
  ) as unknown as BrokerLimits;
  const fault = limitsFault(limits);
  if (fault)
    throw new Error(
      `Quotas ${Object.values(limitsEnv).join(', ')} refused: ${fault}. Lower them and redeploy.`,
    );
  return limits;
}
