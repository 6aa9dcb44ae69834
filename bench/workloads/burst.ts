import type { Broker } from '../brokers.js';
import { plantSubscribers, SocketSwarm } from '../swarm.js';
import { type BenchContext, closeAll, connectMany, scaled } from './common.js';

export interface BurstOutcome {
  kind: 'burst';
  subscribers: number;
  /**
   * Time from the publish to the first and to the last delivery, by broker; `delivered` short of
   * `subscribers` means losses. A broker left out (too many clients for one process) has no row.
   */
  results: Array<{ broker: Broker['name']; firstMs?: number; ms: number; delivered: number }>;
  /** The machine's load average (1 minute) when the publish went out. */
  load?: number;
}

/** Clients of the other brokers live in this process: past this many, both ends run out of file descriptors. */
const maxInProcessSubscribers = 2_000;
const topic = 'burst/all';
const timeoutMs = 120_000;

/**
 * One QoS 0 publish to N subscribers (10,000 at full size, `--subscribers` sets N), each on its own
 * connection: time to the first and the last delivery. Nimbus's subscribers are bare WebSocket
 * connections in a process of their own (bench/socket-swarm.ts) with planted sessions, timed where
 * they arrive; the other brokers' are MQTT.js clients in this process, up to 2,000.
 */
export async function burst(ctx: BenchContext): Promise<BurstOutcome> {
  const subscribers = ctx.subscribers ?? scaled(10_000, ctx.scale, 10);
  const outcome: BurstOutcome = { kind: 'burst', subscribers, results: [] };
  outcome.results.push(await nimbusBurst(ctx, subscribers, outcome));
  for (const broker of ctx.others) {
    if (subscribers > maxInProcessSubscribers) {
      ctx.progress(
        `[burst] ${broker.name}: left out (more than ${maxInProcessSubscribers} clients in one process)`,
      );
      continue;
    }
    outcome.results.push(await inProcessBurst(ctx, broker, subscribers));
  }
  return outcome;
}

async function nimbusBurst(ctx: BenchContext, subscribers: number, outcome: BurstOutcome) {
  const { emulator } = ctx.nimbus;
  ctx.progress(`[burst] nimbus: opening ${subscribers} WebSocket subscribers in their own process`);
  const swarm = await SocketSwarm.start(emulator.url, subscribers);
  const publisher = await ctx.nimbus.connect(`burst-pub-${process.pid}`);
  try {
    ctx.progress(`[burst] nimbus: planting ${subscribers} sessions subscribed to ${topic}`);
    await plantSubscribers(emulator, emulator.gateway.connectionIds, topic);
    // What the planting left in flight (the meter's proxy, the stream) is done before the clock starts.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    outcome.load = (await import('node:os')).loadavg()[0];
    const publishedAt = Date.now();
    await publisher.publishAsync(topic, 'go', { qos: 0 });
    const tally = await swarm.untilAllGot(topic, timeoutMs);
    const since = (at: number | undefined) => (at === undefined ? Number.NaN : at - publishedAt);
    const result = {
      broker: ctx.nimbus.name,
      firstMs: since(tally.firstAt),
      ms: since(tally.lastAt),
      delivered: tally.once + tally.more,
    };
    ctx.progress(
      `[burst] nimbus: ${result.delivered}/${subscribers} (${tally.more} more than once), first ${result.firstMs.toFixed(0)} ms, last ${result.ms.toFixed(0)} ms after the publish; load average ${outcome.load.toFixed(2)}`,
    );
    return result;
  } finally {
    swarm.close();
    await closeAll([publisher]);
  }
}

async function inProcessBurst(ctx: BenchContext, broker: Broker, subscribers: number) {
  ctx.progress(`[burst] ${broker.name}: connecting ${subscribers} subscribers`);
  const clients = await connectMany(broker, 'burst-sub', subscribers);
  const publisher = await broker.connect(`burst-pub-${process.pid}`);
  try {
    await Promise.all(clients.map((c) => c.subscribeAsync(topic, { qos: 0 })));
    let delivered = 0;
    let first = 0;
    let last = 0;
    const done = new Promise<void>((resolve) => {
      for (const c of clients) {
        c.on('message', () => {
          delivered++;
          last = performance.now();
          first ||= last;
          if (delivered === subscribers) resolve();
        });
      }
    });
    const started = performance.now();
    await publisher.publishAsync(topic, 'go', { qos: 0 });
    await Promise.race([done, new Promise((resolve) => setTimeout(resolve, timeoutMs))]);
    const result = {
      broker: broker.name,
      firstMs: first ? first - started : Number.NaN,
      ms: last ? last - started : Number.NaN,
      delivered,
    };
    ctx.progress(
      `[burst] ${broker.name}: ${delivered}/${subscribers}, first ${result.firstMs.toFixed(0)} ms, last ${result.ms.toFixed(0)} ms`,
    );
    return result;
  } finally {
    await closeAll([publisher, ...clients]);
  }
}
