import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Emulator } from '../emulator/index.js';
import { hashPassword } from '../shared/auth.js';
import { connectClient, eventually, inbox, startTestEmulator } from './support/emulator.js';

// The emulator at log level info, its lines collected: what a user following `npm start` reads.
const TIMEOUT = { timeout: 120_000 };
const lines: string[] = [];
let emulator: Emulator;

before(async () => {
  emulator = await startTestEmulator({
    logLevel: 'info',
    log: (line) => lines.push(line),
    users: { alice: hashPassword('alice-pw') },
  });
}, TIMEOUT);

after(() => emulator?.stop(), TIMEOUT);

/** The first line for `event` and `clientId`, without its time stamp. */
const lineFor = (event: string, clientId: string) =>
  lines
    .map((line) => line.replace(/^\d\d:\d\d:\d\d\.\d{3} {2}/, ''))
    .find((line) => line.split(/\s+/)[0] === event && line.split(/\s+/)[1] === clientId);

test(
  'info logs one aligned line per connect, subscribe, refusal and disconnect; no publishes',
  TIMEOUT,
  async () => {
    const kitchen = await connectClient(emulator.url, {
      clientId: 'kitchen',
      protocolVersion: 5,
      username: 'alice',
      password: 'alice-pw',
      keepalive: 60,
    });
    const received = inbox(kitchen);
    await kitchen.subscribeAsync(['home/+/temp', 'alerts/#'], { qos: 1 });
    await kitchen.publishAsync('home/kitchen/temp', '21.5', { qos: 1 });
    await eventually('the publish delivered', () => received.length === 1, 30_000);
    await kitchen.endAsync();
    // A wrong password: refused at CONNECT with MQTT 5's reason code and name.
    await assert.rejects(
      connectClient(emulator.url, {
        clientId: 'intruder',
        protocolVersion: 5,
        username: 'alice',
        password: 'nope',
      }),
    );
    await eventually('the disconnect lines', () => lineFor('disconnect', 'intruder') !== undefined, 30_000);
    assert.equal(
      lineFor('connect', 'kitchen'),
      'connect     kitchen          v5 ka=60 clean session-present=0 user=alice',
    );
    assert.equal(lineFor('subscribe', 'kitchen'), 'subscribe   kitchen          home/+/temp q1, alerts/# q1');
    assert.equal(lineFor('disconnect', 'kitchen'), 'disconnect  kitchen          client DISCONNECT');
    assert.equal(
      lineFor('refused', 'intruder'),
      'refused     intruder         CONNECT: 0x86 bad user name or password',
    );
    assert.match(lineFor('disconnect', 'intruder') ?? '', /^disconnect {2}intruder +\S/);
    // Every line starts with a time stamp; debug's publish and delivery lines stay out at info.
    for (const line of lines) assert.match(line, /^\d\d:\d\d:\d\d\.\d{3} {2}\S/);
    assert.equal(lineFor('publish', 'kitchen'), undefined);
    assert.equal(lineFor('deliver', 'kitchen'), undefined);
  },
);
