import type { BenchContext, CostOutcome } from './common.js';
import { runTraffic } from './traffic.js';

/** W2: one publisher, one 200 B message a second, 100 subscribers. */
export function fanout(ctx: BenchContext, seconds: number): Promise<CostOutcome> {
  // Not scaled: the bill per publish grows with the subscribers, and 100 connections fit the machine.
  const subscribers = 100;
  return runTraffic(ctx, {
    name: 'w2-fanout',
    title: 'W2 fan-out to 100',
    spec: {
      connections: 101,
      publishesPerSecond: 1,
      deliveriesPerPublish: subscribers,
      topicBytes: 'alerts/all'.length,
      payloadBytes: 200,
      qos: 0,
    },
    publishers: 1,
    subscribers,
    periodMs: 1_000,
    seconds,
    topic: () => 'alerts/all',
    filter: 'alerts/all',
    payload: () => Buffer.alloc(200, 'a'),
    scaled: `${subscribers} subscribers for ${seconds} s (all month)`,
  });
}
