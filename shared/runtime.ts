import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import type { BrokerContext } from './broker/context.js';
import { postsInFlight } from './broker/fanout-batch.js';
import { RateMemory } from './broker/publish-rate.js';
import { type BrokerConfig, configFromEnv } from './config.js';
import { ManagementApiGateway } from './gateway/management-api.js';
import { ManagementPoster } from './gateway/signed-post.js';
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
    gateway: managementGateway(config.managementEndpoint),
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

/**
 * The management API of a function. A fan-out posts once per subscriber, so posts go through the
 * signed poster (ADR 0030) with as many keep-alive sockets as the fan-out has posts in flight, so none
 * queues behind an agent's default 50; it signs with the SDK client's region and credential provider.
 * The SDK client keeps the rarer calls (GetConnection, DeleteConnection).
 */
function managementGateway(endpoint: string): ManagementApiGateway {
  const client = new ApiGatewayManagementApiClient({ endpoint });
  const poster = new ManagementPoster({
    endpoint,
    region: client.config.region,
    credentials: client.config.credentials,
    sockets: postsInFlight,
  });
  return new ManagementApiGateway(client, poster);
}
