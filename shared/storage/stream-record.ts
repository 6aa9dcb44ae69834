import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { propertiesField } from '../message-properties.js';
import type { StoredMessage } from '../ports.js';
import { unpackPayload } from './payload-codec.js';

/** Stream images arrive as JSON: binary attributes are base64 strings there, not bytes. */
type StreamImage = Record<string, unknown>;

function restoreBinary(image: StreamImage): Record<string, AttributeValue> {
  return Object.fromEntries(Object.entries(image).map(([name, value]) => [name, restoreValue(value)]));
}

/** One attribute value, binary restored also inside maps and lists (a message's properties). */
function restoreValue(value: unknown): AttributeValue {
  const v = value as { B?: unknown; M?: StreamImage; L?: unknown[] };
  if (typeof v.B === 'string') return { B: Buffer.from(v.B, 'base64') };
  if (v.M && typeof v.M === 'object') return { M: restoreBinary(v.M) };
  if (Array.isArray(v.L)) return { L: v.L.map(restoreValue) };
  return value as AttributeValue;
}

/**
 * The message a stream record's new image holds, with its payload as published, or undefined for
 * an image that is not a message (so a stray item never blocks the stream).
 *
 * @example
 * messageFromStreamImage(record.dynamodb?.NewImage)?.topic; // 'home/kitchen/temp'
 */
export function messageFromStreamImage(image: StreamImage | undefined): StoredMessage | undefined {
  if (!image) return undefined;
  const item = unmarshall(restoreBinary(image));
  if (typeof item.topic !== 'string' || typeof item.publisher !== 'string') return undefined;
  return {
    publisher: item.publisher,
    messageId: String(item.messageId),
    topic: item.topic,
    // The original bytes: the item may hold them compressed (shared/storage/payload-codec.ts).
    payload:
      item.payload instanceof Uint8Array
        ? unpackPayload(item.payload, item.payloadEncoding)
        : new Uint8Array(),
    qos: item.qos,
    retain: Boolean(item.retain),
    publishedAt: Number(item.publishedAt),
    ...propertiesField(item.properties),
  };
}
