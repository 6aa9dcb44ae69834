// Builds the published client package from the repository's sources (client/, bridge/ and the wire
// codec they share, shared/protocol/wire.ts) into dist/:
//   dist/esm      ES modules + declarations (tsc)          Node `import`
//   dist/cjs      CommonJS + declarations (tsc)            Node `require`
//   dist/browser  index.js: our code only, dependencies left to the app's bundler (`browser` condition);
//                 nimbus-mqtt.js: everything in one minified ES module for a <script type="module">
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = fileURLToPath(new URL('.', import.meta.url));
const require = createRequire(import.meta.url);
const tsc = require.resolve('typescript/bin/tsc');
const { name, version } = JSON.parse(readFileSync(`${here}package.json`, 'utf8'));

rmSync(`${here}dist`, { recursive: true, force: true });
for (const project of ['tsconfig.json', 'tsconfig.cjs.json']) {
  execFileSync(process.execPath, [tsc, '-p', `${here}${project}`], { stdio: 'inherit' });
}
// Marks dist/cjs as CommonJS for Node and for TypeScript (its .d.ts are then CommonJS declarations).
writeFileSync(`${here}dist/cjs/package.json`, '{ "type": "commonjs" }\n');

// A browser never loads `ws` (it takes globalThis.WebSocket), so the browser builds carry a stub
// instead of the dynamic import, which bundlers would otherwise chase into `ws`'s Node code.
const withoutWs = {
  name: 'without-ws',
  setup(esbuild) {
    esbuild.onResolve({ filter: /^ws$/ }, () => ({ path: 'ws', namespace: 'without-ws' }));
    esbuild.onLoad({ filter: /.*/, namespace: 'without-ws' }, () => ({
      contents:
        "export default class { constructor() { throw new Error('the ws package is not part of the browser build: pass a WebSocket class as the WebSocket option'); } }",
      loader: 'js',
    }));
  },
};
const common = {
  entryPoints: [`${here}../../client/index.ts`],
  bundle: true,
  platform: 'browser',
  format: 'esm',
  target: 'es2020',
  plugins: [withoutWs],
  banner: { js: `/* ${name} ${version}, Apache-2.0 */` },
  logLevel: 'warning',
};
mkdirSync(`${here}dist/browser`, { recursive: true });
await build({
  ...common,
  outfile: `${here}dist/browser/index.js`,
  external: ['mqtt', 'buffer', 'readable-stream'],
});
await build({
  ...common,
  outfile: `${here}dist/browser/nimbus-mqtt.js`,
  minify: true,
  legalComments: 'eof',
});
