import type { ConnectionRecord } from '../ports.js';
import { encodeFrame } from '../protocol/frames.js';
import type { BrokerContext } from './context.js';
import { connectionGone } from './lifecycle.js';
import { publishDueWills } from './will-delay.js';

/**
 * Keep-alive enforcement (docs/adr/0015-keep-alive-deadlines.md). `lastSeen`
 * costs a write (three units with its index row), so it is refreshed only when a
 * packet comes half a keep-alive after the recorded one; CONNECT counts as the
 * first one seen, so a connection that publishes and leaves within half a
 * keep-alive never pays it (docs/adr/0023-publish-ingress-cost.md). The deadline
 * allows for the packets that were not written, so a connection is never closed
 * before 1.5 × keep-alive of real silence, and at most half a keep-alive (plus
 * the checker's period) after it [MQTT-3.1.2-24].
 */
type KeepAliveFields = Pick<ConnectionRecord, 'keepAliveSeconds' | 'lastSeen' | 'connectedAt'>;

/**
 * When the connection is due to be closed for silence; infinity for keep-alive 0.
 *
 * @example
 * keepAliveDeadline({ keepAliveSeconds: 60, lastSeen: 0, connectedAt: 0 }); // 120000: nothing written since CONNECT
 * keepAliveDeadline({ keepAliveSeconds: 60, lastSeen: 5000, connectedAt: 0 }); // 125000
 */
export function keepAliveDeadline(record: KeepAliveFields): number {
  if (record.keepAliveSeconds <= 0) return Number.POSITIVE_INFINITY; // keep-alive 0 turns the mechanism off
  const lastSeen = Math.max(record.lastSeen ?? 0, record.connectedAt);
  // Packets up to half a keep-alive after `lastSeen` (or CONNECT) were not written: wait for the latest of them.
  return lastSeen + record.keepAliveSeconds * 2000;
}

/**
 * Whether a packet arriving `now` should refresh `lastSeen` (and with it the
 * deadline index): it costs a write, so at most one per half keep-alive.
 */
export function shouldTouch(record: KeepAliveFields, now: number): boolean {
  if (record.keepAliveSeconds <= 0) return false;
  const lastSeen = Math.max(record.lastSeen ?? 0, record.connectedAt);
  return now - lastSeen >= record.keepAliveSeconds * 500;
}

/** The record's `keepAliveDue` for a connection that was last seen `lastSeen`; undefined for keep-alive 0. */
export function keepAliveDue(record: KeepAliveFields): number | undefined {
  const deadline = keepAliveDeadline(record);
  return Number.isFinite(deadline) ? deadline : undefined;
}

/**
 * The keep-alive schedule's input on AWS: EventBridge starts it once a minute
 * (its shortest rate), and it checks every second for that minute.
 */
export const keepAliveSchedule = { runForMs: 60_000, periodMs: 1_000 } as const;

/**
 * How long past its deadline a connection the gateway no longer has is left to its `$disconnect`.
 * The frame queue delivers `$disconnect` behind the connection's frames, and `lastSeen` moves only
 * as frames are handled: with a backlog, a client that sent frames and then left is past its
 * recorded deadline while they still wait. Cleaning up then would delete the record under them, so
 * their PUBLISHes were dropped as sent before CONNECT, and the will went out even with a DISCONNECT
 * queued [MQTT-3.14.4-3]. Past this grace the `$disconnect` is taken for lost and the checker cleans up.
 */
export const disconnectGraceMs = 10 * 60_000;

/**
 * Whether a connection the gateway no longer has, past its deadline, has waited out
 * {@link disconnectGraceMs}: its `$disconnect` is then taken for lost and the checker cleans up.
 *
 * @example
 * disconnectTakenForLost({ keepAliveSeconds: 60, connectedAt: 0 }, 120_000 + disconnectGraceMs + 1); // true
 */
export function disconnectTakenForLost(record: KeepAliveFields, now: number): boolean {
  return now > keepAliveDeadline(record) + disconnectGraceMs;
}

/** MQTT 5 DISCONNECT reason code 0x8D Keep Alive timeout. */
const keepAliveTimeout = 0x8d;

/** How many due connections one check closes at a time. */
const concurrency = 16;

export interface KeepAliveCheckResult {
  /** Connections the deadline index listed as due. */
  readonly due: number;
  /** Of those, the ones closed here (the rest had been heard from, or were already gone). */
  readonly expired: number;
  /** Of those, the ones whose closing failed: still due, so the next check tries again. */
  readonly failed: number;
  /** The first failure, for the log. */
  readonly error?: unknown;
}

/**
 * One keep-alive check: every connection whose deadline has passed is told
 * why (MQTT 5), closed, its will published and its session ended
 * [MQTT-3.1.2-24]. Reads only the due rows of the deadline index, so its cost
 * does not grow with idle connections. Safe to run concurrently with itself,
 * the sweep and `$disconnect`: `takeWill` gives the will to one caller.
 *
 * @example
 * const { expired } = await checkKeepAlives(ctx);
 */
export async function checkKeepAlives(ctx: BrokerContext): Promise<KeepAliveCheckResult> {
  const now = ctx.now();
  const due = await ctx.store.connectionsDue(now);
  let expired = 0;
  let failed = 0;
  let error: unknown;
  for (let i = 0; i < due.length; i += concurrency) {
    const outcomes = await Promise.allSettled(
      due.slice(i, i + concurrency).map((id) => expire(ctx, id, now)),
    );
    for (const outcome of outcomes) {
      if (outcome.status === 'fulfilled') expired += outcome.value ? 1 : 0;
      else {
        failed++;
        error ??= outcome.reason;
      }
    }
  }
  return { due: due.length, expired, failed, ...(failed > 0 ? { error } : {}) };
}

async function expire(ctx: BrokerContext, connectionId: string, now: number): Promise<boolean> {
  // The index may lag its table: act on the record's own deadline, read consistently.
  const record = await ctx.store.getConnection(connectionId);
  if (!record || now <= keepAliveDeadline(record)) return false;
  if (record.protocolVersion === 5) {
    // MQTT 5: the server says why before it closes (§3.14.2.1); a gone connection just fails the send.
    await ctx.gateway.send(
      connectionId,
      encodeFrame([{ cmd: 'disconnect', reasonCode: keepAliveTimeout }], 5),
    );
  }
  const closedHere = await ctx.gateway.close(connectionId);
  // Already gone: its $disconnect is queued behind its last frames; it stays due until then.
  if (!closedHere && !disconnectTakenForLost(record, now)) return false;
  // Closed here: not left to $disconnect, which can be lost or late: the will goes out now, once.
  await connectionGone(ctx, connectionId);
  return true;
}

/**
 * Runs `checkKeepAlives` and `publishDueWills` every `periodMs` for `runForMs` (at least once):
 * EventBridge starts the sweeper once a minute, and one invocation looping
 * through that minute costs far less than anything started each second. A
 * check that fails (the index unreadable) is reported and the loop goes on.
 */
export async function checkKeepAlivesFor(
  ctx: BrokerContext,
  runForMs: number,
  periodMs: number,
  onResult: (result: KeepAliveCheckResult) => void = () => {},
  onWills: (published: number | { error: unknown }) => void = () => {},
): Promise<void> {
  const end = ctx.now() + runForMs;
  for (;;) {
    const started = ctx.now();
    onResult(
      await checkKeepAlives(ctx).catch((error: unknown) => ({ due: 0, expired: 0, failed: 1, error })),
    );
    // Delayed wills come due on the same clock (ADR 0021); a failure is reported and retried next tick.
    onWills(await publishDueWills(ctx).catch((error: unknown) => ({ error })));
    const next = started + periodMs;
    if (next >= end) return;
    await ctx.sleep(Math.max(0, next - ctx.now()));
  }
}
