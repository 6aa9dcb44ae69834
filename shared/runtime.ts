import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { authenticatorFrom } from './auth/from-config.js';
import type { BrokerContext } from './broker/context.js';
import { type BrokerConfig, configFromEnv } from './config.js';
import { ManagementApiGateway } from './gateway/management-api.js';
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
  const authenticator = authenticatorFrom(config, {
    db: () => db,
    onError: (message, error) => console.error(message, error),
  });
  return {
    config,
    store: new DynamoStore(db, config.tables, { now: Date.now }),
    gateway: new ManagementApiGateway(
      new ApiGatewayManagementApiClient({ endpoint: config.managementEndpoint }),
    ),
    maxPacketSize: config.maxPacketSize,
    maxQueuedPerSession: config.maxQueuedPerSession,
    now: Date.now,
    newId: randomUUID,
    sleep: (ms) => delay(ms),
    // The CONNECT handler still asks yes or no; the user the decision names is not used yet.
    ...(authenticator
      ? { authenticator: { authenticate: async (c) => (await authenticator.authenticate(c)).ok } }
      : {}),
  };
}
