import type { PublishTrace } from '../../emulator/publish-traces.js';
import type { Broker } from '../brokers.js';
import { type LatencySummary, summarize } from '../stats.js';
import { runWorkload } from '../workload.js';
import { type BenchContext, closeAll, scaled } from './common.js';

export interface LatencyOutcome {
  kind: 'latency';
  messages: number;
  /** Publish-to-deliver by broker and QoS, in ms. */
  results: Array<{ broker: Broker['name']; qos: 0 | 1; deliver: LatencySummary; lost: number }>;
  /** Nimbus only: mean ms per publish in each stage, from /metrics read before and after, by QoS. */
  stages: Record<string, Record<string, number>>;
  /** Nimbus only: per-message percentiles from the emulator's publish traces, by QoS. */
  perMessage: Record<string, PerMessage>;
}

/** Percentiles over messages of the broker's own work, the stream wait apart, and the stages of the own work. */
export interface PerMessage {
  /** frame_queue + message_handler + fanout of each message. */
  own: LatencySummary;
  streamWait: LatencySummary;
  frameQueue: LatencySummary;
  messageHandler: LatencySummary;
  fanout: LatencySummary;
}

/**
 * Summaries over traced messages (emulator/publish-traces.ts).
 *
 * @example
 * perMessage(emulator.publishTraces(startedAt)).own.p50; // 18.4
 */
export function perMessage(traces: readonly PublishTrace[]): PerMessage {
  return {
    own: summarize(traces.map((t) => t.ownMs)),
    streamWait: summarize(traces.map((t) => t.streamWaitMs)),
    frameQueue: summarize(traces.map((t) => t.frameQueueMs)),
    messageHandler: summarize(traces.map((t) => t.messageHandlerMs)),
    fanout: summarize(traces.map((t) => t.fanoutMs)),
  };
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

/** Messages Nimbus handles at each QoS before its latency is measured (see the warm-up below). */
export const warmUpMessages = { 0: 300, 1: 100 } as const;

/** Fewest messages measured per broker and QoS: a p50 of Nimbus's own work over 20 moved by ±3 ms run to run. */
const fewestMessages = 100;

/** Publish-to-deliver latency, one message in flight, at QoS 0 and 1 on every broker. */
export async function latency(ctx: BenchContext): Promise<LatencyOutcome> {
  const messages = scaled(200, ctx.scale, fewestMessages);
  const outcome: LatencyOutcome = { kind: 'latency', messages, results: [], stages: {}, perMessage: {} };
  for (const broker of [ctx.nimbus, ...ctx.others]) {
    const subscriber = await broker.connect(`lat-sub-${process.pid}`);
    const publisherId = `lat-pub-${process.pid}`;
    const publisher = await broker.connect(publisherId);
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
        // Warm-up. Nimbus's own work per message falls for its first ~300 messages (about 35 → 18 ms
        // here) as DynamoDB Local's JVM and the function instances' V8 compile their hot paths; a
        // deployed broker's traffic runs warm, so QoS 0 measures after that many and QoS 1 after 100
        // more of its own (PUBACKs both ways, packet id ranges), one in flight as measured (more would
        // start instances that the measurement then spreads over).
        await runWorkload(publisher, subscriber, {
          ...options,
          label: `${broker.name}-warm${qos}`,
          topic: `lat/${qos}/w`,
          messages: broker === ctx.nimbus ? warmUpMessages[qos] : 5,
        });
        ctx.progress(`[latency] ${broker.name} QoS ${qos}: ${messages} messages, one in flight`);
        const before = broker === ctx.nimbus ? await readStages(broker.url) : undefined;
        const startedAt = Date.now();
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
          const traces = ctx.nimbus.emulator
            .publishTraces(startedAt)
            .filter((t) => t.publisher === publisherId);
          outcome.perMessage[`qos${qos}`] = perMessage(traces);
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
