import type { SQSRecord } from 'aws-lambda';

/** What a frame-queue record carries besides its body; AWS's attribute names. */
export interface FrameRecordOptions {
  /** The message group: the connection whose frame it is. */
  connectionId?: string;
  messageAttributes?: SQSRecord['messageAttributes'];
}

/**
 * An SQS FIFO record of the frame queue as the message function receives it, sent at `sentAt`.
 *
 * @example
 * sqsRecord(frame(publish), Date.now(), { connectionId: 'conn-a' });
 */
export function sqsRecord(body: string, sentAt: number, options: FrameRecordOptions = {}): SQSRecord {
  return {
    messageId: 'm',
    receiptHandle: 'r',
    body,
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: String(sentAt),
      SenderId: 's',
      ApproximateFirstReceiveTimestamp: String(sentAt),
      ...(options.connectionId ? { MessageGroupId: options.connectionId } : {}),
    },
    messageAttributes: options.messageAttributes ?? {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn',
    awsRegion: 'us-east-1',
  };
}
