import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Emulator } from '../emulator/index.js';
import { connectClient, eventually, startTestEmulator } from './support/emulator.js';
import { connectPacket, RawClient } from './support/raw-client.js';

// Sessions live in DynamoDB, so they must hold whichever function instance
// serves the client: takeover, session present, clean session, queues.
let emulator: Emulator & { logs: string[] };
// A small queue bound for this file's broker.
const maxQueued = 5;
before(async () => {
  emulator = await startTestEmulator({ jitterMs: 20, warmInstances: 2, maxQueuedPerSession: maxQueued });
});
after(async () => {
  await emulator?.stop();
});

describe('client identifier', () => {
  test('[MQTT-3.1.4-2] a second connection with the same client id takes over; the first is closed', async () => {
    const first = await RawClient.open(emulator.url);
    first.send(connectPacket('sess-takeover'));
    assert.equal((await first.next('connack')).returnCode, 0);
    const second = await RawClient.open(emulator.url);
    second.send(connectPacket('sess-takeover'));
    assert.equal((await second.next('connack')).returnCode, 0);
    await first.closed;
    // The new connection owns the session: it receives what is published to its subscription.
    second.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'sess/takeover', qos: 1 }] });
    await second.next('suback');
    const publisher = await connectClient(emulator.url, { clientId: 'sess-takeover-pub' });
    await publisher.publishAsync('sess/takeover', 'to-second', { qos: 1 });
    assert.equal((await second.next('publish')).payload.toString(), 'to-second');
    await publisher.endAsync();
    second.close();
  });

  test('exactly one live connection per client id when many connect at once', async () => {
    const clients = await Promise.all(Array.from({ length: 4 }, () => RawClient.open(emulator.url)));
    for (const client of clients) client.send(connectPacket('sess-race'));
    await Promise.all(clients.map((c) => c.next('connack').catch(() => undefined)));
    await emulator.settle();
    await eventually(
      'all but one closed',
      () => clients.filter((c) => c.socket.readyState === 1).length === 1,
    );
    const survivor = clients.find((c) => c.socket.readyState === 1);
    survivor?.close();
  });
});

describe('persistent sessions', () => {
  test('[MQTT-3.2.2-2] session present is 1 when a persistent session is resumed, 0 for a new one [MQTT-3.2.2-3]', async () => {
    const first = await RawClient.open(emulator.url);
    first.send(connectPacket('sess-present', { clean: false }));
    assert.equal((await first.next('connack')).sessionPresent, false);
    first.close();
    await first.closed;
    await emulator.settle();
    const again = await RawClient.open(emulator.url);
    again.send(connectPacket('sess-present', { clean: false }));
    assert.equal((await again.next('connack')).sessionPresent, true);
    again.close();
    await again.closed;
    await emulator.settle();
    // [MQTT-3.2.2-1] a clean session is never "present", and it discards the stored one [MQTT-3.1.2-6].
    const clean = await RawClient.open(emulator.url);
    clean.send(connectPacket('sess-present', { clean: true }));
    assert.equal((await clean.next('connack')).sessionPresent, false);
    clean.close();
    await clean.closed;
    await emulator.settle();
    const after = await RawClient.open(emulator.url);
    after.send(connectPacket('sess-present', { clean: false }));
    assert.equal((await after.next('connack')).sessionPresent, false);
    after.close();
  });

  test('[MQTT-3.1.2-4] subscriptions survive a disconnect; queued QoS 1 messages arrive in order on reconnect', async () => {
    const subscriber = await connectClient(emulator.url, { clientId: 'sess-queue', clean: false });
    await subscriber.subscribeAsync('sess/queue/+', { qos: 1 });
    await subscriber.endAsync();
    await emulator.settle();
    const publisher = await connectClient(emulator.url, { clientId: 'sess-queue-pub' });
    for (let i = 0; i < 5; i++) await publisher.publishAsync(`sess/queue/${i}`, String(i), { qos: 1 });
    await publisher.publishAsync('sess/queue/x', 'qos0', { qos: 0 });
    await emulator.settle();
    const back = await RawClient.open(emulator.url);
    back.send(connectPacket('sess-queue', { clean: false }));
    assert.equal((await back.next('connack')).sessionPresent, true);
    const payloads: string[] = [];
    for (let i = 0; i < 5; i++) {
      const publish = await back.next('publish');
      assert.equal(publish.qos, 1);
      payloads.push(publish.payload.toString());
      back.send({ cmd: 'puback', messageId: publish.messageId });
    }
    assert.deepEqual(payloads, ['0', '1', '2', '3', '4']);
    await emulator.settle();
    back.close();
    await back.closed;
    await emulator.settle();
    // Acknowledged messages are not sent again on the next reconnect.
    const third = await RawClient.open(emulator.url);
    third.send(connectPacket('sess-queue', { clean: false }));
    await third.next('connack');
    third.send({ cmd: 'pingreq' });
    await third.next('pingresp');
    assert.equal(third.packets.filter((p) => p.cmd === 'publish').length, 0);
    third.close();
    await publisher.endAsync();
  });

  test('[MQTT-4.4.0-1] an unacknowledged QoS 1 message is sent again with DUP set after reconnect', async () => {
    const first = await RawClient.open(emulator.url);
    first.send(connectPacket('sess-dup', { clean: false }), {
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [{ topic: 'sess/dup', qos: 1 }],
    });
    await first.next('suback');
    const publisher = await connectClient(emulator.url, { clientId: 'sess-dup-pub' });
    await publisher.publishAsync('sess/dup', 'unacked', { qos: 1 });
    const original = await first.next('publish');
    assert.equal(original.dup, false);
    first.socket.terminate(); // never acknowledged
    await first.closed;
    await emulator.settle();
    const second = await RawClient.open(emulator.url);
    second.send(connectPacket('sess-dup', { clean: false }));
    await second.next('connack');
    const again = await second.next('publish');
    assert.equal(again.payload.toString(), 'unacked');
    assert.equal(again.dup, true);
    assert.equal(again.messageId, original.messageId);
    second.close();
    await publisher.endAsync();
  });

  test('a full queue keeps the oldest messages and drops newer ones for that session only', async () => {
    const subscriber = await connectClient(emulator.url, { clientId: 'sess-full', clean: false });
    await subscriber.subscribeAsync('sess/full', { qos: 1 });
    await subscriber.endAsync();
    await emulator.settle();
    const publisher = await connectClient(emulator.url, { clientId: 'sess-full-pub' });
    for (let i = 0; i < maxQueued + 2; i++) await publisher.publishAsync('sess/full', String(i), { qos: 1 });
    await emulator.settle();
    const back = await RawClient.open(emulator.url);
    back.send(connectPacket('sess-full', { clean: false }));
    await back.next('connack');
    back.send({ cmd: 'pingreq' });
    await back.next('pingresp');
    const queued = back.packets.filter((p) => p.cmd === 'publish').map((p) => p.payload.toString());
    assert.deepEqual(
      queued,
      Array.from({ length: maxQueued }, (_, i) => String(i)),
    );
    back.close();
    await publisher.endAsync();
  });
});
