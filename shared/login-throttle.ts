/**
 * Slowing password guessing: failed logins are counted per user name and per source address; past
 * a number of free failures in a window, further attempts under that name or from that address
 * are refused outright for a short time that doubles with each failure, up to a cap
 * (docs/adr/0008-authorization.md). The decisions are pure; the counters live behind the
 * `LoginAttemptStore` port (DynamoDB in shared/storage/dynamo/login-attempts.ts, memory here).
 */

/** What one key (a user name or an address) has on record. */
export interface AttemptState {
  /** Failures since `windowStart`. */
  readonly failures: number;
  readonly windowStart: number;
  /** Attempts before this instant (epoch ms) are refused unchecked. */
  readonly blockedUntil: number;
}

export interface ThrottlePolicy {
  /** Failures allowed in a window before blocking starts. */
  readonly freeFailures: number;
  /** A window starts at the first failure and lasts this long; after it the count starts over. */
  readonly windowMs: number;
  /** The first block; each further failure doubles it. */
  readonly baseBlockMs: number;
  /** No block lasts longer than this, so a guesser cannot lock a user out for long. */
  readonly maxBlockMs: number;
}

/**
 * Per user name: 5 free failures in 15 minutes, then blocks of 1 s, 2 s, 4 s, … capped at 30 s.
 * A guesser gets about 30 tries an hour per name instead of thousands a second; the real user,
 * whose name the guesser knows, waits at most 30 s after the guesser's last try.
 */
export const userThrottle: ThrottlePolicy = {
  freeFailures: 5,
  windowMs: 15 * 60_000,
  baseBlockMs: 1000,
  maxBlockMs: 30_000,
};

/**
 * Per source address: 20 free failures (an office behind one NAT mistypes too), then 1 s doubling
 * up to 5 minutes: a single address spraying many user names is slowed hardest.
 */
export const addressThrottle: ThrottlePolicy = {
  freeFailures: 20,
  windowMs: 15 * 60_000,
  baseBlockMs: 1000,
  maxBlockMs: 5 * 60_000,
};

/**
 * The state after one more failure at `now`.
 *
 * @example
 * afterFailure(undefined, 0, userThrottle); // { failures: 1, windowStart: 0, blockedUntil: 0 }
 */
export function afterFailure(
  state: AttemptState | undefined,
  now: number,
  policy: ThrottlePolicy,
): AttemptState {
  const current = state && now - state.windowStart < policy.windowMs ? state : undefined;
  const failures = (current?.failures ?? 0) + 1;
  const windowStart = current?.windowStart ?? now;
  const excess = failures - policy.freeFailures;
  if (excess <= 0) return { failures, windowStart, blockedUntil: 0 };
  const block = Math.min(policy.baseBlockMs * 2 ** Math.min(excess - 1, 30), policy.maxBlockMs);
  return { failures, windowStart, blockedUntil: now + block };
}

/** How long attempts stay refused, in ms (0: not blocked). */
export function blockedFor(state: AttemptState | undefined, now: number): number {
  return state ? Math.max(0, state.blockedUntil - now) : 0;
}

/** When a key's record can be forgotten (epoch ms): after its window and any block have passed. */
export function forgetAt(state: AttemptState, policy: ThrottlePolicy): number {
  return Math.max(state.windowStart + policy.windowMs, state.blockedUntil);
}

/** Where the counters live: shared across every function instance. */
export interface LoginAttemptStore {
  get(key: string): Promise<AttemptState | undefined>;
  /**
   * Writes `next` if the key still holds `previous` (nothing, when undefined); false when another
   * instance wrote in between. `expiresAt` (epoch ms) is when the record may vanish.
   */
  replace(
    key: string,
    next: AttemptState,
    previous: AttemptState | undefined,
    expiresAt: number,
  ): Promise<boolean>;
  delete(key: string): Promise<void>;
}

/** The throttle's keys for one CONNECT. */
export interface LoginKeys {
  readonly username?: string;
  readonly sourceIp?: string;
}

/** The broker's throttling port, as the CONNECT handler uses it. */
export interface LoginThrottle {
  /** ms until this name and address may try again; 0 when they may now. */
  blockedFor(keys: LoginKeys): Promise<number>;
  failed(keys: LoginKeys): Promise<void>;
  /** A good login clears its user name's failures (not the address's: it may be shared). */
  succeeded(keys: LoginKeys): Promise<void>;
}

function keysOf({ username, sourceIp }: LoginKeys): Array<{ key: string; policy: ThrottlePolicy }> {
  return [
    ...(username === undefined ? [] : [{ key: `user#${username}`, policy: userThrottle }]),
    ...(sourceIp === undefined ? [] : [{ key: `ip#${sourceIp}`, policy: addressThrottle }]),
  ];
}

/**
 * The throttle over a `LoginAttemptStore`, per user name and per address.
 *
 * @example
 * const throttle = new StoredLoginThrottle(new MemoryLoginAttempts(), Date.now);
 * await throttle.failed({ username: 'alice', sourceIp: '203.0.113.7' });
 */
export class StoredLoginThrottle implements LoginThrottle {
  constructor(
    private readonly store: LoginAttemptStore,
    private readonly now: () => number,
  ) {}

  async blockedFor(keys: LoginKeys): Promise<number> {
    const now = this.now();
    const states = await Promise.all(keysOf(keys).map(({ key }) => this.store.get(key)));
    return Math.max(0, ...states.map((state) => blockedFor(state, now)));
  }

  async failed(keys: LoginKeys): Promise<void> {
    await Promise.all(
      keysOf(keys).map(async ({ key, policy }) => {
        // Optimistic: another instance counting the same key at once makes us read again.
        for (let attempt = 0; attempt < 5; attempt++) {
          const previous = await this.store.get(key);
          const next = afterFailure(previous, this.now(), policy);
          if (await this.store.replace(key, next, previous, forgetAt(next, policy))) return;
        }
      }),
    );
  }

  async succeeded({ username }: LoginKeys): Promise<void> {
    if (username !== undefined) await this.store.delete(`user#${username}`);
  }
}

/** Counters in memory, for tests and a single process. */
export class MemoryLoginAttempts implements LoginAttemptStore {
  private readonly states = new Map<string, AttemptState>();
  async get(key: string): Promise<AttemptState | undefined> {
    return this.states.get(key);
  }
  async replace(key: string, next: AttemptState, previous: AttemptState | undefined): Promise<boolean> {
    if (this.states.get(key) !== previous) return false;
    this.states.set(key, next);
    return true;
  }
  async delete(key: string): Promise<void> {
    this.states.delete(key);
  }
}
