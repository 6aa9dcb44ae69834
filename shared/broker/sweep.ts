import type { ConnectionRecord } from '../ports.js';
import type { BrokerContext } from './context.js';
import { connectionGone } from './lifecycle.js';

/**
 * When a connection counts as silent. `lastSeen` is written at most every
 * half keep-alive, so it can lag the last packet by that much: allowing for
 * it means never closing before 1.5 × keep-alive of real silence [MQTT-3.1.2-24].
 *
 * @example
 * keepAliveDeadline({ keepAliveSeconds: 60, lastSeen: 0, connectedAt: 0 }); // 120000
 */
export function keepAliveDeadline(
  record: Pick<ConnectionRecord, 'keepAliveSeconds' | 'lastSeen' | 'connectedAt'>,
) {
  if (record.keepAliveSeconds <= 0) return Number.POSITIVE_INFINITY; // keep-alive 0: no timeout
  return (record.lastSeen ?? record.connectedAt) + record.keepAliveSeconds * 2000;
}

/** Whether a packet arriving `now` should refresh `lastSeen` (written sparingly: it costs a write). */
export function shouldTouch(
  record: Pick<ConnectionRecord, 'keepAliveSeconds' | 'lastSeen' | 'connectedAt'>,
  now: number,
) {
  return (
    record.keepAliveSeconds > 0 &&
    now - (record.lastSeen ?? record.connectedAt) >= record.keepAliveSeconds * 500
  );
}

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
}

/**
 * The scheduled sweep: closes connections silent past their keep-alive (their
 * $disconnect then publishes the will), and cleans up after connections the
 * gateway no longer has, whose $disconnect was lost. Cost: one scan of the
 * connection table per run, plus a GetConnection for long-silent rows.
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
        // Closing triggers $disconnect, which publishes the will; a connection already gone is cleaned up here.
        if (await ctx.gateway.close(record.connectionId)) closed++;
        else {
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
  return { scanned, closed, stale };
}
