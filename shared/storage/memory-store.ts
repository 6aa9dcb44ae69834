import type {
  AuthExchange,
  BrokerCounters,
  BrokerFigures,
  BrokerStore,
  HeldPacket,
  OutboundMessage,
  StoredMessage,
} from '../ports.js';
import { packetIdOf } from './keys.js';

import { copy } from './memory-items.js';
import { MemorySessionsStore } from './memory-sessions-store.js';

/**
 * The broker's state in memory, with exactly the semantics of `DynamoStore`
 * (conditional outcomes and result order included; test/support/store-conformance.ts
 * holds both to them). For fast tests of the broker core; nothing is persisted
 * and nothing expires. Sessions, subscriptions and retained messages are kept by
 * {@link MemorySessionsStore}; this class adds the messages, packet ids, queues,
 * flow control, authentication exchanges and broker figures.
 *
 * @example
 * const store = new MemoryStore({ now: () => 1_000 });
 * await store.claimConnection(record); // true
 * await store.claimConnection(record); // false: a second CONNECT
 */
export class MemoryStore extends MemorySessionsStore implements BrokerStore {
  async putMessage(message: StoredMessage): Promise<void> {
    this.messages.set(JSON.stringify([message.publisher, message.messageId]), copy(message));
  }

  async putQoS2Message(
    message: StoredMessage,
    packetId: number,
    receiveMaximum?: number,
  ): Promise<boolean | 'exceeded'> {
    const deliveries = this.deliveriesOf(message.publisher);
    // [MQTT-4.3.3-2] the packet id is awaiting PUBREL: a resent PUBLISH, already stored.
    if (deliveries.inbound.has(packetId)) return false;
    if (receiveMaximum !== undefined) {
      const session = this.sessions.get(message.publisher);
      if (!session || (session.inboundQoS2 ?? 0) >= receiveMaximum) return 'exceeded';
      session.inboundQoS2 = (session.inboundQoS2 ?? 0) + 1;
    }
    deliveries.inbound.add(packetId);
    await this.putMessage(message);
    return true;
  }

  async releaseInboundPacketId(clientId: string, packetId: number, counted = false): Promise<void> {
    if (!this.deliveries.get(clientId)?.inbound.delete(packetId)) return; // a repeated PUBREL
    const session = this.sessions.get(clientId);
    if (counted && session && (session.inboundQoS2 ?? 0) > 0)
      session.inboundQoS2 = (session.inboundQoS2 ?? 0) - 1;
  }

  async reservePacketId(clientId: string): Promise<{ packetId: number; seq: number }> {
    const session = this.sessions.get(clientId);
    if (!session) throw new Error(`reservePacketId: client id ${clientId} has no session`);
    const seq = (session.nextPacketId ?? 0) + 1;
    session.nextPacketId = seq;
    return { packetId: packetIdOf(seq), seq };
  }

  async reservePacketIds(clientId: string, count: number): Promise<Array<{ packetId: number; seq: number }>> {
    const session = this.sessions.get(clientId);
    if (!session) throw new Error(`reservePacketIds: client id ${clientId} has no session`);
    const first = (session.nextPacketId ?? 0) + 1;
    session.nextPacketId = first + count - 1;
    return Array.from({ length: count }, (_, i) => ({ packetId: packetIdOf(first + i), seq: first + i }));
  }

  async claimQoS2Delivery(
    clientId: string,
    messageKey: string,
  ): Promise<{ packetId: number; seq: number; first: boolean; received: boolean }> {
    // Reserved before the marker is checked, as in DynamoDB: a retry uses up a packet id too.
    const reserved = await this.reservePacketId(clientId);
    const deliveries = this.deliveriesOf(clientId);
    const marker = deliveries.qos2.get(messageKey);
    if (marker) return { ...marker, first: false };
    deliveries.qos2.set(messageKey, { ...reserved, received: false });
    deliveries.qos2ByPacketId.set(reserved.packetId, messageKey);
    return { ...reserved, first: true, received: false };
  }

  async markQoS2Received(clientId: string, packetId: number): Promise<void> {
    const deliveries = this.deliveries.get(clientId);
    const messageKey = deliveries?.qos2ByPacketId.get(packetId);
    const marker = messageKey === undefined ? undefined : deliveries?.qos2.get(messageKey);
    if (marker) marker.received = true;
  }

  async putOutbound(clientId: string, message: OutboundMessage, maxQueued: number): Promise<boolean> {
    const deliveries = this.deliveriesOf(clientId);
    if (deliveries.outbound.has(message.packetId)) return true; // a retried fan-out: already queued
    const session = this.sessions.get(clientId);
    if (!session) return false; // the session ended while the fan-out ran: nothing to queue for
    const queued = session.queued ?? 0;
    if (queued >= maxQueued) return false;
    session.queued = queued + 1;
    deliveries.outbound.set(message.packetId, copy(message));
    return true;
  }

  async deleteOutbound(clientId: string, packetId: number): Promise<void> {
    if (!this.deliveries.get(clientId)?.outbound.delete(packetId)) return; // a repeated acknowledgement
    const session = this.sessions.get(clientId);
    if (session) session.queued = (session.queued ?? 0) - 1;
  }

  async keepInFlight(clientId: string, message: OutboundMessage): Promise<void> {
    const deliveries = this.deliveriesOf(clientId);
    if (!deliveries.outbound.has(message.packetId)) deliveries.outbound.set(message.packetId, copy(message));
  }

  async forgetInFlight(clientId: string, packetId: number): Promise<void> {
    this.deliveries.get(clientId)?.outbound.delete(packetId);
  }

  async markOutboundReleased(clientId: string, packetId: number): Promise<void> {
    const outbound = this.deliveries.get(clientId)?.outbound;
    const message = outbound?.get(packetId);
    if (outbound && message) outbound.set(packetId, { ...message, released: true });
  }

  async markOutboundUnsent(clientId: string, packetId: number): Promise<void> {
    const outbound = this.deliveries.get(clientId)?.outbound;
    const message = outbound?.get(packetId);
    if (outbound && message) outbound.set(packetId, { ...message, sent: false });
  }

  async outboundMessages(clientId: string): Promise<OutboundMessage[]> {
    return [...(this.deliveries.get(clientId)?.outbound.values() ?? [])]
      .sort((a, b) => a.seq - b.seq || a.packetId - b.packetId)
      .map((m) => ({
        packetId: m.packetId,
        seq: m.seq,
        topic: m.topic,
        payload: copy(m.payload),
        qos: m.qos,
        retain: Boolean(m.retain),
        sent: Boolean(m.sent),
        released: Boolean(m.released),
        ...(m.properties ? { properties: copy(m.properties) } : {}),
        ...(m.publishedAt !== undefined ? { publishedAt: m.publishedAt } : {}),
        ...(m.subscriptionIdentifiers ? { subscriptionIdentifiers: [...m.subscriptionIdentifiers] } : {}),
        ...(m.share !== undefined ? { share: m.share } : {}),
        ...(m.shareKey !== undefined ? { shareKey: m.shareKey } : {}),
      }));
  }

  async deleteDeliveries(clientId: string): Promise<void> {
    const hadInbound = (this.deliveries.get(clientId)?.inbound.size ?? 0) > 0;
    this.deliveries.delete(clientId);
    const session = this.sessions.get(clientId);
    if (hadInbound && session) delete session.inboundQoS2;
  }

  async takeSendPlace(clientId: string, connectionId: string, receiveMaximum: number): Promise<boolean> {
    const session = this.sessions.get(clientId);
    if (session?.connectionId !== connectionId) return false;
    if ((session.inFlight ?? 0) >= receiveMaximum || (session.waiting ?? 0) > 0) return false;
    session.inFlight = (session.inFlight ?? 0) + 1;
    return true;
  }

  async holdPacket(
    clientId: string,
    connectionId: string,
    receiveMaximum: number,
    held: HeldPacket,
  ): Promise<boolean> {
    const deliveries = this.deliveriesOf(clientId);
    if (deliveries.held.has(held.seq)) return true; // a retried fan-out: already held
    const session = this.sessions.get(clientId);
    if (session?.connectionId !== connectionId) return false;
    if ((session.inFlight ?? 0) < receiveMaximum && (session.waiting ?? 0) === 0) return false;
    session.waiting = (session.waiting ?? 0) + 1;
    deliveries.held.set(held.seq, copy(held));
    return true;
  }

  async claimHeldPacket(clientId: string, receiveMaximum: number): Promise<HeldPacket | undefined> {
    const held = this.deliveries.get(clientId)?.held;
    const session = this.sessions.get(clientId);
    const oldest = Math.min(...(held?.keys() ?? []));
    const packet = held?.get(oldest);
    if (!held || !session || !packet || (session.inFlight ?? 0) >= receiveMaximum) return undefined;
    held.delete(oldest);
    session.inFlight = (session.inFlight ?? 0) + 1;
    return copy(packet);
  }

  async heldPacketSent(clientId: string): Promise<void> {
    const session = this.sessions.get(clientId);
    if (session && (session.waiting ?? 0) > 0) session.waiting = (session.waiting ?? 0) - 1;
  }

  async freeSendPlace(clientId: string): Promise<boolean> {
    const session = this.sessions.get(clientId);
    if (!session) return false;
    if ((session.inFlight ?? 0) > 0) session.inFlight = (session.inFlight ?? 0) - 1;
    return (session.waiting ?? 0) > 0;
  }

  async resetFlow(clientId: string, inFlight: number): Promise<void> {
    this.deliveries.get(clientId)?.held.clear();
    const session = this.sessions.get(clientId);
    if (!session) return;
    session.inFlight = inFlight;
    session.waiting = 0;
  }

  async putAuthExchange(exchange: AuthExchange): Promise<void> {
    this.exchanges.set(exchange.connectionId, copy(exchange));
  }

  async getAuthExchange(connectionId: string, now: number): Promise<AuthExchange | undefined> {
    const exchange = this.exchanges.get(connectionId);
    return exchange && exchange.expiresAt > now ? copy(exchange) : undefined;
  }

  async deleteAuthExchange(connectionId: string): Promise<void> {
    this.exchanges.delete(connectionId);
  }

  async addBrokerCounters(delta: Partial<BrokerCounters>): Promise<void> {
    this.counters = {
      messagesReceived: this.counters.messagesReceived + (delta.messagesReceived ?? 0),
      messagesSent: this.counters.messagesSent + (delta.messagesSent ?? 0),
    };
  }

  async brokerFigures(): Promise<BrokerFigures> {
    const count = (partitions: Map<string, Map<string, unknown>>) =>
      [...partitions.values()].reduce((sum, partition) => sum + partition.size, 0);
    return {
      ...this.counters,
      subscriptions: count(this.subscriptions),
      retainedMessages: count(this.retained),
    };
  }
}
