/**
 * The records the broker's ports speak in: connections, sessions,
 * subscriptions, messages and the bookkeeping around them, as the stores keep
 * them (shared/ports.ts holds the ports themselves).
 */
import type { ProtocolVersion } from './protocol/frames.js';

export type QoS = 0 | 1 | 2;

/** A live WebSocket connection that has completed CONNECT. */
export interface ConnectionRecord {
  readonly connectionId: string;
  readonly clientId: string;
  readonly protocolVersion: ProtocolVersion;
  /** The session generation this connection belongs to. */
  readonly sessionId: string;
  readonly cleanSession: boolean;
  readonly keepAliveSeconds: number;
  readonly connectedAt: number;
  /** Last time a packet arrived, give or take half the keep-alive (it is written sparingly). */
  readonly lastSeen: number;
  /**
   * When the keep-alive checker should look at the connection again (epoch ms),
   * kept in step with `lastSeen`; absent for keep-alive 0. Indexed: see `connectionsDue`.
   */
  readonly keepAliveDue?: number;
  /** Published if the connection ends without DISCONNECT [MQTT-3.1.2-8]. */
  readonly will?: ApplicationMessage;
  /** MQTT 5 Will Delay Interval (seconds): the will waits this long after the connection ends [MQTT-3.1.3-9]. */
  readonly willDelaySeconds?: number;
  /** The queue's id of the frame that carried CONNECT, to recognise it redelivered. */
  readonly connectFrameId?: string;
  /** Who the authenticator said the client is; absent when it connected anonymously. */
  readonly user?: string;
  /** The MQTT 5 client's Maximum Packet Size: nothing larger is sent to it [MQTT-3.1.2-24]. */
  readonly maximumPacketSize?: number;
  /** The MQTT 5 client's Receive Maximum, when flow control tracks it (shared/broker/flow-control.ts). */
  readonly receiveMaximum?: number;
  /** The publish rate bucket, once the client has used half its burst (shared/broker/publish-rate.ts). */
  readonly publishBucket?: { readonly tokens: number; readonly at: number };
  /**
   * How long the session outlives the connection, in seconds (0xFFFFFFFF: for ever) [MQTT-3.1.2-11];
   * a DISCONNECT may change it. `cleanSession` is true exactly when it is 0. Absent: the 3.1.1 rule.
   */
  readonly sessionExpirySeconds?: number;
  /** The CONNECT's MQTT 5 Authentication Method: re-authentication must name it [MQTT-4.12.1-1]. */
  readonly authenticationMethod?: string;
  /**
   * The connection made a Shared Subscription: even a clean session keeps its QoS 1 deliveries
   * through one until PUBACK, and its end hands the unacknowledged ones on (MQTT 5.0 §4.8.2).
   */
  readonly sharedSubscriber?: boolean;
  /**
   * The Topic Aliases the client set on this connection, alias (as a decimal string) → topic name
   * [MQTT-3.3.2-12]; they end with the connection [MQTT-3.3.2-7] (shared/broker/topic-aliases.ts).
   */
  readonly inboundTopicAliases?: Readonly<Record<string, string>>;
}

/**
 * The Topic Aliases the broker set on one connection of a session, alias (as a decimal string:
 * 1, 2, … without gaps) → topic name. `confirmed`: a PUBLISH carrying topic and alias was posted to
 * the connection and the post returned, so a later PUBLISH may carry the alias alone
 * (docs/adr/0019-topic-aliases.md).
 */
export interface OutboundTopicAliases {
  readonly connectionId: string;
  readonly aliases: Readonly<Record<string, { readonly topic: string; readonly confirmed: boolean }>>;
}

/** Where a client id's session stands: which connection serves it now. */
export interface SessionRecord {
  readonly clientId: string;
  /** Changes whenever a new session starts, so leftovers of an older one are recognisable. */
  readonly sessionId: string;
  /** Absent while the client is offline. */
  readonly connectionId?: string;
  readonly protocolVersion: ProtocolVersion;
  readonly cleanSession: boolean;
  /** The user who started the session; only that user may connect with the client id (ADR 0008). */
  readonly owner?: string;
  /** The connected MQTT 5 client's Maximum Packet Size, for the fan-out [MQTT-3.1.2-24]. */
  readonly maximumPacketSize?: number;
  /** The connected MQTT 5 client's Receive Maximum, when flow control tracks it, for the fan-out [MQTT-3.3.4-9]. */
  readonly receiveMaximum?: number;
  /** The Session Expiry Interval the session started with (seconds; absent for 3.1.1). */
  readonly sessionExpirySeconds?: number;
  /** While offline with a finite expiry interval: when the session ends (epoch ms) [MQTT-3.1.2-23]. */
  readonly sessionExpiresAt?: number;
  /** The connected MQTT 5 client's Topic Alias Maximum: the fan-out uses no more aliases [MQTT-3.1.2-26]. */
  readonly topicAliasMaximum?: number;
  /** The aliases the broker set on a connection; ignored unless it is `connectionId`'s [MQTT-3.3.2-7]. */
  readonly outboundTopicAliases?: OutboundTopicAliases;
}

export interface SubscriptionRecord {
  readonly clientId: string;
  readonly sessionId: string;
  readonly filter: string;
  readonly qos: QoS;
  /** When the session first subscribed with this filter: earlier messages are not forwarded to it. */
  readonly subscribedAt?: number;
  /** MQTT 5 No Local: the client's own messages are not forwarded to it [MQTT-3.8.3-3]. */
  readonly noLocal?: boolean;
  /** MQTT 5 Retain As Published: forwarded messages keep their RETAIN flag [MQTT-3.3.1-12]. */
  readonly retainAsPublished?: boolean;
  /** MQTT 5 Subscription Identifier (1..268435455), sent with each message it matches [MQTT-3.3.4-3]. */
  readonly subscriptionIdentifier?: number;
}

/**
 * The MQTT 5 properties an application message carries from publisher to
 * subscribers (5.0 §3.3.2.3), in a plain shape every store keeps as it is.
 */
export interface MessageProperties {
  readonly payloadFormatIndicator?: boolean;
  /** Seconds the message lives after publication; absent: it does not expire. */
  readonly messageExpiryInterval?: number;
  readonly contentType?: string;
  readonly responseTopic?: string;
  readonly correlationData?: Uint8Array;
  /** Name/value pairs in the order received, duplicates kept [MQTT-3.3.2-18]. */
  readonly userProperties?: ReadonlyArray<readonly [string, string]>;
}

/** What a PUBLISH (or a will) carries. */
export interface ApplicationMessage {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly qos: QoS;
  readonly retain: boolean;
  /** MQTT 5 properties forwarded to subscribers; absent for 3.1.1 and property-less messages. */
  readonly properties?: MessageProperties;
}

/** An accepted PUBLISH on its way to the stream. */
export interface StoredMessage extends ApplicationMessage {
  readonly publisher: string;
  readonly messageId: string;
  readonly publishedAt: number;
}

/** A QoS 1/2 message queued for, or in flight to, a persistent session. */
export interface OutboundMessage extends ApplicationMessage {
  readonly packetId: number;
  /** Order of queuing; packet ids wrap, this does not. */
  readonly seq: number;
  /** Sent at least once, so a resend carries DUP [MQTT-3.3.1-1]. */
  readonly sent: boolean;
  /** QoS 2 only: PUBREC received, PUBREL is what to resend [MQTT-4.4.0-1]. */
  readonly released: boolean;
  /** When the message was published, for its expiry; set when it has a Message Expiry Interval. */
  readonly publishedAt?: number;
  /** The identifiers of the MQTT 5 subscriptions it matched, resent with it [MQTT-3.3.4-3]. */
  readonly subscriptionIdentifiers?: readonly number[];
  /** The `$share/…` filter it came through: handed to another member if the session ends unacknowledged. */
  readonly share?: string;
  /** With `share`: the message's key (`publisher#messageId`), by which its group's member is chosen. */
  readonly shareKey?: string;
}

/**
 * A PUBLISH (or PUBREL) held back by the client's Receive Maximum, to be sent in order once a
 * place frees (shared/broker/flow-control.ts).
 */
export interface HeldPacket {
  /** Queuing order (the packet id's reservation): held packets go out lowest first. */
  readonly seq: number;
  /** The frame to post, encoded for the connection it was held for. */
  readonly frame: string;
}

/** A retained message as stored. */
export interface RetainedMessage extends ApplicationMessage {
  readonly publishedAt: number;
}

/**
 * An MQTT 5 enhanced authentication exchange in progress (§4.12), between the frames of one
 * connection that different instances handle (docs/adr/0022).
 */
export interface AuthExchange {
  readonly connectionId: string;
  /** The Authentication Method every AUTH of the exchange must name [MQTT-4.12.0-5]. */
  readonly method: string;
  /** What the method asked to be handed back at its next step. */
  readonly state: string;
  /** The CONNECT awaiting its CONNACK, as the client sent it; absent for a re-authentication. */
  readonly connect?: Uint8Array;
  /** When the exchange is abandoned (epoch ms): a later AUTH finds nothing. */
  readonly expiresAt: number;
}

/** The broker's running traffic counts, kept in one item and added to atomically (docs/adr/0022). */
export interface BrokerCounters {
  /** Application messages the fan-out took from the stream (PUBLISHes and wills of clients). */
  readonly messagesReceived: number;
  /** Messages the fan-out sent to a connected client. */
  readonly messagesSent: number;
}

/** What `$SYS/` reports: the running counts, and item counts that cost no read. */
export interface BrokerFigures extends BrokerCounters {
  /** Subscriptions stored; DynamoDB's own item count, which it refreshes about every six hours. */
  readonly subscriptions: number;
  /** Retained messages stored, counted the same way. */
  readonly retainedMessages: number;
}
