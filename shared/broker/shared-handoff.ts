/**
 * What happens to a Shared Subscription member's unacknowledged messages when
 * its session ends (MQTT 5.0 §4.8.2): each QoS 1 message, and each QoS 2 one
 * never sent, goes to another member of the group it came through.
 */

import type { OutboundMessage, SessionRecord, SubscriptionRecord } from '../ports.js';
import { encodeFrame } from '../protocol/frames.js';
import { mayRead } from './authorization.js';
import type { BrokerContext } from './context.js';
import { deliver } from './delivery.js';
import { deliveriesFor } from './fanout.js';
import { shareDeliveryKey } from './shared-subscriptions.js';

/**
 * Whether a queued message may go to another member: QoS 1 always (§4.8.2:
 * the Server SHOULD send it to another member); QoS 2 only if it never
 * reached the client, since one sent must not go to anyone else [MQTT-4.8.2-5].
 *
 * @example
 * mayHandOff({ share: '$share/g/a', qos: 2, sent: true, … }); // false
 */
export function mayHandOff(
  message: OutboundMessage,
): message is OutboundMessage & { readonly share: string; readonly shareKey: string } {
  if (message.share === undefined || message.shareKey === undefined) return false;
  return message.qos === 1 || (message.qos === 2 && !message.sent && !message.released);
}

/**
 * Hands the client id's unacknowledged shared messages to other members of
 * their groups; call it when the session ends, before its deliveries are
 * deleted. Each goes to the member the fan-out's choice names among the
 * others (online first), pinned by the group's delivery key so a retried
 * hand-off reaches that member once; with no other member it is lost, as
 * the session is. Returns how many were handed on.
 *
 * @example
 * await handOffSharedMessages(ctx, 'worker-1'); // 3
 */
export async function handOffSharedMessages(ctx: BrokerContext, clientId: string): Promise<number> {
  const messages = (await ctx.store.outboundMessages(clientId)).filter(mayHandOff);
  const groupsByTopic = new Map<string, Promise<SubscriptionRecord[]>>();
  let handed = 0;
  for (const message of messages) {
    // One lookup per topic, however many of its messages wait (ADR 0002's anchors).
    const matching =
      groupsByTopic.get(message.topic) ??
      ctx.store
        .subscriptionsMatching(message.topic)
        .then((all) => all.filter((s) => s.clientId !== clientId));
    groupsByTopic.set(message.topic, matching);
    const members = (await matching).filter((s) => s.filter === message.share);
    if (members.length === 0) continue;
    const sessions = await ctx.store.getSessions(members.map((s) => s.clientId));
    const readable = ({ clientId: id, session }: { clientId: string; session: SessionRecord }) =>
      mayRead(ctx, { user: session.owner, clientId: id }, message.topic);
    // The key the fan-out chose by: a hand-off retried, or racing a retried fan-out, picks alike.
    const [target] = deliveriesFor(
      {
        qos: message.qos,
        retain: message.retain,
        publishedAt: message.publishedAt,
        messageKey: message.shareKey,
      },
      members,
      sessions,
      readable,
    );
    if (!target) continue;
    const { session } = target;
    const outcome = await deliver(
      ctx,
      session,
      message,
      target.qos,
      {
        retain: target.retain,
        messageKey: message.shareKey,
        // Pinned at QoS 1 too, by the group's key: a retried hand-off queues it once.
        retryKey: shareDeliveryKey(message.shareKey, message.share),
        subscriptionIdentifiers: target.subscriptionIdentifiers,
        share: message.share,
      },
      (packet) =>
        ctx.gateway.send(session.connectionId ?? '', encodeFrame([packet], session.protocolVersion)),
    );
    if (outcome === 'sent' || outcome === 'queued') handed++;
  }
  return handed;
}
