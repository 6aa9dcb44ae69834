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
  try {
    const outcome = await handleFrame(broker, connectionId, frame);
    if (outcome.closed)
      logger.info('connection closed', { connectionId, reason: outcome.closed, handled: outcome.handled });
    return { statusCode: 200 };
  } catch (error) {
    // API Gateway drops a failed invocation's frame silently. Closing the
    // connection makes the client reconnect and resend what was not
    // acknowledged, instead of waiting forever for a PUBACK.
    logger.error('frame failed; closing the connection so the client resends', {
      connectionId,
      error: error as Error,
    });
    await broker.gateway.close(connectionId).catch(() => {});
    throw error;
  }
};
