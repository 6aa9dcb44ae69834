import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { IClientOptions, IConnackPacket } from 'mqtt';
import { connect } from '../client/index.js';
import type { Emulator } from '../emulator/index.js';
import { connectClient, eventually, inbox, startTestEmulator } from './support/emulator.js';

// MQTT 5.0 §4.8.2 Shared Subscriptions end to end: MQTT.js 5.0 clients through the emulator, with
// jitter on and several fan-out instances, so group members are chosen by concurrent instances.
let emulator: Emulator & { logs: string[] };
before(async () => {
  emulator = await startTestEmulator({
    jitterMs: 20,
    warmInstances: 2,
    brokerLimits: { maxPublishesPerSecond: 0 },
  });
});
after(async () => {
  await emulator?.stop();
});

const v5 = (clientId: string, options: IClientOptions = {}) =>
  connectClient(emulator.url, { protocolVersion: 5, clientId, ...options });

const payloads = (box: ReturnType<typeof inbox>) => box.map((m) => m.payload);

describe('Shared Subscriptions', () => {
  test('CONNACK announces Shared Subscription Available', async () => {
    const client = connect(emulator.url, {
      protocolVersion: 5,
      clientId: 'e2e-share-connack',
      reconnectPeriod: 0,
    });
    const connack = await new Promise<IConnackPacket>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    });
    assert.equal(connack.properties?.sharedSubscriptionAvailable, true);
    await client.endAsync();
  });

  test('§4.8.2 each message reaches exactly one member of each group, spread across the members', async () => {
    const workers = [];
    for (const w of ['w1', 'w2', 'w3']) workers.push(await v5(`e2e-share-${w}`));
    const auditor = await v5('e2e-share-audit');
    const boxes = workers.map((w) => inbox(w));
    const audit = inbox(auditor);
    for (const w of workers) {
      const granted = await w.subscribeAsync('$share/work/e2e-share/jobs/+', { qos: 1 });
      assert.equal(granted[0]?.qos, 1);
    }
    await auditor.subscribeAsync('$share/audit/e2e-share/jobs/#', { qos: 1 });
    const publisher = await v5('e2e-share-pub');
    const sent = Array.from({ length: 30 }, (_, i) => `job-${i}`);
    for (const m of sent) await publisher.publishAsync('e2e-share/jobs/a', m, { qos: 1 });
    await eventually('every job at the work group', () => boxes.flat().length >= sent.length, 30_000);
    await eventually('every job at the audit group', () => audit.length >= sent.length, 30_000);
    await emulator.settle();
    assert.deepEqual(boxes.flatMap(payloads).sort(), [...sent].sort(), 'work group: each job once');
    assert.deepEqual(payloads(audit).sort(), [...sent].sort(), 'audit group: each job once');
    for (const box of boxes) assert.ok(box.length > 0, `spread: ${boxes.map((b) => b.length)}`);
    await Promise.all([...workers, auditor, publisher].map((c) => c.endAsync()));
  });

  test('§4.8.2 a member that disconnects with unacknowledged QoS 1 messages: the rest of the group gets them', async () => {
    // This member never acknowledges: MQTT.js holds every PUBLISH until the callback is called.
    const stalled: string[] = [];
    const stuck = await v5('e2e-share-stuck', {
      customHandleAcks: (_topic, message) => {
        stalled.push(message.toString());
      },
    });
    const workers = [];
    for (const w of ['h1', 'h2']) workers.push(await v5(`e2e-share-${w}`));
    const boxes = workers.map((w) => inbox(w));
    for (const c of [stuck, ...workers]) await c.subscribeAsync('$share/handoff/e2e-share/tasks', { qos: 1 });
    const publisher = await v5('e2e-share-pub2');
    const sent = Array.from({ length: 30 }, (_, i) => `task-${i}`);
    for (const m of sent) await publisher.publishAsync('e2e-share/tasks', m, { qos: 1 });
    await eventually('the stuck member holds a task', () => stalled.length > 0, 30_000);
    await emulator.settle();
    const before = boxes.flat().length;
    assert.ok(before < sent.length, 'some tasks wait at the stuck member');
    // Gone without a word: its clean session ends, and with it the member's claim on its tasks.
    stuck.end(true);
    await eventually('every task at the remaining members', () => boxes.flat().length >= sent.length, 30_000);
    await emulator.settle();
    assert.deepEqual(boxes.flatMap(payloads).sort(), [...sent].sort(), 'each task once at h1 or h2');
    await Promise.all([...workers, publisher].map((c) => c.endAsync()));
  });

  test('retained messages are not sent for a new Shared Subscription; unsubscribing ends the membership', async () => {
    const publisher = await v5('e2e-share-pub3');
    await publisher.publishAsync('e2e-share/state', 'kept', { qos: 1, retain: true });
    const member = await v5('e2e-share-member');
    const box = inbox(member);
    await member.subscribeAsync('$share/g/e2e-share/state', { qos: 1 });
    await publisher.publishAsync('e2e-share/state', 'live', { qos: 1 });
    await eventually('the live message', () => box.length >= 1, 30_000);
    await member.unsubscribeAsync('$share/g/e2e-share/state');
    await publisher.publishAsync('e2e-share/state', 'after', { qos: 1 });
    await emulator.settle();
    assert.deepEqual(payloads(box), ['live']);
    await publisher.publishAsync('e2e-share/state', '', { qos: 1, retain: true });
    await Promise.all([member, publisher].map((c) => c.endAsync()));
  });
});
