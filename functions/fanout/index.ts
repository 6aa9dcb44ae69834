import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { Logger } from '@aws-lambda-powertools/logger';
import type { DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { type FanOutResult, fanOut } from '../../shared/broker/fanout.js';
import { countTraffic, isClientMessage } from '../../shared/broker/sys-topics.js';
import { flushMetrics, functionMetrics, recordFanOut } from '../../shared/function-metrics.js';
import { brokerFromEnv } from '../../shared/runtime.js';
import { messageFromStreamImage } from '../../shared/storage/stream-record.js';

const logger = new Logger({ serviceName: 'nimbus-fanout' });
const broker = brokerFromEnv(process.env);
const metrics = functionMetrics();

/**
 * The message table's stream: deliver each new message to its subscribers.
 * Records run one at a time and, after a failure, the rest of the batch fails
 * too, so the retry resumes at the failed record and one publisher's order holds.
 */
export const handler = async (event: DynamoDBStreamEvent): Promise<DynamoDBBatchResponse> => {
  let failed = false;
  // The batch's traffic, added to the `$SYS/` counts with one write at the end (docs/adr/0022).
  const results: FanOutResult[] = [];
  let clientMessages = 0;
  const recordHandler = async (record: DynamoDBRecord) => {
    if (failed) throw new Error('an earlier record of this batch failed');
    const message =
      record.eventName === 'INSERT' ? messageFromStreamImage(record.dynamodb?.NewImage) : undefined;
    if (!message) return;
    try {
      const result = await fanOut(broker, message);
      results.push(result);
      if (isClientMessage(message)) clientMessages++;
      recordFanOut(metrics, result, message.publishedAt);
      logger.debug('fanned out', { topic: message.topic, ...result });
    } catch (error) {
      failed = true;
      throw error;
    }
  };
  try {
    const response = await processPartialResponse(
      event,
      recordHandler,
      new BatchProcessor(EventType.DynamoDBStreams),
      { processInParallel: false },
    );
    try {
      await countTraffic(broker, results, clientMessages);
    } catch (error) {
      // The figures are informational: failing the batch for them would deliver it twice.
      logger.warn('could not add the batch to the $SYS counts', { error });
    }
    return response;
  } finally {
    flushMetrics(metrics);
  }
};
