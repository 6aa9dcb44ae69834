import { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyResultV2, APIGatewayProxyWebsocketEventV2 } from 'aws-lambda';
import { chooseSubprotocol } from '../../shared/broker/handshake.js';
import { flushMetrics, functionMetrics, MetricUnit } from '../../shared/function-metrics.js';
import { brokerMetricNames } from '../../shared/metric-names.js';

const logger = new Logger({ serviceName: 'nimbus-connect' });
const metrics = functionMetrics();

/** The $connect event carries the handshake headers, which the V2 WebSocket type leaves out. */
type ConnectEvent = APIGatewayProxyWebsocketEventV2 & { headers?: Record<string, string | undefined> };

/** $connect: accept only clients that speak the `mqtt` subprotocol, and echo it (MQTT clients insist). */
export const handler = async (event: ConnectEvent): Promise<APIGatewayProxyResultV2> => {
  const offered = Object.entries(event.headers ?? {}).find(
    ([name]) => name.toLowerCase() === 'sec-websocket-protocol',
  )?.[1];
  const subprotocol = chooseSubprotocol(offered);
  const { connectionsOpened, connectionsRefused } = brokerMetricNames;
  metrics.addMetric(subprotocol ? connectionsOpened : connectionsRefused, MetricUnit.Count, 1);
  flushMetrics(metrics);
  if (!subprotocol) {
    logger.info('handshake refused: no mqtt subprotocol', {
      connectionId: event.requestContext.connectionId,
      offered,
    });
    return { statusCode: 400, body: 'The WebSocket subprotocol "mqtt" is required.' };
  }
  return { statusCode: 200, headers: { 'Sec-WebSocket-Protocol': subprotocol } };
};
