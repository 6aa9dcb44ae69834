import type { Packet } from 'mqtt-packet';
import type { Authorizer } from '../acl.js';
import type { EnhancedAuthenticator } from '../auth/enhanced.js';
import type { Authenticator } from '../auth.js';
import type { BrokerLimits } from '../limits.js';
import type { LoginThrottle } from '../login-throttle.js';
import type { AuthExchange, BrokerStore, ClientGateway, ConnectionRecord } from '../ports.js';
import type { ProtocolVersion } from '../protocol/frames.js';
import type { RateMemory } from './publish-rate.js';

/** What the broker logic needs from its surroundings: the two ports, limits, a clock, ids, a way to wait and who may connect. */
export interface BrokerContext {
  readonly store: BrokerStore;
  readonly gateway: ClientGateway;
  readonly maxPacketSize: number;
  readonly maxQueuedPerSession: number;
  /** Quotas on client ids, topics, filters, SUBSCRIBE sizes, publish rate and connections per user (shared/limits.ts). */
  readonly limits: BrokerLimits;
  readonly now: () => number;
  /** A fresh unique id (session ids, assigned client ids, message ids). */
  readonly newId: () => string;
  /** Waits `ms` milliseconds; tests pass one that resolves at once. */
  readonly sleep: (ms: number) => Promise<void>;
  /** Checks CONNECT credentials; absent: no authentication, any client may connect. */
  readonly authenticator?: Authenticator;
  /** MQTT 5 enhanced authentication methods (AUTH); absent: a CONNECT naming a method is refused 0x8C. */
  readonly enhancedAuthenticator?: EnhancedAuthenticator;
  /** What clients may publish, receive and subscribe to; absent: everything but writing `$` topics. */
  readonly authorizer?: Authorizer;
  /** Slows repeated failed logins per user name and source address; absent: no throttling. */
  readonly loginThrottle?: LoginThrottle;
  /** Publish rate buckets this instance remembers; absent: each one above half is written every frame. */
  readonly publishRates?: RateMemory;
}

/**
 * One connection as seen by one invocation: its record (once CONNECT is
 * done), the packets to send back, and whether it must be closed. Replies
 * leave in one frame at the end, since API Gateway bills per message.
 */
export interface Invocation {
  readonly connectionId: string;
  record?: ConnectionRecord;
  /** The authentication exchange the connection's CONNECT awaits, while it does (MQTT 5 AUTH). */
  exchange?: AuthExchange & { readonly connect: Uint8Array };
  /** The queue's id of this frame: the same when the queue redelivers it. */
  readonly frameId?: string;
  /** The client's address as the gateway saw it, when known. */
  readonly sourceIp?: string;
  /** Known from CONNECT even when the connection is refused. */
  protocolVersion?: ProtocolVersion;
  readonly outbox: Packet[];
  /** Set when the connection must be closed after the outbox is flushed. */
  closeReason?: string;
}

/** The protocol version replies to this connection are encoded with. */
export function versionOf(invocation: Invocation, fallback: ProtocolVersion = 4): ProtocolVersion {
  return invocation.record?.protocolVersion ?? invocation.protocolVersion ?? fallback;
}

/** Highest QoS the broker grants and accepts. */
export const brokerMaximumQoS = 2;
