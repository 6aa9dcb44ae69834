import type { ConnectionRecord } from '../ports.js';
import type { BrokerContext } from './context.js';
import { lowest, mustStore, type RateBucket, type RateRule, take } from './publish-rate.js';

/** One frame's view of its connection's publish rate bucket. */
export interface PublishAllowance {
  readonly connectionId: string;
  readonly rule: RateRule;
  bucket: RateBucket;
  /** Whether a PUBLISH of this frame took a token, so the bucket has news to keep. */
  spent: boolean;
}

/**
 * The publish allowance of a frame the queue received at `sentAt`: the emptier of the
 * bucket this instance remembers and the one on the connection record, refilled to
 * `sentAt` (the client's sending time, not when the frame is handled, so a backlog
 * handled at once is not taken for a burst). Undefined when the quota is off.
 *
 * @example
 * const allowance = openAllowance(ctx, record, sentAt ?? ctx.now());
 */
export function openAllowance(
  ctx: BrokerContext,
  record: ConnectionRecord,
  sentAt: number,
): PublishAllowance | undefined {
  const rule = { perSecond: ctx.limits.maxPublishesPerSecond, burst: ctx.limits.publishBurst };
  if (rule.perSecond === 0) return undefined;
  const remembered = ctx.publishRates?.get(record.connectionId);
  const bucket = lowest([remembered, record.publishBucket], sentAt, rule);
  return { connectionId: record.connectionId, rule, bucket, spent: false };
}

/** Takes a token for one PUBLISH; false when the connection sends faster than its quota. */
export function spendPublish(allowance: PublishAllowance): boolean {
  const after = take(allowance.bucket);
  if (!after) return false;
  allowance.bucket = after;
  allowance.spent = true;
  return true;
}

/**
 * Remembers the bucket after the frame and writes it to the connection record only once
 * the client has used half its burst: at most one write per frame, none for a client
 * sending below its rate (docs/adr/0016-publish-and-connection-quotas.md).
 */
export async function keepAllowance(ctx: BrokerContext, allowance: PublishAllowance): Promise<void> {
  if (!allowance.spent) return;
  ctx.publishRates?.set(allowance.connectionId, allowance.bucket);
  if (!ctx.publishRates || mustStore(allowance.bucket, allowance.rule))
    await ctx.store.savePublishBucket(allowance.connectionId, allowance.bucket);
}
