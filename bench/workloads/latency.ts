import type { Broker } from '../brokers.js';
import type { LatencySummary } from '../stats.js';
import { runWorkload } from '../workload.js';
import { type BenchContext, closeAll, scaled } from './common.js';

export interface LatencyOutcome {
  kind: 'latency';
  messages: number;
  /** Publish-to-deliver by broker and QoS, in ms. */
  results: Array<{ broker: Broker['name']; qos: 0 | 1; deliver: LatencySummary; lost: number }>;
  /** Nimbus only: mean ms per publish in each stage, from /metrics read before and after, by QoS. */
  stages: Record<string, Record<string, number>>;
}

/** Sum and count of each stage of `nimbus_publish_stage_seconds` in a Prometheus exposition. */
export function stageTotals(exposition: string): Record<string, { sum: number; count: number }> {
  const totals: Record<string, { sum: number; count: number }> = {};
  const line = /^nimbus_publish_stage_seconds_(sum|count)\{stage="([a-z_]+)"\} ([0-9.eE+-]+)$/gm;
  for (const [, kind, stage, value] of exposition.matchAll(line)) {
    if (!stage || !kind) continue;
    const entry = totals[stage] ?? { sum: 0, count: 0 };
    entry[kind as 'sum' | 'count'] = Number(value);
    totals[stage] = entry;
  }
  return totals;
}

async function readStages(url: string) {
  const response = await fetch(`${url.replace(/^ws/, 'http')}/metrics`);
  return stageTotals(await response.text());
}

/** Publish-to-deliver latency, one message in flight, at QoS 0 and 1 on every broker. */
export async function latency(ctx: BenchContext): Promise<LatencyOutcome> {
  const messages = scaled(200, ctx.scale, 20);
  const outcome: LatencyOutcome = { kind: 'latency', messages, results: [], stages: {} };
  for (const broker of [ctx.nimbus, ...ctx.others]) {
    const subscriber = await broker.connect(`lat-sub-${process.pid}`);
    const publisher = await broker.connect(`lat-pub-${process.pid}`);
    try {
      for (const qos of [0, 1] as const) {
        await subscriber.subscribeAsync(`lat/${qos}/+`, { qos });
        const options = {
          qos,
          inflight: 1,
          lossTimeoutMs: 30_000,
          maxConsecutiveLosses: 5,
          progress: ctx.progress,
        };
        await runWorkload(publisher, subscriber, {
          ...options,
          label: `${broker.name}-warm${qos}`,
          topic: `lat/${qos}/w`,
          messages: 5,
        });
        ctx.progress(`[latency] ${broker.name} QoS ${qos}: ${messages} messages, one in flight`);
        const before = broker === ctx.nimbus ? await readStages(broker.url) : undefined;
        const result = await runWorkload(publisher, subscriber, {
          ...options,
          label: `${broker.name}-lat${qos}`,
          topic: `lat/${qos}/t`,
          messages,
        });
        outcome.results.push({ broker: broker.name, qos, deliver: result.deliver, lost: result.lost });
        if (before) {
          await new Promise((resolve) => setTimeout(resolve, 500));
          const after = await readStages(broker.url);
          outcome.stages[`qos${qos}`] = Object.fromEntries(
            Object.entries(after).map(([stage, end]) => {
              const start = before[stage] ?? { sum: 0, count: 0 };
              const count = end.count - start.count;
              return [stage, count ? ((end.sum - start.sum) / count) * 1000 : Number.NaN];
            }),
          );
        }
      }
    } finally {
      await closeAll([publisher, subscriber]);
    }
  }
  return outcome;
}
