/**
 * The broker's two ports: where state lives and how bytes reach a client.
 * The broker logic in shared/broker/ sees only these interfaces; DynamoDB and
 * the API Gateway management API sit behind them (shared/storage/,
 * shared/gateway/).
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
}

export interface SubscriptionRecord {
  readonly clientId: string;
  readonly sessionId: string;
  readonly filter: string;
  readonly qos: QoS;
}

/** An accepted PUBLISH on its way to the stream. */
export interface StoredMessage {
  readonly publisher: string;
  readonly messageId: string;
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly qos: QoS;
  readonly retain: boolean;
  readonly publishedAt: number;
}

export interface BrokerStore {
  getConnection(connectionId: string): Promise<ConnectionRecord | undefined>;
  /** Stores the record unless the connection already has one; false for a second CONNECT. */
  claimConnection(connection: ConnectionRecord): Promise<boolean>;
  putConnection(connection: ConnectionRecord): Promise<void>;
  deleteConnection(connectionId: string): Promise<void>;

  getSession(clientId: string): Promise<SessionRecord | undefined>;
  /**
   * Writes `next` only if the stored session is still `previous` (or absent
   * when `previous` is); false when another CONNECT got there first.
   */
  replaceSession(next: SessionRecord, previous: SessionRecord | undefined): Promise<boolean>;
  /** Sessions of these client ids that exist. */
  getSessions(clientIds: readonly string[]): Promise<Map<string, SessionRecord>>;
  /**
   * Marks the client offline if `connectionId` still serves it (a clean
   * session is deleted); false when another connection took over.
   */
  endSession(clientId: string, connectionId: string, cleanSession: boolean): Promise<boolean>;

  putSubscriptions(subscriptions: readonly SubscriptionRecord[]): Promise<void>;
  deleteSubscriptions(clientId: string, filters: readonly string[]): Promise<void>;
  /** Every subscription of the client id except those of session `keepSessionId`. */
  deleteStaleSubscriptions(clientId: string, keepSessionId?: string): Promise<void>;
  /** Subscriptions whose filter matches the topic (all session generations). */
  subscriptionsMatching(topic: string): Promise<SubscriptionRecord[]>;

  /** Durably stores an accepted PUBLISH; the stream carries it to the fan-out. */
  putMessage(message: StoredMessage): Promise<void>;
  /** Reserves `count` consecutive packet identifiers for messages sent to a client. */
  reservePacketIds(clientId: string, count: number): Promise<number[]>;
}

export type SendResult = 'sent' | 'gone';

export interface ClientGateway {
  /** Sends one text frame; 'gone' when the connection no longer exists (HTTP 410). */
  send(connectionId: string, frame: string): Promise<SendResult>;
  /** Closes the connection; closing one already gone is not an error. */
  close(connectionId: string): Promise<void>;
}
