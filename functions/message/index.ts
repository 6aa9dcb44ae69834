import { processPartialResponse, SqsFifoPartialProcessorAsync } from '@aws-lambda-powertools/batch';
import { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyResultV2, SQSBatchResponse, SQSRecord } from 'aws-lambda';
import { handleFrame } from '../../shared/broker/inbound.js';
import { connectionGone } from '../../shared/broker/lifecycle.js';
import { brokerFromEnv } from '../../shared/runtime.js';
import {
  frameFromRecord,
  frameFromRoute,
  type InboundFrame,
  isQueueEvent,
  type MessageEvent,
} from './events.js';

const logger = new Logger({ serviceName: 'nimbus-message' });
const broker = brokerFromEnv(process.env);
const processor = new SqsFifoPartialProcessorAsync();

async function handle({ connectionId, frame, disconnected, frameId }: InboundFrame): Promise<void> {
  if (disconnected) {
    await connectionGone(broker, connectionId);
    return;
  }
  const outcome = await handleFrame(broker, connectionId, frame, frameId);
  if (outcome.closed)
    logger.info('connection closed', { connectionId, reason: outcome.closed, handled: outcome.handled });
}

/**
 * `$default`: WebSocket frames of base64 MQTT packets. From the FIFO queue (the product), a batch
 * of frames (and `$disconnect` notices, in order with them) handled one after another; a failure stops its connection's frames there, to be
 * retried in order. From a Lambda integration, one frame.
 */
export const handler = async (event: MessageEvent): Promise<SQSBatchResponse | APIGatewayProxyResultV2> => {
  if (isQueueEvent(event)) {
    const recordHandler = (record: SQSRecord) =>
      handle(frameFromRecord(record)).catch((error: unknown) => {
        logger.warn('frame failed; it and the frames after it on its connection will be retried', {
          messageId: record.messageId,
          receiveCount: record.attributes.ApproximateReceiveCount,
          error: error as Error,
        });
        throw error;
      });
    // Other connections' frames in the batch go on: skip only the failed group.
    return processPartialResponse(event, recordHandler, processor, { skipGroupOnError: true });
  }
  const inbound = frameFromRoute(event);
  try {
    await handle(inbound);
    return { statusCode: 200 };
  } catch (error) {
    // API Gateway drops a failed invocation's frame silently. Closing the
    // connection makes the client reconnect and resend what was not
    // acknowledged, instead of waiting forever for a PUBACK.
    logger.error('frame failed; closing the connection so the client resends', {
      connectionId: inbound.connectionId,
      error: error as Error,
    });
    await broker.gateway.close(inbound.connectionId).catch(() => {});
    throw error;
  }
};
