import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { Meter } from './meter.js';

export interface FifoSendInput {
  /** `MessageGroupId`: messages of one group are delivered one batch at a time, in order. */
  readonly groupId: string;
  /** `MessageDeduplicationId`: a repeat within the deduplication window is dropped. */
  readonly deduplicationId: string;
  readonly body: string;
  /** String message attributes. */
  readonly attributes?: Readonly<Record<string, string>>;
}

export interface FifoSendResult {
  readonly messageId: string;
  readonly sequenceNumber: string;
  /** True when the deduplication id was seen within the window: nothing was queued. */
  readonly duplicate: boolean;
}

export interface FifoQueueOptions {
  /** e.g. `nimbus-frames.fifo` */
  readonly queueName: string;
  readonly region: string;
  readonly accountId?: string;
  /** Most messages per invocation; SQS FIFO allows 10. @default 10 */
  readonly batchSize?: number;
  /**
   * Batches in flight at once: Lambda's pollers, each receiving, invoking and deleting in turn. Lambda
   * starts an SQS event source with five. @default 5
   */
  readonly pollers?: number;
  /** Receives before a message moves to the dead-letter list. @default 5 */
  readonly maxReceiveCount?: number;
  /** How long a failed batch stays hidden before its group is retried (AWS: the queue's visibility timeout). @default 200 */
  readonly visibilityTimeoutMs?: number;
  /** @default 300_000 (SQS's fixed five minutes) */
  readonly deduplicationWindowMs?: number;
  /** Invokes the function; resolves with its response or rejects when the function fails. */
  // biome-ignore lint/suspicious/noConfusingVoidType: a handler that returns nothing succeeded for every record.
  readonly invoke: (event: SQSEvent) => Promise<SQSBatchResponse | undefined | void>;
  /** A message given up on after `maxReceiveCount` receives, as the dead-letter queue would receive it. */
  readonly onDeadLetter?: (record: SQSRecord) => void;
  readonly meter?: Meter;
}

interface Message {
  readonly messageId: string;
  readonly groupId: string;
  readonly deduplicationId: string;
  readonly body: string;
  readonly attributes: Readonly<Record<string, string>>;
  readonly sequenceNumber: string;
  readonly sentAt: number;
  firstReceivedAt?: number;
  receiveCount: number;
}

interface Group {
  readonly id: string;
  readonly messages: Message[];
  /** A batch holding this group's messages is being handled, or they wait out their visibility timeout. */
  busy: boolean;
  retryTimer?: NodeJS.Timeout;
}

const md5 = (text: string) => createHash('md5').update(text).digest('hex');

/**
 * An SQS FIFO queue and the Lambda event source mapping that drains it. Messages of one group are
 * delivered in the order sent, and a group is in one batch at a time; different groups run
 * concurrently. Like Lambda's pollers, `pollers` loops each receive what is visible the moment they
 * ask (a long poll returns at the first message; FIFO sources allow no batching window), up to
 * `batchSize` messages: as many consecutive messages of the oldest free group as fit, then of the
 * next. So batches fill only when messages arrive faster than the pollers turn round, as on AWS.
 *
 * A function error hides the whole batch for the visibility timeout and keeps its groups blocked
 * until they are retried; a `batchItemFailures` answer deletes every message it does not name, and
 * the named ones wait out the visibility timeout with their groups. Every delivery counts a receive
 * for each message in the batch; a message about to be received more than `maxReceiveCount` times
 * goes to the dead-letter list instead, and its group moves on. A deduplication id repeated within
 * five minutes is dropped (scope: message group, as with high-throughput FIFO).
 *
 * Billed as AWS bills the poller: one `SendMessage` per message, one `ReceiveMessage` and one
 * `DeleteMessageBatch` per batch, each a request per 64 KB of payload (empty long polls are not counted).
 *
 * @example
 * const queue = new FifoQueue({ queueName: 'frames.fifo', region, invoke: (event) => pool.invoke(event) });
 * queue.send({ groupId: connectionId, deduplicationId: requestId, body: frame });
 * await queue.drain();
 */
export class FifoQueue {
  readonly arn: string;
  /** Messages given up on, oldest first. */
  readonly deadLetters: SQSRecord[] = [];
  /**
   * Batches received, the messages in them, and their summed wait from send to that receive: how
   * full batches were and whether the function kept up (a backlog fills batches that would not fill
   * where the function is faster).
   */
  readonly received = { batches: 0, messages: 0, waitMs: 0 };
  private readonly groups = new Map<string, Group>();
  /** `groupId␀deduplicationId` → when the id may be used again. Insertion order is expiry order. */
  private readonly seen = new Map<string, { expiresAt: number; messageId: string; sequenceNumber: string }>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly idleWaiters: Array<() => void> = [];
  private readonly batchSize: number;
  private idlePollers: number;
  private readonly maxReceiveCount: number;
  private readonly visibilityTimeoutMs: number;
  private readonly deduplicationWindowMs: number;
  private sequence = 10n ** 19n;
  private queued = 0;
  private stopped = false;

  constructor(private readonly options: FifoQueueOptions) {
    this.arn = `arn:aws:sqs:${options.region}:${options.accountId ?? '000000000000'}:${options.queueName}`;
    this.batchSize = options.batchSize ?? 10;
    this.idlePollers = options.pollers ?? 5;
    this.maxReceiveCount = options.maxReceiveCount ?? 5;
    this.visibilityTimeoutMs = options.visibilityTimeoutMs ?? 200;
    this.deduplicationWindowMs = options.deduplicationWindowMs ?? 300_000;
  }

  /** Messages sent and not yet deleted or dead-lettered. */
  get depth(): number {
    return this.queued;
  }

  /** `SendMessage`. */
  send(input: FifoSendInput): FifoSendResult {
    this.options.meter?.sqsRequest('SendMessage', Buffer.byteLength(input.body));
    const now = Date.now();
    for (const [key, entry] of this.seen) {
      if (entry.expiresAt > now) break;
      this.seen.delete(key);
    }
    const key = `${input.groupId}\u0000${input.deduplicationId}`;
    const earlier = this.seen.get(key);
    if (earlier)
      return { messageId: earlier.messageId, sequenceNumber: earlier.sequenceNumber, duplicate: true };
    this.sequence += 1n + BigInt(Math.floor(Math.random() * 1000));
    const message: Message = {
      messageId: randomUUID(),
      groupId: input.groupId,
      deduplicationId: input.deduplicationId,
      body: input.body,
      attributes: input.attributes ?? {},
      sequenceNumber: this.sequence.toString(),
      sentAt: now,
      receiveCount: 0,
    };
    this.seen.set(key, {
      expiresAt: now + this.deduplicationWindowMs,
      messageId: message.messageId,
      sequenceNumber: message.sequenceNumber,
    });
    let group = this.groups.get(input.groupId);
    if (!group) {
      group = { id: input.groupId, messages: [], busy: false };
      this.groups.set(input.groupId, group);
    }
    group.messages.push(message);
    this.queued++;
    if (!this.stopped) queueMicrotask(() => this.poll());
    return { messageId: message.messageId, sequenceNumber: message.sequenceNumber, duplicate: false };
  }

  /** Waits until every message sent so far has been deleted or dead-lettered. */
  async drain(): Promise<void> {
    while (this.queued > 0 && !this.stopped)
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops delivering; waits for the batches being handled. Messages left are dropped. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const group of this.groups.values()) clearTimeout(group.retryTimer);
    await Promise.allSettled([...this.inFlight]);
    for (const wake of this.idleWaiters.splice(0)) wake();
  }

  /** Idle pollers receive what is visible, one batch each, until no poller or no message is free. */
  private poll(): void {
    while (this.idlePollers > 0 && !this.stopped) {
      const batch = this.receive();
      if (batch.length === 0) return;
      this.idlePollers--;
      const now = Date.now();
      this.received.batches++;
      this.received.messages += batch.length;
      const records = batch.map((message) => {
        this.received.waitMs += now - message.sentAt;
        message.receiveCount++;
        message.firstReceivedAt ??= now;
        return this.record(message, randomBytes(64).toString('base64'));
      });
      const payload = batch.reduce((bytes, m) => bytes + Buffer.byteLength(m.body), 0);
      this.options.meter?.sqsRequest('ReceiveMessage', payload);
      const task = this.handle(batch, { Records: records }).finally(() => this.inFlight.delete(task));
      this.inFlight.add(task);
    }
  }

  /**
   * One `ReceiveMessage`: up to `batchSize` visible messages, as many of the oldest free group as
   * fit, then of the next, each group's in order; their groups are busy until the batch is done.
   */
  private receive(): Message[] {
    const free = [...this.groups.values()]
      .filter((group) => !group.busy && this.deadLetterHeads(group) > 0)
      .sort((a, b) => (BigInt(a.messages[0].sequenceNumber) < BigInt(b.messages[0].sequenceNumber) ? -1 : 1));
    const batch: Message[] = [];
    for (const group of free) {
      if (batch.length === this.batchSize) break;
      group.busy = true;
      batch.push(...group.messages.slice(0, this.batchSize - batch.length));
    }
    return batch;
  }

  /**
   * Moves the group's head messages that were received `maxReceiveCount` times to the dead-letter
   * list, as SQS does on receive; drops an emptied group. Returns how many messages are left.
   */
  private deadLetterHeads(group: Group): number {
    while (group.messages.length > 0 && group.messages[0].receiveCount >= this.maxReceiveCount) {
      const dead = group.messages.shift() as Message;
      const record = this.record(dead, '');
      this.deadLetters.push(record);
      this.options.onDeadLetter?.(record);
      this.removed(1);
    }
    if (group.messages.length === 0) this.groups.delete(group.id);
    return group.messages.length;
  }

  private async handle(batch: Message[], event: SQSEvent): Promise<void> {
    let failed: Set<Message>;
    try {
      const response = await this.options.invoke(event);
      failed = this.failed(batch, response ?? undefined);
    } catch {
      failed = new Set(batch);
    }
    const deleted = batch.filter((message) => !failed.has(message));
    if (deleted.length > 0) {
      // The poller deletes what succeeded in one call.
      this.options.meter?.sqsRequest('DeleteMessageBatch', 0);
      for (const message of deleted) {
        const group = this.groups.get(message.groupId);
        const at = group?.messages.indexOf(message) ?? -1;
        if (group && at >= 0) group.messages.splice(at, 1);
      }
      this.removed(deleted.length);
    }
    this.idlePollers++;
    if (this.stopped) return;
    for (const groupId of new Set(batch.map((m) => m.groupId))) {
      const group = this.groups.get(groupId);
      if (!group) continue;
      if (!batch.some((m) => m.groupId === groupId && failed.has(m))) {
        group.busy = false;
        if (group.messages.length === 0) this.groups.delete(groupId);
        continue;
      }
      // Failed messages stay invisible until the visibility timeout passes; their group waits with them.
      group.retryTimer = setTimeout(() => {
        group.retryTimer = undefined;
        group.busy = false;
        this.poll();
      }, this.visibilityTimeoutMs);
    }
    this.poll();
  }

  /** The batch's messages Lambda leaves on the queue, per its partial batch response rules. */
  private failed(batch: Message[], response: SQSBatchResponse | undefined): Set<Message> {
    const failures = response?.batchItemFailures ?? [];
    const named = new Set(failures.map((f) => f.itemIdentifier));
    // An identifier that is not in the batch (or empty) makes Lambda treat the whole batch as failed.
    if (failures.some((f) => !batch.some((m) => m.messageId === f.itemIdentifier))) return new Set(batch);
    return new Set(batch.filter((m) => named.has(m.messageId)));
  }

  private removed(count: number): void {
    this.queued -= count;
    if (this.queued === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  private record(message: Message, receiptHandle: string): SQSRecord {
    return {
      messageId: message.messageId,
      receiptHandle,
      body: message.body,
      attributes: {
        ApproximateReceiveCount: String(message.receiveCount),
        SentTimestamp: String(message.sentAt),
        SequenceNumber: message.sequenceNumber,
        MessageGroupId: message.groupId,
        SenderId: 'AROAEMULATEDAPIGATEWAY:nimbus-apigateway',
        MessageDeduplicationId: message.deduplicationId,
        ApproximateFirstReceiveTimestamp: String(message.firstReceivedAt ?? message.sentAt),
      },
      messageAttributes: Object.fromEntries(
        Object.entries(message.attributes).map(([name, value]) => [
          name,
          { stringValue: value, stringListValues: [], binaryListValues: [], dataType: 'String' },
        ]),
      ),
      md5OfBody: md5(message.body),
      eventSource: 'aws:sqs',
      eventSourceARN: this.arn,
      awsRegion: this.options.region,
    };
  }
}
