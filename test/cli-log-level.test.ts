import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

const cli = new URL('../emulator/cli.ts', import.meta.url).pathname;
const run = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], { encoding: 'utf8', timeout: 60_000 });

test('--log-level refuses an unknown level, names the levels and starts nothing', () => {
  const result = run('--log-level', 'loud');
  assert.equal(result.status, 2);
  assert.match(result.stderr, /--log-level must be one of error, warn, info, debug, not "loud"/);
  assert.match(result.stderr, /Usage: npm start/);
  assert.equal(result.stdout, '');
});

test('--help lists --log-level and its default', () => {
  const result = run('--help');
  assert.equal(result.status, 0);
  assert.match(result.stdout, /--log-level L +error \| warn \| info .*\n.*debug .*default info/);
});

test('--throttle-posts refuses a share outside 0..1 and starts nothing', () => {
  for (const share of ['1', '-0.1', 'lots']) {
    const result = run(`--throttle-posts=${share}`);
    assert.equal(result.status, 2);
    assert.match(
      result.stderr,
      new RegExp(`--throttle-posts must be a share from 0 up to \\(not including\\) 1, not "${share}"`),
    );
    assert.equal(result.stdout, '');
  }
});
