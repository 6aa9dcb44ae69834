/**
 * MQTT 5 flow control toward the client (§4.9, docs/adr/0021-flow-control-server-keep-alive-will-delay.md):
 * the broker never has more QoS 1/2 PUBLISHes unacknowledged toward a client than its Receive
 * Maximum allows [MQTT-3.3.4-9]; the rest are held back and sent in order as PUBACK / PUBCOMP
 * free places. The count is a conditional counter on the session item, since deliveries come
 * from concurrent fan-out instances; the acknowledgements of one connection are handled one at a
 * time (its frame queue group), so they alone send held packets, in order.
 *
 * Toward the broker, its own Receive Maximum (`limits.receiveMaximum`, in CONNACK) is held to
 * by counting each 5.0 publisher's QoS 2 packet ids awaiting PUBREL on its session item, in the
 * same transaction that stores the message [MQTT-3.3.4-8]; QoS 1 is acknowledged once stored.
 *
 * Pay for use: only a client that sends a Receive Maximum below `flowControlThreshold` is
 * tracked; one that sends none (65,535) costs no write per delivery.
 */
import type { IPublishPacket, Packet } from 'mqtt-packet';
import type { ConnectionRecord, OutboundMessage, SendResult, SessionRecord } from '../ports.js';
import { encodeFrame, type ProtocolVersion } from '../protocol/frames.js';
import type { BrokerContext } from './context.js';

/**
 * Receive Maximums at or above this are not tracked: 65,535 is MQTT's default and as many packet
 * ids as there are, so a client that sends none, or the default, is never held back.
 */
export const flowControlThreshold = 65_535;

/** Attempts to either take a place or hold a packet while acknowledgements race them. */
const placeAttempts = 4;

/**
 * The Receive Maximum the broker tracks for a CONNECT, or undefined when it does not (3.1.1, none
 * sent, or at the threshold).
 *
 * @example
 * trackedReceiveMaximum(5, { receiveMaximum: 2 }); // 2
 * trackedReceiveMaximum(5, {}); // undefined: 65,535, nothing to track
 */
export function trackedReceiveMaximum(
  version: ProtocolVersion,
  properties: { receiveMaximum?: number } | undefined,
): number | undefined {
  const asked = version === 5 ? properties?.receiveMaximum : undefined;
  return asked !== undefined && asked < flowControlThreshold ? asked : undefined;
}

/**
 * The broker's own Receive Maximum for a connection's inbound QoS 2 PUBLISHes, or undefined when
 * none is counted: 3.1.1 clients are not told one, and 65,535 announces none [MQTT-3.3.4-8].
 */
export function inboundReceiveMaximum(
  ctx: Pick<BrokerContext, 'limits'>,
  record: Pick<ConnectionRecord, 'protocolVersion'>,
): number | undefined {
  const max = ctx.limits.receiveMaximum;
  return record.protocolVersion === 5 && max < 65_535 ? max : undefined;
}

/**
 * Sends a QoS 1/2 PUBLISH (`seq`: its packet id's reservation) to a tracked session within its
 * Receive Maximum: at once when a place is free and nothing is held before it, else held back
 * for the acknowledgements to send ('sent' then, as a queued message counts as delivered).
 * `send` posts it now; an untracked session is sent to directly.
 */
export async function sendWithinReceiveMaximum(
  ctx: BrokerContext,
  session: SessionRecord,
  seq: number,
  packet: IPublishPacket,
  send: (packet: IPublishPacket) => Promise<SendResult>,
): Promise<SendResult> {
  const max = session.receiveMaximum;
  const connectionId = session.connectionId;
  if (max === undefined || connectionId === undefined) return send(packet);
  for (let attempt = 0; attempt < placeAttempts; attempt++) {
    if (await ctx.store.takeSendPlace(session.clientId, connectionId, max)) return send(packet);
    const frame = encodeFrame([packet], session.protocolVersion);
    if (await ctx.store.holdPacket(session.clientId, connectionId, max, { seq, frame })) return 'sent';
  }
  // Neither: the client id moved to another connection (this send finds it gone), or acknowledgements
  // raced every attempt. Sending beats losing the message.
  return send(packet);
}

/**
 * PUBACK or PUBCOMP from a tracked client: its place is free again, so the oldest held packet
 * takes it and goes out. One acknowledgement frees one place, so one packet goes.
 */
export async function placeFreed(ctx: BrokerContext, record: ConnectionRecord): Promise<void> {
  const max = record.receiveMaximum;
  if (max === undefined) return;
  if (!(await ctx.store.freeSendPlace(record.clientId))) return; // nothing held: the usual case
  const held = await ctx.store.claimHeldPacket(record.clientId, max);
  if (!held) return;
  await ctx.gateway.send(record.connectionId, held.frame);
  // Only now may newer packets go straight out: this one is on the wire before them.
  await ctx.store.heldPacketSent(record.clientId);
}

/**
 * What a resumed session resends at CONNECT, within the new connection's Receive Maximum: the
 * first packets go in the CONNACK's frame, the rest are held back in order [MQTT-3.3.4-9]. Resets
 * the count of places either way, so nothing the last connection left counts against this one.
 * Returns the packets to send now.
 */
export async function resendWithinReceiveMaximum(
  ctx: BrokerContext,
  record: ConnectionRecord,
  queued: readonly OutboundMessage[],
  resends: Packet[],
): Promise<Packet[]> {
  const max = record.receiveMaximum;
  if (max === undefined) return resends;
  const now = resends.slice(0, max);
  await ctx.store.resetFlow(record.clientId, now.length);
  const seqOf = new Map(queued.map((m) => [m.packetId, m.seq]));
  for (const packet of resends.slice(max)) {
    const packetId = (packet as { messageId?: number }).messageId ?? 0;
    const frame = encodeFrame([packet], record.protocolVersion);
    await ctx.store.holdPacket(record.clientId, record.connectionId, max, {
      seq: seqOf.get(packetId) ?? 0,
      frame,
    });
  }
  return now;
}
