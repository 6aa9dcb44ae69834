import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { IClientOptions, MqttClient } from 'mqtt';
import mqttPacket, { type IConnackPacket } from 'mqtt-packet';
import { WebSocket } from 'ws';
import { connect as connectNimbus } from '../client/index.js';
import type { Emulator } from '../emulator/index.js';
import { connectClient, eventually, startTestEmulator } from './support/emulator.js';

// MQTT 5 Will Delay Interval and Server Keep Alive through the emulator, with MQTT.js speaking 5.0.
// The keep-alive check (which also publishes due wills) runs every second, as on AWS.

let emulator: Emulator & { logs: string[] };
let watcher: MqttClient;
let wills: Array<{ topic: string; payload: string; at: number }>;
const clients: MqttClient[] = [];

before(async () => {
  emulator = await startTestEmulator({
    jitterMs: 10,
    brokerLimits: { maxPublishesPerSecond: 0, serverKeepAliveSeconds: 120 },
  });
  watcher = await connect({ clientId: 'flow-watcher' });
  wills = [];
  watcher.on('message', (topic, payload) =>
    wills.push({ topic, payload: payload.toString(), at: Date.now() }),
  );
  await watcher.subscribeAsync('will/#', { qos: 1 });
});
after(async () => {
  for (const client of clients) client.end(true);
  await emulator?.stop();
});

async function connect(options: IClientOptions): Promise<MqttClient> {
  const client = await connectClient(emulator.url, { protocolVersion: 5, ...options });
  clients.push(client);
  return client;
}

/** A 5.0 client with a will delayed `delay` seconds, in a session kept a minute. */
function withDelayedWill(clientId: string, topic: string, delay: number): Promise<MqttClient> {
  return connect({
    clientId,
    clean: false,
    properties: { sessionExpiryInterval: 60 },
    will: {
      topic,
      payload: Buffer.from('gone'),
      qos: 1,
      retain: false,
      properties: { willDelayInterval: delay },
    },
  });
}

describe('Will Delay Interval', () => {
  test('[MQTT-3.1.3-9] a will with delay 3 s is published after the delay, not at the abrupt close', async () => {
    const client = await withDelayedWill('flow-will-late', 'will/late', 3);
    const closedAt = Date.now();
    client.stream.destroy(); // no DISCONNECT
    await eventually('the delayed will', () => wills.some((w) => w.topic === 'will/late'), 15_000);
    const [published] = wills.filter((w) => w.topic === 'will/late');
    // The broker cannot publish it before it is due: 3 s after the close it saw, which is after ours.
    assert.ok(
      published && published.at - closedAt >= 3_000,
      `published ${published && published.at - closedAt} ms after the close`,
    );
    await emulator.settle();
    assert.equal(wills.filter((w) => w.topic === 'will/late').length, 1, 'published once');
  });

  test('[MQTT-3.1.3-9] a client that reconnects within the delay: its will is never published', async () => {
    // A delay long enough for the reconnect to be handled on a loaded machine.
    const delayMs = 15_000;
    const client = await withDelayedWill('flow-will-back', 'will/back', delayMs / 1000);
    const closedAt = Date.now();
    client.stream.destroy();
    // Back within the delay, with the same client id.
    await connect({ clientId: 'flow-will-back', clean: false, properties: { sessionExpiryInterval: 60 } });
    assert.ok(Date.now() - closedAt < delayMs, 'reconnected within the delay');
    // Past the delay and a few checks: still nothing.
    await new Promise((resolve) => setTimeout(resolve, delayMs - (Date.now() - closedAt) + 3_000));
    await emulator.settle();
    assert.deepEqual(
      wills.filter((w) => w.topic === 'will/back'),
      [],
    );
  });
});

/** Connects and returns the client with the CONNACK it got. */
function connectForConnack(
  options: IClientOptions,
): Promise<{ client: MqttClient; connack: IConnackPacket }> {
  const client = connectNimbus(emulator.url, { reconnectPeriod: 0, protocolVersion: 5, ...options });
  clients.push(client);
  return new Promise((resolve, reject) => {
    client.once('connect', (connack) => resolve({ client, connack }));
    client.once('error', reject);
  });
}

describe('Server Keep Alive', () => {
  test("[MQTT-3.2.2-21] a 5.0 client asking keep-alive 10 is told the broker's 120 in CONNACK, and pings by it", async () => {
    const { client, connack } = await connectForConnack({ clientId: 'flow-keepalive', keepalive: 10 });
    assert.equal(connack.properties?.serverKeepAlive, 120);
    assert.equal(client.keepalive, 120);
    // [MQTT-3.3.4-8] and the broker's own Receive Maximum, the default 100.
    assert.equal(connack.properties?.receiveMaximum, 100);
  });

  test('[MQTT-3.2.2-22] a 5.0 client asking a keep-alive in bounds gets no Server Keep Alive', async () => {
    const { connack } = await connectForConnack({ clientId: 'flow-keepalive-ok', keepalive: 300 });
    assert.equal(connack.properties?.serverKeepAlive, undefined);
  });
});

/** A `ws` WebSocket that counts the PUBLISH packets the broker sends, as they arrive on the wire. */
function countingWebSocket(onPublish: (packet: mqttPacket.IPublishPacket) => void) {
  return class extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      const parser = mqttPacket.parser({ protocolVersion: 5 });
      parser.on('packet', (packet) => {
        if (packet.cmd === 'publish') onPublish(packet);
      });
      this.on('message', (data) => parser.parse(Buffer.from(data.toString(), 'base64')));
    }
  };
}

describe('Receive Maximum toward the client', () => {
  test('[MQTT-3.3.4-9] a client allowing 2 that acknowledges slowly never has more than 2 in flight, and gets all in order', async () => {
    let arrived = 0;
    let acked = 0;
    let mostInFlight = 0;
    const subscriber = connectNimbus(emulator.url, {
      reconnectPeriod: 0,
      protocolVersion: 5,
      clientId: 'flow-slow',
      properties: { receiveMaximum: 2 },
      WebSocket: countingWebSocket((packet) => {
        if (packet.qos === 0) return;
        arrived++;
        mostInFlight = Math.max(mostInFlight, arrived - acked);
      }),
      // The PUBACK goes a while after each message.
      customHandleAcks: (_topic, _message, _packet, done) => {
        setTimeout(() => done(0), 400);
      },
    });
    clients.push(subscriber);
    subscriber.on('packetsend', (packet) => {
      if (packet.cmd === 'puback') acked++;
    });
    await new Promise<void>((resolve, reject) => {
      subscriber.once('connect', () => resolve());
      subscriber.once('error', reject);
    });
    const received: string[] = [];
    subscriber.on('message', (_topic, payload) => received.push(payload.toString()));
    await subscriber.subscribeAsync('flow/slow', { qos: 1 });
    const publisher = await connect({ clientId: 'flow-fast' });
    const sent = Array.from({ length: 10 }, (_, i) => `m${i}`);
    await Promise.all(sent.map((m) => publisher.publishAsync('flow/slow', m, { qos: 1 })));
    await eventually('every message', () => received.length >= sent.length, 60_000);
    await emulator.settle();
    assert.deepEqual(received, sent);
    assert.ok(mostInFlight <= 2, `${mostInFlight} unacknowledged at once`);
  });
});
