import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type { MqttClient } from 'mqtt';
import mqttPacket, { type Packet } from 'mqtt-packet';
import type { Emulator } from '../emulator/index.js';
import { connectClient, eventually, inbox, startTestEmulator } from './support/emulator.js';
import { connectPacket, RawClient } from './support/raw-client.js';

// Hostile input against the whole broker: a client that sends garbage must
// be closed or answered, never crash the message function, and never disturb
// anyone else.

let emulator: Emulator & { logs: string[] };
let bystander: MqttClient;
let received: ReturnType<typeof inbox>;
const bystanderTopic = 'fuzz/bystander';

before(async () => {
  emulator = await startTestEmulator();
  bystander = await connectClient(emulator.url, { clientId: 'fuzz-bystander' });
  received = inbox(bystander);
  await bystander.subscribeAsync(bystanderTopic, { qos: 1 });
});
after(async () => {
  await bystander?.endAsync();
  await emulator?.stop();
});

/** Log lines that mean a function invocation failed: an unhandled error or a crashed instance (Runtime.ExitError). */
const failures = () => emulator.logs.filter((line) => /failed|Runtime\.ExitError|Error:|gave up/.test(line));

type Outcome = 'closed' | 'answered';

/** Whether the connection is closed or answers a PINGREQ sent after the hostile frame. */
async function outcomeOf(raw: RawClient): Promise<Outcome | 'hung'> {
  try {
    await raw.next('pingresp', 8_000);
    return 'answered';
  } catch {
    // next() gives up when the connection closes, or at its deadline.
    return (await closedWithin(raw, 1_000)) ? 'closed' : 'hung';
  }
}

async function closedWithin(raw: RawClient, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const closed = await Promise.race([raw.closed.then(() => true as const), timeout]);
  clearTimeout(timer);
  return closed;
}

const validPackets = (version: 4 | 5): Packet[] => [
  {
    cmd: 'publish',
    topic: 'fuzz/other',
    payload: Buffer.from('x'),
    qos: 1,
    messageId: 1,
    retain: false,
    dup: false,
  },
  { cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'fuzz/#', qos: 1 }] },
  { cmd: 'unsubscribe', messageId: 3, unsubscriptions: ['fuzz/#'] },
  { cmd: 'puback', messageId: 4 },
  { cmd: 'pingreq' },
  connectPacket('fuzz-inner', { protocolVersion: version }),
];

const hostileFrame = fc.oneof(
  // Arbitrary bytes in a well-formed frame.
  fc.record({
    kind: fc.constant('bytes' as const),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 48, size: 'max' }),
  }),
  // A valid packet followed by junk.
  fc.record({
    kind: fc.constant('prefix' as const),
    packet: fc.nat(5),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 24, size: 'max' }),
  }),
  // Text that is not padded standard base64.
  fc.record({
    kind: fc.constant('text' as const),
    text: fc
      .oneof(
        fc.string({ minLength: 1, maxLength: 40 }),
        fc.string({ minLength: 1, maxLength: 40, unit: 'binary' }),
      )
      .filter((s) => !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)),
  }),
);

describe('hostile input', () => {
  test('garbage frames close or are answered, never crash the broker nor disturb other clients', async () => {
    let run = 0;
    const seen: Record<Outcome, number> = { closed: 0, answered: 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<'none' | 4 | 5>('none', 4, 5),
        hostileFrame,
        async (connectAs, frame) => {
          run++;
          const version = connectAs === 'none' ? 4 : connectAs;
          const raw = await RawClient.open(emulator.url, { protocolVersion: version });
          try {
            if (connectAs !== 'none') {
              raw.send(connectPacket(`fuzz-${run}`, { protocolVersion: version }));
              assert.equal((await raw.next('connack')).returnCode ?? 0, 0);
            }
            if (frame.kind === 'text') raw.sendText(frame.text);
            else {
              const prefix =
                frame.kind === 'prefix'
                  ? mqttPacket.generate(validPackets(version)[frame.packet], { protocolVersion: version })
                  : Buffer.alloc(0);
              raw.sendBytes(Buffer.concat([prefix, frame.bytes]));
            }
            raw.send({ cmd: 'pingreq' });
            const outcome = await outcomeOf(raw);
            assert.notEqual(outcome, 'hung', 'the connection was neither closed nor answered');
            if (outcome !== 'hung') seen[outcome]++;
            if (frame.kind === 'text') {
              // [MQTT-4.8.0-1] a frame outside the wire contract is a malformed packet: close.
              assert.equal(await closedWithin(raw, 8_000), true, 'a frame that is not base64 closes');
              if (connectAs === 5 && !frame.text.startsWith('E')) {
                // A 5.0 client is told why first (§4.13.1). Frames starting with 'E' are
                // known not to be: see the test 'a 5.0 client is told why … starting with E'.
                const disconnect = raw.packets.find((p) => p.cmd === 'disconnect');
                assert.equal(disconnect?.reasonCode, 0x81);
              }
            }
            assert.deepEqual(failures(), []);
          } finally {
            raw.close();
          }
        },
      ),
      { numRuns: 25, endOnFailure: true },
    );
    assert.ok(seen.closed > 0, 'some hostile connections were closed');

    // Everyone else is unaffected: the bystander still gets a QoS 1 message.
    await bystander.publishAsync(bystanderTopic, 'still here', { qos: 1 });
    await eventually('delivery to the bystander', () => received.some((m) => m.payload === 'still here'));
    assert.equal(received.find((m) => m.payload === 'still here')?.qos, 1);
    assert.equal(bystander.connected, true);
    await emulator.settle();
    assert.deepEqual(emulator.failedBatches, []);
    assert.deepEqual(failures(), []);
  });
});

describe('malformed frames from a connected 5.0 client', () => {
  // [MQTT-4.13.1-1] a malformed packet closes the connection; a 5.0 client first gets a
  // DISCONNECT with reason code 0x81 Malformed Packet (§4.13.1), as shared/broker/handlers/violation.ts intends.
  const cases: Array<[string, (raw: RawClient) => void]> = [
    ['text that is not base64', (raw) => raw.sendText('not base64!')],
    ['text that is not base64 starting with E', (raw) => raw.sendText('E!not base64')],
    [
      'a CONNECT header with reserved flags set (0x11)',
      (raw) => raw.sendBytes(Uint8Array.from([0x11, 0x00])),
    ],
  ];
  for (const [what, send] of cases) {
    test(`a 5.0 client is told why before the close: ${what}`, async () => {
      const raw = await RawClient.open(emulator.url, { protocolVersion: 5 });
      try {
        raw.send(connectPacket(`fuzz-told-${what.length}`, { protocolVersion: 5 }));
        assert.equal((await raw.next('connack')).reasonCode, 0);
        send(raw);
        assert.equal(await closedWithin(raw, 8_000), true, 'the connection is closed');
        const disconnect = raw.packets.find((p) => p.cmd === 'disconnect');
        assert.equal(disconnect?.reasonCode, 0x81, 'DISCONNECT 0x81 Malformed Packet before the close');
      } finally {
        raw.close();
      }
    });
  }
});
