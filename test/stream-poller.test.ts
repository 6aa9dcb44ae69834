import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import fc from 'fast-check';
import {
  type DynamoDbLocal,
  ensureTables,
  localCredentials,
  localRegion,
  startDynamoDbLocal,
} from '../emulator/dynamodb-local.js';
import { CheckpointFile, ShardProgress } from '../emulator/stream-checkpoint.js';
import { type OnFailureRecord, StreamPoller, type StreamPollerOptions } from '../emulator/stream-poller.js';
import type { StreamEventSourceSettings } from '../shared/event-source.js';
import { messagesTable } from '../shared/tables.js';

let ddb: DynamoDbLocal;
let client: DynamoDBClient;
let doc: DynamoDBDocumentClient;
let streams: DynamoDBStreamsClient;
let tableCount = 0;
const scratch = mkdtempSync(join(tmpdir(), 'nimbus-poller-'));

before(async () => {
  ddb = await startDynamoDbLocal();
  const config = { endpoint: ddb.endpoint, region: localRegion, credentials: localCredentials };
  client = new DynamoDBClient(config);
  doc = DynamoDBDocumentClient.from(client);
  streams = new DynamoDBStreamsClient(config);
});

after(async () => {
  streams?.destroy();
  client?.destroy();
  await ddb?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

const baseSettings: StreamEventSourceSettings = {
  batchSize: 10,
  maxBatchingWindowSeconds: 0,
  retryAttempts: 3,
  maxRecordAgeSeconds: -1,
  bisectBatchOnError: false,
  reportBatchItemFailures: false,
  parallelizationFactor: 1,
};

/** A fresh message table; returns its name and stream ARN. */
async function newTable(): Promise<{ tableName: string; streamArn: string }> {
  const tableName = `messages-${++tableCount}-${Date.now()}`;
  const arns = await ensureTables(client, [{ definition: messagesTable, tableName }]);
  const streamArn = arns.get(tableName);
  assert.ok(streamArn, 'the message table has a stream');
  return { tableName, streamArn };
}

/** Writes `count` messages for `publisher`, one after the other, with ids 000, 001, ... */
async function write(tableName: string, publisher: string, count: number, from = 0): Promise<void> {
  for (let i = from; i < from + count; i++) {
    await doc.send(new PutCommand({ TableName: tableName, Item: { publisher, messageId: id(i) } }));
  }
}

const id = (i: number) => String(i).padStart(3, '0');
const publisherOf = (r: DynamoDBRecord) => r.dynamodb?.Keys?.publisher?.S ?? '?';
const messageOf = (r: DynamoDBRecord) => r.dynamodb?.Keys?.messageId?.S ?? '?';
const seqOf = (r: DynamoDBRecord) => r.dynamodb?.SequenceNumber ?? '?';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Fails the test instead of hanging when a promise never settles (a guard, not a timing assertion). */
async function within<T>(promise: Promise<T>, what: string, ms = 20_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface Harness {
  poller: StreamPoller;
  /** Every invocation's records, in call order. */
  calls: DynamoDBRecord[][];
  batches: Array<{ shard: string; size: number; outcome: string; attempt: number }>;
  failures: Array<{ record: OnFailureRecord; records: DynamoDBRecord[] }>;
}

function harness(
  streamArn: string,
  settings: Partial<StreamEventSourceSettings>,
  invoke: (event: DynamoDBStreamEvent, call: number) => Promise<DynamoDBBatchResponse | undefined>,
  extra: Partial<StreamPollerOptions> = {},
): Harness {
  const calls: DynamoDBRecord[][] = [];
  const batches: Harness['batches'] = [];
  const failures: Harness['failures'] = [];
  const poller = new StreamPoller({
    client: streams,
    streamArn,
    partitionKey: messagesTable.partitionKey.name,
    settings: { ...baseSettings, ...settings },
    pollIntervalMs: 50,
    retryBackoff: { initialMs: 10, maxMs: 50 },
    invoke: async (event) => {
      calls.push(event.Records);
      return invoke(event, calls.length);
    },
    onFailure: (record, records) => failures.push({ record, records }),
    onBatch: (info) => batches.push(info),
    ...extra,
  });
  return { poller, calls, batches, failures };
}

async function run(h: Harness, work: () => Promise<void> = async () => {}): Promise<void> {
  h.poller.start();
  try {
    await work();
    await within(h.poller.drain(), 'drain');
  } finally {
    await within(h.poller.stop(), 'stop');
  }
}

test('one key stays in write order across batches; keys spread over concurrent virtual shards', async () => {
  const { tableName, streamArn } = await newTable();
  const publishers = Array.from({ length: 8 }, (_, i) => `client-${i}`);
  const delivered = new Map<string, string[]>();
  const inFlight = new Set<string>();
  const overlaps: string[] = []; // an assertion thrown inside invoke would only look like a function error
  let concurrent = 0;
  let maxConcurrent = 0;
  const h = harness(streamArn, { batchSize: 3 }, async (event) => {
    const keys = new Set(event.Records.map(publisherOf));
    for (const key of keys) {
      if (inFlight.has(key)) overlaps.push(key);
      inFlight.add(key);
    }
    concurrent++;
    maxConcurrent = Math.max(maxConcurrent, concurrent);
    await sleep(30); // long enough for other shards' batches to overlap
    for (const r of event.Records) {
      const list = delivered.get(publisherOf(r)) ?? [];
      list.push(messageOf(r));
      delivered.set(publisherOf(r), list);
    }
    for (const key of keys) inFlight.delete(key);
    concurrent--;
    return undefined;
  });
  await run(h, () => Promise.all(publishers.map((p) => write(tableName, p, 10))).then(() => {}));

  const expected = Array.from({ length: 10 }, (_, i) => id(i));
  assert.deepEqual(overlaps, [], 'records of one key are never in two invocations at once');
  for (const p of publishers) assert.deepEqual(delivered.get(p), expected, `order of ${p}`);
  assert.ok(new Set(h.batches.map((b) => b.shard)).size >= 2, 'records spread over several virtual shards');
  assert.ok(maxConcurrent >= 2, 'virtual shards are processed concurrently');
  assert.ok(
    h.batches.every((b) => b.size <= 3),
    'no batch exceeds batchSize',
  );
  assert.deepEqual(h.failures, []);
});

test('records reach the function in the shape of a Lambda DynamoDB event', async () => {
  const { tableName, streamArn } = await newTable();
  await doc.send(
    new PutCommand({
      TableName: tableName,
      Item: { publisher: 'p', messageId: '001', payload: new Uint8Array([1, 2, 3]), topic: 'a/b', qos: 1 },
    }),
  );
  const h = harness(streamArn, {}, async () => undefined);
  await run(h);

  assert.equal(h.calls.length, 1);
  const [record] = h.calls[0] ?? [];
  assert.ok(record);
  assert.equal(record.eventName, 'INSERT');
  assert.equal(record.eventVersion, '1.1');
  assert.equal(record.eventSource, 'aws:dynamodb');
  assert.equal(record.eventSourceARN, streamArn);
  assert.equal(record.awsRegion, localRegion);
  assert.equal(typeof record.eventID, 'string');
  assert.equal(typeof record.dynamodb?.ApproximateCreationDateTime, 'number');
  assert.equal(record.dynamodb?.StreamViewType, 'NEW_IMAGE');
  assert.deepEqual(record.dynamodb?.Keys, { publisher: { S: 'p' }, messageId: { S: '001' } });
  assert.deepEqual(
    record.dynamodb?.NewImage?.payload,
    { B: 'AQID' },
    'binary as base64, as in a Lambda event',
  );
  assert.deepEqual(record.dynamodb?.NewImage?.qos, { N: '1' });
  assert.deepEqual(JSON.parse(JSON.stringify(record)), record, 'the event survives JSON unchanged');
});

test('a batch whose invocation fails is delivered again, then the stream moves on in order', async () => {
  const { tableName, streamArn } = await newTable();
  await write(tableName, 'p', 6); // all written before start: the first read sees one batch of six
  const h = harness(streamArn, {}, async (_event, call) => {
    if (call === 1) throw new Error('function crashed');
    return undefined;
  });
  await run(h);

  assert.equal(h.calls.length, 2);
  assert.deepEqual(h.calls[1]?.map(seqOf), h.calls[0]?.map(seqOf), 'the same records are retried');
  assert.deepEqual(
    h.calls[1]?.map(messageOf),
    Array.from({ length: 6 }, (_, i) => id(i)),
  );
  assert.deepEqual(
    h.batches.map((b) => [b.outcome, b.attempt]),
    [
      ['error', 1],
      ['ok', 2],
    ],
  );
  assert.deepEqual(h.failures, []);
});

test('a partial batch response retries from the lowest failed record, not before it', async () => {
  const { tableName, streamArn } = await newTable();
  await write(tableName, 'p', 6);
  const h = harness(streamArn, { reportBatchItemFailures: true }, async (event, call) => {
    if (call > 1) return { batchItemFailures: [] };
    // Items listed out of order: the lowest sequence number (the 3rd record) is the checkpoint.
    const failed = [event.Records[4], event.Records[2]].map((r) => ({ itemIdentifier: r ? seqOf(r) : '' }));
    return { batchItemFailures: failed };
  });
  await run(h);

  assert.equal(h.calls.length, 2);
  assert.deepEqual(h.calls[0]?.map(messageOf), ['000', '001', '002', '003', '004', '005']);
  assert.deepEqual(h.calls[1]?.map(messageOf), ['002', '003', '004', '005']);
  assert.deepEqual(
    h.batches.map((b) => b.outcome),
    ['partial', 'ok'],
  );
});

test('an item identifier that is not in the batch fails the whole batch', async () => {
  const { tableName, streamArn } = await newTable();
  await write(tableName, 'p', 4);
  const h = harness(streamArn, { reportBatchItemFailures: true }, async (_event, call) =>
    call === 1 ? { batchItemFailures: [{ itemIdentifier: 'no-such-sequence-number' }] } : undefined,
  );
  await run(h);

  assert.equal(h.calls.length, 2);
  assert.deepEqual(h.calls[1]?.map(seqOf), h.calls[0]?.map(seqOf));
  assert.deepEqual(
    h.batches.map((b) => b.outcome),
    ['error', 'ok'],
  );
});

test('bisection isolates a poison record: good records are delivered, only the poison one is discarded', async () => {
  const { tableName, streamArn } = await newTable();
  await write(tableName, 'p', 8);
  const poison = '005';
  const delivered: string[] = [];
  const h = harness(
    streamArn,
    { batchSize: 8, bisectBatchOnError: true, retryAttempts: 2 },
    async (event) => {
      if (event.Records.some((r) => messageOf(r) === poison)) throw new Error('cannot parse');
      delivered.push(...event.Records.map(messageOf));
      return undefined;
    },
  );
  await run(h);

  assert.deepEqual(delivered, ['000', '001', '002', '003', '004', '006', '007']);
  assert.equal(h.failures.length, 1);
  const [failure] = h.failures;
  assert.ok(failure);
  assert.deepEqual(failure.records.map(messageOf), [poison]);
  const poisonSeq = seqOf(failure.records[0] as DynamoDBRecord);
  const info = failure.record.DDBStreamBatchInfo;
  assert.equal(failure.record.requestContext.condition, 'RetryAttemptsExhausted');
  assert.equal(info.batchSize, 1);
  assert.equal(info.startSequenceNumber, poisonSeq);
  assert.equal(info.endSequenceNumber, poisonSeq);
  assert.equal(info.streamArn, streamArn);
  assert.match(info.shardId, /^shardId-/);
  // Alone, the poison record is tried once and retried retryAttempts (2) times; splitting uses no retries.
  const alone = h.calls.filter((c) => c.length === 1 && messageOf(c[0] as DynamoDBRecord) === poison);
  assert.equal(alone.length, 3);
  const carrying = h.calls.filter((c) => c.some((r) => messageOf(r) === poison));
  assert.equal(failure.record.requestContext.approximateInvokeCount, carrying.length);
  assert.deepEqual(
    carrying.map((c) => c.length),
    [8, 4, 2, 1, 1, 1],
    'halved down to the poison record alone',
  );
});

test('records older than maxRecordAgeSeconds go to onFailure with RecordAgeExceeded', async () => {
  const { tableName, streamArn } = await newTable();
  await write(tableName, 'p', 2);
  const h = harness(streamArn, { retryAttempts: -1, maxRecordAgeSeconds: 1 }, async () => {
    throw new Error('always failing');
  });
  await run(h);

  assert.ok(h.calls.length >= 1, 'the records were tried before they grew too old');
  assert.deepEqual(
    h.failures.map((f) => [f.record.requestContext.condition, f.records.map(messageOf)]),
    [['RecordAgeExceeded', ['000', '001']]],
  );
});

test('batches never exceed batchSize', async () => {
  const { tableName, streamArn } = await newTable();
  await write(tableName, 'p', 10);
  const h = harness(streamArn, { batchSize: 4 }, async () => undefined);
  await run(h);
  assert.deepEqual(
    h.calls.map((c) => c.length),
    [4, 4, 2],
  );
  assert.deepEqual(
    h.calls.flat().map(messageOf),
    Array.from({ length: 10 }, (_, i) => id(i)),
  );
});

test('a batching window gathers records written apart into full batches', async () => {
  const { tableName, streamArn } = await newTable();
  // The window is far longer than the test: a batch goes out only when it is full.
  const h = harness(streamArn, { batchSize: 3, maxBatchingWindowSeconds: 300 }, async () => undefined);
  await run(h, async () => {
    for (let i = 0; i < 6; i++) {
      await write(tableName, 'p', 1, i);
      await sleep(60); // longer than the poll interval: records arrive in separate reads
    }
  });
  assert.deepEqual(
    h.calls.map((c) => c.map(messageOf)),
    [
      ['000', '001', '002'],
      ['003', '004', '005'],
    ],
  );
});

test('LATEST skips records written before start', async () => {
  const { tableName, streamArn } = await newTable();
  await write(tableName, 'p', 3);
  const h = harness(streamArn, {}, async () => undefined, { startingPosition: 'LATEST' });
  h.poller.start();
  try {
    await within(h.poller.drain(), 'drain');
    await write(tableName, 'p', 2, 3);
    await within(h.poller.drain(), 'drain');
  } finally {
    await within(h.poller.stop(), 'stop');
  }
  assert.deepEqual(h.calls.flat().map(messageOf), ['003', '004']);
});

test('stop waits for the invocation in flight and then invokes no more', async () => {
  const { tableName, streamArn } = await newTable();
  await write(tableName, 'p', 1);
  let entered = () => {};
  const invoked = new Promise<void>((r) => {
    entered = r;
  });
  let release = () => {};
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const h = harness(streamArn, {}, async () => {
    entered();
    await gate;
    return undefined;
  });
  h.poller.start();
  await within(invoked, 'first invocation');
  let stopped = false;
  const stopping = h.poller.stop().then(() => {
    stopped = true;
  });
  await sleep(100);
  assert.equal(stopped, false, 'stop() resolved while an invocation was running');
  release();
  await within(stopping, 'stop');
  await write(tableName, 'p', 2, 1);
  await sleep(200);
  assert.equal(h.calls.length, 1, 'no invocation after stop');
});

test('property: whatever the failures, every record succeeds at least once, first successes in per-key order', async () => {
  type Step = { kind: 'ok' } | { kind: 'throw' } | { kind: 'partial'; at: number };
  const step = fc.oneof(
    fc.constant<Step>({ kind: 'ok' }),
    fc.constant<Step>({ kind: 'throw' }),
    fc.nat(9).map<Step>((at) => ({ kind: 'partial', at })),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        keys: fc.integer({ min: 1, max: 3 }),
        perKey: fc.integer({ min: 1, max: 6 }),
        batchSize: fc.integer({ min: 1, max: 5 }),
        bisect: fc.boolean(),
        steps: fc.array(step, { maxLength: 8 }),
      }),
      async ({ keys, perKey, batchSize, bisect, steps }) => {
        const { tableName, streamArn } = await newTable();
        const publishers = Array.from({ length: keys }, (_, i) => `pub-${i}`);
        await Promise.all(publishers.map((p) => write(tableName, p, perKey)));
        const firstSuccess = new Map<string, string[]>();
        const succeeded = (records: DynamoDBRecord[]) => {
          for (const r of records) {
            const list = firstSuccess.get(publisherOf(r)) ?? [];
            if (!list.includes(messageOf(r))) list.push(messageOf(r));
            firstSuccess.set(publisherOf(r), list);
          }
        };
        const h = harness(
          streamArn,
          { batchSize, bisectBatchOnError: bisect, reportBatchItemFailures: true, retryAttempts: -1 },
          async (event, call) => {
            const s = steps[call - 1] ?? { kind: 'ok' };
            if (s.kind === 'throw') throw new Error('injected failure');
            if (s.kind === 'ok') {
              succeeded(event.Records);
              return undefined;
            }
            const at = s.at % event.Records.length;
            succeeded(event.Records.slice(0, at));
            return { batchItemFailures: [{ itemIdentifier: seqOf(event.Records[at] as DynamoDBRecord) }] };
          },
        );
        await run(h);
        const expected = Array.from({ length: perKey }, (_, i) => id(i));
        for (const p of publishers)
          assert.deepEqual(firstSuccess.get(p), expected, `first successes of ${p}`);
        assert.deepEqual(h.failures, []);
      },
    ),
    { numRuns: 5 },
  );
});

test('with a checkpoint file, a new poller resumes just after the last record processed, not before, not later', async () => {
  const { tableName, streamArn } = await newTable();
  const checkpointFile = join(scratch, `${tableName}.json`);
  await write(tableName, 'p', 3);
  const first = harness(streamArn, { batchSize: 1 }, async () => undefined, { checkpointFile });
  await run(first);
  assert.deepEqual(first.calls.flat().map(messageOf), ['000', '001', '002']);

  // The function fails on 004 until the poller stops: 003 is processed, 004 is not.
  await write(tableName, 'p', 2, 3);
  let failed = () => {};
  const failing = new Promise<void>((resolve) => {
    failed = resolve;
  });
  const second = harness(
    streamArn,
    { batchSize: 1, retryAttempts: -1 },
    async (event) => {
      if (event.Records.some((r) => messageOf(r) === '004')) {
        failed();
        throw new Error('not now');
      }
      return undefined;
    },
    { checkpointFile },
  );
  second.poller.start();
  await within(failing, 'the failing invocation');
  await within(second.poller.stop(), 'stop');
  assert.deepEqual(second.calls.flat().map(messageOf).slice(0, 2), ['003', '004'], 'resumed after 002');

  await write(tableName, 'p', 1, 5);
  const third = harness(streamArn, { batchSize: 1 }, async () => undefined, { checkpointFile });
  await run(third);
  assert.deepEqual(third.calls.flat().map(messageOf), ['004', '005'], 'resumed after 003');
});

test('a shard checkpoint waits for every record read before it, whichever virtual shard finishes first', () => {
  const progress = new ShardProgress(new Map([['shard-a', '10']]));
  const first = progress.read('shard-a', '11');
  const second = progress.read('shard-a', '12');
  const other = progress.read('shard-b', '13');
  assert.equal(progress.processed(second), false);
  assert.deepEqual(Object.fromEntries(progress.checkpoints()), { 'shard-a': '10' });
  assert.equal(progress.processed(other), true);
  assert.equal(progress.processed(first), true);
  assert.deepEqual(Object.fromEntries(progress.checkpoints()), { 'shard-a': '12', 'shard-b': '13' });
  progress.retain(['shard-b']);
  assert.deepEqual(Object.fromEntries(progress.checkpoints()), { 'shard-b': '13' });
});

test('a checkpoint file is replaced whole, and is ignored when it belongs to another stream or is unreadable', async () => {
  const dir = mkdtempSync(join(scratch, 'file-'));
  const path = join(dir, 'checkpoints.json');
  const file = new CheckpointFile(path, 'arn:stream/1');
  assert.deepEqual(await file.load(), new Map(), 'no file: no checkpoints');
  for (let i = 1; i <= 20; i++) file.save(new Map([['shard-a', String(i)]]));
  await file.flush();
  assert.deepEqual(await file.load(), new Map([['shard-a', '20']]), 'the latest save wins');
  assert.deepEqual(readdirSync(dir), ['checkpoints.json'], 'no temporary file left behind');
  assert.deepEqual(
    await new CheckpointFile(path, 'arn:stream/2').load(),
    new Map(),
    'a recreated table has a new stream',
  );
  writeFileSync(path, '{"streamArn": "arn:str');
  assert.deepEqual(await file.load(), new Map());
});
