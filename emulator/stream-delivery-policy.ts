import type { StreamEventSourceSettings } from '../shared/event-source.js';

/**
 * How a Lambda event source mapping delivers one shard's records, as a pure state machine: batching
 * window, retries with backoff, bisection on error, partial batch responses, record age limit, maximum
 * retry attempts and the on-failure destination. No I/O and no timers: the caller feeds it the time
 * and the outcome of each invocation, and carries out the actions it returns.
 */

/** The settings the policy follows, and the wait after consecutive failures (doubling up to `maxMs`). */
export interface DeliveryPolicy {
  readonly settings: Pick<
    StreamEventSourceSettings,
    'batchSize' | 'maxBatchingWindowSeconds' | 'retryAttempts' | 'maxRecordAgeSeconds' | 'bisectBatchOnError'
  >;
  readonly backoff: { readonly initialMs: number; readonly maxMs: number };
}

/** What the policy needs to know of a record. */
export interface PolicyRecord {
  readonly sequenceNumber: string;
  /** The latest the record can have been written, epoch milliseconds: what its age is measured from. */
  readonly writtenBy: number;
}

/** A record of the batch being delivered, and how many invocations carried it so far. */
interface Attempted<R> {
  readonly record: R;
  readonly invokes: number;
}

/** Part of the batch being delivered (a bisection splits it), and how many retries it has used. */
interface Piece<R> {
  readonly entries: readonly Attempted<R>[];
  readonly retries: number;
}

export interface DeliveryState<R extends PolicyRecord> {
  /** Records not yet in a batch, in stream order. */
  readonly waiting: readonly R[];
  /** The batch being delivered, in pieces, in record order; only the first is ever invoked. */
  readonly pieces: readonly Piece<R>[];
  /** Consecutive failed invocations of the current batch: the backoff grows with them. */
  readonly failures: number;
  /** When the batching window over `waiting` opened, epoch milliseconds. */
  readonly windowOpenedAt: number | undefined;
  /** No invocation before this time, epoch milliseconds (backoff after a failure). */
  readonly retryAt: number | undefined;
  /** An invocation is out: the next input must be its result. */
  readonly invoking: boolean;
}

/** How an invocation ended: success, failure, or a partial batch response failing from `index` on. */
export type InvokeOutcome =
  | { readonly outcome: 'ok' }
  | { readonly outcome: 'error'; readonly error: unknown }
  | { readonly outcome: 'partial'; readonly index: number };

export type DeliveryInput =
  /** Decide what to do now: records arrived, a wait ended, or delivery starts. */
  | { readonly type: 'tick'; readonly now: number }
  /** The invocation the last `invoke` action asked for ended. */
  | { readonly type: 'invoked'; readonly result: InvokeOutcome; readonly now: number };

export type FailureCondition = 'RetryAttemptsExhausted' | 'RecordAgeExceeded';

/**
 * What the caller does, in order. Each step ends with exactly one of `invoke`, `wait` or `idle`;
 * `onFailure` and `checkpoint` come before it.
 */
export type DeliveryAction<R> =
  /** Invoke the function with these records; `attempt` is the most invocations any of them has had. */
  | { readonly type: 'invoke'; readonly records: R[]; readonly attempt: number }
  /** These records are done with (delivered, or given up on): the shard's position may move past them. */
  | { readonly type: 'checkpoint'; readonly records: R[] }
  /** Send these records to the on-failure destination. */
  | {
      readonly type: 'onFailure';
      readonly condition: FailureCondition;
      readonly records: R[];
      readonly invokeCount: number;
    }
  /** Nothing to do for `ms`, unless records arrive: then tick again. */
  | { readonly type: 'wait'; readonly ms: number }
  /** Nothing to do until records arrive. */
  | { readonly type: 'idle' };

export interface DeliveryStep<R extends PolicyRecord> {
  readonly state: DeliveryState<R>;
  readonly actions: DeliveryAction<R>[];
}

/**
 * The state of a shard with nothing read yet.
 *
 * @example
 * let state = enqueue(initialDelivery(), records);
 */
export function initialDelivery<R extends PolicyRecord>(): DeliveryState<R> {
  return {
    waiting: [],
    pieces: [],
    failures: 0,
    windowOpenedAt: undefined,
    retryAt: undefined,
    invoking: false,
  };
}

/**
 * Adds records read from the stream, in order, to the ones waiting for a batch.
 *
 * @example
 * state = enqueue(state, [{ sequenceNumber: '1', writtenBy: Date.now() }]);
 */
export function enqueue<R extends PolicyRecord>(
  state: DeliveryState<R>,
  records: readonly R[],
): DeliveryState<R> {
  return records.length === 0 ? state : { ...state, waiting: [...state.waiting, ...records] };
}

/**
 * The policy's next step: the new state and what to do.
 *
 * @example
 * let { state, actions } = nextDelivery(policy, enqueue(initialDelivery(), records), { type: 'tick', now: Date.now() });
 * // actions: [{ type: 'invoke', records, attempt: 1 }]
 * ({ state, actions } = nextDelivery(policy, state, { type: 'invoked', result: { outcome: 'ok' }, now: Date.now() }));
 * // actions: [{ type: 'checkpoint', records }, { type: 'idle' }]
 */
export function nextDelivery<R extends PolicyRecord>(
  policy: DeliveryPolicy,
  state: DeliveryState<R>,
  input: DeliveryInput,
): DeliveryStep<R> {
  const s: Mutable<DeliveryState<R>> = { ...state };
  const actions: DeliveryAction<R>[] = [];
  if (input.type === 'invoked') {
    if (!s.invoking) throw new Error('an invocation result without an invocation');
    s.invoking = false;
    applyResult(policy, s, input.result, input.now, actions);
  } else if (s.invoking) {
    throw new Error('a tick while an invocation is out');
  }
  decide(policy, s, input.now, actions);
  return { state: s, actions };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function applyResult<R extends PolicyRecord>(
  policy: DeliveryPolicy,
  s: Mutable<DeliveryState<R>>,
  result: InvokeOutcome,
  now: number,
  actions: DeliveryAction<R>[],
): void {
  const [head, ...rest] = s.pieces;
  if (!head) throw new Error('an invocation result without a batch');
  if (result.outcome === 'ok') {
    actions.push({ type: 'checkpoint', records: head.entries.map((e) => e.record) });
    s.pieces = rest;
    s.failures = 0;
    return;
  }
  s.failures++;
  if (result.outcome === 'partial') {
    // Lambda checkpoints just before the lowest failed record; it and every later record are retried.
    const done = head.entries.slice(0, result.index);
    if (done.length > 0) actions.push({ type: 'checkpoint', records: done.map((e) => e.record) });
    s.pieces = [{ entries: head.entries.slice(result.index), retries: head.retries + 1 }, ...rest];
  } else if (policy.settings.bisectBatchOnError && head.entries.length > 1) {
    // Splitting does not use up retries (as in AWS); the halves go first half first.
    const half = Math.ceil(head.entries.length / 2);
    s.pieces = [
      { entries: head.entries.slice(0, half), retries: head.retries },
      { entries: head.entries.slice(half), retries: head.retries },
      ...rest,
    ];
  } else {
    s.pieces = [{ entries: head.entries, retries: head.retries + 1 }, ...rest];
  }
  const first = s.pieces[0];
  const { retryAttempts } = policy.settings;
  // A negative retryAttempts retries until the records expire, as AWS's -1.
  if (first && retryAttempts >= 0 && first.retries > retryAttempts) {
    giveUp(actions, 'RetryAttemptsExhausted', first.entries);
    s.pieces = s.pieces.slice(1);
  }
  s.retryAt = s.pieces.length > 0 ? now + backoffMs(policy.backoff, s.failures) : undefined;
}

/** Appends the actions that follow the current state, ending with `invoke`, `wait` or `idle`. */
function decide<R extends PolicyRecord>(
  policy: DeliveryPolicy,
  s: Mutable<DeliveryState<R>>,
  now: number,
  actions: DeliveryAction<R>[],
): void {
  const { batchSize, maxBatchingWindowSeconds, maxRecordAgeSeconds } = policy.settings;
  for (;;) {
    const [head, ...rest] = s.pieces;
    if (head) {
      const expired =
        maxRecordAgeSeconds < 0 ? 0 : expiredPrefix(head.entries, now - maxRecordAgeSeconds * 1000);
      if (expired > 0) {
        giveUp(actions, 'RecordAgeExceeded', head.entries.slice(0, expired));
        const left = head.entries.slice(expired);
        s.pieces = left.length > 0 ? [{ entries: left, retries: head.retries }, ...rest] : rest;
        continue;
      }
      if (s.retryAt !== undefined && now < s.retryAt) {
        actions.push({ type: 'wait', ms: s.retryAt - now });
        return;
      }
      const entries = head.entries.map((e) => ({ record: e.record, invokes: e.invokes + 1 }));
      s.pieces = [{ entries, retries: head.retries }, ...rest];
      s.retryAt = undefined;
      s.invoking = true;
      actions.push({ type: 'invoke', records: entries.map((e) => e.record), attempt: maxInvokes(entries) });
      return;
    }
    if (s.waiting.length === 0) {
      actions.push({ type: 'idle' });
      return;
    }
    if (maxBatchingWindowSeconds > 0 && s.waiting.length < batchSize) {
      // The window opens when the shard is free and has a record; a full batch goes at once.
      const opened = s.windowOpenedAt ?? now;
      const closes = opened + maxBatchingWindowSeconds * 1000;
      if (now < closes) {
        s.windowOpenedAt = opened;
        actions.push({ type: 'wait', ms: closes - now });
        return;
      }
    }
    s.pieces = [
      { entries: s.waiting.slice(0, batchSize).map((record) => ({ record, invokes: 0 })), retries: 0 },
    ];
    s.waiting = s.waiting.slice(batchSize);
    s.windowOpenedAt = undefined;
    s.failures = 0;
    s.retryAt = undefined;
  }
}

/** Sends records to the on-failure destination and moves past them, as Lambda does. */
function giveUp<R extends PolicyRecord>(
  actions: DeliveryAction<R>[],
  condition: FailureCondition,
  entries: readonly Attempted<R>[],
): void {
  const records = entries.map((e) => e.record);
  actions.push({ type: 'onFailure', condition, records, invokeCount: maxInvokes(entries) });
  actions.push({ type: 'checkpoint', records });
}

/** How many leading records were written before `oldest`. */
function expiredPrefix<R extends PolicyRecord>(entries: readonly Attempted<R>[], oldest: number): number {
  let count = 0;
  while (count < entries.length && (entries[count] as Attempted<R>).record.writtenBy < oldest) count++;
  return count;
}

function maxInvokes<R>(entries: readonly Attempted<R>[]): number {
  return entries.reduce((max, e) => Math.max(max, e.invokes), 0);
}

/**
 * The wait after `failures` consecutive failures: `initialMs`, doubling each time, at most `maxMs`.
 *
 * @example
 * backoffMs({ initialMs: 100, maxMs: 2_000 }, 3); // 400
 */
export function backoffMs(backoff: DeliveryPolicy['backoff'], failures: number): number {
  return Math.min(backoff.initialMs * 2 ** Math.max(0, failures - 1), backoff.maxMs);
}

/**
 * Reads a function response the way Lambda does with ReportBatchItemFailures: no response or an empty
 * list is success; an identifier that is empty, missing or not in the batch fails the whole batch.
 *
 * @example
 * readResponse({ batchItemFailures: [{ itemIdentifier: '7' }] }, ['5', '6', '7', '8']); // { outcome: 'partial', index: 2 }
 */
export function readResponse(response: unknown, sequenceNumbers: readonly string[]): InvokeOutcome {
  if (response === null || typeof response !== 'object') return { outcome: 'ok' };
  const failures = (response as { batchItemFailures?: unknown }).batchItemFailures;
  if (failures === undefined || failures === null) return { outcome: 'ok' };
  if (!Array.isArray(failures))
    return { outcome: 'error', error: new Error('batchItemFailures is not a list') };
  if (failures.length === 0) return { outcome: 'ok' };
  let lowest = sequenceNumbers.length;
  for (const failure of failures) {
    const id = (failure as { itemIdentifier?: unknown } | null)?.itemIdentifier;
    const index = typeof id === 'string' && id !== '' ? sequenceNumbers.indexOf(id) : -1;
    if (index < 0)
      return { outcome: 'error', error: new Error(`invalid itemIdentifier ${JSON.stringify(id)}`) };
    lowest = Math.min(lowest, index);
  }
  return { outcome: 'partial', index: lowest };
}
