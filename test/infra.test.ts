import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { App, type CfnElement, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { UserPool } from 'aws-cdk-lib/aws-cognito';
import { Table } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { Code, Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import {
  type BrokerFunctionId,
  brokerRuntime,
  type NimbusAuthentication,
  NimbusBroker,
  NimbusStack,
  type NimbusStackProps,
} from '../infra/index.js';
import { hashPassword } from '../shared/auth.js';
import { keepAliveSchedule } from '../shared/broker/keepalive.js';
import { authUsersEnv, managementEndpointEnv, maxQueuedPerSessionEnv } from '../shared/config.js';
import { fanoutEventSource } from '../shared/event-source.js';
import { frameQueueSettings } from '../shared/frame-queue.js';
import { brokerMetricNames, defaultMetricsNamespace } from '../shared/metric-names.js';
import { type TableId, tableDefinitions, usersTable } from '../shared/tables.js';

// The context `cdk synth` uses, minus bundling: an empty bundling-stacks list makes CDK skip
// esbuild, so the suite synthesises in seconds and needs no function code to compile.
const cdkJson = JSON.parse(readFileSync(new URL('../cdk.json', import.meta.url), 'utf8')) as {
  context: Record<string, unknown>;
};

function synth(props: NimbusStackProps = {}): { stack: NimbusStack; template: Template } {
  const app = new App({ context: { ...cdkJson.context, 'aws:cdk:bundling-stacks': [] } });
  // Tests choose open access unless they configure authentication: the construct insists on a choice.
  const stack = new NimbusStack(app, 'NimbusTest', {
    ...(props.authentication ? {} : { allowAnonymous: true }),
    ...props,
  });
  return { stack, template: Template.fromStack(stack) };
}

const { stack, template } = synth();
const broker = stack.broker;

const logicalId = (construct: IConstruct): string =>
  stack.resolve((construct.node.defaultChild as CfnElement).logicalId) as string;
const tableLogicalId = (id: TableId) => logicalId(broker.tables[id]);

interface Statement {
  Action: string | string[];
  Effect: string;
  Resource: unknown;
}

/** Every IAM statement attached to the role of one broker function. */
function statementsOf(fn: BrokerFunctionId, from: Template = template, of: Stack = stack): Statement[] {
  const role = broker.functions[fn].role;
  assert.ok(role, `${fn} has a role`);
  const roleId = of.resolve((role.node.defaultChild as CfnElement).logicalId) as string;
  const policies = from.findResources('AWS::IAM::Policy', {
    Properties: { Roles: Match.arrayWith([{ Ref: roleId }]) },
  });
  return Object.values(policies).flatMap(
    (p) =>
      (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument
        .Statement,
  );
}
const actionsOf = (s: Statement): string[] => (Array.isArray(s.Action) ? s.Action : [s.Action]);
const resourcesOf = (s: Statement): unknown[] => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]);

test('one on-demand table per definition in shared/tables.ts, keys and indexes as defined', () => {
  template.resourceCountIs('AWS::DynamoDB::GlobalTable', tableDefinitions.length);
  for (const def of tableDefinitions) {
    const keys = [
      def.partitionKey,
      def.sortKey,
      ...def.globalIndexes.flatMap((i) => [i.partitionKey, i.sortKey]),
    ];
    const attributes = keys
      .filter((k) => k !== undefined)
      .map((k) => ({ AttributeName: k.name, AttributeType: k.type }));
    const keySchema = [
      { AttributeName: def.partitionKey.name, KeyType: 'HASH' },
      ...(def.sortKey ? [{ AttributeName: def.sortKey.name, KeyType: 'RANGE' }] : []),
    ];
    const resources = template.findResources('AWS::DynamoDB::GlobalTable', {
      Properties: {
        KeySchema: keySchema,
        AttributeDefinitions: Match.arrayEquals(attributes),
        BillingMode: 'PAY_PER_REQUEST',
        TimeToLiveSpecification: def.timeToLiveAttribute
          ? { AttributeName: def.timeToLiveAttribute, Enabled: true }
          : Match.absent(),
        StreamSpecification: def.stream ? { StreamViewType: def.stream } : Match.absent(),
        GlobalSecondaryIndexes:
          def.globalIndexes.length === 0
            ? Match.absent()
            : def.globalIndexes.map((i) => ({
                IndexName: i.indexName,
                KeySchema: [
                  { AttributeName: i.partitionKey.name, KeyType: 'HASH' },
                  ...(i.sortKey ? [{ AttributeName: i.sortKey.name, KeyType: 'RANGE' }] : []),
                ],
                Projection: { ProjectionType: i.projection },
              })),
        Replicas: [
          Match.objectLike({ PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true } }),
        ],
      },
    });
    assert.deepEqual(Object.keys(resources), [tableLogicalId(def.id)], `table ${def.id}`);
  }
});

test('tables are retained on delete by default and destroyed when asked', () => {
  for (const def of tableDefinitions) {
    assert.equal(template.toJSON().Resources[tableLogicalId(def.id)].DeletionPolicy, 'Retain');
  }
  const throwaway = synth({ removalPolicy: RemovalPolicy.DESTROY }).template;
  const policies = Object.values(throwaway.findResources('AWS::DynamoDB::GlobalTable')).map(
    (r) => (r as { DeletionPolicy?: string }).DeletionPolicy,
  );
  assert.deepEqual(
    policies,
    tableDefinitions.map(() => 'Delete'),
  );
});

test('the fan-out may invoke itself, for the pages of a large fan-out (ADR 0024)', () => {
  const fanout = logicalId(broker.functions.fanout);
  template.hasResourceProperties('AWS::IAM::Policy', {
    PolicyDocument: {
      Statement: [
        { Action: 'lambda:InvokeFunction', Effect: 'Allow', Resource: { 'Fn::GetAtt': [fanout, 'Arn'] } },
      ],
    },
    Roles: [{ Ref: Match.stringLikeRegexp('Fanout') }],
  });
});

test('fan-out event source mapping is configured from shared/event-source.ts', () => {
  const streamed = tableDefinitions.find((t) => t.stream);
  assert.ok(streamed);
  template.resourceCountIs('AWS::Lambda::EventSourceMapping', 2); // the stream, and the frame queue
  template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
    EventSourceArn: { 'Fn::GetAtt': [tableLogicalId(streamed.id), 'StreamArn'] },
    FunctionName: { Ref: logicalId(broker.functions.fanout) },
    StartingPosition: 'LATEST',
    BatchSize: fanoutEventSource.batchSize,
    MaximumBatchingWindowInSeconds: fanoutEventSource.maxBatchingWindowSeconds,
    MaximumRetryAttempts: fanoutEventSource.retryAttempts,
    MaximumRecordAgeInSeconds: fanoutEventSource.maxRecordAgeSeconds,
    BisectBatchOnFunctionError: fanoutEventSource.bisectBatchOnError,
    ParallelizationFactor: fanoutEventSource.parallelizationFactor,
    FunctionResponseTypes: fanoutEventSource.reportBatchItemFailures
      ? ['ReportBatchItemFailures']
      : Match.absent(),
    DestinationConfig: {
      OnFailure: { Destination: { 'Fn::GetAtt': [logicalId(broker.fanoutFailureQueue), 'Arn'] } },
    },
  });
});

test('the on-failure queue is encrypted and refuses plain HTTP', () => {
  template.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true });
  template.hasResourceProperties('AWS::SQS::QueuePolicy', {
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({
          Effect: 'Deny',
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        }),
      ]),
    },
  });
});

/** The integration behind a route key. */
function integrationOf(routeKey: string): { Properties: Record<string, unknown> } {
  const found = template.findResources('AWS::ApiGatewayV2::Route', { Properties: { RouteKey: routeKey } });
  const [route] = Object.values(found) as Array<{
    Properties: { Target: { 'Fn::Join': [string, unknown[]] } };
  }>;
  assert.ok(route, `route ${routeKey}`);
  const integrationRef = route.Properties.Target['Fn::Join'][1][1] as { Ref: string };
  return template.findResources('AWS::ApiGatewayV2::Integration')[integrationRef.Ref] as {
    Properties: Record<string, unknown>;
  };
}

test('WebSocket routes: $connect goes to its function, $default and $disconnect to the frame queue', () => {
  template.resourceCountIs('AWS::ApiGatewayV2::Route', 3);
  const routes: Array<[string, BrokerFunctionId]> = [['$connect', 'connect']];
  for (const [routeKey, fn] of routes) {
    const integration = integrationOf(routeKey);
    // AWS_PROXY passes the function's response headers through: $connect can echo Sec-WebSocket-Protocol.
    assert.equal(integration.Properties.IntegrationType, 'AWS_PROXY');
    const uri = JSON.stringify(integration.Properties.IntegrationUri);
    assert.match(uri, new RegExp(logicalId(broker.functions[fn])), `${routeKey} → ${fn}`);
  }
  const queue = integrationOf('$default').Properties;
  assert.equal(queue.IntegrationType, 'AWS');
  assert.equal(queue.IntegrationMethod, 'POST');
  assert.deepEqual(queue.IntegrationUri, {
    'Fn::Join': [
      '',
      [
        'arn:',
        { Ref: 'AWS::Partition' },
        ':apigateway:',
        { Ref: 'AWS::Region' },
        ':sqs:path/',
        { Ref: 'AWS::AccountId' },
        '/',
        { 'Fn::GetAtt': [logicalId(broker.frameQueue), 'QueueName'] },
      ],
    ],
  });
  assert.deepEqual(queue.CredentialsArn, { 'Fn::GetAtt': [logicalId(broker.frameQueueSendRole), 'Arn'] });
  assert.deepEqual(queue.RequestParameters, {
    'integration.request.header.Content-Type': "'application/x-www-form-urlencoded'",
  });
  assert.equal(queue.TemplateSelectionExpression, '\\$default');
  const template$default = (queue.RequestTemplates as Record<string, string>).$default;
  assert.deepEqual(Object.fromEntries(new URLSearchParams(template$default)), {
    Action: 'SendMessage',
    // One message group per connection: its frames stay in order. URL-encoded: ids are base64.
    MessageGroupId: '$util.urlEncode($context.connectionId)',
    MessageDeduplicationId: '$util.urlEncode($context.requestId)',
    MessageBody: '$util.urlEncode($input.body)',
    'MessageAttribute.1.Name': 'connectionId',
    'MessageAttribute.1.Value.DataType': 'String',
    'MessageAttribute.1.Value.StringValue': '$util.urlEncode($context.connectionId)',
    'MessageAttribute.2.Name': 'sourceIp',
    'MessageAttribute.2.Value.DataType': 'String',
    'MessageAttribute.2.Value.StringValue': '$util.urlEncode($context.identity.sourceIp)',
  });
  // $disconnect joins the same message group, marked, after the connection's frames.
  const disconnect = integrationOf('$disconnect').Properties;
  assert.equal(disconnect.IntegrationType, 'AWS');
  assert.deepEqual(disconnect.IntegrationUri, queue.IntegrationUri);
  assert.deepEqual(disconnect.CredentialsArn, queue.CredentialsArn);
  const disconnectTemplate = (disconnect.RequestTemplates as Record<string, string>).$default;
  assert.deepEqual(Object.fromEntries(new URLSearchParams(disconnectTemplate)), {
    Action: 'SendMessage',
    MessageGroupId: '$util.urlEncode($context.connectionId)',
    MessageDeduplicationId: '$util.urlEncode($context.requestId)',
    MessageBody: '$disconnect',
    'MessageAttribute.1.Name': 'connectionId',
    'MessageAttribute.1.Value.DataType': 'String',
    'MessageAttribute.1.Value.StringValue': '$util.urlEncode($context.connectionId)',
    'MessageAttribute.2.Name': 'eventType',
    'MessageAttribute.2.Value.DataType': 'String',
    'MessageAttribute.2.Value.StringValue': 'DISCONNECT',
  });
});

test('the frame queue: FIFO with high throughput, encrypted, TLS only, a FIFO dead-letter queue after 5 receives', () => {
  const queues = template.toJSON().Resources;
  const frames = queues[logicalId(broker.frameQueue)].Properties;
  assert.deepEqual(frames, {
    FifoQueue: true,
    DeduplicationScope: 'messageGroup',
    FifoThroughputLimit: 'perMessageGroupId',
    SqsManagedSseEnabled: true,
    VisibilityTimeout: frameQueueSettings.visibilityTimeoutSeconds,
    MessageRetentionPeriod: 7200,
    RedrivePolicy: {
      deadLetterTargetArn: { 'Fn::GetAtt': [logicalId(broker.frameDeadLetterQueue), 'Arn'] },
      maxReceiveCount: 5,
    },
  });
  assert.equal(frameQueueSettings.maxReceiveCount, 5);
  const deadLetters = queues[logicalId(broker.frameDeadLetterQueue)].Properties;
  assert.equal(deadLetters.FifoQueue, true);
  assert.equal(deadLetters.SqsManagedSseEnabled, true);
  // Lambda refuses a queue whose visibility timeout is shorter than the function's timeout.
  const timeout = queues[logicalId(broker.functions.message)].Properties.Timeout as number;
  assert.ok(frames.VisibilityTimeout >= timeout);
  for (const queue of [broker.frameQueue, broker.frameDeadLetterQueue]) {
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: logicalId(queue) }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  }
});

test('the message function drains the frame queue: batches of 10, partial batch responses', () => {
  template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
    EventSourceArn: { 'Fn::GetAtt': [logicalId(broker.frameQueue), 'Arn'] },
    FunctionName: { Ref: logicalId(broker.functions.message) },
    BatchSize: 10,
    FunctionResponseTypes: ['ReportBatchItemFailures'],
    // FIFO queues take no batching window: a frame is handed over as soon as it is there.
    MaximumBatchingWindowInSeconds: Match.absent(),
  });
  const sqs = statementsOf('message').filter((s) => actionsOf(s).some((a) => a.startsWith('sqs:')));
  assert.ok(sqs.length > 0);
  for (const s of sqs) {
    assert.deepEqual(resourcesOf(s), [{ 'Fn::GetAtt': [logicalId(broker.frameQueue), 'Arn'] }]);
    assert.ok(actionsOf(s).includes('sqs:ReceiveMessage'));
    assert.ok(!actionsOf(s).includes('sqs:SendMessage'));
  }
});

test('IAM: API Gateway may only send messages to the frame queue', () => {
  const roleId = logicalId(broker.frameQueueSendRole);
  const role = template.toJSON().Resources[roleId].Properties;
  assert.deepEqual(role.AssumeRolePolicyDocument.Statement, [
    { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'apigateway.amazonaws.com' } },
  ]);
  assert.equal(role.ManagedPolicyArns, undefined);
  assert.equal(role.Policies, undefined);
  const policies = template.findResources('AWS::IAM::Policy', {
    Properties: { Roles: Match.arrayWith([{ Ref: roleId }]) },
  });
  const statements = Object.values(policies).flatMap(
    (p) =>
      (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument
        .Statement,
  );
  assert.deepEqual(statements, [
    {
      Action: 'sqs:SendMessage',
      Effect: 'Allow',
      Resource: { 'Fn::GetAtt': [logicalId(broker.frameQueue), 'Arn'] },
    },
  ]);
});

test('stage: name, auto-deploy, throttling and JSON access logs', () => {
  template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
    StageName: 'prod',
    AutoDeploy: true,
    DefaultRouteSettings: { ThrottlingRateLimit: 1000, ThrottlingBurstLimit: 2000 },
    AccessLogSettings: {
      DestinationArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('AccessLogs'), 'Arn'] },
      Format: Match.serializedJson(Match.objectLike({ connectionId: '$context.connectionId' })),
    },
  });
  const custom = synth({ stageName: 'dev', throttlingRateLimit: 5, throttlingBurstLimit: 7 }).template;
  custom.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
    StageName: 'dev',
    DefaultRouteSettings: { ThrottlingRateLimit: 5, ThrottlingBurstLimit: 7 },
  });
});

test('functions: arm64, current Node.js runtime, tracing, the broker environment', () => {
  assert.ok(Number(brokerRuntime.name.match(/nodejs(\d+)/)?.[1]) >= 22, brokerRuntime.name);
  template.resourceCountIs('AWS::Lambda::Function', 4);
  const environment = {
    ...Object.fromEntries(tableDefinitions.map((t) => [t.envVar, { Ref: tableLogicalId(t.id) }])),
    [managementEndpointEnv]: {
      'Fn::Join': [
        '',
        [
          'https://',
          { Ref: logicalId(broker.api) },
          '.execute-api.',
          { Ref: 'AWS::Region' },
          '.',
          { Ref: 'AWS::URLSuffix' },
          '/prod',
        ],
      ],
    },
    [maxQueuedPerSessionEnv]: '1000',
    POWERTOOLS_SERVICE_NAME: 'nimbus-mqtt',
    POWERTOOLS_METRICS_NAMESPACE: 'NimbusMQTT',
    POWERTOOLS_LOG_LEVEL: 'INFO',
  };
  for (const fn of Object.values(broker.functions)) {
    const props = template.toJSON().Resources[logicalId(fn)].Properties;
    assert.deepEqual(props.Architectures, ['arm64']);
    assert.equal(props.Runtime, brokerRuntime.name);
    assert.deepEqual(props.TracingConfig, { Mode: 'Active' });
    assert.ok(props.LoggingConfig?.LogGroup?.Ref, 'own log group');
    for (const [name, value] of Object.entries(environment)) {
      assert.deepEqual(props.Environment.Variables[name], value, `${fn.node.id} ${name}`);
    }
  }
  const tuned = synth({
    logLevel: 'DEBUG',
    maxQueuedMessagesPerSession: 5,
    maxPacketSize: 1024,
  });
  tuned.template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: {
      Variables: Match.objectLike({
        POWERTOOLS_LOG_LEVEL: 'DEBUG',
        [maxQueuedPerSessionEnv]: '5',
        NIMBUS_MAX_PACKET_SIZE: '1024',
      }),
    },
  });
});

test('authentication: the users document goes to the message function only, and nowhere without the prop', () => {
  const envOf = (of: { stack: NimbusStack; template: Template }, fn: BrokerFunctionId) => {
    const id = of.stack.resolve(
      (of.stack.broker.functions[fn].node.defaultChild as CfnElement).logicalId,
    ) as string;
    return of.template.toJSON().Resources[id].Properties.Environment.Variables as Record<string, unknown>;
  };
  for (const fn of Object.keys(broker.functions) as BrokerFunctionId[]) {
    assert.equal(envOf({ stack, template }, fn)[authUsersEnv], undefined, `${fn} without the prop`);
  }
  const users = { alice: hashPassword('s3cret'), bob: hashPassword('hunter2') };
  const secured = synth({ authentication: { users } });
  assert.deepEqual(JSON.parse(String(envOf(secured, 'message')[authUsersEnv])), { users });
  for (const fn of ['connect', 'fanout', 'sweeper'] as const) {
    assert.equal(envOf(secured, fn)[authUsersEnv], undefined, `${fn} does not handle CONNECT`);
  }
  assert.doesNotMatch(
    JSON.stringify(secured.template.toJSON()),
    /s3cret|hunter2/,
    'no password in the template',
  );
  assert.throws(
    () => synth({ authentication: { users: { eve: { sha256: 'not a hash', salt: '00' } } } }),
    /sha256/,
  );
  const many = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`user${i}`, hashPassword('x')]));
  assert.throws(() => synth({ authentication: { users: many } }), /4 KB/);
});

test('every log group has a retention', () => {
  const groups = Object.values(template.findResources('AWS::Logs::LogGroup')) as Array<{
    Properties: { RetentionInDays?: number };
  }>;
  assert.equal(groups.length, 5); // four functions + access logs
  for (const g of groups) assert.equal(g.Properties.RetentionInDays, 30);
});

/** What each function may do to each table: the least-privilege matrix. */
// fanout (on a 410) and sweeper end connections that are gone: read and delete the
// record, end the session, drop a clean session's subscriptions and deliveries, publish the will.
const connectionGone = {
  Connections: 'rw',
  Sessions: 'rw',
  Subscriptions: 'rw',
  Deliveries: 'rw',
  Messages: 'w',
  Retained: 'w',
} as const;
const access: Record<BrokerFunctionId, Partial<Record<TableId, 'rw' | 'r' | 'w'>>> = {
  connect: {},
  message: {
    Connections: 'rw',
    Sessions: 'rw',
    Subscriptions: 'rw',
    Messages: 'rw',
    Deliveries: 'rw',
    Retained: 'rw',
    LoginAttempts: 'rw',
  },
  // The fan-out adds each batch's traffic to the $SYS/ counts; the sweeper reads them and the
  // retained $SYS/ figures it last published.
  fanout: { ...connectionGone, LoginAttempts: 'w' },
  sweeper: { ...connectionGone, Retained: 'rw', LoginAttempts: 'r' },
};

test('IAM: each function reaches exactly its tables, reading and writing only as it must', () => {
  for (const [fn, tables] of Object.entries(access) as Array<
    [BrokerFunctionId, (typeof access)['connect']]
  >) {
    const statements = statementsOf(fn).filter((s) => actionsOf(s).some((a) => a.startsWith('dynamodb:')));
    for (const def of tableDefinitions) {
      const arn = { 'Fn::GetAtt': [tableLogicalId(def.id), 'Arn'] };
      const onTable = statements.filter((s) =>
        resourcesOf(s).some((r) => JSON.stringify(r) === JSON.stringify(arn)),
      );
      const actions = new Set(onTable.flatMap(actionsOf));
      const want = tables[def.id];
      assert.equal(actions.has('dynamodb:GetItem'), want === 'r' || want === 'rw', `${fn} reads ${def.id}`);
      assert.equal(actions.has('dynamodb:PutItem'), want === 'w' || want === 'rw', `${fn} writes ${def.id}`);
      // The store's one PartiQL statement reads a topic's subscriptions (docs/adr/0029).
      assert.equal(
        actions.has('dynamodb:PartiQLSelect'),
        def.id === 'Subscriptions' && fn !== 'connect',
        `${fn} selects from ${def.id}`,
      );
    }
  }
});

test('IAM: the connect function has no DynamoDB actions at all', () => {
  const actions = statementsOf('connect').flatMap(actionsOf);
  assert.ok(actions.length > 0, 'the connect role has statements (logs, tracing)');
  assert.deepEqual(
    actions.filter((a) => a.startsWith('dynamodb:') || a.startsWith('execute-api:')),
    [],
  );
});

test('IAM: no DynamoDB or execute-api statement on Resource "*" (except ListStreams, which has no resource form)', () => {
  for (const fn of Object.keys(access) as BrokerFunctionId[]) {
    for (const s of statementsOf(fn)) {
      if (!resourcesOf(s).includes('*')) continue;
      const scoped = actionsOf(s).filter((a) => a.startsWith('dynamodb:') || a.startsWith('execute-api:'));
      assert.deepEqual(scoped, fn === 'fanout' && scoped.length > 0 ? ['dynamodb:ListStreams'] : [], fn);
    }
  }
});

test('IAM: ManageConnections only on this stage’s @connections, for the functions that post', () => {
  const expected = {
    'Fn::Join': [
      '',
      [
        'arn:',
        { Ref: 'AWS::Partition' },
        ':execute-api:',
        { Ref: 'AWS::Region' },
        ':',
        { Ref: 'AWS::AccountId' },
        ':',
        { Ref: logicalId(broker.api) },
        '/prod/*/@connections/*',
      ],
    ],
  };
  for (const fn of Object.keys(access) as BrokerFunctionId[]) {
    const manage = statementsOf(fn).filter((s) => actionsOf(s).includes('execute-api:ManageConnections'));
    if (fn === 'connect') {
      assert.equal(manage.length, 0);
      continue;
    }
    assert.deepEqual(manage.flatMap(resourcesOf), [expected], fn);
  }
});

test('the sweeper runs every minute', () => {
  template.hasResourceProperties('AWS::Events::Rule', {
    ScheduleExpression: 'rate(1 minute)',
    Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [logicalId(broker.functions.sweeper), 'Arn'] } })],
  });
});

test('[MQTT-3.1.2-24] the keep-alive check starts every minute and loops through it, within the sweeper timeout', () => {
  template.hasResourceProperties('AWS::Events::Rule', {
    ScheduleExpression: 'rate(1 minute)',
    Targets: [
      Match.objectLike({
        Arn: { 'Fn::GetAtt': [logicalId(broker.functions.sweeper), 'Arn'] },
        Input: JSON.stringify({ keepAlive: keepAliveSchedule }),
      }),
    ],
  });
  const fn = template.findResources('AWS::Lambda::Function')[logicalId(broker.functions.sweeper)];
  assert.ok((fn.Properties.Timeout as number) * 1000 > keepAliveSchedule.runForMs + 5_000);
});

test('the Connections table indexes keep-alive deadlines by shard and due time', () => {
  template.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
    GlobalSecondaryIndexes: Match.arrayWith([
      Match.objectLike({
        IndexName: 'byKeepAliveDue',
        KeySchema: [
          { AttributeName: 'keepAliveShard', KeyType: 'HASH' },
          { AttributeName: 'keepAliveDue', KeyType: 'RANGE' },
        ],
      }),
    ]),
  });
});

test('alarms watch fan-out, the failure queues, iterator age, throttles and API errors; the topic is notified', () => {
  template.resourceCountIs('AWS::CloudWatch::Alarm', 6);
  template.hasResourceProperties('AWS::CloudWatch::Alarm', {
    MetricName: 'ApproximateNumberOfMessagesVisible',
    Threshold: 0,
    ComparisonOperator: 'GreaterThanThreshold',
  });
  template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'IteratorAge' });
  template.hasResourceProperties('AWS::CloudWatch::Alarm', {
    MetricName: 'ApproximateNumberOfMessagesVisible',
    Dimensions: [
      { Name: 'QueueName', Value: { 'Fn::GetAtt': [logicalId(broker.frameDeadLetterQueue), 'QueueName'] } },
    ],
  });
  template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  for (const alarm of Object.values(template.findResources('AWS::CloudWatch::Alarm'))) {
    assert.equal((alarm as { Properties: { AlarmActions?: unknown } }).Properties.AlarmActions, undefined);
  }

  // Embedded the way users do it: the construct in their own stack, next to their topic.
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const own = new Stack(app, 'Embedding');
  const topic = new Topic(own, 'Alarms');
  new NimbusBroker(own, 'Broker', { alarmTopic: topic, allowAnonymous: true });
  const alarms = Template.fromStack(own).findResources('AWS::CloudWatch::Alarm');
  assert.equal(Object.keys(alarms).length, 6);
  const topicRef = { Ref: own.resolve((topic.node.defaultChild as CfnElement).logicalId) };
  for (const alarm of Object.values(alarms)) {
    const { AlarmActions, OKActions } = (
      alarm as { Properties: { AlarmActions?: unknown[]; OKActions?: unknown[] } }
    ).Properties;
    assert.deepEqual(AlarmActions, [topicRef]);
    assert.deepEqual(OKActions, [topicRef]);
  }
});

test('outputs: the wss URL and the management endpoint', () => {
  template.hasOutput('WebSocketUrl', {
    Value: { 'Fn::Join': ['', Match.arrayWith(['wss://', { Ref: logicalId(broker.api) }])] },
  });
  template.hasOutput('ManagementEndpoint', {
    Value: { 'Fn::Join': ['', Match.arrayWith(['https://', { Ref: logicalId(broker.api) }])] },
  });
});

test('custom domain: domain name with the certificate, mapped to the stage, used for the wss URL', () => {
  const certificate = 'arn:aws:acm:us-east-1:123456789012:certificate/abc';
  const { stack: domainStack, template: domainTemplate } = synth({
    customDomain: { domainName: 'mqtt.example.com', certificate },
  });
  domainTemplate.hasResourceProperties('AWS::ApiGatewayV2::DomainName', {
    DomainName: 'mqtt.example.com',
    DomainNameConfigurations: [Match.objectLike({ CertificateArn: certificate, SecurityPolicy: 'TLS_1_2' })],
  });
  domainTemplate.resourceCountIs('AWS::ApiGatewayV2::ApiMapping', 1);
  assert.equal(domainStack.broker.webSocketUrl, 'wss://mqtt.example.com');
  domainTemplate.hasOutput('CustomDomainTarget', {});
  template.resourceCountIs('AWS::ApiGatewayV2::DomainName', 0);
});

test('cdk-nag AwsSolutions: no unacknowledged errors or warnings', () => {
  const report = new AwsSolutionsChecks().validateScope(stack);
  const findings = report.violations.map(
    (v) => `${v.severity} ${v.ruleName} ${v.violatingResources.map((r) => r.constructPath).join(' ')}`,
  );
  assert.deepEqual(findings, []);
});

test('cdk-nag acknowledgments are narrow and each gives a reason', () => {
  const acknowledged: Array<{ id: string; reason: string }> = [];
  const visit = (c: IConstruct) => {
    for (const entry of c.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(entry.data as Record<string, unknown>)) {
        acknowledged.push({ id, reason: typeof reason === 'string' ? reason : JSON.stringify(reason) });
      }
    }
    for (const child of c.node.children) visit(child);
  };
  visit(stack);
  assert.ok(acknowledged.length > 0);
  for (const { id, reason } of acknowledged) {
    assert.match(id, /AwsSolutions-/);
    assert.ok(reason.length > 40, `${id} needs a real reason`);
  }

  // A new wildcard on a broker role is still reported: the acknowledgments name findings, not rules.
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const widened = new NimbusStack(app, 'Widened', { allowAnonymous: true });
  widened.broker.functions.message.addToRolePolicy(
    new PolicyStatement({ actions: ['s3:GetObject'], resources: ['arn:aws:s3:::bucket/*'] }),
  );
  const rules = new AwsSolutionsChecks().validateScope(widened).violations.map((v) => v.ruleName);
  assert.deepEqual(rules, ['AwsSolutions-IAM5[Resource::arn:aws:s3:::bucket/*]']);
});

test('who may connect is an explicit choice: without authentication or allowAnonymous, synth fails saying what to add', () => {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  assert.throws(
    () => new NimbusStack(app, 'Undecided'),
    /passwordFile: .*users .*usersTable: true .*jwt: \{ issuer \} .*authorizerFunction .*allowAnonymous: true/,
  );
  assert.throws(
    () =>
      new NimbusStack(app, 'Both', {
        allowAnonymous: true,
        authentication: { passwordFile: 'test/fixtures/mosquitto.passwd' },
      }),
    /not both/,
  );
});

test('any authentication method alone is a choice; an authentication naming none is refused, listing them', () => {
  const app = new App({ context: { ...cdkJson.context, 'aws:cdk:bundling-stacks': [] } });
  const methods: Array<(scope: Stack) => NimbusAuthentication> = [
    () => ({ passwordFile: 'test/fixtures/mosquitto.passwd' }),
    () => ({ users: { alice: hashPassword('alice-pw') } }),
    () => ({ usersTable: true }),
    () => ({ jwt: { issuer: 'https://issuer.example' } }),
    (scope) => ({
      authorizerFunction: LambdaFunction.fromFunctionAttributes(scope, 'Authorizer', {
        functionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:authorizer',
        sameEnvironment: true,
      }),
    }),
  ];
  methods.forEach((method, i) => {
    const scope = new Stack(app, `Method${i}`);
    const authentication = method(scope);
    assert.doesNotThrow(
      () => new NimbusBroker(scope, 'Broker', { authentication }),
      Object.keys(authentication)[0],
    );
  });
  for (const [i, authentication] of [{}, { usersTable: false }].entries()) {
    assert.throws(
      () => new NimbusBroker(new Stack(app, `None${i}`), 'Broker', { authentication }),
      /needs at least one method: passwordFile, users, usersTable, jwt, authorizerFunction/,
    );
  }
  assert.throws(
    () =>
      new NimbusBroker(new Stack(app, 'JwtAndAnonymous'), 'Broker', {
        allowAnonymous: true,
        authentication: { jwt: { issuer: 'https://issuer.example' } },
      }),
    /not both/,
  );
});

test('a password file and an ACL file are bundled: the message function reads both, fan-out and sweeper the ACL', () => {
  const { template: secured } = synth({
    authentication: { passwordFile: 'test/fixtures/mosquitto.passwd' },
    aclFile: 'test/fixtures/nimbus.acl',
  });
  const environments = Object.values(secured.findResources('AWS::Lambda::Function')).map(
    (fn) => (fn.Properties.Environment?.Variables ?? {}) as Record<string, string>,
  );
  const withPasswords = environments.filter((env) => env.NIMBUS_PASSWORD_FILE === 'nimbus.passwd');
  const withAcl = environments.filter((env) => env.NIMBUS_ACL_FILE === 'nimbus.acl');
  assert.equal(withPasswords.length, 1);
  assert.equal(withAcl.length, 3);
  assert.throws(
    () => synth({ authentication: { passwordFile: 'test/fixtures/nimbus.acl' } }),
    /plain-text|expected <user>:<hash>/,
  );
});

test("the dashboard graphs the functions' own metrics in the namespace the functions emit to", () => {
  const body = (t: Template) =>
    JSON.stringify(Object.values(t.findResources('AWS::CloudWatch::Dashboard'))[0]);
  const names = [
    brokerMetricNames.publishesAccepted,
    ...Object.values(brokerMetricNames.deliveries),
    brokerMetricNames.fanoutLag,
    brokerMetricNames.connectionsOpened,
    brokerMetricNames.connectionsRefused,
  ];
  for (const name of names) assert.ok(body(template).includes(`\\"${name}\\"`), name);
  assert.ok(body(template).includes(`\\"${defaultMetricsNamespace}\\"`));

  const renamed = synth({ metricsNamespace: 'Broker/Staging' }).template;
  assert.ok(body(renamed).includes('\\"Broker/Staging\\"'));
  renamed.allResourcesProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ POWERTOOLS_METRICS_NAMESPACE: 'Broker/Staging' }) },
  });
});

test('authentication.usersTable: a users table keyed by username, read (never written) by the message function only', () => {
  const secured = synth({ authentication: { usersTable: true } });
  const users = secured.stack.broker.usersTable;
  assert.ok(users);
  const usersId = secured.stack.resolve((users.node.defaultChild as CfnElement).logicalId) as string;
  assert.match(usersId, /^BrokerUsersTable[0-9A-F]{8}$/);
  secured.template.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
    KeySchema: [{ AttributeName: 'username', KeyType: 'HASH' }],
    AttributeDefinitions: [{ AttributeName: 'username', AttributeType: 'S' }],
    BillingMode: 'PAY_PER_REQUEST',
    Replicas: [Match.objectLike({ PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true } })],
  });
  const envOf = (fn: BrokerFunctionId) =>
    secured.template.toJSON().Resources[
      secured.stack.resolve((secured.stack.broker.functions[fn].node.defaultChild as CfnElement).logicalId)
    ].Properties.Environment.Variables as Record<string, unknown>;
  assert.deepEqual(envOf('message')[usersTable.envVar], { Ref: usersId });
  const arn = JSON.stringify({ 'Fn::GetAtt': [usersId, 'Arn'] });
  for (const fn of Object.keys(access) as BrokerFunctionId[]) {
    const statements = statementsOf(fn, secured.template, secured.stack).filter((s) =>
      resourcesOf(s).some((r) => JSON.stringify(r) === arn),
    );
    const actions = new Set(statements.flatMap(actionsOf));
    assert.equal(actions.has('dynamodb:GetItem'), fn === 'message', `${fn} reads the users table`);
    assert.equal(
      actions.has('dynamodb:PutItem') || actions.has('dynamodb:DeleteItem'),
      false,
      `${fn} writes it`,
    );
    if (fn !== 'message') assert.equal(envOf(fn)[usersTable.envVar], undefined);
  }
  secured.template.hasOutput('UsersTableName', { Value: { Ref: usersId } });
  assert.equal(
    template.findOutputs('UsersTableName') && Object.keys(template.findOutputs('UsersTableName')).length,
    0,
  );
  assert.equal(broker.usersTable, undefined, 'no users table without the prop');
});

test('authentication.jwt: the token settings reach the message function only; bad ones fail at synth', () => {
  const jwt = {
    issuer: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf',
    audience: ['client-a'],
    userClaim: 'cognito:username',
    username: 'match' as const,
  };
  const secured = synth({ authentication: { jwt } });
  const message = secured.stack.broker.functions.message;
  secured.template.hasResourceProperties('AWS::Lambda::Function', {
    FunctionName: Match.absent(),
    Description: Match.stringLikeRegexp('MQTT packets'),
    Environment: {
      Variables: Match.objectLike({
        NIMBUS_JWT_ISSUER: jwt.issuer,
        NIMBUS_JWT_AUDIENCE: 'client-a',
        NIMBUS_JWT_USER_CLAIM: 'cognito:username',
        NIMBUS_JWT_USERNAME: 'match',
      }),
    },
  });
  assert.ok(message);
  const others = Object.values(secured.template.findResources('AWS::Lambda::Function')).filter(
    (f) =>
      !String((f as { Properties: { Description?: string } }).Properties.Description).includes(
        'MQTT packets',
      ),
  );
  for (const f of others) assert.doesNotMatch(JSON.stringify(f), /NIMBUS_JWT/);
  assert.throws(() => synth({ authentication: { jwt: { issuer: 'not a url' } } }), /issuer must be a URL/);
  assert.throws(
    () => synth({ authentication: { jwt: { issuer: 'https://i.example', algorithms: ['HS256'] } } }),
    /HMAC/,
  );
});

test('authentication.authorizerFunction and a table of your own: invoke and read granted to the message function only', () => {
  const app = new App({ context: { ...cdkJson.context, 'aws:cdk:bundling-stacks': [] } });
  const own = new Stack(app, 'Own');
  const authorizer = new LambdaFunction(own, 'Authorizer', {
    runtime: brokerRuntime,
    handler: 'index.handler',
    code: Code.fromInline('exports.handler = async () => ({ allow: false });'),
  });
  const table = Table.fromTableName(own, 'Users', 'my-users');
  const ownBroker = new NimbusBroker(own, 'Broker', {
    authentication: { authorizerFunction: authorizer, usersTable: table },
  });
  const ownTemplate = Template.fromStack(own);
  const authorizerArn = own.resolve(authorizer.functionArn);
  const roleStatements = (fn: BrokerFunctionId) => {
    const role = ownBroker.functions[fn].role;
    assert.ok(role);
    const roleId = own.resolve((role.node.defaultChild as CfnElement).logicalId);
    return Object.values(
      ownTemplate.findResources('AWS::IAM::Policy', {
        Properties: { Roles: Match.arrayWith([{ Ref: roleId }]) },
      }),
    ).flatMap(
      (p) =>
        (p as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument
          .Statement,
    );
  };
  for (const fn of ['connect', 'message', 'fanout', 'sweeper'] as const) {
    const statements = roleStatements(fn);
    const invokes = statements.filter(
      (s) =>
        actionsOf(s).includes('lambda:InvokeFunction') &&
        JSON.stringify(s.Resource).includes(JSON.stringify(authorizerArn)),
    );
    assert.equal(invokes.length > 0, fn === 'message', `${fn} may invoke the authorizer`);
    const reads = statements.filter(
      (s) =>
        actionsOf(s).includes('dynamodb:GetItem') && JSON.stringify(s.Resource).includes('table/my-users'),
    );
    assert.equal(reads.length > 0, fn === 'message', `${fn} may read my-users`);
  }
  const findings = new AwsSolutionsChecks()
    .validateScope(ownBroker)
    .violations.map((v) => `${v.ruleName} ${v.violatingResources.map((r) => r.constructPath).join(' ')}`);
  assert.deepEqual(findings, [], 'cdk-nag finds nothing unacknowledged in the broker');
  ownTemplate.hasResourceProperties('AWS::Lambda::Function', {
    Description: Match.stringLikeRegexp('MQTT packets'),
    Environment: {
      Variables: Match.objectLike({
        NIMBUS_AUTHORIZER_FUNCTION: authorizerArn,
        NIMBUS_USERS_TABLE: 'my-users',
      }),
    },
  });
  assert.equal(
    ownTemplate.findResources('AWS::DynamoDB::GlobalTable', {
      Properties: { KeySchema: [{ AttributeName: 'username', KeyType: 'HASH' }] },
    }) && Object.keys(ownTemplate.findResources('AWS::DynamoDB::GlobalTable')).length,
    tableDefinitions.length,
    'no table created for a given one',
  );
});

test('authentication.jwt with a Cognito user pool: its provider URL (a deploy-time value) is the issuer', () => {
  const app = new App({ context: { ...cdkJson.context, 'aws:cdk:bundling-stacks': [] } });
  const cognito = new Stack(app, 'Cognito');
  const pool = new UserPool(cognito, 'Devices');
  const client = pool.addClient('Mqtt');
  new NimbusBroker(cognito, 'Broker', {
    authentication: {
      jwt: {
        issuer: pool.userPoolProviderUrl,
        audience: [client.userPoolClientId],
        userClaim: 'cognito:username',
      },
    },
  });
  Template.fromStack(cognito).hasResourceProperties('AWS::Lambda::Function', {
    Description: Match.stringLikeRegexp('MQTT packets'),
    Environment: {
      Variables: Match.objectLike({
        // ProviderURL is https://cognito-idp.<region>.amazonaws.com/<pool id>, the tokens' iss.
        NIMBUS_JWT_ISSUER: {
          'Fn::GetAtt': [cognito.resolve((pool.node.defaultChild as CfnElement).logicalId), 'ProviderURL'],
        },
        NIMBUS_JWT_AUDIENCE: { Ref: cognito.resolve((client.node.defaultChild as CfnElement).logicalId) },
      }),
    },
  });
});
