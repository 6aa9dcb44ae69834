import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { NimbusStream } from '../client/index.js';
import type { Emulator } from '../emulator/index.js';
import { connectClient, eventually, startTestEmulator } from './support/emulator.js';
import { connectPacket, RawClient } from './support/raw-client.js';

// The fan-out posts a subscriber's deliveries of one stream batch in one WebSocket message
// (docs/adr/0024). Its PUBACKs must come back as few: each WebSocket message in is an API Gateway
// message and an SQS SendMessage on the bill.
let emulator: Emulator & { logs: string[] };
before(async () => {
  emulator = await startTestEmulator({ brokerLimits: { maxPublishesPerSecond: 0 }, sweepIntervalMs: 0 });
});
after(async () => {
  await emulator?.stop();
});

test('the PUBACKs of a coalesced delivery reach the gateway in one WebSocket message each', async () => {
  const count = 10;
  const subscriber = await connectClient(emulator.url, { clientId: 'acks-sub' });
  await subscriber.subscribeAsync('acks/#', { qos: 1 });
  const socket = (subscriber.stream as unknown as NimbusStream).webSocket;
  assert.ok(socket, 'the subscriber has its WebSocket');
  let deliveryMessages = 0;
  socket.addEventListener('message', () => deliveryMessages++);
  let received = 0;
  subscriber.on('message', () => received++);

  const publisher = await RawClient.open(emulator.url);
  publisher.send(connectPacket('acks-pub'));
  await publisher.next('connack');
  await emulator.settle();
  const messagesIn = () => emulator.meter().gateway.messagesIn;
  const before = messagesIn();
  // One frame of ten QoS 1 PUBLISHes: one message invocation stores them, so the stream carries
  // them in one batch (or a few), and the subscriber gets them in as many posts.
  publisher.send(
    ...Array.from({ length: count }, (_, i) => ({
      cmd: 'publish' as const,
      topic: `acks/${i}`,
      payload: Buffer.from(String(i)),
      qos: 1 as const,
      messageId: i + 1,
      dup: false,
      retain: false,
    })),
  );
  for (let i = 0; i < count; i++) await publisher.next('puback');
  await eventually('every delivery', () => received === count);
  await eventually('the acknowledgements', () => messagesIn() - before - 1 >= deliveryMessages);
  await emulator.settle();

  assert.ok(
    deliveryMessages < count,
    `${count} deliveries came in ${deliveryMessages} messages: none coalesced`,
  );
  // One message in was the publisher's frame; the rest are the subscriber's PUBACKs.
  assert.equal(messagesIn() - before - 1, deliveryMessages, 'one PUBACK message per delivery message');
  publisher.close();
  await subscriber.endAsync();
});
