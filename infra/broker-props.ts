/**
 * What `NimbusBroker` takes (its props, each with its default) and the check that the deployer
 * chose who may connect.
 */
import type { RemovalPolicy } from 'aws-cdk-lib';
import type { ICertificate } from 'aws-cdk-lib/aws-certificatemanager';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { JwtSettings } from '../shared/auth/jwt-authenticator.js';
import type { PasswordHash } from '../shared/auth.js';
import type { BrokerLimits } from '../shared/limits.js';
import type { BrokerLogLevel } from './functions.js';

/** A custom domain in front of the WebSocket API. */
export interface NimbusCustomDomain {
  /** Fully qualified domain name clients connect to, e.g. `mqtt.example.com`. */
  readonly domainName: string;
  /** ACM certificate (in the stack's region) covering `domainName`: its ARN, or the certificate itself. */
  readonly certificate: string | ICertificate;
}

/**
/**
 * Who may connect. Give at least one method; each given is asked in turn, cheapest first (the users
 * document, tokens, the password file, the users table, the authorizer function), and the first
 * that accepts the CONNECT wins (shared/auth/from-config.ts).
 */
export interface NimbusAuthentication {
  /**
   * A Mosquitto password file on the machine that synthesizes (`mosquitto_passwd` or
   * `npx nimbus passwd FILE USER`). It is bundled with the message function and read at cold
   * start, so it has no size limit (docs/adr/0008-authorization.md).
   * @default - no password file
   */
  readonly passwordFile?: string;
  /**
   * Users by name, each with the entry `npx nimbus hash-password <password>` prints: the hex
   * SHA-256 of the salt followed by the password, and the salt. Passwords themselves are never
   * stored. The document travels in the message function's environment, which Lambda caps at
   * 4 KB in all: a few dozen users (docs/adr/0005-authentication.md).
   * @default - no users document
   */
  readonly users?: Readonly<Record<string, PasswordHash>>;
  /**
   * A DynamoDB table of users for any number of them, managed with `npx nimbus users add|remove|list`
   * (docs/adr/0009-authentication-at-scale.md): `true` creates one (`usersTable` in shared/tables.ts,
   * the `usersTable` property, the stack output `UsersTableName`); or give a table you manage, keyed
   * by the string `username`. Only the message function may read it.
   * @default - no users table
   */
  readonly usersTable?: boolean | ITable;
  /**
   * JSON Web Tokens in the CONNECT password, verified against the issuer's JWKS, e.g. a Cognito user
   * pool: `{ issuer: 'https://cognito-idp.<region>.amazonaws.com/<pool id>', userClaim: 'username' }`.
   * @default - tokens are not accepted
   */
  readonly jwt?: JwtSettings;
  /**
   * A Lambda function asked about each CONNECT the other sources refuse: it receives
   * `{ clientId, username?, password? (base64), sourceIp? }` and answers `{ allow, user? }`. Only the
   * message function may invoke it.
   * @default - no authorizer function
   */
  readonly authorizerFunction?: IFunction;
}

export interface NimbusBrokerProps {
  /**
   * API Gateway stage name; part of the wss URL and the management endpoint.
   * @default 'prod'
   */
  readonly stageName?: string;
  /**
   * Powertools log level of every function.
   * @default 'INFO'
   */
  readonly logLevel?: BrokerLogLevel;
  /**
   * What happens to the tables and log groups when the stack is deleted. Use
   * `RemovalPolicy.DESTROY` for throwaway stacks.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Stage-wide steady-state limit, in WebSocket messages per second (inbound messages and connects).
   * @default 1000
   */
  readonly throttlingRateLimit?: number;
  /**
   * Stage-wide burst limit, in messages.
   * @default 2000
   */
  readonly throttlingBurstLimit?: number;
  /**
   * Most messages queued for one offline persistent session; beyond it, the broker drops QoS 0 and
   * refuses to queue more (passed as `NIMBUS_MAX_QUEUED_PER_SESSION`).
   * @default 1000 (`defaultMaxQueuedPerSession` in shared/config.ts)
   */
  readonly maxQueuedMessagesPerSession?: number;
  /**
   * Largest MQTT packet the broker accepts, in bytes (passed as `NIMBUS_MAX_PACKET_SIZE`).
   * @default - unset: the broker uses API Gateway's 128 KB message limit, base64-decoded
   */
  readonly maxPacketSize?: number;
  /**
   * Quotas on client id, topic and filter lengths, filters per SUBSCRIBE and subscriptions per
   * session (`NIMBUS_MAX_CLIENT_ID_BYTES`, `NIMBUS_MAX_TOPIC_BYTES`, `NIMBUS_MAX_FILTER_BYTES`,
   * `NIMBUS_MAX_FILTERS_PER_SUBSCRIBE`, `NIMBUS_MAX_SUBSCRIPTIONS_PER_SESSION`), and the MQTT 5
   * Topic Alias Maximum both ways (`topicAliasMaximum`, `NIMBUS_TOPIC_ALIAS_MAXIMUM`; 0 turns topic
   * aliases off). Synthesis fails when they would let a key or a record exceed DynamoDB's limits.
   * @default - `defaultLimits` in shared/limits.ts: 256, 1024, 767 bytes, 100 filters, 1,000 subscriptions, 10 topic aliases
   */
  readonly limits?: Partial<BrokerLimits>;
  /**
   * Memory of each function, in MB. The broker is I/O bound, so more memory mostly costs more.
   * @default 256
   */
  readonly memorySize?: number;
  /**
   * How long function and access logs are kept.
   * @default RetentionDays.ONE_MONTH
   */
  readonly logRetention?: RetentionDays;
  /**
   * Custom domain for the wss URL.
   * @default - none: clients use the execute-api URL
   */
  readonly customDomain?: NimbusCustomDomain;
  /**
   * SNS topic that receives alarm and OK notifications.
   * @default - alarms have no actions
   */
  readonly alarmTopic?: ITopic;
  /**
   * CloudWatch namespace of the broker's own metrics (publishes, deliveries by outcome, fan-out
   * lag, handshakes), which the functions emit as Embedded Metric Format and the dashboard graphs.
   * Give each broker in an account its own.
   * @default 'NimbusMQTT'
   */
  readonly metricsNamespace?: string;
  /**
   * Set the region's API Gateway account CloudWatch role, which WebSocket access logs require. Turn
   * off when the account's role is already managed elsewhere. The role is retained on delete,
   * because the account setting keeps pointing at it.
   * @default true
   */
  readonly configureApiGatewayAccountRole?: boolean;
  /**
   * Authentication of MQTT CONNECT: clients must pass one of the methods given, or are refused
   * (CONNACK 4/5, MQTT 5 reason 0x86/0x87). Only the message function sees it.
   * @default - none: `allowAnonymous: true` is then required
   */
  readonly authentication?: NimbusAuthentication;
  /**
   * Let any client connect without credentials. The broker requires an explicit choice: either
   * `authentication` or `allowAnonymous: true`.
   * @default false
   */
  readonly allowAnonymous?: boolean;
  /**
   * A Mosquitto ACL file on the machine that synthesizes: clients may publish, subscribe and
   * receive only what it grants. Bundled with the message, fan-out and sweeper functions.
   * @default - none: every client may use every topic except writing `$` topics
   */
  readonly aclFile?: string;
}

/** Names of the bundled security files inside a function's code directory. */
export const bundledPasswordFile = 'nimbus.passwd';
export const bundledAclFile = 'nimbus.acl';

/** The ways `authentication` can let a client in; any one of them is a choice. */
const authenticationMethods = ['passwordFile', 'users', 'usersTable', 'jwt', 'authorizerFunction'] as const;

/** Who may connect is a decision the deployer makes, never a default. */
export function checkAccessChoice(props: NimbusBrokerProps): void {
  const auth = props.authentication;
  if (auth && !authenticationMethods.some((method) => auth[method] !== undefined && auth[method] !== false)) {
    throw new Error(
      `NimbusBroker: authentication needs at least one method: ${authenticationMethods.join(', ')}.`,
    );
  }
  if (auth && props.allowAnonymous) {
    throw new Error('NimbusBroker: give either authentication or allowAnonymous: true, not both.');
  }
  if (!auth && props.allowAnonymous !== true) {
    throw new Error(
      "NimbusBroker: say who may connect. Add authentication with at least one of passwordFile: 'path/to/passwd' (a Mosquitto password file; `npx nimbus passwd FILE USER` writes one), users (a users document), usersTable: true (a DynamoDB users table; `npx nimbus users add`), jwt: { issuer } (JSON Web Tokens, e.g. a Cognito user pool) or authorizerFunction (a Lambda asked about each CONNECT); or allowAnonymous: true to let any client connect (CDK CLI: -c passwordFile=FILE or -c allowAnonymous=true).",
    );
  }
}
