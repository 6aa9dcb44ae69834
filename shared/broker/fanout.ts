import type { IPublishPacket } from 'mqtt-packet';
import type { QoS, SessionRecord, StoredMessage, SubscriptionRecord } from '../ports.js';
import { encodeFrame } from '../protocol/frames.js';
import type { BrokerContext } from './context.js';
import { connectionGone } from './lifecycle.js';

export interface Delivery {
  readonly clientId: string;
  readonly connectionId: string;
  readonly session: SessionRecord;
  readonly qos: QoS;
}

/**
 * Who receives a message: one delivery per online client whose current
 * session has a matching subscription, at the highest QoS among its matching
 * subscriptions, capped by the message's QoS [MQTT-3.3.5-1]. Subscriptions
 * left by an older session of the client id are ignored.
 *
 * @example
 * deliveriesFor(message, subscriptions, sessions); // [{ clientId: 'b', qos: 1, … }]
 */
export function deliveriesFor(
  message: Pick<StoredMessage, 'qos'>,
  subscriptions: readonly SubscriptionRecord[],
  sessions: ReadonlyMap<string, SessionRecord>,
): Delivery[] {
  const byClient = new Map<string, Delivery>();
  for (const subscription of subscriptions) {
    const session = sessions.get(subscription.clientId);
    if (!session?.connectionId || session.sessionId !== subscription.sessionId) continue;
    const qos = Math.min(subscription.qos, message.qos) as QoS;
    const known = byClient.get(subscription.clientId);
    if (!known || known.qos < qos) {
      byClient.set(subscription.clientId, {
        clientId: subscription.clientId,
        connectionId: session.connectionId,
        session,
        qos,
      });
    }
  }
  return [...byClient.values()];
}

export interface FanOutResult {
  readonly delivered: number;
  readonly gone: number;
}

/**
 * Delivers one stored message to every matching online subscriber. Called
 * again for the same message when a stream batch is retried, so a QoS 0/1
 * subscriber may see it twice (at least once), never lose it.
 */
export async function fanOut(ctx: BrokerContext, message: StoredMessage): Promise<FanOutResult> {
  const subscriptions = await ctx.store.subscriptionsMatching(message.topic);
  if (subscriptions.length === 0) return { delivered: 0, gone: 0 };
  const sessions = await ctx.store.getSessions(subscriptions.map((s) => s.clientId));
  const deliveries = deliveriesFor(message, subscriptions, sessions);
  const outcomes = await Promise.all(
    deliveries.map(async (delivery) => {
      const packet: IPublishPacket = {
        cmd: 'publish',
        topic: message.topic,
        payload: Buffer.from(message.payload),
        qos: delivery.qos,
        // [MQTT-3.3.1-9] the retain flag is not set on normal forwarding.
        retain: false,
        dup: false,
      };
      if (delivery.qos > 0) [packet.messageId] = await ctx.store.reservePacketIds(delivery.clientId, 1);
      const sent = await ctx.gateway.send(
        delivery.connectionId,
        encodeFrame([packet], delivery.session.protocolVersion),
      );
      // A stale connection (its $disconnect lost) is cleaned up, never retried.
      if (sent === 'gone') await connectionGone(ctx, delivery.connectionId, delivery.session);
      return sent;
    }),
  );
  const gone = outcomes.filter((o) => o === 'gone').length;
  return { delivered: outcomes.length - gone, gone };
}
