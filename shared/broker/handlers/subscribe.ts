import { createHash } from 'node:crypto';
import type { IPublishPacket, ISubscribePacket, IUnsubackPacket, IUnsubscribePacket } from 'mqtt-packet';
import type { ConnectionRecord, QoS, SubscriptionRecord } from '../../ports.js';
import { isValidTopicFilter, parseSharedFilter } from '../../topics.js';
import { mayRead, maySubscribe } from '../authorization.js';
import { type BrokerContext, brokerMaximumQoS, type Invocation } from '../context.js';
import { deliver } from '../delivery.js';
import { filterQuotaCode, subscriptionQuota } from '../packet-rules.js';
import { ReasonCode, SubackFailure } from '../reason-codes.js';

/**
 * The SUBACK code for one requested filter: the granted QoS, or why it was refused. A
 * `$share/{ShareName}/{filter}` is a Shared Subscription at either protocol level (3.1.1 clients
 * get them too, as from Mosquitto); a malformed one is an invalid filter [MQTT-4.8.2-1] [MQTT-4.8.2-2].
 */
export function grantFor(filter: string, requestedQoS: QoS, version: 4 | 5): number {
  const valid = parseSharedFilter(filter) !== 'malformed' && isValidTopicFilter(filter);
  if (!valid) return version === 5 ? ReasonCode.TopicFilterInvalid : SubackFailure;
  // [MQTT-3.8.4-6] the server may grant a lower QoS than requested.
  return Math.min(requestedQoS, brokerMaximumQoS);
}

/** SUBSCRIBE: store each acceptable subscription, then SUBACK in request order [MQTT-3.8.4-4]. */
export async function handleSubscribe(
  ctx: BrokerContext,
  invocation: Invocation,
  record: ConnectionRecord,
  packet: ISubscribePacket,
) {
  const version = record.protocolVersion;
  const { maxSubscriptionsPerSession } = ctx.limits;
  const overQuota = subscriptionQuota(
    await ctx.store.subscribedFilters(record.clientId),
    maxSubscriptionsPerSession,
    version,
  );
  const who = { user: record.user, clientId: record.clientId };
  const granted = packet.subscriptions.map((s, i) => {
    const code = filterQuotaCode(s.topic, i, version, ctx.limits) ?? grantFor(s.topic, s.qos, version);
    // Refused only for this filter; the others in the packet are granted [MQTT-3.9.3-1].
    if (code <= 2 && !maySubscribe(ctx, who, s.topic))
      return version === 5 ? ReasonCode.NotAuthorized : SubackFailure;
    return code <= 2 ? (overQuota(s.topic) ?? code) : code;
  });
  // A filter repeated in one packet: the last request wins [MQTT-3.8.4-3].
  const accepted = new Map<string, { subscription: SubscriptionRecord; retainHandling: number }>();
  // [MQTT-3.8.2-1] the identifier belongs to every subscription the packet makes or updates.
  const subscriptionIdentifier = version === 5 ? packet.properties?.subscriptionIdentifier : undefined;
  packet.subscriptions.forEach((s, i) => {
    const code = granted[i];
    if (code <= 2) {
      const subscription: SubscriptionRecord = {
        clientId: record.clientId,
        sessionId: record.sessionId,
        filter: s.topic,
        qos: code as QoS,
        subscribedAt: ctx.now(),
        ...(version === 5 && s.nl ? { noLocal: true } : {}),
        ...(version === 5 && s.rap ? { retainAsPublished: true } : {}),
        ...(subscriptionIdentifier ? { subscriptionIdentifier } : {}),
      };
      accepted.set(s.topic, { subscription, retainHandling: version === 5 ? (s.rh ?? 0) : 0 });
    }
  });
  // Written before SUBACK: once the client sees it, matching publishes reach it.
  const created = new Set(
    await ctx.store.putSubscriptions([...accepted.values()].map((a) => a.subscription)),
  );
  const shared = [...accepted.keys()].some((filter) => parseSharedFilter(filter) !== undefined);
  // Noted once per connection: a clean session's PUBACK then removes the copy a shared QoS 1 delivery
  // keeps, and the connection's end hands its group messages on (shared-handoff.ts).
  if (shared && !record.sharedSubscriber) await ctx.store.markSharedSubscriber(record.connectionId);
  // mqtt-packet carries SUBACK reason codes (5.0) and return codes (3.1.1) alike in `granted`.
  invocation.outbox.push({ cmd: 'suback', messageId: packet.messageId, granted });
  const wantRetained = [...accepted.values()].filter(
    ({ subscription, retainHandling }) =>
      // §4.8.2: a new Shared Subscription gets no retained messages.
      parseSharedFilter(subscription.filter) === undefined &&
      // [MQTT-3.3.1-9] 0: always; [MQTT-3.3.1-10] 1: only for a new subscription; [MQTT-3.3.1-11] 2: never.
      (retainHandling === 0 || (retainHandling === 1 && created.has(subscription.filter))),
  );
  await sendRetained(
    ctx,
    invocation,
    record,
    wantRetained.map((a) => a.subscription),
  );
}

/**
 * [MQTT-3.3.1-6] on subscribe, the retained messages matching each new filter
 * follow the SUBACK in the same frame, retain flag set [MQTT-3.3.1-8], at
 * the lower of their QoS and the granted one.
 */
async function sendRetained(
  ctx: BrokerContext,
  invocation: Invocation,
  record: ConnectionRecord,
  subscriptions: readonly SubscriptionRecord[],
) {
  const session = {
    clientId: record.clientId,
    sessionId: record.sessionId,
    connectionId: record.connectionId,
    protocolVersion: record.protocolVersion,
    cleanSession: record.cleanSession,
    maximumPacketSize: record.maximumPacketSize,
  };
  const toReplyFrame = async (publish: IPublishPacket) => {
    invocation.outbox.push(publish);
    return 'sent' as const;
  };
  // Queried together (up to the filters-per-SUBSCRIBE quota), delivered in request order.
  const matches = await Promise.all(subscriptions.map((s) => ctx.store.retainedMatching(s.filter)));
  for (const [i, subscription] of subscriptions.entries()) {
    for (const retained of matches[i]) {
      // A filter may be granted while some topics under it are denied.
      if (!mayRead(ctx, { user: record.user, clientId: record.clientId }, retained.topic)) continue;
      const qos = Math.min(retained.qos, subscription.qos) as QoS;
      // A redelivered SUBSCRIBE frame reuses each packet id, so the session's queue gets one copy.
      const retryKey = invocation.frameId && retainedRetryKey(invocation.frameId, retained.topic);
      const subscriptionIdentifiers = subscription.subscriptionIdentifier
        ? [subscription.subscriptionIdentifier]
        : undefined;
      await deliver(
        ctx,
        session,
        retained,
        qos,
        { retain: true, retryKey, subscriptionIdentifiers },
        toReplyFrame,
      );
    }
  }
}

/** The key pinning one retained message's packet id for one SUBSCRIBE frame: short, whatever the topic's length. */
function retainedRetryKey(frameId: string, topic: string): string {
  return `sub#${frameId}#${createHash('sha256').update(topic).digest('base64url')}`;
}

/** UNSUBSCRIBE: delete the subscriptions, then UNSUBACK [MQTT-3.10.4-4]. */
export async function handleUnsubscribe(
  ctx: BrokerContext,
  invocation: Invocation,
  record: ConnectionRecord,
  packet: IUnsubscribePacket,
) {
  await ctx.store.deleteSubscriptions(record.clientId, packet.unsubscriptions);
  // `granted` holds the 5.0 reason codes; a 3.1.1 UNSUBACK has none and mqtt-packet ignores it.
  const unsuback: IUnsubackPacket = {
    cmd: 'unsuback',
    messageId: packet.messageId,
    granted: packet.unsubscriptions.map(() => ReasonCode.Success),
  };
  invocation.outbox.push(unsuback);
}
