import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import type { BrokerContext } from './broker/context.js';
import { RateMemory } from './broker/publish-rate.js';
import { type BrokerConfig, configFromEnv } from './config.js';
import { ManagementApiGateway } from './gateway/management-api.js';
import { securityFromConfig } from './security.js';
import { createDocumentClient, DynamoStore } from './storage/dynamo-store.js';

/**
 * Wires the broker to DynamoDB and the management API from a function's
 * environment. Functions call it once per instance, at module load, so SDK
 * clients and their connections are reused across invocations.
 *
 * @example
 * const broker = brokerFromEnv(process.env);
 * export const handler = (event) => handleFrame(broker, event.requestContext.connectionId, event.body);
 */
export function brokerFromEnv(env: NodeJS.ProcessEnv): BrokerContext & { readonly config: BrokerConfig } {
  const config = configFromEnv(env);
  const db = createDocumentClient(config);
  return {
    config,
    store: new DynamoStore(db, config.tables, { now: Date.now }),
    gateway: new ManagementApiGateway(
      new ApiGatewayManagementApiClient({ endpoint: config.managementEndpoint }),
    ),
    maxPacketSize: config.maxPacketSize,
    maxQueuedPerSession: config.maxQueuedPerSession,
    limits: config.limits,
    publishRates: new RateMemory(),
    now: Date.now,
    newId: randomUUID,
    sleep: (ms) => delay(ms),
    ...securityFromConfig(config, db, Date.now, {
      onError: (message, error) => console.error(message, error),
    }),
  };
}
