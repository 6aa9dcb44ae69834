import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import {
  ApiMapping,
  DomainName,
  SecurityPolicy,
  WebSocketApi,
  type WebSocketStage,
} from 'aws-cdk-lib/aws-apigatewayv2';
import { WebSocketLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import { Certificate } from 'aws-cdk-lib/aws-certificatemanager';
import type { Alarm, Dashboard } from 'aws-cdk-lib/aws-cloudwatch';
import type { ITable, TableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { Rule, RuleTargetInput, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import type { Role } from 'aws-cdk-lib/aws-iam';
import { type IFunction, StartingPosition } from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { keepAliveSchedule } from '../shared/broker/keepalive.js';
import { fanoutEventSource } from '../shared/event-source.js';
import type { BrokerFunctionId } from '../shared/function-environment.js';
import type { TableId } from '../shared/tables.js';
import {
  bundledAclFile,
  bundledPasswordFile,
  checkAccessChoice,
  type NimbusBrokerProps,
} from './broker-props.js';
import { acknowledgeChecks } from './checks.js';
import { grantFanoutPages } from './fanout-pages.js';
import { addFrameQueue } from './frame-queue.js';
import { createBrokerFunctions } from './functions.js';
import { createBrokerAlarms, createBrokerDashboard } from './monitoring.js';
import { createBrokerStage } from './stage.js';
import { createBrokerTables, createUsersTable, grantBrokerTableAccess, streamedTable } from './tables.js';

export type { NimbusAuthentication, NimbusBrokerProps, NimbusCustomDomain } from './broker-props.js';

/**
 * The whole Nimbus MQTT broker: WebSocket API, the FIFO queue that keeps each
 * connection's frames in order, the four functions, the DynamoDB tables (built
 * from `shared/tables.ts`), the stream fan-out, the sweeper schedule, alarms
 * and a dashboard.
 *
 * Each concern is built by its own module (tables.ts, functions.ts, frame-queue.ts,
 * stage.ts, monitoring.ts, checks.ts) directly in this construct's scope rather than in a child
 * construct: a child would add a path segment to every logical id, and CloudFormation
 * would replace the resources, the tables with their data among them.
 *
 * @example
 * const broker = new NimbusBroker(stack, 'Broker', {
 *   removalPolicy: RemovalPolicy.DESTROY,
 *   alarmTopic: topic,
 * });
 * new CfnOutput(stack, 'Url', { value: broker.webSocketUrl });
 */
export class NimbusBroker extends Construct {
  /** The URL MQTT clients connect to (`wss://…`). */
  readonly webSocketUrl: string;
  /** The `https://…/{stage}` endpoint of the API Gateway Management API. */
  readonly managementEndpoint: string;
  readonly api: WebSocketApi;
  readonly stage: WebSocketStage;
  readonly tables: Readonly<Record<TableId, TableV2>>;
  readonly functions: Readonly<Record<BrokerFunctionId, NodejsFunction>>;
  /** Where the fan-out's event source mapping sends batches it gave up on. */
  readonly fanoutFailureQueue: Queue;
  /** `$default`: inbound frames, one message group per connection, drained by the message function. */
  readonly frameQueue: Queue;
  /** Frames the message function failed on `maxReceiveCount` times. */
  readonly frameDeadLetterQueue: Queue;
  /** The role API Gateway assumes to send frames to `frameQueue`. */
  readonly frameQueueSendRole: Role;
  /** The custom domain, when one was configured: point a DNS record at its `regionalDomainName`. */
  readonly domainName?: DomainName;
  /** The users table, when `authentication.usersTable` asked for one. */
  readonly usersTable?: ITable;
  /** The function asked about each CONNECT, when `authentication.authorizerFunction` named one. */
  readonly authorizerFunction?: IFunction;
  readonly alarms: readonly Alarm[];
  readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: NimbusBrokerProps = {}) {
    super(scope, id);
    checkAccessChoice(props);
    const stageName = props.stageName ?? 'prod';
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const logRetention = props.logRetention ?? RetentionDays.ONE_MONTH;

    this.tables = createBrokerTables(this, { removalPolicy });
    const authentication = props.authentication;
    const wantsTable = authentication?.usersTable;
    this.usersTable =
      wantsTable === true ? createUsersTable(this, { removalPolicy }) : wantsTable || undefined;

    this.api = new WebSocketApi(this, 'Api', {
      description: 'Nimbus MQTT: MQTT 3.1.1/5.0 over WebSocket text frames',
    });
    // Set before the functions exist so their environment can name it.
    this.managementEndpoint = `https://${this.api.apiId}.execute-api.${Stack.of(this).region}.${Stack.of(this).urlSuffix}/${stageName}`;

    this.functions = createBrokerFunctions(this, {
      environment: {
        tables: Object.fromEntries(
          Object.entries(this.tables).map(([tableId, table]) => [tableId, table.tableName]),
        ) as Record<TableId, string>,
        managementEndpoint: this.managementEndpoint,
        maxPacketSize: props.maxPacketSize,
        maxQueuedPerSession: props.maxQueuedMessagesPerSession,
        limits: props.limits,
        authUsers: authentication?.users,
        passwordFile: authentication?.passwordFile && bundledPasswordFile,
        aclFile: props.aclFile && bundledAclFile,
        metricsNamespace: props.metricsNamespace,
        auth: {
          usersTable: this.usersTable?.tableName,
          jwt: authentication?.jwt,
          authorizerFunction: authentication?.authorizerFunction?.functionArn,
        },
      },
      bundledFiles: {
        ...(authentication?.passwordFile ? { [bundledPasswordFile]: authentication.passwordFile } : {}),
        ...(props.aclFile ? { [bundledAclFile]: props.aclFile } : {}),
      },
      logLevel: props.logLevel,
      memorySize: props.memorySize,
      logRetention,
      removalPolicy,
    });
    grantBrokerTableAccess(this.tables, this.functions);
    // Only the message function handles CONNECT.
    this.usersTable?.grantReadData(this.functions.message);
    this.authorizerFunction = authentication?.authorizerFunction;
    this.authorizerFunction?.grantInvoke(this.functions.message);

    const { connect, message, fanout, sweeper } = this.functions;
    this.api.addRoute('$connect', {
      // A Lambda proxy integration passes the function's headers through, so $connect can answer
      // `Sec-WebSocket-Protocol: mqtt`, which MQTT clients require.
      integration: new WebSocketLambdaIntegration('ConnectIntegration', connect),
    });
    const frames = addFrameQueue(this, { api: this.api, consumer: message });
    this.frameQueue = frames.queue;
    this.frameDeadLetterQueue = frames.deadLetterQueue;
    this.frameQueueSendRole = frames.sendRole;

    this.stage = createBrokerStage(this, {
      api: this.api,
      stageName,
      throttlingRateLimit: props.throttlingRateLimit,
      throttlingBurstLimit: props.throttlingBurstLimit,
      logRetention,
      removalPolicy,
      configureAccountRole: props.configureApiGatewayAccountRole,
    });

    for (const fn of [message, fanout, sweeper]) this.stage.grantManagementApiAccess(fn);
    grantFanoutPages(this, fanout);

    if (props.customDomain) {
      const { domainName, certificate } = props.customDomain;
      this.domainName = new DomainName(this, 'Domain', {
        domainName,
        certificate:
          typeof certificate === 'string'
            ? Certificate.fromCertificateArn(this, 'Certificate', certificate)
            : certificate,
        securityPolicy: SecurityPolicy.TLS_1_2,
      });
      new ApiMapping(this, 'ApiMapping', { api: this.api, domainName: this.domainName, stage: this.stage });
      this.webSocketUrl = `wss://${domainName}`;
    } else {
      this.webSocketUrl = this.stage.url;
    }

    this.fanoutFailureQueue = new Queue(this, 'FanoutFailures', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    fanout.addEventSource(
      new DynamoEventSource(streamedTable(this.tables), {
        startingPosition: StartingPosition.LATEST,
        batchSize: fanoutEventSource.batchSize,
        maxBatchingWindow: Duration.seconds(fanoutEventSource.maxBatchingWindowSeconds),
        retryAttempts: fanoutEventSource.retryAttempts,
        maxRecordAge: Duration.seconds(fanoutEventSource.maxRecordAgeSeconds),
        bisectBatchOnError: fanoutEventSource.bisectBatchOnError,
        reportBatchItemFailures: fanoutEventSource.reportBatchItemFailures,
        parallelizationFactor: fanoutEventSource.parallelizationFactor,
        onFailure: new SqsDlq(this.fanoutFailureQueue),
      }),
    );

    new Rule(this, 'SweepSchedule', {
      description: 'Runs the Nimbus sweeper: keep-alive expiry, connections whose $disconnect was lost',
      schedule: Schedule.rate(Duration.minutes(1)),
      // A missed sweep is covered by the next one a minute later, so no retries.
      targets: [new LambdaFunction(sweeper, { retryAttempts: 0, maxEventAge: Duration.minutes(1) })],
    });

    new Rule(this, 'KeepAliveSchedule', {
      description: 'Runs the Nimbus keep-alive check every second through each minute',
      schedule: Schedule.rate(Duration.minutes(1)),
      // A missed minute's deadlines are still due in the next one, so no retries.
      targets: [
        new LambdaFunction(sweeper, {
          event: RuleTargetInput.fromObject({ keepAlive: keepAliveSchedule }),
          retryAttempts: 0,
          maxEventAge: Duration.minutes(1),
        }),
      ],
    });

    const watched = {
      api: this.api,
      stage: this.stage,
      functions: this.functions,
      tables: this.tables,
      frameQueue: this.frameQueue,
      frameDeadLetterQueue: this.frameDeadLetterQueue,
      fanoutFailureQueue: this.fanoutFailureQueue,
      alarmTopic: props.alarmTopic,
      metricsNamespace: props.metricsNamespace,
    };
    this.alarms = createBrokerAlarms(this, watched);
    this.dashboard = createBrokerDashboard(this, watched);
    acknowledgeChecks(this);
  }
}
