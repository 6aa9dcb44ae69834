import { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyResultV2, APIGatewayProxyWebsocketEventV2 } from 'aws-lambda';
import { handleFrame } from '../../shared/broker/inbound.js';
import { brokerFromEnv } from '../../shared/runtime.js';

const logger = new Logger({ serviceName: 'nimbus-message' });
const broker = brokerFromEnv(process.env);

/** $default: one WebSocket frame of base64 MQTT packets from one connection. */
export const handler = async (event: APIGatewayProxyWebsocketEventV2): Promise<APIGatewayProxyResultV2> => {
  const connectionId = event.requestContext.connectionId;
  const frame = event.isBase64Encoded
    ? Buffer.from(event.body ?? '', 'base64').toString()
    : (event.body ?? '');
  const outcome = await handleFrame(broker, connectionId, frame);
  if (outcome.closed)
    logger.info('connection closed', { connectionId, reason: outcome.closed, handled: outcome.handled });
  return { statusCode: 200 };
};
