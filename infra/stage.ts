import { RemovalPolicy } from 'aws-cdk-lib';
import { AccessLogFormat, CfnAccount } from 'aws-cdk-lib/aws-apigateway';
import { type IWebSocketApi, LogGroupLogDestination, WebSocketStage } from 'aws-cdk-lib/aws-apigatewayv2';
import { ManagedPolicy, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';

export interface BrokerStageProps {
  readonly api: IWebSocketApi;
  /** Stage name; part of the wss URL and the management endpoint. */
  readonly stageName: string;
  /**
   * Stage-wide steady-state limit, in WebSocket messages per second.
   * @default 1000
   */
  readonly throttlingRateLimit?: number;
  /**
   * Stage-wide burst limit, in messages.
   * @default 2000
   */
  readonly throttlingBurstLimit?: number;
  /** How long access logs are kept (the broker's `logRetention`). */
  readonly logRetention: RetentionDays;
  /** What happens to the access log group when the stack is deleted (the broker's `removalPolicy`). */
  readonly removalPolicy: RemovalPolicy;
  /**
   * Set the region's API Gateway account CloudWatch role (id `ApiGatewayAccountRole`), which
   * access logs require.
   * @default true
   */
  readonly configureAccountRole?: boolean;
}

/**
 * The stage clients connect to, auto-deployed and throttled, with JSON access logs (ids
 * `AccessLogs` and `Stage`, children of `scope` itself).
 *
 * @example
 * const stage = createBrokerStage(this, {
 *   api,
 *   stageName: 'dev',
 *   logRetention: RetentionDays.ONE_MONTH,
 *   removalPolicy: RemovalPolicy.RETAIN,
 * });
 * stage.url; // wss://…/dev
 */
export function createBrokerStage(scope: Construct, props: BrokerStageProps): WebSocketStage {
  const accessLogs = new LogGroup(scope, 'AccessLogs', {
    retention: props.logRetention,
    removalPolicy: props.removalPolicy,
  });
  const stage = new WebSocketStage(scope, 'Stage', {
    webSocketApi: props.api,
    stageName: props.stageName,
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
  if (props.configureAccountRole ?? true) configureAccountLogging(scope, stage);
  return stage;
}

/**
 * WebSocket access logs need the region's API Gateway account role. Its policy is the managed
 * one on purpose: the setting is region-wide, so other APIs in the account log through it too.
 * Both are retained on delete, because the account setting keeps pointing at the role.
 */
function configureAccountLogging(scope: Construct, stage: WebSocketStage): void {
  const role = new Role(scope, 'ApiGatewayAccountRole', {
    assumedBy: new ServicePrincipal('apigateway.amazonaws.com'),
    managedPolicies: [
      ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonAPIGatewayPushToCloudWatchLogs'),
    ],
  });
  role.applyRemovalPolicy(RemovalPolicy.RETAIN);
  const account = new CfnAccount(scope, 'ApiGatewayAccount', { cloudWatchRoleArn: role.roleArn });
  account.applyRemovalPolicy(RemovalPolicy.RETAIN);
  // The stage must not turn on access logs before the account can write them.
  stage.node.addDependency(account);
}
