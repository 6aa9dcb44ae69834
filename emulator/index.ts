import { appendFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import type {
  DynamoDBBatchResponse,
  DynamoDBRecord,
  DynamoDBStreamEvent,
  SQSBatchResponse,
  SQSEvent,
  SQSRecord,
} from 'aws-lambda';
import type { JwtSettings } from '../shared/auth/jwt-authenticator.js';
import type { PasswordHash } from '../shared/auth.js';
import { fanoutEventSource, type StreamEventSourceSettings } from '../shared/event-source.js';
import { type FrameQueueSettings, frameQueueSettings } from '../shared/frame-queue.js';
import type { BrokerFunctionId } from '../shared/function-environment.js';
import type { BrokerLimits } from '../shared/limits.js';
import {
  messagesTable,
  subscriptionsTable,
  type TableId,
  tableDefinitions,
  usersTable,
} from '../shared/tables.js';
import { ConsoleRoutes } from './console-api.js';
import { ensureTables, localCredentials, localRegion, startDynamoDbLocal } from './dynamodb-local.js';
import { FifoQueue } from './fifo-queue.js';
import type { FunctionPool } from './function-pool.js';
import { startFunctionPools } from './functions.js';
import { awsGatewayLimits, Gateway, type GatewayLimits } from './gateway.js';
import { fanoutInvokePath, lambdaInvokeRoute, startPagePool } from './lambda-api.js';
import { createLog, type LogLevel } from './log.js';
import { Meter, type MeterReading } from './meter.js';
import { cached, countItems, metricsEndpoint, TrafficMetrics } from './metrics.js';
import { bill, formatBill } from './prices.js';
import type { PublishTrace } from './publish-traces.js';
import { every, scheduledEvent } from './schedules.js';
import { SignatureChecker } from './sigv4.js';
import { type OnFailureRecord, StreamPoller } from './stream-poller.js';
import { Traffic } from './traffic.js';

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

const tableName = (id: string) => `nimbus-${id}`;
const accountId = '000000000000';

/**
 * Starts the whole broker locally: DynamoDB Local, the four functions in
 * worker threads, the WebSocket gateway, `$default`'s FIFO queue, the stream
 * event source and the sweeper's schedule.
 *
 * @example
 * const emulator = await startEmulator({ port: 0 });
 * const client = connect(emulator.url);   // from 'nimbus-mqtt/client'
 * await emulator.stop();
 */
export async function startEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
  const sink = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const emulatorLog = createLog(options.logLevel ?? 'warn', sink);
  const log = (message: string) => emulatorLog.message('error', message);
  const meter = new Meter();
  const traffic = new Traffic(emulatorLog);
  // Joins a frame to its stored message by the client id the gateway saw connect.
  const trafficMetrics = new TrafficMetrics((connectionId) => traffic.clientIdOf(connectionId));
  const dataDir = options.dataDir ? resolve(options.dataDir) : undefined;
  const ddb = await startDynamoDbLocal({ dataDir: dataDir && join(dataDir, 'dynamodb') });
  const cleanups: Array<() => Promise<void>> = [() => ddb.stop()];
  const stopAll = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  };
  try {
    const sdk = { endpoint: ddb.endpoint, region: localRegion, credentials: localCredentials };
    const admin = new DynamoDBClient(sdk);
    const tables = tableDefinitions.map((definition) => ({
      definition,
      tableName: tableName(definition.id),
    }));
    const tableNames = Object.fromEntries(tables.map((t) => [t.definition.id, t.tableName])) as Record<
      TableId,
      string
    >;
    const usersTableName = tableName(usersTable.id);
    const streams = await ensureTables(admin, [
      ...tables,
      { definition: usersTable, tableName: usersTableName },
    ]);
    // Kept for the subscriptions gauge: it talks to DynamoDB Local directly, so scrapes bill nothing.
    cleanups.push(async () => admin.destroy());

    // The pools start once the gateway's port is known; nothing invokes before then.
    let pools: Record<BrokerFunctionId, FunctionPool> | undefined;
    /** The fan-out's page invocations (emulator/lambda-api.ts). */
    let pagePool: FunctionPool | undefined;
    const invoke = (name: BrokerFunctionId, event: unknown) => {
      if (!pools) throw new Error(`no function ${name} yet`);
      return pools[name].invoke(event);
    };
    const { visibilityTimeoutMs, ...queueSettings } = options.frameQueue ?? {};
    const settings = { ...frameQueueSettings, ...queueSettings };
    const frameQueue = new FifoQueue({
      queueName: 'nimbus-frames.fifo',
      region: localRegion,
      accountId,
      batchSize: settings.batchSize,
      maxReceiveCount: settings.maxReceiveCount,
      deduplicationWindowMs: settings.deduplicationWindowSeconds * 1000,
      visibilityTimeoutMs: visibilityTimeoutMs ?? 200,
      invoke: async (event: SQSEvent) => {
        const response = (await trafficMetrics.messageBatch(event, () => invoke('message', event))) as
          | SQSBatchResponse
          | undefined;
        return settings.reportBatchItemFailures ? response : undefined;
      },
      onDeadLetter: (record) =>
        log(
          `frame queue gave up on message ${record.messageId} of connection ${record.attributes.MessageGroupId} after ${record.attributes.ApproximateReceiveCount} receives`,
        ),
      meter,
    });
    const consoleRoutes = new ConsoleRoutes({
      traffic,
      meter: () => meter.read(),
      dynamo: sdk,
      tables: tableNames,
    });
    cleanups.push(async () => consoleRoutes.close());
    const gateway: Gateway = new Gateway({
      host: '127.0.0.1',
      port: options.port ?? 0,
      stage: 'local',
      limits: { ...awsGatewayLimits, ...options.limits },
      connect: (event) => invoke('connect', event),
      queue: frameQueue,
      meter,
      log,
      observer: traffic,
      http: (req, res) => consoleRoutes.handle(req, res),
      traffic: trafficMetrics,
      throttledPostShare: options.throttledPostShare,
      // The functions sign with the credentials the emulator gives them, as on AWS with their role.
      signatures: new SignatureChecker({
        credentials: localCredentials,
        region: localRegion,
        service: 'execute-api',
      }),
      routes: {
        [fanoutInvokePath]: lambdaInvokeRoute(() => pagePool),
        '/metrics': metricsEndpoint({
          meter: () => meter.read(),
          traffic: trafficMetrics,
          gauges: async () => ({
            connections: gateway.connectionCount,
            subscriptions: await subscriptions(),
          }),
        }),
      },
    });
    const subscriptions = cached(() => countItems(admin, tableName(subscriptionsTable.id)), 5_000);
    const port = await gateway.listen();
    // Stops answering after the functions have stopped: work still finishing then gets 410 for the
    // connections that are gone, as on AWS, rather than a refused socket and a retried frame.
    cleanups.push(() => gateway.close());
    const managementEndpoint = `http://127.0.0.1:${port}`;

    pools = await startFunctionPools(
      {
        broker: {
          tables: tableNames,
          managementEndpoint,
          dynamoEndpoint: ddb.endpoint,
          authUsers: options.users,
          maxQueuedPerSession: options.maxQueuedPerSession,
          passwordFile: options.passwordFile && resolve(options.passwordFile),
          aclFile: options.aclFile && resolve(options.aclFile),
          enhancedAuthModule: options.enhancedAuthModule && resolve(options.enhancedAuthModule),
          limits: options.brokerLimits,
          auth: { usersTable: options.usersTable ? usersTableName : undefined, jwt: options.jwt },
        },
        maxInstances: options.maxInstances,
        warmInstances: options.warmInstances,
        fanoutPageSize: options.fanoutPageSize,
        // Counted as often as the sweeper publishes the `$SYS/` figures; with no sweeper, not at all.
        sysCountIntervalMs:
          options.sweepIntervalMs === 0 ? Number.POSITIVE_INFINITY : (options.sweepIntervalMs ?? 60_000),
        jitterMs: options.jitterMs,
        timeoutsMs: options.functionTimeoutsMs,
      },
      meter,
    );
    for (const pool of Object.values(pools)) cleanups.push(() => pool.stop());
    const pages = await startPagePool(pools.fanout, meter, {
      warm: options.fanoutPageInstances ?? options.warmInstances ?? 1,
      ...(options.fanoutPageInstances ? { maxInstances: options.fanoutPageInstances } : {}),
    });
    pagePool = pages;
    cleanups.push(() => pages.stop());
    // Nothing else has run yet (clients do not have the URL): the meter starts with the first client.
    meter.reset();
    trafficMetrics.reset();
    // Stopped before the functions, so the batches it has in flight can finish.
    cleanups.push(() => frameQueue.stop());
    // Before the queue and the functions stop: connections end while the broker still runs.
    cleanups.push(() => gateway.disconnectAll());

    // The CDK schedules: the sweeper every minute, the keep-alive check every second.
    cleanups.push(
      every(
        options.sweepIntervalMs ?? 60_000,
        () => invoke('sweeper', scheduledEvent(localRegion, accountId)),
        (error) => log(`sweeper failed: ${error.message}`),
      ),
    );
    const keepAliveCheckIntervalMs = options.keepAliveCheckIntervalMs ?? 1_000;
    cleanups.push(
      every(
        keepAliveCheckIntervalMs,
        () => invoke('sweeper', { keepAlive: { runForMs: 0, periodMs: keepAliveCheckIntervalMs } }),
        (error) => log(`keep-alive check failed: ${error.message}`),
      ),
    );

    const failedBatches: Array<{ record: OnFailureRecord; records: DynamoDBRecord[] }> = [];
    const failureLog = dataDir ? join(dataDir, 'fanout-failures.jsonl') : undefined;
    if (dataDir) mkdirSync(dataDir, { recursive: true });
    const streamsClient = new DynamoDBStreamsClient(sdk);
    const messagesStream = streams.get(tableName(messagesTable.id));
    if (!messagesStream) throw new Error('the message table has no stream');
    const poller = new StreamPoller({
      client: streamsClient,
      streamArn: messagesStream,
      settings: { ...fanoutEventSource, ...options.eventSource },
      partitionKey: messagesTable.partitionKey.name,
      pollIntervalMs: options.streamPollIntervalMs,
      // A kept table resumes after what was fanned out before the restart, so nothing written is missed.
      checkpointFile: dataDir && join(dataDir, 'stream-checkpoints.json'),
      invoke: async (event: DynamoDBStreamEvent) =>
        (await trafficMetrics.fanoutBatch(event, () => invoke('fanout', event))) as
          | DynamoDBBatchResponse
          | undefined,
      onFailure: (record, records) => {
        failedBatches.push({ record, records });
        log(`fan-out gave up on ${records.length} record(s): ${record.requestContext.condition}`);
        if (failureLog) appendFileSync(failureLog, `${JSON.stringify(record)}\n`);
      },
    });
    poller.start();
    let stopping: Promise<void> | undefined;
    cleanups.push(async () => {
      await poller.stop();
      streamsClient.destroy();
    });

    return {
      url: `ws://127.0.0.1:${port}`,
      managementEndpoint,
      consoleUrl: `${managementEndpoint}/`,
      dynamoEndpoint: ddb.endpoint,
      tables: { ...tableNames, [usersTable.id]: usersTableName },
      gateway,
      functions: pools,
      frameQueue,
      deadLetters: frameQueue.deadLetters,
      failedBatches,
      meter: () => meter.read(),
      publishTraces: (since) => trafficMetrics.traces.read(since),
      async settle() {
        // A frame handled can close its connection, whose $disconnect joins the queue: go round
        // until the gateway and the queue are both quiet.
        do {
          await gateway.settle();
          await frameQueue.drain();
          await gateway.settle();
        } while (frameQueue.depth > 0);
        await poller.drain();
      },
      stop() {
        stopping ??= stopAll().then(() => {
          // A report for the person who ran it, at any log level: straight to the sink, unprefixed.
          for (const line of formatBill(bill(meter.read())).split('\n')) sink(line);
        });
        return stopping;
      },
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
