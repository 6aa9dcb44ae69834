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
  readonly messages: Message[];
  /** A batch of this group is being handled, or waits out its visibility timeout. */
  busy: boolean;
  retryTimer?: NodeJS.Timeout;
}

const md5 = (text: string) => createHash('md5').update(text).digest('hex');

/**
 * An SQS FIFO queue and the Lambda event source mapping that drains it. Messages of one group are
 * delivered in the order sent, one batch at a time; different groups run concurrently (as many as
 * the function pool allows). A batch holds consecutive messages of one group, up to `batchSize`.
 *
 * A function error hides the whole batch for the visibility timeout and keeps the group blocked
 * until it is retried; a `batchItemFailures` answer keeps the first failed record and everything
 * after it. Every delivery counts a receive for each message in the batch; a message about to be
 * received more than `maxReceiveCount` times goes to the dead-letter list instead, and its group
 * moves on. A deduplication id repeated within five minutes is dropped (scope: message group, as
 * with high-throughput FIFO).
 *
 * Billed as AWS bills the poller: one `SendMessage` per message, one `ReceiveMessage` and one
 * `DeleteMessageBatch` per batch (empty long polls are not counted).
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
  private readonly groups = new Map<string, Group>();
  /** `groupId␀deduplicationId` → when the id may be used again. Insertion order is expiry order. */
  private readonly seen = new Map<string, { expiresAt: number; messageId: string; sequenceNumber: string }>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly idleWaiters: Array<() => void> = [];
  private readonly batchSize: number;
  private readonly maxReceiveCount: number;
  private readonly visibilityTimeoutMs: number;
  private readonly deduplicationWindowMs: number;
  private sequence = 10n ** 19n;
  private queued = 0;
  private stopped = false;

  constructor(private readonly options: FifoQueueOptions) {
    this.arn = `arn:aws:sqs:${options.region}:${options.accountId ?? '000000000000'}:${options.queueName}`;
    this.batchSize = options.batchSize ?? 10;
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
      group = { messages: [], busy: false };
      this.groups.set(input.groupId, group);
    }
    group.messages.push(message);
    this.queued++;
    if (!this.stopped) queueMicrotask(() => this.deliver(message.groupId));
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

  private deliver(groupId: string): void {
    const group = this.groups.get(groupId);
    if (!group || group.busy || this.stopped) return;
    // SQS moves a message that would exceed maxReceiveCount to the dead-letter queue on receive.
    while (group.messages.length > 0 && group.messages[0].receiveCount >= this.maxReceiveCount) {
      const dead = group.messages.shift() as Message;
      const record = this.record(dead, '');
      this.deadLetters.push(record);
      this.options.onDeadLetter?.(record);
      this.removed(1);
    }
    if (group.messages.length === 0) {
      this.groups.delete(groupId);
      return;
    }
    group.busy = true;
    const now = Date.now();
    const batch = group.messages.slice(0, this.batchSize);
    const records = batch.map((message) => {
      message.receiveCount++;
      message.firstReceivedAt ??= now;
      return this.record(message, randomBytes(64).toString('base64'));
    });
    const payload = batch.reduce((bytes, m) => bytes + Buffer.byteLength(m.body), 0);
    this.options.meter?.sqsRequest('ReceiveMessage', payload);
    const task = this.handle(group, batch, { Records: records }).finally(() => this.inFlight.delete(task));
    this.inFlight.add(task);
  }

  private async handle(group: Group, batch: Message[], event: SQSEvent): Promise<void> {
    let done: number;
    try {
      const response = await this.options.invoke(event);
      done = this.succeeded(batch, response ?? undefined);
    } catch {
      done = 0;
    }
    if (done > 0) {
      // The poller deletes what succeeded in one call.
      this.options.meter?.sqsRequest('DeleteMessageBatch', 0);
      group.messages.splice(0, done);
      this.removed(done);
    }
    if (this.stopped) return;
    const groupId = batch[0].groupId;
    if (done === batch.length) {
      group.busy = false;
      this.deliver(groupId);
      return;
    }
    // The rest stays invisible until the visibility timeout passes; the group waits with it.
    group.retryTimer = setTimeout(() => {
      group.retryTimer = undefined;
      group.busy = false;
      this.deliver(groupId);
    }, this.visibilityTimeoutMs);
  }

  /** How many records at the head of the batch succeeded, per Lambda's partial batch response rules. */
  private succeeded(batch: Message[], response: SQSBatchResponse | undefined): number {
    const failures = response?.batchItemFailures ?? [];
    if (failures.length === 0) return batch.length;
    const failed = new Set(failures.map((f) => f.itemIdentifier));
    const first = batch.findIndex((m) => failed.has(m.messageId));
    // An identifier that is not in the batch (or empty) makes Lambda treat the whole batch as failed.
    if (first < 0 || failures.some((f) => !batch.some((m) => m.messageId === f.itemIdentifier))) return 0;
    return first;
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
