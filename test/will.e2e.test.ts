import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { MqttClient } from 'mqtt';
import type { IConnectPacket } from 'mqtt-packet';
import type { Emulator } from '../emulator/index.js';
import { disconnectGraceMs } from '../shared/broker/keepalive.js';
import { connectClient, emulatorDatabase, eventually, inbox, startTestEmulator } from './support/emulator.js';
import { connectPacket, RawClient } from './support/raw-client.js';

// Will messages, MQTT 3.1.1 §3.1.2.5 and §3.1.2.10: published when the
// network connection ends without DISCONNECT, never after one. The sweeper
// runs every 500 ms here, so keep-alive expiry and lost $disconnect events
// are handled within the tests' patience.
let emulator: Emulator & { logs: string[] };
let watcher: MqttClient;
let wills: ReturnType<typeof inbox>;
let db: DynamoDBDocumentClient;
before(async () => {
  emulator = await startTestEmulator({ jitterMs: 20, sweepIntervalMs: 500 });
  watcher = await connectClient(emulator.url, { clientId: 'will-watcher' });
  wills = inbox(watcher);
  await watcher.subscribeAsync('will/#', { qos: 1 });
  db = emulatorDatabase(emulator);
});
after(async () => {
  db?.destroy();
  await watcher?.endAsync();
  await emulator?.stop();
});

type Will = NonNullable<IConnectPacket['will']>;
const will = (topic: string, payload: string, extra: Partial<Will> = {}): Will => ({
  topic,
  payload: Buffer.from(payload),
  qos: 1,
  retain: false,
  ...extra,
});

async function rawWithWill(clientId: string, w: Will, extra: Partial<IConnectPacket> = {}) {
  const raw = await RawClient.open(emulator.url);
  raw.send(connectPacket(clientId, { will: w, ...extra }));
  assert.equal((await raw.next('connack')).returnCode, 0);
  return raw;
}

const willsOn = (topic: string) => wills.filter((m) => m.topic === topic);

describe('the will is published', () => {
  test('when the network connection closes without DISCONNECT, once [MQTT-3.1.2-8] [MQTT-3.1.2-10]', async () => {
    const raw = await rawWithWill('will-term', will('will/term', 'gone'));
    raw.socket.terminate();
    await eventually('the will', () => willsOn('will/term').length >= 1);
    await emulator.settle();
    assert.deepEqual(willsOn('will/term'), [{ topic: 'will/term', payload: 'gone', qos: 1, retain: false }]);
  });

  test('when the client commits a protocol violation and the server closes the connection [MQTT-3.1.2-8] [MQTT-4.8.0-1]', async () => {
    const raw = await rawWithWill('will-garbage', will('will/garbage', 'violated'));
    raw.sendBytes(Uint8Array.from([0x00, 0x00])); // packet type 0 is reserved
    await raw.closed;
    await eventually('the will', () => willsOn('will/garbage').length >= 1);
    await emulator.settle();
    assert.deepEqual(
      willsOn('will/garbage').map((m) => m.payload),
      ['violated'],
    );
  });

  test('when a new connection takes the client id over: the old connection is closed and its will published [MQTT-3.1.4-2] [MQTT-3.1.2-8]', async () => {
    const old = await rawWithWill('will-takeover', will('will/takeover', 'taken-over'));
    const replacement = await RawClient.open(emulator.url);
    replacement.send(connectPacket('will-takeover'));
    assert.equal((await replacement.next('connack')).returnCode, 0);
    await old.closed;
    await eventually('the will of the old connection', () => willsOn('will/takeover').length >= 1);
    // The new connection is not disturbed by the old one's end.
    replacement.send({ cmd: 'pingreq' });
    await replacement.next('pingresp');
    await emulator.settle();
    assert.deepEqual(
      willsOn('will/takeover').map((m) => m.payload),
      ['taken-over'],
    );
    assert.notEqual(replacement.socket.readyState, replacement.socket.CLOSED);
    replacement.close();
  });

  test('with the retain flag it asks for: a later subscriber gets it as a retained message [MQTT-3.1.2-17]', async () => {
    const raw = await rawWithWill('will-retain', will('will/retained/x', 'last-words', { retain: true }));
    raw.socket.terminate();
    await eventually('the will', () => willsOn('will/retained/x').length >= 1);
    await emulator.settle();
    const late = await connectClient(emulator.url, { clientId: 'will-retain-late' });
    const received = inbox(late);
    await late.subscribeAsync('will/retained/x', { qos: 1 });
    await eventually('the retained will', () => received.length >= 1);
    await emulator.settle();
    assert.deepEqual(received, [{ topic: 'will/retained/x', payload: 'last-words', qos: 1, retain: true }]);
    await late.endAsync();
  });

  test('at the QoS it asks for, capped by each subscription [MQTT-3.1.2-9] [MQTT-3.8.4-6]', async () => {
    const at0 = await connectClient(emulator.url, { clientId: 'will-qos-0' });
    const at1 = await connectClient(emulator.url, { clientId: 'will-qos-1' });
    const at2 = await connectClient(emulator.url, { clientId: 'will-qos-2' });
    const received = [inbox(at0), inbox(at1), inbox(at2)];
    await at0.subscribeAsync('will/qos/#', { qos: 0 });
    await at1.subscribeAsync('will/qos/#', { qos: 1 });
    await at2.subscribeAsync('will/qos/#', { qos: 2 });
    const raws = await Promise.all([
      rawWithWill('will-q0', will('will/qos/0', 'w0', { qos: 0 })),
      rawWithWill('will-q1', will('will/qos/1', 'w1', { qos: 1 })),
      rawWithWill('will-q2', will('will/qos/2', 'w2', { qos: 2 })),
    ]);
    for (const raw of raws) raw.socket.terminate();
    // Three connections end at once: three message function instances, some cold on a busy machine.
    await eventually(
      'three wills at each subscriber',
      () => received.every((list) => list.length >= 3),
      30_000,
    );
    await emulator.settle();
    const qosByPayload = (list: ReturnType<typeof inbox>) =>
      Object.fromEntries(list.map((m) => [m.payload, m.qos]));
    assert.deepEqual(qosByPayload(received[0]), { w0: 0, w1: 0, w2: 0 });
    assert.deepEqual(qosByPayload(received[1]), { w0: 0, w1: 1, w2: 1 });
    assert.deepEqual(qosByPayload(received[2]), { w0: 0, w1: 1, w2: 2 });
    assert.equal(received[2].length, 3, 'each will once, the QoS 2 one exactly once');
    await Promise.all([at0.endAsync(), at1.endAsync(), at2.endAsync()]);
  });

  test('when a client with keep-alive 1 s stays silent: the sweep closes it and its will is published [MQTT-3.1.2-24] [MQTT-3.1.2-8]', async () => {
    const raw = await rawWithWill('will-silent', will('will/silent', 'timed-out'), { keepalive: 1 });
    await within(raw.closed, 15_000, 'the sweep to close the silent connection');
    await eventually('the will', () => willsOn('will/silent').length >= 1);
    await emulator.settle();
    const count = willsOn('will/silent').length;
    assert.equal(count, 1, `the will was published ${count} times`);
  });

  test('when the $disconnect of a connection was lost: the sweep publishes its will and removes its row [MQTT-3.1.2-8]', async () => {
    // Past its deadline (2 keep-alives) and the grace in which a gone connection's $disconnect may still come.
    const longAgo = Date.now() - 120_000 - disconnectGraceMs - 60_000;
    await ghostConnection('will-ghost', 'ghost-conn-1', 60, longAgo, will('will/ghost', 'ghost'));
    await eventually('the ghost will', () => willsOn('will/ghost').length >= 1, 15_000);
    await until('the row to be removed', async () => (await connectionRow('ghost-conn-1')) === undefined);
    await emulator.settle();
    assert.deepEqual(
      willsOn('will/ghost').map((m) => m.payload),
      ['ghost'],
    );
    assert.equal(await connectionRow('ghost-conn-1'), undefined, 'the connection row is removed');
    const session = await db.send(
      new GetCommand({
        TableName: emulator.tables.Sessions,
        Key: { clientId: 'will-ghost' },
        ConsistentRead: true,
      }),
    );
    assert.equal(session.Item, undefined, 'the clean session it served is ended');
  });

  test('when the $disconnect of a keep-alive 0 connection was lost: the sweep still finds it gone and publishes its will [MQTT-3.1.2-8]', async () => {
    // Keep-alive 0 switches the keep-alive off (§3.1.2.10), not the will: the network connection is gone.
    const longAgo = Date.now() - 10 * 60_000;
    await ghostConnection('will-ghost-0', 'ghost-conn-0', 0, longAgo, will('will/ghost0', 'ghost-0'));
    // Twelve sweeps at least.
    await eventually('the will of the keep-alive 0 ghost', () => willsOn('will/ghost0').length >= 1, 6_000);
    await until('the row to be removed', async () => (await connectionRow('ghost-conn-0')) === undefined);
    await emulator.settle();
  });
});

describe('the will is not published', () => {
  test('after DISCONNECT, and the server closes the connection [MQTT-3.14.4-3] [MQTT-3.1.2-10]', async () => {
    const raw = await rawWithWill('will-polite', will('will/polite', 'should-not-appear'));
    raw.send({ cmd: 'disconnect' });
    await raw.closed;
    // A message after the DISCONNECT, from another client, says the watcher is still listening.
    await watcher.publishAsync('will/polite-marker', 'marker', { qos: 1 });
    await eventually('the marker', () => willsOn('will/polite-marker').length >= 1);
    await emulator.settle();
    assert.deepEqual(willsOn('will/polite'), []);
  });

  test('after DISCONNECT immediately followed by the client closing the socket (raw, and as MQTT.js end() does) [MQTT-3.14.4-3] [MQTT-3.1.2-10]', async () => {
    for (let round = 1; round <= 3; round++) {
      // The DISCONNECT frame goes out before the WebSocket close frame, so the gateway has it first.
      const raw = await rawWithWill(
        `will-close-${round}`,
        will(`will/end/raw-${round}`, 'should-not-appear'),
      );
      raw.send({ cmd: 'disconnect' });
      raw.close();
      await raw.closed;
      const client = await connectClient(emulator.url, {
        clientId: `will-end-${round}`,
        will: {
          topic: `will/end/mqttjs-${round}`,
          payload: Buffer.from('should-not-appear'),
          qos: 1,
          retain: false,
        },
      });
      await client.endAsync(); // DISCONNECT, then the WebSocket closes without waiting for the server
    }
    await watcher.publishAsync('will/end-marker', 'marker', { qos: 1 });
    await eventually('the marker', () => willsOn('will/end-marker').length >= 1);
    await emulator.settle();
    assert.deepEqual(
      wills.filter((m) => m.topic.startsWith('will/end/')).map((m) => m.topic),
      [],
      'a will was published although DISCONNECT was sent',
    );
  });

  test('a second time when the fan-out finds the connection gone while its $disconnect runs [MQTT-3.1.2-10]', async () => {
    // A subscriber under a stream of messages drops: the fan-out's posts answer 410 while
    // $disconnect runs, and both end the connection. Its will is still one message.
    const flooder = await connectClient(emulator.url, { clientId: 'will-flooder' });
    const rounds = 2;
    for (let round = 1; round <= rounds; round++) {
      const raw = await rawWithWill(`will-race-${round}`, will(`will/race/${round}`, `race-${round}`));
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood/race', qos: 0 }] });
      await raw.next('suback');
      let sent = 0;
      const flood = setInterval(() => {
        flooder.publish('flood/race', String(sent++), { qos: 0 });
      }, 10);
      try {
        await eventually('the flood to reach the subscriber', () =>
          raw.packets.some((p) => p.cmd === 'publish'),
        );
        raw.socket.terminate();
        await eventually('the will', () => willsOn(`will/race/${round}`).length >= 1);
        const after = sent;
        await eventually('more of the flood after the will', () => sent >= after + 20);
      } finally {
        clearInterval(flood);
      }
    }
    await emulator.settle();
    const counts = Array.from({ length: rounds }, (_, i) => willsOn(`will/race/${i + 1}`).length);
    assert.deepEqual(counts, [1, 1], `wills published per round: ${counts.join(', ')}`);
    await flooder.endAsync();
  });

  test('while a keep-alive 1 s client keeps sending PINGREQ: the sweep leaves it open [MQTT-3.1.2-23] [MQTT-3.1.2-24]', async () => {
    const raw = await rawWithWill('will-pinging', will('will/pinging', 'should-not-appear'), {
      keepalive: 1,
    });
    // Twelve PINGREQs 300 ms apart: well past two keep-alive periods and several sweeps.
    for (let i = 0; i < 12; i++) {
      await new Promise((resolve) => setTimeout(resolve, 300));
      raw.send({ cmd: 'pingreq' });
      await raw.next('pingresp');
    }
    assert.notEqual(raw.socket.readyState, raw.socket.CLOSED);
    raw.send({ cmd: 'disconnect' });
    await raw.closed;
    await emulator.settle();
    assert.deepEqual(willsOn('will/pinging'), []);
  });
});

/** Resolves with `promise`, or fails naming `what` after `timeoutMs`. */
async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Like `eventually`, for a check that reads DynamoDB. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function connectionRow(connectionId: string) {
  const { Item } = await db.send(
    new GetCommand({ TableName: emulator.tables.Connections, Key: { connectionId }, ConsistentRead: true }),
  );
  return Item;
}

/** A Connections row (and the session it serves) for a connection the gateway does not have: its $disconnect was lost. */
async function ghostConnection(
  clientId: string,
  connectionId: string,
  keepAliveSeconds: number,
  lastSeen: number,
  w: Will,
) {
  assert.ok(!emulator.gateway.connectionIds.includes(connectionId));
  await db.send(
    new PutCommand({
      TableName: emulator.tables.Sessions,
      Item: {
        clientId,
        sessionId: `s-${connectionId}`,
        connectionId,
        protocolVersion: 4,
        cleanSession: true,
      },
    }),
  );
  await db.send(
    new PutCommand({
      TableName: emulator.tables.Connections,
      Item: {
        connectionId,
        clientId,
        protocolVersion: 4,
        sessionId: `s-${connectionId}`,
        cleanSession: true,
        keepAliveSeconds,
        connectedAt: lastSeen,
        lastSeen,
        will: { topic: w.topic, payload: Buffer.from(w.payload), qos: w.qos ?? 0, retain: w.retain ?? false },
        expiresAt: Math.floor(Date.now() / 1000) + 3600,
      },
    }),
  );
}
