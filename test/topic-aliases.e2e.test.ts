import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { IDisconnectPacket, IPublishPacket, MqttClient } from 'mqtt';
import type { Packet } from 'mqtt-packet';
import type { Emulator } from '../emulator/index.js';
import { connectClient, eventually, startTestEmulator } from './support/emulator.js';
import { connectPacket, RawClient } from './support/raw-client.js';

// MQTT 5 Topic Aliases end to end: MQTT.js (protocol version 5) through the emulator's gateway,
// FIFO queue, jittered Lambdas, DynamoDB Local and its stream. MQTT.js closes the connection on an
// alias it was never sent, so every message arriving with its topic proves the ordering.

let emulator: Emulator & { logs: string[] };
const clients: MqttClient[] = [];
before(async () => {
  // No sweep, so no `$SYS/` counting: the cost test meters the deliveries' requests alone.
  emulator = await startTestEmulator({
    jitterMs: 20,
    sweepIntervalMs: 0,
    brokerLimits: { maxPublishesPerSecond: 0 },
  });
});
after(async () => {
  await Promise.all(clients.map((c) => c.endAsync()));
  await emulator?.stop();
});

interface Received {
  /** The topic MQTT.js resolved. */
  readonly topic: string;
  /** The PUBLISH as it came over the wire: topic '' when the alias came alone. */
  readonly wireTopic: string;
  readonly alias?: number;
  readonly payload: string;
}

async function client(clientId: string, options: Parameters<typeof connectClient>[1] = {}) {
  // A generous CONNACK wait: the jittered emulator shares a loaded machine.
  const c = await connectClient(emulator.url, {
    clientId,
    protocolVersion: 5,
    connectTimeout: 30_000,
    ...options,
  });
  clients.push(c);
  const received: Received[] = [];
  c.on('message', (topic, payload, packet: IPublishPacket) =>
    received.push({
      topic,
      wireTopic: packet.topic.toString(),
      alias: packet.properties?.topicAlias,
      payload: payload.toString(),
    }),
  );
  const disconnects: IDisconnectPacket[] = [];
  c.on('disconnect', (packet) => disconnects.push(packet));
  return { client: c, received, disconnects };
}

describe('Topic Aliases end to end', () => {
  test('[MQTT-3.3.2-12] a client publishes with topic + alias, then the alias alone; subscribers get the topic', async () => {
    const sub = await client('ta-in-sub');
    await sub.client.subscribeAsync('ta/in/#', { qos: 1 });
    const pub = await client('ta-in-pub');
    await pub.client.publishAsync('ta/in/kitchen/temperature', '1', {
      qos: 1,
      properties: { topicAlias: 3 },
    });
    for (let i = 2; i <= 5; i++)
      await pub.client.publishAsync('', String(i), { qos: 1, properties: { topicAlias: 3 } });
    await eventually('five messages', () => sub.received.length >= 5);
    assert.deepEqual(
      sub.received.map((m) => [m.topic, m.wireTopic, m.alias, m.payload]),
      ['1', '2', '3', '4', '5'].map((p) => [
        'ta/in/kitchen/temperature',
        'ta/in/kitchen/temperature',
        undefined,
        p,
      ]),
    );
  });

  test('[MQTT-3.3.2-7] another connection cannot use the first one’s alias: DISCONNECT 0x82', async () => {
    const first = await client('ta-scope-a');
    await first.client.publishAsync('ta/scope/topic', 'x', { qos: 1, properties: { topicAlias: 1 } });
    const second = await client('ta-scope-b');
    // At QoS 0: MQTT.js refuses to store a QoS 1 PUBLISH whose alias it never set itself.
    second.client.publish('', 'y', { qos: 0, properties: { topicAlias: 1 } });
    await eventually('DISCONNECT', () => second.disconnects.length > 0);
    assert.equal(second.disconnects[0]?.reasonCode, 0x82);
    assert.equal(first.client.connected, true, 'the first connection is unaffected');
  });

  test('[MQTT-3.3.2-9] an alias above the CONNACK’s maximum ends the connection with DISCONNECT 0x94', async () => {
    // MQTT.js will not send it: a client speaking the wire contract by hand.
    const raw = await RawClient.open(emulator.url, { protocolVersion: 5 });
    raw.send(connectPacket('ta-above', { protocolVersion: 5 }) as Packet);
    await raw.next('connack');
    raw.send({
      cmd: 'publish',
      topic: 'ta/bad',
      payload: Buffer.from('x'),
      qos: 0,
      dup: false,
      retain: false,
      properties: { topicAlias: 11 },
    });
    await raw.closed;
    const disconnect = raw.packets.find((p): p is IDisconnectPacket => p.cmd === 'disconnect');
    assert.equal(disconnect?.reasonCode, 0x94);
  });

  test('[MQTT-3.3.2-10] [MQTT-3.3.2-11] the broker sends aliases, never before the PUBLISH that set them, and each connection has its own', async () => {
    const topics = ['ta/out/building-1/floor-2/temperature', 'ta/out/building-1/floor-2/humidity'];
    const subA = await client('ta-out-a', { properties: { topicAliasMaximum: 1 } });
    const subB = await client('ta-out-b', { properties: { topicAliasMaximum: 5 } });
    await subA.client.subscribeAsync('ta/out/#', { qos: 0 });
    await subB.client.subscribeAsync('ta/out/#', { qos: 1 });
    const pub = await client('ta-out-pub');
    // Fast, unordered among themselves: each message is its own fan-out.
    const count = 40;
    await Promise.all(
      Array.from({ length: count }, (_, i) => pub.client.publishAsync(topics[i % 2], String(i), { qos: 1 })),
    );
    await eventually(
      'every message at both',
      () => subA.received.length >= count && subB.received.length >= count,
      20_000,
    );
    for (const sub of [subA, subB]) {
      assert.deepEqual(sub.disconnects, [], 'no unknown alias reached the client');
      assert.deepEqual(
        sub.received.map((m) => m.topic).sort(),
        Array.from({ length: count }, (_, i) => topics[i % 2]).sort(),
      );
    }
    // [MQTT-3.3.2-11] never above the client's maximum; the first of each alias came with its topic.
    assert.ok(subA.received.every((m) => m.alias === undefined || m.alias === 1));
    assert.ok(subB.received.every((m) => m.alias === undefined || m.alias <= 2));
    for (const sub of [subA, subB]) {
      const aliasOnly = sub.received.filter((m) => m.wireTopic === '');
      assert.ok(aliasOnly.length > 0, 'some messages went out with the alias alone');
    }
    const bBytes = subB.received.reduce((sum, m) => sum + m.wireTopic.length, 0);
    console.log(
      `topic bytes on the wire to the 5-alias subscriber: ${bBytes} of ${count * topics[0].length} (${subB.received.filter((m) => m.wireTopic === '').length}/${count} alias alone)`,
    );
  });

  test('[MQTT-3.3.2-7] a new connection of the same session starts from topic + alias again', async () => {
    const session = { clean: false, properties: { sessionExpiryInterval: 600, topicAliasMaximum: 3 } };
    const first = await client('ta-resume', session);
    await first.client.subscribeAsync('ta/resume/#', { qos: 1 });
    const pub = await client('ta-resume-pub');
    for (const p of ['1', '2', '3']) await pub.client.publishAsync('ta/resume/some/topic', p, { qos: 1 });
    await eventually('three messages', () => first.received.length >= 3);
    assert.equal(first.received.at(-1)?.wireTopic, '', 'the first connection had the alias confirmed');
    await first.client.endAsync();
    const again = await client('ta-resume', session);
    await pub.client.publishAsync('ta/resume/some/topic', '4', { qos: 1 });
    await eventually('the message on the new connection', () => again.received.length >= 1);
    assert.deepEqual(
      again.received.map((m) => [m.topic, m.wireTopic, m.payload]),
      [['ta/resume/some/topic', 'ta/resume/some/topic', '4']],
    );
    assert.deepEqual(again.disconnects, []);
  });

  test('the cost: DynamoDB requests and units of 30 deliveries on one topic, with and without aliases', async () => {
    const cost = async (name: string, aliases: number) => {
      const sub = await client(
        `ta-cost-${name}`,
        aliases > 0 ? { properties: { topicAliasMaximum: aliases } } : {},
      );
      await sub.client.subscribeAsync(`ta/cost/${name}/#`, { qos: 0 });
      const pub = await client(`ta-cost-${name}-pub`);
      await emulator.settle();
      const before = emulator.meter().dynamodb;
      const topic = `ta/cost/${name}/site-7/line-3/pressure`;
      for (let i = 0; i < 30; i++) await pub.client.publishAsync(topic, String(i), { qos: 1 });
      await eventually('30 messages', () => sub.received.length >= 30);
      await emulator.settle();
      const after = emulator.meter().dynamodb;
      const updates = (after.requests.UpdateItem ?? 0) - (before.requests.UpdateItem ?? 0);
      const topicBytes = sub.received.reduce((sum, m) => sum + Buffer.byteLength(m.wireTopic), 0);
      return {
        updates,
        writeUnits: after.writeUnits - before.writeUnits,
        readUnits: after.readUnits - before.readUnits,
        topicBytes,
        aliasAlone: sub.received.filter((m) => m.wireTopic === '').length,
      };
    };
    // The earlier tests' clients go first: their PINGREQs would be metered too.
    await Promise.all(clients.splice(0).map((c) => c.endAsync()));
    await emulator.settle();
    const plain = await cost('plain', 0);
    const aliased = await cost('alias', 10);
    console.log(`without aliases: ${JSON.stringify(plain)}`);
    console.log(`with aliases:    ${JSON.stringify(aliased)}`);
    assert.equal(plain.aliasAlone, 0);
    assert.ok(aliased.aliasAlone >= 20, `${aliased.aliasAlone} of 30 went with the alias alone`);
    // An assignment and a confirmation, and a few more confirmations while deliveries overlap.
    const extra = aliased.updates - plain.updates;
    assert.ok(extra >= 2 && extra <= 2 + (30 - aliased.aliasAlone), `${extra} extra updates`);
  });
});
