import { Logger } from '@aws-lambda-powertools/logger';
import type { ScheduledEvent } from 'aws-lambda';
import { sweep } from '../../shared/broker/sweep.js';
import { brokerFromEnv } from '../../shared/runtime.js';

const logger = new Logger({ serviceName: 'nimbus-sweeper' });
const broker = brokerFromEnv(process.env);

/** Every minute: keep-alive expiry and connections whose $disconnect never came. */
export const handler = async (_event: ScheduledEvent): Promise<void> => {
  const result = await sweep(broker);
  if (result.closed + result.stale > 0) logger.info('swept', { ...result });
};
