import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt';
import { connect } from '../client/index.js';
import type { Emulator } from '../emulator/index.js';
import { connectClient, emulatorDatabase, eventually, startTestEmulator } from './support/emulator.js';

// MQTT 5 subscription options, subscription identifiers and session expiry,
// end to end: MQTT.js speaking 5.0 through the emulator, with jitter on.
let emulator: Emulator & { logs: string[] };
before(async () => {
  emulator = await startTestEmulator({ jitterMs: 20, warmInstances: 2, sweepIntervalMs: 500 });
});
after(async () => {
  await emulator?.stop();
});

const v5 = (clientId: string, options: IClientOptions = {}) =>
  connectClient(emulator.url, { protocolVersion: 5, clientId, ...options });

/** Every PUBLISH the client receives, with its properties. */
function received(client: MqttClient): IPublishPacket[] {
  const packets: IPublishPacket[] = [];
  client.on('message', (_topic, _payload, packet) => packets.push(packet));
  return packets;
}

const idsOf = (packet: IPublishPacket | undefined) => {
  const ids = packet?.properties?.subscriptionIdentifier;
  return ids === undefined ? [] : Array.isArray(ids) ? ids : [ids];
};

/** Connects a 5.0 client and returns it with the CONNACK's session present flag. */
async function reconnect(
  clientId: string,
  options: IClientOptions,
): Promise<{ client: MqttClient; present: boolean; got: IPublishPacket[] }> {
  const client = connect(emulator.url, { protocolVersion: 5, clientId, reconnectPeriod: 0, ...options });
  const got = received(client);
  const present = await new Promise<boolean>((resolve, reject) => {
    client.once('connect', (connack) => resolve(connack.sessionPresent));
    client.once('error', reject);
  });
  return { client, present, got };
}

describe('subscription options', () => {
  test('[MQTT-3.8.3-3] No Local: the publisher does not get its own message; another subscriber does', async () => {
    const self = await v5('e2e5-nl-self');
    const other = await v5('e2e5-nl-other');
    const own = received(self);
    const theirs = received(other);
    await self.subscribeAsync('e2e5/nl', { qos: 1, nl: true });
    await other.subscribeAsync('e2e5/nl', { qos: 1 });
    await self.publishAsync('e2e5/nl', 'mine', { qos: 1 });
    await other.publishAsync('e2e5/nl', 'yours', { qos: 1 });
    await eventually('both messages at the other client', () => theirs.length === 2);
    await eventually("the other's message at the publisher", () => own.length === 1);
    await emulator.settle();
    assert.deepEqual(
      own.map((p) => p.payload.toString()),
      ['yours'],
    );
    await Promise.all([self.endAsync(), other.endAsync()]);
  });

  test('[MQTT-3.3.1-12] Retain As Published keeps RETAIN on live delivery; [MQTT-3.3.1-13] without it, cleared', async () => {
    const rap = await v5('e2e5-rap');
    const plain = await v5('e2e5-plain');
    const withFlag = received(rap);
    const cleared = received(plain);
    await rap.subscribeAsync('e2e5/rap', { qos: 1, rap: true, rh: 2 });
    await plain.subscribeAsync('e2e5/rap', { qos: 1, rh: 2 });
    const publisher = await v5('e2e5-rap-pub');
    await publisher.publishAsync('e2e5/rap', 'flagged', { qos: 1, retain: true });
    await eventually('both deliveries', () => withFlag.length === 1 && cleared.length === 1);
    assert.equal(withFlag[0]?.retain, true);
    assert.equal(cleared[0]?.retain, false);
    await publisher.publishAsync('e2e5/rap', '', { qos: 1, retain: true }); // clear the retained message
    await Promise.all([rap.endAsync(), plain.endAsync(), publisher.endAsync()]);
  });

  test('[MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] Retain Handling 0 / 1 / 2', async () => {
    const publisher = await v5('e2e5-rh-pub');
    await publisher.publishAsync('e2e5/rh', 'stored', { qos: 1, retain: true });
    const client = await v5('e2e5-rh');
    const got = received(client);
    await client.subscribeAsync('e2e5/rh', { qos: 1, rh: 1 }); // new: sent
    await client.subscribeAsync('e2e5/rh', { qos: 1, rh: 1 }); // exists: not sent
    await client.subscribeAsync('e2e5/rh', { qos: 1, rh: 2 }); // never
    await client.subscribeAsync('e2e5/rh', { qos: 1, rh: 0 }); // always
    await eventually('two retained deliveries', () => got.length >= 2);
    await emulator.settle();
    assert.deepEqual(
      got.map((p) => [p.payload.toString(), p.retain]),
      [
        ['stored', true],
        ['stored', true],
      ],
    );
    await publisher.publishAsync('e2e5/rh', '', { qos: 1, retain: true });
    await Promise.all([client.endAsync(), publisher.endAsync()]);
  });
});

describe('subscription identifiers', () => {
  test('[MQTT-3.3.4-3] [MQTT-3.3.4-5] one PUBLISH per message with the identifiers of every matching subscription', async () => {
    const client = await v5('e2e5-ids');
    const got = received(client);
    await client.subscribeAsync('e2e5/ids/+', { qos: 1, properties: { subscriptionIdentifier: 12 } });
    await client.subscribeAsync('e2e5/ids/#', { qos: 0, properties: { subscriptionIdentifier: 3 } });
    await client.subscribeAsync('e2e5/ids/only-plain/x', { qos: 0 });
    const publisher = await v5('e2e5-ids-pub');
    await publisher.publishAsync('e2e5/ids/a', 'both', { qos: 1 });
    await publisher.publishAsync('e2e5/ids/only-plain/x', 'deep', { qos: 0 });
    await eventually('two deliveries', () => got.length === 2);
    await emulator.settle();
    const both = got.find((p) => p.payload.toString() === 'both');
    assert.deepEqual(idsOf(both), [3, 12]);
    assert.equal(both?.qos, 1);
    assert.deepEqual(idsOf(got.find((p) => p.payload.toString() === 'deep')), [3]);
    assert.equal(got.length, 2);
    await Promise.all([client.endAsync(), publisher.endAsync()]);
  });
});

describe('session expiry', () => {
  test('[MQTT-3.1.2-23] a session with an interval outlives its connection and keeps what was queued', async () => {
    const first = await v5('e2e5-exp-keep', { clean: false, properties: { sessionExpiryInterval: 300 } });
    await first.subscribeAsync('e2e5/exp/keep', { qos: 1, properties: { subscriptionIdentifier: 9 } });
    await first.endAsync();
    await emulator.settle();
    const publisher = await v5('e2e5-exp-pub');
    await publisher.publishAsync('e2e5/exp/keep', 'while away', { qos: 1 });
    await emulator.settle();
    const again = await reconnect('e2e5-exp-keep', {
      clean: false,
      properties: { sessionExpiryInterval: 300 },
    });
    assert.equal(again.present, true);
    await eventually('the queued message', () => again.got.length === 1);
    assert.deepEqual(idsOf(again.got[0]), [9]);
    await Promise.all([again.client.endAsync(), publisher.endAsync()]);
  });

  test('[MQTT-3.1.2-11] interval 0: the session ends with the connection', async () => {
    const first = await v5('e2e5-exp-zero', { clean: false });
    await first.subscribeAsync('e2e5/exp/zero', { qos: 1 });
    await first.endAsync();
    await emulator.settle();
    const again = await reconnect('e2e5-exp-zero', { clean: false });
    assert.equal(again.present, false);
    await again.client.endAsync();
  });

  test('[MQTT-3.1.2-23] an expired session is removed by the sweep, then a CONNECT starts fresh', async () => {
    const first = await v5('e2e5-exp-short', { clean: false, properties: { sessionExpiryInterval: 1 } });
    await first.subscribeAsync('e2e5/exp/short', { qos: 1 });
    await first.endAsync();
    const db = emulatorDatabase(emulator);
    const session = async () =>
      (
        await db.send(
          new GetCommand({ TableName: emulator.tables.Sessions, Key: { clientId: 'e2e5-exp-short' } }),
        )
      ).Item;
    let gone = false;
    const deadline = Date.now() + 15_000;
    while (!gone && Date.now() < deadline) {
      gone = (await session()) === undefined;
      if (!gone) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(gone, 'the sweep removed the expired session');
    const again = await reconnect('e2e5-exp-short', { clean: false });
    assert.equal(again.present, false);
    await again.client.endAsync();
  });

  test('[MQTT-3.14.2-2] DISCONNECT cannot raise an interval of 0: the session still ends with the connection', async () => {
    const client = await v5('e2e5-exp-raise');
    await client.subscribeAsync('e2e5/exp/raise', { qos: 1 });
    // MQTT.js closes right after its DISCONNECT, so the broker's 0x82 answer is checked in the handler tests.
    await client.endAsync(false, { reasonCode: 0, properties: { sessionExpiryInterval: 60 } });
    await emulator.settle();
    assert.equal(
      (
        await db().send(
          new GetCommand({ TableName: emulator.tables.Sessions, Key: { clientId: 'e2e5-exp-raise' } }),
        )
      ).Item,
      undefined,
    );
  });
});

const db = () => emulatorDatabase(emulator);
