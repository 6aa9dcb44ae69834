import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import type { Emulator } from '../emulator/index.js';
import { DynamoStore } from '../shared/storage/dynamo-store.js';
import { connectClient, emulatorDatabase, startTestEmulator } from './support/emulator.js';

// A fan-out larger than one invocation: 10,000 subscribers on one topic, 1,000 per page, so the
// stream's invocation delivers one page and hands nine to parallel invocations of the fan-out
// function through the Lambda API (ADR 0024). The subscribers are real WebSocket connections; their
// sessions and subscriptions are planted in DynamoDB, as 10,000 CONNECT/SUBSCRIBE round trips
// through the message function would take this machine many minutes. The subscribers' sockets live in
// a child process (test/support/socket-swarm.ts): one process has too few file descriptors for both
// ends of 10,000 connections.

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

type SwarmReply = { opened: number } | { received: Array<Record<string, number>> };

/** The swarm's next answer of the given kind. */
async function reply<K extends 'opened' | 'received'>(
  swarm: ChildProcess,
  key: K,
): Promise<Extract<SwarmReply, Record<K, unknown>>> {
  for (;;) {
    const [message] = (await once(swarm, 'message')) as [SwarmReply];
    if (key in message) return message as Extract<SwarmReply, Record<K, unknown>>;
  }
}

describe(`fan-out to ${subscribers} subscribers in pages`, () => {
  let emulator: Emulator;
  let swarm: ChildProcess;

  before(async () => {
    emulator = await startTestEmulator({
      fanoutPageSize: pageSize,
      keepAliveCheckIntervalMs: 0,
      warmInstances: 2,
    });
    swarm = fork(new URL('./support/socket-swarm.ts', import.meta.url), [emulator.url, String(subscribers)], {
      execArgv: ['--import', 'tsx'],
    });
    assert.equal((await reply(swarm, 'opened')).opened, subscribers);
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
    swarm?.send('close');
    await emulator?.stop();
  });

  test('every subscriber gets the message, though no one invocation delivered to them all', async () => {
    const before = emulator.meter().lambda.fanout?.requests ?? 0;
    const publisher = await connectClient(emulator.url, { clientId: 'burst-pub', connectTimeout: 120_000 });
    const started = performance.now();
    await publisher.publishAsync('burst/all', 'go', { qos: 0 });
    const deadline = Date.now() + 300_000;
    let missing = subscribers;
    while (missing > 0) {
      assert.ok(Date.now() < deadline, `${missing} of ${subscribers} subscribers never got the message`);
      await new Promise((resolve) => setTimeout(resolve, 200));
      swarm.send('report');
      const { received } = await reply(swarm, 'received');
      missing = subscribers - received.filter((r) => (r['burst/all'] ?? 0) >= 1).length;
    }
    // For the person running it; never asserted.
    console.log(`# delivered to ${subscribers} in ${Math.round(performance.now() - started)} ms`);
    await emulator.settle();
    const invocations = (emulator.meter().lambda.fanout?.requests ?? 0) - before;
    assert.ok(
      invocations >= subscribers / pageSize,
      `the stream's invocation and ${subscribers / pageSize - 1} page invocations; saw ${invocations}`,
    );
    publisher.end(true);
  });
});
