import { Duration } from 'aws-cdk-lib';
import type { IWebSocketApi, IWebSocketStage } from 'aws-cdk-lib/aws-apigatewayv2';
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
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import type { BrokerFunctionId } from '../shared/function-environment.js';
import { brokerMetricNames, defaultMetricsNamespace, metricsServiceName } from '../shared/metric-names.js';
import { tableDefinitions } from '../shared/tables.js';
import type { BrokerTables } from './tables.js';

/** What the alarms and the dashboard watch. */
export interface BrokerMonitoringProps {
  readonly api: IWebSocketApi;
  readonly stage: IWebSocketStage;
  readonly functions: Readonly<Record<BrokerFunctionId, IFunction>>;
  readonly tables: BrokerTables;
  /** The queue in front of the message function. */
  readonly frameQueue: IQueue;
  /** Frames the message function gave up on. */
  readonly frameDeadLetterQueue: IQueue;
  /** Stream batches the fan-out gave up on. */
  readonly fanoutFailureQueue: IQueue;
  /**
   * SNS topic that receives alarm and OK notifications.
   * @default - alarms have no actions
   */
  readonly alarmTopic?: ITopic;
  /**
   * Namespace of the metrics the functions emit (shared/metric-names.ts).
   * @default defaultMetricsNamespace
   */
  readonly metricsNamespace?: string;
}

const minute = Duration.minutes(1);

function gatewayMetric(
  props: BrokerMonitoringProps,
  metricName: string,
  label: string,
  statistic: string = Stats.SUM,
): Metric {
  return new Metric({
    namespace: 'AWS/ApiGateway',
    metricName,
    dimensionsMap: { ApiId: props.api.apiId, Stage: props.stage.stageName },
    statistic,
    label,
    period: minute,
  });
}

/** One of the broker's own metrics, as Powertools Metrics emits it (dimension `service`). */
function brokerMetric(
  props: BrokerMonitoringProps,
  metricName: string,
  label: string,
  statistic: string = Stats.SUM,
): Metric {
  return new Metric({
    namespace: props.metricsNamespace ?? defaultMetricsNamespace,
    metricName,
    dimensionsMap: { service: metricsServiceName },
    statistic,
    label,
    period: minute,
  });
}

/**
 * One alarm per way the broker can fail its clients (ids `<Name>Alarm`, children of `scope`
 * itself), each notifying `alarmTopic` when given.
 *
 * @example
 * const alarms = createBrokerAlarms(this, { api, stage, functions, tables, frameQueue, … });
 */
export function createBrokerAlarms(scope: Construct, props: BrokerMonitoringProps): Alarm[] {
  const { fanout } = props.functions;
  const throttles: Record<string, IMetric> = Object.fromEntries(
    Object.values(props.functions).map((fn, i) => [`t${i}`, fn.metricThrottles({ period: minute })]),
  );
  const apiErrors = new MathExpression({
    expression: 'FILL(integration, 0) + FILL(execution, 0)',
    usingMetrics: {
      integration: gatewayMetric(props, 'IntegrationError', 'Integration errors'),
      execution: gatewayMetric(props, 'ExecutionError', 'Execution errors'),
    },
    label: 'API Gateway integration + execution errors',
    period: minute,
  });
  const specs: Array<{ id: string; metric: IMetric; threshold: number; periods: number; what: string }> = [
    {
      id: 'FanoutErrors',
      metric: fanout.metricErrors({ period: minute }),
      threshold: 0,
      periods: 1,
      what: 'The fan-out function failed a batch; it will be retried, then sent to the failure queue.',
    },
    {
      id: 'FanoutFailureQueueDepth',
      metric: props.fanoutFailureQueue.metricApproximateNumberOfMessagesVisible({
        period: minute,
        statistic: Stats.MAXIMUM,
      }),
      threshold: 0,
      periods: 1,
      what: 'Stream batches were given up on: some messages did not reach subscribers. Inspect the queue and replay from the stream within 24 h.',
    },
    {
      id: 'FrameDeadLetterDepth',
      metric: props.frameDeadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period: minute,
        statistic: Stats.MAXIMUM,
      }),
      threshold: 0,
      periods: 1,
      what: 'The message function failed on frames 5 times and gave up on them: their clients were not answered. Inspect the frame dead-letter queue.',
    },
    {
      id: 'StreamIteratorAge',
      metric: fanout.metric('IteratorAge', { period: minute, statistic: Stats.MAXIMUM }),
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
        period: minute,
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
    const alarm = new Alarm(scope, `${spec.id}Alarm`, {
      metric: spec.metric,
      threshold: spec.threshold,
      evaluationPeriods: spec.periods,
      datapointsToAlarm: spec.periods,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
      alarmDescription: spec.what,
    });
    if (props.alarmTopic) {
      alarm.addAlarmAction(new SnsAction(props.alarmTopic));
      alarm.addOkAction(new SnsAction(props.alarmTopic));
    }
    return alarm;
  });
}

/**
 * The broker's CloudWatch dashboard (id `Dashboard`, a child of `scope` itself): traffic, failure
 * queues, fan-out health, table capacity, function errors, the frame queue's backlog, and the broker's
 * own metrics (publishes, deliveries by outcome, fan-out lag, handshakes).
 *
 * @example
 * const dashboard = createBrokerDashboard(this, { api, stage, functions, tables, frameQueue, … });
 */
export function createBrokerDashboard(scope: Construct, props: BrokerMonitoringProps): Dashboard {
  const { message, fanout } = props.functions;
  const connects = gatewayMetric(props, 'ConnectCount', 'Connects');
  const gatewayMessages = gatewayMetric(props, 'MessageCount', 'WebSocket messages (in + out)');
  // Each inbound WebSocket message is one message sent to the frame queue.
  const messagesIn = props.frameQueue.metricNumberOfMessagesSent({
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
      props.tables[t.id].metric(name, { period: minute, statistic: Stats.SUM, label: t.id }),
    );
  const dashboard = new Dashboard(scope, 'Dashboard', { defaultInterval: Duration.hours(3) });
  dashboard.addWidgets(
    new TextWidget({
      markdown: `# Nimbus MQTT\nAPI \`${props.api.apiId}\` stage \`${props.stage.stageName}\`. Fan-out failures land in the failure queue, frames the message function gave up on in the frame dead-letter queue.`,
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
        props.fanoutFailureQueue.metricApproximateNumberOfMessagesVisible({
          period: minute,
          label: 'Fan-out failures',
        }),
        props.frameDeadLetterQueue.metricApproximateNumberOfMessagesVisible({
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
      left: Object.entries(props.functions).map(([name, fn]) =>
        fn.metricErrors({ period: minute, label: name }),
      ),
      width: 8,
    }),
  );
  dashboard.addWidgets(
    new GraphWidget({
      title: 'Frame queue: age of the oldest frame (s)',
      left: [
        props.frameQueue.metricApproximateAgeOfOldestMessage({
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
  const { deliveries } = brokerMetricNames;
  dashboard.addWidgets(
    new GraphWidget({
      title: 'MQTT publishes accepted / deliveries by outcome',
      left: [
        brokerMetric(props, brokerMetricNames.publishesAccepted, 'Publishes accepted'),
        brokerMetric(props, deliveries.sent, 'Delivered (sent)'),
        brokerMetric(props, deliveries.queued, 'Queued for offline sessions'),
        brokerMetric(props, deliveries.dropped, 'Dropped'),
        brokerMetric(props, deliveries.gone, 'Gone (stale connection)'),
      ],
      width: 8,
    }),
    new GraphWidget({
      title: 'Fan-out lag: published → fanned out (ms)',
      left: [
        brokerMetric(props, brokerMetricNames.fanoutLag, 'p50', Stats.p(50)),
        brokerMetric(props, brokerMetricNames.fanoutLag, 'p99', Stats.p(99)),
        brokerMetric(props, brokerMetricNames.fanoutLag, 'max', Stats.MAXIMUM),
      ],
      width: 8,
    }),
    new GraphWidget({
      title: 'WebSocket handshakes',
      left: [
        brokerMetric(props, brokerMetricNames.connectionsOpened, 'Opened'),
        brokerMetric(props, brokerMetricNames.connectionsRefused, 'Refused (no mqtt subprotocol)'),
      ],
      width: 8,
    }),
  );
  return dashboard;
}
