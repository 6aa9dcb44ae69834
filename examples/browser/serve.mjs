#!/usr/bin/env node
// Serves the browser example and the prebuilt bundle: node examples/browser/serve.mjs [--port 8080]
// (any static server rooted at the repository does the same). Prints the page's URL on stdout.
import { createReadStream, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('../..', import.meta.url));
const served = ['examples/browser/', 'packages/client/dist/browser/'];
const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8' };
const { values } = parseArgs({ options: { port: { type: 'string', default: '8080' } } });

if (!existsSync(join(root, 'packages/client/dist/browser/nimbus-mqtt.js'))) {
  process.stderr.write('The browser bundle is not built yet: run `npm run build` first.\n');
  process.exit(1);
}
const server = createServer((request, response) => {
  // Normalising a rooted path removes every `..`, so the prefix check below cannot be escaped.
  const path = posix.normalize(decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname)).slice(1);
  const file = path === 'examples/browser/' ? `${path}index.html` : path;
  const allowed = served.some((prefix) => file.startsWith(prefix));
  const type = types[extname(file)];
  if (!allowed || !type || !existsSync(join(root, file))) {
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    return;
  }
  response.writeHead(200, { 'content-type': type });
  createReadStream(join(root, file)).pipe(response);
});
server.listen(Number(values.port), '127.0.0.1', () => {
  process.stdout.write(`http://127.0.0.1:${server.address().port}/examples/browser/\n`);
});
