import { Logger } from '@aws-lambda-powertools/logger';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { withEnhancedAuthModule } from '../../shared/auth/enhanced-module.js';
import { handleFrame } from '../../shared/broker/inbound.js';
import { connectionGone } from '../../shared/broker/lifecycle.js';
import { flushMetrics, functionMetrics, MetricUnit } from '../../shared/function-metrics.js';
import { brokerMetricNames } from '../../shared/metric-names.js';
import { brokerFromEnv } from '../../shared/runtime.js';
import { frameFromRecord, type InboundFrame } from './events.js';
import { processGroupsConcurrently } from './groups.js';

const logger = new Logger({ serviceName: 'nimbus-message' });
// MQTT 5 AUTH methods of your own, if configured, load once at cold start.
const broker = await withEnhancedAuthModule(brokerFromEnv(process.env));
const metrics = functionMetrics();

async function handle({
  connectionId,
  frame,
  disconnected,
  frameId,
  sourceIp,
  sentAt,
}: InboundFrame): Promise<void> {
  if (disconnected) {
    await connectionGone(broker, connectionId);
    return;
  }
  const outcome = await handleFrame(broker, connectionId, frame, frameId, sourceIp, sentAt);
  // A PUBLISH that closed the connection was refused, not accepted.
  const refused = outcome.closed !== undefined && outcome.handled.at(-1) === 'publish';
  const publishes = outcome.handled.filter((cmd) => cmd === 'publish').length - (refused ? 1 : 0);
  if (publishes > 0) metrics.addMetric(brokerMetricNames.publishesAccepted, MetricUnit.Count, publishes);
  if (outcome.failure)
    logger.error('a packet failed and its connection was closed', {
      connectionId,
      handled: outcome.handled,
      error: outcome.failure,
    });
  else if (outcome.closed)
    logger.info('connection closed', { connectionId, reason: outcome.closed, handled: outcome.handled });
}

/**
 * The frame queue behind `$default` and `$disconnect`: a batch of WebSocket frames of base64 MQTT
 * packets (and `$disconnect` notices, in order with them) of up to ten connections; each
 * connection's frames are handled one after another, the connections side by side. A failure
 * stops its connection's frames there, to be retried in order.
 */
export const handler = async (event: SQSEvent): Promise<SQSBatchResponse> => {
  const recordHandler = (record: SQSRecord) =>
    handle(frameFromRecord(record)).catch((error: unknown) => {
      logger.warn('frame failed; it and the frames after it on its connection will be retried', {
        messageId: record.messageId,
        receiveCount: record.attributes.ApproximateReceiveCount,
        error: error as Error,
      });
      throw error;
    });
  try {
    // Other connections' frames in the batch go on: skip only the failed group.
    return await processGroupsConcurrently(event, recordHandler);
  } finally {
    flushMetrics(metrics);
  }
};
