import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Emulator } from '../emulator/index.js';
import { connectClient, eventually, inbox, startTestEmulator } from './support/emulator.js';
import { connectPacket, RawClient } from './support/raw-client.js';

// End to end through the emulator: MQTT.js → gateway → message function →
// DynamoDB → stream → fan-out function → management API → MQTT.js.
// Jitter is on, so invocations overlap and reorder as on AWS.
let emulator: Emulator & { logs: string[] };
before(async () => {
  emulator = await startTestEmulator({ jitterMs: 20, warmInstances: 2 });
});
after(async () => {
  await emulator?.stop();
});

describe('publish and subscribe', () => {
  test('a QoS 1 message reaches a subscriber on another client, served by different function instances', async () => {
    const subscriber = await connectClient(emulator.url, { clientId: 'e2e-sub-1' });
    const publisher = await connectClient(emulator.url, { clientId: 'e2e-pub-1' });
    const received = inbox(subscriber);
    const granted = await subscriber.subscribeAsync('home/kitchen/temp', { qos: 1 });
    assert.equal(granted[0].qos, 1);
    await publisher.publishAsync('home/kitchen/temp', '21.5', { qos: 1 });
    await eventually('delivery', () => received.length === 1);
    assert.deepEqual(received[0], { topic: 'home/kitchen/temp', payload: '21.5', qos: 1, retain: false });
    // Several instances of the message function served these clients: nothing relied on one instance's memory.
    assert.ok(emulator.meter().lambda.message.instances.length >= 2);
    await Promise.all([subscriber.endAsync(), publisher.endAsync()]);
  });

  test('single-level wildcard + matches exactly one level [MQTT-4.7.1-3]', async () => {
    const subscriber = await connectClient(emulator.url, { clientId: 'e2e-plus' });
    const publisher = await connectClient(emulator.url, { clientId: 'e2e-plus-pub' });
    const received = inbox(subscriber);
    await subscriber.subscribeAsync('sensors/+/temp', { qos: 1 });
    for (const topic of ['sensors/a/temp', 'sensors/a/b/temp', 'sensors/temp', 'sensors//temp']) {
      await publisher.publishAsync(topic, topic, { qos: 1 });
    }
    await publisher.publishAsync('sensors/z/temp', 'last', { qos: 1 });
    await eventually('the last message', () => received.some((m) => m.payload === 'last'));
    await emulator.settle();
    assert.deepEqual(received.map((m) => m.topic).sort(), [
      'sensors//temp',
      'sensors/a/temp',
      'sensors/z/temp',
    ]);
    await Promise.all([subscriber.endAsync(), publisher.endAsync()]);
  });

  test('multi-level wildcard # matches the parent and every level below [MQTT-4.7.1-2]', async () => {
    const subscriber = await connectClient(emulator.url, { clientId: 'e2e-hash' });
    const publisher = await connectClient(emulator.url, { clientId: 'e2e-hash-pub' });
    const received = inbox(subscriber);
    await subscriber.subscribeAsync('sport/tennis/#', { qos: 1 });
    for (const topic of [
      'sport/tennis',
      'sport/tennis/player1',
      'sport/tennis/player1/ranking',
      'sport/golf',
    ]) {
      await publisher.publishAsync(topic, topic, { qos: 1 });
    }
    await publisher.publishAsync('sport/tennis/end', 'end', { qos: 1 });
    await eventually('the last message', () => received.some((m) => m.payload === 'end'));
    await emulator.settle();
    assert.deepEqual(received.map((m) => m.topic).sort(), [
      'sport/tennis',
      'sport/tennis/end',
      'sport/tennis/player1',
      'sport/tennis/player1/ranking',
    ]);
    await Promise.all([subscriber.endAsync(), publisher.endAsync()]);
  });

  test('a filter starting with # does not match topics starting with $ [MQTT-4.7.2-1]', async () => {
    const subscriber = await connectClient(emulator.url, { clientId: 'e2e-dollar' });
    const publisher = await connectClient(emulator.url, { clientId: 'e2e-dollar-pub' });
    const received = inbox(subscriber);
    await subscriber.subscribeAsync('#', { qos: 1 });
    await publisher.publishAsync('$internal/x', 'hidden', { qos: 1 });
    await publisher.publishAsync('visible/x', 'shown', { qos: 1 });
    await eventually('the visible message', () => received.some((m) => m.payload === 'shown'));
    await emulator.settle();
    assert.deepEqual(
      received.filter((m) => m.topic.startsWith('$')),
      [],
    );
    await subscriber.unsubscribeAsync('#');
    await Promise.all([subscriber.endAsync(), publisher.endAsync()]);
  });

  test('QoS is the minimum of the publish and the subscription [MQTT-3.8.4-6]', async () => {
    const qos0 = await connectClient(emulator.url, { clientId: 'e2e-q0' });
    const qos1 = await connectClient(emulator.url, { clientId: 'e2e-q1', protocolVersion: 5 });
    const publisher = await connectClient(emulator.url, { clientId: 'e2e-q-pub' });
    const at0 = inbox(qos0);
    const at1 = inbox(qos1);
    await qos0.subscribeAsync('qos/t', { qos: 0 });
    await qos1.subscribeAsync('qos/t', { qos: 1 });
    await publisher.publishAsync('qos/t', 'one', { qos: 1 });
    await publisher.publishAsync('qos/t', 'zero', { qos: 0 });
    await eventually('both messages at both', () => at0.length === 2 && at1.length === 2);
    const byPayload = (list: typeof at0) => Object.fromEntries(list.map((m) => [m.payload, m.qos]));
    assert.deepEqual(byPayload(at0), { one: 0, zero: 0 });
    assert.deepEqual(byPayload(at1), { one: 1, zero: 0 });
    await Promise.all([qos0.endAsync(), qos1.endAsync(), publisher.endAsync()]);
  });

  test('after UNSUBACK no more messages arrive for that filter [MQTT-3.10.4-2]', async () => {
    const subscriber = await connectClient(emulator.url, { clientId: 'e2e-unsub' });
    const publisher = await connectClient(emulator.url, { clientId: 'e2e-unsub-pub' });
    const received = inbox(subscriber);
    await subscriber.subscribeAsync(['unsub/a', 'unsub/b'], { qos: 1 });
    await publisher.publishAsync('unsub/a', 'before', { qos: 1 });
    await eventually('the first message', () => received.length === 1);
    await subscriber.unsubscribeAsync('unsub/a');
    await publisher.publishAsync('unsub/a', 'after', { qos: 1 });
    await publisher.publishAsync('unsub/b', 'marker', { qos: 1 });
    await eventually('the marker', () => received.some((m) => m.payload === 'marker'));
    await emulator.settle();
    assert.deepEqual(
      received.map((m) => m.payload),
      ['before', 'marker'],
    );
    await Promise.all([subscriber.endAsync(), publisher.endAsync()]);
  });

  test('MQTT 5 clients get 5.0 CONNACK properties and exchange messages with 3.1.1 clients', async () => {
    const v5 = await connectClient(emulator.url, { clientId: 'e2e-v5', protocolVersion: 5 });
    const v4 = await connectClient(emulator.url, { clientId: 'e2e-v4' });
    const at5 = inbox(v5);
    const at4 = inbox(v4);
    await v5.subscribeAsync('mixed/#', { qos: 1 });
    await v4.subscribeAsync('mixed/#', { qos: 1 });
    await v4.publishAsync('mixed/from4', 'a', { qos: 1 });
    await v5.publishAsync('mixed/from5', 'b', { qos: 1 });
    await eventually('both at both', () => at5.length === 2 && at4.length === 2);
    assert.deepEqual(at5.map((m) => m.topic).sort(), ['mixed/from4', 'mixed/from5']);
    assert.deepEqual(at4.map((m) => m.topic).sort(), ['mixed/from4', 'mixed/from5']);
    await Promise.all([v5.endAsync(), v4.endAsync()]);
  });
});

describe('frames', () => {
  test('several whole packets in one frame are handled in order', async () => {
    const raw = await RawClient.open(emulator.url);
    raw.send(
      connectPacket('e2e-multi'),
      { cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: 'multi/t', qos: 1 }] },
      {
        cmd: 'publish',
        topic: 'multi/t',
        payload: Buffer.from('self'),
        qos: 1,
        messageId: 8,
        retain: false,
        dup: false,
      },
      { cmd: 'pingreq' },
    );
    const connack = await raw.next('connack');
    assert.equal(connack.returnCode, 0);
    assert.deepEqual((await raw.next('suback')).granted, [1]);
    assert.equal((await raw.next('puback')).messageId, 8);
    await raw.next('pingresp');
    // The first reply frame carried CONNACK first [MQTT-3.2.0-1]: the raw client saw it before anything else.
    const delivered = await raw.next('publish');
    assert.equal(delivered.topic, 'multi/t');
    assert.equal(delivered.payload.toString(), 'self');
    raw.close();
  });

  test('a packet before CONNECT closes the connection [MQTT-3.1.0-1]', async () => {
    const raw = await RawClient.open(emulator.url);
    raw.send({ cmd: 'pingreq' });
    const closed = await raw.closed;
    assert.ok(closed.code > 0);
    assert.equal(raw.packets.length, 0);
  });

  test('a second CONNECT closes the connection [MQTT-3.1.0-2]', async () => {
    const raw = await RawClient.open(emulator.url);
    raw.send(connectPacket('e2e-twice'));
    await raw.next('connack');
    raw.send(connectPacket('e2e-twice'));
    await raw.closed;
    assert.equal(raw.packets.filter((p) => p.cmd === 'connack').length, 0);
  });

  test('a 3.1.1 client without a client id must ask for a clean session [MQTT-3.1.3-8]', async () => {
    const raw = await RawClient.open(emulator.url);
    // CONNECT, level 4, flags 0 (clean session 0), keep-alive 60, zero-length client id: mqtt-packet will not build it.
    raw.sendBytes(Uint8Array.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0, 0, 60, 0, 0]));
    const connack = await raw.next('connack');
    assert.equal(connack.returnCode, 2);
    await raw.closed;
  });

  test('an empty client id with a clean session gets one assigned [MQTT-3.1.3-6]', async () => {
    const raw = await RawClient.open(emulator.url, { protocolVersion: 5 });
    raw.send(connectPacket('', { protocolVersion: 5 }));
    const connack = await raw.next('connack');
    assert.equal(connack.reasonCode, 0);
    assert.match(String(connack.properties?.assignedClientIdentifier), /^nimbus-/);
    raw.close();
  });

  test('MQTT 3.1 (protocol level 3) is refused with return code 1 [MQTT-3.1.2-2]', async () => {
    const raw = await RawClient.open(emulator.url);
    raw.send(connectPacket('e2e-old', { protocolId: 'MQIsdp', protocolVersion: 3 }));
    assert.equal((await raw.next('connack')).returnCode, 1);
    await raw.closed;
  });

  test('SUBSCRIBE with an invalid filter gets a failure code for it and success for the others [MQTT-3.9.3-2]', async () => {
    const raw = await RawClient.open(emulator.url);
    raw.send(connectPacket('e2e-badfilter'), {
      cmd: 'subscribe',
      messageId: 3,
      subscriptions: [
        { topic: 'ok/+', qos: 1 },
        { topic: 'bad#', qos: 1 },
        { topic: 'also/ok', qos: 0 },
      ],
    });
    await raw.next('connack');
    assert.deepEqual((await raw.next('suback')).granted, [1, 0x80, 0]);
    raw.close();
  });

  test('PUBLISH to a topic name with a wildcard closes the connection [MQTT-3.3.2-2]', async () => {
    const raw = await RawClient.open(emulator.url);
    raw.send(connectPacket('e2e-wildpub'));
    await raw.next('connack');
    raw.send({
      cmd: 'publish',
      topic: 'a/+',
      payload: Buffer.from('x'),
      qos: 1,
      messageId: 1,
      retain: false,
      dup: false,
    });
    await raw.closed;
    assert.equal(raw.packets.filter((p) => p.cmd === 'puback').length, 0);
  });
});
