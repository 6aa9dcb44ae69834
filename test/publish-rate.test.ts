import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { lowest, mustStore, RateMemory, refill, take } from '../shared/broker/publish-rate.js';

const rule = { perSecond: 100, burst: 200 };

describe('publish rate token bucket', () => {
  test('no bucket yet is a full one', () => {
    assert.deepEqual(refill(undefined, 5, rule), { tokens: 200, at: 5 });
  });

  test('refills at the rate, never above the burst', () => {
    assert.deepEqual(refill({ tokens: 0, at: 0 }, 500, rule), { tokens: 50, at: 500 });
    assert.deepEqual(refill({ tokens: 150, at: 0 }, 10_000, rule), { tokens: 200, at: 10_000 });
  });

  test('an earlier time refills nothing and does not move the bucket back', () => {
    assert.deepEqual(refill({ tokens: 7, at: 1000 }, 400, rule), { tokens: 7, at: 1000 });
  });

  test('take refuses when fewer tokens than asked remain', () => {
    assert.deepEqual(take({ tokens: 1.5, at: 0 }), { tokens: 0.5, at: 0 });
    assert.equal(take({ tokens: 0.99, at: 0 }), undefined);
  });

  test('lowest takes the emptier view, refilled to the same time', () => {
    const stored = { tokens: 10, at: 0 };
    const remembered = { tokens: 60, at: 0 };
    assert.deepEqual(lowest([remembered, stored], 100, rule), { tokens: 20, at: 100 });
    assert.deepEqual(lowest([undefined, undefined], 100, rule), { tokens: 200, at: 100 });
  });

  test('only a bucket below half its burst must be stored', () => {
    assert.equal(mustStore({ tokens: 100, at: 0 }, rule), false);
    assert.equal(mustStore({ tokens: 99.9, at: 0 }, rule), true);
  });

  test('over any span, accepted packets are at most burst + rate × span', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 400 }),
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 100 }),
        (gaps, perSecond, burst) => {
          const r = { perSecond, burst };
          let bucket = refill(undefined, 0, r);
          let now = 0;
          let accepted = 0;
          for (const gap of gaps) {
            now += gap;
            const after = take(refill(bucket, now, r));
            if (after) {
              bucket = after;
              accepted++;
            }
          }
          return accepted <= burst + (perSecond * now) / 1000 + 1e-9;
        },
      ),
    );
  });

  test('a client sending exactly at the rate is never refused', () => {
    let bucket = refill(undefined, 0, rule);
    for (let i = 1; i <= 10_000; i++) {
      const after = take(refill(bucket, i * 10, rule));
      assert.ok(after, `packet ${i}`);
      bucket = after;
    }
    assert.equal(mustStore(bucket, rule), false);
  });

  test('RateMemory forgets the least recently set connection first', () => {
    const memory = new RateMemory();
    for (let i = 0; i <= 10_000; i++) memory.set(`c${i}`, { tokens: i, at: 0 });
    assert.equal(memory.get('c0'), undefined);
    assert.deepEqual(memory.get('c10000'), { tokens: 10_000, at: 0 });
  });
});
