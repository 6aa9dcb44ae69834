/**
 * What a decoded packet may not carry, checked before any handler runs or the
 * store is touched: packet identifier and flag rules, MQTT 5 property rules,
 * and the broker's quotas on lengths (shared/limits.ts). A fault names the
 * reason code the client is told (MQTT 5) and, for CONNECT, the 3.1.1 return
 * code if 3.1.1 has one.
 */
import type { IConnackPacket, IConnectPacket, Packet } from 'mqtt-packet';
import type { BrokerLimits } from '../limits.js';
import { messageProperties, payloadFormatValid } from '../message-properties.js';
import type { ProtocolVersion } from '../protocol/frames.js';
import { isValidTopicName } from '../topics.js';
import type { Invocation } from './context.js';
import { protocolViolation } from './handlers/violation.js';
import { ConnackReturnCode, ReasonCode, SubackFailure } from './reason-codes.js';

/** Why a packet is refused. */
export interface PacketFault {
  /** MQTT 5 reason code of the CONNACK or DISCONNECT. */
  readonly code: number;
  /** 3.1.1 CONNACK return code, when 3.1.1 has one for the fault; otherwise a 3.1.1 client is just closed. */
  readonly v4ConnackCode?: number;
  readonly reason: string;
}

// MQTT 5 §3.x.2.3: the properties a client may put in each packet it sends.
const allowedProperties: Readonly<Record<string, ReadonlySet<string>>> = {
  connect: new Set([
    'sessionExpiryInterval',
    'receiveMaximum',
    'maximumPacketSize',
    'topicAliasMaximum',
    'requestResponseInformation',
    'requestProblemInformation',
    'userProperties',
    'authenticationMethod',
    'authenticationData',
  ]),
  will: new Set([
    'willDelayInterval',
    'payloadFormatIndicator',
    'messageExpiryInterval',
    'contentType',
    'responseTopic',
    'correlationData',
    'userProperties',
  ]),
  publish: new Set([
    'payloadFormatIndicator',
    'messageExpiryInterval',
    'topicAlias',
    'responseTopic',
    'correlationData',
    'userProperties',
    'contentType',
  ]), // no Subscription Identifier from a client [MQTT-3.3.4-6]
  puback: new Set(['reasonString', 'userProperties']),
  pubrec: new Set(['reasonString', 'userProperties']),
  pubrel: new Set(['reasonString', 'userProperties']),
  pubcomp: new Set(['reasonString', 'userProperties']),
  subscribe: new Set(['subscriptionIdentifier', 'userProperties']),
  unsubscribe: new Set(['userProperties']),
  disconnect: new Set(['sessionExpiryInterval', 'reasonString', 'userProperties', 'serverReference']),
  auth: new Set(['authenticationMethod', 'authenticationData', 'reasonString', 'userProperties']),
};

const protocolError = (reason: string): PacketFault => ({ code: ReasonCode.ProtocolError, reason });
const bytes = (text: string) => Buffer.byteLength(text, 'utf8');

/**
 * The first property that is misplaced or repeated; mqtt-packet turns a repeated property into an array.
 * A property not defined for the packet is a Malformed Packet (5.0 §2.2.2.2), a repeated one a Protocol Error.
 */
function propertiesFault(
  properties: object | undefined,
  allowed: ReadonlySet<string> | undefined,
  where: string,
): PacketFault | undefined {
  for (const [name, value] of Object.entries(properties ?? {})) {
    // [MQTT-3.3.4-6] a Subscription Identifier is a PUBLISH property only a server may send.
    if (where === 'PUBLISH' && name === 'subscriptionIdentifier')
      return protocolError('a client PUBLISH with a Subscription Identifier');
    if (!allowed?.has(name))
      return { code: ReasonCode.MalformedPacket, reason: `property ${name} is not allowed in ${where}` };
    // Only user properties may repeat, and mqtt-packet keeps those in an object, never an array.
    if (Array.isArray(value)) return protocolError(`property ${name} appears more than once in ${where}`);
  }
  return undefined;
}

/** Whether a string anywhere in a decoded packet (binary data aside) holds U+0000. */
function holdsNull(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (Array.isArray(value)) return value.some(holdsNull);
  if (value && typeof value === 'object' && !(value instanceof Uint8Array))
    return Object.entries(value).some(([key, v]) => key.includes('\u0000') || holdsNull(v));
  return false;
}

// [MQTT-1.5.3-2] (5.0 [MQTT-1.5.4-2]) U+0000 in a string makes the packet malformed; mqtt-packet reads it as is.
const nullInString: PacketFault = { code: ReasonCode.MalformedPacket, reason: 'a string holds U+0000' };

function connectFault(packet: IConnectPacket, limits: BrokerLimits): PacketFault | undefined {
  // The client id is left to its own check, which answers CONNACK 2 (0x85) [MQTT-3.1.3-9].
  if (holdsNull([packet.username, packet.will, packet.properties])) return nullInString;
  if (bytes(packet.clientId) > limits.maxClientIdBytes) {
    // [MQTT-3.1.3-5] the server may restrict client ids; refused before any key is built from it.
    return {
      code: ReasonCode.ClientIdentifierNotValid,
      v4ConnackCode: ConnackReturnCode.IdentifierRejected,
      reason: `client id longer than ${limits.maxClientIdBytes} bytes`,
    };
  }
  if (packet.will && bytes(packet.will.topic) > limits.maxTopicBytes)
    return {
      code: ReasonCode.TopicNameInvalid,
      reason: `will topic longer than ${limits.maxTopicBytes} bytes`,
    };
  if (packet.protocolVersion !== 5) return undefined;
  const properties = packet.properties;
  const fault =
    propertiesFault(properties, allowedProperties.connect, 'CONNECT') ??
    propertiesFault(packet.will?.properties, allowedProperties.will, 'the will');
  if (fault) return fault;
  // 5.0 §3.1.3.2.3: the server may check a will declared UTF-8, and refuse it with 0x99.
  if (
    packet.will &&
    !payloadFormatValid(messageProperties(packet.will.properties), Buffer.from(packet.will.payload))
  )
    return {
      code: ReasonCode.PayloadFormatInvalid,
      reason: 'will payload format indicator is 1 but the will payload is not valid UTF-8',
    };
  // Receive Maximum and Maximum Packet Size of 0 are protocol errors (5.0 §3.1.2.11.3, §3.1.2.11.4).
  if (properties?.receiveMaximum === 0) return protocolError('Receive Maximum 0');
  if (properties?.maximumPacketSize === 0) return protocolError('Maximum Packet Size 0');
  return undefined;
}

/**
 * Why the broker refuses `packet` from a client speaking `version`, or
 * undefined when it may be handled. SUBSCRIBE filters over a quota are not a
 * packet fault: each is refused in the SUBACK (see `filterQuotaCode`).
 *
 * @example
 * packetFault({ cmd: 'subscribe', messageId: 1, subscriptions: [] }, 4, defaultLimits);
 * // { code: 0x82, reason: 'SUBSCRIBE without topic filters' }
 */
export function packetFault(
  packet: Packet,
  version: ProtocolVersion,
  limits: BrokerLimits,
): PacketFault | undefined {
  if (packet.cmd === 'connect') return connectFault(packet, limits);
  if (holdsNull(packet)) return nullInString;
  if (version === 5) {
    const fault = propertiesFault(
      (packet as { properties?: object }).properties,
      allowedProperties[packet.cmd],
      packet.cmd.toUpperCase(),
    );
    if (fault) return fault;
  }
  switch (packet.cmd) {
    case 'publish': {
      // [MQTT-2.3.1-1] QoS 1 and 2 PUBLISH carry a non-zero packet identifier.
      if (packet.qos > 0 && !packet.messageId) return protocolError('PUBLISH with packet identifier 0');
      if (packet.qos === 0 && packet.dup) return protocolError('DUP set on a QoS 0 PUBLISH'); // [MQTT-3.3.1-2]
      if (bytes(packet.topic) > limits.maxTopicBytes)
        return {
          code: ReasonCode.TopicNameInvalid,
          reason: `topic longer than ${limits.maxTopicBytes} bytes`,
        };
      // [MQTT-3.3.2-14] a Response Topic is a topic name: no wildcards.
      const responseTopic = packet.properties?.responseTopic;
      if (responseTopic !== undefined && !isValidTopicName(responseTopic))
        return protocolError('Response Topic with wildcards');
      const alias = packet.properties?.topicAlias;
      // [MQTT-3.3.2-8] an alias of 0, [MQTT-3.3.2-9] one above the CONNACK's maximum, is invalid.
      if (alias !== undefined && (alias === 0 || alias > limits.topicAliasMaximum))
        return {
          code: ReasonCode.TopicAliasInvalid,
          reason: `Topic Alias ${alias} is outside 1..${limits.topicAliasMaximum}, the maximum the CONNACK gave`,
        };
      return undefined;
    }
    case 'subscribe':
      if (!packet.messageId) return protocolError('SUBSCRIBE with packet identifier 0'); // [MQTT-2.3.1-1]
      if (packet.subscriptions.length === 0) return protocolError('SUBSCRIBE without topic filters'); // [MQTT-3.8.3-3]
      if (packet.properties?.subscriptionIdentifier === 0) return protocolError('Subscription Identifier 0');
      // [MQTT-3.8.3-4] No Local on a shared subscription.
      if (packet.subscriptions.some((s) => s.nl && s.topic.startsWith('$share/')))
        return protocolError('No Local set on a shared subscription');
      return undefined;
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      // [MQTT-2.3.1-6] an acknowledgement carries the id of a PUBLISH, never 0 [MQTT-2.3.1-1]: a
      // PUBREL 0 would otherwise be answered with a PUBCOMP 0.
      if (!packet.messageId) return protocolError(`${packet.cmd.toUpperCase()} with packet identifier 0`);
      return undefined;
    case 'unsubscribe':
      if (!packet.messageId) return protocolError('UNSUBSCRIBE with packet identifier 0'); // [MQTT-2.3.1-1]
      if (packet.unsubscriptions.length === 0) return protocolError('UNSUBSCRIBE without topic filters'); // [MQTT-3.10.3-2]
      return undefined;
    default:
      return undefined;
  }
}

/**
 * The SUBACK code refusing the `index`-th filter of a SUBSCRIBE for a quota,
 * or undefined when the quotas allow it: filters past the per-packet quota get
 * Quota exceeded (0x97), filters longer than a key can hold Topic Filter
 * invalid (0x8F); 3.1.1 has only Failure (0x80) [MQTT-3.9.3-2].
 *
 * @example
 * filterQuotaCode('a/b', 100, 5, defaultLimits); // 0x97
 */
export function filterQuotaCode(
  filter: string,
  index: number,
  version: ProtocolVersion,
  limits: BrokerLimits,
): number | undefined {
  if (index >= limits.maxFiltersPerSubscribe) return version === 5 ? ReasonCode.QuotaExceeded : SubackFailure;
  if (bytes(filter) > limits.maxFilterBytes)
    return version === 5 ? ReasonCode.TopicFilterInvalid : SubackFailure;
  return undefined;
}

/**
 * The per-session subscription quota for one SUBSCRIBE: a function giving, for
 * each filter the SUBSCRIBE would store, 0x97 Quota exceeded (3.1.1: 0x80)
 * once the session holds `max` subscriptions, or undefined. Re-subscribing a
 * filter the session already has replaces it and counts nothing.
 *
 * @example
 * const quota = subscriptionQuota(['a'], 1, 5);
 * quota('a'); // undefined
 * quota('b'); // 0x97
 */
export function subscriptionQuota(
  existing: Iterable<string>,
  max: number,
  version: ProtocolVersion,
): (filter: string) => number | undefined {
  const held = new Set(existing);
  return (filter) => {
    if (held.has(filter)) return undefined;
    if (held.size >= max) return version === 5 ? ReasonCode.QuotaExceeded : SubackFailure;
    held.add(filter);
    return undefined;
  };
}

/**
 * Refuses a packet: a CONNECT gets a CONNACK saying why (a 3.1.1 one only
 * when 3.1.1 has a code for it) [MQTT-3.2.2-5]; any other packet ends the
 * connection, an MQTT 5 client first told why in a DISCONNECT.
 */
export function refusePacket(
  invocation: Invocation,
  packet: Packet,
  version: ProtocolVersion,
  fault: PacketFault,
): void {
  if (packet.cmd !== 'connect') {
    protocolViolation(invocation, version, fault.code, fault.reason);
    return;
  }
  invocation.protocolVersion = version;
  const connack: IConnackPacket | undefined =
    version === 5
      ? {
          cmd: 'connack',
          sessionPresent: false,
          reasonCode: fault.code,
          // The broker's own failures (0x83) are not described to clients.
          ...(fault.code === ReasonCode.ImplementationSpecificError
            ? {}
            : { properties: { reasonString: fault.reason } }),
        }
      : fault.v4ConnackCode === undefined
        ? undefined
        : { cmd: 'connack', sessionPresent: false, returnCode: fault.v4ConnackCode };
  if (connack) invocation.outbox.push(connack);
  invocation.closeReason = fault.reason;
}
