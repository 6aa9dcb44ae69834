import type { SQSRecord } from 'aws-lambda';
import {
  connectionIdAttribute,
  disconnectEventType,
  eventTypeAttribute,
  sourceIpAttribute,
} from '../../shared/frame-queue.js';

/** One inbound WebSocket frame of base64 MQTT packets, and the connection it came from. */
export interface InboundFrame {
  readonly connectionId: string;
  readonly frame: string;
  /** The `$disconnect` route's message: the connection has ended. */
  readonly disconnected?: boolean;
  /** The queue message id, the same each time the queue redelivers the frame. */
  readonly frameId?: string;
  /** The client's address as API Gateway saw it. */
  readonly sourceIp?: string;
  /** When the queue received the frame (SQS SentTimestamp, ms): the client's sending time. */
  readonly sentAt?: number;
}

/** A frame queue message: the frame is the body, the connection an attribute. */
export function frameFromRecord(record: SQSRecord): InboundFrame {
  const connectionId =
    record.messageAttributes[connectionIdAttribute]?.stringValue ?? record.attributes.MessageGroupId;
  if (!connectionId) throw new Error(`queue message ${record.messageId} names no connection`);
  if (record.messageAttributes[eventTypeAttribute]?.stringValue === disconnectEventType) {
    return { connectionId, frame: '', disconnected: true };
  }
  const sourceIp = record.messageAttributes[sourceIpAttribute]?.stringValue;
  const sentAt = Number(record.attributes.SentTimestamp);
  return {
    connectionId,
    frame: record.body,
    frameId: record.messageId,
    ...(sourceIp ? { sourceIp } : {}),
    ...(Number.isFinite(sentAt) && sentAt > 0 ? { sentAt } : {}),
  };
}
