import type { Broker } from '../brokers.js';
import { runWorkload } from '../workload.js';
import { type BenchContext, closeAll, connectMany, scaled } from './common.js';

export interface ScalingOutcome {
  kind: 'scaling';
  messages: number;
  /** Delivered messages per second across all publishers, by broker and publisher count. */
  results: Array<{
    broker: Broker['name'];
    publishers: number;
    /** Messages the publishers sent in all. */
    sent: number;
    throughput: number;
    lost: number;
  }>;
}

export const publisherCounts = [1, 10, 50] as const;

/**
 * Fewest messages per publisher: five windows of 4 in flight. Fewer, and 50 publishers send all
 * their messages at once, so the run times one burst's latency (the stream wait included) rather
 * than a sustained rate.
 */
export const minPerPublisher = 20;

/**
 * Aggregate QoS 1 throughput with 1, 10 and 50 publishers (4 in flight each) into one subscriber,
 * each count after an untimed warm-up round at the same concurrency; `messages` are split across the
 * publishers, each sending at least `minPerPublisher`.
 */
export async function scaling(ctx: BenchContext): Promise<ScalingOutcome> {
  const messages = scaled(1000, ctx.scale, 100);
  const outcome: ScalingOutcome = { kind: 'scaling', messages, results: [] };
  for (const broker of [ctx.nimbus, ...ctx.others]) {
    const subscriber = await broker.connect(`scale-sub-${process.pid}`);
    await subscriber.subscribeAsync('scale/+/t', { qos: 1 });
    try {
      for (const count of publisherCounts) {
        const publishers = await connectMany(broker, `scale-pub${count}`, count);
        try {
          const each = Math.max(Math.ceil(messages / count), minPerPublisher);
          const round = (label: string, perPublisher: number) =>
            Promise.all(
              publishers.map((publisher, i) =>
                runWorkload(publisher, subscriber, {
                  label: `${broker.name}-${label}${count}-${i}`,
                  topic: `scale/${i}/t`,
                  qos: 1,
                  messages: perPublisher,
                  inflight: 4,
                  lossTimeoutMs: 30_000,
                  maxConsecutiveLosses: 5,
                  progress: () => {},
                }),
              ),
            );
          // Untimed, at the same concurrency: the function instances this load needs are started
          // (cold starts of the emulator's TypeScript workers take seconds) before it is measured.
          await round('warm', Math.min(each, 4));
          ctx.progress(`[scaling] ${broker.name}: ${count} publisher(s) × ${each} QoS 1 messages`);
          const started = performance.now();
          const runs = await round('scale', each);
          const elapsedMs = performance.now() - started;
          const delivered = runs.reduce((sum, r) => sum + r.delivered, 0);
          const lost = runs.reduce((sum, r) => sum + r.lost, 0);
          outcome.results.push({
            broker: broker.name,
            publishers: count,
            sent: each * count,
            throughput: (delivered / elapsedMs) * 1000,
            lost,
          });
        } finally {
          await closeAll(publishers);
        }
      }
    } finally {
      await closeAll([subscriber]);
    }
  }
  return outcome;
}
