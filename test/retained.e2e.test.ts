import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import type { Emulator } from '../emulator/index.js';
import { DynamoStore } from '../shared/storage/dynamo-store.js';
import type { TableId } from '../shared/tables.js';
import { connectClient, emulatorDatabase, eventually, inbox, startTestEmulator } from './support/emulator.js';
import { connectPacket, RawClient } from './support/raw-client.js';

// Retained messages, MQTT 3.1.1 §3.3.1.3. Every test uses its own topic tree,
// except the '#' ones, which see the whole table and so only check what they
// must (or must not) contain.
let emulator: Emulator & { logs: string[] };
let publisher: MqttClient;
let backlogSink: MqttClient;
before(async () => {
  emulator = await startTestEmulator({ jitterMs: 20 });
  publisher = await connectClient(emulator.url, { clientId: 'ret-publisher' });
  backlogSink = await connectClient(emulator.url, { clientId: 'ret-backlog-sink' });
  await backlogSink.subscribeAsync('ret/backlog', { qos: 0 });
});
after(async () => {
  await Promise.all([publisher?.endAsync(), backlogSink?.endAsync()]);
  await emulator?.stop();
});

let clients = 0;
/** A fresh subscriber with its inbox; 3.1.1, where the retain flag has one meaning only. */
async function subscriber(filter: string, qos: 0 | 1 | 2 = 1) {
  const { client, received, subscribe } = await unsubscribed();
  await subscribe(filter, qos);
  return { client, received };
}

/** A fresh client, connected but not yet subscribed. */
async function unsubscribed() {
  const client = await connectClient(emulator.url, { clientId: `ret-sub-${++clients}` });
  const received = inbox(client);
  const subscribe = async (filter: string, qos: 0 | 1 | 2) => {
    const granted = await client.subscribeAsync(filter, { qos });
    assert.equal(granted[0].qos, qos);
  };
  return { client, received, subscribe };
}

/**
 * A raw publisher that puts a backlog of QoS 0 messages (each with a subscriber, so each costs the
 * fan-out a delivery) ahead of one retained message on `topic`, in one frame: the stream carries
 * one publisher's messages in order, so the retained message's fan-out comes well after its
 * PUBACK (QoS 1) or PUBREC (QoS 2), which this waits for.
 */
async function behindPublisher(clientId: string, topic: string, qos: 1 | 2) {
  const raw = await RawClient.open(emulator.url);
  const backlog = Array.from({ length: 40 }, (_, i) => ({
    cmd: 'publish' as const,
    topic: 'ret/backlog',
    payload: Buffer.from(`b${i}`),
    qos: 0 as const,
    retain: false,
    dup: false,
  }));
  raw.send(connectPacket(clientId), ...backlog, {
    cmd: 'publish',
    topic,
    payload: Buffer.from('kept'),
    qos,
    messageId: 9,
    retain: true,
    dup: false,
  });
  await raw.next('connack');
  assert.equal((await raw.next(qos === 1 ? 'puback' : 'pubrec')).messageId, 9);
  return raw;
}

describe('retained messages', () => {
  test('a retained PUBLISH is stored and sent to a new subscriber on an exact filter, retain flag set [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8]', async () => {
    await publisher.publishAsync('ret/exact/a', 'kept', { qos: 1, retain: true });
    await emulator.settle(); // fanned out (to no one) before anyone subscribes
    const { client, received } = await subscriber('ret/exact/a');
    await eventually('the retained message', () => received.length >= 1);
    await emulator.settle();
    assert.deepEqual(received, [{ topic: 'ret/exact/a', payload: 'kept', qos: 1, retain: true }]);
    await client.endAsync();
  });

  test('a QoS 1 message acknowledged before a subscription is made reaches it once, as the retained message, even while the fan-out is behind [MQTT-3.3.1-6] [MQTT-3.3.1-9]', async () => {
    const { client, received, subscribe } = await unsubscribed();
    const raw = await behindPublisher('ret-behind-q1', 'ret/behind/q1', 1);
    // PUBACK: the message is accepted, and only now does the subscription begin.
    await subscribe('ret/behind/q1', 1);
    await eventually('the retained message', () => received.length >= 1);
    await emulator.settle();
    assert.deepEqual(
      received,
      [{ topic: 'ret/behind/q1', payload: 'kept', qos: 1, retain: true }],
      'a message published before the subscription was also forwarded to it as if it had existed',
    );
    raw.close();
    await client.endAsync();
  });

  test('a retained QoS 2 message the server has taken on (PUBREC) before a QoS 2 subscription is made reaches it exactly once, even while the fan-out is behind [MQTT-3.3.1-6] [MQTT-4.3.3-2]', async () => {
    const { client, received, subscribe } = await unsubscribed();
    const raw = await behindPublisher('ret-behind-q2', 'ret/behind/q2', 2);
    await subscribe('ret/behind/q2', 2);
    raw.send({ cmd: 'pubrel', messageId: 9 });
    await raw.next('pubcomp');
    // MQTT.js hands a QoS 2 message over on PUBREL: wait for a later message of the same publisher.
    raw.send({
      cmd: 'publish',
      topic: 'ret/behind/q2',
      payload: Buffer.from('marker'),
      qos: 2,
      messageId: 10,
      retain: false,
      dup: false,
    });
    await raw.next('pubrec');
    raw.send({ cmd: 'pubrel', messageId: 10 });
    await raw.next('pubcomp');
    await eventually('the marker', () => received.some((m) => m.payload === 'marker'));
    await emulator.settle();
    assert.deepEqual(
      received,
      [
        { topic: 'ret/behind/q2', payload: 'kept', qos: 2, retain: true },
        { topic: 'ret/behind/q2', payload: 'marker', qos: 2, retain: false },
      ],
      'a message taken on before the subscription was also forwarded to it as if it had existed',
    );
    raw.close();
    await client.endAsync();
  });

  test('a new subscription with + or # wildcards gets every matching retained message, and only those [MQTT-3.3.1-6]', async () => {
    await publisher.publishAsync('ret/wild/a/x', 'ax', { qos: 1, retain: true });
    await publisher.publishAsync('ret/wild/b/x', 'bx', { qos: 1, retain: true });
    await publisher.publishAsync('ret/wild/b/y', 'by', { qos: 1, retain: true });
    await publisher.publishAsync('ret/wild', 'parent', { qos: 1, retain: true });
    await publisher.publishAsync('ret/wild/a/x/deep', 'deep', { qos: 1, retain: true });
    await emulator.settle();
    const plus = await subscriber('ret/wild/+/x');
    const hash = await subscriber('ret/wild/#');
    await eventually('the + matches', () => plus.received.length >= 2);
    await eventually('the # matches', () => hash.received.length >= 5);
    await emulator.settle();
    const summary = (list: typeof plus.received) =>
      list.map((m) => `${m.topic}=${m.payload}:${m.retain}`).sort();
    assert.deepEqual(summary(plus.received), ['ret/wild/a/x=ax:true', 'ret/wild/b/x=bx:true']);
    assert.deepEqual(summary(hash.received), [
      'ret/wild/a/x/deep=deep:true',
      'ret/wild/a/x=ax:true',
      'ret/wild/b/x=bx:true',
      'ret/wild/b/y=by:true',
      'ret/wild=parent:true', // '#' includes the parent level [MQTT-4.7.1-2]
    ]);
    await Promise.all([plus.client.endAsync(), hash.client.endAsync()]);
  });

  test('filters starting with # or + do not get retained messages on topics starting with $; an exact filter does [MQTT-4.7.2-1]', async () => {
    // No client may publish to a $ topic (ADR 0008): the broker's own retained message is planted.
    const db = emulatorDatabase(emulator);
    await new DynamoStore(db, emulator.tables as Record<TableId, string>, { now: Date.now }).putRetained({
      topic: '$ret/monitor',
      payload: Buffer.from('dollar'),
      qos: 1,
      retain: true,
      publishedAt: Date.now(),
    });
    db.destroy();
    await publisher.publishAsync('retdollar/monitor', 'plain', { qos: 1, retain: true });
    await emulator.settle();
    const hash = await subscriber('#');
    const plus = await subscriber('+/monitor');
    const exact = await subscriber('$ret/monitor');
    await eventually('the plain topic under #', () => hash.received.some((m) => m.payload === 'plain'));
    await eventually('the plain topic under +', () => plus.received.some((m) => m.payload === 'plain'));
    await eventually('the $ topic under its exact filter', () => exact.received.length >= 1);
    await emulator.settle();
    assert.deepEqual(
      hash.received.filter((m) => m.topic.startsWith('$')),
      [],
      "'#' got a $-topic",
    );
    assert.deepEqual(
      plus.received.filter((m) => m.topic.startsWith('$')),
      [],
      "'+/monitor' got a $-topic",
    );
    assert.deepEqual(exact.received, [{ topic: '$ret/monitor', payload: 'dollar', qos: 1, retain: true }]);
    await Promise.all([hash.client.endAsync(), plus.client.endAsync(), exact.client.endAsync()]);
  });

  test('a retained PUBLISH forwarded to an established subscription has the retain flag 0 [MQTT-3.3.1-9]', async () => {
    const { client, received } = await subscriber('ret/live/#');
    await publisher.publishAsync('ret/live/a', 'live', { qos: 1, retain: true });
    await eventually('the forwarded message', () => received.length >= 1);
    await emulator.settle();
    assert.deepEqual(received, [{ topic: 'ret/live/a', payload: 'live', qos: 1, retain: false }]);
    await client.endAsync();
  });

  test('a newer retained PUBLISH replaces the stored one: a new subscriber gets the last only [MQTT-3.3.1-5] [MQTT-3.3.1-6]', async () => {
    await publisher.publishAsync('ret/replace', 'v1', { qos: 1, retain: true });
    await publisher.publishAsync('ret/replace', 'v2', { qos: 1, retain: true });
    await emulator.settle();
    const { client, received } = await subscriber('ret/replace');
    await eventually('the retained message', () => received.length >= 1);
    await emulator.settle();
    assert.deepEqual(received, [{ topic: 'ret/replace', payload: 'v2', qos: 1, retain: true }]);
    await client.endAsync();
  });

  test('a retained QoS 0 PUBLISH discards the previously retained message of its topic [MQTT-3.3.1-7]', async () => {
    await publisher.publishAsync('ret/replace0', 'old-qos1', { qos: 1, retain: true });
    await emulator.settle();
    const watcher = await subscriber('ret/replace0');
    await eventually('the old retained message', () => watcher.received.length >= 1);
    // QoS 0 has no acknowledgement: its forwarding to the watcher says it was handled.
    await publisher.publishAsync('ret/replace0', 'new-qos0', { qos: 0, retain: true });
    await eventually('the QoS 0 message', () => watcher.received.some((m) => m.payload === 'new-qos0'));
    const late = await subscriber('ret/replace0');
    await emulator.settle();
    assert.deepEqual(
      late.received.filter((m) => m.payload === 'old-qos1'),
      [],
      'the message retained before the QoS 0 one is gone',
    );
    await Promise.all([watcher.client.endAsync(), late.client.endAsync()]);
  });

  test('a retained PUBLISH with an empty payload is forwarded as normal and clears the retained message, which is not stored [MQTT-3.3.1-10] [MQTT-3.3.1-11]', async () => {
    await publisher.publishAsync('ret/clear/a', 'to-clear', { qos: 1, retain: true });
    await publisher.publishAsync('ret/clear/b', 'stays', { qos: 1, retain: true });
    await emulator.settle();
    const existing = await subscriber('ret/clear/a');
    await eventually('the retained message', () => existing.received.length >= 1);
    await publisher.publishAsync('ret/clear/a', '', { qos: 1, retain: true });
    await eventually('the empty message, forwarded as normal', () =>
      existing.received.some((m) => m.payload === ''),
    );
    const late = await subscriber('ret/clear/+');
    await eventually('the retained message that stays', () => late.received.length >= 1);
    await emulator.settle();
    assert.deepEqual(existing.received, [
      { topic: 'ret/clear/a', payload: 'to-clear', qos: 1, retain: true },
      { topic: 'ret/clear/a', payload: '', qos: 1, retain: false },
    ]);
    assert.deepEqual(
      late.received,
      [{ topic: 'ret/clear/b', payload: 'stays', qos: 1, retain: true }],
      'nothing retained for the cleared topic, no zero-byte retained message either',
    );
    await Promise.all([existing.client.endAsync(), late.client.endAsync()]);
  });

  test('a retained message is sent at the lower of its QoS and the granted QoS [MQTT-3.3.5-1] [MQTT-3.8.4-6]', async () => {
    // QoS 0 has no acknowledgement: a watcher seeing all three forwarded says all three were handled.
    const watcher = await subscriber('ret/qos/#', 2);
    await publisher.publishAsync('ret/qos/0', 'stored-0', { qos: 0, retain: true });
    await publisher.publishAsync('ret/qos/1', 'stored-1', { qos: 1, retain: true });
    await publisher.publishAsync('ret/qos/2', 'stored-2', { qos: 2, retain: true });
    await eventually('the three forwarded', () => watcher.received.length >= 3);
    await watcher.client.endAsync();
    await emulator.settle();
    const at = await Promise.all([
      subscriber('ret/qos/+', 0),
      subscriber('ret/qos/+', 1),
      subscriber('ret/qos/+', 2),
    ]);
    await eventually('three retained messages at each subscriber', () =>
      at.every((s) => s.received.length >= 3),
    );
    await emulator.settle();
    const qosByPayload = (list: (typeof at)[number]['received']) =>
      Object.fromEntries(list.map((m) => [m.payload, m.qos]));
    assert.deepEqual(qosByPayload(at[0].received), { 'stored-0': 0, 'stored-1': 0, 'stored-2': 0 });
    assert.deepEqual(qosByPayload(at[1].received), { 'stored-0': 0, 'stored-1': 1, 'stored-2': 1 });
    assert.deepEqual(qosByPayload(at[2].received), { 'stored-0': 0, 'stored-1': 1, 'stored-2': 2 });
    for (const s of at) {
      assert.equal(s.received.length, 3, 'each retained message once');
      assert.ok(s.received.every((m) => m.retain));
    }
    await Promise.all(at.map((s) => s.client.endAsync()));
  });

  test('a repeated SUBSCRIBE to the same filter sends the retained messages again [MQTT-3.8.4-3]', async () => {
    await publisher.publishAsync('ret/again', 'again', { qos: 1, retain: true });
    await emulator.settle();
    const { client, received } = await subscriber('ret/again');
    await eventually('the first retained delivery', () => received.length >= 1);
    await client.subscribeAsync('ret/again', { qos: 1 });
    await eventually('the second retained delivery', () => received.length >= 2);
    await emulator.settle();
    assert.deepEqual(
      received.map((m) => [m.payload, m.retain]),
      [
        ['again', true],
        ['again', true],
      ],
    );
    await client.endAsync();
  });

  test('retained messages reach a raw subscriber with the retain flag and a packet id per QoS 1 message [MQTT-3.3.1-8] [MQTT-2.3.1-1]', async () => {
    await publisher.publishAsync('ret/raw/a', 'ra', { qos: 1, retain: true });
    await publisher.publishAsync('ret/raw/b', 'rb', { qos: 1, retain: true });
    await emulator.settle();
    const raw = await RawClient.open(emulator.url);
    raw.send(connectPacket('ret-raw'), {
      cmd: 'subscribe',
      messageId: 5,
      subscriptions: [{ topic: 'ret/raw/#', qos: 1 }],
    });
    await raw.next('connack');
    assert.deepEqual((await raw.next('suback')).granted, [1]);
    const first = await raw.next('publish');
    const second = await raw.next('publish');
    for (const p of [first, second]) {
      assert.equal(p.retain, true);
      assert.equal(p.qos, 1);
      assert.equal(p.dup, false);
      assert.ok(p.messageId !== undefined && p.messageId > 0);
      raw.send({ cmd: 'puback', messageId: p.messageId });
    }
    assert.notEqual(first.messageId, second.messageId, 'two messages in flight have different packet ids');
    assert.deepEqual([first.payload.toString(), second.payload.toString()].sort(), ['ra', 'rb']);
    raw.close();
  });
});
