import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Aws, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { AccessLogFormat, CfnAccount } from 'aws-cdk-lib/aws-apigateway';
import {
  ApiMapping,
  DomainName,
  LogGroupLogDestination,
  SecurityPolicy,
  WebSocketApi,
  WebSocketStage,
} from 'aws-cdk-lib/aws-apigatewayv2';
import {
  WebSocketAwsIntegration,
  WebSocketLambdaIntegration,
} from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import { Certificate, type ICertificate } from 'aws-cdk-lib/aws-certificatemanager';
import {
  Alarm,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  type IMetric,
  MathExpression,
  Metric,
  SingleValueWidget,
  Stats,
  TextWidget,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import {
  AttributeType,
  Billing,
  type ITableV2,
  ProjectionType,
  StreamViewType,
  TableV2,
} from 'aws-cdk-lib/aws-dynamodb';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { ManagedPolicy, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime, StartingPosition, Tracing } from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsDlq, SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { DeduplicationScope, FifoThroughputLimit, Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { type PasswordHash, parsePasswordDocument } from '../shared/auth.js';
import { authUsersEnv, managementEndpointEnv, maxPacketSizeEnv } from '../shared/config.js';
import { fanoutEventSource } from '../shared/event-source.js';
import {
  connectionIdAttribute,
  disconnectBody,
  disconnectEventType,
  eventTypeAttribute,
  frameQueueSettings,
} from '../shared/frame-queue.js';
import { type KeyDefinition, type TableId, tableDefinitions } from '../shared/tables.js';

/** Environment variable: most messages queued for one offline persistent session. */
export const maxQueuedPerSessionEnv = 'NIMBUS_MAX_QUEUED_PER_SESSION';
/** Environment variable: session expiry, in seconds, for clients that do not state one (MQTT 3.1.1). */
export const defaultSessionExpiryEnv = 'NIMBUS_DEFAULT_SESSION_EXPIRY';

/** The Lambda runtime every broker function runs on. */
export const brokerRuntime = Runtime.NODEJS_24_X;

/** The broker's functions, by role. */
export type BrokerFunctionId = 'connect' | 'message' | 'fanout' | 'sweeper';

/** Log levels Powertools Logger understands. */
export type BrokerLogLevel = 'TRACE' | 'DEBUG' | 'INFO' | 'WARN' | 'ERROR' | 'SILENT' | 'CRITICAL';

/** A custom domain in front of the WebSocket API. */
export interface NimbusCustomDomain {
  /** Fully qualified domain name clients connect to, e.g. `mqtt.example.com`. */
  readonly domainName: string;
  /** ACM certificate (in the stack's region) covering `domainName`: its ARN, or the certificate itself. */
  readonly certificate: string | ICertificate;
}

/** Who may connect: MQTT CONNECT username/password, checked against salted SHA-256 hashes. */
export interface NimbusAuthentication {
  /**
   * Users by name, each with the entry `npx nimbus hash-password <password>` prints: the hex
   * SHA-256 of the salt followed by the password, and the salt. Passwords themselves are never
   * stored. The document travels in the message function's environment, which Lambda caps at
   * 4 KB in all: a few dozen users (docs/adr/0005-authentication.md).
   */
  readonly users: Readonly<Record<string, PasswordHash>>;
}

/** Largest users document the construct puts in an environment variable, leaving room for the rest of Lambda's 4 KB. */
export const maxAuthUsersBytes = 3000;

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
   * @default 1000
   */
  readonly maxQueuedMessagesPerSession?: number;
  /**
   * Session expiry, in seconds, for clients that do not state one, i.e. MQTT 3.1.1 clients with
   * clean session off (passed as `NIMBUS_DEFAULT_SESSION_EXPIRY`).
   * @default 86400 (one day)
   */
  readonly sessionExpirySeconds?: number;
  /**
   * Largest MQTT packet the broker accepts, in bytes (passed as `NIMBUS_MAX_PACKET_SIZE`).
   * @default - unset: the broker uses API Gateway's 128 KB message limit, base64-decoded
   */
  readonly maxPacketSize?: number;
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
   * Set the region's API Gateway account CloudWatch role, which WebSocket access logs require. Turn
   * off when the account's role is already managed elsewhere. The role is retained on delete,
   * because the account setting keeps pointing at it.
   * @default true
   */
  readonly configureApiGatewayAccountRole?: boolean;
  /**
   * Username/password authentication of MQTT CONNECT: clients must present a listed username and
   * its password, or are refused (CONNACK 4/5, MQTT 5 reason 0x86/0x87). Passed to the message
   * function only, as `NIMBUS_AUTH_USERS`.
   * @default - no authentication: any client may connect
   */
  readonly authentication?: NimbusAuthentication;
}

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Powertools settings shared by every function. */
const serviceName = 'nimbus-mqtt';
const metricsNamespace = 'NimbusMqtt';

/**
 * The whole Nimbus MQTT broker: WebSocket API, the FIFO queue that keeps each
 * connection's frames in order, the five functions, the DynamoDB tables (built
 * from `shared/tables.ts`), the stream fan-out, the sweeper schedule, alarms
 * and a dashboard.
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
  readonly alarms: readonly Alarm[];
  readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: NimbusBrokerProps = {}) {
    super(scope, id);
    const stageName = props.stageName ?? 'prod';
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const logRetention = props.logRetention ?? RetentionDays.ONE_MONTH;

    this.tables = this.createTables(removalPolicy);

    this.api = new WebSocketApi(this, 'Api', {
      description: 'Nimbus MQTT: MQTT 3.1.1/5.0 over WebSocket text frames',
    });
    // Set before the functions exist so their environment can name it.
    this.managementEndpoint = `https://${this.api.apiId}.execute-api.${Stack.of(this).region}.${Stack.of(this).urlSuffix}/${stageName}`;

    const environment: Record<string, string> = {
      ...Object.fromEntries(tableDefinitions.map((t) => [t.envVar, this.tables[t.id].tableName])),
      [managementEndpointEnv]: this.managementEndpoint,
      [maxQueuedPerSessionEnv]: String(props.maxQueuedMessagesPerSession ?? 1000),
      [defaultSessionExpiryEnv]: String(props.sessionExpirySeconds ?? 86400),
      ...(props.maxPacketSize === undefined ? {} : { [maxPacketSizeEnv]: String(props.maxPacketSize) }),
      POWERTOOLS_SERVICE_NAME: serviceName,
      POWERTOOLS_METRICS_NAMESPACE: metricsNamespace,
      POWERTOOLS_LOG_LEVEL: props.logLevel ?? 'INFO',
      NODE_OPTIONS: '--enable-source-maps',
    };
    // Only the message function handles CONNECT, so only it gets the users document.
    const authentication = props.authentication && authenticationEnvironment(props.authentication);
    const makeFunction = (name: BrokerFunctionId, timeout: Duration, description: string) =>
      this.createFunction(name, {
        timeout,
        description,
        environment: name === 'message' ? { ...environment, ...authentication } : environment,
        removalPolicy,
        logRetention,
        props,
      });

    this.functions = {
      connect: makeFunction('connect', Duration.seconds(5), 'MQTT over WebSocket handshake ($connect)'),
      message: makeFunction(
        'message',
        Duration.seconds(15),
        'MQTT packets from clients ($default, via the frame queue)',
      ),
      fanout: makeFunction('fanout', Duration.seconds(60), 'Delivers published messages to subscribers'),
      sweeper: makeFunction('sweeper', Duration.seconds(55), 'Keep-alive, will delay and session expiry'),
    };
    this.grantTableAccess();

    const { connect, message, fanout, sweeper } = this.functions;
    this.api.addRoute('$connect', {
      // A Lambda proxy integration passes the function's headers through, so $connect can answer
      // `Sec-WebSocket-Protocol: mqtt`, which MQTT clients require.
      integration: new WebSocketLambdaIntegration('ConnectIntegration', connect),
    });
    // $default goes through a FIFO queue, one message group per connection, so one connection's
    // frames are handled one after another in arrival order (docs/adr/0003-ordering.md).
    this.frameDeadLetterQueue = new Queue(this, 'FrameDeadLetters', {
      fifo: true,
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.frameQueue = new Queue(this, 'Frames', {
      fifo: true,
      // High-throughput FIFO: partitioned by message group, so connections do not share a limit.
      deduplicationScope: DeduplicationScope.MESSAGE_GROUP,
      fifoThroughputLimit: FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(frameQueueSettings.visibilityTimeoutSeconds),
      // A frame is worthless once its connection is gone, and no connection lives longer than 2 h.
      retentionPeriod: Duration.hours(2),
      deadLetterQueue: {
        queue: this.frameDeadLetterQueue,
        maxReceiveCount: frameQueueSettings.maxReceiveCount,
      },
    });
    this.frameQueueSendRole = new Role(this, 'FrameQueueSendRole', {
      assumedBy: new ServicePrincipal('apigateway.amazonaws.com'),
      description: 'Nimbus MQTT: API Gateway sends $default frames to the frame queue',
    });
    this.frameQueue.grant(this.frameQueueSendRole, 'sqs:SendMessage');
    this.api.addRoute('$default', { integration: this.frameQueueIntegration('$default') });
    message.addEventSource(
      new SqsEventSource(this.frameQueue, {
        batchSize: frameQueueSettings.batchSize,
        reportBatchItemFailures: frameQueueSettings.reportBatchItemFailures,
      }),
    );
    // $disconnect joins the connection's message group: it is handled after the frames before it.
    this.api.addRoute('$disconnect', { integration: this.frameQueueIntegration('$disconnect') });

    const accessLogs = new LogGroup(this, 'AccessLogs', { retention: logRetention, removalPolicy });
    this.stage = new WebSocketStage(this, 'Stage', {
      webSocketApi: this.api,
      stageName,
      autoDeploy: true,
      throttle: {
        rateLimit: props.throttlingRateLimit ?? 1000,
        burstLimit: props.throttlingBurstLimit ?? 2000,
      },
      accessLogSettings: {
        destination: new LogGroupLogDestination(accessLogs),
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            time: '$context.requestTimeEpoch',
            connectionId: '$context.connectionId',
            eventType: '$context.eventType',
            routeKey: '$context.routeKey',
            status: '$context.status',
            ip: '$context.identity.sourceIp',
            integrationStatus: '$context.integrationStatus',
            integrationError: '$context.integrationErrorMessage',
            error: '$context.error.message',
          }),
        ),
      },
    });
    if (props.configureApiGatewayAccountRole ?? true) this.configureAccountLogging();

    for (const fn of [message, fanout, sweeper]) this.stage.grantManagementApiAccess(fn);

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
      new DynamoEventSource(this.streamTable(), {
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
      description: 'Runs the Nimbus sweeper: keep-alive, will delay, session expiry',
      schedule: Schedule.rate(Duration.minutes(1)),
      // A missed sweep is covered by the next one a minute later, so no retries.
      targets: [new LambdaFunction(sweeper, { retryAttempts: 0, maxEventAge: Duration.minutes(1) })],
    });

    this.alarms = this.createAlarms(props.alarmTopic);
    this.dashboard = this.createDashboard();
    this.acknowledgeChecks();
  }

  /**
   * `SendMessage` from the route: the connection id is the message group and an attribute, the
   * request id the deduplication id. Every value is URL-encoded: connection ids are base64 (`+`, `=`).
   */
  private frameQueueIntegration(route: '$default' | '$disconnect'): WebSocketAwsIntegration {
    const encoded = (expression: string) => `$util.urlEncode(${expression})`;
    const fields = [
      'Action=SendMessage',
      `MessageGroupId=${encoded('$context.connectionId')}`,
      `MessageDeduplicationId=${encoded('$context.requestId')}`,
      `MessageBody=${route === '$default' ? encoded('$input.body') : encodeURIComponent(disconnectBody)}`,
      `MessageAttribute.1.Name=${connectionIdAttribute}`,
      'MessageAttribute.1.Value.DataType=String',
      `MessageAttribute.1.Value.StringValue=${encoded('$context.connectionId')}`,
    ];
    if (route === '$disconnect') {
      fields.push(
        `MessageAttribute.2.Name=${eventTypeAttribute}`,
        'MessageAttribute.2.Value.DataType=String',
        `MessageAttribute.2.Value.StringValue=${disconnectEventType}`,
      );
    }
    const body = fields.join('&');
    return new WebSocketAwsIntegration(
      route === '$default' ? 'FrameQueueIntegration' : 'DisconnectQueueIntegration',
      {
        integrationUri: `arn:${Aws.PARTITION}:apigateway:${Aws.REGION}:sqs:path/${Aws.ACCOUNT_ID}/${this.frameQueue.queueName}`,
        integrationMethod: 'POST',
        credentialsRole: this.frameQueueSendRole,
        requestParameters: {
          'integration.request.header.Content-Type': "'application/x-www-form-urlencoded'",
        },
        templateSelectionExpression: '\\$default',
        requestTemplates: { $default: body },
      },
    );
  }

  private createTables(removalPolicy: RemovalPolicy): Record<TableId, TableV2> {
    const attribute = (key: KeyDefinition) => ({
      name: key.name,
      type: key.type === 'S' ? AttributeType.STRING : AttributeType.NUMBER,
    });
    const entries = tableDefinitions.map((definition) => {
      const table = new TableV2(this, `${definition.id}Table`, {
        partitionKey: attribute(definition.partitionKey),
        sortKey: definition.sortKey && attribute(definition.sortKey),
        globalSecondaryIndexes: definition.globalIndexes.map((index) => ({
          indexName: index.indexName,
          partitionKey: attribute(index.partitionKey),
          sortKey: index.sortKey && attribute(index.sortKey),
          projectionType: index.projection === 'ALL' ? ProjectionType.ALL : ProjectionType.KEYS_ONLY,
        })),
        billing: Billing.onDemand(),
        timeToLiveAttribute: definition.timeToLiveAttribute,
        dynamoStream: definition.stream === 'NEW_IMAGE' ? StreamViewType.NEW_IMAGE : undefined,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        removalPolicy,
      });
      return [definition.id, table] as const;
    });
    return Object.fromEntries(entries) as Record<TableId, TableV2>;
  }

  /** The one table whose stream feeds the fan-out. */
  private streamTable(): ITableV2 {
    const streamed = tableDefinitions.filter((t) => t.stream);
    if (streamed.length !== 1) {
      throw new Error(`Expected exactly one streamed table in shared/tables.ts, found ${streamed.length}`);
    }
    return this.tables[streamed[0].id];
  }

  private createFunction(
    name: BrokerFunctionId,
    options: {
      timeout: Duration;
      description: string;
      environment: Record<string, string>;
      removalPolicy: RemovalPolicy;
      logRetention: RetentionDays;
      props: NimbusBrokerProps;
    },
  ): NodejsFunction {
    const id = name.charAt(0).toUpperCase() + name.slice(1);
    const logGroup = new LogGroup(this, `${id}Logs`, {
      retention: options.logRetention,
      removalPolicy: options.removalPolicy,
    });
    // Our own role: writes only to this function's log group, instead of the managed
    // AWSLambdaBasicExecutionRole that allows every log group in the account.
    const role = new Role(this, `${id}Role`, {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `Nimbus MQTT ${name} function`,
    });
    logGroup.grantWrite(role);
    const lockFile = join(repoRoot, 'package-lock.json');
    return new NodejsFunction(this, `${id}Function`, {
      entry: join(repoRoot, 'functions', name, 'index.ts'),
      handler: 'handler',
      projectRoot: repoRoot,
      depsLockFilePath: existsSync(lockFile) ? lockFile : undefined,
      runtime: brokerRuntime,
      architecture: Architecture.ARM_64,
      memorySize: options.props.memorySize ?? 256,
      timeout: options.timeout,
      description: options.description,
      environment: options.environment,
      tracing: Tracing.ACTIVE,
      role,
      logGroup,
      bundling: {
        forceDockerBundling: false,
        format: OutputFormat.ESM,
        mainFields: ['module', 'main'],
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        // Bundle the AWS SDK too: the version is the one package-lock.json pins, not the runtime's.
        externalModules: [],
        // CommonJS dependencies bundled into ESM still call require() for Node built-ins.
        banner:
          "import { createRequire as nimbusCreateRequire } from 'node:module'; const require = nimbusCreateRequire(import.meta.url);",
      },
    });
  }

  /** Least privilege per function; see docs/deploy.md for what each one touches. */
  private grantTableAccess(): void {
    const { Connections, Sessions, Subscriptions, Messages, Deliveries, Retained } = this.tables;
    const { message, fanout, sweeper } = this.functions;
    // connect: no table access; it only checks the subprotocol.
    for (const table of Object.values(this.tables)) table.grantReadWriteData(message);
    // A connection that is gone (a 410 in the fan-out, the sweep's keep-alive check):
    // read and delete its record, end its session, drop a clean session's subscriptions and
    // deliveries, publish its will (the message, the retained store, a QoS 2 marker).
    for (const fn of [fanout, sweeper]) {
      for (const table of [Connections, Sessions, Subscriptions, Deliveries]) table.grantReadWriteData(fn);
      Messages.grantWriteData(fn);
      Retained.grantWriteData(fn);
    }
    // The fan-out also reads subscriptions and sessions, takes packet ids from Sessions and queues
    // deliveries: covered above.
  }

  /**
   * WebSocket access logs need the region's API Gateway account role. Its policy is the managed
   * one on purpose: the setting is region-wide, so other APIs in the account log through it too.
   */
  private configureAccountLogging(): void {
    const role = new Role(this, 'ApiGatewayAccountRole', {
      assumedBy: new ServicePrincipal('apigateway.amazonaws.com'),
      managedPolicies: [
        ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonAPIGatewayPushToCloudWatchLogs'),
      ],
    });
    role.applyRemovalPolicy(RemovalPolicy.RETAIN);
    const account = new CfnAccount(this, 'ApiGatewayAccount', { cloudWatchRoleArn: role.roleArn });
    account.applyRemovalPolicy(RemovalPolicy.RETAIN);
    // The stage must not turn on access logs before the account can write them.
    this.stage.node.addDependency(account);
  }

  private gatewayMetric(metricName: string, label: string, statistic: string = Stats.SUM): Metric {
    return new Metric({
      namespace: 'AWS/ApiGateway',
      metricName,
      dimensionsMap: { ApiId: this.api.apiId, Stage: this.stage.stageName },
      statistic,
      label,
      period: Duration.minutes(1),
    });
  }

  private createAlarms(topic: ITopic | undefined): Alarm[] {
    const { fanout } = this.functions;
    const fns = Object.values(this.functions);
    const throttles: Record<string, IMetric> = Object.fromEntries(
      fns.map((fn, i) => [`t${i}`, fn.metricThrottles({ period: Duration.minutes(1) })]),
    );
    const apiErrors = new MathExpression({
      expression: 'FILL(integration, 0) + FILL(execution, 0)',
      usingMetrics: {
        integration: this.gatewayMetric('IntegrationError', 'Integration errors'),
        execution: this.gatewayMetric('ExecutionError', 'Execution errors'),
      },
      label: 'API Gateway integration + execution errors',
      period: Duration.minutes(1),
    });
    const specs: Array<{ id: string; metric: IMetric; threshold: number; periods: number; what: string }> = [
      {
        id: 'FanoutErrors',
        metric: fanout.metricErrors({ period: Duration.minutes(1) }),
        threshold: 0,
        periods: 1,
        what: 'The fan-out function failed a batch; it will be retried, then sent to the failure queue.',
      },
      {
        id: 'FanoutFailureQueueDepth',
        metric: this.fanoutFailureQueue.metricApproximateNumberOfMessagesVisible({
          period: Duration.minutes(1),
          statistic: Stats.MAXIMUM,
        }),
        threshold: 0,
        periods: 1,
        what: 'Stream batches were given up on: some messages did not reach subscribers. Inspect the queue and replay from the stream within 24 h.',
      },
      {
        id: 'FrameDeadLetterDepth',
        metric: this.frameDeadLetterQueue.metricApproximateNumberOfMessagesVisible({
          period: Duration.minutes(1),
          statistic: Stats.MAXIMUM,
        }),
        threshold: 0,
        periods: 1,
        what: 'The message function failed on frames 5 times and gave up on them: their clients were not answered. Inspect the frame dead-letter queue.',
      },
      {
        id: 'StreamIteratorAge',
        metric: fanout.metric('IteratorAge', { period: Duration.minutes(1), statistic: Stats.MAXIMUM }),
        threshold: 60_000,
        periods: 3,
        what: 'Fan-out is more than a minute behind the message stream for three minutes.',
      },
      {
        id: 'FunctionThrottles',
        metric: new MathExpression({
          expression: `SUM([${Object.keys(throttles)
            .map((k) => `FILL(${k}, 0)`)
            .join(', ')}])`,
          usingMetrics: throttles,
          label: 'Throttles, all broker functions',
          period: Duration.minutes(1),
        }),
        threshold: 0,
        periods: 1,
        what: 'A broker function was throttled: raise the account concurrency limit.',
      },
      {
        // Refused handshakes also count as integration errors, hence a threshold above zero.
        id: 'ApiErrors',
        metric: apiErrors,
        threshold: 10,
        periods: 5,
        what: 'API Gateway could not run the broker functions (integration or execution errors).',
      },
    ];
    return specs.map((spec) => {
      const alarm = new Alarm(this, `${spec.id}Alarm`, {
        metric: spec.metric,
        threshold: spec.threshold,
        evaluationPeriods: spec.periods,
        datapointsToAlarm: spec.periods,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
        alarmDescription: spec.what,
      });
      if (topic) {
        alarm.addAlarmAction(new SnsAction(topic));
        alarm.addOkAction(new SnsAction(topic));
      }
      return alarm;
    });
  }

  private createDashboard(): Dashboard {
    const { message, fanout } = this.functions;
    const minute = Duration.minutes(1);
    const connects = this.gatewayMetric('ConnectCount', 'Connects');
    const gatewayMessages = this.gatewayMetric('MessageCount', 'WebSocket messages (in + out)');
    // Each inbound WebSocket message is one message sent to the frame queue.
    const messagesIn = this.frameQueue.metricNumberOfMessagesSent({
      period: minute,
      statistic: Stats.SUM,
      label: 'Messages in',
    });
    const messagesOut = new MathExpression({
      expression: 'MAX([FILL(total, 0) - FILL(inbound, 0), 0])',
      usingMetrics: { total: gatewayMessages, inbound: messagesIn },
      label: 'Messages out (total − in, approximate)',
      period: minute,
    });
    const tableMetrics = (name: 'ConsumedReadCapacityUnits' | 'ConsumedWriteCapacityUnits') =>
      tableDefinitions.map((t) =>
        this.tables[t.id].metric(name, { period: minute, statistic: Stats.SUM, label: t.id }),
      );
    const dashboard = new Dashboard(this, 'Dashboard', { defaultInterval: Duration.hours(3) });
    dashboard.addWidgets(
      new TextWidget({
        markdown: `# Nimbus MQTT\nAPI \`${this.api.apiId}\` stage \`${this.stage.stageName}\`. Fan-out failures land in the failure queue, frames the message function gave up on in the frame dead-letter queue.`,
        width: 24,
        height: 2,
      }),
    );
    dashboard.addWidgets(
      new GraphWidget({ title: 'Connections', left: [connects], width: 8 }),
      new GraphWidget({ title: 'Messages in / out', left: [messagesIn, messagesOut], width: 8 }),
      new SingleValueWidget({
        title: 'Failure queue depths',
        metrics: [
          this.fanoutFailureQueue.metricApproximateNumberOfMessagesVisible({
            period: minute,
            label: 'Fan-out failures',
          }),
          this.frameDeadLetterQueue.metricApproximateNumberOfMessagesVisible({
            period: minute,
            label: 'Frame dead letters',
          }),
        ],
        width: 8,
      }),
    );
    dashboard.addWidgets(
      new GraphWidget({
        title: 'Fan-out duration',
        left: [
          fanout.metricDuration({ period: minute, statistic: Stats.AVERAGE, label: 'avg' }),
          fanout.metricDuration({ period: minute, statistic: Stats.p(99), label: 'p99' }),
        ],
        width: 8,
      }),
      new GraphWidget({
        title: 'Fan-out errors',
        left: [fanout.metricErrors({ period: minute }), fanout.metricThrottles({ period: minute })],
        width: 8,
      }),
      new GraphWidget({
        title: 'Stream iterator age (ms)',
        left: [fanout.metric('IteratorAge', { period: minute, statistic: Stats.MAXIMUM, label: 'max' })],
        width: 8,
      }),
    );
    dashboard.addWidgets(
      new GraphWidget({
        title: 'DynamoDB consumed read units',
        left: tableMetrics('ConsumedReadCapacityUnits'),
        width: 8,
      }),
      new GraphWidget({
        title: 'DynamoDB consumed write units',
        left: tableMetrics('ConsumedWriteCapacityUnits'),
        width: 8,
      }),
      new GraphWidget({
        title: 'Function errors',
        left: Object.entries(this.functions).map(([name, fn]) =>
          fn.metricErrors({ period: minute, label: name }),
        ),
        width: 8,
      }),
    );
    dashboard.addWidgets(
      new GraphWidget({
        title: 'Frame queue: age of the oldest frame (s)',
        left: [
          this.frameQueue.metricApproximateAgeOfOldestMessage({
            period: minute,
            statistic: Stats.MAXIMUM,
            label: 'max',
          }),
        ],
        width: 12,
      }),
      new GraphWidget({
        title: 'Message function duration (per batch of frames)',
        left: [
          message.metricDuration({ period: minute, statistic: Stats.AVERAGE, label: 'avg' }),
          message.metricDuration({ period: minute, statistic: Stats.p(99), label: 'p99' }),
        ],
        width: 12,
      }),
    );
    return dashboard;
  }

  /**
   * Acknowledges the cdk-nag AwsSolutions findings that are deliberate, each with why it is right
   * here. Everything else the checks find stays an error.
   */
  private acknowledgeChecks(): void {
    const stack = Stack.of(this);
    const iam5 = (finding: string) => `AwsSolutions-IAM5[Resource::${nagText(stack.resolve(finding))}]`;
    const indexTables = tableDefinitions
      .filter((t) => t.globalIndexes.length > 0)
      .map((t) => this.tables[t.id]);
    // The resource `WebSocketStage.grantManagementApiAccess` grants.
    const connectionsArn = `${stack.formatArn({ service: 'execute-api', resource: this.api.apiId })}/${this.stage.stageName}/*/@connections/*`;
    for (const [name, fn] of Object.entries(this.functions) as Array<[BrokerFunctionId, NodejsFunction]>) {
      const role = fn.role;
      if (!role) continue;
      const validations = Validations.of(role);
      validations.acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          name === 'fanout'
            ? 'X-Ray PutTraceSegments/PutTelemetryRecords and dynamodb:ListStreams (added by the stream event source) do not support resource-level permissions.'
            : 'X-Ray PutTraceSegments/PutTelemetryRecords do not support resource-level permissions, so active tracing needs Resource *.',
      });
      if (name === 'connect') continue;
      for (const table of indexTables) {
        validations.acknowledge({
          id: iam5(`${table.tableArn}/index/*`),
          reason:
            "Table grants include the table's own index ARNs (table/index/*) so the broker can query its global secondary indexes; the wildcard covers only that table's indexes.",
        });
      }
      validations.acknowledge({
        id: iam5(connectionsArn),
        reason:
          "PostToConnection and DeleteConnection address connection ids that exist only at run time; the grant is limited to this stage's @connections/* path.",
      });
    }
    for (const route of ['$connect', '$default', '$disconnect']) {
      const resource = this.api.node.tryFindChild(`${route}-Route`);
      if (!resource) continue;
      Validations.of(resource).acknowledge({
        id: 'AwsSolutions-APIG4',
        reason:
          'MQTT clients authenticate in the protocol (CONNECT username/password, MQTT 5 enhanced auth), which the broker functions check; API Gateway allows an authorizer on $connect only, and $default/$disconnect belong to a connection $connect accepted.',
      });
    }
    const accountRole = this.node.tryFindChild('ApiGatewayAccountRole');
    if (accountRole) {
      Validations.of(accountRole).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
        reason:
          "The API Gateway account role is region-wide: every API in the account logs through it, so it keeps AWS's managed logging policy instead of one scoped to this broker's log group.",
      });
    }
    Validations.of(this.fanoutFailureQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself the dead-letter destination of the fan-out event source mapping; a queue behind it would only move the same records one step further.',
    });
    Validations.of(this.frameDeadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself the dead-letter queue of the frame queue; a queue behind it would only move the same frames one step further.',
    });
  }
}

/** `NIMBUS_AUTH_USERS` for the message function, checked at synth so a bad entry fails before deploy. */
function authenticationEnvironment(authentication: NimbusAuthentication): Record<string, string> {
  const document = JSON.stringify(parsePasswordDocument({ users: authentication.users }));
  if (Buffer.byteLength(document) > maxAuthUsersBytes) {
    throw new Error(
      `authentication.users is ${Buffer.byteLength(document)} bytes as JSON, more than ${maxAuthUsersBytes}: Lambda allows 4 KB of environment in all (docs/adr/0005-authentication.md)`,
    );
  }
  return { [authUsersEnv]: document };
}

/**
 * Renders a resolved CloudFormation value the way cdk-nag names it in a finding id: literals as
 * they are, `{ Ref: X }` as `<X>`, `{ 'Fn::GetAtt': [X, Y] }` as `<X.Y>`, joins concatenated.
 */
function nagText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const object = value as Record<string, unknown>;
    if (typeof object.Ref === 'string') return `<${object.Ref}>`;
    const getAtt = object['Fn::GetAtt'];
    if (Array.isArray(getAtt)) return `<${getAtt.join('.')}>`;
    const join = object['Fn::Join'];
    if (Array.isArray(join) && Array.isArray(join[1])) {
      return (join[1] as unknown[]).map(nagText).join(String(join[0]));
    }
  }
  throw new Error(`Cannot name ${JSON.stringify(value)} as cdk-nag does`);
}
