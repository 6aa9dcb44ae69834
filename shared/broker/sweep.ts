import type { BrokerContext } from './context.js';
import { disconnectTakenForLost, keepAliveDeadline } from './keepalive.js';
import { connectionGone } from './lifecycle.js';
import { removeExpiredSessions } from './session-expiry.js';

/**
 * After this long without a recorded packet, the gateway itself must have
 * closed the connection (API Gateway's idle timeout is 10 minutes) unless it
 * carried traffic the record does not show: ask the gateway.
 */
const probeAfterMs = 10 * 60_000;

export interface SweepResult {
  readonly scanned: number;
  readonly closed: number;
  /** Connections already gone whose $disconnect never came: cleaned up here. */
  readonly stale: number;
  /** Offline sessions past their expiry interval, removed with their subscriptions and queue. */
  readonly expiredSessions: number;
}

/**
 * The scheduled sweep: closes connections silent past their keep-alive (their
 * $disconnect then publishes the will), and cleans up after connections the
 * gateway no longer has, whose $disconnect was lost, and removes expired
 * sessions. Cost: one scan of the connection table per run, plus a
 * GetConnection for long-silent rows, plus one query per expiry index shard.
 */
export async function sweep(ctx: BrokerContext): Promise<SweepResult> {
  let scanned = 0;
  let closed = 0;
  let stale = 0;
  const now = ctx.now();
  for await (const page of ctx.store.scanConnections()) {
    for (const record of page) {
      scanned++;
      const silentFor = now - (record.lastSeen ?? record.connectedAt);
      if (now > keepAliveDeadline(record)) {
        // Closing triggers $disconnect, which publishes the will. A connection already gone has its
        // $disconnect queued behind its last frames: cleaned up here only once that is taken for lost.
        if (await ctx.gateway.close(record.connectionId)) closed++;
        else if (disconnectTakenForLost(record, now)) {
          await connectionGone(ctx, record.connectionId);
          stale++;
        }
      } else if (silentFor > probeAfterMs && !(await ctx.gateway.isConnected(record.connectionId))) {
        // Gone without a $disconnect (keep-alive 0 connections have no deadline to find this).
        await connectionGone(ctx, record.connectionId);
        stale++;
      }
    }
  }
  // [MQTT-3.1.2-23] read from the expiry index: only the sessions that expired.
  const expiredSessions = await removeExpiredSessions(ctx);
  return { scanned, closed, stale, expiredSessions };
}
