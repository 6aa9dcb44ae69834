/**
 * MQTT 5 session expiry (docs/adr/0018-session-expiry.md): how long a session
 * outlives its connection, when it expires, and the removal of expired ones.
 * 3.1.1 maps onto the same interval: clean session 1 is 0, clean session 0 is for ever.
 */
import type { IDisconnectPacket } from 'mqtt-packet';
import type { ConnectionRecord, SessionRecord } from '../ports.js';
import type { BrokerContext } from './context.js';
import { handOffSharedMessages } from './shared-handoff.js';

/** The interval meaning "never expires" [MQTT-3.1.2-11]. */
export const neverExpires = 0xffff_ffff;

/**
 * The Session Expiry Interval a CONNECT gets, in seconds, capped at `maximum`:
 * 5.0's property (absent: 0, the session ends with the connection), 3.1.1's clean flag.
 *
 * @example
 * grantedSessionExpiry(5, { sessionExpiryInterval: 300 }, true, 60); // 60
 */
export function grantedSessionExpiry(
  version: 4 | 5,
  properties: { sessionExpiryInterval?: number } | undefined,
  clean: boolean,
  maximum: number,
): number {
  if (version === 4) return clean ? 0 : neverExpires; // 3.1.1 keeps its rules, uncapped: it cannot be told
  return Math.min(properties?.sessionExpiryInterval ?? 0, maximum);
}

/**
 * When a session left by `record`'s connection ending at `now` expires (epoch
 * ms); undefined when it ends with the connection (the session is deleted) or
 * never expires.
 */
export function sessionExpiresAt(
  record: Pick<ConnectionRecord, 'sessionExpirySeconds'>,
  now: number,
): number | undefined {
  const seconds = record.sessionExpirySeconds;
  if (seconds === undefined || seconds === 0 || seconds >= neverExpires) return undefined;
  return now + seconds * 1000;
}

/** Whether a stored session has expired at `now`: offline past its expiry [MQTT-3.1.2-23]. */
export function sessionExpired(session: SessionRecord | undefined, now: number): boolean {
  return (
    session !== undefined &&
    session.connectionId === undefined &&
    session.sessionExpiresAt !== undefined &&
    session.sessionExpiresAt <= now
  );
}

/**
 * The connection record after a DISCONNECT that may change the interval, or
 * 'refused' when it asks to keep a session that was to end with the
 * connection, a protocol error [MQTT-3.14.2-2].
 */
export function expiryAtDisconnect(
  record: ConnectionRecord,
  packet: IDisconnectPacket,
  maximum: number,
): ConnectionRecord | 'refused' {
  const asked = record.protocolVersion === 5 ? packet.properties?.sessionExpiryInterval : undefined;
  if (asked === undefined) return record;
  if ((record.sessionExpirySeconds ?? 0) === 0 && asked > 0) return 'refused';
  const sessionExpirySeconds = Math.min(asked, maximum);
  return { ...record, sessionExpirySeconds, cleanSession: sessionExpirySeconds === 0 };
}

/**
 * Removes the sessions whose expiry has passed, with their subscriptions and
 * queued messages; returns how many. Reads only expired sessions (an index),
 * however many are stored. A session whose client came back is left alone.
 */
export async function removeExpiredSessions(ctx: BrokerContext): Promise<number> {
  const now = ctx.now();
  let removed = 0;
  for (const clientId of await ctx.store.sessionsExpired(now)) {
    if (!(await ctx.store.deleteExpiredSession(clientId, now))) continue;
    removed++;
    // A CONNECT in between started a new session: it cleans up after the old one itself.
    const current = await ctx.store.getSession(clientId);
    await ctx.store.deleteStaleSubscriptions(clientId, current?.sessionId);
    if (current) continue;
    await handOffSharedMessages(ctx, clientId); // §4.8.2: to another member of each group
    await ctx.store.deleteDeliveries(clientId);
  }
  return removed;
}
