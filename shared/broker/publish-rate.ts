/**
 * The publish rate quota of one connection: a token bucket (docs/adr/0016-publish-and-connection-quotas.md).
 * Pure arithmetic on times in milliseconds; where the bucket is kept is the store's affair.
 */

/** What the bucket held at a moment: `tokens` PUBLISH packets may be sent at once. */
export interface RateBucket {
  readonly tokens: number;
  /** The sending time (milliseconds) `tokens` was computed for. */
  readonly at: number;
}

/** A sustained rate with a burst; `perSecond` 0 switches the quota off. */
export interface RateRule {
  readonly perSecond: number;
  readonly burst: number;
}

/**
 * The bucket at `now`: refilled by the rule's rate since `bucket.at`, never above the burst.
 * No bucket yet is a full one. A time earlier than the bucket's (clocks of two senders
 * disagreeing) refills nothing.
 *
 * @example
 * refill({ tokens: 0, at: 0 }, 500, { perSecond: 100, burst: 200 }); // { tokens: 50, at: 500 }
 */
export function refill(bucket: RateBucket | undefined, now: number, rule: RateRule): RateBucket {
  if (!bucket) return { tokens: rule.burst, at: now };
  const elapsed = Math.max(0, now - bucket.at);
  const tokens = Math.min(rule.burst, bucket.tokens + (elapsed * rule.perSecond) / 1000);
  return { tokens, at: Math.max(now, bucket.at) };
}

/**
 * Takes `count` tokens from a refilled bucket: the bucket after, or undefined when it holds
 * fewer than `count` (the rate is exceeded).
 *
 * @example
 * take({ tokens: 1.5, at: 0 }, 1); // { tokens: 0.5, at: 0 }
 * take({ tokens: 0.5, at: 0 }, 1); // undefined
 */
export function take(bucket: RateBucket, count = 1): RateBucket | undefined {
  return bucket.tokens >= count ? { tokens: bucket.tokens - count, at: bucket.at } : undefined;
}

/**
 * The emptier of two views of one bucket, both refilled to `now`: what this instance
 * remembers and what another instance stored, so a client gains nothing by its frames
 * reaching several instances.
 *
 * @example
 * lowest([{ tokens: 5, at: 0 }, { tokens: 3, at: 0 }], 0, { perSecond: 1, burst: 10 }); // { tokens: 3, at: 0 }
 */
export function lowest(
  buckets: ReadonlyArray<RateBucket | undefined>,
  now: number,
  rule: RateRule,
): RateBucket {
  return buckets
    .map((bucket) => refill(bucket, now, rule))
    .reduce((low, bucket) => (bucket.tokens < low.tokens ? bucket : low));
}

/**
 * Whether the bucket must be written where every instance sees it: only once the client has
 * used half its burst. A client sending below the rate keeps its bucket above half and costs
 * no write; one sending faster costs a write per frame until the quota stops it.
 *
 * @example
 * mustStore({ tokens: 150, at: 0 }, { perSecond: 100, burst: 200 }); // false
 */
export function mustStore(bucket: RateBucket, rule: RateRule): boolean {
  return bucket.tokens < rule.burst / 2;
}

/** Most connections whose bucket one instance remembers; the oldest is forgotten first. */
const rememberedConnections = 10_000;

/**
 * The buckets this instance has computed, by connection id, so that a bucket above half its
 * burst need not be written: a connection's frames mostly reach the instance that handled its
 * last ones. Forgetting one only lets its client send up to a burst more.
 */
export class RateMemory {
  private readonly buckets = new Map<string, RateBucket>();

  get(connectionId: string): RateBucket | undefined {
    return this.buckets.get(connectionId);
  }

  set(connectionId: string, bucket: RateBucket): void {
    this.buckets.delete(connectionId);
    this.buckets.set(connectionId, bucket);
    if (this.buckets.size > rememberedConnections) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
  }
}
