import { open, readFile, rename } from 'node:fs/promises';

/** A record read from a shard, until it is processed. */
export interface Ticket {
  readonly shardId: string;
  readonly sequenceNumber: string;
  done: boolean;
}

/**
 * Each shard's checkpoint: the last sequence number up to which every record read has been processed.
 * Virtual shards finish records out of stream order, so a record's checkpoint waits for every
 * record read before it from the same shard.
 *
 * @example
 * const progress = new ShardProgress();
 * const a = progress.read('shard-1', '1');
 * const b = progress.read('shard-1', '2');
 * progress.processed(b); // false: '1' is not processed yet
 * progress.processed(a); // true: the checkpoint of shard-1 is now '2'
 */
export class ShardProgress {
  private readonly shards = new Map<string, { pending: Ticket[]; checkpoint: string | undefined }>();

  /** Starts from checkpoints kept by an earlier run. */
  constructor(initial: ReadonlyMap<string, string> = new Map()) {
    for (const [shardId, checkpoint] of initial) this.shards.set(shardId, { pending: [], checkpoint });
  }

  /** Registers a record read from `shardId`; call in the shard's order. */
  read(shardId: string, sequenceNumber: string): Ticket {
    let shard = this.shards.get(shardId);
    if (!shard) {
      shard = { pending: [], checkpoint: undefined };
      this.shards.set(shardId, shard);
    }
    const ticket: Ticket = { shardId, sequenceNumber, done: false };
    shard.pending.push(ticket);
    return ticket;
  }

  /** Marks a record processed; true when its shard's checkpoint moved. */
  processed(ticket: Ticket): boolean {
    ticket.done = true;
    const shard = this.shards.get(ticket.shardId);
    let moved = false;
    while (shard?.pending[0]?.done) {
      shard.checkpoint = (shard.pending.shift() as Ticket).sequenceNumber;
      moved = true;
    }
    return moved;
  }

  /** The checkpoint of every shard that has one. */
  checkpoints(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [shardId, { checkpoint }] of this.shards)
      if (checkpoint !== undefined) out.set(shardId, checkpoint);
    return out;
  }

  /** Drops the checkpoints of shards the stream no longer lists (trimmed after retention). */
  retain(shardIds: Iterable<string>): void {
    const keep = new Set(shardIds);
    for (const shardId of this.shards.keys()) if (!keep.has(shardId)) this.shards.delete(shardId);
  }
}

/** The file's content: checkpoints are only meaningful for the stream they were taken on. */
interface CheckpointDocument {
  streamArn: string;
  shards: Record<string, string>;
}

/**
 * Keeps a stream's checkpoints in a JSON file across restarts. Saves are written in the background,
 * one at a time (the latest wins), each to a temporary file renamed over the old one: a crash leaves
 * the previous checkpoints or the new ones, never half a file.
 *
 * @example
 * const file = new CheckpointFile('.nimbus/data/stream-checkpoints.json', streamArn);
 * const progress = new ShardProgress(await file.load());
 * file.save(progress.checkpoints());
 * await file.flush();
 */
export class CheckpointFile {
  private next: string | undefined;
  private writing: Promise<void> | undefined;

  constructor(
    private readonly path: string,
    private readonly streamArn: string,
  ) {}

  /** The saved checkpoints; none when the file is missing, unreadable or from another stream (the table was recreated). */
  async load(): Promise<Map<string, string>> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw error;
    }
    try {
      const document = JSON.parse(text) as CheckpointDocument;
      if (document.streamArn !== this.streamArn) return new Map();
      return new Map(Object.entries(document.shards).filter(([, seq]) => typeof seq === 'string'));
    } catch (error) {
      // Reading from the shards' beginning repeats records rather than losing them.
      console.warn(`stream poller: ignoring unreadable checkpoints in ${this.path}`, error);
      return new Map();
    }
  }

  /** Writes `checkpoints` soon; a later save before the write starts replaces it. */
  save(checkpoints: ReadonlyMap<string, string>): void {
    const document: CheckpointDocument = {
      streamArn: this.streamArn,
      shards: Object.fromEntries(checkpoints),
    };
    this.next = `${JSON.stringify(document, null, 2)}\n`;
    this.writing ??= this.writeAll().finally(() => {
      this.writing = undefined;
    });
  }

  /** Resolves once every save so far is on disk. */
  async flush(): Promise<void> {
    await this.writing;
  }

  private async writeAll(): Promise<void> {
    while (this.next !== undefined) {
      const text = this.next;
      this.next = undefined;
      try {
        await this.writeAtomically(text);
      } catch (error) {
        // The next save tries again; meanwhile a restart repeats records rather than losing them.
        console.warn(`stream poller: could not write ${this.path}`, error);
      }
    }
  }

  private async writeAtomically(text: string): Promise<void> {
    const temporary = `${this.path}.${process.pid}.tmp`;
    const file = await open(temporary, 'w');
    try {
      await file.writeFile(text);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, this.path);
  }
}
