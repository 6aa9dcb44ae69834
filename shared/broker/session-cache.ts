import type { BrokerStore, SessionRecord, SubscriptionRecord } from '../ports.js';

/** How long an instance trusts a remembered session; a gone connection forgets it at once. */
export const sessionCacheTtlMs = 60_000;
/** Sessions remembered per store; beyond, the least recently stored is forgotten. */
const maxSessions = 100_000;

interface Remembered {
  readonly session: SessionRecord;
  readonly until: number;
}

/**
 * The sessions a fan-out delivers to, remembered across batches by this
 * instance, so a steady fan-out does not read every subscriber's session on
 * every publish. Only online clean sessions are remembered, and one is used
 * only for subscriptions of that same session id. Such a record cannot go
 * stale in a way that misdirects a message: a clean session never moves to
 * another connection (a reconnect is a new session id, whose subscriptions
 * miss here and are read afresh), its packet size and owner are fixed for its
 * life, and when its connection ends, the post answers 410 and the entry is
 * forgotten ({@link SessionCache.forget}). Persistent and offline sessions,
 * whose connection can change under the same session id, are read every time.
 *
 * @example
 * const sessions = await sessionCacheFor(ctx.store).sessionsFor(subscriptions, ctx.now());
 */
export class SessionCache {
  private readonly sessions = new Map<string, Remembered>();

  constructor(private readonly store: BrokerStore) {}

  /** The current sessions of the subscriptions' client ids: remembered ones that fit, the rest read in one go. */
  async sessionsFor(
    subscriptions: readonly SubscriptionRecord[],
    now: number,
  ): Promise<Map<string, SessionRecord>> {
    const found = new Map<string, SessionRecord>();
    const missing = new Set<string>();
    for (const { clientId, sessionId } of subscriptions) {
      if (found.has(clientId)) continue;
      const remembered = this.sessions.get(clientId);
      if (remembered && remembered.until > now && remembered.session.sessionId === sessionId) {
        found.set(clientId, remembered.session);
      } else missing.add(clientId);
    }
    for (const clientId of found.keys()) missing.delete(clientId);
    if (missing.size === 0) return found;
    const read = await this.store.getSessions([...missing]);
    for (const [clientId, session] of read) {
      found.set(clientId, session);
      if (session.cleanSession && session.connectionId !== undefined) this.remember(session, now);
      else this.sessions.delete(clientId);
    }
    return found;
  }

  /** What this instance changed on a remembered session (its Topic Aliases); a session not remembered stays so. */
  refresh(session: SessionRecord): void {
    const remembered = this.sessions.get(session.clientId);
    if (remembered?.session.sessionId === session.sessionId)
      this.sessions.set(session.clientId, { session, until: remembered.until });
  }

  /** The client's connection is gone: its next delivery reads the session again. */
  forget(clientId: string): void {
    this.sessions.delete(clientId);
  }

  private remember(session: SessionRecord, now: number): void {
    this.sessions.delete(session.clientId);
    this.sessions.set(session.clientId, { session, until: now + sessionCacheTtlMs });
    while (this.sessions.size > maxSessions) {
      const oldest = this.sessions.keys().next().value;
      if (oldest === undefined) break;
      this.sessions.delete(oldest);
    }
  }
}

const byStore = new WeakMap<BrokerStore, SessionCache>();

/** This instance's session cache for the store (one per store, so tests with fresh stores do not share one). */
export function sessionCacheFor(store: BrokerStore): SessionCache {
  let cache = byStore.get(store);
  if (!cache) {
    cache = new SessionCache(store);
    byStore.set(store, cache);
  }
  return cache;
}
