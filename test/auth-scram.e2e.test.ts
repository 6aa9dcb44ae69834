import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { IConnackPacket, MqttClient } from 'mqtt';
import { connect } from '../client/index.js';
import type { Emulator } from '../emulator/index.js';
import { hashMosquittoPassword } from '../shared/auth/mosquitto-hash.js';
import { eventually, inbox, startTestEmulator } from './support/emulator.js';
import { scramClient } from './support/scram-client.js';

// MQTT 5 enhanced authentication end to end: MQTT.js does SCRAM-SHA-512 (AUTH packets through its
// `handleAuth` hook) against a Mosquitto password file, through the emulator's gateway and queue.
let emulator: Emulator & { logs: string[] };
const clients: MqttClient[] = [];
before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nimbus-scram-'));
  const passwordFile = join(dir, 'passwd');
  writeFileSync(passwordFile, `alice:${await hashMosquittoPassword('alice-pass', 1000)}\n`);
  // A method of the user's own, plugged in as a module: one step, the token names the user.
  const enhancedAuthModule = join(dir, 'token-auth.mjs');
  writeFileSync(
    enhancedAuthModule,
    `export default {
      methods: ['X-TOKEN'],
      async start(method, data) {
        const token = Buffer.from(data ?? []).toString();
        return token === 'open-sesame' ? { step: 'success', user: 'token-user' } : { step: 'failure', reason: 'not-authorized' };
      },
      async continue() { return { step: 'failure', reason: 'not-authorized' }; },
    };\n`,
  );
  emulator = await startTestEmulator({ passwordFile, enhancedAuthModule });
});
after(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true)));
  await emulator?.stop();
});

/** An MQTT.js v5 client doing SCRAM-SHA-512; resolves with its CONNACK or rejects with its error. */
function scramConnect(clientId: string, user: string, password: string) {
  const scram = scramClient(user, password);
  const client = connect(emulator.url, {
    clientId,
    protocolVersion: 5,
    reconnectPeriod: 0,
    connectTimeout: 15_000,
    properties: { authenticationMethod: 'SCRAM-SHA-512', authenticationData: Buffer.from(scram.first) },
  });
  clients.push(client);
  client.handleAuth = (packet, callback) => {
    const serverFirst = Buffer.from(packet.properties?.authenticationData ?? []).toString();
    const final = scram.final(serverFirst);
    callback(undefined, {
      cmd: 'auth',
      reasonCode: 0x18,
      properties: { authenticationMethod: 'SCRAM-SHA-512', authenticationData: Buffer.from(final) },
    });
  };
  const connack = new Promise<IConnackPacket>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
    client.once('close', () => reject(new Error('closed before CONNACK')));
  });
  return { client, scram, connack };
}

test('SCRAM-SHA-512 through the emulator: AUTH 0x18 both ways, CONNACK 0x00 proves the broker, then pub/sub works', async () => {
  const { client, scram, connack } = scramConnect('scram-alice', 'alice', 'alice-pass');
  const accepted = await connack;
  assert.equal(accepted.reasonCode, 0);
  assert.equal(accepted.properties?.authenticationMethod, 'SCRAM-SHA-512'); // [MQTT-4.12.0-5]
  const serverFinal = Buffer.from(accepted.properties?.authenticationData ?? []).toString();
  assert.ok(scram.verify(serverFinal), 'server-final verifies');
  const received = inbox(client);
  await client.subscribeAsync('scram/t', { qos: 1 });
  await client.publishAsync('scram/t', 'hello', { qos: 1 });
  await eventually('own message back', () => received.some((m) => m.payload === 'hello'));
});

test('[MQTT-4.12.0-4] a wrong password: CONNACK 0x86 after the exchange, and the connection closes', async () => {
  const { connack } = scramConnect('scram-mallory', 'alice', 'guess');
  await assert.rejects(connack, (error: Error & { code?: number }) => {
    assert.equal(error.code, 0x86);
    return true;
  });
});

test('[MQTT-4.12.0-1] a method the broker does not support: CONNACK 0x8C', async () => {
  const client = connect(emulator.url, {
    clientId: 'kerberos',
    protocolVersion: 5,
    reconnectPeriod: 0,
    properties: { authenticationMethod: 'GS2-KRB5' },
  });
  clients.push(client);
  const error = await new Promise<Error & { code?: number }>((resolve) => client.once('error', resolve));
  assert.equal(error.code, 0x8c);
});

test('a method of your own from enhancedAuthModule: CONNACK 0x00 naming it; a bad token 0x87; SCRAM still answers', async () => {
  const ok = connect(emulator.url, {
    clientId: 'token-ok',
    protocolVersion: 5,
    reconnectPeriod: 0,
    properties: { authenticationMethod: 'X-TOKEN', authenticationData: Buffer.from('open-sesame') },
  });
  clients.push(ok);
  const connack = await new Promise<IConnackPacket>((resolve, reject) => {
    ok.once('connect', resolve);
    ok.once('error', reject);
  });
  assert.equal(connack.properties?.authenticationMethod, 'X-TOKEN');
  const bad = connect(emulator.url, {
    clientId: 'token-bad',
    protocolVersion: 5,
    reconnectPeriod: 0,
    properties: { authenticationMethod: 'X-TOKEN', authenticationData: Buffer.from('guess') },
  });
  clients.push(bad);
  const error = await new Promise<Error & { code?: number }>((resolve) => bad.once('error', resolve));
  assert.equal(error.code, 0x87);
  assert.equal((await scramConnect('scram-again', 'alice', 'alice-pass').connack).reasonCode, 0);
});
