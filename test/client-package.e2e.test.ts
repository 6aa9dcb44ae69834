/**
 * The published client package as a user gets it: `npm pack` of packages/client, installed into an
 * empty project, run with plain `node` (no tsx) against the emulator; its declarations compiled by
 * tsc; its `browser` condition bundled; the bridge command; the browser example in headless Chromium
 * when one is installed.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import vm from 'node:vm';
import { build } from 'esbuild';
import { WebSocket } from 'ws';
import { startTestEmulator } from './support/emulator.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const TIMEOUT = { timeout: 120_000 };
// Children run on plain Node: nothing of this test runner's loaders may leak into them.
const plainEnv = { ...process.env, NODE_OPTIONS: '' };

interface PackedFile {
  path: string;
  size: number;
}
interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  files: PackedFile[];
}

/** Runs a command to completion; a failure carries its output, which is what a reader needs. */
async function run(
  command: string,
  args: string[],
  cwd: string,
  timeout = 90_000,
): Promise<{ stdout: string; stderr: string }> {
  try {
    return await promisify(execFile)(command, args, { cwd, env: plainEnv, timeout, maxBuffer: 16 << 20 });
  } catch (error) {
    const { stdout, stderr, message } = error as Error & { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${message}\n${stdout ?? ''}\n${stderr ?? ''}`);
  }
}

/** The first ```js block of a README section: the example a user copies. */
function readmeExample(readme: string, heading: string): string {
  const section = readme.slice(readme.indexOf(heading));
  assert.ok(section.startsWith(heading), `README has no "${heading}" section`);
  const example = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(example, `no js example under "${heading}"`);
  return example;
}

let emulator: Awaited<ReturnType<typeof startTestEmulator>>;
let work: string;
let project: string;
let packed: PackResult;

before(
  async () => {
    work = mkdtempSync(join(tmpdir(), 'nimbus-client-package-'));
    project = join(work, 'app');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), '{ "name": "app", "private": true }\n');
    const pack = async () => {
      // prepack builds dist/, so the tarball is always what the sources say.
      const { stdout } = await run(
        'npm',
        ['pack', '--json', '--pack-destination', work, './packages/client'],
        repo,
      );
      [packed] = JSON.parse(stdout) as PackResult[];
      // Dependencies come from the npm cache when they are there (CI's `npm ci` filled it).
      const tarball = join(work, packed.filename);
      await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], project, 300_000);
    };
    [emulator] = await Promise.all([startTestEmulator(), pack()]);
  },
  { timeout: 600_000 },
);

after(async () => {
  await emulator?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

test('the package holds built JavaScript, declarations and browser builds, and none of the broker', () => {
  const paths = packed.files.map((f) => f.path).sort();
  const allowed =
    /^(package\.json|README\.md|bin\/nimbus-bridge\.js|dist\/(esm|cjs)\/(client|bridge|shared\/protocol)\/\w+\.(js|d\.ts)|dist\/cjs\/package\.json|dist\/browser\/(index|nimbus-mqtt)\.js)$/;
  assert.deepEqual(
    paths.filter((p) => !allowed.test(p)),
    [],
    'files outside the client, the bridge and the wire codec',
  );
  for (const entry of ['client/index', 'client/stream', 'client/websocket', 'shared/protocol/wire']) {
    for (const tree of ['esm', 'cjs']) {
      for (const ext of ['js', 'd.ts']) {
        assert.ok(paths.includes(`dist/${tree}/${entry}.${ext}`), `dist/${tree}/${entry}.${ext} missing`);
      }
    }
  }

  const manifest = JSON.parse(
    readFileSync(join(project, 'node_modules/nimbus-mqtt-client/package.json'), 'utf8'),
  ) as {
    exports: Record<string, unknown>;
    types: string;
    main: string;
    dependencies: Record<string, string>;
    sideEffects: boolean;
  };
  // Every target of the exports map is in the tarball, and `types` comes first wherever it appears.
  const targets: string[] = [manifest.types, manifest.main];
  const walk = (node: unknown, where: string): void => {
    if (typeof node === 'string') {
      targets.push(node);
      return;
    }
    const keys = Object.keys(node as object);
    if (keys.includes('types'))
      assert.equal(keys[0], 'types', `"types" is not the first condition of ${where}`);
    for (const key of keys) walk((node as Record<string, unknown>)[key], `${where}.${key}`);
  };
  walk(manifest.exports, 'exports');
  for (const target of targets)
    assert.ok(paths.includes(target.replace(/^\.\//, '')), `${target} not packed`);
  assert.equal(manifest.sideEffects, false);

  // What a client user gets installed: MQTT.js and three small packages, not the broker's AWS stack.
  assert.deepEqual(Object.keys(manifest.dependencies).sort(), [
    '@types/readable-stream',
    'buffer',
    'mqtt',
    'readable-stream',
    'ws',
  ]);
  const installed = readdirSync(join(project, 'node_modules'));
  for (const heavy of [
    '@aws-sdk',
    '@aws-lambda-powertools',
    'aws-cdk-lib',
    'amplify-dynamodb-simulator',
    'tsx',
  ]) {
    assert.ok(!installed.includes(heavy), `installing the client brought ${heavy}`);
  }
  // The package's ranges are the ones the repository builds and tests the client with.
  const root = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  for (const [name, range] of Object.entries(manifest.dependencies)) {
    assert.equal(range, root.dependencies[name] ?? root.devDependencies[name], `${name} range differs`);
  }
});

test(
  "README's example runs from the installed package with plain node, as ES module and CommonJS",
  TIMEOUT,
  async () => {
    const readme = readFileSync(join(repo, 'README.md'), 'utf8');
    const example = readmeExample(readme, '## Install the client');
    const packageReadme = readFileSync(join(project, 'node_modules/nimbus-mqtt-client/README.md'), 'utf8');
    assert.ok(packageReadme.includes(example), "the package's README shows another example than README.md");
    assert.ok(
      example.includes("'ws://127.0.0.1:1884'"),
      'the example no longer connects to the emulator URL',
    );
    const esm = example.replace("'ws://127.0.0.1:1884'", JSON.stringify(emulator.url));
    const cjs = esm.replace(
      "import { connect } from 'nimbus-mqtt-client';",
      "const { connect } = require('nimbus-mqtt-client');",
    );
    assert.notEqual(cjs, esm, 'the example does not import connect the way this test expects');
    writeFileSync(join(project, 'example.mjs'), esm);
    writeFileSync(join(project, 'example.cjs'), cjs);
    for (const file of ['example.mjs', 'example.cjs']) {
      // The example ends itself once its own message came back: connect, subscribe, publish, receive.
      const { stdout } = await run(process.execPath, [file], project, 60_000);
      assert.equal(stdout, 'home/kitchen/temp 21.5\n', `${file} printed ${JSON.stringify(stdout)}`);
    }
  },
);

test(
  'the declarations type-check a TypeScript app (ESM and CommonJS, NodeNext and bundler resolution)',
  TIMEOUT,
  async () => {
    const app = `import { connect, type MqttClient, type NimbusClientOptions, NimbusTransportError } from 'nimbus-mqtt-client';

const options: NimbusClientOptions = { clientId: 'typed-FORMAT', protocolVersion: 5, reconnectPeriod: 0 };
const client: MqttClient = connect(process.argv[2] ?? 'ws://127.0.0.1:1884', options);
// @ts-expect-error the URL is a string: declarations that degraded to \`any\` would accept a number
const notAUrl: Parameters<typeof connect>[0] = 1884;
client.on('error', (error) => {
  console.error(error instanceof NimbusTransportError ? error.code : error.message);
  process.exit(1);
});
client.on('connect', async () => {
  await client.subscribeAsync('typed/FORMAT', { qos: 1 });
  await client.publishAsync('typed/FORMAT', 'checked by tsc', { qos: 1 });
});
client.on('message', async (topic: string, payload: Buffer) => {
  console.log(topic, payload.toString());
  await client.endAsync();
});
`;
    writeFileSync(join(project, 'typed.mts'), app.replaceAll('FORMAT', 'esm'));
    writeFileSync(join(project, 'typed.cts'), app.replaceAll('FORMAT', 'cjs'));
    const strict = { strict: true, skipLibCheck: false, target: 'ES2022', types: ['node'] };
    const tsconfig = (compilerOptions: object) =>
      `${JSON.stringify({ compilerOptions, files: ['typed.mts', 'typed.cts'] })}\n`;
    writeFileSync(join(project, 'tsconfig.json'), tsconfig({ ...strict, module: 'NodeNext', outDir: '.' }));
    writeFileSync(
      join(project, 'tsconfig.bundler.json'),
      // The NodeNext run checked the declarations themselves; this one only how a bundler app resolves them.
      tsconfig({
        ...strict,
        skipLibCheck: true,
        module: 'ESNext',
        moduleResolution: 'Bundler',
        noEmit: true,
      }),
    );
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    await run(process.execPath, [tsc, '-p', 'tsconfig.json'], project);
    await run(process.execPath, [tsc, '-p', 'tsconfig.bundler.json'], project);
    // NodeNext compiled typed.cts to require() calls: both declaration trees were used.
    assert.match(readFileSync(join(project, 'typed.cjs'), 'utf8'), /require\("nimbus-mqtt-client"\)/);
    for (const [file, format] of [
      ['typed.mjs', 'esm'],
      ['typed.cjs', 'cjs'],
    ]) {
      const { stdout } = await run(process.execPath, [file, emulator.url], project, 60_000);
      assert.equal(stdout, `typed/${format} checked by tsc\n`);
    }
  },
);

test(
  "a bundler's browser build takes the package's browser entry, without ws, and connects",
  TIMEOUT,
  async () => {
    writeFileSync(join(project, 'browser-app.js'), "export { connect } from 'nimbus-mqtt-client';\n");
    const result = await build({
      entryPoints: [join(project, 'browser-app.js')],
      absWorkingDir: project,
      bundle: true,
      platform: 'browser',
      format: 'iife',
      globalName: 'App',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    const inputs = Object.keys(result.metafile.inputs);
    assert.ok(inputs.includes('node_modules/nimbus-mqtt-client/dist/browser/index.js'), inputs.join('\n'));
    assert.deepEqual(
      inputs.filter((input) => input.startsWith('node_modules/ws/')),
      [],
      'the browser build pulled in ws',
    );
    // Run it where there are browser globals only: no process, no require, no Node built-ins.
    const context = vm.createContext({
      WebSocket,
      URL,
      TextEncoder,
      TextDecoder,
      AbortController,
      AbortSignal,
      EventTarget,
      Event,
      setTimeout,
      clearTimeout,
      setInterval,
      clearInterval,
      queueMicrotask,
      console,
      navigator: { userAgent: 'Mozilla/5.0 (test)' },
      url: emulator.url,
    });
    context.self = context;
    vm.runInContext(result.outputFiles[0].text, context);
    const received: Promise<string> = vm.runInContext(
      `(async () => {
      const client = App.connect(url, { clientId: 'bundled', reconnectPeriod: 0 });
      await new Promise((resolve, reject) => { client.once('connect', resolve); client.once('error', reject); });
      await client.subscribeAsync('bundled/app', { qos: 1 });
      const arrival = new Promise((resolve) => client.once('message', (topic, payload) => resolve(topic + ' ' + payload)));
      await client.publishAsync('bundled/app', 'from a bundle', { qos: 1 });
      const text = await arrival;
      await client.endAsync();
      return text;
    })()`,
      context,
    );
    assert.equal(await received, 'bundled/app from a bundle');
  },
);

/** Waits for a child's first stdout line. */
function firstLine(child: ChildProcess, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr?.on('data', (chunk) => {
      err += chunk;
    });
    child.stdout?.on('data', (chunk) => {
      out += chunk;
      if (out.includes('\n')) resolve(out.split('\n')[0]);
    });
    child.once('exit', (code) =>
      reject(new Error(`${what} exited with ${code} before printing its address\n${err}`)),
    );
  });
}

test(
  'the nimbus-bridge command of the package carries plain MQTT over TCP to the emulator',
  TIMEOUT,
  async () => {
    const help = await run(join(project, 'node_modules/.bin/nimbus-bridge'), ['--help'], project);
    assert.match(help.stdout, /^Usage: nimbus-bridge /);
    const bridge = spawn(
      join(project, 'node_modules/.bin/nimbus-bridge'),
      ['--listen', '0', '--url', emulator.url, '--quiet'],
      { cwd: project, env: plainEnv, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      const line = await firstLine(bridge, 'nimbus-bridge');
      const address = /mqtt:\/\/[\d.]+:\d+/.exec(line)?.[0];
      assert.ok(address, `no address in "${line}"`);
      // MQTT.js over plain TCP, as installed with the package: what mosquitto or a device would speak.
      writeFileSync(
        join(project, 'tcp.mjs'),
        `import mqtt from 'mqtt';
const client = await mqtt.connectAsync(${JSON.stringify(address)}, { clientId: 'over-tcp', reconnectPeriod: 0 });
await client.subscribeAsync('tcp/check', { qos: 1 });
const arrival = new Promise((resolve) => client.once('message', (topic, payload) => resolve(topic + ' ' + payload)));
await client.publishAsync('tcp/check', 'through the bridge', { qos: 1 });
console.log(await arrival);
await client.endAsync();
`,
      );
      const { stdout } = await run(process.execPath, ['tcp.mjs'], project, 60_000);
      assert.equal(stdout, 'tcp/check through the bridge\n');
    } finally {
      const exited = new Promise((resolve) => bridge.once('exit', (code) => resolve(code)));
      bridge.kill('SIGTERM');
      assert.equal(await exited, 0, 'the bridge did not stop cleanly on SIGTERM');
    }
  },
);

const chromium =
  process.env.CHROMIUM_PATH ??
  ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((path) =>
    existsSync(path),
  );

test('the browser example loads the prebuilt bundle in Chromium, connects, subscribes and receives its hello', {
  ...TIMEOUT,
  skip: chromium
    ? false
    : 'no Chromium found: install it (Debian: apt-get install -y chromium) or set CHROMIUM_PATH',
}, async () => {
  const { chromium: launcher } = await import('playwright-core');
  const server = spawn(process.execPath, ['examples/browser/serve.mjs', '--port', '0'], {
    cwd: repo,
    env: plainEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const browser = await launcher.launch({ executablePath: chromium, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    const pageUrl = await firstLine(server, 'examples/browser/serve.mjs');
    await page.goto(`${pageUrl}?url=${encodeURIComponent(emulator.url)}`);
    const hello = page.locator('#messages li', { hasText: 'hello from browser-' });
    await hello.waitFor({ timeout: 30_000 });
    assert.equal(await page.locator('#status').getAttribute('data-state'), 'connected');
    assert.match((await hello.textContent()) ?? '', /^nimbus\/browser\/browser-\w+: hello from browser-\w+$/);
    // The publish form goes through the same connection and comes back.
    await page.fill('#publish input[name=text]', 'typed in a browser');
    await page.click('#publish button');
    await page.locator('#messages li', { hasText: 'typed in a browser' }).waitFor({ timeout: 30_000 });
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    server.kill('SIGTERM');
  }
});
