/**
 * The client transport against what API Gateway enforces: a real `ws` server stands in for the
 * gateway (text frames of padded base64 holding whole packets, subprotocol `mqtt`, 1003 on binary
 * frames, 128 KB messages) and plays a minimal broker so stock MQTT.js can round-trip messages.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import vm from 'node:vm';
import { build } from 'esbuild';
import fc from 'fast-check';
import type { MqttClient } from 'mqtt';
import {
  generate,
  type IConnectPacket,
  type IPublishPacket,
  type ISubscribePacket,
  type Packet,
  parser,
  type QoS,
} from 'mqtt-packet';
import { WebSocket, WebSocketServer } from 'ws';
import {
  BROWSER_MAX_FRAME_BYTES,
  connect,
  createNimbusStream,
  decodeFrame,
  encodeFrame,
  GATEWAY_FRAME_LIMIT,
  GATEWAY_MESSAGE_LIMIT,
  MAX_FRAME_BYTES,
  messageFragments,
  type NimbusClientOptions,
  type NimbusStream,
  type NimbusStreamOptions,
  PacketFramer,
  PacketTooLargeError,
  planFrames,
  splitPackets,
} from '../client/index.js';
import { packetSize } from '../shared/protocol/wire.js';
import { connectPacket } from './support/raw-client.js';

// Written out rather than imported: the gateway's rules must not come from the code under test.
const GATEWAY_LIMIT = 128 * 1024;
const GATEWAY_FRAME = 32 * 1024;
const PADDED_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const TIMEOUT = { timeout: 20_000 };

// Every assert.ok carries a message: without one, Node re-parses the (tsx-compiled, single-line)
// source to describe the failure, which can take minutes.
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

// ---------------------------------------------------------------------------------------------
// A stand-in for API Gateway plus a tiny broker.

interface Frame {
  connection: number;
  packets: Packet[];
  textLength: number;
}

interface FakeGateway {
  url: string;
  /** Frames the clients sent, in arrival order. */
  frames: Frame[];
  /** Every way a client broke the wire contract. */
  violations: string[];
  /** Server side of each accepted connection. */
  sockets: WebSocket[];
  /** Close codes the clients sent. */
  clientCloseCodes: number[];
  packets(cmd: Packet['cmd']): Packet[];
  stop(): Promise<void>;
}

/** Parses one frame's bytes; a frame must end on a packet boundary. */
function parseWholePackets(bytes: Buffer, protocolVersion: number): Packet[] {
  const packetParser = parser({ protocolVersion });
  const packets: Packet[] = [];
  let failure: unknown;
  packetParser.on('packet', (packet) => packets.push(packet));
  packetParser.on('error', (error) => {
    failure = error;
  });
  const left = packetParser.parse(bytes);
  // The parser consumes a partial header silently; its private state counter (0 = between packets)
  // is the only sign that a frame ended mid-packet.
  const state = (packetParser as unknown as { _stateCounter: number })._stateCounter;
  if (failure) throw failure;
  if (left !== 0 || state !== 0)
    throw new Error(`frame ends inside a packet (${left} bytes left, state ${state})`);
  if (packets.length === 0) throw new Error('frame holds no packet');
  return packets;
}

function topicMatches(filter: string, topic: string): boolean {
  if (filter === '#') return true;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

async function startGateway(): Promise<FakeGateway> {
  // Our own HTTP server, so stopping can cut connections still in the handshake too.
  const http = createServer();
  const server = new WebSocketServer({
    server: http,
    handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : false),
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  const frames: Frame[] = [];
  const violations: string[] = [];
  const sockets: WebSocket[] = [];
  const clientCloseCodes: number[] = [];

  server.on('connection', (socket) => {
    const connection = sockets.push(socket) - 1;
    let protocolVersion = 4;
    let nextId = 1;
    const subscriptions = new Map<string, QoS>();
    const send = (packets: Packet[]): void => {
      const bytes = Buffer.concat(packets.map((packet) => generate(packet, { protocolVersion })));
      socket.send(bytes.toString('base64')); // a string goes out as a text frame
    };
    const reject = (why: string, code: number): void => {
      violations.push(why);
      socket.close(code);
    };
    socket.on('close', (code) => clientCloseCodes.push(code));
    if (socket.protocol !== 'mqtt') reject(`subprotocol '${socket.protocol}'`, 1002);

    socket.on('message', (data, isBinary) => {
      if (isBinary) return reject('binary frame', 1003);
      const text = data.toString();
      if (text.length > GATEWAY_LIMIT) return reject(`message of ${text.length} bytes`, 1009);
      if (text.length === 0 || !PADDED_BASE64.test(text))
        return reject(`not padded base64: ${text.slice(0, 40)}`, 1007);
      let packets: Packet[];
      try {
        packets = parseWholePackets(Buffer.from(text, 'base64'), protocolVersion);
      } catch (error) {
        return reject(String(error), 1007);
      }
      frames.push({ connection, packets, textLength: text.length });

      // Replies to one frame go out together, so clients also see multi-packet frames.
      const replies: Packet[] = [];
      for (const packet of packets) {
        switch (packet.cmd) {
          case 'connect':
            protocolVersion = (packet as IConnectPacket).protocolVersion ?? 4;
            replies.push({ cmd: 'connack', sessionPresent: false, returnCode: 0, reasonCode: 0 });
            break;
          case 'subscribe': {
            const { subscriptions: requested, messageId } = packet as ISubscribePacket;
            for (const { topic, qos } of requested) subscriptions.set(topic, qos);
            replies.push({ cmd: 'suback', messageId, granted: requested.map(({ qos }) => qos) });
            break;
          }
          case 'publish': {
            const { topic, payload, qos, messageId } = packet as IPublishPacket;
            if (qos === 1) replies.push({ cmd: 'puback', messageId });
            if (qos === 2) replies.push({ cmd: 'pubrec', messageId });
            for (const [filter, granted] of subscriptions) {
              if (!topicMatches(filter, topic)) continue;
              const outQos = Math.min(qos, granted) as QoS;
              replies.push({
                cmd: 'publish',
                topic,
                payload,
                qos: outQos,
                dup: false,
                retain: false,
                ...(outQos > 0 ? { messageId: nextId++ } : {}),
              });
              break;
            }
            break;
          }
          case 'pubrel':
            replies.push({ cmd: 'pubcomp', messageId: packet.messageId });
            break;
          case 'pubrec':
            replies.push({ cmd: 'pubrel', messageId: packet.messageId });
            break;
          case 'pingreq':
            replies.push({ cmd: 'pingresp' });
            break;
          case 'disconnect':
            socket.close(1000);
            break;
          default:
            break;
        }
      }
      if (replies.length > 0) send(replies);
    });
  });

  const stop = async (): Promise<void> => {
    server.close();
    for (const socket of sockets) socket.terminate();
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
  };
  leftovers.push(stop);
  const { port } = http.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/prod`,
    frames,
    violations,
    sockets,
    clientCloseCodes,
    packets: (cmd) => frames.flatMap((frame) => frame.packets.filter((packet) => packet.cmd === cmd)),
    stop,
  };
}

// Whatever a failed or timed-out test leaves open is closed here, so the run still exits.
const leftovers: Array<() => unknown> = [];
let allTestsOver = false;
after(async () => {
  allTestsOver = true;
  for (const close of leftovers.reverse()) await close(); // clients before their gateway
});

function openClient(url: string, options: NimbusClientOptions): MqttClient {
  const client = connect(url, options);
  leftovers.push(() => client.end(true));
  return client;
}

function openStream(url: string, options?: NimbusStreamOptions): NimbusStream {
  const stream = createNimbusStream(url, options);
  leftovers.push(() => stream.destroy());
  return stream;
}

async function withGateway(body: (gateway: FakeGateway) => Promise<void>): Promise<void> {
  const gateway = await startGateway();
  try {
    await body(gateway);
  } finally {
    await gateway.stop();
  }
}

/** The next CONNACK; an 'error' first (a refused connection) rejects. */
function nextConnect(client: MqttClient): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (error: Error): void => reject(error);
    client.once('error', fail);
    client.once('connect', () => {
      client.removeListener('error', fail);
      resolve();
    });
  });
}

async function connected(client: MqttClient): Promise<MqttClient> {
  await nextConnect(client);
  return client;
}

function nextMessage(client: MqttClient): Promise<[string, Buffer, IPublishPacket]> {
  return new Promise((resolve) => client.once('message', (...args) => resolve(args)));
}

/** Collects the packets a raw stream delivers. */
function packetsFrom(stream: NimbusStream, protocolVersion = 4): Packet[] {
  const packetParser = parser({ protocolVersion });
  const packets: Packet[] = [];
  packetParser.on('packet', (packet) => packets.push(packet));
  stream.on('data', (bytes: Buffer) => packetParser.parse(bytes));
  return packets;
}

/** The first 'error' of a stream (events.once would reject a wait for 'close' on error instead). */
function errorOf(stream: NimbusStream): Promise<Error & { code?: string; closeCode?: number }> {
  return new Promise((resolve) => stream.once('error', resolve));
}

function closeOf(stream: NimbusStream): Promise<void> {
  return new Promise((resolve) => stream.once('close', () => resolve()));
}

async function until(condition: () => boolean): Promise<void> {
  // Polls the event loop; the test's timeout bounds the wait and nothing about speed is asserted.
  // Polling stops once all tests are over, so a timed-out test does not keep the run alive.
  while (!condition()) {
    if (allTestsOver) throw new Error('condition never became true');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const publishPacket = (topic: string, size: number, qos: QoS = 0, messageId?: number): IPublishPacket => ({
  cmd: 'publish',
  topic,
  payload: Buffer.alloc(size, 0x61),
  qos,
  dup: false,
  retain: false,
  ...(messageId === undefined ? {} : { messageId }),
});

// ---------------------------------------------------------------------------------------------
// Framing helpers.

const topicArb = fc.stringMatching(/^[a-z0-9/]{1,24}$/);
const idArb = fc.integer({ min: 1, max: 65_535 });
const packetArb: fc.Arbitrary<Packet> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .record({
        topic: topicArb,
        payload: fc.uint8Array({ maxLength: 600 }),
        qos: fc.constantFrom<QoS>(0, 1, 2),
        retain: fc.boolean(),
        messageId: idArb,
      })
      .map(
        ({ topic, payload, qos, retain, messageId }): Packet => ({
          cmd: 'publish',
          topic,
          payload: Buffer.from(payload),
          qos,
          retain,
          dup: false,
          ...(qos > 0 ? { messageId } : {}),
        }),
      ),
  },
  // Remaining Length of 3 bytes (>= 16,384).
  {
    weight: 1,
    arbitrary: fc.integer({ min: 16_384, max: 40_000 }).map((size) => publishPacket('big', size)),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom<Packet>({ cmd: 'pingreq' }, { cmd: 'pingresp' }, { cmd: 'disconnect' }),
  },
  { weight: 1, arbitrary: idArb.map((messageId): Packet => ({ cmd: 'puback', messageId })) },
  {
    weight: 1,
    arbitrary: fc.record({ messageId: idArb, topic: topicArb, qos: fc.constantFrom<QoS>(0, 1, 2) }).map(
      ({ messageId, topic, qos }): Packet => ({
        cmd: 'subscribe',
        messageId,
        subscriptions: [{ topic, qos }],
      }),
    ),
  },
  { weight: 1, arbitrary: fc.stringMatching(/^[a-zA-Z0-9]{0,23}$/).map(connectPacket) },
);

/** Cuts `bytes` at the given positions (taken modulo the length, so any numbers will do). */
function cut(bytes: Uint8Array, positions: number[]): Uint8Array[] {
  const points = [...new Set(positions.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const point of [...points, bytes.length]) {
    chunks.push(bytes.subarray(from, point)); // empty chunks included on purpose
    from = point;
  }
  return chunks;
}

test('PacketFramer yields exactly the written packets, in order, however the bytes are chunked', () => {
  fc.assert(
    fc.property(
      fc.array(packetArb, { minLength: 1, maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 40 }),
      (packets, positions) => {
        const expected = packets.map((packet) => generate(packet, { protocolVersion: 4 }));
        const framer = new PacketFramer();
        const yielded: Uint8Array[] = [];
        for (const chunk of cut(Buffer.concat(expected), positions)) yielded.push(...framer.push(chunk));
        assert.deepEqual(yielded.map(hex), expected.map(hex));
        assert.equal(framer.pendingBytes, 0);
      },
    ),
  );
});

test('PacketFramer handles a 4-byte Remaining Length (a 2 MB packet) arriving in pieces', () => {
  const packet = generate(publishPacket('huge', 2_100_000), { protocolVersion: 4 });
  assert.equal(packet[4] & 0x80, 0); // four length bytes, the last without continuation
  assert.notEqual(packet[3] & 0x80, 0);
  const framer = new PacketFramer();
  const yielded: Uint8Array[] = [];
  for (let at = 0; at < packet.length; at += 65_536)
    yielded.push(...framer.push(packet.subarray(at, at + 65_536)));
  assert.equal(yielded.length, 1);
  assert.ok(Buffer.from(yielded[0]).equals(packet), 'the packet came out changed');
});

test('packetSize reads the whole packet size from its first bytes, once the Remaining Length is complete', () => {
  fc.assert(
    fc.property(packetArb, (packet) => {
      const bytes = generate(packet, { protocolVersion: 4 });
      let headerLength = 2;
      while (bytes[headerLength - 1] & 0x80) headerLength++;
      for (let n = 0; n < headerLength; n++) assert.equal(packetSize(bytes.subarray(0, n)), undefined);
      assert.equal(packetSize(bytes.subarray(0, headerLength)), bytes.length);
      assert.equal(packetSize(bytes), bytes.length);
    }),
    { numRuns: 300 },
  );
  assert.throws(() => packetSize([0x30, 0x80, 0x00]), { code: 'ERR_NIMBUS_MALFORMED_LENGTH' });
});

test('PacketFramer rejects a malformed Remaining Length and stays failed', () => {
  // Five length bytes: the fourth still says "more follows".
  const tooLong = Uint8Array.of(0x30, 0xff, 0xff, 0xff, 0xff, 0x01);
  const framer = new PacketFramer();
  assert.throws(
    () => {
      for (const byte of tooLong) framer.push(Uint8Array.of(byte));
    },
    { code: 'ERR_NIMBUS_MALFORMED_LENGTH' },
  );
  assert.throws(() => framer.push(Uint8Array.of(0xc0, 0x00)), { code: 'ERR_NIMBUS_MALFORMED_LENGTH' });
  // Non-minimal: 0 encoded in two bytes.
  assert.throws(() => new PacketFramer().push(Uint8Array.of(0xc0, 0x80, 0x00)), {
    code: 'ERR_NIMBUS_MALFORMED_LENGTH',
  });
});

test('encodeFrame and decodeFrame round-trip any bytes as padded standard base64', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 5 }),
      (parts) => {
        const text = encodeFrame(parts);
        assert.match(text, PADDED_BASE64);
        assert.equal(text.length % 4, 0);
        assert.equal(hex(decodeFrame(text)), hex(Buffer.concat(parts)));
      },
    ),
  );
});

test('decodeFrame rejects unpadded, URL-safe, whitespace, non-canonical and garbage input', () => {
  assert.equal(hex(decodeFrame('+/8=')), 'fbff');
  for (const bad of [
    'wAA', // unpadded
    'wA', // unpadded
    '-_8=', // URL-safe alphabet for fbff
    '-_8', // URL-safe, unpadded
    'wA A=', // whitespace
    'wAA=\n', // trailing newline (MIME style)
    'wAB=', // non-zero pad bits
    'wA==wAA=', // padding in the middle
    'wA===', // too much padding
    '!!!!', // garbage
    'wAA=*',
    '', // no packet at all
  ]) {
    assert.throws(() => decodeFrame(bad), { code: 'ERR_NIMBUS_BAD_FRAME' }, JSON.stringify(bad));
  }
});

test('encodeFrame fills a gateway message exactly at 98,304 bytes and refuses one byte more', () => {
  assert.equal(encodeFrame([new Uint8Array(MAX_FRAME_BYTES)]).length, GATEWAY_LIMIT);
  assert.throws(() => encodeFrame([new Uint8Array(MAX_FRAME_BYTES), Uint8Array.of(0)]), RangeError);
});

test("the limits are API Gateway's: 128 KB messages and 32 KB frames, and the packet bytes their base64 holds", () => {
  assert.equal(GATEWAY_MESSAGE_LIMIT, GATEWAY_LIMIT);
  assert.equal(GATEWAY_FRAME_LIMIT, GATEWAY_FRAME);
  // A WebSocket that cannot fragment (a browser's) sends each message as one frame.
  assert.equal(encodeFrame([new Uint8Array(BROWSER_MAX_FRAME_BYTES)]).length, GATEWAY_FRAME);
  assert.ok(
    encodeFrame([new Uint8Array(BROWSER_MAX_FRAME_BYTES + 1)]).length > GATEWAY_FRAME,
    'one more byte should not fit a frame',
  );
});

test('messageFragments cuts a message into 32 KB frames that join back into it', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 4 * GATEWAY_FRAME + 10 }), (length) => {
      const text = 'ABCD'.repeat(Math.ceil(length / 4)).slice(0, length);
      const fragments = messageFragments(text);
      assert.equal(fragments.join(''), text);
      assert.equal(fragments.length, Math.ceil(length / GATEWAY_FRAME));
      for (const fragment of fragments.slice(0, -1)) assert.equal(fragment.length, GATEWAY_FRAME);
    }),
    { numRuns: 200 },
  );
});

test('planFrames keeps order, fills frames greedily, never exceeds the limit and sets oversize packets aside', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 130 }), { maxLength: 30 }), (sizes) => {
      const limit = 100;
      const packets = sizes.map((size, i) => new Uint8Array(size).fill(i));
      const { frames, oversized } = planFrames(packets, limit);
      assert.deepEqual(
        oversized,
        packets.filter((p) => p.length > limit),
      );
      assert.deepEqual(
        frames.flat(),
        packets.filter((p) => p.length <= limit),
      );
      const bytes = frames.map((frame) => frame.reduce((n, p) => n + p.length, 0));
      for (const [i, size] of bytes.entries()) {
        assert.ok(size <= limit && frames[i].length > 0, `frame ${i} holds ${size} bytes`);
        if (i + 1 < frames.length)
          assert.ok(size + frames[i + 1][0].length > limit, 'a frame was closed early');
      }
    }),
  );
});

test('splitPackets accepts whole packets only', () => {
  const ping = Uint8Array.of(0xc0, 0x00);
  assert.equal(splitPackets(Uint8Array.of(0xc0, 0x00, 0xd0, 0x00)).length, 2);
  assert.equal(splitPackets(ping).length, 1);
  assert.throws(() => splitPackets(Uint8Array.of(0xc0)), { code: 'ERR_NIMBUS_BAD_FRAME' });
  assert.throws(() => splitPackets(Uint8Array.of(0xc0, 0x00, 0x30, 0x05, 0x00)), {
    code: 'ERR_NIMBUS_BAD_FRAME',
  });
  assert.throws(() => splitPackets(new Uint8Array(0)), { code: 'ERR_NIMBUS_BAD_FRAME' });
});

// ---------------------------------------------------------------------------------------------
// MQTT.js through connect().

for (const protocolVersion of [4, 5] as const) {
  test(
    `MQTT.js (MQTT ${protocolVersion === 4 ? '3.1.1' : '5.0'}) connects, subscribes, publishes and receives its own messages`,
    TIMEOUT,
    () =>
      withGateway(async (gateway) => {
        const client = await connected(openClient(gateway.url, { protocolVersion, reconnectPeriod: 0 }));
        try {
          await client.subscribeAsync('sensors/#', { qos: 1 });

          for (const qos of [0, 1] as const) {
            const arrival = nextMessage(client);
            await client.publishAsync(`sensors/qos${qos}`, `reading at QoS ${qos}`, { qos });
            const [topic, payload, packet] = await arrival;
            assert.equal(topic, `sensors/qos${qos}`);
            assert.equal(payload.toString(), `reading at QoS ${qos}`);
            assert.equal(packet.qos, qos);
          }

          // mqtt-packet writes this in several pieces (header, length, topic, id, payload).
          const big = Buffer.alloc(50 * 1024);
          for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
          const arrival = nextMessage(client);
          await client.publishAsync('sensors/big', big, { qos: 1 });
          const [, payload] = await arrival;
          assert.ok(payload.equals(big), 'the 50 KB payload came back changed');
          const received = gateway.packets('publish') as IPublishPacket[];
          assert.ok(
            received.some((p) => p.topic === 'sensors/big' && Buffer.from(p.payload).equals(big)),
            'the gateway did not get the 50 KB publish intact',
          );
          // The client acknowledges both QoS 1 deliveries (it does so after emitting 'message').
          await until(() => gateway.packets('puback').length === 2);
        } finally {
          await client.endAsync();
        }
        assert.deepEqual(gateway.violations, []);
        assert.equal(gateway.packets('disconnect').length, 1, 'DISCONNECT was sent before closing');
      }),
  );
}

test('packets MQTT.js writes in the same tick travel in one frame', TIMEOUT, () =>
  withGateway(async (gateway) => {
    const client = await connected(openClient(gateway.url, { reconnectPeriod: 0 }));
    try {
      const before = gateway.frames.length;
      await Promise.all([1, 2, 3, 4, 5].map((n) => client.publishAsync('t', `m${n}`)));
      await until(() => gateway.packets('publish').length === 5);
      const frames = gateway.frames.slice(before);
      assert.equal(frames.length, 1);
      assert.deepEqual(
        frames[0].packets.map((p) => (p as IPublishPacket).payload.toString()),
        ['m1', 'm2', 'm3', 'm4', 'm5'],
      );
    } finally {
      await client.endAsync();
    }
    assert.deepEqual(gateway.violations, []);
  }),
);

for (const protocolVersion of [4, 5] as const) {
  test(
    `MQTT ${protocolVersion === 5 ? '5.0' : '3.1.1'}: the acknowledgements of a frame of several QoS 1 and 2 PUBLISHes leave in one frame, in order`,
    TIMEOUT,
    () =>
      withGateway(async (gateway) => {
        // The fan-out sends a subscriber's deliveries of a stream batch in one message (ADR 0024): their
        // PUBACKs in one message back are one API Gateway message and one SQS SendMessage instead of n.
        const client = await connected(openClient(gateway.url, { reconnectPeriod: 0, protocolVersion }));
        try {
          await client.subscribeAsync('coalesced/#', { qos: 2 });
          const count = 12;
          const received: string[] = [];
          client.on('message', (topic) => received.push(topic));
          const before = gateway.frames.length;
          const deliveries = Array.from({ length: count }, (_, i) =>
            generate(
              {
                cmd: 'publish',
                topic: `coalesced/${i}`,
                payload: Buffer.from(String(i)),
                qos: i % 3 === 2 ? 2 : 1,
                messageId: 100 + i,
                dup: false,
                retain: false,
              },
              { protocolVersion },
            ),
          );
          gateway.sockets[0].send(Buffer.concat(deliveries).toString('base64'));
          await until(() => received.length === count);
          // The gateway answers the frame of PUBRECs with one of PUBRELs: their PUBCOMPs leave together too.
          await until(() => gateway.packets('pubcomp').length === count / 3);
          await new Promise((resolve) => setTimeout(resolve, 50)); // a straggler frame would be in by now
          const answers = gateway.frames
            .slice(before)
            .map((f) => f.packets.map((p) => `${p.cmd} ${(p as { messageId?: number }).messageId}`));
          assert.deepEqual(answers, [
            deliveries.map((_, i) => `${i % 3 === 2 ? 'pubrec' : 'puback'} ${100 + i}`),
            [102, 105, 108, 111].map((id) => `pubcomp ${id}`),
          ]);
        } finally {
          await client.endAsync();
        }
        assert.deepEqual(gateway.violations, []);
      }),
  );
}

test(
  'a 100 KB publish is refused with an error instead of being sent, and the connection lives on',
  TIMEOUT,
  () =>
    withGateway(async (gateway) => {
      const client = await connected(openClient(gateway.url, { reconnectPeriod: 0 }));
      const errors: Error[] = [];
      client.on('error', (error) => errors.push(error));
      try {
        await client.subscribeAsync('big/#', { qos: 1 });
        const payload = Buffer.alloc(100 * 1024, 0x62);

        await assert.rejects(client.publishAsync('big/qos1', payload, { qos: 1 }), (error: Error) => {
          assert.ok(error instanceof PacketTooLargeError, `got ${error}`);
          assert.match(error.message, /exceeds the gateway's 128 KB message limit/);
          return true;
        });
        assert.deepEqual(Object.keys(client.outgoing), [], 'nothing left waiting for a PUBACK');

        await client.publishAsync('big/qos0', payload, { qos: 0 });
        await until(() => errors.length === 2);
        for (const error of errors) assert.match(error.message, /128 KB/);

        // Still connected on the same WebSocket, and messages still flow.
        const arrival = nextMessage(client);
        await client.publishAsync('big/small', 'fits', { qos: 1 });
        assert.equal((await arrival)[1].toString(), 'fits');
        assert.equal(gateway.sockets.length, 1);
        const sizes = (gateway.packets('publish') as IPublishPacket[]).map((p) => p.payload.length);
        assert.ok(
          sizes.every((size) => size < MAX_FRAME_BYTES),
          `sizes ${sizes}`,
        );
      } finally {
        await client.endAsync();
      }
      assert.deepEqual(gateway.violations, []);
    }),
);

test('connect() reconnects after the gateway drops the connection, building a new stream', TIMEOUT, () =>
  withGateway(async (gateway) => {
    const client = await connected(openClient(gateway.url, { reconnectPeriod: 10 }));
    try {
      await client.subscribeAsync('again', { qos: 1 });
      const reconnected = nextConnect(client);
      gateway.sockets[0].close(1001, 'idle timeout'); // what API Gateway does after 10 idle minutes
      await reconnected;
      assert.equal(gateway.sockets.length, 2);
      const arrival = nextMessage(client); // MQTT.js resubscribed on the new connection
      await client.publishAsync('again', 'after reconnect', { qos: 1 });
      assert.equal((await arrival)[1].toString(), 'after reconnect');
    } finally {
      await client.endAsync();
    }
    assert.deepEqual(gateway.violations, []);
  }),
);

test(
  'an explicit WebSocket class is used and the transport rejects a server without the mqtt subprotocol',
  TIMEOUT,
  () =>
    withGateway(async (gateway) => {
      let constructed = 0;
      class CountingWebSocket extends WebSocket {
        constructor(url: string, protocols?: string | string[]) {
          super(url, protocols);
          constructed++;
        }
      }
      const client = await connected(
        openClient(gateway.url, { reconnectPeriod: 0, WebSocket: CountingWebSocket }),
      );
      await client.endAsync();
      assert.equal(constructed, 1);

      class WrongProtocolWebSocket extends WebSocket {
        constructor(url: string, protocols?: string | string[]) {
          super(url, protocols);
          Object.defineProperty(this, 'protocol', { value: 'not-mqtt' });
        }
      }
      const stream = openStream(gateway.url, { WebSocket: WrongProtocolWebSocket });
      assert.equal((await errorOf(stream)).code, 'ERR_NIMBUS_SUBPROTOCOL');
    }),
);

// ---------------------------------------------------------------------------------------------
// The stream on its own.

test(
  'writes made before the socket opens are held (with backpressure), then sent together in one frame',
  TIMEOUT,
  () =>
    withGateway(async (gateway) => {
      const stream = openStream(gateway.url);
      const received = packetsFrom(stream);
      const connectBytes = generate(connectPacket('early'), { protocolVersion: 4 });
      for (const chunk of cut(connectBytes, [1, 2, 9])) stream.write(chunk);
      stream.write(Uint8Array.of(0xc0));
      stream.write(Uint8Array.of(0x00)); // PINGREQ, split too
      // Held writes count against the high-water mark, so a writer is told to wait for the socket.
      const accepted = [1, 2, 3, 4, 5].map((n) =>
        stream.write(generate(publishPacket(`early/${n}`, 4_000), { protocolVersion: 4 })),
      );
      assert.equal(accepted.at(-1), false, 'a writer was not told to wait for the socket to open');
      await new Promise((resolve) => stream.once('drain', resolve));
      await until(() => received.length === 2);
      assert.deepEqual(
        received.map((p) => p.cmd),
        ['connack', 'pingresp'],
      );
      assert.equal(gateway.frames.length, 1);
      assert.deepEqual(
        gateway.frames[0].packets.map((p) => (p.cmd === 'publish' ? p.topic : p.cmd)),
        ['connect', 'pingreq', 'early/1', 'early/2', 'early/3', 'early/4', 'early/5'],
      );
      stream.destroy();
      assert.deepEqual(gateway.violations, []);
    }),
);

test('a burst larger than one gateway message is split into frames of whole packets', TIMEOUT, () =>
  withGateway(async (gateway) => {
    const stream = openStream(gateway.url);
    packetsFrom(stream);
    stream.write(generate(connectPacket('burst'), { protocolVersion: 4 }));
    await until(() => gateway.frames.length === 1);
    for (const n of [1, 2, 3]) {
      const bytes = generate(publishPacket(`t${n}`, 40_000), { protocolVersion: 4 });
      for (const chunk of cut(bytes, [1, 3, 20_000])) stream.write(chunk);
    }
    await until(() => gateway.packets('publish').length === 3);
    const frames = gateway.frames.slice(1);
    assert.deepEqual(
      frames.map((f) => f.packets.map((p) => (p as IPublishPacket).topic)),
      [['t1', 't2'], ['t3']],
    );
    assert.ok(
      frames.every((f) => f.textLength <= GATEWAY_LIMIT),
      'a frame exceeds 128 KB',
    );
    stream.destroy();
    assert.deepEqual(gateway.violations, []);
  }),
);

test("a WebSocket that cannot fragment (a browser's) gets messages of at most one 32 KB frame", TIMEOUT, () =>
  withGateway(async (gateway) => {
    class BrowserLikeWebSocket extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        // The transport tells a browser's WebSocket from `ws` by its missing ping().
        Object.defineProperty(this, 'ping', { value: undefined });
      }
    }
    const stream = openStream(gateway.url, { WebSocket: BrowserLikeWebSocket });
    packetsFrom(stream);
    stream.write(generate(connectPacket('browser-like'), { protocolVersion: 4 }));
    await until(() => gateway.frames.length === 1);
    for (const n of [1, 2, 3]) stream.write(generate(publishPacket(`t${n}`, 10_000), { protocolVersion: 4 }));
    await until(() => gateway.packets('publish').length === 3);
    const frames = gateway.frames.slice(1);
    assert.deepEqual(
      frames.map((f) => f.packets.map((p) => (p as IPublishPacket).topic)),
      [['t1', 't2'], ['t3']],
    );
    assert.ok(
      frames.every((f) => f.textLength <= GATEWAY_FRAME),
      'a message exceeds one 32 KB frame',
    );
    stream.destroy();
    assert.deepEqual(gateway.violations, []);
  }),
);

test('an inbound binary frame destroys the stream with an error and closes with 1003', TIMEOUT, () =>
  withGateway(async (gateway) => {
    const stream = openStream(gateway.url);
    stream.write(generate(connectPacket('binary'), { protocolVersion: 4 }));
    await until(() => gateway.sockets.length === 1 && gateway.frames.length === 1);
    const failed = errorOf(stream);
    const closed = closeOf(stream);
    gateway.sockets[0].send(Buffer.from([0xd0, 0x00]), { binary: true });
    assert.equal((await failed).code, 'ERR_NIMBUS_BINARY_FRAME');
    await closed;
    await until(() => gateway.clientCloseCodes.length === 1);
    assert.deepEqual(gateway.clientCloseCodes, [1003]);
  }),
);

for (const [name, text] of [
  ['unpadded base64', '0AA'],
  ['non-canonical base64', 'wAB='], // a PINGREQ to a lenient decoder, with non-zero pad bits
  ['URL-safe base64', Buffer.from([0xfb, 0xff]).toString('base64url')],
  ['half a packet', Buffer.from([0x30, 0x05, 0x00]).toString('base64')],
] as const) {
  test(`an inbound frame of ${name} destroys the stream with an error`, TIMEOUT, () =>
    withGateway(async (gateway) => {
      const stream = openStream(gateway.url);
      const received = packetsFrom(stream);
      stream.write(generate(connectPacket('bad'), { protocolVersion: 4 }));
      await until(() => received.length === 1);
      const failed = errorOf(stream);
      gateway.sockets[0].send(text);
      assert.equal((await failed).code, 'ERR_NIMBUS_BAD_FRAME');
      assert.equal(stream.destroyed, true);
    }),
  );
}

test('a server close with 1000 ends the stream; one with 1003 is reported as an error', TIMEOUT, () =>
  withGateway(async (gateway) => {
    const clean = openStream(gateway.url);
    const errors: Error[] = [];
    clean.on('error', (error) => errors.push(error));
    clean.resume();
    clean.write(generate(connectPacket('clean'), { protocolVersion: 4 }));
    await until(() => gateway.frames.length === 1);
    const closed = closeOf(clean);
    gateway.sockets[0].close(1000);
    await closed;
    assert.deepEqual(errors, []);

    const refused = openStream(gateway.url);
    refused.write(generate(connectPacket('refused'), { protocolVersion: 4 }));
    await until(() => gateway.frames.length === 2);
    const failed = errorOf(refused);
    gateway.sockets[1].close(1003, 'binary frames are not supported');
    const error = await failed;
    assert.equal(error.code, 'ERR_NIMBUS_CLOSED');
    assert.equal(error.closeCode, 1003);
    assert.match(error.message, /binary frames are not supported/);
  }),
);

test('WebSocket errors pass through and the stream closes', TIMEOUT, async () => {
  const gateway = await startGateway();
  const { url } = gateway;
  await gateway.stop(); // nothing listens on that port any more
  const stream = openStream(url);
  const closed = closeOf(stream);
  assert.equal((await errorOf(stream)).code, 'ECONNREFUSED');
  await closed;
});

// ---------------------------------------------------------------------------------------------
// Browser bundle.

test(
  'the browser bundle has no static ws import and works with only a global WebSocket',
  TIMEOUT,
  async () => {
    const bundle = async (format: 'esm' | 'iife', external: string[]): Promise<string> => {
      const result = await build({
        entryPoints: [new URL('../client/index.ts', import.meta.url).pathname],
        bundle: true,
        platform: 'browser',
        format,
        globalName: format === 'iife' ? 'Nimbus' : undefined,
        external,
        write: false,
        logLevel: 'silent',
      });
      return result.outputFiles[0].text;
    };
    const esm = await bundle('esm', ['ws']);
    assert.doesNotMatch(esm, /^import\s[^;]*["']ws["']/m, 'a static import of ws would break browsers');
    assert.match(esm, /import\(["']ws["']\)/);

    // Run the IIFE build in a context that has browser globals only (no process, no require).
    const code = await bundle('iife', []);
    await withGateway(async (gateway) => {
      const context = vm.createContext({
        WebSocket,
        URL,
        TextEncoder,
        TextDecoder,
        AbortController,
        AbortSignal,
        EventTarget,
        Event,
        setTimeout,
        clearTimeout,
        setInterval,
        clearInterval,
        queueMicrotask,
        console,
        navigator: { userAgent: 'Mozilla/5.0 (test)' },
      });
      context.self = context; // browsers' name for the global object, which readable-stream reads
      vm.runInContext(code, context);
      context.gatewayUrl = gateway.url;
      const result: Promise<string> = vm.runInContext(
        `(async () => {
      const client = Nimbus.connect(gatewayUrl, { reconnectPeriod: 0 });
      await new Promise((resolve, reject) => { client.once('connect', resolve); client.once('error', reject); });
      await client.subscribeAsync('browser', { qos: 1 });
      const arrival = new Promise((resolve) => client.once('message', (topic, payload) => resolve(payload.toString())));
      await client.publishAsync('browser', 'hello from a bundle', { qos: 1 });
      const text = await arrival;
      await client.endAsync();
      return text;
    })()`,
        context,
      );
      assert.equal(await result, 'hello from a bundle');
      assert.deepEqual(gateway.violations, []);
    });
  },
);
