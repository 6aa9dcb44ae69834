import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Packet } from 'mqtt-packet';
import { createLog, type LogLevel } from '../emulator/log.js';
import { Traffic } from '../emulator/traffic.js';
import { encodeFrame } from '../shared/protocol/frames.js';

/** A Traffic observer on a fixed clock, its log lines kept without their time stamps. */
function observe(level: LogLevel) {
  let now = Date.UTC(2026, 0, 1, 12, 0, 0);
  const lines: string[] = [];
  const log = createLog(
    level,
    (line) => lines.push(line.slice(14)),
    () => new Date(now),
  );
  const traffic = new Traffic(log, () => now);
  return {
    traffic,
    lines,
    advance: (ms: number) => {
      now += ms;
    },
    in: (id: string, packets: Packet[], version: 4 | 5 = 5) =>
      traffic.frameIn(id, encodeFrame(packets, version)),
    out: (id: string, packets: Packet[], version: 4 | 5 = 5) =>
      traffic.frameOut(id, encodeFrame(packets, version)),
  };
}

const connect = (clientId: string, extra: object = {}): Packet =>
  ({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 5,
    clientId,
    keepalive: 30,
    clean: true,
    ...extra,
  }) as Packet;

test('debug adds a line per publish from a client and per delivery to one', () => {
  const t = observe('debug');
  t.traffic.opened('c1', 0, '127.0.0.1');
  t.in('c1', [connect('kitchen')]);
  t.out('c1', [{ cmd: 'connack', sessionPresent: false, reasonCode: 0 }]);
  t.in('c1', [
    {
      cmd: 'publish',
      topic: 'home/t',
      payload: Buffer.from('21.5'),
      qos: 1,
      messageId: 1,
      retain: false,
      dup: false,
    },
  ]);
  t.out('c1', [
    { cmd: 'publish', topic: 'home/t', payload: Buffer.from('21.5'), qos: 0, retain: true, dup: false },
  ]);
  assert.deepEqual(t.lines, [
    'connect     kitchen          v5 ka=30 clean session-present=0',
    'publish     kitchen          home/t q1 4 B',
    'deliver     kitchen          home/t q0 retain 4 B',
  ]);
});

test('an empty client id shows the identifier the CONNACK assigned', () => {
  const t = observe('info');
  t.traffic.opened('c1', 0, '127.0.0.1');
  t.in('c1', [connect('')]);
  t.out('c1', [
    {
      cmd: 'connack',
      sessionPresent: false,
      reasonCode: 0,
      properties: { assignedClientIdentifier: 'auto-1' },
    },
  ]);
  assert.deepEqual(t.lines, ['connect     auto-1           v5 ka=30 clean session-present=0']);
  assert.equal(t.traffic.views[0].clientId, 'auto-1');
});

test('refusals: a 3.1.1 CONNACK return code, a SUBACK failure, a broker DISCONNECT, a malformed frame', () => {
  const t = observe('info');
  t.traffic.opened('c1', 0, '127.0.0.1');
  t.in('c1', [{ ...connect('old'), protocolVersion: 4, protocolId: 'MQTT' } as Packet], 4);
  t.out('c1', [{ cmd: 'connack', sessionPresent: false, returnCode: 5 }], 4);
  t.traffic.closing('c1', 'closed by the broker');
  t.traffic.closed('c1', 1000);

  t.traffic.opened('c2', 0, '127.0.0.1');
  t.in('c2', [connect('v5')]);
  t.out('c2', [{ cmd: 'connack', sessionPresent: true, reasonCode: 0 }]);
  t.in('c2', [
    {
      cmd: 'subscribe',
      messageId: 3,
      subscriptions: [
        { topic: 'a/#', qos: 2 },
        { topic: '$share/x', qos: 0 },
      ],
    },
  ]);
  t.out('c2', [{ cmd: 'suback', messageId: 3, granted: [2, 0x9e] }]);
  t.out('c2', [{ cmd: 'disconnect', reasonCode: 0x82 }]);
  t.traffic.closing('c2', 'closed by the broker');
  t.traffic.closed('c2', 1000);

  t.traffic.opened('c3', 0, '127.0.0.1');
  t.traffic.frameIn('c3', 'QR==');
  t.traffic.closed('c3', 1006);
  const [malformed] = t.lines.splice(6, 1);
  assert.deepEqual(t.lines, [
    'refused     old              CONNECT: 5 not authorized',
    'disconnect  old              connection refused',
    'connect     v5               v5 ka=30 clean session-present=1',
    'subscribe   v5               a/# q2, $share/x refused 0x9e shared subscriptions not supported',
    'refused     v5               0x82 protocol error',
    'disconnect  v5               broker DISCONNECT 0x82 protocol error',
    'disconnect  -                network close (1006)',
  ]);
  // The wire codec's own words for what is wrong with the frame.
  assert.match(malformed, /^refused {5}- {16}\S.*(base64|padding)/i);
  assert.deepEqual(t.traffic.views, []);
});

test('a takeover DISCONNECT ends the connection without a refusal line', () => {
  const t = observe('info');
  t.traffic.opened('c1', 0, '127.0.0.1');
  t.in('c1', [connect('kitchen')]);
  t.out('c1', [{ cmd: 'connack', sessionPresent: false, reasonCode: 0 }]);
  t.out('c1', [{ cmd: 'disconnect', reasonCode: 0x8e }]);
  t.traffic.closed('c1', 1000);
  assert.deepEqual(t.lines.slice(1), [
    'disconnect  kitchen          broker DISCONNECT 0x8e session taken over',
  ]);
});

test('rates average publishes over the last whole seconds; the current second waits', () => {
  const t = observe('warn');
  t.traffic.opened('c1', 0, '127.0.0.1');
  t.in('c1', [connect('k')]);
  const publish: Packet = {
    cmd: 'publish',
    topic: 't',
    payload: Buffer.from('x'),
    qos: 0,
    retain: false,
    dup: false,
  };
  for (let i = 0; i < 10; i++) t.in('c1', [publish]);
  t.out('c1', [publish, publish]);
  assert.equal(t.traffic.rates().publishesInPerSecond, 0);
  t.advance(1000);
  const rates = t.traffic.rates();
  assert.equal(rates.publishesInPerSecond, 10 / rates.windowSeconds);
  assert.equal(rates.publishesOutPerSecond, 2 / rates.windowSeconds);
  assert.equal(rates.publishesIn, 10);
  t.advance(60_000);
  assert.equal(t.traffic.rates().publishesInPerSecond, 0);
  assert.equal(t.traffic.rates().publishesIn, 10);
  assert.deepEqual(t.lines, []);
});

test('a handshake $connect refused is logged with its status and body', () => {
  const t = observe('info');
  t.traffic.handshakeRefused(400, 'The WebSocket subprotocol "mqtt" is required.');
  assert.deepEqual(t.lines, [
    'refused     -                WebSocket handshake: HTTP 400 The WebSocket subprotocol "mqtt" is required.',
  ]);
});

test('warn keeps client events out; error and warn messages say their level', () => {
  const lines: string[] = [];
  const log = createLog(
    'warn',
    (line) => lines.push(line),
    () => new Date(2026, 0, 1, 9, 5, 7, 42),
  );
  log.event('info', 'connect', 'kitchen', 'v5');
  log.message('debug', 'not shown');
  log.message('error', 'sweeper failed: boom');
  assert.equal(log.enabled('info'), false);
  assert.deepEqual(lines, ['09:05:07.042  error: sweeper failed: boom']);
});

test('no frame a client can send makes the observer throw', () => {
  const t = observe('debug');
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.string({ maxLength: 16 }), (bytes, text) => {
      t.traffic.opened('c', 0, '127.0.0.1');
      t.traffic.frameIn('c', Buffer.from(bytes).toString('base64'));
      t.traffic.frameIn('c', text);
      t.traffic.frameOut('c', Buffer.from(bytes).toString('base64'));
      t.traffic.closed('c', 1006);
    }),
    { numRuns: 500 },
  );
});
