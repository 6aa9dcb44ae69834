import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import type { Emulator } from '../emulator/index.js';
import { connectClient, eventually, startTestEmulator } from './support/emulator.js';

// $SYS/ figures through the emulator: the fan-out counts each batch, the sweeper (every second
// here, every minute on AWS) publishes what changed, retained.
let emulator: Emulator & { logs: string[] };
const clients: MqttClient[] = [];
before(async () => {
  emulator = await startTestEmulator({ sweepIntervalMs: 1_000 });
});
after(async () => {
  await Promise.all(clients.map((c) => c.endAsync()));
  await emulator?.stop();
});

async function client(clientId: string): Promise<MqttClient> {
  const connected = await connectClient(emulator.url, { clientId, protocolVersion: 5 });
  clients.push(connected);
  return connected;
}

/** The latest payload of each topic a client received. */
function latest(c: MqttClient): Map<string, string> {
  const seen = new Map<string, string>();
  c.on('message', (topic, payload) => seen.set(topic, payload.toString()));
  return seen;
}

test('$SYS/#: clients connected and messages received follow the traffic; # never sees them [MQTT-4.7.2-1]', async () => {
  const watcher = await client('sys-watcher');
  const figures = latest(watcher);
  await watcher.subscribeAsync('$SYS/#', { qos: 0 });
  const everything = await client('sys-everything');
  const seenByHash: string[] = [];
  everything.on('message', (topic) => seenByHash.push(topic));
  await everything.subscribeAsync('#', { qos: 0 });

  await eventually(
    'clients connected = 2',
    () => figures.get('$SYS/broker/clients/connected') === '2',
    20_000,
  );
  assert.ok(figures.has('$SYS/broker/version'));
  const receivedBefore = Number(figures.get('$SYS/broker/messages/received') ?? '0');

  const publisher = await client('sys-publisher');
  for (let i = 0; i < 5; i++) await publisher.publishAsync('sys-test/data', `m${i}`, { qos: 1 });
  await eventually(
    'clients connected = 3',
    () => figures.get('$SYS/broker/clients/connected') === '3',
    20_000,
  );
  // Each fan-out instance adds its tally when its next batch comes an interval after its last
  // write: while traffic flows, the count catches up.
  let ticked = 0;
  await eventually(
    'messages received and sent counted',
    () => {
      const received = Number(figures.get('$SYS/broker/messages/received'));
      if (received >= receivedBefore + 5 && Number(figures.get('$SYS/broker/messages/sent')) >= 5)
        return true;
      if (Date.now() - ticked > 500) {
        ticked = Date.now();
        void publisher.publishAsync('sys-test/tick', '.', { qos: 0 });
      }
      return false;
    },
    30_000,
  );
  // `#` got the five messages (and, with them, the chance to see a $SYS/ one): none were $SYS/.
  await eventually('# got the traffic', () => seenByHash.filter((t) => t === 'sys-test/data').length === 5);
  assert.deepEqual(
    seenByHash.filter((t) => t.startsWith('$')),
    [],
  );

  // A client may not publish there: 0x87, and the figure is not overwritten.
  await assert.rejects(
    publisher.publishAsync('$SYS/broker/clients/connected', '999', { qos: 1 }),
    /135|0x87|Not authorized/i,
  );
});
