/**
 * The broker's functions in the emulator: one FunctionPool per function, with the environment the
 * CDK construct gives it (shared/function-environment.ts) plus what Lambda's runtime provides, and
 * warm instances initialised before the first client arrives.
 */

import { sysCountIntervalEnv } from '../shared/broker/sys-topics.js';
import { fanoutPageSizeEnv } from '../shared/fanout-pages.js';
import {
  type BrokerFunctionId,
  brokerFunctionIds,
  type FunctionEnvironmentOptions,
  functionEnvironment,
} from '../shared/function-environment.js';
import { defaultFunctionMemoryMb, functionSettings } from '../shared/function-settings.js';
import { localCredentials, localRegion } from './dynamodb-local.js';
import { FunctionPool } from './function-pool.js';
import type { Meter } from './meter.js';

const functionsDir = new URL('../functions/', import.meta.url);

export interface FunctionPoolsOptions {
  /** The broker's settings, as the CDK construct passes them. */
  readonly broker: FunctionEnvironmentOptions;
  readonly maxInstances?: number;
  readonly warmInstances?: number;
  readonly jitterMs?: number;
  readonly timeoutsMs?: Partial<Record<BrokerFunctionId, number>>;
  /** Subscribers per fan-out invocation before it pages (shared/fanout-pages.ts). */
  readonly fanoutPageSize?: number;
  /** How often a fan-out instance adds its traffic to the `$SYS/` counts (shared/broker/sys-topics.ts). */
  readonly sysCountIntervalMs?: number;
}

/**
 * Events that run a function's init (module load, SDK clients) and nothing else: no table is
 * touched. The sweeper has none; it starts cold, as it mostly does on AWS.
 */
const initEvents: Partial<Record<BrokerFunctionId, unknown>> = {
  connect: {
    headers: { 'sec-websocket-protocol': 'mqtt' },
    requestContext: { routeKey: '$connect', eventType: 'CONNECT', connectionId: 'init' },
    isBase64Encoded: false,
  },
  message: { Records: [] },
  fanout: { Records: [] },
};

/**
 * Starts a pool per broker function. Warm instances are ready when this resolves, as provisioned
 * concurrency runs the init phase ahead of traffic: otherwise a client's first packet waits for a
 * module load, which in a worker thread compiling TypeScript takes far longer than a Lambda cold
 * start. AWS bills no request for it, so the caller resets the meter afterwards.
 *
 * @example
 * const pools = await startFunctionPools({ broker: { tables, managementEndpoint } }, meter);
 * await pools.message.invoke(event);
 */
export async function startFunctionPools(
  options: FunctionPoolsOptions,
  meter: Meter,
): Promise<Record<BrokerFunctionId, FunctionPool>> {
  // What Lambda's runtime would provide, and the logging the emulator wants.
  const platform: Record<string, string> = {
    AWS_REGION: localRegion,
    AWS_ACCESS_KEY_ID: localCredentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: localCredentials.secretAccessKey,
    POWERTOOLS_LOG_LEVEL: process.env.POWERTOOLS_LOG_LEVEL ?? 'WARN',
    POWERTOOLS_DEV: 'true',
    // EMF lines on every invocation would drown the console; set it to false to see them.
    POWERTOOLS_METRICS_DISABLED: process.env.POWERTOOLS_METRICS_DISABLED ?? 'true',
    // The functions deploy on Node.js 22+; the SDK's notice about this machine's Node 20 is noise here.
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  const warm = options.warmInstances ?? 1;
  const pools = Object.fromEntries(
    brokerFunctionIds.map((name) => {
      const pool = new FunctionPool(
        {
          name,
          entry: new URL(`${name}/index.ts`, functionsDir).href,
          environment: {
            ...functionEnvironment(name, options.broker),
            ...platform,
            AWS_LAMBDA_FUNCTION_NAME: name,
            // The fan-out invokes itself for the pages of a large fan-out (emulator/lambda-api.ts).
            ...(name === 'fanout'
              ? {
                  AWS_ENDPOINT_URL_LAMBDA: options.broker.managementEndpoint,
                  ...(options.fanoutPageSize ? { [fanoutPageSizeEnv]: String(options.fanoutPageSize) } : {}),
                  ...(options.sysCountIntervalMs !== undefined
                    ? { [sysCountIntervalEnv]: String(options.sysCountIntervalMs) }
                    : {}),
                }
              : {}),
          },
          maxInstances: options.maxInstances ?? 4,
          memoryMb: defaultFunctionMemoryMb,
          timeoutMs: options.timeoutsMs?.[name] ?? functionSettings[name].timeoutSeconds * 1000,
          jitterMs: options.jitterMs,
        },
        meter,
      );
      pool.warm(warm);
      return [name, pool];
    }),
  ) as Record<BrokerFunctionId, FunctionPool>;
  try {
    await Promise.all(
      Object.entries(initEvents).flatMap(([name, event]) =>
        Array.from({ length: warm }, () => pools[name as BrokerFunctionId].invoke(event)),
      ),
    );
  } catch (error) {
    await Promise.all(Object.values(pools).map((pool) => pool.stop()));
    throw error;
  }
  return pools;
}
