import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import type { Emulator } from '../emulator/index.js';
import { connectClient, eventually, inbox, startTestEmulator } from './support/emulator.js';

// API Gateway refuses posts with 429 LimitExceededException past the account's request rate or
// while a client's buffer is full. The functions retry them (shared/gateway/signed-post.ts): a
// refused post delivered nothing, so the retry neither loses nor repeats it.
let emulator: Emulator & { logs: string[] };
before(async () => {
  emulator = await startTestEmulator({ throttledPostShare: 0.25 });
});
after(async () => {
  await emulator?.stop();
});

describe('posts refused with 429 by the gateway', () => {
  test('every acknowledged QoS 1 message reaches every subscriber, in publish order [MQTT-4.3.2-1] [MQTT-4.6.0-2]', async () => {
    const subscribers: MqttClient[] = [];
    const publisher = await connectClient(emulator.url, { clientId: 'throttle-pub' });
    try {
      for (let i = 0; i < 8; i++) {
        const client = await connectClient(emulator.url, { clientId: `throttle-sub-${i}` });
        subscribers.push(client);
        await client.subscribeAsync('throttle/t', { qos: 1 });
      }
      const inboxes = subscribers.map((client) => inbox(client));
      const payloads = Array.from({ length: 12 }, (_, i) => `m${i}`);
      for (const payload of payloads) await publisher.publishAsync('throttle/t', payload, { qos: 1 });
      await eventually(
        'every subscriber to have every message',
        () => inboxes.every((received) => payloads.every((p) => received.some((m) => m.payload === p))),
        60_000,
      );
      for (const received of inboxes) {
        // A batch that failed whole is repeated (at least once); the first arrivals keep the order.
        const firsts = [...new Set(received.map((m) => m.payload))];
        assert.deepEqual(firsts, payloads);
      }
      assert.ok(emulator.gateway.throttledPosts > 0, 'some posts were refused');
      assert.deepEqual(emulator.failedBatches, [], 'no fan-out batch given up on');
      assert.deepEqual(emulator.deadLetters, [], 'no frame given up on');
    } finally {
      await Promise.all([publisher, ...subscribers].map((client) => client.endAsync()));
    }
  });
});
