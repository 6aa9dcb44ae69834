import type { QoS, SessionRecord, StoredMessage, SubscriptionRecord } from '../ports.js';
import type { BrokerContext } from './context.js';
import type { DeliveryOutcome } from './delivery.js';
import { fanOutBatch } from './fanout-batch.js';
import { isShared, type ShareCandidate, shareDeliveries } from './shared-subscriptions.js';

export interface Delivery {
  readonly clientId: string;
  readonly session: SessionRecord;
  readonly qos: QoS;
  /** The RETAIN flag to forward: set only for a retained message to a Retain As Published subscription. */
  readonly retain: boolean;
  /** The identifiers of the client's matching subscriptions, ascending [MQTT-3.3.4-3]. */
  readonly subscriptionIdentifiers: readonly number[];
  /** Set when the delivery is a Shared Subscription group's (`$share/…`), apart from the client's own ones. */
  readonly share?: string;
}

/**
 * Who receives a message: one delivery per client whose current session has
 * a matching subscription, at the highest QoS among its matching
 * subscriptions, capped by the message's QoS [MQTT-3.3.5-1], carrying the
 * identifiers of all of them [MQTT-3.3.4-5]. Online sessions and offline
 * persistent ones (to queue for) qualify; subscriptions left by an older
 * session of the client id, made after the message was published, or No Local
 * ones of the publisher itself are ignored. Each Shared Subscription group
 * matching adds one delivery, to one of its members `eligible` accepts
 * (shared/broker/shared-subscriptions.ts).
 *
 * @example
 * deliveriesFor(message, subscriptions, sessions); // [{ clientId: 'b', qos: 1, retain: false, … }]
 */
export function deliveriesFor(
  message: Pick<StoredMessage, 'qos'> &
    Partial<Pick<StoredMessage, 'publishedAt' | 'publisher' | 'retain' | 'messageId'>> & {
      /** The message's key, when not `publisher#messageId` (a message handed on, shared-handoff.ts). */
      readonly messageKey?: string;
    },
  subscriptions: readonly SubscriptionRecord[],
  sessions: ReadonlyMap<string, SessionRecord>,
  eligible?: (delivery: { clientId: string; session: SessionRecord }) => boolean,
): Delivery[] {
  const byClient = new Map<string, Delivery>();
  const shared: ShareCandidate[] = [];
  for (const subscription of subscriptions) {
    const session = sessions.get(subscription.clientId);
    if (!session || session.sessionId !== subscription.sessionId) continue;
    if (!session.connectionId && session.cleanSession) continue;
    // [MQTT-3.1.2-23] an offline session past its expiry is gone, whether or not the sweep came yet.
    if (
      !session.connectionId &&
      session.sessionExpiresAt !== undefined &&
      message.publishedAt !== undefined &&
      session.sessionExpiresAt <= message.publishedAt
    )
      continue;
    // Published before the subscription existed (the fan-out was behind): the
    // subscriber had its chance through the retained store [MQTT-3.3.1-6].
    if (message.publishedAt !== undefined && (subscription.subscribedAt ?? 0) > message.publishedAt) continue;
    // [MQTT-3.8.3-3] No Local: not back to the client that published it.
    if (subscription.noLocal && subscription.clientId === message.publisher) continue;
    if (isShared(subscription.filter)) {
      shared.push({ subscription, session });
      continue;
    }
    const qos = Math.min(subscription.qos, message.qos) as QoS;
    // [MQTT-3.3.1-12] Retain As Published keeps the flag; [MQTT-3.3.1-13] otherwise it is cleared.
    const retain = Boolean(message.retain && subscription.retainAsPublished);
    const ids =
      subscription.subscriptionIdentifier === undefined ? [] : [subscription.subscriptionIdentifier];
    const known = byClient.get(subscription.clientId);
    byClient.set(subscription.clientId, {
      clientId: subscription.clientId,
      session,
      qos: known && known.qos > qos ? known.qos : qos,
      retain: retain || (known?.retain ?? false),
      subscriptionIdentifiers: [...(known?.subscriptionIdentifiers ?? []), ...ids].sort((a, b) => a - b),
    });
  }
  const messageKey = message.messageKey ?? `${message.publisher}#${message.messageId}`;
  return [...byClient.values(), ...shareDeliveries(message, messageKey, shared, eligible)];
}

export type FanOutResult = Readonly<Record<DeliveryOutcome, number>>;

/**
 * Delivers one stored message to every matching subscriber, online or
 * queued: a stream batch of one ({@link fanOutBatch}).
 *
 * @example
 * await fanOut(ctx, message); // { sent: 2, queued: 1, dropped: 0, gone: 0 }
 */
export function fanOut(ctx: BrokerContext, message: StoredMessage): Promise<FanOutResult> {
  return fanOutBatch(ctx, [message]);
}
