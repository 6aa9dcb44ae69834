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
} from 'aws-lambda';
import { fanoutEventSource } from '../shared/event-source.js';
import { frameQueueSettings } from '../shared/frame-queue.js';
import type { BrokerFunctionId } from '../shared/function-environment.js';
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
import { awsGatewayLimits, Gateway } from './gateway.js';
import { fanoutInvokePath, lambdaInvokeRoute, startPagePool } from './lambda-api.js';
import { createLog } from './log.js';
import { Meter } from './meter.js';
import { cached, countItems, metricsEndpoint, TrafficMetrics } from './metrics.js';
import { bill, formatBill } from './prices.js';
import { every, scheduledEvent } from './schedules.js';
import { SignatureChecker } from './sigv4.js';
import { type OnFailureRecord, StreamPoller } from './stream-poller.js';
import type { Emulator, EmulatorOptions } from './surface.js';
import { Traffic } from './traffic.js';

export type { Emulator, EmulatorOptions };

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
