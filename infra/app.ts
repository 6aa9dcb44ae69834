import { App, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { NimbusStack } from './stack.js';

// `npx cdk deploy -c stackName=NimbusDev -c removalPolicy=destroy` for a throwaway broker.
const app = new App();
const context = (key: string): string | undefined => app.node.tryGetContext(key) ?? undefined;

new NimbusStack(app, context('stackName') ?? 'NimbusMqtt', {
  // Env-agnostic unless the CLI knows the account: synth works offline, without credentials.
  env:
    process.env.CDK_DEFAULT_ACCOUNT && process.env.CDK_DEFAULT_REGION
      ? { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION }
      : undefined,
  description: 'Nimbus MQTT: serverless MQTT broker on API Gateway WebSockets, Lambda and DynamoDB',
  stageName: context('stageName'),
  removalPolicy: context('removalPolicy') === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
  // `-c passwordFile=passwd [-c aclFile=acl]`, or `-c allowAnonymous=true` for an open broker.
  ...(context('passwordFile')
    ? { authentication: { passwordFile: context('passwordFile') } }
    : { allowAnonymous: context('allowAnonymous') === 'true' }),
  aclFile: context('aclFile'),
});

Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
