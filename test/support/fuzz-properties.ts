/**
 * The fuzz properties, shared by the test sample (test/fuzz.test.ts) and the long run
 * (`npm run fuzz`, test/fuzz/run.ts): the wire codec at the codec level, `handleFrame` and the
 * fan-out on the in-memory store at the handler level.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Packet } from 'mqtt-packet';
import { fanOut } from '../../shared/broker/fanout.js';
import { handleFrame } from '../../shared/broker/inbound.js';
import { connectionGone } from '../../shared/broker/lifecycle.js';
import type { StoredMessage } from '../../shared/ports.js';
import { decodeFrame, encodeFrame, type ProtocolVersion } from '../../shared/protocol/frames.js';
import * as wire from '../../shared/protocol/wire.js';
import {
  anyPacket,
  bytesOf,
  clientPacket,
  connectionScript,
  frameText,
  mutation,
  packetId,
  scriptFrameText,
  topicFilter,
  topicName,
  VICTIM_PREFIX,
} from './arbitraries.js';
import {
  publishPacket,
  sendPackets,
  subscribePacket,
  type TestBroker,
  testContext,
} from './broker-context.js';
import { connectPacket } from './raw-client.js';

/** One property and how many cases the long run gives it. */
export interface FuzzProperty {
  readonly name: string;
  /** Cases in `npm run fuzz` (the test sample runs fewer). */
  readonly runs: number;
  /** Runs the property; `seed` and `path` replay a reported failure. */
  check(params: { numRuns: number; seed?: number; path?: string }): Promise<fc.RunDetails<unknown>>;
}

const BIG = 1 << 30;
const versions = fc.constantFrom<ProtocolVersion>(4, 5);
/** Values of the arbitrary built for 3.1.1 or for 5.0 (built once each, unlike `chain`). */
const perVersion = <T>(build: (version: ProtocolVersion) => fc.Arbitrary<T>): fc.Arbitrary<T> =>
  fc.oneof(build(4), build(5));

function property<Ts>(
  name: string,
  runs: number,
  arbitrary: fc.Arbitrary<Ts>,
  predicate: (value: Ts) => void | Promise<void>,
): FuzzProperty {
  return {
    name,
    runs,
    check: async ({ numRuns, seed, path }) => {
      const prop = fc.asyncProperty(arbitrary, async (value) => {
        await predicate(value);
      });
      return (await fc.check(prop, {
        numRuns,
        ...(seed !== undefined ? { seed } : {}),
        ...(path ? { path } : {}),
      })) as fc.RunDetails<unknown>;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Codec level

/** Text of valid packets of one version, or of valid packets then a hostile one. */
const packetsFrame = perVersion((version) =>
  fc.record({
    version: fc.constant(version),
    valid: fc.array(anyPacket(version), { maxLength: 3 }),
    hostile: fc.option(mutation(version), { nil: undefined }),
  }),
);

/** Any text a peer may send: frame texts, valid frames, frames ending in a hostile packet. */
const anyText = fc.oneof(
  frameText.map((f) => f.text),
  packetsFrame
    .filter(({ valid, hostile }) => valid.length > 0 || hostile !== undefined)
    .map(({ version, valid, hostile }) =>
      Buffer.concat([...valid.map((p) => bytesOf(p, version)), ...(hostile ? [hostile.bytes] : [])]).toString(
        'base64',
      ),
    ),
);

/** The client's verdict on an inbound frame (client/stream.ts): base64 text of whole packets. */
function clientAccepts(text: string): { ok: true; packets: Uint8Array[] } | { ok: false; reason: string } {
  try {
    return { ok: true, packets: wire.splitPackets(wire.decodeFrame(text)) };
  } catch (error) {
    assert.ok(error instanceof wire.NimbusFramingError, `the client's decoder threw ${String(error)}`);
    return { ok: false, reason: error.message };
  }
}

const codecProperties = (): FuzzProperty[] => [
  property(
    'codec: decodeFrame never throws; it yields whole packets or a reason',
    15_000,
    fc.tuple(
      anyText,
      fc.constantFrom<ProtocolVersion | undefined>(4, 5, undefined),
      fc.oneof(fc.nat(200), fc.constant(wire.MAX_FRAME_BYTES)),
    ),
    ([text, version, max]) => {
      const result = decodeFrame(text, version, max);
      for (const packet of result.packets) assert.equal(typeof packet.cmd, 'string');
      if (result.ok)
        assert.ok(result.packets.length > 0, 'a clean decode of a frame holds at least one packet');
      else assert.ok(result.reason.length > 0, 'a refusal says why');
      if (wire.frameTextFault(text) !== undefined) {
        assert.equal(result.ok, false, 'text outside the wire contract is refused');
        assert.equal(result.packets.length, 0);
      }
    },
  ),
  property(
    'codec: decode∘encode round-trips valid packets of every type, 3.1.1 and 5.0',
    15_000,
    perVersion((version) =>
      fc.tuple(fc.constant(version), fc.array(anyPacket(version), { minLength: 1, maxLength: 4 })),
    ),
    ([version, packets]) => {
      const text = encodeFrame(packets, version);
      // A frame opening with CONNECT is read before the connection's version is known.
      const result = decodeFrame(text, packets[0].cmd === 'connect' ? undefined : version, BIG);
      assert.ok(result.ok, result.ok ? '' : result.reason);
      assert.equal(result.packets.length, packets.length);
      result.packets.forEach((packet, i) => {
        assert.deepEqual(
          bytesOf(packet, version),
          bytesOf(packets[i], version),
          `packet ${i} (${packet.cmd})`,
        );
      });
    },
  ),
  property(
    '[MQTT-4.8.0-1] codec: packets before a hostile one decode as sent; a cut packet is refused',
    15_000,
    packetsFrame,
    ({ version, valid, hostile }) => {
      const bytes = Buffer.concat([
        ...valid.map((p) => bytesOf(p, version)),
        ...(hostile ? [hostile.bytes] : []),
      ]);
      if (bytes.length === 0) return;
      const opensWithConnect = valid[0]?.cmd === 'connect';
      const result = decodeFrame(bytes.toString('base64'), opensWithConnect ? undefined : version, BIG);
      if (!result.ok) assert.ok(result.reason.length > 0);
      const kept = Math.min(valid.length, result.packets.length);
      if (!hostile) assert.equal(result.ok, true);
      else
        assert.ok(
          result.packets.length >= valid.length || !result.ok,
          'the valid packets are all decoded or the frame refused',
        );
      for (let i = 0; i < kept; i++)
        assert.deepEqual(bytesOf(result.packets[i], version), bytesOf(valid[i], version));
      if (
        hostile &&
        ['truncate', 'longer length', 'five-byte length', 'non-minimal length'].includes(hostile.kind)
      ) {
        assert.equal(result.ok, false, `a packet with a ${hostile.kind} is refused`);
        assert.equal(result.packets.length, valid.length);
      }
    },
  ),
  property('codec: the broker and the client apply the same frame rules', 15_000, anyText, (text) => {
    const client = clientAccepts(text);
    const broker = decodeFrame(text, 4, BIG);
    // The one base64 rule, both sides.
    assert.equal(
      client.ok === false && /base64|empty frame/.test(client.reason),
      wire.frameTextFault(text) !== undefined,
    );
    if (broker.ok) {
      assert.ok(client.ok, `the broker accepts what the client refuses: ${client.ok ? '' : client.reason}`);
      assert.equal(client.packets.length, broker.packets.length, 'both find the same packet boundaries');
    }
    if (!client.ok)
      assert.equal(broker.ok, false, `the client refuses (${client.reason}) what the broker accepts`);
  }),
  property(
    'codec: the wire framer finds the same packets however the bytes are chunked',
    15_000,
    fc.tuple(
      perVersion((version) =>
        fc
          .array(anyPacket(version), { minLength: 1, maxLength: 5 })
          .map((ps) => ps.map((p) => bytesOf(p, version))),
      ),
      fc.array(fc.nat(), { maxLength: 8 }),
      fc.integer({ min: 2, max: 400 }),
    ),
    ([packets, cuts, limit]) => {
      const whole = Buffer.concat(packets);
      const points = [...new Set(cuts.map((c) => c % whole.length))].sort((a, b) => a - b);
      const framer = new wire.PacketFramer();
      const found: Uint8Array[] = [];
      let from = 0;
      for (const at of [...points, whole.length]) {
        found.push(...framer.push(whole.subarray(from, at)));
        from = at;
      }
      assert.equal(framer.pendingBytes, 0);
      assert.deepEqual(
        found.map((p) => Buffer.from(p)),
        packets,
      );
      assert.deepEqual(
        wire.splitPackets(whole).map((p) => Buffer.from(p)),
        packets,
      );
      for (const packet of packets) assert.equal(wire.packetSize(packet), packet.length);
      // planFrames keeps order, puts aside only what can never fit, and fills no frame past the limit.
      const { frames, oversized } = wire.planFrames(packets, limit);
      assert.deepEqual(
        frames.flat(),
        packets.filter((p) => p.length <= limit),
      );
      assert.deepEqual(
        oversized,
        packets.filter((p) => p.length > limit),
      );
      for (const frame of frames) assert.ok(frame.reduce((n, p) => n + p.length, 0) <= limit);
      const text = wire.encodeFrame(packets);
      assert.deepEqual(Buffer.from(wire.decodeFrame(text)), whole);
      assert.equal(wire.messageFragments(text, limit).join(''), text);
    },
  ),
  property(
    'codec: a frame text is acceptable exactly when it is canonical padded base64 of some bytes',
    15_000,
    anyText,
    (text) => {
      const canonical = text.length > 0 && Buffer.from(text, 'base64').toString('base64') === text;
      assert.equal(wire.frameTextFault(text) === undefined, canonical);
      if (canonical) assert.equal(Buffer.from(wire.decodeFrame(text)).toString('base64'), text);
    },
  ),
];

// ---------------------------------------------------------------------------------------------
// Handler level

const ATTACKER = 'attacker-conn';
const VICTIM_CONNECTIONS = ['victim-queued-conn', 'victim-live-conn', 'victim-publisher-conn'];
const VICTIM_CLIENTS = ['victim-queued', 'victim-live', 'victim-publisher'];
const VICTIM_TOPICS = ['victim/q/a', 'victim/a/x', 'victim/live', 'victim/q/b', 'victim/will'];

/**
 * Victims: an offline persistent 3.1.1 session with subscriptions and queued messages, a live 5.0
 * client with a will and a subscription, a publisher holding a retained message and a QoS 2 packet
 * id awaiting PUBREL.
 */
async function setUpVictims(broker: TestBroker): Promise<void> {
  await sendPackets(broker, 'victim-queued-conn', [
    connectPacket('victim-queued', { clean: false }),
    subscribePacket(1, ['victim/q/#', 2], ['victim/+/x', 1]),
  ]);
  await connectionGone(broker.ctx, 'victim-queued-conn');
  await sendPackets(
    broker,
    'victim-live-conn',
    [
      connectPacket('victim-live', {
        protocolVersion: 5,
        clean: false,
        will: { topic: 'victim/will', payload: Buffer.from('gone'), qos: 1, retain: true },
      }),
      subscribePacket(1, ['victim/live', 1]),
    ],
    5,
  );
  await sendPackets(broker, 'victim-publisher-conn', [
    connectPacket('victim-publisher'),
    publishPacket('victim/q/a', 'retained', 1, { messageId: 1, retain: true }),
    publishPacket('victim/a/x', 'queued', 2, { messageId: 5 }),
    publishPacket('victim/live', 'live', 1, { messageId: 2 }),
  ]);
  await broker.stream();
}

/** Everything about the victims that the broker keeps. */
async function victimState(broker: TestBroker) {
  const { store } = broker;
  const subscriptions = (await Promise.all(VICTIM_TOPICS.map((t) => store.subscriptionsMatching(t))))
    .flat()
    .filter((s) => s.clientId.startsWith(VICTIM_PREFIX))
    .map((s) => JSON.stringify(s))
    .sort();
  return {
    connections: await Promise.all(VICTIM_CONNECTIONS.map((id) => store.getConnection(id))),
    sessions: [...(await store.getSessions(VICTIM_CLIENTS)).entries()].sort(),
    subscriptions: [...new Set(subscriptions)],
    outbound: await Promise.all(VICTIM_CLIENTS.map((id) => store.outboundMessages(id))),
    retained: await store.retainedMatching(`${VICTIM_PREFIX}/#`),
  };
}

const SERVER_PACKETS = new Set([
  'connack',
  'publish',
  'puback',
  'pubrec',
  'pubrel',
  'pubcomp',
  'suback',
  'unsuback',
  'pingresp',
  'disconnect',
  'auth',
]);

/** [MQTT-4.8.0-1] what the broker sends must itself be well-formed MQTT of the connection's version. */
function assertWellFormedReply(frame: string, version: ProtocolVersion): Packet[] {
  assert.ok(
    frame.length <= wire.GATEWAY_MESSAGE_LIMIT,
    `a reply of ${frame.length} characters exceeds the gateway's limit`,
  );
  const result = decodeFrame(frame, version, BIG);
  assert.ok(result.ok, `the broker sent a malformed frame (${result.ok ? '' : result.reason}): ${frame}`);
  for (const packet of result.packets) {
    assert.ok(SERVER_PACKETS.has(packet.cmd), `the broker sent a ${packet.cmd}`);
    const id = (packet as { messageId?: number }).messageId;
    const needsId =
      packet.cmd === 'publish'
        ? packet.qos > 0
        : ['puback', 'pubrec', 'pubrel', 'pubcomp', 'suback', 'unsuback'].includes(packet.cmd);
    // [MQTT-2.3.1-1] a packet identifier is non-zero.
    if (needsId) assert.ok(id !== undefined && id >= 1 && id <= 65_535, `${packet.cmd} with packet id ${id}`);
    if (packet.cmd === 'publish') assert.ok(!packet.topic.includes('+') && !packet.topic.includes('#'));
  }
  return result.packets;
}

/** The version the broker answers a frame in: the connection's, else the CONNECT's in the frame. */
async function replyVersion(broker: TestBroker, text: string): Promise<ProtocolVersion> {
  const record = await broker.store.getConnection(ATTACKER);
  if (record) return record.protocolVersion;
  const first = decodeFrame(text, undefined, BIG).packets[0];
  return first?.cmd === 'connect' && first.protocolVersion === 5 ? 5 : 4;
}

/** Sends one frame from the attacker; checks the call and the replies; true when the connection was closed. */
async function attack(broker: TestBroker, text: string, frameId: string): Promise<boolean> {
  const version = await replyVersion(broker, text);
  broker.gateway.speaks(ATTACKER, version);
  const before = broker.gateway.sent.length;
  const outcome = await handleFrame(broker.ctx, ATTACKER, text, frameId);
  await broker.stream();
  for (const sent of broker.gateway.sent.slice(before)) {
    if (sent.connectionId === ATTACKER) assertWellFormedReply(sent.frame, version);
  }
  return outcome.closed !== undefined;
}

const handlerProperties = (): FuzzProperty[] => [
  property(
    'handler: a hostile connection never makes handleFrame throw, gets well-formed replies, and leaves victims as they were',
    12_000,
    connectionScript(),
    async (script) => {
      const broker = testContext();
      await setUpVictims(broker);
      const accepted = broker.store.accepted.length;
      const before = await victimState(broker);
      const texts = [
        ...(script.connect ? [bytesOf(script.connect, script.version).toString('base64')] : []),
        ...script.frames.map((f) => scriptFrameText(f, script.version)),
      ];
      for (const [i, text] of texts.entries()) {
        if (await attack(broker, text, `frame-${i}`)) break;
      }
      // The connection ends however it ended: its $disconnect runs.
      await connectionGone(broker.ctx, ATTACKER);
      await broker.stream();
      const after = await victimState(broker);
      // A message to a victim's topic (from the attacker's PUBLISH or will) may change what victims hold.
      const entitled =
        broker.store.accepted.slice(accepted).some((m) => m.topic.startsWith(VICTIM_PREFIX)) ||
        after.sessions.some(([, s]) => s.connectionId === ATTACKER);
      if (!entitled) assert.deepEqual(after, before, 'the attacker changed what a victim holds');
      // The victim publisher's QoS 2 packet id still awaits its PUBREL [MQTT-4.3.3-2].
      const message: StoredMessage = {
        topic: 'victim/a/x',
        payload: new Uint8Array(),
        qos: 2,
        retain: false,
        publisher: 'victim-publisher',
        messageId: 'probe',
        publishedAt: 0,
      };
      if (!entitled) assert.equal(await broker.store.putQoS2Message(message, 5), false);
    },
  ),
  property(
    '[MQTT-4.8.0-1] [MQTT-4.13.1-1] handler: a malformed packet or protocol error closes the connection, telling a 5.0 client why',
    6_000,
    perVersion((version) =>
      fc.record({
        version: fc.constant(version),
        before: fc.array(
          clientPacket(version).filter((p) => p.cmd !== 'disconnect'),
          { maxLength: 2 },
        ),
        hostile: mutation(version).filter((m) => m.mustClose),
      }),
    ),
    async ({ version, before, hostile }) => {
      const broker = testContext();
      if (!hostile.isConnect) {
        await sendPackets(
          broker,
          ATTACKER,
          [connectPacket('attacker', { protocolVersion: version })],
          version,
        );
        assert.ok(await broker.store.getConnection(ATTACKER), 'the attacker is connected');
      }
      const text = Buffer.concat([
        ...(hostile.isConnect ? [] : before.map((p) => bytesOf(p, version))),
        hostile.bytes,
      ]).toString('base64');
      const sentBefore = broker.gateway.sent.length;
      const closed = await attack(broker, text, 'hostile');
      assert.ok(closed, `a ${hostile.kind} (${hostile.bytes.toString('hex')}) did not close the connection`);
      assert.ok(broker.gateway.closed.includes(ATTACKER));
      const replies = broker.gateway.sent.slice(sentBefore).filter((f) => f.connectionId === ATTACKER);
      if (hostile.isConnect) {
        // [MQTT-3.2.2-5] a refused CONNECT leaves no connection behind and is never accepted.
        assert.equal(await broker.store.getConnection(ATTACKER), undefined);
        for (const reply of replies) {
          const bytes = Buffer.from(reply.frame, 'base64');
          assert.ok(bytes[0] !== 0x20 || bytes[3] !== 0, 'a malformed CONNECT was accepted');
        }
        if (version === 5 && hostile.reasonCode !== undefined) {
          const connack = replies.flatMap((r) => r.packets).find((p) => p.cmd === 'connack');
          assert.equal(
            (connack as { reasonCode?: number } | undefined)?.reasonCode,
            hostile.reasonCode,
            `CONNACK refusing a ${hostile.kind}`,
          );
        }
        if (hostile.kind.startsWith('CONNECT protocol level')) {
          // [MQTT-3.1.2-2] CONNACK 0x01 (3.1.1) or 0x84 Unsupported Protocol Version (5.0), then close.
          const bytes = Buffer.from(replies[0]?.frame ?? '', 'base64');
          assert.ok(
            bytes[0] === 0x20 && (bytes[3] === 0x01 || bytes[3] === 0x84),
            'CONNACK refusing the protocol level',
          );
        }
      } else if (version === 5) {
        const last = replies.flatMap((r) => r.packets).at(-1);
        assert.equal(last?.cmd, 'disconnect', 'a 5.0 client gets a DISCONNECT before the close');
        const code = (last as { reasonCode?: number }).reasonCode;
        // §4.13: 0x81 Malformed Packet or 0x82 Protocol Error, as the specification names the fault.
        if (hostile.reasonCode !== undefined)
          assert.equal(code, hostile.reasonCode, `the DISCONNECT reason code for a ${hostile.kind}`);
        else assert.ok(code !== undefined && code >= 0x80);
      }
    },
  ),
  property(
    '[MQTT-3.3.5-1] handler: any stored message fans out without throwing, to every matching subscriber, at the right QoS',
    6_000,
    fc.record({
      subscribers: fc.array(
        fc.record({
          version: versions,
          clean: fc.boolean(),
          online: fc.boolean(),
          subscriptions: fc.array(fc.tuple(topicFilter, fc.constantFrom<0 | 1 | 2>(0, 1, 2)), {
            minLength: 1,
            maxLength: 3,
          }),
        }),
        { minLength: 1, maxLength: 4 },
      ),
      topic: topicName,
      payload: fc.uint8Array({ maxLength: 64 }),
      qos: fc.constantFrom<0 | 1 | 2>(0, 1, 2),
      retain: fc.boolean(),
      messageId: packetId,
      retries: fc.integer({ min: 1, max: 2 }),
    }),
    async ({ subscribers, topic, payload, qos, retain, messageId, retries }) => {
      const broker = testContext();
      for (const [i, s] of subscribers.entries()) {
        const id = `sub-${i}`;
        await sendPackets(
          broker,
          id,
          [
            connectPacket(id, {
              protocolVersion: s.version,
              clean: s.clean,
              // A 5.0 session outlives its connection only with a Session Expiry Interval [MQTT-3.1.2-11].
              ...(s.version === 5 && !s.clean ? { properties: { sessionExpiryInterval: 3600 } } : {}),
            }),
            subscribePacket(1, ...s.subscriptions),
          ],
          s.version,
        );
        if (!s.online) await connectionGone(broker.ctx, id);
      }
      await sendPackets(broker, 'publisher', [
        connectPacket('publisher'),
        publishPacket(topic, '', qos, { payload: Buffer.from(payload), retain, messageId }),
      ]);
      const sentBefore = broker.gateway.sent.length;
      const [message] = broker.store.accepted;
      for (let i = 0; i < retries; i++) await fanOut(broker.ctx, message);
      for (const [i, s] of subscribers.entries()) {
        const id = `sub-${i}`;
        // A filter repeated in one SUBSCRIBE: the last request wins [MQTT-3.8.4-3].
        const byFilter = new Map(s.subscriptions);
        const granted = [...byFilter].filter(([f]) => matches(f, topic)).map(([, q]) => q);
        const frames = broker.gateway.sent.slice(sentBefore).filter((f) => f.connectionId === id);
        const delivered = frames
          .flatMap((f) => assertWellFormedReply(f.frame, s.version))
          .filter((p) => p.cmd === 'publish');
        const expected = granted.length === 0 ? undefined : Math.min(qos, Math.max(...granted));
        if (!s.online || expected === undefined) {
          assert.equal(delivered.length, 0, `${id} got a message it should not`);
        } else {
          assert.ok(
            delivered.length >= 1 && delivered.length <= retries,
            `${id} got ${delivered.length} copies`,
          );
          for (const p of delivered) {
            assert.equal(p.topic, topic);
            assert.deepEqual(Buffer.from(p.payload), Buffer.from(payload));
            assert.equal(p.qos, expected);
            assert.equal(p.retain, false, '[MQTT-3.3.1-9] no retain flag on normal forwarding');
          }
        }
        if (!s.online && !s.clean && expected !== undefined && expected > 0) {
          // Kept for the session until it comes back [MQTT-3.1.2-5].
          // A retried fan-out may queue a QoS 1 message again (at least once); QoS 2 exactly once.
          const queued = await broker.store.outboundMessages(id);
          assert.ok(
            queued.length >= 1 && queued.length <= (expected === 2 ? 1 : retries),
            `${queued.length} queued`,
          );
          for (const q of queued) assert.equal(q.qos, expected);
        }
      }
    },
  ),
];

/** Topic matching written out independently of shared/topics.ts (MQTT 3.1.1 §4.7). */
function matches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && /^[+#]/.test(filter)) return false; // [MQTT-4.7.2-1]
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

/**
 * Every fuzz property.
 *
 * @example
 * for (const p of fuzzProperties()) await p.check({ numRuns: 200 });
 */
export function fuzzProperties(): FuzzProperty[] {
  return [...codecProperties(), ...handlerProperties()];
}
