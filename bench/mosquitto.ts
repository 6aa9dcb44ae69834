import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { type Broker, clientOptions, untilConnected } from './brokers.js';

/** How to get Mosquitto when it is missing; the bench skips it then. */
export const mosquittoInstallHint =
  'Mosquitto is not installed, so it is left out: `sudo apt-get install -y mosquitto` (Debian/Ubuntu) or `brew install mosquitto` adds it.';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no free TCP port');
  return address.port;
}

function mosquittoBinary(): string | undefined {
  for (const candidate of ['mosquitto', '/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto']) {
    const probe = spawnSync(candidate, ['-h'], { stdio: 'ignore' });
    if (!probe.error) return candidate;
  }
  return undefined;
}

/** Starts Mosquitto on one listener of `protocol`; throws when it does not take clients within 10 s. */
async function startListener(binary: string, protocol: 'websockets' | 'mqtt'): Promise<Broker> {
  const started = performance.now();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'nimbus-bench-mosquitto-'));
  const config = join(dir, 'mosquitto.conf');
  writeFileSync(
    config,
    [
      `listener ${port} 127.0.0.1`,
      `protocol ${protocol}`,
      'allow_anonymous true',
      'persistence false',
      'max_queued_messages 100000',
      'log_dest none',
      '',
    ].join('\n'),
  );
  const child = spawn(binary, ['-c', config], { stdio: 'ignore' });
  const url = `${protocol === 'websockets' ? 'ws' : 'mqtt'}://127.0.0.1:${port}`;
  // Mosquitto gives no ready signal: retry a connection until it answers.
  const deadline = performance.now() + 10_000;
  for (;;) {
    try {
      const probe = await untilConnected(mqtt.connect(url, { ...clientOptions, clientId: 'probe' }), url);
      await probe.endAsync();
      break;
    } catch (error) {
      if (performance.now() > deadline || child.exitCode !== null) {
        child.kill();
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`Mosquitto did not accept clients on ${url}: ${String(error)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return {
    name: 'mosquitto',
    url,
    readyMs: performance.now() - started,
    connect: (clientId, options) =>
      untilConnected(mqtt.connect(url, { ...clientOptions, ...options, clientId }), url),
    stop: async () => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill();
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Mosquitto with a temporary config: anonymous clients, no persistence, one listener on a free port
 * of 127.0.0.1 — WebSocket, the transport Nimbus's clients use, or plain TCP when this build's
 * WebSocket listener will not start (the report names which). Undefined when not installed.
 */
export async function startMosquitto(
  progress: (line: string) => void,
): Promise<{ broker: Broker; transport: 'WebSocket' | 'TCP' } | undefined> {
  const binary = mosquittoBinary();
  if (!binary) return undefined;
  try {
    return { broker: await startListener(binary, 'websockets'), transport: 'WebSocket' };
  } catch (error) {
    progress(`${error instanceof Error ? error.message : String(error)}; using its TCP listener instead`);
    return { broker: await startListener(binary, 'mqtt'), transport: 'TCP' };
  }
}
