import type { IPublishPacket } from 'mqtt-packet';
import { propertiesSize, publishProperties, remainingExpiry } from '../message-properties.js';
import type { ApplicationMessage, OutboundMessage, QoS, SendResult, SessionRecord } from '../ports.js';
import type { BrokerContext } from './context.js';
import { sendWithinReceiveMaximum } from './flow-control.js';
import { largestPacketFor } from './outbox.js';
import { shareDeliveryKey } from './shared-subscriptions.js';

export type DeliveryOutcome = 'sent' | 'queued' | 'dropped' | 'gone';

/**
 * The encoded size of the PUBLISH carrying `message` at `qos`, without encoding
 * it (a fan-out checks it once per subscriber): topic, packet id, the MQTT 5
 * property block, payload, then the fixed header and its Remaining Length.
 *
 * @example
 * publishSize({ topic: 'a', payload: new Uint8Array(3) }, 1, 4); // 10
 */
export function publishSize(
  message: Pick<ApplicationMessage, 'topic' | 'payload' | 'properties'>,
  qos: QoS,
  version: 4 | 5,
  subscriptionIdentifiers: readonly number[] = [],
): number {
  // The publisher's properties, then each Subscription Identifier: its id byte and a Variable Byte Integer.
  const props =
    version === 5
      ? propertiesSize(message.properties) +
        subscriptionIdentifiers.reduce((sum, id) => sum + 1 + varIntSize(id), 0)
      : 0;
  const remaining =
    2 +
    Buffer.byteLength(message.topic) +
    (qos > 0 ? 2 : 0) +
    (version === 5 ? varIntSize(props) + props : 0) +
    message.payload.length;
  return 1 + varIntSize(remaining) + remaining;
}

/** The bytes of a Variable Byte Integer (5.0 §1.5.5). */
function varIntSize(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

/** How a packet reaches the session's connection: posted now, or added to a reply frame. */
export type PacketSink = (packet: IPublishPacket) => Promise<SendResult>;

/**
 * Sends one message to one session at `qos`, keeping what QoS 1 and 2 need:
 * a packet id, for a persistent session a stored copy until acknowledged
 * (queued while offline), and for QoS 2 the same packet id on every retry of
 * the same message, so the receiver discards repeats [MQTT-4.3.3-2].
 *
 * A message larger than the client can be sent is dropped before any of
 * this [MQTT-3.1.2-25], and so is one whose expiry interval has passed
 * [MQTT-3.3.2-5]. An MQTT 5 session gets the publisher's properties, with
 * what is left of the expiry interval [MQTT-3.3.2-6]; a 3.1.1 one the bare
 * message. `retryKey` pins the packet id at QoS 1 as at QoS 2, so a retried
 * caller queues the message once. A Shared Subscription group's delivery
 * (`share`) is pinned by the group's key, and even a clean session keeps a
 * QoS 1 one until PUBACK, to hand on if it ends first (shared-handoff.ts).
 *
 * @example
 * await deliver(ctx, session, message, 1, { retain: false, messageKey: 'pub#id' }, post);
 */
export async function deliver(
  ctx: BrokerContext,
  session: SessionRecord,
  message: ApplicationMessage & { readonly publishedAt?: number },
  qos: QoS,
  options: {
    retain: boolean;
    messageKey?: string;
    retryKey?: string;
    /** The matching MQTT 5 subscriptions' identifiers, all in the one PUBLISH [MQTT-3.3.4-3]. */
    subscriptionIdentifiers?: readonly number[];
    /** The Shared Subscription group it goes to (its `$share/…` filter), as one of its members. */
    share?: string;
    /** Where an unpinned QoS 1 packet id comes from (a reserved range); the store's counter by default. */
    reservePacketId?: () => Promise<{ packetId: number; seq: number }>;
  },
  sink: PacketSink,
): Promise<DeliveryOutcome> {
  const online = session.connectionId !== undefined;
  const remaining = remainingExpiry(message, ctx.now());
  if (remaining === 'expired') return 'dropped'; // [MQTT-3.3.2-5]
  const properties =
    session.protocolVersion === 5 ? publishProperties(message.properties, remaining) : undefined;
  const subscriptionIdentifiers =
    session.protocolVersion === 5 ? (options.subscriptionIdentifiers ?? []) : [];
  const packet: IPublishPacket = {
    cmd: 'publish',
    topic: message.topic,
    payload: Buffer.from(message.payload),
    qos,
    retain: options.retain,
    dup: false,
    ...(properties || subscriptionIdentifiers.length > 0
      ? {
          properties: {
            ...properties,
            ...(subscriptionIdentifiers.length > 0
              ? { subscriptionIdentifier: [...subscriptionIdentifiers] }
              : {}),
          },
        }
      : {}),
  };
  // An offline session's next connection may allow more: only the gateway's own limit applies.
  const largest = largestPacketFor(online ? session.maximumPacketSize : undefined);
  if (publishSize(message, qos, session.protocolVersion, subscriptionIdentifiers) > largest) return 'dropped';
  // One message reaches each group once, whichever member: the group's key pins QoS 2 [MQTT-4.3.3-2].
  const deliveryKey =
    options.share !== undefined && options.messageKey !== undefined
      ? shareDeliveryKey(options.messageKey, options.share)
      : options.messageKey;
  const pinKey = options.retryKey ?? (qos === 2 ? deliveryKey : undefined);
  let seq: number | undefined; // the reservation's order, for flow control
  let keptAsSent = false;
  if (qos === 0) {
    if (!online) return 'dropped'; // QoS 0 is not queued for offline sessions
  } else {
    const id = pinKey
      ? await ctx.store.claimQoS2Delivery(session.clientId, pinKey)
      : {
          ...(await (options.reservePacketId?.() ?? ctx.store.reservePacketId(session.clientId))),
          first: true,
          received: false,
        };
    // [MQTT-4.3.3-1] once PUBREC came back, a retried fan-out must not send the PUBLISH again.
    if (id.received) return 'sent';
    packet.messageId = id.packetId;
    seq = id.seq;
    packet.dup = !id.first; // [MQTT-3.3.1-1] a resend of the same delivery
    // A group's QoS 1 message is kept even for a clean session, to hand to another member if the
    // session ends unacknowledged (§4.8.2); a QoS 2 one never moves once sent [MQTT-4.8.2-5].
    if (!session.cleanSession || (options.share !== undefined && qos === 1)) {
      const kept = await keepCopy(ctx, session, {
        topic: message.topic,
        payload: message.payload,
        ...(message.properties ? { properties: message.properties } : {}),
        // The expiry runs on while queued, from the publication [MQTT-3.3.2-5].
        ...(remaining !== undefined ? { publishedAt: message.publishedAt } : {}),
        qos,
        retain: options.retain,
        packetId: id.packetId,
        seq: id.seq,
        sent: online,
        released: false,
        ...(subscriptionIdentifiers.length > 0 ? { subscriptionIdentifiers } : {}),
        ...(options.share !== undefined ? { share: options.share, shareKey: options.messageKey } : {}),
      });
      if (!kept) return 'dropped';
      keptAsSent = online;
    }
    if (!online) return session.cleanSession ? 'dropped' : 'queued';
  }
  // [MQTT-3.3.4-9] within the client's Receive Maximum, when flow control tracks it.
  const sent = await (seq === undefined
    ? sink(packet)
    : sendWithinReceiveMaximum(ctx, session, seq, packet, sink));
  if (sent !== 'gone') return 'sent';
  // The connection was gone: onward delivery never started, so the copy waits as unsent, its
  // expiry running [MQTT-3.3.2-5], and goes without DUP when the client is back.
  if (keptAsSent && packet.messageId !== undefined) {
    await ctx.store.markOutboundUnsent(session.clientId, packet.messageId);
  }
  return 'gone';
}

/**
 * Keeps a session's copy of a message until acknowledged: queued and counted for a persistent
 * session (false when its queue is full or it is gone); a clean session's copy, kept only to hand a
 * shared message on, is one write outside the queue's bound.
 */
async function keepCopy(ctx: BrokerContext, session: SessionRecord, copy: OutboundMessage): Promise<boolean> {
  if (!session.cleanSession) return ctx.store.putOutbound(session.clientId, copy, ctx.maxQueuedPerSession);
  await ctx.store.keepInFlight(session.clientId, copy);
  return true;
}
