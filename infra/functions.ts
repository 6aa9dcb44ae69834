import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, type RemovalPolicy } from 'aws-cdk-lib';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { authUsersEnv } from '../shared/config.js';
import {
  type BrokerFunctionId,
  brokerFunctionIds,
  type FunctionEnvironmentOptions,
  functionEnvironment,
} from '../shared/function-environment.js';

/** The Lambda runtime every broker function runs on. */
export const brokerRuntime = Runtime.NODEJS_24_X;

/** Log levels Powertools Logger understands. */
export type BrokerLogLevel = 'TRACE' | 'DEBUG' | 'INFO' | 'WARN' | 'ERROR' | 'SILENT' | 'CRITICAL';

/** Largest users document the construct puts in an environment variable, leaving room for the rest of Lambda's 4 KB. */
export const maxAuthUsersBytes = 3000;

export interface BrokerFunctionsProps {
  /** What the broker's own settings are: tables, management endpoint, limits, users. */
  readonly environment: FunctionEnvironmentOptions;
  /**
   * Powertools log level of every function.
   * @default 'INFO'
   */
  readonly logLevel?: BrokerLogLevel;
  /**
   * Memory of each function, in MB.
   * @default 256
   */
  readonly memorySize?: number;
  /** How long function logs are kept (the broker's `logRetention`). */
  readonly logRetention: RetentionDays;
  /** What happens to the log groups when the stack is deleted (the broker's `removalPolicy`). */
  readonly removalPolicy: RemovalPolicy;
}

/** What differs between the functions besides their code. */
const functionSpecs: Record<BrokerFunctionId, { timeout: Duration; description: string }> = {
  connect: { timeout: Duration.seconds(5), description: 'MQTT over WebSocket handshake ($connect)' },
  message: {
    timeout: Duration.seconds(15),
    description: 'MQTT packets from clients ($default, via the frame queue)',
  },
  fanout: { timeout: Duration.seconds(60), description: 'Delivers published messages to subscribers' },
  sweeper: {
    // The keep-alive check loops through its minute (shared/broker/keepalive.ts keepAliveSchedule).
    timeout: Duration.seconds(75),
    description: 'Keep-alive expiry and connections whose $disconnect was lost',
  },
};

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The broker's functions, each bundled from `functions/<id>/index.ts` with its own log group and
 * role (ids `<Id>Logs`, `<Id>Role`, `<Id>Function`, children of `scope` itself). Grants nothing
 * beyond writing its own logs: the caller grants what each one needs.
 *
 * @example
 * const functions = createBrokerFunctions(this, {
 *   environment: { tables, managementEndpoint },
 *   logRetention: RetentionDays.ONE_MONTH,
 *   removalPolicy: RemovalPolicy.RETAIN,
 * });
 * functions.message.functionArn;
 */
export function createBrokerFunctions(
  scope: Construct,
  props: BrokerFunctionsProps,
): Record<BrokerFunctionId, NodejsFunction> {
  const platform = {
    POWERTOOLS_SERVICE_NAME: 'nimbus-mqtt',
    POWERTOOLS_LOG_LEVEL: props.logLevel ?? 'INFO',
    NODE_OPTIONS: '--enable-source-maps',
  };
  const entries = brokerFunctionIds.map((name) => {
    const environment = { ...functionEnvironment(name, props.environment), ...platform };
    checkEnvironmentSize(environment);
    return [name, brokerFunction(scope, name, environment, props)] as const;
  });
  return Object.fromEntries(entries) as Record<BrokerFunctionId, NodejsFunction>;
}

/** The users document must fit Lambda's 4 KB environment: fail at synth, not at deploy. */
function checkEnvironmentSize(environment: Record<string, string>): void {
  const users = environment[authUsersEnv];
  if (users !== undefined && Buffer.byteLength(users) > maxAuthUsersBytes) {
    throw new Error(
      `authentication.users is ${Buffer.byteLength(users)} bytes as JSON, more than ${maxAuthUsersBytes}: Lambda allows 4 KB of environment in all (docs/adr/0005-authentication.md)`,
    );
  }
}

function brokerFunction(
  scope: Construct,
  name: BrokerFunctionId,
  environment: Record<string, string>,
  props: BrokerFunctionsProps,
): NodejsFunction {
  const id = name.charAt(0).toUpperCase() + name.slice(1);
  const logGroup = new LogGroup(scope, `${id}Logs`, {
    retention: props.logRetention,
    removalPolicy: props.removalPolicy,
  });
  // Our own role: writes only to this function's log group, instead of the managed
  // AWSLambdaBasicExecutionRole that allows every log group in the account.
  const role = new Role(scope, `${id}Role`, {
    assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
    description: `Nimbus MQTT ${name} function`,
  });
  logGroup.grantWrite(role);
  const lockFile = join(repoRoot, 'package-lock.json');
  return new NodejsFunction(scope, `${id}Function`, {
    entry: join(repoRoot, 'functions', name, 'index.ts'),
    handler: 'handler',
    projectRoot: repoRoot,
    depsLockFilePath: existsSync(lockFile) ? lockFile : undefined,
    runtime: brokerRuntime,
    architecture: Architecture.ARM_64,
    memorySize: props.memorySize ?? 256,
    timeout: functionSpecs[name].timeout,
    description: functionSpecs[name].description,
    environment,
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
