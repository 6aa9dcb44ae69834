import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IAuthPacket, IConnackPacket, IDisconnectPacket, Packet } from 'mqtt-packet';
import type { EnhancedAuthenticator } from '../shared/auth/enhanced.js';
import { enhancedMethods } from '../shared/auth/enhanced.js';
import { hashMosquittoPassword } from '../shared/auth/mosquitto-hash.js';
import { ScramAuthenticator, scramSha512 } from '../shared/auth/scram.js';
import { MosquittoPasswordFile } from '../shared/mosquitto-passwords.js';
import { publishPacket, sendPackets, type TestBroker, testContext } from './support/broker-context.js';
import { connectPacket } from './support/raw-client.js';
import { scramClient } from './support/scram-client.js';

// MQTT 5 enhanced authentication (§4.12): the AUTH exchange on the in-memory store.

/** A one-step method: the token in the CONNECT's data names the user. */
const tokenMethod: EnhancedAuthenticator = {
  methods: ['X-TOKEN'],
  start: async (_method, data) => {
    const token = Buffer.from(data ?? []).toString();
    return token.startsWith('good:')
      ? { step: 'success', user: token.slice(5), data: Buffer.from('welcome') }
      : { step: 'failure', reason: 'not-authorized' };
  },
  continue: async () => ({ step: 'failure', reason: 'not-authorized' }),
};

const text = (data: Buffer | Uint8Array | undefined) => Buffer.from(data ?? []).toString('utf8');

async function scramBroker(): Promise<TestBroker> {
  const file = new MosquittoPasswordFile(`alice:${await hashMosquittoPassword('alice-pass', 1000)}\n`);
  return testContext({ enhancedAuthenticator: enhancedMethods([new ScramAuthenticator(file), tokenMethod]) });
}

function connectWith(method: string, data: string, extra = {}) {
  return connectPacket('dev-1', {
    protocolVersion: 5,
    properties: { authenticationMethod: method, authenticationData: Buffer.from(data) },
    ...extra,
  });
}

const auth = (reasonCode: number, method: string, data: string): IAuthPacket => ({
  cmd: 'auth',
  reasonCode,
  properties: { authenticationMethod: method, authenticationData: Buffer.from(data) },
});

/** Packets sent to the connection since `from`. */
const since = (broker: TestBroker, from: number): Packet[] => broker.gateway.packetsTo('c1').slice(from);
const last = (broker: TestBroker): Packet | undefined => broker.gateway.packetsTo('c1').at(-1);

/** Connects 'c1' with SCRAM as alice through the whole exchange; returns the CONNACK. */
async function scramConnect(broker: TestBroker, password = 'alice-pass') {
  const client = scramClient('alice', password);
  await sendPackets(broker, 'c1', [connectWith(scramSha512, client.first)], 5);
  const challenge = last(broker) as IAuthPacket;
  assert.equal(challenge.cmd, 'auth');
  await sendPackets(
    broker,
    'c1',
    [auth(0x18, scramSha512, client.final(text(challenge.properties?.authenticationData)))],
    5,
  );
  return { reply: last(broker), client };
}

test('[MQTT-4.12.0-5] one step: CONNACK 0x00 names the method and carries the method data; the user is the method’s', async () => {
  const broker = await scramBroker();
  await sendPackets(broker, 'c1', [connectWith('X-TOKEN', 'good:tokuser')], 5);
  const connack = last(broker) as IConnackPacket;
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.properties?.authenticationMethod, 'X-TOKEN');
  assert.equal(text(connack.properties?.authenticationData), 'welcome');
  const record = await broker.store.getConnection('c1');
  assert.equal(record?.user, 'tokuser');
  assert.equal(record?.authenticationMethod, 'X-TOKEN');
});

test('[MQTT-4.12.0-2] [MQTT-4.12.0-3] several steps: SCRAM-SHA-512 AUTH 0x18 then CONNACK 0x00 with server-final', async () => {
  const broker = await scramBroker();
  const { reply, client } = await scramConnect(broker);
  const challenge = broker.gateway.packetsTo('c1')[0] as IAuthPacket;
  assert.equal(challenge.reasonCode, 0x18);
  assert.equal(challenge.properties?.authenticationMethod, scramSha512); // [MQTT-4.12.0-5]
  const connack = reply as IConnackPacket;
  assert.equal(connack.cmd, 'connack');
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.properties?.authenticationMethod, scramSha512);
  assert.ok(
    client.verify(text(connack.properties?.authenticationData)),
    'the broker proves it knows the key',
  );
  assert.equal((await broker.store.getConnection('c1'))?.user, 'alice');
  assert.equal(await broker.store.getAuthExchange('c1', broker.clock.now()), undefined);
  assert.deepEqual(broker.gateway.closed, []);
});

test('[MQTT-4.12.0-1] a method the broker does not support: CONNACK 0x8C and close, nothing stored', async () => {
  for (const broker of [await scramBroker(), testContext()]) {
    const outcome = await sendPackets(broker, 'c1', [connectWith('KERBEROS', 'x')], 5);
    assert.equal((last(broker) as IConnackPacket).reasonCode, 0x8c);
    assert.ok(outcome.closed);
    assert.equal(await broker.store.getConnection('c1'), undefined);
    assert.equal(await broker.store.getSession('dev-1'), undefined);
  }
});

test('[MQTT-4.12.0-4] a failed exchange: CONNACK 0x86 (wrong password) or 0x87 (refused), close, no session', async () => {
  const broker = await scramBroker();
  const { reply } = await scramConnect(broker, 'wrong');
  assert.equal((reply as IConnackPacket).reasonCode, 0x86);
  assert.deepEqual(broker.gateway.closed, ['c1']);
  assert.equal(await broker.store.getConnection('c1'), undefined);
  assert.equal(await broker.store.getSession('dev-1'), undefined);
  assert.equal(await broker.store.getAuthExchange('c1', broker.clock.now()), undefined);

  const token = await scramBroker();
  await sendPackets(token, 'c1', [connectWith('X-TOKEN', 'bad')], 5);
  assert.equal((last(token) as IConnackPacket).reasonCode, 0x87);
});

test('[MQTT-3.1.2-30] anything but AUTH before CONNACK: CONNACK 0x82 and close', async () => {
  const broker = await scramBroker();
  await sendPackets(broker, 'c1', [connectWith(scramSha512, scramClient('alice', 'p').first)], 5);
  const before = broker.gateway.packetsTo('c1').length;
  const outcome = await sendPackets(broker, 'c1', [publishPacket('t', 'x')], 5);
  assert.deepEqual(
    since(broker, before).map((p) => [p.cmd, (p as IConnackPacket).reasonCode]),
    [['connack', 0x82]],
  );
  assert.ok(outcome.closed);
  assert.equal(await broker.store.getAuthExchange('c1', broker.clock.now()), undefined);
  assert.equal(await broker.store.getConnection('c1'), undefined);
});

test('[MQTT-4.12.0-5] an AUTH naming another method mid-exchange: CONNACK 0x82 and close', async () => {
  const broker = await scramBroker();
  await sendPackets(broker, 'c1', [connectWith(scramSha512, scramClient('alice', 'p').first)], 5);
  const outcome = await sendPackets(broker, 'c1', [auth(0x18, 'X-TOKEN', 'good:alice')], 5);
  assert.equal((last(broker) as IConnackPacket).reasonCode, 0x82);
  assert.ok(outcome.closed);
  assert.equal(await broker.store.getConnection('c1'), undefined);
});

test('an exchange the client abandons expires: a late AUTH is a packet before CONNECT', async () => {
  const broker = await scramBroker();
  await sendPackets(broker, 'c1', [connectWith(scramSha512, scramClient('alice', 'p').first)], 5);
  broker.clock.advance(61_000);
  const outcome = await sendPackets(broker, 'c1', [auth(0x18, scramSha512, 'c=biws,r=x,p=AAAA')], 5);
  assert.ok(outcome.closed);
  assert.equal(await broker.store.getConnection('c1'), undefined);
});

test('[MQTT-4.12.1-1] re-authentication: AUTH 0x19, AUTH 0x18, AUTH 0x00 with server-final; the connection stays', async () => {
  const broker = await scramBroker();
  await scramConnect(broker);
  const again = scramClient('alice', 'alice-pass');
  const before = broker.gateway.packetsTo('c1').length;
  await sendPackets(broker, 'c1', [auth(0x19, scramSha512, again.first)], 5);
  const challenge = last(broker) as IAuthPacket;
  assert.equal(challenge.reasonCode, 0x18);
  await sendPackets(
    broker,
    'c1',
    [auth(0x18, scramSha512, again.final(text(challenge.properties?.authenticationData)))],
    5,
  );
  const done = last(broker) as IAuthPacket;
  assert.deepEqual(
    since(broker, before).map((p) => [p.cmd, (p as IAuthPacket).reasonCode]),
    [
      ['auth', 0x18],
      ['auth', 0x00],
    ],
  );
  assert.equal(done.properties?.authenticationMethod, scramSha512);
  assert.ok(again.verify(text(done.properties?.authenticationData)));
  assert.deepEqual(broker.gateway.closed, []);
  // Other packets may flow while a re-authentication goes on.
  await sendPackets(broker, 'c1', [{ cmd: 'pingreq' }], 5);
  assert.equal(last(broker)?.cmd, 'pingresp');
});

test('[MQTT-4.12.1-2] a failed re-authentication: DISCONNECT with the reason code, and close', async () => {
  const broker = await scramBroker();
  await scramConnect(broker);
  const again = scramClient('alice', 'not-her-password');
  await sendPackets(broker, 'c1', [auth(0x19, scramSha512, again.first)], 5);
  const challenge = last(broker) as IAuthPacket;
  const outcome = await sendPackets(
    broker,
    'c1',
    [auth(0x18, scramSha512, again.final(text(challenge.properties?.authenticationData)))],
    5,
  );
  const disconnect = last(broker) as IDisconnectPacket;
  assert.equal(disconnect.cmd, 'disconnect');
  // DISCONNECT has no 0x86: Not Authorized.
  assert.equal(disconnect.reasonCode, 0x87);
  assert.ok(outcome.closed);
});

test('[MQTT-4.12.0-7] AUTH from a client whose CONNECT named no method: DISCONNECT 0x82; [MQTT-4.12.1-1] another method: 0x82', async () => {
  const plain = await scramBroker();
  await sendPackets(plain, 'c1', [connectPacket('p', { protocolVersion: 5 })], 5);
  const outcome = await sendPackets(plain, 'c1', [auth(0x19, scramSha512, 'n,,n=alice,r=x')], 5);
  assert.equal((last(plain) as IDisconnectPacket).reasonCode, 0x82);
  assert.ok(outcome.closed);

  const broker = await scramBroker();
  await scramConnect(broker);
  await sendPackets(broker, 'c1', [auth(0x19, 'X-TOKEN', 'good:alice')], 5);
  assert.equal((last(broker) as IDisconnectPacket).reasonCode, 0x82);
});

test('a re-authentication as another user is refused: DISCONNECT 0x87', async () => {
  const broker = await scramBroker();
  await sendPackets(broker, 'c1', [connectWith('X-TOKEN', 'good:alice')], 5);
  await sendPackets(broker, 'c1', [auth(0x19, 'X-TOKEN', 'good:mallory')], 5);
  assert.equal((last(broker) as IDisconnectPacket).reasonCode, 0x87);
});
