import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { ConsoleRoutes } from '../emulator/console-api.js';
import { localCredentials, localRegion } from '../emulator/dynamodb-local.js';
import type { Emulator } from '../emulator/index.js';
import { createLog } from '../emulator/log.js';
import { Traffic } from '../emulator/traffic.js';
import type { TableId } from '../shared/tables.js';
import { connectClient, startTestEmulator } from './support/emulator.js';

// The console's JSON endpoints, read over HTTP as the page reads them.
const TIMEOUT = { timeout: 120_000 };
let emulator: Emulator;

before(async () => {
  emulator = await startTestEmulator();
}, TIMEOUT);

after(() => emulator?.stop(), TIMEOUT);

async function get<T>(path: string, base = emulator.consoleUrl): Promise<T> {
  const response = await fetch(new URL(path, base));
  assert.equal(response.status, 200, `${path}: ${response.status}`);
  assert.match(response.headers.get('content-type') ?? '', /application\/json/);
  return (await response.json()) as T;
}

interface Listing<T> {
  rows: T[];
  truncated: boolean;
  limit: number;
}

test(
  'clients: a 3.1.1 client that sent no id is listed under the id the broker assigned',
  TIMEOUT,
  async () => {
    const client = await connectClient(emulator.url, {
      clientId: '',
      protocolVersion: 4,
      clean: true,
      keepalive: 30,
    });
    try {
      const { rows } =
        await get<
          Listing<{ clientId: string; protocolVersion: number; state: string; keepAliveSeconds: number }>
        >('/api/clients');
      assert.equal(rows.length, 1);
      assert.ok(rows[0].clientId.length > 0, 'the broker-assigned id, from the Connections table');
      assert.deepEqual(
        { version: rows[0].protocolVersion, state: rows[0].state, keepAlive: rows[0].keepAliveSeconds },
        { version: 4, state: 'connected', keepAlive: 30 },
      );
    } finally {
      await client.endAsync();
    }
  },
);

test(
  'sessions show an offline persistent session with its queue depth; stats count publishes',
  TIMEOUT,
  async () => {
    const sleeper = await connectClient(emulator.url, {
      clientId: 'sleeper',
      protocolVersion: 4,
      clean: false,
    });
    await sleeper.subscribeAsync('queue/#', { qos: 1 });
    await sleeper.endAsync();
    const publisher = await connectClient(emulator.url, { clientId: 'publisher', protocolVersion: 5 });
    await publisher.publishAsync('queue/a', 'one', { qos: 1 });
    await publisher.publishAsync('queue/b', 'two', { qos: 1 });
    await emulator.settle();
    const { rows } =
      await get<Listing<{ clientId: string; online: boolean; cleanSession: boolean; queued: number }>>(
        '/api/sessions',
      );
    assert.deepEqual(
      rows.find((row) => row.clientId === 'sleeper'),
      { clientId: 'sleeper', online: false, protocolVersion: 4, cleanSession: false, queued: 2 },
    );
    const subscriptions =
      await get<Listing<{ clientId: string; filter: string; qos: number }>>('/api/subscriptions');
    assert.ok(
      subscriptions.rows.some((s) => s.clientId === 'sleeper' && s.filter === 'queue/#' && s.qos === 1),
    );
    const stats = await get<{ rates: { publishesIn: number }; bill: { totalUsd: number } }>('/api/stats');
    assert.ok(stats.rates.publishesIn >= 2);
    assert.ok(stats.bill.totalUsd > 0);
    await publisher.endAsync();
  },
);

test(
  'retained: text payloads are shown, binary ones by size; listings stop at their row limit',
  TIMEOUT,
  async () => {
    const publisher = await connectClient(emulator.url, { clientId: 'retainer', protocolVersion: 5 });
    await publisher.publishAsync('r/text', 'twenty one', { qos: 1, retain: true });
    await publisher.publishAsync('r/binary', Buffer.from([0xff, 0x00, 0xfe]), { qos: 1, retain: true });
    await publisher.publishAsync('r/third', '3', { qos: 1, retain: true });
    await publisher.endAsync();
    await emulator.settle();
    const retained = await get<Listing<{ topic: string; payload: string; bytes: number }>>('/api/retained');
    assert.equal(retained.rows.length, 3);
    const byTopic = Object.fromEntries(retained.rows.map((row) => [row.topic, row]));
    assert.equal(byTopic['r/text']?.payload, 'twenty one');
    assert.equal(byTopic['r/binary']?.payload, '(3 bytes, binary)');
    assert.equal(retained.truncated, false);

    // The same tables through routes that list two rows at most.
    const routes = new ConsoleRoutes({
      traffic: new Traffic(createLog('error', () => {})),
      meter: () => emulator.meter(),
      dynamo: { endpoint: emulator.dynamoEndpoint, region: localRegion, credentials: localCredentials },
      tables: emulator.tables as Record<TableId, string>,
      rowLimit: 2,
    });
    const server: Server = createServer((req, res) => {
      if (!routes.handle(req, res)) res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      const capped = await get<Listing<unknown>>('/api/retained', base);
      assert.deepEqual(
        { shown: capped.rows.length, truncated: capped.truncated, limit: capped.limit },
        {
          shown: 2,
          truncated: true,
          limit: 2,
        },
      );
    } finally {
      server.close();
      routes.close();
    }
  },
);

test('unknown endpoints answer 404 and writes 405, both in JSON that says what exists', TIMEOUT, async () => {
  const missing = await fetch(new URL('/api/nope', emulator.consoleUrl));
  assert.equal(missing.status, 404);
  assert.match(((await missing.json()) as { message: string }).message, /\/api\/clients/);
  const post = await fetch(new URL('/api/clients', emulator.consoleUrl), { method: 'POST' });
  assert.equal(post.status, 405);
  // The management API still answers on the same port, and wants a signed request as API Gateway does.
  const unsigned = await fetch(new URL('/@connections/nobody', emulator.consoleUrl));
  assert.equal(unsigned.status, 403);
  assert.equal(unsigned.headers.get('x-amzn-errortype'), 'MissingAuthenticationTokenException');
});
