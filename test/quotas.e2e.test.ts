import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { IDisconnectPacket } from 'mqtt-packet';
import type { Emulator } from '../emulator/index.js';
import { hashPassword } from '../shared/auth.js';
import { connectClient, eventually, inbox, startTestEmulator } from './support/emulator.js';

// The publish rate and connections-per-user quotas through the whole path: MQTT.js, the
// gateway, the FIFO queue (whose SentTimestamp is the rate's clock), the message function.
let emulator: Emulator & { logs: string[] };
const users = { alice: hashPassword('alice-pw'), bob: hashPassword('bob-pw') };

before(async () => {
  emulator = await startTestEmulator({
    users,
    // No sweep, so no `$SYS/` counting: the meter sees the Messages writes alone.
    sweepIntervalMs: 0,
    brokerLimits: { maxPublishesPerSecond: 5, publishBurst: 10, maxConnectionsPerUser: 2 },
  });
});
after(async () => {
  await emulator?.settle();
  await emulator?.stop();
});

const as = (user: string, clientId: string) => ({
  clientId,
  protocolVersion: 5 as const,
  username: user,
  password: `${user}-pw`,
});

describe('quotas end to end', () => {
  test('a client below its rate adds no DynamoDB write: one write unit per publish of < 1 KB', async () => {
    const client = await connectClient(emulator.url, as('bob', 'slow-publisher'));
    // A warm-up publish first, so the measured ones find the connection's record and quota settled.
    // QoS 1: its PUBACK comes after the broker stored it, where a QoS 0 publish may still sit in the
    // client's socket when `settle` finds the broker idle, and be counted with the measured ones.
    await client.publishAsync('load/slow', 'warm-up', { qos: 1 });
    await emulator.settle();
    const before = emulator.meter().dynamodb;
    const count = 12; // above the burst of 10: the bucket must refill between publishes
    for (let i = 0; i < count; i++) {
      await client.publishAsync('load/slow', `m${i}`, { qos: 0 });
      // 1/s against 5/s: the queue stamps a frame when the emulator's gateway takes it, so a
      // gateway stalled for seconds by a loaded machine bunches frames; they stay within half the burst.
      await new Promise((r) => setTimeout(r, 1000));
    }
    await emulator.settle();
    const after = emulator.meter().dynamodb;
    assert.ok(client.connected, 'still connected');
    const requests = Object.fromEntries(
      Object.entries(after.requests).map(([op, n]) => [op, n - (before.requests[op] ?? 0)]),
    );
    assert.equal(
      after.writeUnits - before.writeUnits,
      count,
      `only the Messages writes; requests ${JSON.stringify(requests)}; logs ${emulator.logs.slice(-5).join(' | ')}`,
    );
    await client.endAsync();
  });

  test('a client publishing faster than the rate gets DISCONNECT 0x96 Message rate too high', async () => {
    const client = await connectClient(emulator.url, as('bob', 'fast-publisher'));
    const disconnect = new Promise<IDisconnectPacket>((resolve) => client.once('disconnect', resolve));
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    for (let i = 0; i < 60; i++) {
      if (client.disconnected || client.disconnecting) break;
      client.publish('load/fast', `m${i}`, { qos: 0 });
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal((await disconnect).reasonCode, 0x96);
    await closed;
  });

  test("a user's third connection with a quota of 2 gets CONNACK 0x97; the first two keep working; after one ends the next connects", async () => {
    const first = await connectClient(emulator.url, as('alice', 'alice-1'));
    const second = await connectClient(emulator.url, as('alice', 'alice-2'));
    await assert.rejects(
      connectClient(emulator.url, as('alice', 'alice-3')),
      (error: Error & { code?: number }) => {
        assert.equal(error.code, 0x97);
        return true;
      },
    );
    const received = inbox(first);
    await first.subscribeAsync('alice/news', { qos: 1 });
    await second.publishAsync('alice/news', 'still here', { qos: 1 });
    await eventually('the message between the first two', () => received.length === 1);
    await first.endAsync();
    await emulator.settle();
    const fourth = await connectClient(emulator.url, as('alice', 'alice-4'));
    assert.ok(fourth.connected);
    await Promise.all([second.endAsync(), fourth.endAsync()]);
  });
});
