import {
  type _Record,
  DescribeStreamCommand,
  type DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type Shard,
  type ShardIteratorType,
  type AttributeValue as StreamAttributeValue,
} from '@aws-sdk/client-dynamodb-streams';
import type {
  AttributeValue,
  DynamoDBBatchResponse,
  DynamoDBRecord,
  DynamoDBStreamEvent,
  StreamRecord,
} from 'aws-lambda';
import type { StreamEventSourceSettings } from '../shared/event-source.js';

/** What Lambda sends to a stream mapping's on-failure destination when it gives up on a batch. */
export interface OnFailureRecord {
  requestContext: {
    condition: 'RetryAttemptsExhausted' | 'RecordAgeExceeded';
    approximateInvokeCount: number;
    functionArn: string;
  };
  DDBStreamBatchInfo: {
    shardId: string;
    startSequenceNumber: string;
    endSequenceNumber: string;
    batchSize: number;
    streamArn: string;
    approximateArrivalOfFirstRecord: string;
    approximateArrivalOfLastRecord: string;
  };
  timestamp: string;
}

export type BatchOutcome = 'ok' | 'error' | 'partial';

export interface StreamPollerOptions {
  /** A real SDK client pointed at DynamoDB Local. */
  client: DynamoDBStreamsClient;
  streamArn: string;
  settings: StreamEventSourceSettings;
  /** The table's partition (HASH) key attribute: records are ordered per value of it. */
  partitionKey: string;
  /**
   * Virtual shards: records are spread over these by a hash of their partition key, each processed in
   * order independently, like separate shards of a real table (DynamoDB Local has one shard and would
   * hide cross-key ordering bugs). `settings.parallelizationFactor` multiplies this number: a factor
   * splits each shard further by key hash, which is the same thing as having more shards.
   */
  virtualShards?: number;
  /** Pause between empty reads of a shard; AWS polls each shard about four times a second. */
  pollIntervalMs?: number;
  functionArn?: string;
  /** First wait after a failed invocation; it doubles with each consecutive failure up to `maxMs`. */
  retryBackoff?: { initialMs: number; maxMs: number };
  /** Invokes the function; resolves with its response (maybe `{ batchItemFailures }`) or rejects when the function fails. */
  // biome-ignore lint/suspicious/noConfusingVoidType: a handler that returns nothing is a valid stream handler.
  invoke: (event: DynamoDBStreamEvent) => Promise<DynamoDBBatchResponse | undefined | void>;
  /** Receives each batch the mapping gives up on, with the records themselves (a real destination gets only the metadata). */
  onFailure: (record: OnFailureRecord, records: DynamoDBRecord[]) => void;
  /** Called after each invocation, for observability and tests. */
  onBatch?: (info: { shard: string; size: number; outcome: BatchOutcome; attempt: number }) => void;
  /** Where to start reading shards that exist at start-up; shards found later are read from their beginning. */
  startingPosition?: 'TRIM_HORIZON' | 'LATEST';
}

/** A record waiting in, or being processed by, a virtual shard. */
interface Entry {
  readonly record: DynamoDBRecord;
  readonly sequenceNumber: string;
  /** The real stream shard the record was read from. */
  readonly shardId: string;
  /** The stream's ApproximateCreationDateTime, epoch milliseconds. */
  readonly approximateCreation: number;
  /** The latest the record can have been written, epoch milliseconds: what its age is measured from. */
  readonly writtenBy: number;
  /** Invocations that carried this record so far. */
  invokes: number;
}

/** A batch still to be delivered, and how many retries it has used. */
interface Pending {
  entries: Entry[];
  retries: number;
}

interface VirtualShard {
  readonly name: string;
  readonly queue: Entry[];
  /** Records ever queued here, and records finished (delivered or given up on): `drain()` compares them. */
  enqueued: number;
  settled: number;
}

interface ShardReader {
  readonly shardId: string;
  readonly parentShardId: string | undefined;
  state: 'waiting' | 'reading' | 'done';
  position: ShardIteratorType;
  lastSequenceNumber: string | undefined;
  /** The `drain()` tick at which the last read that found nothing started. */
  caughtUpTick: number;
}

type InvokeResult =
  | { outcome: 'ok' }
  | { outcome: 'error'; error: unknown }
  | { outcome: 'partial'; index: number };

const getRecordsLimit = 1000;
const describeIntervalMs = 5_000;
/** Records buffered in virtual shards before the readers pause, so a slow function does not fill memory. */
const maxBufferedRecords = 10_000;

/**
 * Reads a DynamoDB stream the way a Lambda event source mapping does, and invokes a function with
 * batches of records: per-key order, batching window, retries with backoff, bisection on error,
 * partial batch responses, record age limit and an on-failure destination.
 *
 * @example
 * const poller = new StreamPoller({
 *   client: new DynamoDBStreamsClient({ endpoint, region: localRegion, credentials: localCredentials }),
 *   streamArn,
 *   settings: fanoutEventSource,
 *   partitionKey: messagesTable.partitionKey.name,
 *   invoke: (event) => fanout(event),
 *   onFailure: (record) => console.error('discarded', record.DDBStreamBatchInfo),
 * });
 * poller.start();
 * // ... write items, then in a test: await poller.drain();
 * await poller.stop();
 */
export class StreamPoller {
  private readonly client: DynamoDBStreamsClient;
  private readonly streamArn: string;
  private readonly settings: StreamEventSourceSettings;
  private readonly partitionKey: string;
  private readonly pollIntervalMs: number;
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly startingPosition: 'TRIM_HORIZON' | 'LATEST';
  private readonly options: StreamPollerOptions;
  private readonly shards: VirtualShard[];
  private readonly readers = new Map<string, ShardReader>();
  private readonly tasks = new Set<Promise<void>>();
  private readonly sleepers = new Set<() => void>();
  private readonly abort = new AbortController();
  private waiters: Array<() => void> = [];
  private region: string | undefined;
  private functionArn: string | undefined;
  private ready: Promise<void> | undefined;
  private stopping = false;
  private tick = 0;

  constructor(options: StreamPollerOptions) {
    this.options = options;
    this.client = options.client;
    this.streamArn = options.streamArn;
    this.settings = options.settings;
    this.partitionKey = options.partitionKey;
    this.pollIntervalMs = options.pollIntervalMs ?? 250;
    this.backoff = options.retryBackoff ?? { initialMs: 100, maxMs: 2_000 };
    this.startingPosition = options.startingPosition ?? 'TRIM_HORIZON';
    this.functionArn = options.functionArn;
    const count = Math.max(1, options.virtualShards ?? 4) * Math.max(1, this.settings.parallelizationFactor);
    this.shards = Array.from({ length: count }, (_, i) => ({
      name: `virtual-${String(i).padStart(2, '0')}`,
      queue: [],
      enqueued: 0,
      settled: 0,
    }));
  }

  /** Starts reading the stream and invoking the function; call once. */
  start(): void {
    if (this.ready) throw new Error('StreamPoller already started');
    this.ready = this.initialise();
    this.spawn(this.ready.then(() => this.describeLoop()));
    for (const shard of this.shards) this.spawn(this.ready.then(() => this.runShard(shard)));
  }

  /** Stops reading; waits for invocations in flight (records not yet delivered stay unprocessed, like a disabled mapping). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    for (const wake of this.sleepers) wake();
    this.notify();
    while (this.tasks.size > 0) await Promise.allSettled([...this.tasks]);
  }

  /** Resolves when every record written before this call has been delivered or given to `onFailure`. */
  async drain(): Promise<void> {
    if (!this.ready) throw new Error('StreamPoller not started');
    await this.ready;
    const tick = ++this.tick;
    await this.refreshShards(false);
    // Every shard must have been read to its end by a read that began after this call.
    while (
      !this.stopping &&
      ![...this.readers.values()].every((r) => r.state === 'done' || r.caughtUpTick >= tick)
    ) {
      await this.changed();
    }
    const targets = this.shards.map((s) => s.enqueued);
    while (!this.stopping && this.shards.some((s, i) => s.settled < (targets[i] ?? 0))) await this.changed();
  }

  // --- reading the stream -------------------------------------------------------------------------

  private async initialise(): Promise<void> {
    this.region = await this.client.config.region();
    this.functionArn ??= `arn:aws:lambda:${this.region}:000000000000:function:stream-consumer`;
    await this.refreshShards(true);
  }

  private async describeLoop(): Promise<void> {
    while (!this.stopping) {
      await this.sleep(describeIntervalMs);
      if (!this.stopping) await this.refreshShards(false);
    }
  }

  /** DescribeStream, registering shards not seen before; concurrent calls are harmless. */
  private async refreshShards(initial: boolean): Promise<void> {
    const shards: Shard[] = [];
    for (let attempt = 1; !this.stopping; attempt++) {
      try {
        shards.length = 0;
        let exclusiveStartShardId: string | undefined;
        do {
          const out = await this.client.send(
            new DescribeStreamCommand({
              StreamArn: this.streamArn,
              ExclusiveStartShardId: exclusiveStartShardId,
            }),
            { abortSignal: this.abort.signal },
          );
          shards.push(...(out.StreamDescription?.Shards ?? []));
          exclusiveStartShardId = out.StreamDescription?.LastEvaluatedShardId;
        } while (exclusiveStartShardId);
        break;
      } catch (error) {
        if (this.stopping) return;
        console.warn(`stream poller: DescribeStream failed (attempt ${attempt})`, error);
        await this.sleep(this.backoffMs(attempt));
      }
    }
    for (const shard of shards) {
      const shardId = shard.ShardId;
      if (!shardId || this.readers.has(shardId)) continue;
      const closed = shard.SequenceNumberRange?.EndingSequenceNumber !== undefined;
      // LATEST applies to the shards open when the mapping starts: closed ones hold only older records.
      const skip = initial && this.startingPosition === 'LATEST' && closed;
      this.readers.set(shardId, {
        shardId,
        parentShardId: shard.ParentShardId,
        state: skip ? 'done' : 'waiting',
        position: initial ? this.startingPosition : 'TRIM_HORIZON',
        lastSequenceNumber: undefined,
        caughtUpTick: 0,
      });
    }
    this.startReadyReaders();
  }

  /** A child shard is read only once its parent is read to the end, so each key's records stay in order. */
  private startReadyReaders(): void {
    for (const reader of this.readers.values()) {
      if (reader.state !== 'waiting' || this.stopping) continue;
      const parent = reader.parentShardId ? this.readers.get(reader.parentShardId) : undefined;
      if (parent && parent.state !== 'done') continue;
      reader.state = 'reading';
      this.spawn(this.readShard(reader));
    }
  }

  private async readShard(reader: ShardReader): Promise<void> {
    let iterator: string | undefined;
    let failures = 0;
    while (!this.stopping) {
      const tick = this.tick;
      try {
        if (!iterator) {
          const out = await this.client.send(
            new GetShardIteratorCommand({
              StreamArn: this.streamArn,
              ShardId: reader.shardId,
              ...(reader.lastSequenceNumber
                ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', SequenceNumber: reader.lastSequenceNumber }
                : { ShardIteratorType: reader.position }),
            }),
            { abortSignal: this.abort.signal },
          );
          iterator = out.ShardIterator;
          if (!iterator) break;
        }
        if (this.buffered() >= maxBufferedRecords) {
          await this.sleep(this.pollIntervalMs);
          continue;
        }
        const out = await this.client.send(
          new GetRecordsCommand({ ShardIterator: iterator, Limit: getRecordsLimit }),
          {
            abortSignal: this.abort.signal,
          },
        );
        failures = 0;
        const records = out.Records ?? [];
        for (const record of records) this.dispatch(reader.shardId, record);
        const last = records.at(-1)?.dynamodb?.SequenceNumber;
        if (last) reader.lastSequenceNumber = last;
        iterator = out.NextShardIterator;
        if (!iterator) break; // the shard is closed and read to its end
        if (records.length === 0) {
          reader.caughtUpTick = tick;
          this.notify();
          await this.sleep(this.pollIntervalMs);
        }
      } catch (error) {
        if (this.stopping) return;
        const name = (error as Error).name;
        iterator = undefined;
        if (name === 'ExpiredIteratorException') continue; // re-open after the last record read
        if (name === 'TrimmedDataAccessException') {
          // Records past retention are gone; AWS resumes at the oldest one left.
          reader.lastSequenceNumber = undefined;
          reader.position = 'TRIM_HORIZON';
          continue;
        }
        if (name === 'ResourceNotFoundException') break; // the table or stream was deleted
        failures++;
        console.warn(`stream poller: reading ${reader.shardId} failed (attempt ${failures})`, error);
        await this.sleep(this.backoffMs(failures));
      }
    }
    if (this.stopping) return;
    reader.state = 'done';
    this.notify();
    // A closed shard has children: look for them now rather than at the next periodic describe.
    this.spawn(this.refreshShards(false));
  }

  private dispatch(shardId: string, record: _Record): void {
    const event = toLambdaRecord(record, this.streamArn, this.region);
    const keyValue = record.dynamodb?.Keys?.[this.partitionKey];
    const hashInput = keyValue ? canonicalKey(keyValue) : JSON.stringify(event.dynamodb?.Keys ?? {});
    const shard = this.shards[fnv1a(hashInput) % this.shards.length];
    if (!shard) return; // unreachable: the index is taken modulo the length
    const now = Date.now();
    const approximateCreation = record.dynamodb?.ApproximateCreationDateTime?.getTime() ?? now;
    shard.queue.push({
      record: event,
      sequenceNumber: record.dynamodb?.SequenceNumber ?? '',
      shardId,
      approximateCreation,
      // DynamoDB Local rounds the creation time down to the minute (AWS to the second): measuring age
      // from it would discard records up to a minute early, so take the latest possible write time.
      writtenBy: Math.min(now, approximateCreation + 60_000),
      invokes: 0,
    });
    shard.enqueued++;
    this.notify();
  }

  private buffered(): number {
    return this.shards.reduce((sum, s) => sum + s.queue.length, 0);
  }

  // --- invoking the function ----------------------------------------------------------------------

  /** One virtual shard: one batch in flight at a time, batches in record order. */
  private async runShard(shard: VirtualShard): Promise<void> {
    const { batchSize, maxBatchingWindowSeconds } = this.settings;
    while (!this.stopping) {
      if (shard.queue.length === 0) {
        await this.changed();
        continue;
      }
      if (maxBatchingWindowSeconds > 0 && shard.queue.length < batchSize) {
        let windowOver = false;
        const window = this.sleep(maxBatchingWindowSeconds * 1000).then(() => {
          windowOver = true;
        });
        while (!this.stopping && !windowOver && shard.queue.length < batchSize) {
          await Promise.race([this.changed(), window]);
        }
        if (this.stopping) return;
      }
      await this.deliver(shard, shard.queue.splice(0, batchSize));
    }
  }

  /** Delivers one batch, retrying and bisecting it until each record succeeded or was given up on. */
  private async deliver(shard: VirtualShard, batch: Entry[]): Promise<void> {
    const { retryAttempts, bisectBatchOnError } = this.settings;
    const exhausted = (retries: number) => retryAttempts >= 0 && retries > retryAttempts;
    // Pieces still to deliver, in record order; only the first is ever in flight.
    const pending: Pending[] = [{ entries: batch, retries: 0 }];
    let failures = 0;
    while (pending.length > 0 && !this.stopping) {
      const piece = pending[0] as Pending;
      const expired = this.expiredPrefix(piece.entries);
      if (expired > 0) {
        this.giveUp(shard, 'RecordAgeExceeded', piece.entries.splice(0, expired));
        if (piece.entries.length === 0) pending.shift();
        continue;
      }
      const result = await this.invoke(shard, piece.entries);
      if (result.outcome === 'ok') {
        this.settle(shard, piece.entries.length);
        pending.shift();
        failures = 0;
        continue;
      }
      failures++;
      if (result.outcome === 'partial') {
        // Checkpoint before the lowest failed record; it and every later record are retried.
        this.settle(shard, result.index);
        piece.entries.splice(0, result.index);
        piece.retries++;
      } else if (bisectBatchOnError && piece.entries.length > 1) {
        // Splitting does not use up retries (as in AWS); the halves go first half first.
        const half = Math.ceil(piece.entries.length / 2);
        pending.splice(
          0,
          1,
          { entries: piece.entries.slice(0, half), retries: piece.retries },
          { entries: piece.entries.slice(half), retries: piece.retries },
        );
      } else {
        piece.retries++;
      }
      const head = pending[0] as Pending;
      if (exhausted(head.retries)) {
        this.giveUp(shard, 'RetryAttemptsExhausted', head.entries);
        pending.shift();
      }
      if (pending.length > 0) await this.sleep(this.backoffMs(failures));
    }
  }

  private async invoke(shard: VirtualShard, entries: Entry[]): Promise<InvokeResult> {
    for (const entry of entries) entry.invokes++;
    // Each invocation gets its own copy, as Lambda deserialises the event afresh: a handler that
    // mutates its event must not change what a retry sees.
    const event: DynamoDBStreamEvent = { Records: entries.map((e) => structuredClone(e.record)) };
    let result: InvokeResult;
    try {
      const response = await Promise.resolve().then(() => this.options.invoke(event));
      result = this.settings.reportBatchItemFailures
        ? interpretResponse(response, entries)
        : { outcome: 'ok' };
    } catch (error) {
      result = { outcome: 'error', error };
    }
    this.options.onBatch?.({
      shard: shard.name,
      size: entries.length,
      outcome: result.outcome,
      attempt: maxInvokes(entries),
    });
    return result;
  }

  /** How many leading records are older than `maxRecordAgeSeconds` (negative: no limit, as AWS's -1). */
  private expiredPrefix(entries: Entry[]): number {
    const maxAge = this.settings.maxRecordAgeSeconds;
    if (maxAge < 0) return 0;
    const oldest = Date.now() - maxAge * 1000;
    let count = 0;
    while (count < entries.length && (entries[count] as Entry).writtenBy < oldest) count++;
    return count;
  }

  private giveUp(
    shard: VirtualShard,
    condition: OnFailureRecord['requestContext']['condition'],
    entries: Entry[],
  ): void {
    const first = entries[0];
    const last = entries.at(-1);
    if (!first || !last) return;
    const record: OnFailureRecord = {
      requestContext: {
        condition,
        approximateInvokeCount: maxInvokes(entries),
        functionArn: this.functionArn ?? '',
      },
      DDBStreamBatchInfo: {
        shardId: first.shardId,
        startSequenceNumber: first.sequenceNumber,
        endSequenceNumber: last.sequenceNumber,
        batchSize: entries.length,
        streamArn: this.streamArn,
        approximateArrivalOfFirstRecord: new Date(first.approximateCreation).toISOString(),
        approximateArrivalOfLastRecord: new Date(last.approximateCreation).toISOString(),
      },
      timestamp: new Date().toISOString(),
    };
    try {
      this.options.onFailure(
        record,
        entries.map((e) => structuredClone(e.record)),
      );
    } catch (error) {
      // A failing destination must not stall the shard: the records are given up on either way.
      console.warn('stream poller: onFailure threw', error);
    }
    this.settle(shard, entries.length);
  }

  private settle(shard: VirtualShard, count: number): void {
    shard.settled += count;
    this.notify();
  }

  // --- plumbing -----------------------------------------------------------------------------------

  private backoffMs(failures: number): number {
    return Math.min(this.backoff.initialMs * 2 ** Math.max(0, failures - 1), this.backoff.maxMs);
  }

  private spawn(task: Promise<void>): void {
    const tracked = task.catch((error: unknown) => {
      if (!this.stopping) console.error('stream poller: task failed', error);
    });
    this.tasks.add(tracked);
    void tracked.finally(() => this.tasks.delete(tracked));
  }

  /** Waits up to `ms`; `stop()` cuts every wait short. */
  private sleep(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  /** Resolves at the next change of state (a record read or settled, a shard read to its end, stop). */
  private changed(): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

/**
 * Reads a function response the way Lambda does with ReportBatchItemFailures: no response or an empty
 * list is success; an identifier that is empty, missing or not in the batch fails the whole batch.
 */
function interpretResponse(response: unknown, entries: Entry[]): InvokeResult {
  if (response === null || typeof response !== 'object') return { outcome: 'ok' };
  const failures = (response as { batchItemFailures?: unknown }).batchItemFailures;
  if (failures === undefined || failures === null) return { outcome: 'ok' };
  if (!Array.isArray(failures))
    return { outcome: 'error', error: new Error('batchItemFailures is not a list') };
  if (failures.length === 0) return { outcome: 'ok' };
  let lowest = entries.length;
  for (const failure of failures) {
    const id = (failure as { itemIdentifier?: unknown } | null)?.itemIdentifier;
    const index =
      typeof id === 'string' && id !== '' ? entries.findIndex((e) => e.sequenceNumber === id) : -1;
    if (index < 0)
      return { outcome: 'error', error: new Error(`invalid itemIdentifier ${JSON.stringify(id)}`) };
    lowest = Math.min(lowest, index);
  }
  return { outcome: 'partial', index: lowest };
}

function maxInvokes(entries: Entry[]): number {
  return entries.reduce((max, e) => Math.max(max, e.invokes), 0);
}

/** The SDK's stream record in the shape Lambda hands to a function (JSON: binary as base64). */
export function toLambdaRecord(
  record: _Record,
  streamArn: string,
  region: string | undefined,
): DynamoDBRecord {
  const source = record.dynamodb ?? {};
  const dynamodb: StreamRecord = {};
  if (source.ApproximateCreationDateTime) {
    dynamodb.ApproximateCreationDateTime = source.ApproximateCreationDateTime.getTime() / 1000;
  }
  if (source.Keys) dynamodb.Keys = toLambdaImage(source.Keys);
  if (source.NewImage) dynamodb.NewImage = toLambdaImage(source.NewImage);
  if (source.OldImage) dynamodb.OldImage = toLambdaImage(source.OldImage);
  if (source.SequenceNumber !== undefined) dynamodb.SequenceNumber = source.SequenceNumber;
  if (source.SizeBytes !== undefined) dynamodb.SizeBytes = source.SizeBytes;
  if (source.StreamViewType) dynamodb.StreamViewType = source.StreamViewType;
  const converted: DynamoDBRecord = {
    eventID: record.eventID,
    eventName: record.eventName,
    eventVersion: '1.1',
    eventSource: 'aws:dynamodb',
    // DynamoDB Local reports the region as 'ddblocal'; a real record names the table's region.
    awsRegion: region ?? record.awsRegion,
    dynamodb,
    eventSourceARN: streamArn,
  };
  if (record.userIdentity) converted.userIdentity = { ...record.userIdentity };
  return converted;
}

function toLambdaImage(image: Record<string, StreamAttributeValue>): Record<string, AttributeValue> {
  return Object.fromEntries(Object.entries(image).map(([name, value]) => [name, toLambdaValue(value)]));
}

function toLambdaValue(value: StreamAttributeValue): AttributeValue {
  if (value.S !== undefined) return { S: value.S };
  if (value.N !== undefined) return { N: value.N };
  if (value.B !== undefined) return { B: base64(value.B) };
  if (value.BOOL !== undefined) return { BOOL: value.BOOL };
  if (value.NULL !== undefined) return { NULL: value.NULL };
  if (value.SS !== undefined) return { SS: [...value.SS] };
  if (value.NS !== undefined) return { NS: [...value.NS] };
  if (value.BS !== undefined) return { BS: value.BS.map(base64) };
  if (value.L !== undefined) return { L: value.L.map(toLambdaValue) };
  if (value.M !== undefined) return { M: toLambdaImage(value.M) };
  throw new Error(`unknown attribute value ${JSON.stringify(Object.keys(value))}`);
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** A key value as text, with its type so that `{S:'1'}` and `{N:'1'}` differ. */
function canonicalKey(value: StreamAttributeValue): string {
  if (value.S !== undefined) return `S:${value.S}`;
  if (value.N !== undefined) return `N:${value.N}`;
  if (value.B !== undefined) return `B:${base64(value.B)}`;
  return JSON.stringify(value);
}

/** FNV-1a, 32 bits: stable across processes, so a key always lands on the same virtual shard. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
