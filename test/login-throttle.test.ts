import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  addressThrottle,
  afterFailure,
  blockedFor,
  MemoryLoginAttempts,
  StoredLoginThrottle,
  userThrottle,
} from '../shared/login-throttle.js';

describe('login throttle decisions', () => {
  test('the first failures are free; then blocks double from 1 s, capped at 30 s per user name', () => {
    let state = afterFailure(undefined, 0, userThrottle);
    for (let i = 2; i <= userThrottle.freeFailures; i++) state = afterFailure(state, 0, userThrottle);
    assert.equal(blockedFor(state, 0), 0);
    const blocks: number[] = [];
    for (let i = 0; i < 8; i++) {
      state = afterFailure(state, 0, userThrottle);
      blocks.push(blockedFor(state, 0));
    }
    assert.deepEqual(blocks, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  });

  test('a block ends by itself; after the window the count starts over', () => {
    let state = afterFailure(undefined, 0, userThrottle);
    for (let i = 0; i < 10; i++) state = afterFailure(state, 0, userThrottle);
    assert.equal(blockedFor(state, 30_000), 0);
    const later = afterFailure(state, userThrottle.windowMs, userThrottle);
    assert.deepEqual(later, { failures: 1, windowStart: userThrottle.windowMs, blockedUntil: 0 });
  });

  test('an address gets more free failures and a longer cap than a user name', () => {
    assert.ok(addressThrottle.freeFailures > userThrottle.freeFailures);
    assert.ok(addressThrottle.maxBlockMs > userThrottle.maxBlockMs);
  });
});

describe('StoredLoginThrottle', () => {
  test('blocks a user name after its free failures, whatever the address; a success clears it', async () => {
    let now = 0;
    const throttle = new StoredLoginThrottle(new MemoryLoginAttempts(), () => now);
    for (let i = 0; i < userThrottle.freeFailures; i++) {
      assert.equal(await throttle.blockedFor({ username: 'alice', sourceIp: `10.0.0.${i}` }), 0);
      await throttle.failed({ username: 'alice', sourceIp: `10.0.0.${i}` });
    }
    await throttle.failed({ username: 'alice', sourceIp: '10.0.0.99' });
    assert.equal(await throttle.blockedFor({ username: 'alice', sourceIp: '192.0.2.1' }), 1000);
    assert.equal(
      await throttle.blockedFor({ username: 'bob', sourceIp: '192.0.2.1' }),
      0,
      'other names go on',
    );
    now = 1000;
    assert.equal(await throttle.blockedFor({ username: 'alice' }), 0, 'the block is short');
    await throttle.succeeded({ username: 'alice' });
    await throttle.failed({ username: 'alice' });
    assert.equal(await throttle.blockedFor({ username: 'alice' }), 0, 'the success started the count over');
  });

  test('blocks an address spraying many user names', async () => {
    const throttle = new StoredLoginThrottle(new MemoryLoginAttempts(), () => 0);
    for (let i = 0; i <= addressThrottle.freeFailures; i++)
      await throttle.failed({ username: `user${i}`, sourceIp: '203.0.113.9' });
    assert.equal(await throttle.blockedFor({ username: 'fresh', sourceIp: '203.0.113.9' }), 1000);
    assert.equal(await throttle.blockedFor({ username: 'fresh', sourceIp: '203.0.113.10' }), 0);
  });

  test('concurrent failures of one key are all counted', async () => {
    const throttle = new StoredLoginThrottle(new MemoryLoginAttempts(), () => 0);
    await Promise.all(Array.from({ length: 4 }, () => throttle.failed({ username: 'carol' })));
    await Promise.all(Array.from({ length: 2 }, () => throttle.failed({ username: 'carol' })));
    assert.equal(await throttle.blockedFor({ username: 'carol' }), 1000);
  });
});
