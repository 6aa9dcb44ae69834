import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { IConnackPacket, IDisconnectPacket, IPublishPacket, ISubackPacket, Packet } from 'mqtt-packet';
import type { Emulator } from '../emulator/index.js';
import { GATEWAY_MESSAGE_LIMIT } from '../shared/protocol/wire.js';
import { tableDefinitions } from '../shared/tables.js';
import { connectClient, emulatorDatabase, startTestEmulator } from './support/emulator.js';
import { connectPacket, RawClient } from './support/raw-client.js';
import {
  properties,
  property,
  rawConnect,
  rawPublish,
  rawSubscribe,
  rawUnsubscribe,
} from './support/raw-packets.js';

// Each attack measured on the broker before it had quotas and packet rules, sent
// as raw frames: every one now gets its protocol answer at once (no retried
// exception, no dead letter), and a bystander's persistent session,
// subscriptions, retained message and queued messages stay byte for byte as they were.

let emulator: Emulator & { logs: string[] };
before(async () => {
  emulator = await startTestEmulator();
});
after(async () => {
  await emulator?.stop();
});

/** Every stored item that belongs to the bystander, as canonical JSON. */
async function bystanderState(): Promise<string[]> {
  const db = emulatorDatabase(emulator);
  const items: string[] = [];
  for (const table of tableDefinitions) {
    if (table.id === 'Messages' || table.id === 'Connections') continue; // the publish log and live connections
    const { Items = [] } = await db.send(new ScanCommand({ TableName: emulator.tables[table.id] }));
    for (const item of Items) {
      const json = JSON.stringify(item, Object.keys(item).sort());
      if (json.includes('victim') || json.includes('v/keep')) items.push(`${table.id} ${json}`);
    }
  }
  return items.sort();
}

async function open(version: 4 | 5 = 4): Promise<RawClient> {
  return RawClient.open(emulator.url, { protocolVersion: version });
}

/** Sends raw bytes as one frame and waits for the broker to close the connection. */
async function closedAfter(bytes: Uint8Array[], version: 4 | 5 = 4): Promise<Packet[]> {
  const client = await open(version);
  for (const b of bytes) client.sendBytes(b);
  await client.closed;
  return client.packets;
}

async function connectedRaw(clientId: string, version: 4 | 5 = 4): Promise<RawClient> {
  const client = await open(version);
  client.send(connectPacket(clientId, { protocolVersion: version }) as Packet);
  await client.next('connack');
  return client;
}

let before_: string[] = [];

describe('hostile input', () => {
  before(async () => {
    // The bystander: a persistent session with a subscription, a retained message and a queued one.
    const victim = await connectClient(emulator.url, { clientId: 'victim', clean: false });
    await victim.subscribeAsync('v/#', { qos: 1 });
    victim.end(true);
    const publisher = await connectClient(emulator.url, { clientId: 'friend' });
    await publisher.publishAsync('v/keep', 'retained', { qos: 1, retain: true });
    await publisher.publishAsync('v/queued', 'queued', { qos: 1 });
    publisher.end();
    const deadline = Date.now() + 15_000;
    // Both entries written and counted on the session (two writes each).
    const queued = () =>
      before_.some((i) => i.startsWith('Sessions') && i.includes('"queued":2'))
        ? before_.filter((i) => i.startsWith('Deliveries') && i.includes('out#')).length
        : 0;
    while (queued() < 2 && Date.now() < deadline) {
      before_ = await bystanderState();
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(queued(), 2, `bystander state: ${before_.join('\n')}`);
  });

  test('[MQTT-3.1.3-5] a 3,000-byte client id: CONNACK 2, closed', async () => {
    const packets = await closedAfter([rawConnect({ clientId: 'c'.repeat(3000) })]);
    assert.equal((packets[0] as IConnackPacket).returnCode, 2);
  });

  test('a 1,100-byte retained will topic: closed at CONNECT (5.0: CONNACK 0x90), no will left behind', async () => {
    const will = { topic: 'w'.repeat(1100), payload: 'bye', qos: 1, retain: true };
    assert.deepEqual(await closedAfter([rawConnect({ clientId: 'willy', will })]), []);
    const v5 = await closedAfter([rawConnect({ clientId: 'willy5', level: 5, will })], 5);
    assert.equal((v5[0] as IConnackPacket).reasonCode, 0x90);
  });

  test('a 1,100-byte retained topic: closed (5.0: DISCONNECT 0x90)', async () => {
    const client = await connectedRaw('long-topic', 5);
    client.sendBytes(rawPublish({ topic: 't'.repeat(1100), qos: 1, retain: true, props: properties() }));
    await client.closed;
    assert.equal((client.packets.find((p) => p.cmd === 'disconnect') as IDisconnectPacket).reasonCode, 0x90);
  });

  test('[MQTT-3.9.3-2] a 1,100-byte filter: SUBACK 0x80, the connection stays', async () => {
    const client = await connectedRaw('long-filter');
    client.sendBytes(rawSubscribe(1, ['f'.repeat(1100), 'ok']));
    assert.deepEqual((await client.next('suback')).granted, [0x80, 1]);
    client.send({ cmd: 'pingreq' });
    await client.next('pingresp');
    client.close();
  });

  test('[MQTT-3.8.3-3] SUBSCRIBE without filters: closed, the frame behind it never handled', async () => {
    const client = await connectedRaw('empty-sub');
    client.sendBytes(Buffer.concat([rawSubscribe(1, []), Buffer.from([0xc0, 0x00])]));
    await client.closed;
    assert.deepEqual(client.packets, []);
  });

  test('10,000 filters in one SUBSCRIBE: SUBACK grants 100, refuses the rest with 0x97', async () => {
    const client = await connectedRaw('many-filters', 5);
    const filters = Array.from({ length: 10_000 }, (_, i) => `m/${i}`);
    client.sendBytes(rawSubscribe(1, filters, properties()));
    const suback = (await client.next('suback', 20_000)) as ISubackPacket;
    assert.equal(suback.granted.filter((g) => g === 1).length, 100);
    assert.equal(suback.granted.filter((g) => g === 0x97).length, 9_900);
    client.close();
  });

  test('[MQTT-1.5.3-1] ill-formed UTF-8 in a client id or a topic: closed; no session under U+FFFD', async () => {
    assert.deepEqual(await closedAfter([rawConnect({ clientId: Buffer.from([0x78, 0xff]) })]), []);
    const client = await connectedRaw('bad-topic');
    client.sendBytes(rawPublish({ topic: Buffer.from([0x76, 0x2f, 0xc3, 0x28]), qos: 0, payload: 'x' }));
    await client.closed;
    const sessions = await bystanderState();
    assert.ok(!sessions.some((i) => i.includes('\ufffd')));
  });

  test('[MQTT-2.3.1-1] [MQTT-3.3.1-2] [MQTT-3.10.3-2] packet id 0, DUP on QoS 0, empty UNSUBSCRIBE: closed', async () => {
    for (const attack of [
      rawPublish({ topic: 'v/x', qos: 1, packetId: 0, payload: 'x' }),
      rawSubscribe(0, ['v/#']),
      rawPublish({ topic: 'v/x', dup: true, payload: 'x' }),
      rawUnsubscribe(1, []),
    ]) {
      const client = await connectedRaw('rules');
      client.sendBytes(attack);
      await client.closed;
      assert.deepEqual(client.packets, []);
    }
  });

  test('MQTT 5: a repeated property or Receive Maximum 0: CONNACK 0x82; Topic Alias 0: DISCONNECT 0x94 [MQTT-3.3.2-8]', async () => {
    for (const props of [
      properties(property.receiveMaximum(5), property.receiveMaximum(5)),
      properties(property.receiveMaximum(0)),
    ]) {
      const packets = await closedAfter([rawConnect({ level: 5, clientId: 'props', props })], 5);
      assert.equal((packets[0] as IConnackPacket).reasonCode, 0x82);
    }
    const client = await connectedRaw('alias', 5);
    client.sendBytes(rawPublish({ topic: 'a', payload: 'x', props: properties(property.topicAlias(0)) }));
    await client.closed;
    assert.equal((client.packets[0] as IDisconnectPacket).reasonCode, 0x94);
  });

  test('[MQTT-3.1.2-2] protocol level 6: CONNACK 1, closed', async () => {
    const packets = await closedAfter([rawConnect({ level: 6 })]);
    assert.equal((packets[0] as IConnackPacket).returnCode, 1);
  });

  test('CONNACK with two 70 KB queued messages arrives, over posts within the gateway limit', async () => {
    const persistent = await open();
    persistent.send(connectPacket('big-queue', { clean: false }) as Packet);
    await persistent.next('connack');
    persistent.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'big/#', qos: 1 }] });
    await persistent.next('suback');
    persistent.close();
    await persistent.closed;
    const publisher = await connectClient(emulator.url, { clientId: 'big-pub' });
    for (const i of [1, 2]) await publisher.publishAsync(`big/${i}`, 'p'.repeat(70 * 1024), { qos: 1 });
    publisher.end();
    await new Promise((r) => setTimeout(r, 1500)); // the fan-out queues both
    const back = await open();
    const sizes: number[] = [];
    back.socket.on('message', (data) => sizes.push(data.toString().length));
    back.send(connectPacket('big-queue', { clean: false }) as Packet);
    await back.next('connack');
    const first = (await back.next('publish')) as IPublishPacket;
    const second = (await back.next('publish')) as IPublishPacket;
    assert.deepEqual([first.topic, second.topic], ['big/1', 'big/2']);
    assert.ok(sizes.length >= 2 && sizes.every((s) => s <= GATEWAY_MESSAGE_LIMIT), `${sizes}`);
    back.close();
  });

  test('SUBSCRIBE matching two 80 KB retained messages: SUBACK and both arrive', async () => {
    const publisher = await connectClient(emulator.url, { clientId: 'ret-pub' });
    for (const i of [1, 2])
      await publisher.publishAsync(`ret/${i}`, 'r'.repeat(80 * 1024), { qos: 1, retain: true });
    publisher.end();
    const client = await connectedRaw('ret-sub');
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'ret/#', qos: 1 }] });
    await client.next('suback');
    const topics = [(await client.next('publish')).topic, (await client.next('publish')).topic].sort();
    assert.deepEqual(topics, ['ret/1', 'ret/2']);
    client.close();
  });

  test('no frame was dead-lettered, and the bystander’s state is byte for byte as it was', async () => {
    assert.deepEqual(emulator.frameQueue.deadLetters, []);
    assert.deepEqual(await bystanderState(), before_);
  });
});
