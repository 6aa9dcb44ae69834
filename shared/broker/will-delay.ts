/**
 * MQTT 5 Will Delay Interval (§3.1.3.2, docs/adr/0021-flow-control-server-keep-alive-will-delay.md):
 * a will waits on its session item until its delay ends or the session does, whichever comes
 * first, and a reconnect with the same client id discards it [MQTT-3.1.3-9]. The per-second
 * deadline check publishes the due ones from a sparse index.
 */
import type { ConnectionRecord } from '../ports.js';
import type { BrokerContext } from './context.js';
import { acceptMessage } from './publishing.js';
import { neverExpires } from './session-expiry.js';

/** DISCONNECT reason code 0x04 Disconnect with Will Message: the client ends, its will still goes. */
export const disconnectWithWill = 0x04;

/**
 * When the will of `record`'s connection, ending at `now`, is to be published (epoch ms), or
 * undefined when it goes at once: no delay, or a session that ends with the connection.
 *
 * @example
 * willDueAt({ willDelaySeconds: 30, sessionExpirySeconds: 10 }, 0); // 10000: the session ends first
 */
export function willDueAt(
  record: Pick<ConnectionRecord, 'willDelaySeconds' | 'sessionExpirySeconds'>,
  now: number,
): number | undefined {
  const delay = record.willDelaySeconds ?? 0;
  const expiry = record.sessionExpirySeconds ?? 0;
  // [MQTT-3.1.3-9] published when the delay passes or the session ends, whichever happens first.
  if (delay <= 0 || expiry <= 0) return undefined;
  const seconds = expiry >= neverExpires ? delay : Math.min(delay, expiry);
  return now + seconds * 1000;
}

/**
 * Publishes every deferred will whose time has come, each once however many checks run at the
 * same time (`takeDueWill` gives it to one). Reads only the due rows of the will index. Returns
 * how many were published.
 *
 * @example
 * const published = await publishDueWills(ctx);
 */
export async function publishDueWills(ctx: BrokerContext): Promise<number> {
  const now = ctx.now();
  let published = 0;
  for (const clientId of await ctx.store.willsDue(now)) {
    const will = await ctx.store.takeDueWill(clientId, now);
    if (!will) continue; // not due after all (the index lags), or the client came back
    // The will's publisher is its client, as an immediate will's is; its rights were checked when it was deferred.
    await acceptMessage(ctx, clientId, will);
    published++;
  }
  return published;
}
