/**
 * MQTT 5 application-message properties (5.0 §3.3.2.3) between mqtt-packet's
 * shape, the stored shape (`MessageProperties`) and the PUBLISH sent on:
 * conversion, their encoded size, the payload format check and the message
 * expiry arithmetic. Pure: no I/O, no clock of its own.
 */
import type { IPublishPacket, UserProperties } from 'mqtt-packet';
import type { MessageProperties } from './ports.js';

/** The properties mqtt-packet decodes from a PUBLISH or a CONNECT's will, as far as they matter here. */
export interface DecodedMessageProperties {
  readonly payloadFormatIndicator?: boolean;
  readonly messageExpiryInterval?: number;
  readonly contentType?: string;
  readonly responseTopic?: string;
  readonly correlationData?: Uint8Array;
  readonly userProperties?: UserProperties;
}

type PublishProperties = NonNullable<IPublishPacket['properties']>;

/**
 * The properties of a received PUBLISH or will worth keeping, or undefined
 * when it has none. mqtt-packet decodes user properties into an object keyed
 * by name, so pairs come out grouped by name in the order each name first
 * appeared (names that look like array indexes first): order among the values
 * of one name is kept, and so are duplicates [MQTT-3.3.2-18]; the interleaving
 * of different names is not, as no decoder built on mqtt-packet can keep it.
 *
 * @example
 * messageProperties({ contentType: 'text/plain', userProperties: { a: ['1', '2'] } });
 * // { contentType: 'text/plain', userProperties: [['a', '1'], ['a', '2']] }
 */
export function messageProperties(
  decoded: DecodedMessageProperties | undefined,
): MessageProperties | undefined {
  if (!decoded) return undefined;
  const userProperties = Object.entries(decoded.userProperties ?? {}).flatMap(([name, value]) =>
    (Array.isArray(value) ? value : [value]).map((v): [string, string] => [name, String(v)]),
  );
  const kept: MessageProperties = {
    ...(decoded.payloadFormatIndicator !== undefined
      ? { payloadFormatIndicator: decoded.payloadFormatIndicator }
      : {}),
    ...(decoded.messageExpiryInterval !== undefined
      ? { messageExpiryInterval: decoded.messageExpiryInterval }
      : {}),
    ...(decoded.contentType !== undefined ? { contentType: decoded.contentType } : {}),
    ...(decoded.responseTopic !== undefined ? { responseTopic: decoded.responseTopic } : {}),
    ...(decoded.correlationData !== undefined
      ? { correlationData: new Uint8Array(decoded.correlationData) }
      : {}),
    ...(userProperties.length > 0 ? { userProperties } : {}),
  };
  return Object.keys(kept).length > 0 ? kept : undefined;
}

/**
 * The properties of a PUBLISH sent to an MQTT 5 subscriber: everything the
 * publisher sent, unchanged [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16]
 * [MQTT-3.3.2-17] [MQTT-3.3.2-20], except the expiry,
 * which is what is left of it [MQTT-3.3.2-6]. Undefined when there are none.
 *
 * @example
 * publishProperties({ messageExpiryInterval: 60, contentType: 'a' }, 42);
 * // { contentType: 'a', messageExpiryInterval: 42 }
 */
export function publishProperties(
  properties: MessageProperties | undefined,
  remainingExpiry: number | undefined,
): PublishProperties | undefined {
  if (!properties) return undefined;
  const { userProperties, correlationData, messageExpiryInterval: _, ...plain } = properties;
  const out: PublishProperties = { ...plain };
  if (remainingExpiry !== undefined) out.messageExpiryInterval = remainingExpiry;
  if (correlationData) out.correlationData = Buffer.from(correlationData);
  if (userProperties && userProperties.length > 0) {
    // A null-prototype object, so a user property named `__proto__` is a property like any other.
    const grouped: Record<string, string[]> = Object.create(null);
    for (const [name, value] of userProperties) grouped[name] = [...(grouped[name] ?? []), value];
    out.userProperties = grouped;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Whether a payload the publisher declared UTF-8 (Payload Format Indicator 1)
 * is well-formed UTF-8; a payload without the indicator always passes [MQTT-3.3.2-4].
 *
 * @example
 * payloadFormatValid({ payloadFormatIndicator: true }, Uint8Array.of(0xff)); // false
 */
export function payloadFormatValid(properties: MessageProperties | undefined, payload: Uint8Array): boolean {
  if (!properties?.payloadFormatIndicator) return true;
  try {
    utf8.decode(payload);
    return true;
  } catch {
    return false;
  }
}

/** What a message needs for its expiry: its properties and when it was published. */
export interface Expiring {
  readonly properties?: MessageProperties;
  readonly publishedAt?: number;
}

/**
 * The Message Expiry Interval to forward at `now`: the publisher's interval
 * less the whole seconds the message has waited [MQTT-3.3.2-6], so at least 1
 * while it lives; undefined when the message does not expire, 'expired' once
 * the interval has passed [MQTT-3.3.2-5].
 *
 * @example
 * remainingExpiry({ properties: { messageExpiryInterval: 10 }, publishedAt: 0 }, 2_500); // 8
 * remainingExpiry({ properties: { messageExpiryInterval: 10 }, publishedAt: 0 }, 10_000); // 'expired'
 */
export function remainingExpiry(message: Expiring, now: number): number | undefined | 'expired' {
  const interval = message.properties?.messageExpiryInterval;
  if (interval === undefined) return undefined;
  const waitedMs = Math.max(0, now - (message.publishedAt ?? now));
  if (waitedMs >= interval * 1000) return 'expired';
  return interval - Math.floor(waitedMs / 1000);
}

/**
 * When a message expires, in epoch seconds, for a store's time-to-live
 * attribute; undefined when it does not expire.
 *
 * @example
 * expiresAtSeconds({ properties: { messageExpiryInterval: 60 }, publishedAt: 1_000 }); // 61
 */
export function expiresAtSeconds(message: Expiring): number | undefined {
  const interval = message.properties?.messageExpiryInterval;
  if (interval === undefined || message.publishedAt === undefined) return undefined;
  return Math.ceil(message.publishedAt / 1000) + interval;
}

const stringBytes = (s: string) => 2 + Buffer.byteLength(s);

/**
 * The bytes the properties add to a PUBLISH's property block (5.0 §2.2.2.2),
 * not counting the block's length prefix.
 *
 * @example
 * propertiesSize({ contentType: 'json' }); // 7
 */
export function propertiesSize(properties: MessageProperties | undefined): number {
  if (!properties) return 0;
  let size = 0;
  if (properties.payloadFormatIndicator !== undefined) size += 2;
  if (properties.messageExpiryInterval !== undefined) size += 5;
  if (properties.contentType !== undefined) size += 1 + stringBytes(properties.contentType);
  if (properties.responseTopic !== undefined) size += 1 + stringBytes(properties.responseTopic);
  if (properties.correlationData !== undefined) size += 3 + properties.correlationData.length;
  for (const [name, value] of properties.userProperties ?? [])
    size += 1 + stringBytes(name) + stringBytes(value);
  return size;
}

/**
 * Reads properties back from a stored item (DynamoDB's document shape), or
 * undefined when the item has none or they are not in the stored shape.
 *
 * @example
 * storedProperties({ userProperties: [['a', '1']] }); // { userProperties: [['a', '1']] }
 */
export function storedProperties(value: unknown): MessageProperties | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const item = value as Record<string, unknown>;
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const userProperties = Array.isArray(item.userProperties)
    ? item.userProperties
        .filter((pair): pair is [string, string] => Array.isArray(pair) && pair.length === 2)
        .map(([name, v]): [string, string] => [String(name), String(v)])
    : [];
  const properties: MessageProperties = {
    ...(typeof item.payloadFormatIndicator === 'boolean'
      ? { payloadFormatIndicator: item.payloadFormatIndicator }
      : {}),
    ...(typeof item.messageExpiryInterval === 'number'
      ? { messageExpiryInterval: item.messageExpiryInterval }
      : {}),
    ...(text(item.contentType) !== undefined ? { contentType: text(item.contentType) } : {}),
    ...(text(item.responseTopic) !== undefined ? { responseTopic: text(item.responseTopic) } : {}),
    ...(item.correlationData instanceof Uint8Array ? { correlationData: item.correlationData } : {}),
    ...(userProperties.length > 0 ? { userProperties } : {}),
  };
  return Object.keys(properties).length > 0 ? properties : undefined;
}

/**
 * `{ properties }` read back from a stored item's attribute, or `{}` when it
 * holds none: spread into a record so an absent field stays absent.
 *
 * @example
 * ({ topic, ...propertiesField(item.properties) });
 */
export function propertiesField(value: unknown): { properties?: MessageProperties } {
  const properties = storedProperties(value);
  return properties ? { properties } : {};
}
