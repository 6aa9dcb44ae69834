import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { FunctionError, FunctionPool } from '../emulator/function-pool.js';
import { Meter } from '../emulator/meter.js';
import { functionSettings } from '../shared/function-settings.js';

// The emulator ends an invocation at the function's timeout, as Lambda does.

const pool = new FunctionPool(
  {
    name: 'slow',
    entry: new URL('./support/slow-function.ts', import.meta.url).href,
    environment: {},
    maxInstances: 1,
    memoryMb: 128,
    timeoutMs: 300,
  },
  new Meter(),
);
after(() => pool.stop());

test('an invocation past the timeout fails with Sandbox.Timedout and its instance is replaced', async () => {
  assert.deepEqual(await pool.invoke({ ms: 1 }), { runs: 1 });
  await assert.rejects(
    pool.invoke({ ms: 5_000 }),
    (error: unknown) => error instanceof FunctionError && error.errorType === 'Sandbox.Timedout',
  );
  // A fresh instance (its module state starts over) serves the next invocation.
  assert.deepEqual(await pool.invoke({ ms: 1 }), { runs: 1 });
});

test('the CDK stack and the emulator read the message function’s timeout from one place', () => {
  assert.equal(functionSettings.message.timeoutSeconds, 15);
});
