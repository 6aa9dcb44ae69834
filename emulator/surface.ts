/**
 * The emulator's public surface: what `startEmulator` takes and what it returns.
 */
import type { DynamoDBRecord, SQSRecord } from 'aws-lambda';
import type { JwtSettings } from '../shared/auth/jwt-authenticator.js';
import type { PasswordHash } from '../shared/auth.js';
import type { StreamEventSourceSettings } from '../shared/event-source.js';
import type { FrameQueueSettings } from '../shared/frame-queue.js';
import type { BrokerFunctionId } from '../shared/function-environment.js';
import type { BrokerLimits } from '../shared/limits.js';
import type { FifoQueue } from './fifo-queue.js';
import type { FunctionPool } from './function-pool.js';
import type { Gateway, GatewayLimits } from './gateway.js';
import type { LogLevel } from './log.js';
import type { MeterReading } from './meter.js';
import type { PublishTrace } from './publish-traces.js';
import type { OnFailureRecord } from './stream-poller.js';

export interface EmulatorOptions {
  /** Port for clients and the management API on 127.0.0.1; 0 picks a free one. @default 0 */
  port?: number;
  /** Keeps DynamoDB state here across restarts; in memory when absent. */
  dataDir?: string;
  /** Random delay of up to this many ms before each invocation, to shake out ordering bugs. @default 0 */
  jitterMs?: number;
  /**
   * Share of the functions' posts to connections the gateway refuses with 429 `LimitExceededException`,
   * as API Gateway does past the account's request rate or while a client's buffer is full. @default 0
   */
  throttledPostShare?: number;
  /** Gateway limits; tests shorten the idle and lifetime limits. @default AWS's */
  limits?: Partial<GatewayLimits>;
  /** Most concurrent instances per function. @default 4 */
  maxInstances?: number;
  /** Instances started ahead of use per function; with two or more, consecutive invocations alternate between them. @default 1 */
  warmInstances?: number;
  /** Subscribers one fan-out invocation delivers to before it hands pages to parallel ones. @default defaultFanoutPageSize */
  fanoutPageSize?: number;
  /**
   * Instances running the pages of a large fan-out at once, all started ahead of use as provisioned
   * concurrency would be: a cold start here compiles the function in a worker thread, seconds of CPU
   * a bundled Lambda does not spend, and every fresh instance compiles the SDK's hot paths again.
   * @default up to maxInstances, warmInstances of them started ahead
   */
  fanoutPageInstances?: number;
  /** The fan-out's event source mapping; the CDK stack uses the same defaults. */
  eventSource?: Partial<StreamEventSourceSettings>;
  /** Pause between empty stream reads. @default 250 (AWS polls a shard about four times a second) */
  streamPollIntervalMs?: number;
  /**
   * The frame queue's event source mapping; the CDK stack uses the same settings. The visibility
   * timeout is shorter than AWS's so tests see retries quickly.
   */
  frameQueue?: Partial<Omit<FrameQueueSettings, 'visibilityTimeoutSeconds'>> & {
    visibilityTimeoutMs?: number;
  };
  /** How often the sweeper runs, like the CDK schedule; 0 turns it off. @default 60_000 */
  sweepIntervalMs?: number;
  /**
   * How often the keep-alive deadlines are checked; 0 turns it off. AWS runs one invocation a
   * minute that checks every second; here each check is an invocation of its own. @default 1_000
   */
  keepAliveCheckIntervalMs?: number;
  /**
   * Username/password authentication, as the CDK prop `authentication.users`: users by name, each
   * with the entry `npx nimbus hash-password` prints. Given to the message function as `NIMBUS_AUTH_USERS`.
   * @default no authentication: any client may connect
   */
  users?: Readonly<Record<string, PasswordHash>>;
  /** Most QoS 1/2 messages kept for one offline persistent session, as the CDK prop `maxQueuedMessagesPerSession`. @default 1000 */
  maxQueuedPerSession?: number;
  /**
   * A Mosquitto password file (`mosquitto_passwd`, `npx nimbus passwd`): clients must log in as
   * one of its users. With none of this, `users`, `usersTable` and `jwt`, clients connect anonymously.
   */
  passwordFile?: string;
  /** A Mosquitto ACL file: clients may publish, subscribe and receive only what it grants. */
  aclFile?: string;
  /**
   * An ES module whose default export is an `EnhancedAuthenticator` (shared/auth/enhanced.ts): MQTT 5
   * AUTH methods of your own, asked before the built-in SCRAM-SHA-512.
   */
  enhancedAuthModule?: string;
  /**
   * Each function's timeout, enforced as Lambda does (the invocation is abandoned, its instance
   * replaced, its event retried); tests shorten them. @default the CDK stack's (shared/function-settings.ts)
   */
  functionTimeoutsMs?: Partial<Record<BrokerFunctionId, number>>;
  /** The broker's quotas, as the CDK prop `limits` (shared/limits.ts). @default defaultLimits */
  brokerLimits?: Partial<BrokerLimits>;
  /**
   * Authenticate against the users table, as the CDK prop `authentication.usersTable`. The table
   * (`nimbus-Users`) exists either way: `nimbus users add … --table nimbus-Users --endpoint <dynamoEndpoint>`.
   * @default false
   */
  usersTable?: boolean;
  /** Accept JSON Web Tokens as passwords, as the CDK prop `authentication.jwt`. @default not accepted */
  jwt?: JwtSettings;
  /** Where emulator log lines go, one string a line. @default stderr */
  log?: (message: string) => void;
  /**
   * How much the log tells: `error` and `warn` only failures; `info` adds a line per connect,
   * subscribe, refusal and disconnect; `debug` each publish and delivery. @default 'warn'
   */
  logLevel?: LogLevel;
}

export interface Emulator {
  /** The URL clients connect to: ws://127.0.0.1:PORT */
  readonly url: string;
  /** The management API endpoint functions post to. */
  readonly managementEndpoint: string;
  /** DynamoDB Local, for inspecting state: requests made here are not on the broker's bill. */
  readonly dynamoEndpoint: string;
  /** Table names by table id, the users table's (`Users`) among them. */
  readonly tables: Readonly<Record<string, string>>;
  readonly gateway: Gateway;
  /** The web console and its JSON endpoints: http://127.0.0.1:PORT/ */
  readonly consoleUrl: string;
  readonly functions: Readonly<Record<BrokerFunctionId, FunctionPool>>;
  /** The FIFO queue behind `$default` and `$disconnect`. */
  readonly frameQueue: FifoQueue;
  /** Frames the message function's queue gave up on, as its dead-letter queue would hold them. */
  readonly deadLetters: readonly SQSRecord[];
  /** Batches the fan-out's event source gave up on, as its on-failure destination would receive them. */
  readonly failedBatches: ReadonlyArray<{ record: OnFailureRecord; records: DynamoDBRecord[] }>;
  /** What the run has cost so far, in AWS's billing units; also served as Prometheus text at `/metrics`. */
  meter(): MeterReading;
  /**
   * Per-message stage times of the PUBLISHes fanned out so far (published at or after `since`, epoch
   * ms): the broker's own work per message apart from its wait for the stream.
   */
  publishTraces(since?: number): PublishTrace[];
  /** Waits until every message accepted so far has been fanned out. */
  settle(): Promise<void>;
  /** Stops everything, then logs the estimated bill of the run per service. */
  stop(): Promise<void>;
}
