import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { BrokerConfig } from '../config.js';
import type {
  ApplicationMessage,
  AuthExchange,
  BrokerCounters,
  BrokerFigures,
  BrokerStore,
  ConnectionRecord,
  HeldPacket,
  OutboundMessage,
  RetainedMessage,
  SessionRecord,
  StoredMessage,
  SubscriptionRecord,
} from '../ports.js';
import type { TableId } from '../tables.js';
import { AuthExchanges } from './dynamo/auth-exchanges.js';
import { BrokerFiguresPart } from './dynamo/broker-figures.js';
import { ConnectionsAndSessions } from './dynamo/connections-sessions.js';
import { reportConsumedCapacity } from './dynamo/consumed-capacity.js';
import { DelayedWills } from './dynamo/delayed-wills.js';
import { Deliveries } from './dynamo/deliveries.js';
import { FlowControl } from './dynamo/flow-control.js';
import { OutboundQueue } from './dynamo/outbound-queue.js';
import { Retained } from './dynamo/retained.js';
import { Subscriptions } from './dynamo/subscriptions.js';
import { TopicAliases } from './dynamo/topic-aliases.js';
import { UserConnections } from './dynamo/user-connections.js';

/** The SDK client functions share per module instance, so connections are reused across invocations. */
export function createDocumentClient(config: Pick<BrokerConfig, 'dynamoEndpoint'>): DynamoDBDocumentClient {
  const client = reportConsumedCapacity(
    new DynamoDBClient(config.dynamoEndpoint ? { endpoint: config.dynamoEndpoint } : {}),
  );
  return DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
}

/**
 * The broker's state in DynamoDB: one module per group of tables
 * (shared/storage/dynamo/), composed behind the one port. `now` is the
 * context's clock, for the times the store stamps itself.
 *
 * @example
 * const store = new DynamoStore(createDocumentClient(config), config.tables, { now: Date.now });
 * await store.subscriptionsMatching('home/kitchen/temp');
 */
export class DynamoStore implements BrokerStore {
  private readonly sessions: ConnectionsAndSessions;
  private readonly subscriptions: Subscriptions;
  private readonly deliveries: Deliveries;
  private readonly retained: Retained;
  private readonly flow: FlowControl;
  private readonly outbound: OutboundQueue;
  private readonly wills: DelayedWills;
  private readonly aliases: TopicAliases;
  private readonly userConnectionSets: UserConnections;
  private readonly figures: BrokerFiguresPart;
  private readonly exchanges: AuthExchanges;

  constructor(
    db: DynamoDBDocumentClient,
    tables: Readonly<Record<TableId, string>>,
    options: { readonly now: () => number },
  ) {
    const database = { db, tables, now: options.now };
    this.sessions = new ConnectionsAndSessions(database);
    this.subscriptions = new Subscriptions(database);
    this.deliveries = new Deliveries(database);
    this.retained = new Retained(database);
    this.flow = new FlowControl(database);
    this.outbound = new OutboundQueue(database);
    this.wills = new DelayedWills(database);
    this.aliases = new TopicAliases(database);
    this.userConnectionSets = new UserConnections(database);
    this.figures = new BrokerFiguresPart(database);
    this.exchanges = new AuthExchanges(database);
  }

  getConnection(connectionId: string): Promise<ConnectionRecord | undefined> {
    return this.sessions.getConnection(connectionId);
  }

  claimConnection(connection: ConnectionRecord): Promise<boolean> {
    return this.sessions.claimConnection(connection);
  }

  putConnection(connection: ConnectionRecord): Promise<void> {
    return this.sessions.putConnection(connection);
  }

  deleteConnection(connectionId: string): Promise<void> {
    return this.sessions.deleteConnection(connectionId);
  }

  getSession(clientId: string): Promise<SessionRecord | undefined> {
    return this.sessions.getSession(clientId);
  }

  replaceSession(next: SessionRecord, previous: SessionRecord | undefined): Promise<boolean> {
    return this.sessions.replaceSession(next, previous);
  }

  getSessions(clientIds: readonly string[]): Promise<Map<string, SessionRecord>> {
    return this.sessions.getSessions(clientIds);
  }

  endSession(
    clientId: string,
    connectionId: string,
    cleanSession: boolean,
    expiresAt?: number,
  ): Promise<boolean> {
    return this.sessions.endSession(clientId, connectionId, cleanSession, expiresAt);
  }

  sessionsExpired(now: number): Promise<string[]> {
    return this.sessions.sessionsExpired(now);
  }

  deleteExpiredSession(clientId: string, now: number): Promise<boolean> {
    return this.sessions.deleteExpiredSession(clientId, now);
  }

  deferWill(
    clientId: string,
    connectionId: string,
    will: ApplicationMessage,
    dueAt: number,
  ): Promise<boolean> {
    return this.wills.deferWill(clientId, connectionId, will, dueAt);
  }

  willsDue(now: number): Promise<string[]> {
    return this.wills.willsDue(now);
  }

  takeDueWill(clientId: string, now: number): Promise<ApplicationMessage | undefined> {
    return this.wills.takeDueWill(clientId, now);
  }

  takeSendPlace(clientId: string, connectionId: string, receiveMaximum: number): Promise<boolean> {
    return this.flow.takeSendPlace(clientId, connectionId, receiveMaximum);
  }

  holdPacket(
    clientId: string,
    connectionId: string,
    receiveMaximum: number,
    held: HeldPacket,
  ): Promise<boolean> {
    return this.flow.holdPacket(clientId, connectionId, receiveMaximum, held);
  }

  claimHeldPacket(clientId: string, receiveMaximum: number): Promise<HeldPacket | undefined> {
    return this.flow.claimHeldPacket(clientId, receiveMaximum);
  }

  heldPacketSent(clientId: string): Promise<void> {
    return this.flow.heldPacketSent(clientId);
  }

  freeSendPlace(clientId: string): Promise<boolean> {
    return this.flow.freeSendPlace(clientId);
  }

  resetFlow(clientId: string, inFlight: number): Promise<void> {
    return this.flow.resetFlow(clientId, inFlight);
  }

  putSubscriptions(subscriptions: readonly SubscriptionRecord[]): Promise<string[]> {
    return this.subscriptions.putSubscriptions(subscriptions);
  }

  deleteSubscriptions(clientId: string, filters: readonly string[]): Promise<void> {
    return this.subscriptions.deleteSubscriptions(clientId, filters);
  }

  deleteStaleSubscriptions(clientId: string, keepSessionId?: string): Promise<void> {
    return this.subscriptions.deleteStaleSubscriptions(clientId, keepSessionId);
  }

  subscribedFilters(clientId: string): Promise<string[]> {
    return this.subscriptions.subscribedFilters(clientId);
  }

  subscriptionsMatching(topic: string): Promise<SubscriptionRecord[]> {
    return this.subscriptions.subscriptionsMatching(topic);
  }

  subscriptionsMatchingEach(topics: readonly string[]): Promise<Map<string, SubscriptionRecord[]>> {
    return this.subscriptions.subscriptionsMatchingEach(topics);
  }

  putMessage(message: StoredMessage): Promise<void> {
    return this.deliveries.putMessage(message);
  }

  putQoS2Message(
    message: StoredMessage,
    packetId: number,
    receiveMaximum?: number,
  ): Promise<boolean | 'exceeded'> {
    return this.deliveries.putQoS2Message(message, packetId, receiveMaximum);
  }

  releaseInboundPacketId(clientId: string, packetId: number, counted?: boolean): Promise<void> {
    return this.deliveries.releaseInboundPacketId(clientId, packetId, counted);
  }

  reservePacketId(clientId: string): Promise<{ packetId: number; seq: number }> {
    return this.deliveries.reservePacketId(clientId);
  }

  reservePacketIds(clientId: string, count: number): Promise<Array<{ packetId: number; seq: number }>> {
    return this.deliveries.reservePacketIds(clientId, count);
  }

  claimQoS2Delivery(
    clientId: string,
    messageKey: string,
  ): Promise<{ packetId: number; seq: number; first: boolean; received: boolean }> {
    return this.deliveries.claimQoS2Delivery(clientId, messageKey);
  }

  markQoS2Received(clientId: string, packetId: number): Promise<void> {
    return this.deliveries.markQoS2Received(clientId, packetId);
  }

  putOutbound(clientId: string, message: OutboundMessage, maxQueued: number): Promise<boolean> {
    return this.outbound.putOutbound(clientId, message, maxQueued);
  }

  deleteOutbound(clientId: string, packetId: number): Promise<void> {
    return this.outbound.deleteOutbound(clientId, packetId);
  }

  keepInFlight(clientId: string, message: OutboundMessage): Promise<void> {
    return this.outbound.keepInFlight(clientId, message);
  }

  forgetInFlight(clientId: string, packetId: number): Promise<void> {
    return this.outbound.forgetInFlight(clientId, packetId);
  }

  markOutboundReleased(clientId: string, packetId: number): Promise<void> {
    return this.outbound.markOutboundReleased(clientId, packetId);
  }

  markOutboundUnsent(clientId: string, packetId: number): Promise<void> {
    return this.outbound.markOutboundUnsent(clientId, packetId);
  }

  outboundMessages(clientId: string): Promise<OutboundMessage[]> {
    return this.outbound.outboundMessages(clientId);
  }

  deleteDeliveries(clientId: string): Promise<void> {
    return this.deliveries.deleteDeliveries(clientId);
  }

  putRetained(message: RetainedMessage): Promise<void> {
    return this.retained.putRetained(message);
  }

  retainedMatching(filter: string): Promise<RetainedMessage[]> {
    return this.retained.retainedMatching(filter);
  }

  touchConnection(connectionId: string, now: number, keepAliveDue?: number): Promise<void> {
    return this.sessions.touchConnection(connectionId, now, keepAliveDue);
  }

  connectionsDue(now: number): Promise<string[]> {
    return this.sessions.connectionsDue(now);
  }

  addUserConnection(user: string, connectionId: string, max: number, replacing?: string): Promise<boolean> {
    return this.userConnectionSets.addUserConnection(user, connectionId, max, replacing);
  }

  removeUserConnection(user: string, connectionId: string): Promise<void> {
    return this.userConnectionSets.removeUserConnection(user, connectionId);
  }

  userConnections(user: string): Promise<string[]> {
    return this.userConnectionSets.userConnections(user);
  }

  markSharedSubscriber(connectionId: string): Promise<void> {
    return this.sessions.markSharedSubscriber(connectionId);
  }

  savePublishBucket(connectionId: string, bucket: { tokens: number; at: number }): Promise<void> {
    return this.sessions.savePublishBucket(connectionId, bucket);
  }

  takeWill(connectionId: string): Promise<ApplicationMessage | undefined> {
    return this.sessions.takeWill(connectionId);
  }

  scanConnections(): AsyncIterable<ConnectionRecord[]> {
    return this.sessions.scanConnections();
  }

  setInboundTopicAliases(connectionId: string, aliases: Readonly<Record<string, string>>): Promise<void> {
    return this.aliases.setInboundTopicAliases(connectionId, aliases);
  }

  assignTopicAlias(clientId: string, connectionId: string, topic: string, alias: number): Promise<boolean> {
    return this.aliases.assignTopicAlias(clientId, connectionId, topic, alias);
  }

  confirmTopicAlias(clientId: string, connectionId: string, topic: string, alias: number): Promise<void> {
    return this.aliases.confirmTopicAlias(clientId, connectionId, topic, alias);
  }

  addBrokerCounters(delta: Partial<BrokerCounters>): Promise<void> {
    return this.figures.addBrokerCounters(delta);
  }

  brokerFigures(): Promise<BrokerFigures> {
    return this.figures.brokerFigures();
  }

  putAuthExchange(exchange: AuthExchange): Promise<void> {
    return this.exchanges.putAuthExchange(exchange);
  }

  getAuthExchange(connectionId: string, now: number): Promise<AuthExchange | undefined> {
    return this.exchanges.getAuthExchange(connectionId, now);
  }

  deleteAuthExchange(connectionId: string): Promise<void> {
    return this.exchanges.deleteAuthExchange(connectionId);
  }
}
