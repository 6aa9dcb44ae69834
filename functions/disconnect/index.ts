import { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyResultV2, APIGatewayProxyWebsocketEventV2 } from 'aws-lambda';
import { connectionGone } from '../../shared/broker/lifecycle.js';
import { brokerFromEnv } from '../../shared/runtime.js';

const logger = new Logger({ serviceName: 'nimbus-disconnect' });
const broker = brokerFromEnv(process.env);

/** $disconnect: best effort (it may never come); the sweeper and the fan-out's 410 handling cover the rest. */
export const handler = async (event: APIGatewayProxyWebsocketEventV2): Promise<APIGatewayProxyResultV2> => {
  const connectionId = event.requestContext.connectionId;
  await connectionGone(broker, connectionId);
  logger.debug('connection gone', { connectionId });
  return { statusCode: 200 };
};
