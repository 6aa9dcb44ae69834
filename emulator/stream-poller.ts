import type { _Record, DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import type { DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import type { StreamEventSourceSettings } from '../shared/event-source.js';
import { CheckpointFile, ShardProgress, type Ticket } from './stream-checkpoint.js';
import {
  backoffMs,
  type DeliveryAction,
  type DeliveryInput,
  type DeliveryPolicy,
  type DeliveryState,
  enqueue,
  type FailureCondition,
  type InvokeOutcome,
  initialDelivery,
  nextDelivery,
  readResponse,
} from './stream-delivery-policy.js';
import { StreamReader, virtualShardOf } from './stream-reader.js';
import { toLambdaRecord } from './stream-record.js';
import { StreamTasks } from './stream-tasks.js';

/** What Lambda sends to a stream mapping's on-failure destination when it gives up on a batch. */
export interface OnFailureRecord {
  requestContext: {
    condition: FailureCondition;
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

export type BatchOutcome = InvokeOutcome['outcome'];

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
  /** Where to start reading shards that exist at start-up and have no checkpoint; shards found later are read from their beginning. */
  startingPosition?: 'TRIM_HORIZON' | 'LATEST';
  /**
   * A file that keeps each shard's position across restarts, as a mapping's checkpoints do: it is
   * rewritten after each processed batch, and reading resumes just after it.
   */
  checkpointFile?: string;
}

/** A record waiting in, or being processed by, a virtual shard. */
interface Entry {
  readonly record: DynamoDBRecord;
  readonly sequenceNumber: string;
  /** The real stream shard the record was read from, and its place in that shard's checkpoint. */
  readonly ticket: Ticket;
  /** The stream's ApproximateCreationDateTime, epoch milliseconds. */
  readonly approximateCreation: number;
  readonly writtenBy: number;
}

interface VirtualShard {
  readonly name: string;
  state: DeliveryState<Entry>;
  /** Records ever queued here, and records finished (delivered or given up on): `drain()` compares them. */
  enqueued: number;
  settled: number;
}

/** Records buffered in virtual shards before the readers pause, so a slow function does not fill memory. */
const maxBufferedRecords = 10_000;

/**
 * Reads a DynamoDB stream the way a Lambda event source mapping does, and invokes a function with
 * batches of records: per-key order, batching window, retries with backoff, bisection on error,
 * partial batch responses, record age limit, an on-failure destination, and checkpoints.
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
  private readonly options: StreamPollerOptions;
  private readonly policy: DeliveryPolicy;
  private readonly tasks = new StreamTasks('stream poller');
  private readonly shards: VirtualShard[];
  private readonly checkpoints: CheckpointFile | undefined;
  private progress = new ShardProgress();
  private reader: StreamReader | undefined;
  private region: string | undefined;
  private functionArn: string | undefined;
  private ready: Promise<void> | undefined;

  constructor(options: StreamPollerOptions) {
    this.options = options;
    this.policy = {
      settings: options.settings,
      backoff: options.retryBackoff ?? { initialMs: 100, maxMs: 2_000 },
    };
    this.functionArn = options.functionArn;
    this.checkpoints = options.checkpointFile
      ? new CheckpointFile(options.checkpointFile, options.streamArn)
      : undefined;
    const count =
      Math.max(1, options.virtualShards ?? 4) * Math.max(1, options.settings.parallelizationFactor);
    this.shards = Array.from({ length: count }, (_, i) => ({
      name: `virtual-${String(i).padStart(2, '0')}`,
      state: initialDelivery<Entry>(),
      enqueued: 0,
      settled: 0,
    }));
  }

  /** Starts reading the stream and invoking the function; call once. */
  start(): void {
    if (this.ready) throw new Error('StreamPoller already started');
    this.ready = this.initialise();
    for (const shard of this.shards) this.tasks.spawn(this.ready.then(() => this.runShard(shard)));
  }

  /**
   * Stops reading; waits for invocations in flight and for their checkpoints to be written (records
   * not yet delivered stay unprocessed, like a disabled mapping's).
   */
  async stop(): Promise<void> {
    await this.tasks.stop();
    await this.checkpoints?.flush();
  }

  /** Resolves when every record written before this call has been delivered or given to `onFailure`. */
  async drain(): Promise<void> {
    if (!this.ready) throw new Error('StreamPoller not started');
    await this.ready;
    await this.reader?.caughtUp();
    const targets = this.shards.map((s) => s.enqueued);
    while (!this.tasks.stopping && this.shards.some((s, i) => s.settled < (targets[i] ?? 0))) {
      await this.tasks.changed();
    }
  }

  private async initialise(): Promise<void> {
    this.region = await this.options.client.config.region();
    this.functionArn ??= `arn:aws:lambda:${this.region}:000000000000:function:stream-consumer`;
    const resumeAfter = await this.checkpoints?.load();
    this.progress = new ShardProgress(resumeAfter);
    this.reader = new StreamReader({
      client: this.options.client,
      streamArn: this.options.streamArn,
      tasks: this.tasks,
      pollIntervalMs: this.options.pollIntervalMs ?? 250,
      backoffMs: (failures) => backoffMs(this.policy.backoff, failures),
      startingPosition: this.options.startingPosition ?? 'TRIM_HORIZON',
      resumeAfter,
      onRecords: (shardId, records) => this.dispatch(shardId, records),
      full: () => this.shards.reduce((sum, s) => sum + s.state.waiting.length, 0) >= maxBufferedRecords,
    });
    await this.reader.start();
    if (!this.tasks.stopping) this.progress.retain(this.reader.shardIds());
  }

  private dispatch(shardId: string, records: _Record[]): void {
    const now = Date.now();
    const arrived = new Map<VirtualShard, Entry[]>();
    for (const record of records) {
      const shard = this.shards[virtualShardOf(record, this.options.partitionKey, this.shards.length)];
      if (!shard) continue; // unreachable: the index is taken modulo the length
      const sequenceNumber = record.dynamodb?.SequenceNumber ?? '';
      const approximateCreation = record.dynamodb?.ApproximateCreationDateTime?.getTime() ?? now;
      const entries = arrived.get(shard) ?? [];
      entries.push({
        record: toLambdaRecord(record, this.options.streamArn, this.region),
        sequenceNumber,
        ticket: this.progress.read(shardId, sequenceNumber),
        approximateCreation,
        // DynamoDB Local rounds the creation time down to the minute (AWS to the second): measuring age
        // from it would discard records up to a minute early, so take the latest possible write time.
        writtenBy: Math.min(now, approximateCreation + 60_000),
      });
      arrived.set(shard, entries);
    }
    for (const [shard, entries] of arrived) {
      shard.state = enqueue(shard.state, entries);
      shard.enqueued += entries.length;
    }
    this.tasks.notify();
  }

  /** One virtual shard: the delivery policy decides, this carries its actions out. */
  private async runShard(shard: VirtualShard): Promise<void> {
    let input: DeliveryInput = { type: 'tick', now: Date.now() };
    for (;;) {
      const step = nextDelivery(this.policy, shard.state, input);
      shard.state = step.state;
      let result: InvokeOutcome | undefined;
      for (const action of step.actions) {
        if (action.type === 'checkpoint') this.settle(shard, action.records);
        else if (action.type === 'onFailure') this.sendToOnFailure(action);
        // The outcome of the last invocation is recorded above; nothing new starts once stopping.
        else if (this.tasks.stopping) return;
        else if (action.type === 'invoke') result = await this.invoke(shard, action.records, action.attempt);
        else if (action.type === 'wait') await this.tasks.changed(action.ms);
        else await this.tasks.changed();
      }
      input = result ? { type: 'invoked', result, now: Date.now() } : { type: 'tick', now: Date.now() };
    }
  }

  private async invoke(shard: VirtualShard, entries: Entry[], attempt: number): Promise<InvokeOutcome> {
    // Each invocation gets its own copy, as Lambda deserialises the event afresh: a handler that
    // mutates its event must not change what a retry sees.
    const event: DynamoDBStreamEvent = { Records: entries.map((e) => structuredClone(e.record)) };
    let result: InvokeOutcome;
    try {
      const response = await Promise.resolve().then(() => this.options.invoke(event));
      const sequenceNumbers = entries.map((e) => e.sequenceNumber);
      result = this.options.settings.reportBatchItemFailures
        ? readResponse(response, sequenceNumbers)
        : { outcome: 'ok' };
    } catch (error) {
      result = { outcome: 'error', error };
    }
    this.options.onBatch?.({ shard: shard.name, size: entries.length, outcome: result.outcome, attempt });
    return result;
  }

  private sendToOnFailure(action: Extract<DeliveryAction<Entry>, { type: 'onFailure' }>): void {
    const first = action.records[0];
    const last = action.records.at(-1);
    if (!first || !last) return;
    const record: OnFailureRecord = {
      requestContext: {
        condition: action.condition,
        approximateInvokeCount: action.invokeCount,
        functionArn: this.functionArn ?? '',
      },
      DDBStreamBatchInfo: {
        shardId: first.ticket.shardId,
        startSequenceNumber: first.sequenceNumber,
        endSequenceNumber: last.sequenceNumber,
        batchSize: action.records.length,
        streamArn: this.options.streamArn,
        approximateArrivalOfFirstRecord: new Date(first.approximateCreation).toISOString(),
        approximateArrivalOfLastRecord: new Date(last.approximateCreation).toISOString(),
      },
      timestamp: new Date().toISOString(),
    };
    try {
      this.options.onFailure(
        record,
        action.records.map((e) => structuredClone(e.record)),
      );
    } catch (error) {
      // A failing destination must not stall the shard: the records are given up on either way.
      console.warn('stream poller: onFailure threw', error);
    }
  }

  /** Records are done with: count them for `drain()`, and move their shard's checkpoint past them. */
  private settle(shard: VirtualShard, entries: Entry[]): void {
    shard.settled += entries.length;
    let moved = false;
    for (const entry of entries) moved = this.progress.processed(entry.ticket) || moved;
    if (moved) this.checkpoints?.save(this.progress.checkpoints());
    this.tasks.notify();
  }
}
