import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type DeliveryAction,
  type DeliveryPolicy,
  type DeliveryState,
  enqueue,
  type InvokeOutcome,
  initialDelivery,
  nextDelivery,
  readResponse,
} from '../emulator/stream-delivery-policy.js';

interface Rec {
  readonly sequenceNumber: string;
  readonly writtenBy: number;
  readonly key: string;
}

const start = 1_000_000;

function policy(settings: Partial<DeliveryPolicy['settings']> = {}): DeliveryPolicy {
  return {
    settings: {
      batchSize: 10,
      maxBatchingWindowSeconds: 0,
      retryAttempts: 3,
      maxRecordAgeSeconds: -1,
      bisectBatchOnError: false,
      ...settings,
    },
    backoff: { initialMs: 100, maxMs: 400 },
  };
}

/** Records 1..count, keys taken in turn from `keys`, all written at `start`. */
function records(count: number, keys = ['k']): Rec[] {
  return Array.from({ length: count }, (_, i) => ({
    sequenceNumber: String(i + 1),
    writtenBy: start,
    key: keys[i % keys.length] as string,
  }));
}

const seqs = (rs: readonly Rec[]) => rs.map((r) => r.sequenceNumber);

/** One action, written compactly so a whole run reads as a list. */
function describeAction(a: DeliveryAction<Rec>): string {
  switch (a.type) {
    case 'invoke':
      return `invoke ${seqs(a.records)} #${a.attempt}`;
    case 'checkpoint':
      return `checkpoint ${seqs(a.records)}`;
    case 'onFailure':
      return `onFailure ${a.condition} ${seqs(a.records)} x${a.invokeCount}`;
    case 'wait':
      return `wait ${a.ms}`;
    case 'idle':
      return 'idle';
  }
}

/**
 * Drives the policy as the poller does, on a virtual clock: every invocation is answered by `respond`,
 * every wait lets the clock run. Stops at `idle` (all delivered) or after `maxSteps`.
 */
function simulate(
  p: DeliveryPolicy,
  input: readonly Rec[],
  respond: (records: Rec[], call: number) => InvokeOutcome,
  observe: (action: DeliveryAction<Rec>) => void = () => {},
  maxSteps = 1_000,
): { log: string[]; actions: DeliveryAction<Rec>[]; now: number } {
  let state: DeliveryState<Rec> = enqueue(initialDelivery<Rec>(), input);
  let now = start;
  let calls = 0;
  let result: InvokeOutcome | undefined;
  const actions: DeliveryAction<Rec>[] = [];
  for (let i = 0; i < maxSteps; i++) {
    const step = nextDelivery(p, state, result ? { type: 'invoked', result, now } : { type: 'tick', now });
    state = step.state;
    actions.push(...step.actions);
    step.actions.forEach(observe);
    result = undefined;
    const last = step.actions.at(-1);
    assert.ok(
      last && ['invoke', 'wait', 'idle'].includes(last.type),
      'each step ends with invoke, wait or idle',
    );
    if (last.type === 'idle') return { log: actions.map(describeAction), actions, now };
    if (last.type === 'wait') now += last.ms;
    if (last.type === 'invoke') result = respond(last.records, ++calls);
  }
  throw new Error(`no idle after ${maxSteps} steps`);
}

const ok: InvokeOutcome = { outcome: 'ok' };
const error: InvokeOutcome = { outcome: 'error', error: new Error('function failed') };

test('retry then success: the same records again after a backoff that doubles', () => {
  const run = simulate(policy(), records(3), (_r, call) => (call <= 2 ? error : ok));
  assert.deepEqual(run.log, [
    'invoke 1,2,3 #1',
    'wait 100',
    'invoke 1,2,3 #2',
    'wait 200',
    'invoke 1,2,3 #3',
    'checkpoint 1,2,3',
    'idle',
  ]);
});

test('the backoff stops growing at its maximum', () => {
  const run = simulate(policy({ retryAttempts: 5 }), records(1), (_r, call) => (call <= 5 ? error : ok));
  assert.deepEqual(
    run.log.filter((l) => l.startsWith('wait')),
    ['wait 100', 'wait 200', 'wait 400', 'wait 400', 'wait 400'],
  );
});

test('bisection halves a failing batch down to the poison record, which alone goes to on-failure', () => {
  const poison = '6';
  const run = simulate(
    policy({ batchSize: 8, bisectBatchOnError: true, retryAttempts: 2 }),
    records(8),
    (rs) => (seqs(rs).includes(poison) ? error : ok),
  );
  const invoked = run.actions.flatMap((a) => (a.type === 'invoke' ? [seqs(a.records)] : []));
  assert.deepEqual(
    invoked.filter((batch) => batch.includes(poison)).map((batch) => batch.length),
    [8, 4, 2, 1, 1, 1],
    'halved, then tried once and retried retryAttempts (2) times alone: splitting uses no retries',
  );
  assert.deepEqual(
    run.log.filter((l) => !l.startsWith('wait') && !l.startsWith('invoke')),
    [
      'checkpoint 1,2,3,4',
      'checkpoint 5',
      `onFailure RetryAttemptsExhausted ${poison} x6`,
      `checkpoint ${poison}`,
      'checkpoint 7,8',
      'idle',
    ],
    'every good record is delivered, in order; the poison one is given up on after 6 invocations',
  );
});

test('a partial batch response checkpoints just before the lowest failed record and retries from it', () => {
  const run = simulate(policy(), records(6), (rs, call) =>
    call === 1
      ? readResponse({ batchItemFailures: [{ itemIdentifier: '5' }, { itemIdentifier: '3' }] }, seqs(rs))
      : ok,
  );
  assert.deepEqual(run.log, [
    'invoke 1,2,3,4,5,6 #1',
    'checkpoint 1,2',
    'wait 100',
    'invoke 3,4,5,6 #2',
    'checkpoint 3,4,5,6',
    'idle',
  ]);
});

test('a partial failure of the first record retries the whole batch and counts as a retry', () => {
  const run = simulate(policy({ retryAttempts: 1 }), records(2), () => ({ outcome: 'partial', index: 0 }));
  assert.deepEqual(run.log, [
    'invoke 1,2 #1',
    'wait 100',
    'invoke 1,2 #2',
    'onFailure RetryAttemptsExhausted 1,2 x2',
    'checkpoint 1,2',
    'idle',
  ]);
});

describe('reading a function response (ReportBatchItemFailures)', () => {
  const batch = ['5', '6', '7', '8'];
  test('no response, no list or an empty list is success', () => {
    for (const response of [
      undefined,
      null,
      'done',
      {},
      { batchItemFailures: null },
      { batchItemFailures: [] },
    ]) {
      assert.deepEqual(readResponse(response, batch), { outcome: 'ok' }, JSON.stringify(response));
    }
  });
  test('the lowest failed record is where the retry starts, whatever the order of the list', () => {
    const response = { batchItemFailures: [{ itemIdentifier: '8' }, { itemIdentifier: '6' }] };
    assert.deepEqual(readResponse(response, batch), { outcome: 'partial', index: 1 });
  });
  test('an identifier that is empty, missing, not a string or not in the batch fails the whole batch', () => {
    for (const failure of [
      { itemIdentifier: '' },
      {},
      { itemIdentifier: 6 },
      { itemIdentifier: '9' },
      null,
    ]) {
      const result = readResponse({ batchItemFailures: [{ itemIdentifier: '6' }, failure] }, batch);
      assert.equal(result.outcome, 'error', JSON.stringify(failure));
    }
    assert.equal(readResponse({ batchItemFailures: 'all' }, batch).outcome, 'error');
  });
});

test('after the maximum retry attempts the batch goes to on-failure, and the shard moves on to the next', () => {
  const run = simulate(policy({ batchSize: 2, retryAttempts: 2 }), records(4), (rs) =>
    seqs(rs).includes('1') ? error : ok,
  );
  assert.deepEqual(run.log, [
    'invoke 1,2 #1',
    'wait 100',
    'invoke 1,2 #2',
    'wait 200',
    'invoke 1,2 #3',
    'onFailure RetryAttemptsExhausted 1,2 x3',
    'checkpoint 1,2',
    'invoke 3,4 #1',
    'checkpoint 3,4',
    'idle',
  ]);
});

test('records older than maxRecordAgeSeconds go to on-failure with RecordAgeExceeded, unretried', () => {
  const run = simulate(policy({ retryAttempts: -1, maxRecordAgeSeconds: 1 }), records(2), () => error);
  const failures = run.log.filter((l) => l.startsWith('onFailure'));
  assert.deepEqual(failures, ['onFailure RecordAgeExceeded 1,2 x4']);
  assert.ok(run.now > start + 1_000, 'given up on only once older than the limit');
});

test('a batching window waits for a full batch or for the window to close', () => {
  const p = policy({ batchSize: 3, maxBatchingWindowSeconds: 2 });
  let state = enqueue(initialDelivery<Rec>(), records(2));
  let step = nextDelivery(p, state, { type: 'tick', now: start });
  assert.deepEqual(step.actions.map(describeAction), ['wait 2000']);
  step = nextDelivery(p, step.state, { type: 'tick', now: start + 500 });
  assert.deepEqual(step.actions.map(describeAction), ['wait 1500'], 'the window does not restart');
  // A third record fills the batch: it goes at once.
  state = enqueue(step.state, [{ sequenceNumber: '3', writtenBy: start, key: 'k' }]);
  step = nextDelivery(p, state, { type: 'tick', now: start + 600 });
  assert.deepEqual(step.actions.map(describeAction), ['invoke 1,2,3 #1']);
  // Alone, a record waits for the window to close.
  const alone = simulate(p, records(1), () => ok);
  assert.deepEqual(alone.log, ['wait 2000', 'invoke 1 #1', 'checkpoint 1', 'idle']);
});

test('batches never exceed batchSize and follow one another in record order', () => {
  const run = simulate(policy({ batchSize: 4 }), records(10), () => ok);
  assert.deepEqual(run.log, [
    'invoke 1,2,3,4 #1',
    'checkpoint 1,2,3,4',
    'invoke 5,6,7,8 #1',
    'checkpoint 5,6,7,8',
    'invoke 9,10 #1',
    'checkpoint 9,10',
    'idle',
  ]);
});

test('empty: no records means no invocation; enqueueing none changes nothing', () => {
  const empty = initialDelivery<Rec>();
  assert.equal(enqueue(empty, []), empty);
  const step = nextDelivery(policy({ maxBatchingWindowSeconds: 5 }), empty, { type: 'tick', now: start });
  assert.deepEqual(step.actions, [{ type: 'idle' }]);
  assert.deepEqual(step.state, empty);
});

test('a result without an invocation, or a tick while one is out, is a caller bug', () => {
  const empty = initialDelivery<Rec>();
  assert.throws(() => nextDelivery(policy(), empty, { type: 'invoked', result: ok, now: start }));
  const { state } = nextDelivery(policy(), enqueue(empty, records(1)), { type: 'tick', now: start });
  assert.throws(() => nextDelivery(policy(), state, { type: 'tick', now: start }));
});

test('property: whatever the outcomes, records are checkpointed once each in stream order, so per-key order holds', () => {
  const outcome = fc.oneof(
    fc.constant<InvokeOutcome>(ok),
    fc.constant<InvokeOutcome>(error),
    fc.nat(20).map((index) => ({ outcome: 'partial', index }) as const),
  );
  fc.assert(
    fc.property(
      fc.record({
        count: fc.integer({ min: 0, max: 25 }),
        keys: fc.integer({ min: 1, max: 3 }),
        batchSize: fc.integer({ min: 1, max: 6 }),
        bisect: fc.boolean(),
        retryAttempts: fc.integer({ min: -1, max: 3 }),
        outcomes: fc.array(outcome, { maxLength: 30 }),
      }),
      ({ count, keys, batchSize, bisect, retryAttempts, outcomes }) => {
        const input = records(
          count,
          Array.from({ length: keys }, (_, i) => `k${i}`),
        );
        const p = policy({ batchSize, bisectBatchOnError: bisect, retryAttempts });
        const checkpointed: Rec[] = [];
        const run = simulate(
          p,
          input,
          (rs, call) => {
            // Each invocation starts at the first record not yet done with, and carries a run of records.
            assert.deepEqual(rs, input.slice(checkpointed.length, checkpointed.length + rs.length));
            const o = outcomes[call - 1] ?? ok;
            return o.outcome === 'partial' ? { outcome: 'partial', index: o.index % rs.length } : o;
          },
          (a) => {
            if (a.type === 'checkpoint') checkpointed.push(...a.records);
          },
        );
        assert.deepEqual(checkpointed, input, 'each record checkpointed once, in stream order');
        for (let k = 0; k < keys; k++) {
          const ofKey = (rs: Rec[]) => seqs(rs.filter((r) => r.key === `k${k}`));
          assert.deepEqual(ofKey(checkpointed), ofKey(input));
        }
        const given = run.actions.flatMap((a) => (a.type === 'onFailure' ? a.records : []));
        if (retryAttempts < 0) assert.deepEqual(given, [], 'unlimited retries never give up (no age limit)');
      },
    ),
    { numRuns: 300 },
  );
});
