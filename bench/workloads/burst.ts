import type { Broker } from '../brokers.js';
import { type BenchContext, closeAll, connectMany, scaled } from './common.js';

export interface BurstOutcome {
  kind: 'burst';
  subscribers: number;
  /** Time from the publish to the last delivery, by broker; `delivered` short of `subscribers` means losses. */
  results: Array<{ broker: Broker['name']; ms: number; delivered: number }>;
}

/** One QoS 0 publish to N subscribers (10,000 at full size): time to the last delivery. */
export async function burst(ctx: BenchContext): Promise<BurstOutcome> {
  const subscribers = scaled(10_000, ctx.scale, 10);
  const outcome: BurstOutcome = { kind: 'burst', subscribers, results: [] };
  for (const broker of [ctx.nimbus, ...ctx.others]) {
    ctx.progress(`[burst] ${broker.name}: connecting ${subscribers} subscribers`);
    const clients = await connectMany(broker, 'burst-sub', subscribers);
    const publisher = await broker.connect(`burst-pub-${process.pid}`);
    try {
      await Promise.all(clients.map((c) => c.subscribeAsync('burst/all', { qos: 0 })));
      let delivered = 0;
      let last = 0;
      const done = new Promise<void>((resolve) => {
        for (const c of clients) {
          c.on('message', () => {
            delivered++;
            last = performance.now();
            if (delivered === subscribers) resolve();
          });
        }
      });
      const started = performance.now();
      await publisher.publishAsync('burst/all', 'go', { qos: 0 });
      await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 120_000))]);
      outcome.results.push({ broker: broker.name, ms: last ? last - started : Number.NaN, delivered });
      ctx.progress(
        `[burst] ${broker.name}: ${delivered}/${subscribers} in ${(last - started).toFixed(0)} ms`,
      );
    } finally {
      await closeAll([publisher, ...clients]);
    }
  }
  return outcome;
}
