/**
 * The custom authorizer hook on AWS: a Lambda function invoked synchronously per CONNECT.
 */
import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import type { AuthorizerInvoker, AuthorizerRequest } from './authorizer-hook.js';

/**
 * Invokes the authorizer function with the request as its event and returns its JSON answer. A
 * function error (its code threw) is thrown here, with the function's own message.
 *
 * @example
 * const hook = new LambdaAuthorizer(new LambdaClient({}), 'arn:aws:lambda:eu-west-1:123456789012:function:authorize');
 * await hook.invoke({ clientId: 'c1', username: 'alice', password: 'cHc=' }); // { allow: true }
 */
export class LambdaAuthorizer implements AuthorizerInvoker {
  constructor(
    private readonly lambda: LambdaClient,
    private readonly functionName: string,
  ) {}

  async invoke(request: AuthorizerRequest): Promise<unknown> {
    const result = await this.lambda.send(
      new InvokeCommand({
        FunctionName: this.functionName,
        InvocationType: 'RequestResponse',
        Payload: Buffer.from(JSON.stringify(request)),
      }),
    );
    const body = result.Payload ? Buffer.from(result.Payload).toString('utf8') : '';
    if (result.FunctionError) {
      throw new Error(
        `authorizer ${this.functionName} failed (${result.FunctionError}): ${body.slice(0, 500)}`,
      );
    }
    return body === '' ? undefined : (JSON.parse(body) as unknown);
  }
}
