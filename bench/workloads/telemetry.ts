import { randomBytes } from 'node:crypto';
import { type BenchContext, type CostOutcome, scaled } from './common.js';
import { runTraffic } from './traffic.js';

/** W1: 1,000 devices each publish 200 B every 10 s to `dev/<id>/t`; one backend subscribes to `dev/+/t`. */
export function telemetry(ctx: BenchContext, qos: 0 | 1, seconds: number): Promise<CostOutcome> {
  const devices = scaled(1000, ctx.scale, 10);
  return runTraffic(ctx, {
    name: `w1-telemetry-qos${qos}`,
    title: `W1 telemetry fan-in, QoS ${qos}`,
    spec: {
      connections: 1001,
      publishesPerSecond: 100,
      deliveriesPerPublish: 1,
      topicBytes: 'dev/0000/t'.length,
      payloadBytes: 200,
      qos,
    },
    publishers: devices,
    subscribers: 1,
    periodMs: 10_000,
    seconds,
    topic: (i) => `dev/${String(i).padStart(4, '0')}/t`,
    filter: 'dev/+/t',
    // Sensor readings as hex text: 200 bytes.
    payload: () => Buffer.from(randomBytes(100).toString('hex')),
    scaled: `${devices} devices for ${seconds} s (of 1,000 all month)`,
  });
}
