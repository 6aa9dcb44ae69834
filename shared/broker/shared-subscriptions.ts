/**
 * Shared Subscriptions (MQTT 5.0 §4.8.2): which member of a group gets a
 * message. Pure functions, no I/O: every fan-out instance computes the same
 * choice from the same subscriptions and sessions, with no coordination, and
 * a retried fan-out picks the member it picked before
 * (docs/adr/0020-shared-subscriptions.md).
 */
import { createHash } from 'node:crypto';
import type { QoS, SessionRecord, SubscriptionRecord } from '../ports.js';
import { sharePrefix } from '../topics.js';

/** A shared subscription whose session may take the message (the fan-out checked it). */
export interface ShareCandidate {
  readonly subscription: SubscriptionRecord;
  readonly session: SessionRecord;
}

/** One group's delivery: to one member, through that member's own subscription. */
export interface ShareDelivery {
  readonly clientId: string;
  readonly session: SessionRecord;
  readonly qos: QoS;
  readonly retain: boolean;
  /** Only the receiving member's own identifier (§3.3.4: a shared subscription's are the receiver's). */
  readonly subscriptionIdentifiers: readonly number[];
  /** The group: its `$share/{ShareName}/{filter}` filter. */
  readonly share: string;
}

/**
 * Whether a stored subscription is a Shared Subscription (only well-formed
 * ones are ever stored).
 *
 * @example
 * isShared('$share/workers/jobs/+'); // true
 */
export const isShared = (filter: string): boolean => filter.startsWith(sharePrefix);

/**
 * The key of one message's delivery to one group: the message's key and a
 * digest of the group, short whatever the filter's length. It pins a QoS 2
 * delivery's packet id, so a retry, or a hand-off to the member a retry
 * already reached, is recognised as the same delivery [MQTT-4.3.3-2].
 *
 * @example
 * shareDeliveryKey('pub#m1', '$share/g/a'); // 'pub#m1#s:…'
 */
export function shareDeliveryKey(messageKey: string, share: string): string {
  return `${messageKey}#s:${createHash('sha256').update(share).digest('base64url').slice(0, 22)}`;
}

/** A member's weight for a message: the first 48 bits of a digest of both. */
function weight(key: string, clientId: string): number {
  return createHash('sha256').update(key).update('\u0000').update(clientId).digest().readUIntBE(0, 6);
}

/**
 * The member of one group that gets a message: among members whose session
 * is online, else among all (an offline persistent member queues it), the one
 * with the highest weight for the message's delivery key (rendezvous hashing).
 * Deterministic, spread evenly, and a member joining or leaving moves only the
 * messages it wins or won.
 *
 * @example
 * chooseMember(members, shareDeliveryKey('pub#m1', '$share/g/a')); // one of members
 */
export function chooseMember<T extends ShareCandidate>(members: readonly T[], key: string): T | undefined {
  const online = members.filter((m) => m.session.connectionId !== undefined);
  const pool = online.length > 0 ? online : members;
  let best: T | undefined;
  let bestWeight = -1;
  for (const member of pool) {
    const w = weight(key, member.subscription.clientId);
    // Ties (vanishingly rare) go to the lower client id, so every instance agrees.
    if (
      w > bestWeight ||
      (w === bestWeight && best && member.subscription.clientId < best.subscription.clientId)
    ) {
      best = member;
      bestWeight = w;
    }
  }
  return best;
}

/**
 * One delivery per Shared Subscription group matching a message: each group
 * (ShareName and filter together) gives the message to exactly one of its
 * members, at the QoS that member was granted [MQTT-4.8.2-3]. Groups are
 * independent of each other and of the members' non-shared subscriptions: a
 * client may get the message once through each. `eligible` leaves out members
 * that may not receive it (their read rights), so the group still gets it.
 *
 * @example
 * shareDeliveries({ qos: 1 }, 'pub#m1', candidates); // [{ share: '$share/g/a', clientId: 'w2', … }]
 */
export function shareDeliveries(
  message: { readonly qos: QoS; readonly retain?: boolean },
  messageKey: string,
  candidates: readonly ShareCandidate[],
  eligible: (candidate: { clientId: string; session: SessionRecord }) => boolean = () => true,
): ShareDelivery[] {
  const groups = new Map<string, ShareCandidate[]>();
  for (const candidate of candidates) {
    if (!eligible({ clientId: candidate.subscription.clientId, session: candidate.session })) continue;
    const members = groups.get(candidate.subscription.filter) ?? [];
    members.push(candidate);
    groups.set(candidate.subscription.filter, members);
  }
  return [...groups].flatMap(([share, members]) => {
    const chosen = chooseMember(members, shareDeliveryKey(messageKey, share));
    if (!chosen) return [];
    const { subscription, session } = chosen;
    const id = subscription.subscriptionIdentifier;
    return [
      {
        clientId: subscription.clientId,
        session,
        qos: Math.min(subscription.qos, message.qos) as QoS,
        // [MQTT-3.3.1-12] Retain As Published applies to a shared subscription as to any other.
        retain: Boolean(message.retain && subscription.retainAsPublished),
        subscriptionIdentifiers: id === undefined ? [] : [id],
        share,
      },
    ];
  });
}
