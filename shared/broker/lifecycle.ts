import type { ConnectionRecord } from '../ports.js';
import { mayPublish } from './authorization.js';
import type { BrokerContext } from './context.js';
import { acceptMessage } from './publishing.js';
import { sessionExpiresAt } from './session-expiry.js';
import { handOffSharedMessages } from './shared-handoff.js';
import { willDueAt } from './will-delay.js';

/**
 * The connection is gone (a $disconnect event, a 410 from the gateway, or
 * the sweep): publish its will unless DISCONNECT cleared it [MQTT-3.1.2-8]
 * (a 5.0 will with a delay is deferred on the session instead),
 * forget the connection and, if it still served its client id, end the
 * session's online state; a clean session (5.0: expiry 0) ends altogether
 * [MQTT-3.1.2-6], a 5.0 session with an expiry interval starts counting down.
 * Safe to run twice for one connection: the record is read first and deleted last.
 *
 * @example
 * await connectionGone(ctx, event.requestContext.connectionId);
 */
export async function connectionGone(
  ctx: BrokerContext,
  connectionId: string,
  knownOwner?: Pick<ConnectionRecord, 'clientId' | 'cleanSession' | 'sessionExpirySeconds'>,
): Promise<void> {
  const record = await ctx.store.getConnection(connectionId);
  const will = record?.will && (await ctx.store.takeWill(connectionId));
  // A will is published with its client's rights: one it may not write is dropped.
  if (record && will && mayPublish(ctx, { user: record.user, clientId: record.clientId }, will.topic)) {
    const dueAt = willDueAt(record, ctx.now());
    // [MQTT-3.1.3-9] a delayed will waits on the session, unless the client is already back (then never).
    if (dueAt === undefined) await acceptMessage(ctx, record.clientId, will);
    else await ctx.store.deferWill(record.clientId, connectionId, will, dueAt);
  }
  // The record may already be gone (expired, or removed by another instance); the session may still point here.
  const owner = record ?? knownOwner;
  if (!owner) return;
  // [MQTT-3.1.2-23] a persistent 5.0 session is kept for its expiry interval from now.
  const expiresAt = sessionExpiresAt(owner, ctx.now());
  const ended = await ctx.store.endSession(owner.clientId, connectionId, owner.cleanSession, expiresAt);
  if (ended && owner.cleanSession) {
    // §4.8.2: what a group member leaves unacknowledged goes to another member.
    if (record?.sharedSubscriber) await handOffSharedMessages(ctx, owner.clientId);
    await ctx.store.deleteStaleSubscriptions(owner.clientId);
    await ctx.store.deleteDeliveries(owner.clientId);
  }
  // Before the record goes, so a retry still knows the user; a second removal removes nothing.
  if (record?.user !== undefined) await ctx.store.removeUserConnection(record.user, connectionId);
  if (record) await ctx.store.deleteConnection(connectionId);
}
