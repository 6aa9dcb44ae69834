/**
 * The environment each broker function runs with, built in one place for the CDK construct and the
 * emulator alike, so the two cannot drift apart. `configFromEnv` (shared/config.ts) reads it back.
 */
import { type AuthSettings, authEnvironment } from './auth/settings.js';
import { type PasswordHash, parsePasswordDocument } from './auth.js';
import {
  aclFileEnv,
  authUsersEnv,
  defaultMaxQueuedPerSession,
  dynamoEndpointEnv,
  enhancedAuthModuleEnv,
  limitsEnv,
  managementEndpointEnv,
  maxPacketSizeEnv,
  maxQueuedPerSessionEnv,
  passwordFileEnv,
} from './config.js';
import { type BrokerLimits, defaultLimits, limitsFault } from './limits.js';
import { defaultMetricsNamespace, metricsServiceName } from './metric-names.js';
import { type TableId, tableDefinitions } from './tables.js';

/** The broker's functions, by role; each one's handler is `functions/<id>/index.ts`. */
export const brokerFunctionIds = ['connect', 'message', 'fanout', 'sweeper'] as const;
export type BrokerFunctionId = (typeof brokerFunctionIds)[number];

export interface FunctionEnvironmentOptions {
  /** Table names by table id. */
  readonly tables: Readonly<Record<TableId, string>>;
  /** The API Gateway management endpoint the functions post to. */
  readonly managementEndpoint: string;
  /**
   * Where DynamoDB listens.
   * @default - unset: the SDK's regional endpoint (the emulator points it at DynamoDB Local)
   */
  readonly dynamoEndpoint?: string;
  /**
   * Largest MQTT packet the broker accepts, in bytes.
   * @default - unset: the broker uses `MAX_FRAME_BYTES` (shared/protocol/wire.ts)
   */
  readonly maxPacketSize?: number;
  /**
   * Most messages queued for one offline persistent session.
   * @default defaultMaxQueuedPerSession
   */
  readonly maxQueuedPerSession?: number;
  /**
   * Quotas on client ids, topics, filters, SUBSCRIBE sizes, publish rate and connections per user (shared/limits.ts); checked here
   * against DynamoDB's key limits, so a quota no key can hold fails before any function runs.
   * @default defaultLimits
   */
  readonly limits?: Partial<BrokerLimits>;
  /**
   * Users by name, each with the entry `npx nimbus hash-password` prints; validated here, so a
   * bad entry fails before any function runs.
   * @default - no authentication: any client may connect
   */
  readonly authUsers?: Readonly<Record<string, PasswordHash>>;
  /**
   * Path of a Mosquitto password file as the message function sees it (the construct bundles it).
   * @default - none
   */
  readonly passwordFile?: string;
  /**
   * Path of a Mosquitto ACL file as the functions see it (the construct bundles it).
   * @default - none: no topic authorization
   */
  readonly aclFile?: string;
  /**
   * Path of an ES module exporting an `EnhancedAuthenticator` by default, as the message function sees it.
   * @default - none: SCRAM-SHA-512 only (when there are `$7$` hashes)
   */
  readonly enhancedAuthModule?: string;
  /**
   * CloudWatch namespace of the broker's own metrics (shared/metric-names.ts).
   * @default defaultMetricsNamespace ('NimbusMQTT')
   */
  readonly metricsNamespace?: string;
  /**
   * The users table, tokens and the authorizer function (shared/auth/settings.ts); for the message
   * function only, like the users document.
   * @default - none
   */
  readonly auth?: AuthSettings;
}

/** The functions that decide on topics: CONNECT and PUBLISH (message), delivery (fanout), wills (message, sweeper). */
const aclFunctions: readonly BrokerFunctionId[] = ['message', 'fanout', 'sweeper'];

/**
 * The environment variables of one broker function. Only the message function handles CONNECT, so
 * only it gets the users document.
 *
 * @example
 * functionEnvironment('message', { tables, managementEndpoint: 'http://127.0.0.1:4000' });
 * // { NIMBUS_CONNECTIONS_TABLE: …, NIMBUS_MANAGEMENT_ENDPOINT: 'http://127.0.0.1:4000',
 * //   POWERTOOLS_METRICS_NAMESPACE: 'NimbusMQTT', POWERTOOLS_SERVICE_NAME: 'nimbus-mqtt', NIMBUS_MAX_QUEUED_PER_SESSION: '1000' }
 */
export function functionEnvironment(
  fn: BrokerFunctionId,
  options: FunctionEnvironmentOptions,
): Record<string, string> {
  const { dynamoEndpoint, maxPacketSize, authUsers, passwordFile, aclFile, auth, enhancedAuthModule } =
    options;
  const limits = { ...defaultLimits, ...options.limits };
  const fault = limitsFault(limits);
  if (fault) throw new Error(`Broker limits refused: ${fault}.`);
  return {
    ...Object.fromEntries(tableDefinitions.map((t) => [t.envVar, options.tables[t.id]])),
    [managementEndpointEnv]: options.managementEndpoint,
    // Powertools Metrics reads both: the namespace, and the `service` dimension of every metric.
    POWERTOOLS_METRICS_NAMESPACE: options.metricsNamespace ?? defaultMetricsNamespace,
    POWERTOOLS_SERVICE_NAME: metricsServiceName,
    ...(dynamoEndpoint === undefined ? {} : { [dynamoEndpointEnv]: dynamoEndpoint }),
    [maxQueuedPerSessionEnv]: String(options.maxQueuedPerSession ?? defaultMaxQueuedPerSession),
    ...(maxPacketSize === undefined ? {} : { [maxPacketSizeEnv]: String(maxPacketSize) }),
    ...Object.fromEntries(
      Object.entries(options.limits ?? {}).map(([key, value]) => [
        limitsEnv[key as keyof BrokerLimits],
        String(value),
      ]),
    ),
    ...(authUsers && fn === 'message'
      ? { [authUsersEnv]: JSON.stringify(parsePasswordDocument({ users: authUsers })) }
      : {}),
    ...(passwordFile && fn === 'message' ? { [passwordFileEnv]: passwordFile } : {}),
    ...(aclFile && aclFunctions.includes(fn) ? { [aclFileEnv]: aclFile } : {}),
    ...(enhancedAuthModule && fn === 'message' ? { [enhancedAuthModuleEnv]: enhancedAuthModule } : {}),
    ...(auth && fn === 'message' ? authEnvironment(auth) : {}),
  };
}
