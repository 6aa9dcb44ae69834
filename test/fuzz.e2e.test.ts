import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type { MqttClient } from 'mqtt';
import type { Emulator } from '../emulator/index.js';
import { connectionScript, scriptFrameText, VICTIM_PREFIX } from './support/arbitraries.js';
import { connectClient, eventually, inbox, startTestEmulator } from './support/emulator.js';
import { connectPacket, RawClient } from './support/raw-client.js';

// Hostile input against the whole broker: connections that send the fuzz generators' scripts
// (test/support/arbitraries.ts: valid, mutated and random packets, frames that are not base64)
// must be closed or answered, never crash a function, and never disturb anyone else.
// FUZZ_E2E_RUNS sets the number of hostile connections.

let emulator: Emulator & { logs: string[] };
let bystander: MqttClient;
let received: ReturnType<typeof inbox>;
// Under the victims' prefix, which generated attackers never publish to.
const bystanderTopic = `${VICTIM_PREFIX}/bystander`;

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

const runs = Number(process.env.FUZZ_E2E_RUNS ?? 25);

describe('hostile input', () => {
  test('hostile connections are closed or answered, never crash a function nor disturb a bystander', async () => {
    const seen: Record<Outcome, number> = { closed: 0, answered: 0 };
    let run = 0;
    let published = 0;
    await fc.assert(
      fc.asyncProperty(connectionScript({ maxFrames: 3 }), async (script) => {
        run++;
        const raw = await RawClient.open(emulator.url, { protocolVersion: script.version });
        try {
          if (script.connect) {
            raw.send(script.connect);
            await raw.next('connack').catch(() => undefined);
          }
          for (const frame of script.frames) raw.sendText(scriptFrameText(frame, script.version));
          raw.send({ cmd: 'pingreq' });
          const outcome = await outcomeOf(raw);
          assert.notEqual(outcome, 'hung', 'the connection was neither closed nor answered');
          if (outcome !== 'hung') seen[outcome]++;
          assert.deepEqual(failures(), []);
          // Meanwhile the bystander's traffic flows: a QoS 1 message every few connections.
          if (run % 5 === 0) {
            const payload = `during ${++published}`;
            await bystander.publishAsync(bystanderTopic, payload, { qos: 1 });
            await eventually(`delivery of ${payload}`, () => received.some((m) => m.payload === payload));
          }
        } finally {
          raw.close();
        }
      }),
      { numRuns: runs, endOnFailure: true },
    );
    assert.ok(seen.closed > 0, 'some hostile connections were closed');

    // The bystander received exactly its own messages, in order, and is still connected.
    await bystander.publishAsync(bystanderTopic, 'still here', { qos: 1 });
    await eventually('delivery to the bystander', () => received.some((m) => m.payload === 'still here'));
    const expected = [...Array.from({ length: published }, (_, i) => `during ${i + 1}`), 'still here'];
    assert.deepEqual(
      received.map((m) => m.payload),
      expected,
    );
    assert.ok(received.every((m) => m.topic === bystanderTopic && m.qos === 1));
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
