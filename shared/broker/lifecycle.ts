import type { ConnectionRecord } from '../ports.js';
import type { BrokerContext } from './context.js';

/**
 * The connection is gone (a $disconnect event, or a 410 from the gateway):
 * forget it and, if it still served its client id, end the session's online
 * state; a clean session ends altogether [MQTT-3.1.2-6].
 *
 * @example
 * await connectionGone(ctx, event.requestContext.connectionId);
 */
export async function connectionGone(
  ctx: BrokerContext,
  connectionId: string,
  knownOwner?: Pick<ConnectionRecord, 'clientId' | 'cleanSession'>,
): Promise<void> {
  // The record may already be gone (expired, or removed by another instance); the session may still point here.
  const record = (await ctx.store.getConnection(connectionId)) ?? knownOwner;
  if (!record) return;
  const ended = await ctx.store.endSession(record.clientId, connectionId, record.cleanSession);
  if (ended && record.cleanSession) await ctx.store.deleteStaleSubscriptions(record.clientId);
  await ctx.store.deleteConnection(connectionId);
}
