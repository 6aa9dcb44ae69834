/**
 * What one message costs through a Shared Subscription, against the same message to one ordinary
 * subscriber: DynamoDB requests and capacity units per message, from the emulator's meter, for a
 * group of clean members and one of persistent members, at QoS 0 and 1.
 *
 * Run: npx tsx bench/shared-subscriptions.ts [messages=200]
 */
import type { MqttClient } from 'mqtt';
import { connect } from '../client/index.js';
import { startEmulator } from '../emulator/index.js';
import type { MeterReading } from '../emulator/meter.js';

const messages = Number(process.argv[2] ?? 200);

async function open(url: string, clientId: string, persistent: boolean): Promise<MqttClient> {
  const client = connect(url, {
    protocolVersion: 5,
    clientId,
    clean: !persistent,
    reconnectPeriod: 0,
    ...(persistent ? { properties: { sessionExpiryInterval: 3600 } } : {}),
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

function delta(before: MeterReading, after: MeterReading) {
  const requests: Record<string, number> = {};
  for (const [op, n] of Object.entries(after.dynamodb.requests)) {
    const d = n - (before.dynamodb.requests[op] ?? 0);
    if (d > 0) requests[op] = d / messages;
  }
  return {
    readUnits: (after.dynamodb.readUnits - before.dynamodb.readUnits) / messages,
    writeUnits: (after.dynamodb.writeUnits - before.dynamodb.writeUnits) / messages,
    requests,
  };
}

const emulator = await startEmulator({
  port: 0,
  log: () => {},
  keepAliveCheckIntervalMs: 0,
  brokerLimits: { maxPublishesPerSecond: 0 },
});
try {
  const publisher = await open(emulator.url, 'bench-pub', false);
  const cases = [
    { name: 'one ordinary subscriber, clean', members: 1, shared: false, persistent: false },
    { name: 'group of 3 clean members', members: 3, shared: true, persistent: false },
    { name: 'one ordinary subscriber, persistent', members: 1, shared: false, persistent: true },
    { name: 'group of 3 persistent members', members: 3, shared: true, persistent: true },
  ];
  for (const qos of [0, 1] as const) {
    for (const c of cases) {
      const topic = `bench/${qos}/${c.name.replaceAll(' ', '-').replaceAll(',', '')}`;
      const filter = c.shared ? `$share/g/${topic}` : topic;
      const members: MqttClient[] = [];
      let received = 0;
      for (let i = 0; i < c.members; i++) {
        const m = await open(emulator.url, `bench-${qos}-${c.shared}-${c.persistent}-${i}`, c.persistent);
        m.on('message', () => received++);
        await m.subscribeAsync(filter, { qos });
        members.push(m);
      }
      await emulator.settle();
      const before = emulator.meter();
      for (let i = 0; i < messages; i++) await publisher.publishAsync(topic, `m${i}`, { qos });
      while (received < messages) await new Promise((r) => setTimeout(r, 50));
      await emulator.settle();
      const cost = delta(before, emulator.meter());
      console.log(
        `QoS ${qos}, ${c.name}: ${cost.writeUnits.toFixed(2)} WCU, ${cost.readUnits.toFixed(2)} RCU per message; requests ${JSON.stringify(
          Object.fromEntries(Object.entries(cost.requests).map(([op, n]) => [op, Number(n.toFixed(2))])),
        )}`,
      );
      for (const m of members) await m.endAsync();
    }
  }
  await publisher.endAsync();
} finally {
  await emulator.stop();
}
