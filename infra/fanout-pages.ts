import { Policy, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { Construct } from 'constructs';

/**
 * Lets the fan-out function invoke itself for the pages of a large fan-out (ADR 0024). A policy of
 * its own rather than the role's default one: the function waits for its default policy, which
 * naming the function's own ARN would make a dependency cycle.
 *
 * @example
 * grantFanoutPages(this, fanout);
 */
export function grantFanoutPages(scope: Construct, fanout: NodejsFunction): Policy {
  if (!fanout.role) throw new Error('the fan-out function has no execution role to grant Invoke to');
  return new Policy(new Construct(scope, 'FanoutPages'), 'InvokeSelf', {
    roles: [fanout.role],
    statements: [
      new PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [fanout.functionArn] }),
    ],
  });
}
