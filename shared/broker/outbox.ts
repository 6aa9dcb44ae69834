import mqttPacket, { type Packet } from 'mqtt-packet';
import type { ProtocolVersion } from '../protocol/frames.js';
import { MAX_FRAME_BYTES, planFrames, encodeFrame as wireFrame } from '../protocol/wire.js';
import { type BrokerContext, type Invocation, versionOf } from './context.js';

/**
 * The largest packet a client can be sent: what one API Gateway post carries,
 * or less when the client announced a smaller MQTT 5 Maximum Packet Size.
 *
 * @example
 * largestPacketFor(4096); // 4096
 * largestPacketFor(undefined); // 98304
 */
export function largestPacketFor(clientMaximum: number | undefined): number {
  return Math.min(MAX_FRAME_BYTES, clientMaximum ?? MAX_FRAME_BYTES);
}

/** Replies split into posts: each post's text, and the packets too large for the client to be sent at all. */
export interface PlannedPosts {
  readonly posts: string[];
  readonly dropped: Packet[];
}

/**
 * Splits packets, in order, into as few posts as API Gateway takes (each at
 * most 128 KB of base64), leaving out any packet larger than `largestPacket`.
 *
 * @example
 * planPosts([connack, ...resent], 4, largestPacketFor(undefined)).posts.length; // 2 for 3 × 70 KB
 */
export function planPosts(
  packets: readonly Packet[],
  version: ProtocolVersion,
  largestPacket: number,
): PlannedPosts {
  const dropped: Packet[] = [];
  const sendable: Uint8Array[] = [];
  for (const packet of packets) {
    const bytes = encodeWithin(packet, version, largestPacket);
    if (bytes.length > largestPacket) dropped.push(packet);
    else sendable.push(bytes);
  }
  return { posts: planFrames(sendable, MAX_FRAME_BYTES).frames.map(wireFrame), dropped };
}

/**
 * A packet's bytes, without its reason string when only that makes it larger
 * than the client takes: the string is advice, the packet is not
 * [MQTT-3.2.2-19] [MQTT-3.4.2-2] [MQTT-3.5.2-2] [MQTT-3.14.2-3].
 */
function encodeWithin(packet: Packet, version: ProtocolVersion, largestPacket: number): Uint8Array {
  const bytes = mqttPacket.generate(packet, { protocolVersion: version });
  const properties = (packet as { properties?: { reasonString?: string } }).properties;
  if (bytes.length <= largestPacket || properties?.reasonString === undefined) return bytes;
  const { reasonString: _, ...rest } = properties;
  return mqttPacket.generate({ ...packet, properties: rest } as Packet, { protocolVersion: version });
}

/**
 * Sends an invocation's replies: as one post when they fit, else over several
 * in order. A PUBLISH too large for the client is discarded as if it had been
 * delivered [MQTT-3.1.2-25]: for QoS 1/2 it also leaves the session's queue,
 * so it is not resent on every reconnect.
 */
export async function flushOutbox(ctx: BrokerContext, invocation: Invocation): Promise<void> {
  if (invocation.outbox.length === 0) return;
  const { record } = invocation;
  const { posts, dropped } = planPosts(
    invocation.outbox,
    versionOf(invocation),
    largestPacketFor(record?.maximumPacketSize),
  );
  for (const packet of dropped) {
    if (record && packet.cmd === 'publish' && packet.qos > 0 && packet.messageId !== undefined)
      await ctx.store.deleteOutbound(record.clientId, packet.messageId);
  }
  for (const post of posts) {
    if ((await ctx.gateway.send(invocation.connectionId, post)) === 'gone') return;
  }
}
