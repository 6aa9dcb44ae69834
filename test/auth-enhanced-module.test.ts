import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { EnhancedAuthenticator } from '../shared/auth/enhanced.js';
import { loadEnhancedAuthenticator, withEnhancedAuthModule } from '../shared/auth/enhanced-module.js';

const dir = mkdtempSync(join(tmpdir(), 'nimbus-auth-module-'));
function moduleFile(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

test('a module whose default export is an authenticator loads; its methods go before the built-in ones', async () => {
  const file = moduleFile(
    'ok.mjs',
    `export default { methods: ['X-ONE'], start: async () => ({ step: 'success', user: 'u' }), continue: async () => ({ step: 'failure', reason: 'not-authorized' }) };`,
  );
  assert.deepEqual((await loadEnhancedAuthenticator(file)).methods, ['X-ONE']);
  const builtIn: EnhancedAuthenticator = {
    methods: ['SCRAM-SHA-512', 'X-ONE'],
    start: async () => ({ step: 'failure', reason: 'not-authorized' }),
    continue: async () => ({ step: 'failure', reason: 'not-authorized' }),
  };
  const ctx = await withEnhancedAuthModule({
    config: { enhancedAuthModule: file },
    enhancedAuthenticator: builtIn,
  });
  assert.deepEqual(ctx.enhancedAuthenticator?.methods, ['X-ONE', 'SCRAM-SHA-512']);
  assert.deepEqual(await ctx.enhancedAuthenticator?.start('X-ONE', undefined, { clientId: 'c' }), {
    step: 'success',
    user: 'u',
  });
});

test('a module that is not an authenticator, or does not load, stops the start with a message naming it', async () => {
  const wrong = moduleFile('wrong.mjs', `export default { methods: 'X-ONE' };`);
  await assert.rejects(loadEnhancedAuthenticator(wrong), /wrong\.mjs: its default export must be/);
  await assert.rejects(loadEnhancedAuthenticator(join(dir, 'missing.mjs')), /missing\.mjs/);
});

test('without a module the context is unchanged', async () => {
  const ctx = { config: {} };
  assert.equal(await withEnhancedAuthModule(ctx), ctx);
});
