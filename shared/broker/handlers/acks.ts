import type { IPubackPacket, IPubcompPacket, IPubrecPacket, IPubrelPacket } from 'mqtt-packet';
import type { ConnectionRecord } from '../../ports.js';
import type { BrokerContext, Invocation } from '../context.js';
import { inboundReceiveMaximum, placeFreed } from '../flow-control.js';

/**
 * Acknowledgements of QoS 1 and 2 flows, both directions. A clean session
 * keeps no copies, so only persistent sessions have state to update, except
 * QoS 1 deliveries through a Shared Subscription (kept to hand on, §4.8.2).
 */
export async function handleAck(
  ctx: BrokerContext,
  invocation: Invocation,
  record: ConnectionRecord,
  packet: IPubackPacket | IPubrecPacket | IPubrelPacket | IPubcompPacket,
) {
  const packetId = packet.messageId ?? 0;
  switch (packet.cmd) {
    case 'puback': // [MQTT-4.3.2-1] QoS 1 delivery done
      // [MQTT-4.8.2-6] whatever its reason code: a refused message is discarded, never handed on.
      if (!record.cleanSession) await ctx.store.deleteOutbound(record.clientId, packetId);
      else if (record.sharedSubscriber) await ctx.store.forgetInFlight(record.clientId, packetId);
      await placeFreed(ctx, record); // [MQTT-3.3.4-9] a held packet may go now
      return;
    case 'pubcomp': // [MQTT-4.3.3-1] QoS 2 delivery done
      if (!record.cleanSession) await ctx.store.deleteOutbound(record.clientId, packetId);
      await placeFreed(ctx, record); // [MQTT-3.3.4-9] a held packet may go now
      return;
    case 'pubrec':
      // [MQTT-4.3.3-1] answer PUBREC with PUBREL; from now on PUBREL is what a reconnect resends.
      if (!record.cleanSession) await ctx.store.markOutboundReleased(record.clientId, packetId);
      await ctx.store.markQoS2Received(record.clientId, packetId);
      invocation.outbox.push({ cmd: 'pubrel', messageId: packetId });
      return;
    case 'pubrel':
      // [MQTT-4.3.3-2] the packet id may be reused: a new PUBLISH with it is a new message.
      await ctx.store.releaseInboundPacketId(
        record.clientId,
        packetId,
        inboundReceiveMaximum(ctx, record) !== undefined,
      );
      invocation.outbox.push({ cmd: 'pubcomp', messageId: packetId });
      return;
  }
}
