import { Stack, Validations } from 'aws-cdk-lib';
import { tableDefinitions } from '../shared/tables.js';
import type { NimbusBroker } from './nimbus-broker.js';

/**
 * Acknowledges the cdk-nag AwsSolutions findings on the broker that are deliberate, each with why
 * it is right here. Everything else the checks find stays an error. Acknowledgements name single
 * findings (a rule and its resource), not whole rules, so a new wildcard is still reported.
 *
 * @example
 * acknowledgeChecks(this); // last, once every resource exists
 */
export function acknowledgeChecks(broker: NimbusBroker): void {
  const stack = Stack.of(broker);
  const iam5 = (finding: string) => `AwsSolutions-IAM5[Resource::${nagText(stack.resolve(finding))}]`;
  const indexTables = tableDefinitions
    .filter((t) => t.globalIndexes.length > 0)
    .map((t) => broker.tables[t.id]);
  // The resource `WebSocketStage.grantManagementApiAccess` grants.
  const connectionsArn = `${stack.formatArn({ service: 'execute-api', resource: broker.api.apiId })}/${broker.stage.stageName}/*/@connections/*`;
  for (const [name, fn] of Object.entries(broker.functions)) {
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
  const messageRole = broker.functions.message.role;
  if (broker.authorizerFunction && messageRole) {
    Validations.of(messageRole).acknowledge({
      id: iam5(`${broker.authorizerFunction.functionArn}:*`),
      reason:
        "grantInvoke covers the authorizer function's versions and aliases (function:*), so a qualified ARN works too; the wildcard covers only that one function.",
    });
  }
  for (const route of ['$connect', '$default', '$disconnect']) {
    const resource = broker.api.node.tryFindChild(`${route}-Route`);
    if (!resource) continue;
    Validations.of(resource).acknowledge({
      id: 'AwsSolutions-APIG4',
      reason:
        'MQTT clients authenticate in the protocol (CONNECT username/password, MQTT 5 enhanced auth), which the broker functions check; API Gateway allows an authorizer on $connect only, and $default/$disconnect belong to a connection $connect accepted.',
    });
  }
  const accountRole = broker.node.tryFindChild('ApiGatewayAccountRole');
  if (accountRole) {
    Validations.of(accountRole).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
      reason:
        "The API Gateway account role is region-wide: every API in the account logs through it, so it keeps AWS's managed logging policy instead of one scoped to this broker's log group.",
    });
  }
  Validations.of(broker.fanoutFailureQueue).acknowledge({
    id: 'AwsSolutions-SQS3',
    reason:
      'This queue is itself the dead-letter destination of the fan-out event source mapping; a queue behind it would only move the same records one step further.',
  });
  Validations.of(broker.frameDeadLetterQueue).acknowledge({
    id: 'AwsSolutions-SQS3',
    reason:
      'This queue is itself the dead-letter queue of the frame queue; a queue behind it would only move the same frames one step further.',
  });
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
