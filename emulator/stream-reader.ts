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
import { base64 } from './stream-record.js';
import type { StreamTasks } from './stream-tasks.js';

export interface StreamReaderOptions {
  /** A real SDK client pointed at DynamoDB Local. */
  client: DynamoDBStreamsClient;
  streamArn: string;
  /** Runs the reading loops; its `stop()` stops them. */
  tasks: StreamTasks;
  /** Pause between empty reads of a shard. */
  pollIntervalMs: number;
  /** The wait after the n-th consecutive failed call. */
  backoffMs: (failures: number) => number;
  /** Where to start shards open at start-up that have no entry in `resumeAfter`; shards found later start at their beginning. */
  startingPosition: 'TRIM_HORIZON' | 'LATEST';
  /** The last sequence number processed, by shard id: those shards are read from just after it. */
  resumeAfter?: ReadonlyMap<string, string>;
  /** Receives each shard's records, in order. */
  onRecords: (shardId: string, records: _Record[]) => void;
  /** True while too many records wait to be processed: reading pauses until it is false. */
  full: () => boolean;
}

interface ShardReader {
  readonly shardId: string;
  readonly parentShardId: string | undefined;
  state: 'waiting' | 'reading' | 'done';
  position: ShardIteratorType;
  lastSequenceNumber: string | undefined;
  /** The `caughtUp()` tick at which the last read that found nothing started. */
  caughtUpTick: number;
}

const getRecordsLimit = 1000;
const describeIntervalMs = 5_000;

/**
 * Reads every shard of a DynamoDB stream, as a Lambda event source mapping does: shards found by
 * DescribeStream, a child shard only after its parent is read to the end, iterators renewed when
 * they expire, trimmed records skipped.
 *
 * @example
 * const reader = new StreamReader({ client, streamArn, tasks, pollIntervalMs: 250, backoffMs: () => 100,
 *   startingPosition: 'TRIM_HORIZON', onRecords: (shardId, records) => queue(records), full: () => false });
 * await reader.start();
 */
export class StreamReader {
  private readonly readers = new Map<string, ShardReader>();
  private tick = 0;

  constructor(private readonly options: StreamReaderOptions) {}

  /** Finds the stream's shards and starts reading them; resolves once the shards are known. */
  async start(): Promise<void> {
    await this.refreshShards(true);
    const { tasks } = this.options;
    tasks.spawn(
      (async () => {
        while (!tasks.stopping) {
          await tasks.sleep(describeIntervalMs);
          if (!tasks.stopping) await this.refreshShards(false);
        }
      })(),
    );
  }

  /** The ids of the shards the stream has listed so far. */
  shardIds(): string[] {
    return [...this.readers.keys()];
  }

  /** Resolves once every shard has been read to its end by a read that began after this call. */
  async caughtUp(): Promise<void> {
    const tick = ++this.tick;
    await this.refreshShards(false);
    const { tasks } = this.options;
    while (
      !tasks.stopping &&
      ![...this.readers.values()].every((r) => r.state === 'done' || r.caughtUpTick >= tick)
    ) {
      await tasks.changed();
    }
  }

  /** DescribeStream, registering shards not seen before; concurrent calls are harmless. */
  private async refreshShards(initial: boolean): Promise<void> {
    const { client, streamArn, tasks, startingPosition, resumeAfter } = this.options;
    const shards: Shard[] = [];
    for (let attempt = 1; !tasks.stopping; attempt++) {
      try {
        shards.length = 0;
        let exclusiveStartShardId: string | undefined;
        do {
          const out = await client.send(
            new DescribeStreamCommand({ StreamArn: streamArn, ExclusiveStartShardId: exclusiveStartShardId }),
            { abortSignal: tasks.signal },
          );
          shards.push(...(out.StreamDescription?.Shards ?? []));
          exclusiveStartShardId = out.StreamDescription?.LastEvaluatedShardId;
        } while (exclusiveStartShardId);
        break;
      } catch (error) {
        if (tasks.stopping) return;
        console.warn(`stream poller: DescribeStream failed (attempt ${attempt})`, error);
        await tasks.sleep(this.options.backoffMs(attempt));
      }
    }
    for (const shard of shards) {
      const shardId = shard.ShardId;
      if (!shardId || this.readers.has(shardId)) continue;
      const checkpoint = resumeAfter?.get(shardId);
      const closed = shard.SequenceNumberRange?.EndingSequenceNumber !== undefined;
      // LATEST applies to the shards open when the mapping starts: closed ones hold only older records.
      const skip = initial && checkpoint === undefined && startingPosition === 'LATEST' && closed;
      this.readers.set(shardId, {
        shardId,
        parentShardId: shard.ParentShardId,
        state: skip ? 'done' : 'waiting',
        position: initial ? startingPosition : 'TRIM_HORIZON',
        lastSequenceNumber: checkpoint,
        caughtUpTick: 0,
      });
    }
    this.startReadyReaders();
  }

  /** A child shard is read only once its parent is read to the end, so each key's records stay in order. */
  private startReadyReaders(): void {
    const { tasks } = this.options;
    for (const reader of this.readers.values()) {
      if (reader.state !== 'waiting' || tasks.stopping) continue;
      const parent = reader.parentShardId ? this.readers.get(reader.parentShardId) : undefined;
      if (parent && parent.state !== 'done') continue;
      reader.state = 'reading';
      tasks.spawn(this.readShard(reader));
    }
  }

  private async readShard(reader: ShardReader): Promise<void> {
    const { client, streamArn, tasks, pollIntervalMs } = this.options;
    let iterator: string | undefined;
    let failures = 0;
    while (!tasks.stopping) {
      const tick = this.tick;
      try {
        if (!iterator) {
          const out = await client.send(
            new GetShardIteratorCommand({
              StreamArn: streamArn,
              ShardId: reader.shardId,
              ...(reader.lastSequenceNumber
                ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', SequenceNumber: reader.lastSequenceNumber }
                : { ShardIteratorType: reader.position }),
            }),
            { abortSignal: tasks.signal },
          );
          iterator = out.ShardIterator;
          if (!iterator) break;
        }
        if (this.options.full()) {
          await tasks.sleep(pollIntervalMs);
          continue;
        }
        const out = await client.send(
          new GetRecordsCommand({ ShardIterator: iterator, Limit: getRecordsLimit }),
          { abortSignal: tasks.signal },
        );
        failures = 0;
        const records = out.Records ?? [];
        if (records.length > 0) this.options.onRecords(reader.shardId, records);
        const last = records.at(-1)?.dynamodb?.SequenceNumber;
        if (last) reader.lastSequenceNumber = last;
        iterator = out.NextShardIterator;
        if (!iterator) break; // the shard is closed and read to its end
        if (records.length === 0) {
          reader.caughtUpTick = tick;
          tasks.notify();
          await tasks.sleep(pollIntervalMs);
        }
      } catch (error) {
        if (tasks.stopping) return;
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
        await tasks.sleep(this.options.backoffMs(failures));
      }
    }
    if (tasks.stopping) return;
    reader.state = 'done';
    tasks.notify();
    // A closed shard has children: look for them now rather than at the next periodic describe.
    tasks.spawn(this.refreshShards(false));
  }
}

/**
 * The virtual shard of a record: a hash of its partition key value, so one key's records always land
 * on the same one (and stay in order) while different keys spread over all of them.
 *
 * @example
 * const index = virtualShardOf(record, 'publisher', 16); // 0..15, the same for every record of a publisher
 */
export function virtualShardOf(record: _Record, partitionKey: string, count: number): number {
  const keys = record.dynamodb?.Keys ?? {};
  const value = keys[partitionKey];
  const text = value
    ? canonicalKey(value)
    : JSON.stringify(
        Object.keys(keys)
          .sort()
          .map((name) => [name, canonicalKey(keys[name] as StreamAttributeValue)]),
      );
  return fnv1a(text) % count;
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
