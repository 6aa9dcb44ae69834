import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { FifoQueue } from '../emulator/fifo-queue.js';
import { Meter } from '../emulator/meter.js';
import { processGroupsConcurrently } from '../functions/message/groups.js';

// The emulated frame queue batches as Lambda's SQS pollers do, and bills as SQS does.

/** A queue whose invocations wait until released; records what each batch held. */
function heldQueue(options: {
  pollers?: number;
  answer?: (event: SQSEvent) => SQSBatchResponse | undefined;
}) {
  const meter = new Meter();
  const batches: string[][] = [];
  const releases: Array<() => void> = [];
  const queue = new FifoQueue({
    queueName: 'frames.fifo',
    region: 'us-east-1',
    pollers: options.pollers ?? 1,
    visibilityTimeoutMs: 20,
    meter,
    invoke: async (event) => {
      batches.push(event.Records.map((r) => r.body));
      await new Promise<void>((resolve) => releases.push(resolve));
      return options.answer?.(event);
    },
  });
  const send = (group: string, body: string) =>
    queue.send({ groupId: group, deduplicationId: `${group}-${body}`, body });
  const releaseAll = async () => {
    await new Promise((resolve) => setImmediate(resolve));
    for (const release of releases.splice(0)) release();
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { queue, meter, batches, send, releaseAll };
}

test('a batch holds the messages visible when a poller asks: several groups, each in order, oldest group first', async () => {
  const { queue, meter, batches, send, releaseAll } = heldQueue({});
  send('a', 'a1');
  await new Promise((resolve) => setImmediate(resolve));
  // The one poller is busy with a1: what arrives meanwhile waits for it, then goes in one batch.
  send('b', 'b1');
  send('a', 'a2');
  send('b', 'b2');
  send('c', 'c1');
  await releaseAll();
  await releaseAll();
  await queue.drain();
  assert.deepEqual(batches, [['a1'], ['b1', 'b2', 'a2', 'c1']]);
  const sqs = meter.read().sqs;
  // Billed per call, not per message: 5 sends, 2 receives, 2 batch deletes.
  assert.deepEqual(sqs?.requests, { SendMessage: 5, ReceiveMessage: 2, DeleteMessageBatch: 2 });
  assert.equal(sqs?.billedRequests, 9);
});

test('a batch holds at most ten messages; a group is in one batch at a time', async () => {
  const { queue, batches, send, releaseAll } = heldQueue({ pollers: 3 });
  send('a', 'a0');
  await new Promise((resolve) => setImmediate(resolve));
  for (let i = 1; i <= 12; i++) send('a', `a${i}`);
  await new Promise((resolve) => setImmediate(resolve));
  // Idle pollers find nothing: group a is busy.
  assert.equal(batches.length, 1);
  for (let round = 0; round < 3; round++) await releaseAll();
  await queue.drain();
  assert.deepEqual(
    batches.map((b) => b.length),
    [1, 10, 2],
  );
  assert.deepEqual(
    batches.flat(),
    Array.from({ length: 13 }, (_, i) => `a${i}`),
  );
});

test('a receive is billed per 64 KB of payload', async () => {
  const { queue, meter, send, releaseAll } = heldQueue({});
  const body = 'x'.repeat(40 * 1024);
  send('a', body);
  send('b', body);
  await releaseAll();
  await queue.drain();
  // Two 40 KB sends (1 each), one 80 KB receive (2), one delete (1).
  assert.equal(meter.read().sqs?.billedRequests, 5);
});

test('a partial batch response deletes what it does not name; the named group is retried in order after the visibility timeout', async () => {
  let failOnce = true;
  const { queue, batches, send, releaseAll } = heldQueue({
    answer: (event) => {
      if (!failOnce) return undefined;
      failOnce = false;
      const failed = event.Records.filter((r) => r.attributes.MessageGroupId === 'b');
      return { batchItemFailures: failed.map((r) => ({ itemIdentifier: r.messageId })) };
    },
  });
  send('a', 'a1');
  send('b', 'b1');
  send('b', 'b2');
  send('c', 'c1');
  for (let round = 0; round < 4 && queue.depth > 0; round++) {
    await releaseAll();
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
  await queue.drain();
  assert.deepEqual(batches, [
    ['a1', 'b1', 'b2', 'c1'],
    ['b1', 'b2'],
  ]);
});

function record(group: string, body: string): SQSRecord {
  return {
    messageId: `${group}-${body}`,
    receiptHandle: '',
    body,
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: '0',
      SenderId: '',
      ApproximateFirstReceiveTimestamp: '0',
      MessageGroupId: group,
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: '',
    awsRegion: 'us-east-1',
  };
}

test('the message function runs groups side by side; a failure stops its own group only, the rest of that group reported with it', async () => {
  const handled: string[] = [];
  let releaseA: () => void = () => {};
  const aBlocked = new Promise<void>((resolve) => {
    releaseA = resolve;
  });
  const response = processGroupsConcurrently(
    {
      Records: [
        record('a', 'a1'),
        record('b', 'b1'),
        record('a', 'a2'),
        record('b', 'b2'),
        record('c', 'c1'),
      ],
    },
    async (r) => {
      handled.push(r.body);
      if (r.body === 'a1') await aBlocked;
      if (r.body === 'b1') throw new Error('throttled');
    },
  );
  // b and c went on while a1 waited.
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(handled, ['a1', 'b1', 'c1']);
  releaseA();
  const { batchItemFailures } = await response;
  assert.deepEqual(handled, ['a1', 'b1', 'c1', 'a2']);
  assert.deepEqual(
    batchItemFailures.map((f) => f.itemIdentifier),
    ['b-b1', 'b-b2'],
  );
});
