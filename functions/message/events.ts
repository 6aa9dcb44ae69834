import type { APIGatewayProxyWebsocketEventV2, SQSEvent, SQSRecord } from 'aws-lambda';
import { connectionIdAttribute, disconnectEventType, eventTypeAttribute } from '../../shared/frame-queue.js';

/** One inbound WebSocket frame of base64 MQTT packets, and the connection it came from. */
export interface InboundFrame {
  readonly connectionId: string;
  readonly frame: string;
  /** The `$disconnect` route's message: the connection has ended. */
  readonly disconnected?: boolean;
  /** The queue message id, the same each time the queue redelivers the frame. */
  readonly frameId?: string;
}

/** The queue's event (the product's `$default` route) or the route's own Lambda event. */
export type MessageEvent = SQSEvent | APIGatewayProxyWebsocketEventV2;

export const isQueueEvent = (event: MessageEvent): event is SQSEvent =>
  Array.isArray((event as Partial<SQSEvent>).Records);

/** `$default` integrated with Lambda: the frame is the body. */
export function frameFromRoute(event: APIGatewayProxyWebsocketEventV2): InboundFrame {
  const body = event.body ?? '';
  return {
    connectionId: event.requestContext.connectionId,
    frame: event.isBase64Encoded ? Buffer.from(body, 'base64').toString() : body,
  };
}

/** `$default` integrated with the FIFO queue: the frame is the body, the connection an attribute. */
export function frameFromRecord(record: SQSRecord): InboundFrame {
  const connectionId =
    record.messageAttributes[connectionIdAttribute]?.stringValue ?? record.attributes.MessageGroupId;
  if (!connectionId) throw new Error(`queue message ${record.messageId} names no connection`);
  if (record.messageAttributes[eventTypeAttribute]?.stringValue === disconnectEventType) {
    return { connectionId, frame: '', disconnected: true };
  }
  return { connectionId, frame: record.body, frameId: record.messageId };
}
