/**
 * The decisions a CONNECT needs, without I/O: whether it is acceptable, the
 * records it writes, which session it gets, the CONNACK and what a resumed
 * session resends. shared/broker/handlers/connect.ts applies them.
 */
import type { IConnackPacket, IConnectPacket, Packet } from 'mqtt-packet';
import { messageProperties, publishProperties, remainingExpiry } from '../message-properties.js';
import type { ApplicationMessage, ConnectionRecord, OutboundMessage, SessionRecord } from '../ports.js';
import type { ProtocolVersion } from '../protocol/frames.js';
import { isValidTopicName } from '../topics.js';
import type { Invocation } from './context.js';
import { trackedReceiveMaximum } from './flow-control.js';
import { keepAliveDue } from './keepalive.js';
import { ConnackReturnCode, ReasonCode } from './reason-codes.js';
import { grantKeepAlive } from './server-keep-alive.js';
import { grantedSessionExpiry, neverExpires } from './session-expiry.js';

/** A CONNECT the broker refuses: what to answer, if anything, before closing the connection. */
export interface ConnectRefusal {
  readonly refused: true;
  /** The version the reply is encoded in. */
  readonly version: ProtocolVersion;
  /** Absent when the protocol has no code for the fault. */
  readonly connack?: IConnackPacket;
  /** Why the connection is closed. */
  readonly reason: string;
}

/** A CONNECT that passed validation: what the connection and its session start with. */
export interface AcceptedConnect {
  readonly refused: false;
  readonly version: ProtocolVersion;
  readonly clientId: string;
  /** The broker chose the client id [MQTT-3.1.3-6]; a 5.0 CONNACK tells the client which. */
  readonly assigned: boolean;
  readonly clean: boolean;
  /** The keep-alive the broker holds the client to: its own, or the Server Keep Alive. */
  readonly keepAliveSeconds: number;
  /** Set when the broker overrides the client's keep-alive: the 5.0 CONNACK says so [MQTT-3.2.2-21]. */
  readonly serverKeepAlive?: number;
  readonly will?: ApplicationMessage;
  /** The 5.0 will's Will Delay Interval, seconds, when it has one [MQTT-3.1.3-9]. */
  readonly willDelaySeconds?: number;
  /** Who the authenticator said the client is; absent without authentication. */
  readonly user?: string;
  /** The MQTT 5 client's Maximum Packet Size, if it set one. */
  readonly maximumPacketSize?: number;
  /** The MQTT 5 client's Receive Maximum, when flow control tracks it (shared/broker/flow-control.ts). */
  readonly receiveMaximum?: number;
  /** The Session Expiry Interval granted, seconds (3.1.1: 0 or for ever by the clean flag). */
  readonly sessionExpirySeconds: number;
  /** The broker granted less than the client asked: a 5.0 CONNACK says how much. */
  readonly sessionExpiryCapped: boolean;
  /** The MQTT 5 client's Topic Alias Maximum, if above 0: aliases the broker may send it. */
  readonly topicAliasMaximum?: number;
}

/** Client ids the broker accepts: any MQTT UTF-8 string up to 65,535 bytes, [MQTT-3.1.3-5] allows more than the minimum. */
function isValidClientId(clientId: string): boolean {
  return !clientId.includes('\u0000') && clientId.isWellFormed() && Buffer.byteLength(clientId) <= 65_535;
}

function refusal(version: ProtocolVersion, v4Code: number, v5Code: number, reason: string): ConnectRefusal {
  // [MQTT-3.2.2-5] a refusing CONNACK is followed by closing the connection.
  const connack: IConnackPacket =
    version === 5
      ? { cmd: 'connack', sessionPresent: false, reasonCode: v5Code }
      : { cmd: 'connack', sessionPresent: false, returnCode: v4Code };
  return { refused: true, version, connack, reason };
}

/**
 * Checks a CONNECT's protocol level and client id, assigning one (from
 * `newId`) when the client sent none. Credentials and the will topic are
 * checked after this, in that order (see `credentialsRefusal`, `willRefusal`).
 *
 * @example
 * validateConnect(packet, randomUUID); // { refused: false, clientId: 'nimbus-…', assigned: true, … }
 */
export function validateConnect(
  packet: IConnectPacket,
  newId: () => string,
  maxSessionExpirySeconds = neverExpires,
  serverKeepAliveSeconds = 0,
): ConnectRefusal | AcceptedConnect {
  const version = packet.protocolVersion;
  if (version !== 4 && version !== 5) {
    // [MQTT-3.1.2-2] level 3 (MQTT 3.1) is not spoken: return code 1 (in 3.1.1), then close.
    return refusal(
      4,
      ConnackReturnCode.UnacceptableProtocolVersion,
      ReasonCode.UnsupportedProtocolVersion,
      'protocol level',
    );
  }
  const clean = packet.clean !== false;
  let clientId = packet.clientId;
  let assigned = false;
  if (clientId.length === 0) {
    // [MQTT-3.1.3-8] a 3.1.1 client without an id must ask for a clean session.
    if (version === 4 && !clean) {
      return refusal(
        version,
        ConnackReturnCode.IdentifierRejected,
        ReasonCode.ClientIdentifierNotValid,
        'empty client id with clean session 0',
      );
    }
    clientId = `nimbus-${newId()}`; // [MQTT-3.1.3-6]
    assigned = true;
  }
  if (!isValidClientId(clientId)) {
    return refusal(
      version,
      ConnackReturnCode.IdentifierRejected,
      ReasonCode.ClientIdentifierNotValid,
      'invalid client id',
    );
  }
  const willProperties = version === 5 ? messageProperties(packet.will?.properties) : undefined;
  const will = packet.will && {
    topic: packet.will.topic,
    payload: Buffer.from(packet.will.payload),
    qos: packet.will.qos ?? 0,
    retain: packet.will.retain ?? false,
    // Kept for the will's subscribers; its expiry counts from when it is published.
    ...(willProperties ? { properties: willProperties } : {}),
  };
  return {
    refused: false,
    version,
    clientId,
    assigned,
    clean,
    ...grantKeepAlive(version, packet.keepalive ?? 0, serverKeepAliveSeconds),
    will,
    ...(will && version === 5 && packet.will?.properties?.willDelayInterval
      ? { willDelaySeconds: packet.will.properties.willDelayInterval }
      : {}),
    sessionExpirySeconds: grantedSessionExpiry(version, packet.properties, clean, maxSessionExpirySeconds),
    sessionExpiryCapped:
      version === 5 && (packet.properties?.sessionExpiryInterval ?? 0) > maxSessionExpirySeconds,
    ...(version === 5 && packet.properties?.maximumPacketSize !== undefined
      ? { maximumPacketSize: packet.properties.maximumPacketSize }
      : {}),
    ...(version === 5 && (packet.properties?.topicAliasMaximum ?? 0) > 0
      ? { topicAliasMaximum: packet.properties?.topicAliasMaximum }
      : {}),
    ...receiveMaximumField(trackedReceiveMaximum(version, packet.properties)),
  };
}

/**
 * The refusal when the authenticator rejects a CONNECT (§3.2.2.3 / MQTT 5 §3.2.2.2):
 * 'not-authorized' is 5 / 0x87, 'bad-credentials' 4 / 0x86.
 */
export function credentialsRefusal(
  version: ProtocolVersion,
  reason: 'bad-credentials' | 'not-authorized',
): ConnectRefusal {
  return reason === 'not-authorized'
    ? refusal(version, ConnackReturnCode.NotAuthorized, ReasonCode.NotAuthorized, 'not authorized')
    : refusal(
        version,
        ConnackReturnCode.BadUserNameOrPassword,
        ReasonCode.BadUserNameOrPassword,
        'bad user name or password',
      );
}

/**
 * The refusal while failed logins of this user name or address are being slowed: 3.1.1 has only
 * "not authorized"; 5.0 says "connection rate exceeded" (0x9F).
 */
export function throttledRefusal(version: ProtocolVersion): ConnectRefusal {
  return refusal(
    version,
    ConnackReturnCode.NotAuthorized,
    ReasonCode.ConnectionRateExceeded,
    'too many failed logins: throttled',
  );
}

/**
 * The refusal of a user's connection past the connections-per-user quota: 5.0 says
 * "quota exceeded" (0x97); 3.1.1 has no such code, and "server unavailable" (3) tells the
 * client to try later, as the quota frees when another of the user's connections ends.
 */
export function userConnectionsRefusal(version: ProtocolVersion, max: number): ConnectRefusal {
  return refusal(
    version,
    ConnackReturnCode.ServerUnavailable,
    ReasonCode.QuotaExceeded,
    `the user already has ${max} connections`,
  );
}

/**
 * Whether `user` may take the client id's stored session: a session belongs to the user who
 * started it, and no other user may connect with its client id (ADR 0008). A session started
 * without authentication has no owner and goes to whoever connects.
 */
export function ownsSession(previous: SessionRecord | undefined, user: string | undefined): boolean {
  return previous?.owner === undefined || previous.owner === user;
}

/** The refusal of a client id whose session belongs to another user: 2 / 0x85. */
export function clientIdTakenRefusal(version: ProtocolVersion): ConnectRefusal {
  return refusal(
    version,
    ConnackReturnCode.IdentifierRejected,
    ReasonCode.ClientIdentifierNotValid,
    "client id belongs to another user's session",
  );
}

/** The refusal of a will whose topic is not a valid topic name; undefined when the will is fine or absent. */
export function willRefusal(connect: AcceptedConnect): ConnectRefusal | undefined {
  if (!connect.will || isValidTopicName(connect.will.topic)) return undefined;
  // 3.1.1 has no CONNACK code for a bad will topic: close without one [MQTT-4.8.0-1]; 5.0 says why.
  const connack: IConnackPacket | undefined =
    connect.version === 5
      ? { cmd: 'connack', sessionPresent: false, reasonCode: ReasonCode.TopicNameInvalid }
      : undefined;
  return { refused: true, version: connect.version, connack, reason: 'invalid will topic' };
}

/**
 * Which session a CONNECT gets: the stored one when a persistent session
 * asks for it and one exists [MQTT-3.1.2-4], else a new one [MQTT-3.1.2-6].
 *
 * @example
 * planSession(undefined, false, () => 'n'); // { sessionId: 'n', resumed: false }
 */
export function planSession(
  previous: SessionRecord | undefined,
  clean: boolean,
  newId: () => string,
): { sessionId: string; resumed: boolean } {
  if (!clean && previous && !previous.cleanSession) return { sessionId: previous.sessionId, resumed: true };
  return { sessionId: newId(), resumed: false };
}

/** The connection record an accepted CONNECT stores, in session `sessionId`. */
export function connectionRecord(
  connect: AcceptedConnect,
  invocation: Pick<Invocation, 'connectionId' | 'frameId'>,
  sessionId: string,
  now: number,
): ConnectionRecord {
  return {
    connectionId: invocation.connectionId,
    clientId: connect.clientId,
    protocolVersion: connect.version,
    sessionId,
    // 5.0's clean flag is Clean Start; the session ends with the connection when its expiry is 0 [MQTT-3.1.2-11].
    cleanSession: connect.sessionExpirySeconds === 0,
    ...(connect.version === 5 ? { sessionExpirySeconds: connect.sessionExpirySeconds } : {}),
    keepAliveSeconds: connect.keepAliveSeconds,
    connectedAt: now,
    lastSeen: now,
    keepAliveDue: keepAliveDue({
      keepAliveSeconds: connect.keepAliveSeconds,
      connectedAt: now,
      lastSeen: now,
    }),
    connectFrameId: invocation.frameId,
    will: connect.will,
    ...(connect.willDelaySeconds === undefined ? {} : { willDelaySeconds: connect.willDelaySeconds }),
    ...(connect.user === undefined ? {} : { user: connect.user }),
    ...(connect.maximumPacketSize === undefined ? {} : { maximumPacketSize: connect.maximumPacketSize }),
    ...receiveMaximumField(connect.receiveMaximum),
  };
}

function receiveMaximumField(receiveMaximum: number | undefined): { receiveMaximum?: number } {
  return receiveMaximum === undefined ? {} : { receiveMaximum };
}

/** The session record that makes `connectionId` the one serving the client id. */
export function sessionRecord(
  connect: AcceptedConnect,
  sessionId: string,
  connectionId: string,
): SessionRecord {
  return {
    clientId: connect.clientId,
    sessionId,
    connectionId,
    protocolVersion: connect.version,
    cleanSession: connect.sessionExpirySeconds === 0,
    ...(connect.version === 5 ? { sessionExpirySeconds: connect.sessionExpirySeconds } : {}),
    ...(connect.user === undefined ? {} : { owner: connect.user }),
    ...(connect.maximumPacketSize === undefined ? {} : { maximumPacketSize: connect.maximumPacketSize }),
    ...(connect.topicAliasMaximum === undefined ? {} : { topicAliasMaximum: connect.topicAliasMaximum }),
    ...receiveMaximumField(connect.receiveMaximum),
  };
}

/**
 * The CONNACK accepting a CONNECT. A 5.0 one states the broker's limits (the
 * Topic Alias Maximum it accepts among them) and, for an assigned client id, which id it is.
 */
export function buildConnack(
  connect: AcceptedConnect,
  resumed: boolean,
  maxPacketSize: number,
  topicAliasMaximum = 0,
  receiveMaximum = 65_535,
): IConnackPacket {
  if (connect.version === 4) {
    // [MQTT-3.2.2-1] session present is 0 for a clean session.
    return { cmd: 'connack', sessionPresent: resumed, returnCode: ConnackReturnCode.Accepted };
  }
  return {
    cmd: 'connack',
    sessionPresent: resumed,
    reasonCode: ReasonCode.Success,
    properties: {
      ...(connect.assigned ? { assignedClientIdentifier: connect.clientId } : {}),
      // The interval the broker will use, when lower than the client asked.
      ...(connect.sessionExpiryCapped ? { sessionExpiryInterval: connect.sessionExpirySeconds } : {}),
      // [MQTT-3.2.2-21] the client uses this instead of the keep-alive it asked for.
      ...(connect.serverKeepAlive === undefined ? {} : { serverKeepAlive: connect.serverKeepAlive }),
      maximumPacketSize: maxPacketSize,
      // [MQTT-3.2.2-17] the aliases a client may use: alias 1..this (0: none).
      topicAliasMaximum,
      // [MQTT-3.3.4-8] QoS 2 PUBLISHes a client may have awaiting PUBREL; 65,535 (the default) goes unsaid.
      ...(receiveMaximum < 65_535 ? { receiveMaximum } : {}),
      retainAvailable: true,
      sharedSubscriptionAvailable: true, // MQTT 5.0 §4.8.2, docs/adr/0020
      wildcardSubscriptionAvailable: true,
      subscriptionIdentifiersAvailable: true,
    },
  };
}

/**
 * What a resumed session resends, in order: PUBREL for QoS 2 messages
 * already received, else the PUBLISH again with DUP when it was sent before
 * [MQTT-4.4.0-1]. A message not yet sent whose expiry interval has passed is
 * left out [MQTT-3.3.2-5] (`expiredOutbound` names it, to delete); one already
 * sent is finished whatever its age, with what is left of its interval (at
 * least 1 second) [MQTT-3.3.2-6]. An MQTT 5 client gets the properties.
 *
 * @example
 * resumeOutbox(await store.outboundMessages('c'), 5, now); // [{ cmd: 'publish', dup: true, … }]
 */
export function resumeOutbox(
  messages: readonly OutboundMessage[],
  version: ProtocolVersion,
  now: number,
): Packet[] {
  const expired = new Set(expiredOutbound(messages, now));
  return messages
    .filter((message) => !expired.has(message))
    .map((message): Packet => {
      if (message.released) return { cmd: 'pubrel', messageId: message.packetId };
      const left = remainingExpiry(message, now);
      const properties =
        version === 5 ? publishProperties(message.properties, left === 'expired' ? 1 : left) : undefined;
      const identifiers = version === 5 ? (message.subscriptionIdentifiers ?? []) : [];
      return {
        cmd: 'publish',
        topic: message.topic,
        payload: Buffer.from(message.payload),
        qos: message.qos,
        retain: message.retain,
        dup: message.sent,
        messageId: message.packetId,
        ...(properties || identifiers.length > 0
          ? {
              properties: {
                ...properties,
                ...(identifiers.length > 0 ? { subscriptionIdentifier: [...identifiers] } : {}),
              },
            }
          : {}),
      };
    });
}

/**
 * The queued messages never sent whose expiry interval has passed: the
 * session's copies to delete instead of sending [MQTT-3.3.2-5].
 *
 * @example
 * expiredOutbound(queued, now).map((m) => m.packetId); // [7]
 */
export function expiredOutbound(messages: readonly OutboundMessage[], now: number): OutboundMessage[] {
  return messages.filter((m) => !m.sent && !m.released && remainingExpiry(m, now) === 'expired');
}
