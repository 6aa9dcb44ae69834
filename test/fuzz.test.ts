import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { fuzzProperties } from './support/fuzz-properties.js';

// A sample of every fuzz property (test/support/fuzz-properties.ts); `npm run fuzz` runs them at
// length. FUZZ_SAMPLE sets the cases per property; FUZZ_SEED replays one.

const sample = Number(process.env.FUZZ_SAMPLE ?? 300);
const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

describe('fuzz sample', () => {
  for (const property of fuzzProperties()) {
    test(property.name, async () => {
      // A handler case builds a broker with its victims: half as many keeps the file at a few seconds.
      const numRuns = property.name.includes('handler:') ? Math.ceil(sample / 2) : sample;
      const details = await property.check({ numRuns, ...(seed !== undefined ? { seed } : {}) });
      if (details.failed) assert.fail(fc.defaultReportMessage(details) ?? 'the property failed');
    });
  }
});
