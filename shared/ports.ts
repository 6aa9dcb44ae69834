/**
 * The broker's two ports: where state lives and how bytes reach a client.
 * The broker logic in shared/broker/ sees only these interfaces; DynamoDB and
 * the API Gateway management API sit behind them (shared/storage/,
 * shared/gateway/).
 */
import type {
  ApplicationMessage,
  AuthExchange,
  BrokerCounters,
  BrokerFigures,
  ConnectionRecord,
  HeldPacket,
  OutboundMessage,
  RetainedMessage,
  SessionRecord,
  StoredMessage,
  SubscriptionRecord,
} from './records.js';

// The records are part of the ports' language: importers of the ports get them from here too.
export type * from './records.js';

/**
 * Where the broker's state lives. DynamoStore is production's; MemoryStore
 * serves fast tests; test/support/store-conformance.ts holds every backend to
 * this contract (docs/adr/0006-storage-contract.md). Results are copies: a
 * caller changing one changes nothing stored. A record read back may carry a
 * backend's bookkeeping attributes (an expiry, counters) besides its fields.
 */
export interface BrokerStore {
  getConnection(connectionId: string): Promise<ConnectionRecord | undefined>;
  /** Stores the record unless the connection already has one; false for a second CONNECT. */
  claimConnection(connection: ConnectionRecord): Promise<boolean>;
  putConnection(connection: ConnectionRecord): Promise<void>;
  deleteConnection(connectionId: string): Promise<void>;

  getSession(clientId: string): Promise<SessionRecord | undefined>;
  /**
   * Writes `next` only if the stored session is still `previous` (or absent
   * when `previous` is); false when another CONNECT got there first. "Still"
   * means the same session id, served by `previous`'s connection or by none.
   * `next` names its connection. The session's packet id and queue counters
   * carry over; a deferred will is discarded (its client is back) [MQTT-3.1.3-9].
   */
  replaceSession(next: SessionRecord, previous: SessionRecord | undefined): Promise<boolean>;
  /** Sessions of these client ids that exist. */
  getSessions(clientIds: readonly string[]): Promise<Map<string, SessionRecord>>;
  /**
   * Marks the client offline if `connectionId` still serves it (a clean
   * session is deleted), noting when it expires if `expiresAt` (epoch ms) is
   * given; false when another connection took over.
   */
  endSession(
    clientId: string,
    connectionId: string,
    cleanSession: boolean,
    expiresAt?: number,
  ): Promise<boolean>;
  /**
   * Client ids of offline sessions whose `sessionExpiresAt` is at or before `now`,
   * for the sweep. Reads only those (an index that may lag briefly).
   */
  sessionsExpired(now: number): Promise<string[]>;
  /**
   * Deletes the session item if it is offline and expired at `now`; false otherwise (a client came
   * back, or a delayed will is still to be published: see `deferWill`).
   */
  deleteExpiredSession(clientId: string, now: number): Promise<boolean>;
  /**
   * Keeps a will on the session until `dueAt` (epoch ms), if `connectionId` still serves the client
   * id; false when another connection took the session over, whose client is back: that will is
   * never published [MQTT-3.1.3-9]. `replaceSession` (a reconnect) discards it.
   */
  deferWill(
    clientId: string,
    connectionId: string,
    will: ApplicationMessage,
    dueAt: number,
  ): Promise<boolean>;
  /** Client ids whose deferred will is due at or before `now`. Reads only those (an index that may lag briefly). */
  willsDue(now: number): Promise<string[]>;
  /** Removes the client id's deferred will if due at `now` and returns it, to exactly one caller. */
  takeDueWill(clientId: string, now: number): Promise<ApplicationMessage | undefined>;

  /**
   * Stores the subscriptions (a re-subscription replaces the options, keeps `subscribedAt`) and
   * returns the filters that were not yet subscribed in their session, for Retain Handling 1 [MQTT-3.3.1-10].
   */
  putSubscriptions(subscriptions: readonly SubscriptionRecord[]): Promise<string[]>;
  deleteSubscriptions(clientId: string, filters: readonly string[]): Promise<void>;
  /** Every subscription of the client id except those of session `keepSessionId`. */
  deleteStaleSubscriptions(clientId: string, keepSessionId?: string): Promise<void>;
  /**
   * The filters the client id subscribes with, every session generation, for the per-session quota.
   * Read from an eventually consistent index: a subscription made a moment ago may be missing.
   */
  subscribedFilters(clientId: string): Promise<string[]>;
  /** Subscriptions whose filter matches the topic (all session generations), in no particular order. */
  subscriptionsMatching(topic: string): Promise<SubscriptionRecord[]>;
  /**
   * {@link subscriptionsMatching} of each topic, a partition the topics share read once for all of
   * them: a stream batch's `dev/1/t` and `dev/2/t` both need the anchors `0|` and `1|dev`.
   */
  subscriptionsMatchingEach(topics: readonly string[]): Promise<Map<string, SubscriptionRecord[]>>;

  /** Durably stores an accepted PUBLISH; the stream carries it to the fan-out. */
  putMessage(message: StoredMessage): Promise<void>;
  /**
   * Stores an inbound QoS 2 PUBLISH exactly once: the message and the packet
   * id's marker are written together, and false means the packet id is
   * already awaiting PUBREL (a resent PUBLISH) [MQTT-4.3.3-2]. With
   * `receiveMaximum`, the publisher's session counts its packet ids awaiting
   * PUBREL in the same write, and 'exceeded' (nothing stored) means it already
   * has that many [MQTT-3.3.4-8].
   */
  putQoS2Message(
    message: StoredMessage,
    packetId: number,
    receiveMaximum?: number,
  ): Promise<boolean | 'exceeded'>;
  /** PUBREL: the inbound packet id is free again; `counted`: it was stored with a `receiveMaximum`. */
  releaseInboundPacketId(clientId: string, packetId: number, counted?: boolean): Promise<void>;

  /**
   * Reserves the next packet identifier for a message to the client: `seq`
   * counts 1, 2, … per session item and the packet id wraps through
   * 1..65535 [MQTT-2.3.1-1]. Rejects when the client id has no session.
   */
  reservePacketId(clientId: string): Promise<{ packetId: number; seq: number }>;
  /**
   * Reserves `count` consecutive packet identifiers in one write, as `count`
   * calls of `reservePacketId` would (seq ascending); a fan-out takes a whole
   * batch's or a whole range's ids at once. Rejects when the client id has no session.
   */
  reservePacketIds(clientId: string, count: number): Promise<Array<{ packetId: number; seq: number }>>;
  /**
   * The packet id of a QoS 2 delivery of `messageKey` to the client, the same
   * one each time the fan-out retries (`first` false), so the receiver
   * discards repeats; `received` once PUBREC came. Rejects without a session.
   */
  claimQoS2Delivery(
    clientId: string,
    messageKey: string,
  ): Promise<{ packetId: number; seq: number; first: boolean; received: boolean }>;
  /** PUBREC for a QoS 2 delivery: the receiver has it; a retry must not send it again [MQTT-4.3.3-1]. */
  markQoS2Received(clientId: string, packetId: number): Promise<void>;
  /**
   * Keeps a message for a persistent session until acknowledged; false when
   * `maxQueued` messages are already waiting or the session no longer exists. A packet id already queued is
   * left as it is and counts as kept (a retried fan-out).
   */
  putOutbound(clientId: string, message: OutboundMessage, maxQueued: number): Promise<boolean>;
  /** PUBACK or PUBCOMP: the message is done. */
  deleteOutbound(clientId: string, packetId: number): Promise<void>;
  /**
   * Keeps a copy of a message in flight to a clean session, among `outboundMessages` but outside
   * the queue's count and bound, until `forgetInFlight` or `deleteDeliveries` (a Shared
   * Subscription's QoS 1 message, to hand on if the session ends first). A packet id already kept
   * is left as it is.
   */
  keepInFlight(clientId: string, message: OutboundMessage): Promise<void>;
  /** PUBACK of a message `keepInFlight` kept: the copy goes; harmless when there is none. */
  forgetInFlight(clientId: string, packetId: number): Promise<void>;
  /** PUBREC: from now on PUBREL is what to resend. */
  markOutboundReleased(clientId: string, packetId: number): Promise<void>;
  /**
   * A kept copy whose post found the connection gone: its onward delivery never started, so it is
   * queued as never sent (its expiry still applies [MQTT-3.3.2-5], its first send is no duplicate).
   * Harmless when there is no such copy.
   */
  markOutboundUnsent(clientId: string, packetId: number): Promise<void>;
  /** The session's unacknowledged messages, in queuing order. */
  outboundMessages(clientId: string): Promise<OutboundMessage[]>;
  /** Forgets all packet state of the client id (a clean session starts or ends), the count of inbound QoS 2 included. */
  deleteDeliveries(clientId: string): Promise<void>;

  /**
   * Takes one of the client's Receive Maximum places for a PUBLISH to send now: true when fewer
   * than `receiveMaximum` are unacknowledged, none is held back (order), and `connectionId` still
   * serves the client id [MQTT-3.3.4-9].
   */
  takeSendPlace(clientId: string, connectionId: string, receiveMaximum: number): Promise<boolean>;
  /**
   * Holds a packet back until a place frees, if every place is taken or others are held already
   * (and `connectionId` still serves the client id); false otherwise: then take a place instead. A
   * packet already held (a retried fan-out) counts as held.
   */
  holdPacket(
    clientId: string,
    connectionId: string,
    receiveMaximum: number,
    held: HeldPacket,
  ): Promise<boolean>;
  /**
   * Takes a place for the oldest held packet and removes it from the held ones; undefined when
   * none is held or no place is free. The packet counts as held until `heldPacketSent`, so
   * nothing sent meanwhile overtakes it.
   */
  claimHeldPacket(clientId: string, receiveMaximum: number): Promise<HeldPacket | undefined>;
  /** The claimed held packet has been posted: it no longer stands in front of new ones. */
  heldPacketSent(clientId: string): Promise<void>;
  /** PUBACK or PUBCOMP frees a place (never below none); true when packets are held, waiting for it. */
  freeSendPlace(clientId: string): Promise<boolean>;
  /** A new connection of the client id: forgets held packets and counts `inFlight` places taken. */
  resetFlow(clientId: string, inFlight: number): Promise<void>;

  /** Stores, replaces, or (empty payload) clears the retained message of a topic [MQTT-3.3.1-10]. */
  putRetained(message: RetainedMessage): Promise<void>;
  /** Retained messages whose topic matches the filter, in no particular order. */
  retainedMatching(filter: string): Promise<RetainedMessage[]>;

  /** Notes that the connection is alive: sets `lastSeen`, and `keepAliveDue` when given. */
  touchConnection(connectionId: string, now: number, keepAliveDue?: number): Promise<void>;
  /**
   * Ids of connections whose `keepAliveDue` is at or before `now`, for the
   * keep-alive checker. Reads only those, however many connections there are;
   * may lag the records briefly (an index), so callers re-read the record.
   */
  connectionsDue(now: number): Promise<string[]>;
  /** Sets `sharedSubscriber` on the connection's record; a gone connection stays gone. */
  markSharedSubscriber(connectionId: string): Promise<void>;
  /** Keeps the connection's publish rate bucket on its record; a gone connection stays gone. */
  savePublishBucket(connectionId: string, bucket: { tokens: number; at: number }): Promise<void>;
  /**
   * Removes the connection's will and returns it, to exactly one caller: a
   * DISCONNECT discards it [MQTT-3.1.2-10], an abnormal end publishes it once
   * however many instances notice the end.
   */
  takeWill(connectionId: string): Promise<ApplicationMessage | undefined>;
  /**
   * Counts the connection among the user's live ones unless `max` are counted already,
   * not counting `replacing` (the connection a takeover ends); true when counted. Counting
   * an id twice counts it once.
   */
  addUserConnection(user: string, connectionId: string, max: number, replacing?: string): Promise<boolean>;
  /** The connection no longer counts among the user's; harmless when it did not. */
  removeUserConnection(user: string, connectionId: string): Promise<void>;
  /** The connection ids counted for the user. */
  userConnections(user: string): Promise<string[]>;
  /** Stores (or replaces) the connection's authentication exchange. */
  putAuthExchange(exchange: AuthExchange): Promise<void>;
  /** The connection's exchange, unless none was stored, it was deleted or it expired at `now`. */
  getAuthExchange(connectionId: string, now: number): Promise<AuthExchange | undefined>;
  /** Forgets the connection's exchange; harmless when there is none. */
  deleteAuthExchange(connectionId: string): Promise<void>;
  /** Adds to the broker's running counts; concurrent callers lose nothing (one atomic update). */
  addBrokerCounters(delta: Partial<BrokerCounters>): Promise<void>;
  /** The running counts (0 before any were added) and the subscription and retained message counts. */
  brokerFigures(): Promise<BrokerFigures>;
  /** Every connection record, page by page, for the sweep. */
  scanConnections(): AsyncIterable<ConnectionRecord[]>;

  /**
   * Replaces the connection's `inboundTopicAliases` with `aliases`; a gone connection stays gone.
   * Only the connection's frames, handled one at a time, write it.
   */
  setInboundTopicAliases(connectionId: string, aliases: Readonly<Record<string, string>>): Promise<void>;
  /**
   * Records that `alias` stands for `topic` in what the broker sends to `connectionId`, unconfirmed,
   * if the session is still served by that connection and `alias` is the next number: aliases are
   * numbered 1, 2, … without gaps, so alias 1 starts a fresh `outboundTopicAliases` (an earlier
   * connection's are dropped) and alias n needs exactly n - 1 assigned on this connection. False
   * otherwise (another delivery got there first, a takeover). Assigned aliases never change topic.
   */
  assignTopicAlias(clientId: string, connectionId: string, topic: string, alias: number): Promise<boolean>;
  /**
   * Marks `topic`'s alias on `connectionId` confirmed, if it is still `alias` there and the session is
   * still served by that connection; otherwise nothing changes.
   */
  confirmTopicAlias(clientId: string, connectionId: string, topic: string, alias: number): Promise<void>;
}

export type SendResult = 'sent' | 'gone';

export interface ClientGateway {
  /** Sends one text frame; 'gone' when the connection no longer exists (HTTP 410). */
  send(connectionId: string, frame: string): Promise<SendResult>;
  /** Closes the connection; false when it was already gone. */
  close(connectionId: string): Promise<boolean>;
  /** Whether the gateway still has the connection (GetConnection). */
  isConnected(connectionId: string): Promise<boolean>;
}
