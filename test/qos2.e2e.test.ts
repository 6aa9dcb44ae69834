import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { IPublishPacket } from 'mqtt-packet';
import type { Emulator } from '../emulator/index.js';
import { connectClient, eventually, inbox, startTestEmulator } from './support/emulator.js';
import { connectPacket, RawClient } from './support/raw-client.js';

// QoS 2, "exactly once", in both directions, MQTT 3.1.1 §4.3.3 and §4.4.
// Publishers are raw clients where the test needs to hold back PUBREL or
// resend a PUBLISH; subscribers are MQTT.js (which releases a QoS 2 message to
// the application on PUBREL, as Method B of §4.3.3 does) or raw clients when
// the flags and packet ids are what is checked.
let emulator: Emulator & { logs: string[] };
before(async () => {
  emulator = await startTestEmulator({ jitterMs: 20 });
});
after(async () => {
  await emulator?.stop();
});

const publish = (
  topic: string,
  payload: string,
  messageId: number,
  extra: Partial<IPublishPacket> = {},
): IPublishPacket => ({
  cmd: 'publish',
  topic,
  payload: Buffer.from(payload),
  qos: 2,
  messageId,
  retain: false,
  dup: false,
  ...extra,
});

async function rawClient(clientId: string, extra: Parameters<typeof connectPacket>[1] = {}) {
  const raw = await RawClient.open(emulator.url);
  raw.send(connectPacket(clientId, extra));
  const connack = await raw.next('connack');
  assert.equal(connack.returnCode, 0);
  return { raw, connack };
}

/** One complete QoS 2 flow from a raw publisher: PUBLISH, PUBREC, PUBREL, PUBCOMP. */
async function publishFlow(raw: RawClient, topic: string, payload: string, messageId: number) {
  raw.send(publish(topic, payload, messageId));
  assert.equal((await raw.next('pubrec')).messageId, messageId);
  raw.send({ cmd: 'pubrel', messageId });
  assert.equal((await raw.next('pubcomp')).messageId, messageId);
}

/**
 * MQTT.js hands a QoS 2 message over on PUBREL, a round trip after the PUBLISH, so "nothing more
 * came" is only known once a later message of the same publisher (fanned out after, released
 * after) has come: the marker.
 */
async function afterMarker(raw: RawClient, topic: string, received: ReturnType<typeof inbox>) {
  await publishFlow(raw, topic, 'marker', 999);
  await eventually('the marker', () => received.some((m) => m.payload === 'marker'));
  await emulator.settle();
}

describe('QoS 2 from a publisher', () => {
  test('PUBLISH QoS 2 is answered with PUBREC and PUBREL with PUBCOMP; a QoS 2 subscriber gets it exactly once [MQTT-4.3.3-1] [MQTT-4.3.3-2]', async () => {
    const subscriber = await connectClient(emulator.url, { clientId: 'q2-sub-basic' });
    const received = inbox(subscriber);
    const granted = await subscriber.subscribeAsync('q2/basic', { qos: 2 });
    assert.equal(granted[0].qos, 2, 'QoS 2 is granted when asked for');
    const { raw } = await rawClient('q2-pub-basic');
    raw.send(publish('q2/basic', 'exactly-once', 11));
    const pubrec = await raw.next('pubrec');
    assert.equal(pubrec.messageId, 11, 'PUBREC carries the PUBLISH packet id');
    raw.send({ cmd: 'pubrel', messageId: 11 });
    const pubcomp = await raw.next('pubcomp');
    assert.equal(pubcomp.messageId, 11, 'PUBCOMP carries the PUBREL packet id');
    await afterMarker(raw, 'q2/basic', received);
    assert.deepEqual(received, [
      { topic: 'q2/basic', payload: 'exactly-once', qos: 2, retain: false },
      { topic: 'q2/basic', payload: 'marker', qos: 2, retain: false },
    ]);
    raw.close();
    await subscriber.endAsync();
  });

  test('a PUBLISH resent with DUP=1 and the same packet id before PUBREL is delivered once, and answered with PUBREC again [MQTT-4.3.3-2] [MQTT-3.3.1-1]', async () => {
    const subscriber = await connectClient(emulator.url, { clientId: 'q2-sub-dup' });
    const received = inbox(subscriber);
    await subscriber.subscribeAsync('q2/dup', { qos: 2 });
    const { raw } = await rawClient('q2-pub-dup');
    raw.send(publish('q2/dup', 'once', 21));
    assert.equal((await raw.next('pubrec')).messageId, 21);
    // The PUBREC "got lost": the publisher resends the PUBLISH, twice, before PUBREL.
    raw.send(publish('q2/dup', 'once', 21, { dup: true }));
    assert.equal((await raw.next('pubrec')).messageId, 21, 'a resent PUBLISH is acknowledged again');
    raw.send(publish('q2/dup', 'once', 21, { dup: true }));
    assert.equal((await raw.next('pubrec')).messageId, 21);
    raw.send({ cmd: 'pubrel', messageId: 21 });
    assert.equal((await raw.next('pubcomp')).messageId, 21);
    await afterMarker(raw, 'q2/dup', received);
    assert.deepEqual(
      received.map((m) => m.payload),
      ['once', 'marker'],
      'the resent PUBLISH was not delivered a second time',
    );
    raw.close();
    await subscriber.endAsync();
  });

  test('a PUBLISH and its DUP resend in one frame are stored once [MQTT-4.3.3-2]', async () => {
    const subscriber = await connectClient(emulator.url, { clientId: 'q2-sub-dupframe' });
    const received = inbox(subscriber);
    await subscriber.subscribeAsync('q2/dupframe', { qos: 2 });
    const { raw } = await rawClient('q2-pub-dupframe');
    raw.send(publish('q2/dupframe', 'one', 31), publish('q2/dupframe', 'one', 31, { dup: true }));
    assert.equal((await raw.next('pubrec')).messageId, 31);
    assert.equal((await raw.next('pubrec')).messageId, 31);
    raw.send({ cmd: 'pubrel', messageId: 31 });
    await raw.next('pubcomp');
    await afterMarker(raw, 'q2/dupframe', received);
    assert.deepEqual(
      received.map((m) => m.payload),
      ['one', 'marker'],
    );
    raw.close();
    await subscriber.endAsync();
  });

  test('after PUBREL and PUBCOMP the same packet id carries a new message, which is delivered [MQTT-4.3.3-2]', async () => {
    const subscriber = await connectClient(emulator.url, { clientId: 'q2-sub-reuse' });
    const received = inbox(subscriber);
    await subscriber.subscribeAsync('q2/reuse', { qos: 2 });
    const { raw } = await rawClient('q2-pub-reuse');
    for (const payload of ['first', 'second', 'third']) await publishFlow(raw, 'q2/reuse', payload, 41);
    await afterMarker(raw, 'q2/reuse', received);
    assert.deepEqual(
      received.map((m) => m.payload),
      ['first', 'second', 'third', 'marker'],
    );
    raw.close();
    await subscriber.endAsync();
  });

  test('a persistent publisher that dropped before PUBREL resends the PUBLISH with DUP=1 on reconnect: PUBREC again, and one delivery [MQTT-4.4.0-1] [MQTT-4.3.3-2]', async () => {
    const subscriber = await connectClient(emulator.url, { clientId: 'q2-sub-resume' });
    const received = inbox(subscriber);
    await subscriber.subscribeAsync('q2/resume', { qos: 2 });
    const first = await rawClient('q2-pub-resume', { clean: false });
    first.raw.send(publish('q2/resume', 'before-drop', 51));
    await first.raw.next('pubrec');
    first.raw.socket.terminate(); // no PUBREL, no DISCONNECT
    await first.raw.closed;
    // A client that never saw the PUBREC does not know the PUBLISH was stored: it resends it with DUP.
    const second = await rawClient('q2-pub-resume', { clean: false });
    assert.equal(second.connack.sessionPresent, true, 'the persistent session is resumed [MQTT-3.2.2-2]');
    second.raw.send(publish('q2/resume', 'before-drop', 51, { dup: true }));
    assert.equal((await second.raw.next('pubrec')).messageId, 51);
    second.raw.send({ cmd: 'pubrel', messageId: 51 });
    assert.equal((await second.raw.next('pubcomp')).messageId, 51);
    await afterMarker(second.raw, 'q2/resume', received);
    assert.deepEqual(
      received.map((m) => m.payload),
      ['before-drop', 'marker'],
      'the PUBLISH resent across the reconnect was not delivered twice',
    );
    second.raw.close();
    await subscriber.endAsync();
  });

  test('a persistent publisher that dropped after PUBREC resends PUBREL on reconnect and gets PUBCOMP; the packet id then carries a new message [MQTT-4.4.0-1] [MQTT-4.3.3-2]', async () => {
    const subscriber = await connectClient(emulator.url, { clientId: 'q2-sub-rel-in' });
    const received = inbox(subscriber);
    await subscriber.subscribeAsync('q2/rel-in', { qos: 2 });
    const first = await rawClient('q2-pub-rel-in', { clean: false });
    first.raw.send(publish('q2/rel-in', 'kept', 53));
    await first.raw.next('pubrec');
    first.raw.socket.terminate();
    await first.raw.closed;
    const second = await rawClient('q2-pub-rel-in', { clean: false });
    assert.equal(second.connack.sessionPresent, true);
    second.raw.send({ cmd: 'pubrel', messageId: 53 });
    assert.equal((await second.raw.next('pubcomp')).messageId, 53);
    await publishFlow(second.raw, 'q2/rel-in', 'new-on-53', 53);
    await afterMarker(second.raw, 'q2/rel-in', received);
    assert.deepEqual(
      received.map((m) => m.payload),
      ['kept', 'new-on-53', 'marker'],
    );
    second.raw.close();
    await subscriber.endAsync();
  });
});

describe('QoS 2 to a subscriber', () => {
  test('a QoS 2 message to a QoS 1 subscription arrives as QoS 1, to a QoS 0 one as QoS 0 [MQTT-3.8.4-6] [MQTT-3.3.5-1]', async () => {
    const at1 = await connectClient(emulator.url, { clientId: 'q2-down-1' });
    const at0 = await connectClient(emulator.url, { clientId: 'q2-down-0' });
    const received1 = inbox(at1);
    const received0 = inbox(at0);
    await at1.subscribeAsync('q2/down', { qos: 1 });
    await at0.subscribeAsync('q2/down', { qos: 0 });
    const { raw } = await rawClient('q2-down-pub');
    raw.send(publish('q2/down', 'downgraded', 61));
    await raw.next('pubrec');
    raw.send({ cmd: 'pubrel', messageId: 61 });
    await raw.next('pubcomp');
    await eventually('both deliveries', () => received1.length >= 1 && received0.length >= 1);
    await emulator.settle();
    assert.deepEqual(received1, [{ topic: 'q2/down', payload: 'downgraded', qos: 1, retain: false }]);
    assert.deepEqual(received0, [{ topic: 'q2/down', payload: 'downgraded', qos: 0, retain: false }]);
    raw.close();
    await Promise.all([at1.endAsync(), at0.endAsync()]);
  });

  test('a QoS 2 subscriber gets PUBLISH, answers PUBREC, gets PUBREL with the same packet id, answers PUBCOMP; nothing is resent [MQTT-4.3.3-1] [MQTT-2.3.1-1]', async () => {
    const { raw: subscriber } = await rawClient('q2-raw-sub');
    subscriber.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q2/raw', qos: 2 }] });
    assert.deepEqual((await subscriber.next('suback')).granted, [2]);
    const publisher = await connectClient(emulator.url, { clientId: 'q2-raw-pub' });
    await publisher.publishAsync('q2/raw', 'to-raw', { qos: 2 });
    const delivered = await subscriber.next('publish');
    assert.equal(delivered.qos, 2);
    assert.equal(delivered.dup, false, 'a first attempt is not a redelivery [MQTT-3.3.1-1]');
    assert.equal(delivered.retain, false);
    assert.equal(delivered.payload.toString(), 'to-raw');
    const packetId = delivered.messageId;
    assert.ok(packetId !== undefined && packetId >= 1 && packetId <= 65_535, 'a non-zero packet id');
    subscriber.send({ cmd: 'pubrec', messageId: packetId });
    const pubrel = await subscriber.next('pubrel');
    assert.equal(pubrel.messageId, packetId, 'PUBREL carries the packet id of the PUBLISH');
    subscriber.send({ cmd: 'pubcomp', messageId: packetId });
    // A second message gets a different packet id while the first one's flow is done.
    await publisher.publishAsync('q2/raw', 'second', { qos: 2 });
    const next = await subscriber.next('publish');
    assert.equal(next.payload.toString(), 'second');
    subscriber.send({ cmd: 'pubrec', messageId: next.messageId });
    assert.equal((await subscriber.next('pubrel')).messageId, next.messageId);
    subscriber.send({ cmd: 'pubcomp', messageId: next.messageId });
    await emulator.settle();
    assert.deepEqual(
      subscriber.packets.filter((p) => p.cmd === 'publish' || p.cmd === 'pubrel'),
      [],
      'nothing was sent again after PUBCOMP',
    );
    subscriber.close();
    await publisher.endAsync();
  });

  test('a persistent QoS 2 subscriber that answered PUBREC and dropped gets PUBREL, not the PUBLISH, on reconnect [MQTT-4.4.0-1]', async () => {
    const first = await rawClient('q2-sub-rel', { clean: false });
    first.raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q2/rel', qos: 2 }] });
    await first.raw.next('suback');
    const publisher = await connectClient(emulator.url, { clientId: 'q2-rel-pub' });
    await publisher.publishAsync('q2/rel', 'released', { qos: 2 });
    const delivered = await first.raw.next('publish');
    first.raw.send({ cmd: 'pubrec', messageId: delivered.messageId });
    // PUBREL came back, so the broker has noted the PUBREC; drop without PUBCOMP.
    assert.equal((await first.raw.next('pubrel')).messageId, delivered.messageId);
    first.raw.socket.terminate();
    await first.raw.closed;
    await emulator.settle();
    const second = await rawClient('q2-sub-rel', { clean: false });
    assert.equal(second.connack.sessionPresent, true);
    const pubrel = await second.raw.next('pubrel');
    assert.equal(pubrel.messageId, delivered.messageId, 'the PUBREL is resent with the same packet id');
    second.raw.send({ cmd: 'pubcomp', messageId: pubrel.messageId });
    await emulator.settle();
    assert.deepEqual(
      second.raw.packets.filter((p) => p.cmd === 'publish'),
      [],
      'the PUBLISH is not resent once PUBREC was received',
    );
    second.raw.close();
    await publisher.endAsync();
  });

  test('a persistent QoS 2 subscriber that dropped before PUBREC gets the PUBLISH again with DUP=1 and the same packet id [MQTT-4.4.0-1] [MQTT-3.3.1-1]', async () => {
    const first = await rawClient('q2-sub-redo', { clean: false });
    first.raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q2/redo', qos: 2 }] });
    await first.raw.next('suback');
    const publisher = await connectClient(emulator.url, { clientId: 'q2-redo-pub' });
    await publisher.publishAsync('q2/redo', 'again', { qos: 2 });
    const delivered = await first.raw.next('publish');
    first.raw.socket.terminate(); // no PUBREC
    await first.raw.closed;
    await emulator.settle();
    const second = await rawClient('q2-sub-redo', { clean: false });
    assert.equal(second.connack.sessionPresent, true);
    const resent = await second.raw.next('publish');
    assert.equal(resent.messageId, delivered.messageId);
    assert.equal(resent.dup, true);
    assert.equal(resent.qos, 2);
    assert.equal(resent.payload.toString(), 'again');
    second.raw.send({ cmd: 'pubrec', messageId: resent.messageId });
    assert.equal((await second.raw.next('pubrel')).messageId, resent.messageId);
    second.raw.send({ cmd: 'pubcomp', messageId: resent.messageId });
    await emulator.settle();
    second.raw.close();
    await second.raw.closed;
    await emulator.settle();
    // Completed: a third connection of the session has nothing to resume.
    const third = await rawClient('q2-sub-redo', { clean: false });
    await emulator.settle();
    assert.deepEqual(
      third.raw.packets.filter((p) => p.cmd === 'publish' || p.cmd === 'pubrel'),
      [],
    );
    third.raw.close();
    await publisher.endAsync();
  });
});
