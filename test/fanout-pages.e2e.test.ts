import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { plantSubscribers, SocketSwarm } from '../bench/swarm.js';
import type { Emulator } from '../emulator/index.js';
import { connectClient, startTestEmulator } from './support/emulator.js';

// A fan-out larger than one invocation: 10,000 subscribers on one topic, 1,000 per page, so the
// stream's invocation delivers one page and hands nine to parallel invocations of the fan-out
// function through the Lambda API (ADR 0024). The subscribers are real WebSocket connections; their
// sessions and subscriptions are planted in DynamoDB, as 10,000 CONNECT/SUBSCRIBE round trips
// through the message function would take this machine many minutes. The subscribers' sockets live in
// a child process (bench/socket-swarm.ts): one process has too few file descriptors for both
// ends of 10,000 connections.

const subscribers = Number(process.env.NIMBUS_FANOUT_TEST_SUBSCRIBERS ?? 10_000);
const pageSize = Number(process.env.NIMBUS_FANOUT_TEST_PAGE ?? 1_000);

describe(`fan-out to ${subscribers} subscribers in pages`, () => {
  let emulator: Emulator;
  let swarm: SocketSwarm;

  before(async () => {
    emulator = await startTestEmulator({
      fanoutPageSize: pageSize,
      keepAliveCheckIntervalMs: 0,
      warmInstances: 2,
      // One page instance per core: more only compile the SDK's hot paths again on the same two cores.
      fanoutPageInstances: 2,
    });
    swarm = await SocketSwarm.start(emulator.url, subscribers);
    assert.equal(swarm.opened, subscribers);
    assert.equal(emulator.gateway.connectionCount, subscribers);
    await plantSubscribers(emulator, emulator.gateway.connectionIds, 'burst/all');
  });

  after(async () => {
    swarm?.close();
    await emulator?.stop();
  });

  test('every subscriber gets the message, though no one invocation delivered to them all', async () => {
    const before = emulator.meter().lambda.fanout?.requests ?? 0;
    const publisher = await connectClient(emulator.url, { clientId: 'burst-pub', connectTimeout: 120_000 });
    const publishedAt = Date.now();
    await publisher.publishAsync('burst/all', 'go', { qos: 0 });
    const got = await swarm.untilAllGot('burst/all', 300_000);
    assert.equal(got.none, 0, `${got.none} of ${subscribers} subscribers never got the message`);
    // For the person running it; never asserted.
    console.log(
      `# first delivery ${Math.round((got.firstAt ?? Number.NaN) - publishedAt)} ms, last ${Math.round((got.lastAt ?? Number.NaN) - publishedAt)} ms after the publish`,
    );
    await emulator.settle();
    // QoS 0 is at most once; a fan-out that posted a page twice would show here.
    assert.deepEqual(await swarm.tally('burst/all'), { ...got, once: subscribers, more: 0, none: 0 });
    const invocations = (emulator.meter().lambda.fanout?.requests ?? 0) - before;
    assert.ok(
      invocations >= subscribers / pageSize,
      `the stream's invocation and ${subscribers / pageSize - 1} page invocations; saw ${invocations}`,
    );
    publisher.end(true);
  });
});
