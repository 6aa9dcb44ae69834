import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { connect as connectTcp, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import mqtt, { type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { type Bridge, startBridge } from '../bridge/index.js';
import type { Emulator } from '../emulator/index.js';
import { connectClient, eventually, inbox, startTestEmulator } from './support/emulator.js';
import { connectPacket } from './support/raw-client.js';

// Stock MQTT over TCP → the bridge → the wire contract → the emulator, and back.
let emulator: Emulator & { logs: string[] };
let bridge: Bridge;
const bridgeLogs: string[] = [];

before(async () => {
  emulator = await startTestEmulator();
  bridge = await startBridge({ listenPort: 0, url: emulator.url, log: (line) => bridgeLogs.push(line) });
});
after(async () => {
  await bridge?.stop();
  await emulator?.stop();
});

/** Every test fails instead of hanging if a close it awaits never comes. */
const limit = { timeout: 20_000 };

const openWebSockets = () => emulator.gateway.connectionIds.length;

/** Plain MQTT.js over TCP to the bridge, resolved with the CONNACK. */
async function connectBridged(
  options: IClientOptions = {},
): Promise<{ client: MqttClient; connack: IConnackPacket }> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${bridge.port}`, {
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ...options,
  });
  const connack = await new Promise<IConnackPacket>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
    client.once('close', () => reject(new Error('closed before CONNACK')));
  });
  return { client, connack };
}

/** Resolves when the client's connection has closed. */
function closed(client: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    if (client.disconnected) resolve();
    else client.once('close', () => resolve());
  });
}

/** A bare TCP client for byte-exact tests: what it receives is parsed into `packets`. */
async function openRaw(): Promise<{ socket: Socket; packets: Packet[]; ended: Promise<void> }> {
  const socket = connectTcp(bridge.port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const packets: Packet[] = [];
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  parser.on('packet', (packet: Packet) => packets.push(packet));
  socket.on('data', (chunk) => parser.parse(chunk));
  socket.on('error', () => {}); // a reset after the bridge closes is fine
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, packets, ended };
}

const generate = (packet: Packet) => mqttPacket.generate(packet);

describe('bridge: plain MQTT over TCP', () => {
  test('QoS 0 and QoS 1 publishes arrive with their topic, payload and QoS', limit, async () => {
    const { client: subscriber } = await connectBridged({ clientId: 'bridge-sub' });
    const { client: publisher } = await connectBridged({ clientId: 'bridge-pub' });
    const received = inbox(subscriber);
    const granted = await subscriber.subscribeAsync('bridge/+', { qos: 1 });
    assert.deepEqual(
      granted.map((g) => [g.topic, g.qos]),
      [['bridge/+', 1]],
    );
    await publisher.publishAsync('bridge/zero', 'at most once', { qos: 0 });
    await publisher.publishAsync('bridge/one', 'at least once', { qos: 1 }); // resolves on PUBACK
    await publisher.publishAsync('elsewhere/one', 'not for bridge/+', { qos: 1 });
    await eventually('both messages', () => received.length >= 2);
    await emulator.settle();
    assert.deepEqual(
      received.sort((a, b) => a.topic.localeCompare(b.topic)),
      [
        { topic: 'bridge/one', payload: 'at least once', qos: 1, retain: false },
        { topic: 'bridge/zero', payload: 'at most once', qos: 0, retain: false },
      ],
    );
    await Promise.all([subscriber.endAsync(), publisher.endAsync()]);
  });

  test('a 3.1.1 client and a 5.0 client exchange messages through the bridge', limit, async () => {
    const v4 = await connectBridged({ clientId: 'bridge-v4', protocolVersion: 4 });
    const v5 = await connectBridged({ clientId: 'bridge-v5', protocolVersion: 5 });
    assert.equal(v4.connack.returnCode, 0);
    assert.equal(v5.connack.reasonCode, 0);
    // Only an MQTT 5 CONNACK carries properties: the 5.0 session really is a 5.0 one.
    assert.equal(v4.connack.properties, undefined);
    assert.ok(v5.connack.properties, 'MQTT 5 CONNACK properties');
    const toV4 = inbox(v4.client);
    const toV5 = inbox(v5.client);
    await v4.client.subscribeAsync('bridge/v4', { qos: 1 });
    await v5.client.subscribeAsync('bridge/v5', { qos: 1 });
    await v5.client.publishAsync('bridge/v4', 'from 5.0', { qos: 1 });
    await v4.client.publishAsync('bridge/v5', 'from 3.1.1', { qos: 1 });
    await eventually('both deliveries', () => toV4.length === 1 && toV5.length === 1);
    assert.deepEqual(toV4, [{ topic: 'bridge/v4', payload: 'from 5.0', qos: 1, retain: false }]);
    assert.deepEqual(toV5, [{ topic: 'bridge/v5', payload: 'from 3.1.1', qos: 1, retain: false }]);
    await Promise.all([v4.client.endAsync(), v5.client.endAsync()]);
  });

  test('a bridged TCP client and a direct WebSocket client exchange messages both ways', limit, async () => {
    const { client: tcpClient } = await connectBridged({ clientId: 'bridge-tcp-side' });
    const wsClient = await connectClient(emulator.url, { clientId: 'bridge-ws-side' });
    const toTcp = inbox(tcpClient);
    const toWs = inbox(wsClient);
    await tcpClient.subscribeAsync('bridge/to-tcp', { qos: 1 });
    await wsClient.subscribeAsync('bridge/to-ws', { qos: 1 });
    await wsClient.publishAsync('bridge/to-tcp', 'hello TCP', { qos: 1 });
    await tcpClient.publishAsync('bridge/to-ws', 'hello WebSocket', { qos: 1 });
    await eventually('both deliveries', () => toTcp.length === 1 && toWs.length === 1);
    assert.deepEqual(toTcp, [{ topic: 'bridge/to-tcp', payload: 'hello TCP', qos: 1, retain: false }]);
    assert.deepEqual(toWs, [{ topic: 'bridge/to-ws', payload: 'hello WebSocket', qos: 1, retain: false }]);
    await Promise.all([tcpClient.endAsync(), wsClient.endAsync()]);
  });

  test(
    'packets completed by one TCP write share one WebSocket message; a packet split across writes is sent whole',
    limit,
    async () => {
      const raw = await openRaw();
      const connect = generate(connectPacket('bridge-raw'));
      // CONNECT in two writes with a pause between: forwarded as it came, the first frame would be half a packet.
      raw.socket.write(connect.subarray(0, 5));
      await new Promise((resolve) => setTimeout(resolve, 50));
      raw.socket.write(connect.subarray(5));
      await eventually('CONNACK', () => raw.packets.some((p) => p.cmd === 'connack'));
      const before = emulator.meter().gateway.messagesIn;
      raw.socket.write(
        Buffer.concat([
          generate({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: 'bridge/raw', qos: 1 }] }),
          generate({
            cmd: 'publish',
            topic: 'bridge/raw',
            payload: Buffer.from('self'),
            qos: 1,
            messageId: 8,
            dup: false,
            retain: false,
          }),
          generate({ cmd: 'pingreq' }),
        ]),
      );
      await eventually('SUBACK, PUBACK and PINGRESP', () =>
        ['suback', 'puback', 'pingresp'].every((cmd) => raw.packets.some((p) => p.cmd === cmd)),
      );
      assert.equal(
        emulator.meter().gateway.messagesIn - before,
        1,
        'one WebSocket message for three packets',
      );
      raw.socket.end();
      await raw.ended;
    },
  );

  test('closing the TCP connection closes its WebSocket', limit, async () => {
    await eventually('earlier connections gone', () => openWebSockets() === 0);
    const raw = await openRaw();
    raw.socket.write(generate(connectPacket('bridge-tcp-close')));
    await eventually('CONNACK', () => raw.packets.some((p) => p.cmd === 'connack'));
    assert.equal(openWebSockets(), 1);
    assert.equal(bridge.connections, 1);
    // No DISCONNECT: only the TCP close can make the bridge close the WebSocket.
    raw.socket.destroy();
    await eventually('the WebSocket closed', () => openWebSockets() === 0);
    await eventually('the bridge let go of it', () => bridge.connections === 0);
  });

  test('the broker closing the WebSocket (client id takeover) ends the TCP connection', limit, async () => {
    const { client: first } = await connectBridged({ clientId: 'bridge-takeover' });
    const firstClosed = closed(first);
    const second = await connectClient(emulator.url, { clientId: 'bridge-takeover' });
    await firstClosed;
    assert.equal(first.connected, false);
    assert.equal(second.connected, true);
    await eventually('only the new session open', () => openWebSockets() === 1);
    await second.endAsync();
  });

  test('an oversized packet closes only that TCP connection', limit, async () => {
    const { client: bystander } = await connectBridged({ clientId: 'bridge-bystander' });
    const { client: offender } = await connectBridged({ clientId: 'bridge-offender', protocolVersion: 4 });
    const received = inbox(bystander);
    await bystander.subscribeAsync('bridge/+', { qos: 1 });
    const offenderClosed = closed(offender);
    offender.publish('bridge/huge', Buffer.alloc(100_000, 1), { qos: 0 });
    await offenderClosed;
    const line = bridgeLogs.find((l) => l.includes('PUBLISH packet too large'));
    assert.ok(line, `a log line naming the refused packet, in:\n${bridgeLogs.join('\n')}`);
    assert.match(line, /100,0\d\d bytes/);
    await eventually('the offender’s WebSocket closed', () => openWebSockets() === 1);
    // The other bridged connection carries on.
    await bystander.publishAsync('bridge/after', 'still here', { qos: 1 });
    await eventually('the bystander’s own message', () => received.some((m) => m.topic === 'bridge/after'));
    await emulator.settle();
    assert.deepEqual(
      received.map((m) => m.topic),
      ['bridge/after'],
    );
    await bystander.endAsync();
  });

  test('a packet that will be too large is refused before all of it arrives', limit, async () => {
    const raw = await openRaw();
    raw.socket.write(generate(connectPacket('bridge-declared-huge')));
    await eventually('CONNACK', () => raw.packets.some((p) => p.cmd === 'connack'));
    // A PUBLISH declaring 10,000,000 bytes; only its first 120,000 are ever sent.
    const header = Buffer.from([0x30, 0x80, 0xad, 0xe2, 0x04]);
    raw.socket.write(Buffer.concat([header, Buffer.from([0, 1, 0x61]), Buffer.alloc(120_000)]));
    await raw.ended;
    assert.ok(
      bridgeLogs.some((l) => l.includes('PUBLISH packet too large') && l.includes('10,000,005 bytes')),
      bridgeLogs.join('\n'),
    );
  });

  test('a malformed Remaining Length closes the connection', limit, async () => {
    const raw = await openRaw();
    raw.socket.write(generate(connectPacket('bridge-malformed')));
    await eventually('CONNACK', () => raw.packets.some((p) => p.cmd === 'connack'));
    raw.socket.write(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]));
    await raw.ended;
    assert.ok(
      bridgeLogs.some((l) => l.includes('malformed MQTT')),
      bridgeLogs.join('\n'),
    );
  });
});

describe('bridge: lifecycle', () => {
  test('stop() closes the open connections on both sides', limit, async () => {
    const second = await startBridge({ listenPort: 0, url: emulator.url, log: () => {} });
    await eventually('earlier connections gone', () => openWebSockets() === 0);
    const client = mqtt.connect(`mqtt://127.0.0.1:${second.port}`, { reconnectPeriod: 0 });
    await new Promise((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    });
    assert.equal(openWebSockets(), 1);
    const clientClosed = closed(client);
    await second.stop();
    await clientClosed;
    await eventually('its WebSocket closed', () => openWebSockets() === 0);
    assert.equal(second.connections, 0);
  });

  test('nimbus bridge (bin/nimbus.mjs) prints where it listens and stops on SIGTERM', limit, async () => {
    const cli = spawn(
      process.execPath,
      ['bin/nimbus.mjs', 'bridge', '--listen', '0', '--url', emulator.url],
      {
        cwd: new URL('..', import.meta.url),
      },
    );
    let out = '';
    let errors = '';
    cli.stdout.on('data', (chunk) => {
      out += chunk;
    });
    cli.stderr.on('data', (chunk) => {
      errors += chunk;
    });
    const exited = new Promise<number | null>((resolve) => cli.once('exit', resolve));
    try {
      await eventually('the listening line', () => out.includes('\n'), 15_000);
      const match = /^Bridge listening on mqtt:\/\/127\.0\.0\.1:(\d+) → (\S+)$/m.exec(out);
      assert.ok(match, `stdout: ${out}\nstderr: ${errors}`);
      assert.equal(match[2], emulator.url);
      const client = mqtt.connect(`mqtt://127.0.0.1:${match[1]}`, { reconnectPeriod: 0 });
      await new Promise((resolve, reject) => {
        client.once('connect', resolve);
        client.once('error', reject);
      });
      await client.endAsync();
      cli.kill('SIGTERM');
      assert.equal(await exited, 0, errors);
      assert.match(errors, /connected \(1 open\)/);
    } finally {
      cli.kill();
    }
  });
});

// Debian: apt-get install mosquitto-clients (.ci/run does). stdbuf is coreutils'.
const missing = ['mosquitto_pub', 'mosquitto_sub', 'stdbuf'].filter(
  (command) => spawnSync(command, ['--help']).error !== undefined,
);

test('mosquitto_pub and mosquitto_sub work through the bridge', {
  skip: missing.length > 0 && `not on PATH: ${missing.join(', ')}`,
  ...limit,
}, async () => {
  const port = String(bridge.port);
  // mosquitto_sub block-buffers stdout into a pipe, so its SUBACK line would come only at exit; it has
  // no flag for line buffering in every version, and stdbuf sets it for any stdio program.
  const sub = spawn('stdbuf', [
    '-oL',
    'mosquitto_sub',
    '-h',
    '127.0.0.1',
    '-p',
    port,
    '-t',
    'bridge/mosquitto',
    '-q',
    '1',
    '-C',
    '1',
    '-d',
  ]);
  let out = '';
  sub.stdout.on('data', (chunk) => {
    out += chunk;
  });
  const exited = new Promise<number | null>((resolve) => sub.once('exit', resolve));
  try {
    await eventually('mosquitto_sub subscribed', () => out.includes('SUBACK'));
    // Not spawnSync: the bridge runs in this process and must keep serving while mosquitto_pub runs.
    const pub = spawn('mosquitto_pub', [
      '-h',
      '127.0.0.1',
      '-p',
      port,
      '-t',
      'bridge/mosquitto',
      '-m',
      'from mosquitto',
      '-q',
      '1',
    ]);
    let pubErrors = '';
    pub.stderr.on('data', (chunk) => {
      pubErrors += chunk;
    });
    const status = await new Promise<number | null>((resolve) => pub.once('exit', resolve));
    assert.equal(status, 0, pubErrors);
    assert.equal(await exited, 0);
    assert.match(out, /^from mosquitto$/m);
  } finally {
    sub.kill();
  }
});
