import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { FifoQueue } from '../emulator/fifo-queue.js';
import type { Emulator } from '../emulator/index.js';
import { connectClient, eventually, inbox, startTestEmulator } from './support/emulator.js';
import { connectPacket, RawClient } from './support/raw-client.js';

// MQTT 3.1.1 §4.6: one connection's packets are handled in the order sent. API Gateway invokes a
// Lambda $default integration concurrently per frame, so the product puts a FIFO queue in between
// (docs/adr/0003-ordering.md). Jitter is on, so every invocation is delayed by a random amount.
let emulator: Emulator & { logs: string[] };
before(async () => {
  // 1,000 publishes at once is ten times the default publish rate (shared/limits.ts): this file is
  // about order, so the rate quota is off here (test/quotas.e2e.test.ts covers it).
  emulator = await startTestEmulator({ jitterMs: 20, brokerLimits: { maxPublishesPerSecond: 0 } });
});
after(async () => {
  await emulator?.stop();
});

describe('one connection, in order', () => {
  test('1,000 QoS 1 messages sent at once arrive in publish order, none missing or twice [MQTT-4.6.0-2] [MQTT-4.6.0-3]', async () => {
    const count = 1000;
    const subscriber = await connectClient(emulator.url, { clientId: 'order-sub' });
    const publisher = await connectClient(emulator.url, { clientId: 'order-pub' });
    const received = inbox(subscriber);
    await subscriber.subscribeAsync('order/burst', { qos: 1 });
    const framesBefore = emulator.meter().gateway.messagesIn;
    // Not awaited one by one: MQTT.js sends them as fast as it can. Each starts on its own turn of the
    // event loop, so the transport sends each PUBLISH in a frame of its own (it joins a tick's packets).
    const published: Array<Promise<unknown>> = [];
    for (let i = 0; i < count; i++) {
      published.push(publisher.publishAsync('order/burst', String(i), { qos: 1 }));
      await new Promise(setImmediate);
    }
    await Promise.all(published);
    const frames = emulator.meter().gateway.messagesIn - framesBefore;
    await eventually(`${count} deliveries`, () => received.length >= count, 90_000);
    await emulator.settle();
    const payloads = received.map((m) => Number(m.payload));
    assert.deepEqual(
      payloads,
      Array.from({ length: count }, (_, i) => i),
      `in order, each once (${frames} frames came in, PUBACKs included)`,
    );
    assert.equal(emulator.deadLetters.length, 0);
    await Promise.all([subscriber.endAsync(), publisher.endAsync()]);
  });

  test('SUBSCRIBE and PINGREQ sent right behind CONNECT, each in its own frame, are answered in order', async () => {
    const raw = await RawClient.open(emulator.url);
    raw.send(connectPacket('order-raw'));
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'order/raw', qos: 1 }] });
    raw.send({ cmd: 'pingreq' });
    await eventually(
      'three answers',
      () => raw.packets.length >= 3 || raw.socket.readyState !== raw.socket.OPEN,
    );
    const [connack, suback, pingresp] = raw.packets;
    assert.deepEqual(
      raw.packets.map((p) => p.cmd),
      ['connack', 'suback', 'pingresp'],
    );
    assert.equal(connack.cmd === 'connack' && connack.returnCode, 0);
    assert.deepEqual(suback.cmd === 'suback' && suback.granted, [1]);
    assert.equal(pingresp.cmd, 'pingresp');
    // Still connected: the SUBSCRIBE did not find the connection missing and close it.
    raw.send({ cmd: 'pingreq' });
    await raw.next('pingresp');
    raw.close();
  });
});

describe('the emulated SQS FIFO queue and its event source mapping', () => {
  const region = 'us-east-1';
  type Call = { group: string; bodies: string[] };

  /** A queue whose function records each batch and fails as `fail` says. */
  function queueWith(
    fail: (call: Call, event: SQSEvent) => 'ok' | 'error' | SQSBatchResponse,
    options: { maxReceiveCount?: number } = {},
  ) {
    const calls: Call[] = [];
    const processed: Record<string, string[]> = {};
    const queue = new FifoQueue({
      queueName: 'test.fifo',
      region,
      visibilityTimeoutMs: 20,
      maxReceiveCount: options.maxReceiveCount,
      invoke: async (event) => {
        const call = {
          group: event.Records[0].attributes.MessageGroupId ?? '',
          bodies: event.Records.map((r) => r.body),
        };
        calls.push(call);
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
        const verdict = fail(call, event);
        if (verdict === 'error') throw new Error('function failed');
        const failed = new Set(
          verdict === 'ok' ? [] : verdict.batchItemFailures.map((f) => f.itemIdentifier),
        );
        // A batch may hold several groups; a failure stops its own group only.
        const stopped = new Set<string>();
        for (const record of event.Records) {
          const group = record.attributes.MessageGroupId ?? '';
          if (failed.has(record.messageId)) stopped.add(group);
          if (stopped.has(group)) continue;
          processed[group] ??= [];
          processed[group].push(record.body);
        }
        return verdict === 'ok' ? undefined : verdict;
      },
    });
    const send = (group: string, ...bodies: string[]) => {
      for (const body of bodies) {
        queue.send({
          groupId: group,
          deduplicationId: `${group}-${body}`,
          body,
          attributes: { connectionId: group },
        });
      }
    };
    return { queue, calls, processed, send };
  }

  const range = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

  test('records are real SQSEvent records', async () => {
    let event: SQSEvent | undefined;
    const queue = new FifoQueue({
      queueName: 'shape.fifo',
      region,
      invoke: async (e) => {
        event = e;
      },
    });
    queue.send({
      groupId: 'conn=',
      deduplicationId: 'req-1',
      body: 'EAwABE1RVFQ=',
      attributes: { connectionId: 'conn=' },
    });
    await queue.drain();
    const record = event?.Records[0];
    assert.ok(record);
    assert.equal(record.eventSource, 'aws:sqs');
    assert.equal(record.eventSourceARN, `arn:aws:sqs:${region}:000000000000:shape.fifo`);
    assert.equal(record.awsRegion, region);
    assert.equal(record.body, 'EAwABE1RVFQ=');
    assert.equal(record.md5OfBody, createHash('md5').update('EAwABE1RVFQ=').digest('hex'));
    assert.deepEqual(record.messageAttributes.connectionId, {
      stringValue: 'conn=',
      stringListValues: [],
      binaryListValues: [],
      dataType: 'String',
    });
    assert.equal(record.attributes.MessageGroupId, 'conn=');
    assert.equal(record.attributes.MessageDeduplicationId, 'req-1');
    assert.equal(record.attributes.ApproximateReceiveCount, '1');
    assert.match(record.attributes.SequenceNumber ?? '', /^\d{20,}$/);
    for (const name of ['SentTimestamp', 'ApproximateFirstReceiveTimestamp'] as const) {
      assert.match(record.attributes[name], /^\d{13}$/);
    }
    assert.ok(record.attributes.SenderId);
    assert.ok(record.receiptHandle);
    await queue.stop();
  });

  test('a failing function blocks its group, which is retried in order, while another group goes on', async () => {
    let bDone = false;
    const { queue, calls, processed, send } = queueWith((call) => {
      if (call.group === 'b' && call.bodies.includes('b24')) bDone = true;
      // Group a fails until group b has been handled completely: b must not wait for a.
      return call.group === 'a' && !bDone ? 'error' : 'ok';
    });
    send('a', ...range('a', 25));
    send('b', ...range('b', 25));
    await queue.drain();
    assert.deepEqual(processed.a, range('a', 25));
    assert.deepEqual(processed.b, range('b', 25));
    const aCalls = calls.filter((c) => c.group === 'a');
    assert.ok(aCalls.length > 3, 'group a was retried');
    const firstSuccess = aCalls.findIndex((c) => c.bodies[0] !== 'a0');
    // Until a0's batch succeeded, every batch of a started at a0: nothing behind it overtook it.
    assert.ok(aCalls.slice(0, firstSuccess - 1).every((c) => c.bodies[0] === 'a0'));
    for (const c of calls) {
      assert.ok(c.bodies.length <= 10);
      assert.ok(
        c.bodies.every((b) => b.startsWith(c.group)),
        'a batch holds one group',
      );
    }
    assert.equal(queue.depth, 0);
    await queue.stop();
  });

  test('batchItemFailures: the records named are redelivered, in order; those not named are deleted, as Lambda does', async () => {
    const failedOnce = new Set<string>();
    const { queue, processed, send } = queueWith((call, event) => {
      const index = call.bodies.findIndex((b) => (b === 'c3' || b === 'c7') && !failedOnce.has(b));
      if (index < 0) return 'ok';
      failedOnce.add(call.bodies[index]);
      // A FIFO function names the failed record and every one after it (Powertools' FIFO processor does).
      const rest = event.Records.slice(index).map((r) => ({ itemIdentifier: r.messageId }));
      return { batchItemFailures: rest };
    });
    send('c', ...range('c', 12));
    await queue.drain();
    assert.deepEqual(processed.c, range('c', 12));
    await queue.stop();
  });

  test('after maxReceiveCount a message is dead-lettered and its group moves on; repeated ids are dropped', async () => {
    const { queue, calls, processed, send } = queueWith(
      (call) => (call.bodies[0] === 'poison' ? 'error' : 'ok'),
      { maxReceiveCount: 3 },
    );
    send('d', 'd0');
    await queue.drain();
    send('d', 'poison');
    await queue.drain();
    send('d', 'd1', 'd0'); // d0's deduplication id was used a moment ago: dropped
    await queue.drain();
    assert.deepEqual(processed.d, ['d0', 'd1']);
    assert.deepEqual(
      queue.deadLetters.map((r) => [r.body, r.attributes.ApproximateReceiveCount]),
      [['poison', '3']],
    );
    assert.equal(calls.filter((c) => c.bodies[0] === 'poison').length, 3);
    await queue.stop();
  });
});
