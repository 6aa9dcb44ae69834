import type { QoS, SessionRecord, StoredMessage, SubscriptionRecord } from '../ports.js';
import { encodeFrame } from '../protocol/frames.js';
import { mayRead } from './authorization.js';
import type { BrokerContext } from './context.js';
import { type DeliveryOutcome, deliver } from './delivery.js';
import { connectionGone } from './lifecycle.js';

export interface Delivery {
  readonly clientId: string;
  readonly session: SessionRecord;
  readonly qos: QoS;
}

/**
 * Who receives a message: one delivery per client whose current session has
 * a matching subscription, at the highest QoS among its matching
 * subscriptions, capped by the message's QoS [MQTT-3.3.5-1]. Online
 * sessions and offline persistent ones (to queue for) qualify; subscriptions
 * left by an older session of the client id, or made after the message was
 * published, are ignored.
 *
 * @example
 * deliveriesFor(message, subscriptions, sessions); // [{ clientId: 'b', qos: 1, … }]
 */
export function deliveriesFor(
  message: Pick<StoredMessage, 'qos'> & { readonly publishedAt?: number },
  subscriptions: readonly SubscriptionRecord[],
  sessions: ReadonlyMap<string, SessionRecord>,
): Delivery[] {
  const byClient = new Map<string, Delivery>();
  for (const subscription of subscriptions) {
    const session = sessions.get(subscription.clientId);
    if (!session || session.sessionId !== subscription.sessionId) continue;
    if (!session.connectionId && session.cleanSession) continue;
    // Published before the subscription existed (the fan-out was behind): the
    // subscriber had its chance through the retained store [MQTT-3.3.1-6].
    if (message.publishedAt !== undefined && (subscription.subscribedAt ?? 0) > message.publishedAt) continue;
    const qos = Math.min(subscription.qos, message.qos) as QoS;
    const known = byClient.get(subscription.clientId);
    if (!known || known.qos < qos)
      byClient.set(subscription.clientId, { clientId: subscription.clientId, session, qos });
  }
  return [...byClient.values()];
}

export type FanOutResult = Readonly<Record<DeliveryOutcome, number>>;

/**
 * Delivers one stored message to every matching subscriber, online or
 * queued. Called again for the same message when a stream batch is retried:
 * QoS 0/1 subscribers may see it twice (at least once), QoS 2 subscribers
 * get the same packet id again and discard it (exactly once).
 */
export async function fanOut(ctx: BrokerContext, message: StoredMessage): Promise<FanOutResult> {
  const result: Record<DeliveryOutcome, number> = { sent: 0, queued: 0, dropped: 0, gone: 0 };
  const subscriptions = await ctx.store.subscriptionsMatching(message.topic);
  if (subscriptions.length === 0) return result;
  const sessions = await ctx.store.getSessions(subscriptions.map((s) => s.clientId));
  const messageKey = `${message.publisher}#${message.messageId}`;
  // Each subscriber only gets what it may read, whatever its filter (a granted `#` with denied topics under it).
  const allowed = deliveriesFor(message, subscriptions, sessions).filter(({ clientId, session }) =>
    mayRead(ctx, { user: session.owner, clientId }, message.topic),
  );
  const outcomes = await Promise.all(
    allowed.map(async ({ session, qos }) => {
      const connectionId = session.connectionId;
      // [MQTT-3.3.1-9] the retain flag is not set on normal forwarding.
      const outcome = await deliver(ctx, session, message, qos, { retain: false, messageKey }, (packet) =>
        ctx.gateway.send(connectionId ?? '', encodeFrame([packet], session.protocolVersion)),
      );
      // A stale connection (its $disconnect lost) is cleaned up, never retried.
      if (outcome === 'gone' && connectionId) await connectionGone(ctx, connectionId, session);
      return outcome;
    }),
  );
  for (const outcome of outcomes) result[outcome]++;
  return result;
}
