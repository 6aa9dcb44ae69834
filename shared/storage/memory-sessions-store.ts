import type {
  ApplicationMessage,
  AuthExchange,
  BrokerCounters,
  ConnectionRecord,
  QoS,
  RetainedMessage,
  SessionRecord,
  StoredMessage,
  SubscriptionRecord,
} from '../ports.js';
import { matchingFilter, topicAnchors, topicMatches } from '../topics.js';
import { compareSortKeys, retainedRoot, subscriptionKey } from './keys.js';

import { copy, type Deliveries, type SessionItem, sessionRecord } from './memory-items.js';
/**
 * The part of {@link MemoryStore} that holds its tables and answers for
 * connections, sessions (wills and Topic Aliases with them), subscriptions,
 * retained messages and keep-alive deadlines; `MemoryStore` adds the
 * per-message state (shared/storage/memory-store.ts).
 */
export class MemorySessionsStore {
  protected readonly now: () => number;
  protected readonly connections = new Map<string, ConnectionRecord>();
  protected readonly sessions = new Map<string, SessionItem>();
  /** Subscriptions by anchor partition, then by `filter\0clientId`, as in the Subscriptions table. */
  protected readonly subscriptions = new Map<string, Map<string, SubscriptionRecord>>();
  /** Accepted messages, as the Messages table holds them for the stream. */
  protected readonly messages = new Map<string, StoredMessage>();
  protected readonly deliveries = new Map<string, Deliveries>();
  /** Retained messages by first-level partition, then by topic. */
  protected readonly retained = new Map<string, Map<string, RetainedMessage>>();
  /** Each user's live connection ids. */
  protected readonly userConnectionSets = new Map<string, Set<string>>();
  protected readonly exchanges = new Map<string, AuthExchange>();
  protected counters: BrokerCounters = { messagesReceived: 0, messagesSent: 0 };

  constructor(options: { now: () => number }) {
    this.now = options.now;
  }

  async getConnection(connectionId: string): Promise<ConnectionRecord | undefined> {
    return copy(this.connections.get(connectionId));
  }

  async claimConnection(connection: ConnectionRecord): Promise<boolean> {
    if (this.connections.has(connection.connectionId)) return false;
    this.connections.set(connection.connectionId, copy(connection));
    return true;
  }

  async putConnection(connection: ConnectionRecord): Promise<void> {
    this.connections.set(connection.connectionId, copy(connection));
  }

  async deleteConnection(connectionId: string): Promise<void> {
    this.connections.delete(connectionId);
  }

  async getSession(clientId: string): Promise<SessionRecord | undefined> {
    const item = this.sessions.get(clientId);
    return item && sessionRecord(item);
  }

  async replaceSession(next: SessionRecord, previous: SessionRecord | undefined): Promise<boolean> {
    // DynamoDB rejects an update that names an undefined value.
    if (next.connectionId === undefined || (previous && previous.sessionId === undefined)) {
      throw new Error('replaceSession: the next session names its connection, the previous its session id');
    }
    const stored = this.sessions.get(next.clientId);
    const holds = previous
      ? stored !== undefined &&
        stored.sessionId === previous.sessionId &&
        (stored.connectionId === undefined || stored.connectionId === (previous.connectionId ?? ''))
      : stored === undefined;
    if (!holds) return false;
    // Only the record's fields are written: the counters carry over to the new session.
    const { clientId, sessionId, connectionId, protocolVersion, cleanSession, owner, maximumPacketSize } =
      next;
    const {
      owner: _previousOwner,
      maximumPacketSize: _previousMaximum,
      receiveMaximum: _previousReceiveMaximum,
      sessionExpirySeconds: _previousExpiry,
      sessionExpiresAt: _noLongerExpiring,
      topicAliasMaximum: _previousAliasMaximum,
      outboundTopicAliases: _previousConnectionsAliases,
      // [MQTT-3.1.3-9] the client is back: its delayed will is never published.
      pendingWill: _cancelledWill,
      willDueAt: _cancelledDue,
      ...kept
    } = stored ?? {};
    this.sessions.set(clientId, {
      ...kept,
      clientId,
      sessionId,
      connectionId,
      protocolVersion,
      cleanSession,
      ...(owner === undefined ? {} : { owner }),
      ...(maximumPacketSize === undefined ? {} : { maximumPacketSize }),
      ...(next.receiveMaximum === undefined ? {} : { receiveMaximum: next.receiveMaximum }),
      ...(next.sessionExpirySeconds === undefined ? {} : { sessionExpirySeconds: next.sessionExpirySeconds }),
      ...(next.topicAliasMaximum === undefined ? {} : { topicAliasMaximum: next.topicAliasMaximum }),
    });
    return true;
  }

  async getSessions(clientIds: readonly string[]): Promise<Map<string, SessionRecord>> {
    const sessions = new Map<string, SessionRecord>();
    for (const clientId of new Set(clientIds)) {
      const item = this.sessions.get(clientId);
      if (item) sessions.set(clientId, sessionRecord(item));
    }
    return sessions;
  }

  async endSession(
    clientId: string,
    connectionId: string,
    cleanSession: boolean,
    expiresAt?: number,
  ): Promise<boolean> {
    const stored = this.sessions.get(clientId);
    if (stored?.connectionId !== connectionId) return false;
    if (cleanSession) {
      this.sessions.delete(clientId);
    } else {
      const { connectionId: _ended, outboundTopicAliases: _endedWithIt, ...offline } = stored;
      this.sessions.set(clientId, {
        ...offline,
        ...(expiresAt === undefined ? {} : { sessionExpiresAt: expiresAt }),
      });
    }
    return true;
  }

  async sessionsExpired(now: number): Promise<string[]> {
    return [...this.sessions.values()]
      .filter((s) => s.sessionExpiresAt !== undefined && s.sessionExpiresAt <= now)
      .map((s) => s.clientId);
  }

  async deleteExpiredSession(clientId: string, now: number): Promise<boolean> {
    const stored = this.sessions.get(clientId);
    const expired =
      stored?.connectionId === undefined &&
      stored?.sessionExpiresAt !== undefined &&
      stored.sessionExpiresAt <= now &&
      stored.pendingWill === undefined;
    if (expired) this.sessions.delete(clientId);
    return expired;
  }

  async deferWill(
    clientId: string,
    connectionId: string,
    will: ApplicationMessage,
    dueAt: number,
  ): Promise<boolean> {
    const stored = this.sessions.get(clientId);
    if (stored?.connectionId !== connectionId) return false;
    this.sessions.set(clientId, { ...stored, pendingWill: copy(will), willDueAt: dueAt });
    return true;
  }

  async willsDue(now: number): Promise<string[]> {
    return [...this.sessions.values()]
      .filter((s) => s.willDueAt !== undefined && s.willDueAt <= now)
      .map((s) => s.clientId);
  }

  async takeDueWill(clientId: string, now: number): Promise<ApplicationMessage | undefined> {
    const stored = this.sessions.get(clientId);
    if (stored?.pendingWill === undefined || stored.willDueAt === undefined || stored.willDueAt > now)
      return undefined;
    const { pendingWill, willDueAt: _due, ...rest } = stored;
    this.sessions.set(clientId, rest);
    return copy(pendingWill);
  }

  async putSubscriptions(subscriptions: readonly SubscriptionRecord[]): Promise<string[]> {
    const created: string[] = [];
    for (const s of subscriptions) {
      const { anchor, filterClient } = subscriptionKey(s.filter, s.clientId);
      const partition = this.subscriptions.get(anchor) ?? new Map<string, SubscriptionRecord>();
      this.subscriptions.set(anchor, partition);
      const existing = partition.get(filterClient);
      if (existing && existing.sessionId === s.sessionId) {
        // Re-subscribing in the same session replaces the options but keeps the original time [MQTT-3.8.4-3].
        partition.set(filterClient, {
          ...copy(s),
          subscribedAt: existing.subscribedAt ?? s.subscribedAt ?? this.now(),
        });
      } else {
        // New, or a leftover of an older session: this one starts afresh.
        partition.set(filterClient, { ...copy(s), subscribedAt: s.subscribedAt ?? this.now() });
        created.push(s.filter);
      }
    }
    return created;
  }

  async deleteSubscriptions(clientId: string, filters: readonly string[]): Promise<void> {
    for (const filter of filters) {
      const { anchor, filterClient } = subscriptionKey(filter, clientId);
      this.subscriptions.get(anchor)?.delete(filterClient);
    }
  }

  async deleteStaleSubscriptions(clientId: string, keepSessionId?: string): Promise<void> {
    for (const partition of this.subscriptions.values()) {
      for (const [key, s] of partition) {
        if (s.clientId === clientId && (!keepSessionId || s.sessionId !== keepSessionId)) {
          partition.delete(key);
        }
      }
    }
  }

  async subscribedFilters(clientId: string): Promise<string[]> {
    return [...this.subscriptions.values()].flatMap((partition) =>
      [...partition.values()].filter((s) => s.clientId === clientId).map((s) => s.filter),
    );
  }

  async subscriptionsMatching(topic: string): Promise<SubscriptionRecord[]> {
    return topicAnchors(topic).flatMap((anchor) =>
      [...(this.subscriptions.get(anchor) ?? [])]
        .sort(([a], [b]) => compareSortKeys(a, b))
        .map(([, s]) => s)
        .filter((s) => topicMatches(matchingFilter(s.filter), topic))
        .map((s) => copy(s)),
    );
  }

  async subscriptionsMatchingEach(topics: readonly string[]): Promise<Map<string, SubscriptionRecord[]>> {
    return new Map(
      await Promise.all(topics.map(async (t) => [t, await this.subscriptionsMatching(t)] as const)),
    );
  }

  async putRetained(message: RetainedMessage): Promise<void> {
    const root = retainedRoot(message.topic);
    // [MQTT-3.3.1-10] an empty payload clears the topic's retained message.
    if (message.payload.length === 0) {
      this.retained.get(root)?.delete(message.topic);
      return;
    }
    const partition = this.retained.get(root) ?? new Map<string, RetainedMessage>();
    this.retained.set(root, partition);
    partition.set(message.topic, copy(message));
  }

  async retainedMatching(filter: string): Promise<RetainedMessage[]> {
    const first = filter.split('/')[0];
    const partitions =
      first === '+' || first === '#'
        ? [...this.retained.values()]
        : [this.retained.get(retainedRoot(filter))];
    return partitions.flatMap((partition) =>
      [...(partition?.values() ?? [])]
        .sort((a, b) => compareSortKeys(a.topic, b.topic))
        .filter((m) => topicMatches(filter, m.topic))
        .map((m) => ({
          topic: m.topic,
          payload: copy(m.payload),
          qos: m.qos as QoS,
          retain: true,
          publishedAt: m.publishedAt,
          ...(m.properties ? { properties: copy(m.properties) } : {}),
        })),
    );
  }

  async touchConnection(connectionId: string, now: number, keepAliveDue?: number): Promise<void> {
    const connection = this.connections.get(connectionId);
    if (!connection) return;
    this.connections.set(connectionId, {
      ...connection,
      lastSeen: now,
      ...(keepAliveDue === undefined ? {} : { keepAliveDue }),
    });
  }

  async connectionsDue(now: number): Promise<string[]> {
    return [...this.connections.values()]
      .filter((c) => c.keepAliveDue !== undefined && c.keepAliveDue <= now)
      .map((c) => c.connectionId);
  }

  async addUserConnection(
    user: string,
    connectionId: string,
    max: number,
    replacing?: string,
  ): Promise<boolean> {
    const ids = this.userConnectionSets.get(user) ?? new Set<string>();
    const counted = ids.has(connectionId) || (replacing !== undefined && ids.has(replacing));
    if (!counted && ids.size >= max) return false;
    ids.add(connectionId);
    this.userConnectionSets.set(user, ids);
    return true;
  }

  async removeUserConnection(user: string, connectionId: string): Promise<void> {
    this.userConnectionSets.get(user)?.delete(connectionId);
  }

  async userConnections(user: string): Promise<string[]> {
    return [...(this.userConnectionSets.get(user) ?? [])];
  }

  async markSharedSubscriber(connectionId: string): Promise<void> {
    const connection = this.connections.get(connectionId);
    if (connection) this.connections.set(connectionId, { ...connection, sharedSubscriber: true });
  }

  async savePublishBucket(connectionId: string, bucket: { tokens: number; at: number }): Promise<void> {
    const connection = this.connections.get(connectionId);
    if (connection) this.connections.set(connectionId, { ...connection, publishBucket: { ...bucket } });
  }

  async takeWill(connectionId: string): Promise<ApplicationMessage | undefined> {
    const connection = this.connections.get(connectionId);
    if (!connection?.will) return undefined; // no will, or another caller took it
    const { will, ...rest } = connection;
    this.connections.set(connectionId, rest);
    return copy(will);
  }

  async *scanConnections(): AsyncIterable<ConnectionRecord[]> {
    yield [...this.connections.values()].map(copy);
  }

  async setInboundTopicAliases(
    connectionId: string,
    aliases: Readonly<Record<string, string>>,
  ): Promise<void> {
    const connection = this.connections.get(connectionId);
    if (connection) this.connections.set(connectionId, { ...connection, inboundTopicAliases: copy(aliases) });
  }

  async assignTopicAlias(
    clientId: string,
    connectionId: string,
    topic: string,
    alias: number,
  ): Promise<boolean> {
    const stored = this.sessions.get(clientId);
    if (stored?.connectionId !== connectionId) return false;
    const current = stored.outboundTopicAliases;
    const aliases = current?.connectionId === connectionId ? current.aliases : undefined;
    // Alias 1 starts afresh; alias n follows exactly n - 1 of this connection's.
    const next = aliases === undefined ? 1 : Object.keys(aliases).length + 1;
    if (alias !== next) return false;
    stored.outboundTopicAliases = {
      connectionId,
      aliases: { ...aliases, [alias]: { topic, confirmed: false } },
    };
    return true;
  }

  async confirmTopicAlias(
    clientId: string,
    connectionId: string,
    topic: string,
    alias: number,
  ): Promise<void> {
    const stored = this.sessions.get(clientId);
    const current = stored?.outboundTopicAliases;
    if (!stored || stored.connectionId !== connectionId || current?.connectionId !== connectionId) return;
    if (current.aliases[alias]?.topic !== topic) return;
    stored.outboundTopicAliases = {
      connectionId,
      aliases: { ...current.aliases, [alias]: { topic, confirmed: true } },
    };
  }

  protected deliveriesOf(clientId: string): Deliveries {
    let deliveries = this.deliveries.get(clientId);
    if (!deliveries) {
      deliveries = {
        outbound: new Map(),
        inbound: new Set(),
        qos2: new Map(),
        qos2ByPacketId: new Map(),
        held: new Map(),
      };
      this.deliveries.set(clientId, deliveries);
    }
    return deliveries;
  }
}
