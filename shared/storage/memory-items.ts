/**
 * The in-memory store's items (shared/storage/memory-store.ts): the shapes the DynamoDB tables hold,
 * and the copy a DynamoDB round trip makes of them.
 */
import type { ApplicationMessage, HeldPacket, OutboundMessage, SessionRecord } from '../ports.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * A Sessions item: the record and its two counters. The record's fields are
 * optional because, as in DynamoDB, queuing for a client id without a session
 * creates an item holding only the counter.
 */
export type SessionItem = Partial<Mutable<SessionRecord>> & {
  clientId: string;
  nextPacketId?: number;
  queued?: number;
  /** A will waiting for its delay, and when it is due (`BrokerStore.deferWill`). */
  pendingWill?: ApplicationMessage;
  willDueAt?: number;
  /** Receive Maximum places taken, and packets held back (`BrokerStore.takeSendPlace`). */
  inFlight?: number;
  waiting?: number;
  /** Inbound QoS 2 packet ids awaiting PUBREL, counted against the broker's Receive Maximum. */
  inboundQoS2?: number;
};

/** One client id's packet state: the Deliveries table's `out#`, `in#`, `qos2#` and `qos2id#` entries. */
export interface Deliveries {
  readonly outbound: Map<number, OutboundMessage>;
  readonly inbound: Set<number>;
  readonly qos2: Map<string, { packetId: number; seq: number; received: boolean }>;
  readonly qos2ByPacketId: Map<number, string>;
  /** `flow#` entries: packets held back by the client's Receive Maximum, by seq. */
  readonly held: Map<number, HeldPacket>;
}

/**
 * A deep copy as a DynamoDB round trip makes it: undefined properties dropped,
 * binary copied into a plain Uint8Array. Nothing a caller holds aliases stored state.
 */
export function copy<T>(value: T): T {
  if (value instanceof Uint8Array) return new Uint8Array(value) as T;
  if (Array.isArray(value)) return value.map(copy) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, copy(v)]),
    ) as T;
  }
  return value;
}

export function sessionRecord(item: SessionItem): SessionRecord {
  const {
    nextPacketId: _counter,
    queued: _queued,
    pendingWill: _will,
    willDueAt: _due,
    inFlight: _inFlight,
    waiting: _waiting,
    inboundQoS2: _inbound,
    ...record
  } = item;
  return copy(record) as SessionRecord;
}
