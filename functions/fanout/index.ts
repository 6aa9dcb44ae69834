import { Logger } from '@aws-lambda-powertools/logger';
import { LambdaClient } from '@aws-sdk/client-lambda';
import type { DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import type { FanOutResult } from '../../shared/broker/fanout.js';
import { fanOutBatch, fanOutPage } from '../../shared/broker/fanout-batch.js';
import {
  defaultSysCountInterval,
  isClientMessage,
  sysCountIntervalEnv,
  TrafficTally,
} from '../../shared/broker/sys-topics.js';
import {
  defaultFanoutPageSize,
  defaultFanoutPagesInFlight,
  type FanOutPageEvent,
  fanoutPageSizeEnv,
  fanoutPagesInFlightEnv,
  isFanOutPageEvent,
  lambdaPageRunner,
  pageFromEvent,
} from '../../shared/fanout-pages.js';
import { flushMetrics, functionMetrics, recordFanOut } from '../../shared/function-metrics.js';
import type { StoredMessage } from '../../shared/ports.js';
import { brokerFromEnv } from '../../shared/runtime.js';
import { messageFromStreamImage } from '../../shared/storage/stream-record.js';

const logger = new Logger({ serviceName: 'nimbus-fanout' });
const broker = brokerFromEnv(process.env);
const metrics = functionMetrics();
const pageSize = Number(process.env[fanoutPageSizeEnv] ?? defaultFanoutPageSize);
const pagesInFlight = Number(process.env[fanoutPagesInFlightEnv] ?? defaultFanoutPagesInFlight);
// A socket per page in flight: the agent's default 50 would hold the rest back unseen.
const pageAgent = { keepAlive: true, maxSockets: pagesInFlight };
const lambda = new LambdaClient({ requestHandler: { httpAgent: pageAgent, httpsAgent: pageAgent } });
/** Lambda's runtime names the function: pages go to more instances of this same function. */
const functionName = process.env.AWS_LAMBDA_FUNCTION_NAME;
const traffic = new TrafficTally(Number(process.env[sysCountIntervalEnv] ?? defaultSysCountInterval));

/**
 * The message table's stream: the whole batch is fanned out at once, in stream order
 * (shared/broker/fanout-batch.ts), its subscribers beyond one page delivered by parallel
 * invocations of this function (a `fanOutPage` event). A failed batch fails the invocation, so
 * the retry repeats all of it (bisected) and one publisher's order holds.
 */
export const handler = async (
  event: DynamoDBStreamEvent | FanOutPageEvent,
): Promise<DynamoDBBatchResponse | FanOutResult> => {
  if (isFanOutPageEvent(event)) return fanOutPage(broker, pageFromEvent(event));
  const images = new Map<StoredMessage, Record<string, unknown>>();
  for (const record of event.Records) {
    const image = record.eventName === 'INSERT' ? record.dynamodb?.NewImage : undefined;
    const message = messageFromStreamImage(image);
    if (image && message) images.set(message, image);
  }
  const messages = [...images.keys()];
  if (messages.length === 0) return { batchItemFailures: [] };
  try {
    const result = await fanOutBatch(broker, messages, {
      pageSize,
      pagesInFlight,
      runPage: functionName ? lambdaPageRunner(lambda, functionName, images) : undefined,
    });
    for (const message of messages)
      recordFanOut(metrics, share(result, messages.length), message.publishedAt);
    logger.debug('fanned out', { messages: messages.length, ...result });
    await countBatch(result, messages);
    return { batchItemFailures: [] };
  } catch (error) {
    // A function error, not a partial answer: the mapping bisects the batch (its halves in order),
    // so one message that keeps failing ends alone at the on-failure destination, not its batch.
    logger.error('fan-out failed; the batch will be retried', { error });
    throw error;
  } finally {
    flushMetrics(metrics);
  }
};

/** A batch's outcomes spread over its messages, so the per-message metrics keep their meaning. */
function share(result: FanOutResult, messages: number): FanOutResult {
  return {
    sent: result.sent / messages,
    queued: result.queued / messages,
    dropped: result.dropped / messages,
    gone: result.gone / messages,
  };
}

/** Tallies the batch's traffic for the `$SYS/` counts, written at most once a minute (docs/adr/0022). */
async function countBatch(result: FanOutResult, messages: readonly StoredMessage[]): Promise<void> {
  traffic.add(result, messages.filter(isClientMessage).length);
  try {
    await traffic.flushIfDue(broker);
  } catch (error) {
    // The figures are informational: failing the batch for them would deliver it twice.
    logger.warn('could not add the traffic to the $SYS counts; kept for the next write', { error });
  }
}
