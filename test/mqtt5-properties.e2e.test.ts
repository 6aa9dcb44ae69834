import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { IPublishPacket, MqttClient } from 'mqtt';
import { connect } from '../client/index.js';
import type { Emulator } from '../emulator/index.js';
import { connectClient, eventually, startTestEmulator } from './support/emulator.js';

// MQTT 5 application-message properties and Message Expiry Interval, end to
// end: MQTT.js (protocol version 5) through the emulator's gateway, queue,
// Lambdas, DynamoDB Local and its stream.

let emulator: Emulator & { logs: string[] };
const clients: MqttClient[] = [];
before(async () => {
  emulator = await startTestEmulator({ jitterMs: 20 });
});
after(async () => {
  await Promise.all(clients.map((c) => c.endAsync()));
  await emulator?.stop();
});

async function client(clientId: string, options: Parameters<typeof connectClient>[1] = {}) {
  const c = await connectClient(emulator.url, { clientId, protocolVersion: 5, ...options });
  clients.push(c);
  const received: IPublishPacket[] = [];
  c.on('message', (_topic, _payload, packet) => received.push(packet));
  return { client: c, received };
}

const properties = {
  payloadFormatIndicator: true,
  contentType: 'application/json',
  responseTopic: 'p5/replies/1',
  correlationData: Buffer.from([9, 0, 255]),
  userProperties: { first: 'one', dup: ['x', 'y'], last: '' },
};

describe('MQTT 5 properties end to end', () => {
  test('[MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20] a 5.0 subscriber gets every property as published; a 3.1.1 one the plain message', async () => {
    const v5 = await client('p5-sub5');
    const v4 = await client('p5-sub4', { protocolVersion: 4 });
    await v5.client.subscribeAsync('p5/pass', { qos: 1 });
    await v4.client.subscribeAsync('p5/pass', { qos: 1 });
    const pub = await client('p5-pub');
    await pub.client.publishAsync('p5/pass', '{"on":true}', { qos: 1, properties });
    await eventually('both deliveries', () => v5.received.length === 1 && v4.received.length === 1);
    const got = v5.received[0]?.properties ?? {};
    assert.equal(got.payloadFormatIndicator, true);
    assert.equal(got.contentType, 'application/json');
    assert.equal(got.responseTopic, 'p5/replies/1');
    assert.deepEqual([...(got.correlationData ?? [])], [9, 0, 255]);
    assert.deepEqual({ ...got.userProperties }, properties.userProperties);
    assert.deepEqual(Object.keys(got.userProperties ?? {}), ['first', 'dup', 'last']);
    assert.equal(v4.received[0]?.payload.toString(), '{"on":true}');
    assert.equal(v4.received[0]?.properties, undefined);
  });

  test('[MQTT-3.3.2-4] a payload declared UTF-8 that is not: PUBACK 0x99, nothing delivered', async () => {
    const sub = await client('p5-pfi-sub');
    await sub.client.subscribeAsync('p5/pfi', { qos: 1 });
    const pub = await client('p5-pfi-pub');
    await assert.rejects(
      pub.client.publishAsync('p5/pfi', Buffer.from([0xc3, 0x28]), {
        qos: 1,
        properties: { payloadFormatIndicator: true },
      }),
      (error: Error & { code?: number }) => error.code === 0x99,
    );
    await pub.client.publishAsync('p5/pfi', 'fine', { qos: 1, properties: { payloadFormatIndicator: true } });
    await eventually('the valid message', () => sub.received.length === 1);
    assert.equal(sub.received[0]?.payload.toString(), 'fine');
  });
});

describe('Message Expiry Interval end to end', () => {
  test('[MQTT-3.3.2-5] an expired retained message is not sent to a new subscriber; a live one is, with what is left of its interval [MQTT-3.3.2-6]', async () => {
    const pub = await client('p5-ret-pub');
    await pub.client.publishAsync('p5/ret/short', 'short', {
      qos: 1,
      retain: true,
      properties: { messageExpiryInterval: 1 },
    });
    await pub.client.publishAsync('p5/ret/long', 'long', {
      qos: 1,
      retain: true,
      properties: { messageExpiryInterval: 300 },
    });
    await new Promise((r) => setTimeout(r, 1_500));
    const sub = await client('p5-ret-sub');
    await sub.client.subscribeAsync('p5/ret/#', { qos: 1 });
    await eventually('the live retained message', () => sub.received.length >= 1);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(
      sub.received.map((p) => p.topic),
      ['p5/ret/long'],
    );
    const left = sub.received[0]?.properties?.messageExpiryInterval ?? 0;
    assert.ok(left > 0 && left < 300, `remaining interval ${left}`);
  });

  test('[MQTT-3.3.2-5] a message queued for an offline session expires there; one still alive is resent with its properties', async () => {
    const session = { clean: false, properties: { sessionExpiryInterval: 600 } };
    const first = await client('p5-queue-sub', session);
    await first.client.subscribeAsync('p5/queue', { qos: 1 });
    await first.client.endAsync();
    // Offline for the broker too (its DISCONNECT handled), so both messages are queued, not sent.
    await emulator.settle();
    const pub = await client('p5-queue-pub');
    await pub.client.publishAsync('p5/queue', 'short', { qos: 1, properties: { messageExpiryInterval: 1 } });
    await pub.client.publishAsync('p5/queue', 'long', {
      qos: 1,
      properties: { messageExpiryInterval: 600, userProperties: { kept: 'yes' } },
    });
    await emulator.settle(); // both are queued: the fan-out has run
    await new Promise((r) => setTimeout(r, 1_200));
    // Listening before CONNECT: the queued messages follow the CONNACK in the same frame.
    const again = connect(emulator.url, {
      clientId: 'p5-queue-sub',
      protocolVersion: 5,
      reconnectPeriod: 0,
      ...session,
    });
    clients.push(again);
    const received: IPublishPacket[] = [];
    again.on('message', (_topic, _payload, packet) => received.push(packet));
    await eventually('the live queued message', () => received.length >= 1);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(
      received.map((p) => [p.payload.toString(), { ...p.properties?.userProperties }]),
      [['long', { kept: 'yes' }]],
    );
  });
});
