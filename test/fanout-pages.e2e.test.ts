import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Emulator } from '../emulator/index.js';
import { DynamoStore } from '../shared/storage/dynamo-store.js';
import { connectClient, emulatorDatabase, eventually, startTestEmulator } from './support/emulator.js';
import { RawClient } from './support/raw-client.js';

// A fan-out larger than one invocation: 10,000 subscribers on one topic, 1,000 per page, so the
// stream's invocation delivers one page and hands nine to parallel invocations of the fan-out
// function through the Lambda API (ADR 0024). The subscribers are real WebSocket connections; their
// sessions and subscriptions are planted in DynamoDB, as 10,000 CONNECT/SUBSCRIBE round trips
// through the message function would take this machine many minutes.

const subscribers = Number(process.env.NIMBUS_FANOUT_TEST_SUBSCRIBERS ?? 10_000);
const pageSize = Number(process.env.NIMBUS_FANOUT_TEST_PAGE ?? 1_000);

/** Runs `work` over `items`, at most `lanes` at a time. */
async function inLanes<T>(
  items: readonly T[],
  lanes: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

describe(`fan-out to ${subscribers} subscribers in pages`, () => {
  let emulator: Emulator;
  const sockets: RawClient[] = [];

  before(async () => {
    emulator = await startTestEmulator({
      fanoutPageSize: pageSize,
      keepAliveCheckIntervalMs: 0,
      warmInstances: 2,
    });
    await inLanes(
      Array.from({ length: subscribers }, (_, i) => i),
      100,
      async () => {
        sockets.push(await RawClient.open(emulator.url));
      },
    );
    const store = new DynamoStore(emulatorDatabase(emulator), emulator.tables, { now: Date.now });
    const connectionIds = emulator.gateway.connectionIds;
    assert.equal(connectionIds.length, subscribers);
    const subscribedAt = Date.now() - 1_000;
    await inLanes(connectionIds, 32, async (connectionId) => {
      const clientId = `sub-${connectionId}`;
      await store.replaceSession(
        { clientId, sessionId: `s-${connectionId}`, connectionId, protocolVersion: 4, cleanSession: true },
        undefined,
      );
      await store.putSubscriptions([
        { clientId, sessionId: `s-${connectionId}`, filter: 'burst/all', qos: 0, subscribedAt },
      ]);
    });
  });

  after(async () => {
    for (const socket of sockets) socket.socket.terminate();
    await emulator?.stop();
  });

  test('every subscriber gets the message, though no one invocation delivered to them all', async () => {
    const before = emulator.meter().lambda.fanout?.requests ?? 0;
    const publisher = await connectClient(emulator.url, { clientId: 'burst-pub' });
    await publisher.publishAsync('burst/all', 'go', { qos: 0 });
    const got = (socket: RawClient) => socket.packets.filter((p) => p.cmd === 'publish').length;
    const started = performance.now();
    await eventually('every subscriber to get the message', () => sockets.every((s) => got(s) >= 1), 300_000);
    // For the person running it; never asserted.
    console.log(`# delivered to ${subscribers} in ${Math.round(performance.now() - started)} ms`);
    await emulator.settle();
    for (const socket of sockets) {
      const [publish] = socket.packets.filter((p) => p.cmd === 'publish');
      assert.ok(publish?.cmd === 'publish' && publish.topic === 'burst/all');
      assert.equal(publish.payload.toString(), 'go');
    }
    const invocations = (emulator.meter().lambda.fanout?.requests ?? 0) - before;
    assert.ok(
      invocations >= subscribers / pageSize,
      `the stream's invocation and ${subscribers / pageSize - 1} page invocations; saw ${invocations}`,
    );
    publisher.end(true);
  });
});
