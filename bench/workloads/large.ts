import { randomBytes } from 'node:crypto';
import { type BenchContext, type CostOutcome, scaled } from './common.js';
import { runTraffic } from './traffic.js';

const payloadBytes = 16 * 1024;

/** 16 KB of JSON readings: repetitive, as telemetry JSON is, so it compresses well. */
function jsonPayload(): Buffer {
  const readings: string[] = [];
  let text = '';
  for (let i = 0; ; i++) {
    readings.push(`{"t":${1_700_000_000 + i},"temp":${(20 + (i % 7) / 10).toFixed(1)},"ok":true}`);
    text = `{"device":"dev-0001","readings":[${readings.join(',')}]}`;
    if (text.length >= payloadBytes) break;
  }
  return Buffer.from(text.slice(0, payloadBytes - 2).concat(']}'));
}

/** W4: 100 devices each publish 16 KB every 10 s, one subscriber; JSON or incompressible bytes. */
export function large(ctx: BenchContext, kind: 'json' | 'random', seconds: number): Promise<CostOutcome> {
  // At least 10 devices, so a short run still meters enough 16 KB messages to average over.
  const devices = scaled(100, ctx.scale, 10);
  const json = jsonPayload();
  return runTraffic(ctx, {
    name: `w4-large-${kind}`,
    title: `W4 16 KB ${kind === 'json' ? 'JSON' : 'incompressible'}`,
    spec: {
      connections: 101,
      publishesPerSecond: 10,
      deliveriesPerPublish: 1,
      topicBytes: 'big/0000/t'.length,
      payloadBytes,
      qos: 0,
    },
    publishers: devices,
    subscribers: 1,
    periodMs: 10_000,
    seconds,
    topic: (i) => `big/${String(i).padStart(4, '0')}/t`,
    filter: 'big/+/t',
    payload: () => (kind === 'json' ? json : randomBytes(payloadBytes)),
    scaled: `${devices} devices for ${seconds} s (of 100 all month)`,
  });
}
