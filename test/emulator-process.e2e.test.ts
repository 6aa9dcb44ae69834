import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { eventually } from './support/emulator.js';

// The emulator as a process: however it ends, DynamoDB Local (a Java child) ends with it, and a port
// that is taken is refused before Java starts. Processes are found through /proc, so Linux only.

const root = fileURLToPath(new URL('..', import.meta.url));
/** Java's start-up on a busy machine is most of this. */
const limit = { timeout: 120_000, skip: process.platform !== 'linux' && 'reads /proc' };

interface Running {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Everything spawned here, killed at the end even if a test timed out before its own clean-up. */
const spawned = new Set<ChildProcess>();
after(() => {
  for (const child of spawned) child.kill('SIGKILL');
});

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Running {
  const child = spawn(command, args, { cwd: root, env });
  spawned.add(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk) => {
    out += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    err += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, out: () => out, err: () => err, exited };
}

const cli = (args: string[], env?: NodeJS.ProcessEnv) =>
  run(process.execPath, ['--import', 'tsx', 'emulator/cli.ts', ...args], env);

/** Waits for the ws:// line on stdout and returns its port. */
async function ready(emulator: Running): Promise<number> {
  await eventually(
    'the URL line',
    () => /^ws:\/\/127\.0\.0\.1:\d+$/m.test(emulator.out()) || emulator.child.exitCode !== null,
    90_000,
  );
  const match = /^ws:\/\/127\.0\.0\.1:(\d+)$/m.exec(emulator.out());
  assert.ok(match, `no URL on stdout:\n${emulator.out()}\nstderr:\n${emulator.err()}`);
  return Number(match[1]);
}

/** Live (not zombie) processes: pid → parent pid. */
function processes(): Map<number, number> {
  const table = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // "pid (comm) state ppid …": comm may hold spaces and parentheses, so read after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state !== 'Z') table.set(Number(entry), Number(ppid));
    } catch {
      // gone between readdir and read
    }
  }
  return table;
}

/** The live descendants of `pid`. */
function descendants(pid: number): number[] {
  const table = processes();
  const found: number[] = [];
  let frontier = [pid];
  while (frontier.length > 0) {
    const children = [...table].filter(([, ppid]) => frontier.includes(ppid)).map(([child]) => child);
    found.push(...children);
    frontier = children;
  }
  return found;
}

const commandLine = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
};

/** DynamoDB Local itself, not the watchdog whose arguments name it too. */
const isDynamoDbLocal = (cmdline: string) =>
  /(^|\/)java$/.test(cmdline.split(' ')[0]) && cmdline.includes('DynamoDBLocal.jar');

/** Whether `pid` is still the process it was (live, and the same command line). */
const stillRunning = (pid: number, cmdline: string) => processes().has(pid) && commandLine(pid) === cmdline;

/** Resolves when 127.0.0.1:`port` can be listened on again. */
async function listenable(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

describe('emulator process (emulator/cli.ts)', () => {
  test('SIGTERM to `npm start` stops the emulator and DynamoDB Local and frees the port', limit, async () => {
    const npm = run('npm', ['start', '--silent', '--', '--port', '0']);
    const started: Array<{ pid: number; cmdline: string }> = [];
    try {
      const port = await ready(npm);
      const pid = npm.child.pid ?? 0;
      started.push(...descendants(pid).map((p) => ({ pid: p, cmdline: commandLine(p) })));
      const java = started.filter((p) => isDynamoDbLocal(p.cmdline));
      assert.equal(
        java.length,
        1,
        `one DynamoDB Local under npm start:\n${started.map((p) => p.cmdline).join('\n')}`,
      );
      npm.child.kill('SIGTERM');
      await npm.exited;
      // The emulator waits for DynamoDB Local before it exits, and npm for the emulator.
      assert.equal(stillRunning(java[0].pid, java[0].cmdline), false, 'DynamoDB Local has exited');
      await eventually('every process npm start made has exited', () =>
        started.every((p) => !stillRunning(p.pid, p.cmdline)),
      );
      assert.equal(await listenable(port), true, `port ${port} is free again`);
      assert.match(npm.err(), /SIGTERM: stopping/);
    } finally {
      for (const p of started) if (stillRunning(p.pid, p.cmdline)) process.kill(p.pid, 'SIGKILL');
      npm.child.kill('SIGKILL');
    }
  });

  test('kill -9 of the emulator leaves no DynamoDB Local behind', limit, async () => {
    const emulator = cli(['--port', '0']);
    const started: Array<{ pid: number; cmdline: string }> = [];
    try {
      await ready(emulator);
      const pid = emulator.child.pid ?? 0;
      started.push(...descendants(pid).map((p) => ({ pid: p, cmdline: commandLine(p) })));
      const java = started.filter((p) => isDynamoDbLocal(p.cmdline));
      assert.equal(
        java.length,
        1,
        `one DynamoDB Local under the emulator:\n${started.map((p) => p.cmdline).join('\n')}`,
      );
      emulator.child.kill('SIGKILL');
      assert.equal((await emulator.exited).signal, 'SIGKILL');
      // Nothing of the emulator ran after SIGKILL: only the watchdog can have stopped Java.
      await eventually('DynamoDB Local gone', () => !stillRunning(java[0].pid, java[0].cmdline), 15_000);
      await eventually('all its children gone', () => started.every((p) => !stillRunning(p.pid, p.cmdline)));
    } finally {
      for (const p of started) if (stillRunning(p.pid, p.cmdline)) process.kill(p.pid, 'SIGKILL');
      emulator.child.kill('SIGKILL');
    }
  });

  describe('a port in use', () => {
    // A stand-in for java on PATH that notes each call: whether the emulator got as far as Java shows.
    const dir = mkdtempSync(join(tmpdir(), 'nimbus-fake-java-'));
    const calls = join(dir, 'calls');
    writeFileSync(join(dir, 'java'), `#!/bin/sh\necho "$@" >> "${calls}"\nexit 1\n`);
    chmodSync(join(dir, 'java'), 0o755);
    const env = { ...process.env, PATH: `${dir}:${process.env.PATH}` };
    let taken: Server;

    before(async () => {
      taken = createServer();
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    });
    after(() => {
      taken.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const takenPort = () => {
      const address = taken.address();
      assert.ok(address && typeof address === 'object');
      return address.port;
    };

    test('is refused with one line naming it and a non-zero exit, before Java starts', limit, async () => {
      rmSync(calls, { force: true });
      const emulator = cli(['--port', String(takenPort())], env);
      const { code } = await emulator.exited;
      assert.notEqual(code, 0);
      assert.equal(
        emulator.err(),
        `port ${takenPort()} is in use: stop the other process or pass --port 0\n`,
      );
      assert.equal(emulator.out(), '');
      assert.equal(existsSync(calls), false, 'java was never run');
    });

    test('(control: with the port free, the same emulator does reach Java)', limit, async () => {
      rmSync(calls, { force: true });
      const emulator = cli(['--port', '0'], env);
      const { code } = await emulator.exited;
      assert.notEqual(code, 0, 'the stand-in java fails');
      assert.equal(existsSync(calls), true, `java was run; stderr:\n${emulator.err()}`);
    });
  });
});
