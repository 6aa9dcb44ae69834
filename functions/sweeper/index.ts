import { Logger } from '@aws-lambda-powertools/logger';
import type { Context, ScheduledEvent } from 'aws-lambda';
import { checkKeepAlivesFor } from '../../shared/broker/keepalive.js';
import { sweep } from '../../shared/broker/sweep.js';
import { publishBrokerFigures } from '../../shared/broker/sys-topics.js';
import { brokerFromEnv } from '../../shared/runtime.js';

const logger = new Logger({ serviceName: 'nimbus-sweeper' });
const broker = brokerFromEnv(process.env);

/** The keep-alive schedule's input: check every `periodMs` for `runForMs` (0: check once). */
export interface KeepAliveCheckEvent {
  readonly keepAlive: { readonly runForMs: number; readonly periodMs: number };
}

/** Time left for the last check and its closes before the function's timeout. */
const finishMarginMs = 8_000;

/**
 * Two schedules, one function. The keep-alive schedule (`KeepAliveCheckEvent`)
 * checks the deadline index every second or so through its minute; the sweep
 * schedule (EventBridge's own event) scans for connections whose $disconnect was lost.
 */
export const handler = async (
  event: ScheduledEvent | KeepAliveCheckEvent,
  context?: Pick<Context, 'getRemainingTimeInMillis'>,
): Promise<void> => {
  if ('keepAlive' in event) {
    const { runForMs, periodMs } = event.keepAlive;
    // Lambda's context bounds the loop by the timeout; a local runner may give none.
    const left =
      typeof context?.getRemainingTimeInMillis === 'function'
        ? context.getRemainingTimeInMillis() - finishMarginMs
        : runForMs;
    await checkKeepAlivesFor(
      broker,
      Math.min(runForMs, left),
      periodMs,
      ({ error, ...counts }) => {
        if (counts.failed > 0)
          logger.error('keep-alive check failed; the next one retries', { ...counts, error });
        else if (counts.expired > 0) logger.info('keep-alive expired', counts);
      },
      (wills) => {
        if (typeof wills !== 'number')
          logger.error('publishing delayed wills failed; the next check retries', { error: wills.error });
        else if (wills > 0) logger.info('delayed wills published', { wills });
      },
    );
    return;
  }
  const result = await sweep(broker);
  if (result.closed + result.stale + result.expiredSessions > 0) logger.info('swept', { ...result });
  // The sweep has just read every connection record: the connected count costs nothing more.
  await publishBrokerFigures(broker, result.scanned - result.closed - result.stale);
};
