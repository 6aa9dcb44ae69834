import { Aws, Duration } from 'aws-cdk-lib';
import type { WebSocketApi } from 'aws-cdk-lib/aws-apigatewayv2';
import { WebSocketAwsIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import { type IRole, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import {
  DeduplicationScope,
  FifoThroughputLimit,
  type IQueue,
  Queue,
  QueueEncryption,
} from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import {
  connectionIdAttribute,
  disconnectBody,
  disconnectEventType,
  eventTypeAttribute,
  frameQueueSettings,
  sourceIpAttribute,
} from '../shared/frame-queue.js';

export interface FrameQueueProps {
  /** The API whose `$default` and `$disconnect` routes send to the queue. */
  readonly api: WebSocketApi;
  /** The function that drains the queue (the message function). */
  readonly consumer: IFunction;
}

/** The FIFO queue in front of the message function, and what surrounds it. */
export interface FrameQueue {
  /** `$default`: inbound frames, one message group per connection, drained by the consumer. */
  readonly queue: Queue;
  /** Frames the consumer failed on `maxReceiveCount` times. */
  readonly deadLetterQueue: Queue;
  /** The role API Gateway assumes to send frames to `queue`. */
  readonly sendRole: Role;
}

/**
 * `$default` goes through a FIFO queue, one message group per connection, so one connection's
 * frames are handled one after another in arrival order (docs/adr/0003-ordering.md). `$disconnect`
 * joins the connection's message group: it is handled after the frames before it. Adds both routes
 * and the consumer's event source mapping; the resources are children of `scope` itself.
 *
 * @example
 * const frames = addFrameQueue(this, { api, consumer: functions.message });
 */
export function addFrameQueue(scope: Construct, props: FrameQueueProps): FrameQueue {
  const deadLetterQueue = new Queue(scope, 'FrameDeadLetters', {
    fifo: true,
    encryption: QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
  });
  const queue = new Queue(scope, 'Frames', {
    fifo: true,
    // High-throughput FIFO: partitioned by message group, so connections do not share a limit.
    deduplicationScope: DeduplicationScope.MESSAGE_GROUP,
    fifoThroughputLimit: FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
    encryption: QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    visibilityTimeout: Duration.seconds(frameQueueSettings.visibilityTimeoutSeconds),
    // A frame is worthless once its connection is gone, and no connection lives longer than 2 h.
    retentionPeriod: Duration.hours(2),
    deadLetterQueue: { queue: deadLetterQueue, maxReceiveCount: frameQueueSettings.maxReceiveCount },
  });
  const sendRole = new Role(scope, 'FrameQueueSendRole', {
    assumedBy: new ServicePrincipal('apigateway.amazonaws.com'),
    description: 'Nimbus MQTT: API Gateway sends $default frames to the frame queue',
  });
  queue.grant(sendRole, 'sqs:SendMessage');
  props.api.addRoute('$default', { integration: sendMessageIntegration('$default', queue, sendRole) });
  props.consumer.addEventSource(
    new SqsEventSource(queue, {
      batchSize: frameQueueSettings.batchSize,
      reportBatchItemFailures: frameQueueSettings.reportBatchItemFailures,
    }),
  );
  props.api.addRoute('$disconnect', { integration: sendMessageIntegration('$disconnect', queue, sendRole) });
  return { queue, deadLetterQueue, sendRole };
}

/**
 * `SendMessage` from the route: the connection id is the message group and an attribute, the
 * request id the deduplication id. Every value is URL-encoded: connection ids are base64 (`+`, `=`).
 */
function sendMessageIntegration(
  route: '$default' | '$disconnect',
  queue: IQueue,
  sendRole: IRole,
): WebSocketAwsIntegration {
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
  if (route === '$default') {
    fields.push(
      `MessageAttribute.2.Name=${sourceIpAttribute}`,
      'MessageAttribute.2.Value.DataType=String',
      `MessageAttribute.2.Value.StringValue=${encoded('$context.identity.sourceIp')}`,
    );
  } else {
    fields.push(
      `MessageAttribute.2.Name=${eventTypeAttribute}`,
      'MessageAttribute.2.Value.DataType=String',
      `MessageAttribute.2.Value.StringValue=${disconnectEventType}`,
    );
  }
  return new WebSocketAwsIntegration(
    route === '$default' ? 'FrameQueueIntegration' : 'DisconnectQueueIntegration',
    {
      integrationUri: `arn:${Aws.PARTITION}:apigateway:${Aws.REGION}:sqs:path/${Aws.ACCOUNT_ID}/${queue.queueName}`,
      integrationMethod: 'POST',
      credentialsRole: sendRole,
      requestParameters: {
        'integration.request.header.Content-Type': "'application/x-www-form-urlencoded'",
      },
      templateSelectionExpression: '\\$default',
      requestTemplates: { $default: fields.join('&') },
    },
  );
}
