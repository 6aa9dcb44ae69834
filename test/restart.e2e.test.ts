import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, test } from 'node:test';
import type { Emulator } from '../emulator/index.js';
import { connectClient, eventually, inbox, startTestEmulator } from './support/emulator.js';
import { connectPacket, RawClient } from './support/raw-client.js';

// With a data dir, the emulator keeps the fan-out's stream position across restarts: a message
// accepted (PUBACK sent) but not yet fanned out when the emulator stops is fanned out after it starts
// again, and what was fanned out before the stop is not fanned out twice.
const dataDir = mkdtempSync(join(tmpdir(), 'nimbus-restart-'));
let emulator: Emulator | undefined;
after(async () => {
  await emulator?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const topic = 'restart/news';

test('[MQTT-3.1.2-5] a QoS 1 message acknowledged just before a stop reaches its persistent subscriber after a restart, once', async (t) => {
  // First run: the fan-out takes batches of two and waits up to 300 s to fill one, so a lone message
  // is read from the stream but held back from the fan-out until the stop.
  emulator = await startTestEmulator({
    dataDir,
    eventSource: { batchSize: 2, maxBatchingWindowSeconds: 300 },
  });
  const subscriber = await connectClient(emulator.url, { clientId: 'restart-sub', clean: false });
  await subscriber.subscribeAsync(topic, { qos: 1 });
  const live = inbox(subscriber);
  const publisher = await connectClient(emulator.url, { clientId: 'restart-pub' });
  // Two messages fill a batch: they are fanned out at once, and the stream position moves past them.
  await publisher.publishAsync(topic, 'before-1', { qos: 1 });
  await publisher.publishAsync(topic, 'before-2', { qos: 1 });
  await eventually('the first two messages delivered live', () => live.length === 2);
  await subscriber.endAsync();
  await emulator.settle();
  // The checkpoint is written in the background, just after the batch: wait for it rather than race it.
  await eventually('the stream position written to the data dir', () => {
    const file = join(dataDir, 'stream-checkpoints.json');
    if (!existsSync(file)) return false;
    const { shards } = JSON.parse(readFileSync(file, 'utf8')) as { shards: Record<string, string> };
    return Object.keys(shards).length === 1;
  });

  const fanoutsBefore = emulator.meter().lambda.fanout?.requests ?? 0;
  const payload = Buffer.from('held: \u00e9t\u00e9 \u2713 \u0000\u00ff', 'utf8');
  await publisher.publishAsync(topic, payload, { qos: 1 }); // resolves on PUBACK
  await emulator.stop();
  publisher.end(true);
  assert.equal(
    emulator.meter().lambda.fanout?.requests ?? 0,
    fanoutsBefore,
    'stopped before the fan-out ran for the acknowledged message',
  );
  emulator = undefined;

  // Second run, default settings, same data dir.
  const restartedAt = performance.now();
  emulator = await startTestEmulator({ dataDir });
  const startedAt = performance.now();
  // The fan-out finishes before the subscriber reconnects: a reconnect while it runs can find the
  // queue still empty and leave the message queued until the next reconnect, which is not the
  // stream position this test is about.
  await emulator.settle();
  const fannedOutAt = performance.now();
  const back = await RawClient.open(emulator.url);
  back.send(connectPacket('restart-sub', { clean: false }));
  assert.equal((await back.next('connack')).sessionPresent, true, '[MQTT-3.2.2-2] the session survived');
  const publish = await back.next('publish');
  const deliveredAt = performance.now();
  back.send({ cmd: 'puback', messageId: publish.messageId });
  assert.equal(publish.topic, topic);
  assert.deepEqual(Buffer.from(publish.payload), payload, 'the payload arrives byte for byte');
  assert.equal(publish.qos, 1);
  assert.equal(publish.retain, false);
  // Everything the stream holds was fanned out: the messages of the first run are not sent again.
  back.send({ cmd: 'pingreq' });
  await back.next('pingresp');
  const others = back.packets.filter((p) => p.cmd === 'publish');
  assert.deepEqual(others, [], 'exactly one message after the restart');
  back.close();
  await back.closed;

  t.diagnostic(
    `sent 3, received ${live.length} before the restart and ${1 + others.length} after; ` +
      `restart to delivery ${Math.round(deliveredAt - restartedAt)} ms ` +
      `(emulator start ${Math.round(startedAt - restartedAt)} ms, fan-out ${Math.round(fannedOutAt - startedAt)} ms, ` +
      `reconnect to delivery ${Math.round(deliveredAt - fannedOutAt)} ms)`,
  );
});
