import type { ApplicationMessage } from '../ports.js';
import type { BrokerContext } from './context.js';
import { newMessageId } from './message-id.js';

/**
 * Accepts an application message from a client (a PUBLISH or its will):
 * updates the retained store when the retain flag is set [MQTT-3.3.1-5],
 * [MQTT-3.3.1-10], then writes it for the stream. Returns once both are durable: false for
 * a resent QoS 2 PUBLISH, 'exceeded' when one more would pass `receiveMaximum` awaiting PUBREL.
 *
 * @example
 * await acceptMessage(ctx, 'sensor-7', { topic: 't', payload, qos: 1, retain: true });
 */
export async function acceptMessage(
  ctx: BrokerContext,
  publisher: string,
  message: ApplicationMessage,
  packetId?: number,
  receiveMaximum?: number,
): Promise<boolean | 'exceeded'> {
  const now = ctx.now();
  const stored = { ...message, publisher, messageId: newMessageId(now, ctx.newId()), publishedAt: now };
  if (message.qos === 2 && packetId !== undefined) {
    // Exactly once: a resent PUBLISH of a packet id awaiting PUBREL is not stored again.
    const first = await ctx.store.putQoS2Message(stored, packetId, receiveMaximum);
    if (first === true && message.retain) await ctx.store.putRetained({ ...message, publishedAt: now });
    return first;
  }
  if (message.retain) await ctx.store.putRetained({ ...message, publishedAt: now });
  await ctx.store.putMessage(stored);
  return true;
}
