import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import mqttPacket, { type IPublishPacket, type ISubscribePacket, type Packet } from 'mqtt-packet';
import { decodeFrame as clientDecodeFrame, splitPackets } from '../client/index.js';
import { decodeFrame, encodeFrame, type ProtocolVersion } from '../shared/protocol/frames.js';

// The wire contract: one text frame holds the padded standard base64 of one
// or more whole MQTT control packets (docs: DESIGN.md, "The wire contract").

const maxPacketSize = 98_304;

const bytesOf = (...parts: number[][]): string => Buffer.from(parts.flat()).toString('base64');
const generate = (packet: Packet, protocolVersion: ProtocolVersion): Buffer =>
  mqttPacket.generate(packet, { protocolVersion });

const publish = (
  topic: string,
  payload: Buffer,
  qos: 0 | 1 = 0,
  extra: Partial<IPublishPacket> = {},
): IPublishPacket => ({
  cmd: 'publish',
  topic,
  payload,
  qos,
  retain: false,
  dup: false,
  ...(qos > 0 ? { messageId: 1 } : {}),
  ...extra,
});

const connect = (protocolVersion: ProtocolVersion): Packet => ({
  cmd: 'connect',
  protocolId: 'MQTT',
  protocolVersion,
  clean: true,
  keepalive: 30,
  clientId: `frames-v${protocolVersion}`,
});

function decodeOk(text: string, version: ProtocolVersion | undefined, max = maxPacketSize): Packet[] {
  const result = decodeFrame(text, version, max);
  assert.ok(result.ok, result.ok ? '' : `expected a clean decode, got: ${result.reason}`);
  return result.packets;
}

function decodeFails(text: string, version: ProtocolVersion | undefined, max = maxPacketSize): string {
  const result = decodeFrame(text, version, max);
  assert.equal(result.ok, false, `expected ${JSON.stringify(text.slice(0, 40))} to be refused`);
  return result.ok ? '' : result.reason;
}

describe('several packets in one frame', () => {
  for (const version of [4, 5] as const) {
    test(`v${version}: publishes, a subscribe and a pingreq round-trip in order`, () => {
      const packets: Packet[] = [
        publish('a/b', Buffer.from('zero')),
        publish('sport/tennis', Buffer.from([0, 1, 2, 255]), 1, { messageId: 7 }),
        {
          cmd: 'subscribe',
          messageId: 8,
          subscriptions: [
            { topic: 'sport/#', qos: 1 },
            { topic: '+/x', qos: 0 },
          ],
        },
        { cmd: 'puback', messageId: 3 },
        { cmd: 'pingreq' },
        publish('big', Buffer.alloc(300, 0x61), 1, { messageId: 9 }),
      ];
      const frame = encodeFrame(packets, version);
      assert.match(frame, /^[A-Za-z0-9+/]*={0,2}$/);
      const decoded = decodeOk(frame, version);
      assert.deepEqual(
        decoded.map((p) => p.cmd),
        packets.map((p) => p.cmd),
      );
      decoded.forEach((packet, i) => {
        const sent = packets[i];
        if (sent.cmd === 'publish') {
          const got = packet as IPublishPacket;
          assert.equal(got.topic, sent.topic);
          assert.deepEqual(Buffer.from(got.payload), Buffer.from(sent.payload));
          assert.equal(got.qos, sent.qos);
          if (sent.qos > 0) assert.equal(got.messageId, sent.messageId);
        }
        if (sent.cmd === 'subscribe') {
          const got = packet as ISubscribePacket;
          assert.equal(got.messageId, sent.messageId);
          assert.deepEqual(
            got.subscriptions.map((s) => [s.topic, s.qos]),
            sent.subscriptions.map((s) => [s.topic, s.qos]),
          );
        }
        if (sent.cmd === 'puback') assert.equal((packet as { messageId?: number }).messageId, 3);
      });
    });
  }

  test('a v5 CONNECT sets the version for a v5 SUBSCRIBE with properties in the same frame', () => {
    const subscribe: Packet = {
      cmd: 'subscribe',
      messageId: 42,
      subscriptions: [{ topic: 'home/+/temp', qos: 1, nl: true, rap: false, rh: 0 }],
      properties: { subscriptionIdentifier: 5, userProperties: { who: 'me' } },
    };
    const frame = Buffer.concat([generate(connect(5), 5), generate(subscribe, 5)]).toString('base64');
    // The connection's version is not known yet: the CONNECT in the frame decides.
    const [first, second] = decodeOk(frame, undefined);
    assert.equal(first.cmd, 'connect');
    assert.equal(second.cmd, 'subscribe');
    const got = second as ISubscribePacket;
    assert.equal(got.messageId, 42);
    assert.equal(got.subscriptions[0].topic, 'home/+/temp');
    assert.equal(got.subscriptions[0].qos, 1);
    assert.equal(got.subscriptions[0].nl, true);
    assert.equal(got.properties?.subscriptionIdentifier, 5);
    assert.deepEqual({ ...got.properties?.userProperties }, { who: 'me' });
  });

  test('a v4 CONNECT keeps a frame of an unknown connection at v4', () => {
    const frame = Buffer.concat([
      generate(connect(4), 4),
      generate(publish('t', Buffer.from('p'), 1), 4),
    ]).toString('base64');
    const [, second] = decodeOk(frame, undefined);
    assert.equal((second as IPublishPacket).topic, 't');
    assert.deepEqual(Buffer.from((second as IPublishPacket).payload), Buffer.from('p'));
  });

  test('the connection version decides how a v5 packet without CONNECT is read', () => {
    const v5publish = publish('t', Buffer.from('p'), 0, { properties: { contentType: 'text/plain' } });
    const frame = generate(v5publish, 5).toString('base64');
    const [packet] = decodeOk(frame, 5);
    assert.equal((packet as IPublishPacket).properties?.contentType, 'text/plain');
    assert.deepEqual(Buffer.from((packet as IPublishPacket).payload), Buffer.from('p'));
  });
});

describe('frames the wire contract refuses', () => {
  const pingreq = bytesOf([0xc0, 0x00]); // 'wAA='

  test('a frame of padded standard base64 decodes', () => {
    assert.equal(pingreq, 'wAA=');
    assert.deepEqual(
      decodeOk(pingreq, 4).map((p) => p.cmd),
      ['pingreq'],
    );
  });

  test('text that is not base64 is refused', () => {
    for (const text of [
      'not base64!',
      'wAA=\n',
      ' wAA=',
      'wA A=',
      'wAA=wAA=',
      '====',
      'w===',
      '{"cmd":"x"}',
    ]) {
      assert.match(decodeFails(text, 4), /not padded standard base64/, JSON.stringify(text));
    }
  });

  test('unpadded base64 is refused (RFC 4648 §4 with padding)', () => {
    assert.match(decodeFails('wAA', 4), /not padded standard base64/);
    assert.match(decodeFails(bytesOf([0xc0, 0x00, 0xc0, 0x00]).replace(/=+$/, ''), 4), /base64/);
  });

  test('the URL-safe alphabet (RFC 4648 §5) is refused', () => {
    // 0xfb 0xff 0xbf is '+/+/' in the standard alphabet and '-_-_' in the URL-safe one.
    assert.equal(bytesOf([0xfb, 0xff, 0xbf]), '+/+/');
    assert.match(decodeFails('-_-_', 4), /not padded standard base64/);
    const bytes = generate(publish('x', Buffer.from([0xfb, 0xff, 0xbf, 0xfe])), 4);
    const urlSafe = bytes.toString('base64url');
    assert.notEqual(urlSafe, bytes.toString('base64').replace(/=+$/, ''), 'the payload uses - or _');
    assert.match(decodeFails(urlSafe, 4), /not padded standard base64/);
  });

  test('an empty frame is refused', () => {
    assert.match(decodeFails('', 4), /base64/);
    assert.match(decodeFails('', undefined), /base64/);
  });

  test('[MQTT-4.8.0-1] a frame ending inside a packet is refused, and the whole packets before it are kept', () => {
    // Cut after the fixed header byte, after the Remaining Length, or inside the variable header.
    assert.equal(decodeFails(bytesOf([0x30]), 4), 'frame ends inside a packet');
    assert.equal(decodeFails(bytesOf([0x30, 0x05]), 4), 'frame ends inside a packet');
    assert.equal(decodeFails(bytesOf([0x30, 0x80]), 4), 'frame ends inside a packet');
    assert.equal(decodeFails(bytesOf([0x82, 0x06, 0x00]), 5), 'frame ends inside a packet');
    const whole = generate({ cmd: 'pingreq' }, 4);
    const bytes = generate(publish('a/b', Buffer.from('xyz')), 4);
    for (let cut = 1; cut < bytes.length; cut++) {
      const frame = Buffer.concat([whole, bytes.subarray(0, cut)]).toString('base64');
      const result = decodeFrame(frame, 4, maxPacketSize);
      assert.equal(result.ok, false, `cut at ${cut}`);
      if (!result.ok) assert.equal(result.reason, 'frame ends inside a packet');
      assert.deepEqual(
        result.packets.map((p) => p.cmd),
        ['pingreq'],
      );
    }
  });

  test('[MQTT-2.2.2-2] reserved flag bits that are not as specified are a malformed packet', () => {
    // SUBSCRIBE must be 0x82, PUBREL 0x62, UNSUBSCRIBE 0xA2, PINGREQ 0xC0, DISCONNECT 0xE0.
    const subscribe = generate(
      { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a', qos: 0 }] },
      4,
    );
    assert.equal(subscribe[0], 0x82);
    for (const first of [0x80, 0x83, 0x8a]) {
      const bad = Buffer.from(subscribe);
      bad[0] = first;
      assert.match(decodeFails(bad.toString('base64'), 4), /malformed packet/, first.toString(16));
    }
    for (const bytes of [
      [0xc1, 0x00],
      [0xe8, 0x00],
      [0x60, 0x02, 0x00, 0x01],
      [0xa0, 0x05, 0x00, 0x01, 0x00, 0x01, 0x61],
    ]) {
      assert.match(decodeFails(bytesOf(bytes), 4), /malformed packet/, bytes[0].toString(16));
    }
  });

  test('[MQTT-1.5.5-1] a Remaining Length in more bytes than needed is malformed, as the client finds it', () => {
    // PUBACK with Remaining Length 2 written in two bytes (0x82 0x00), after a whole PINGREQ.
    const frame = bytesOf([0xc0, 0x00], [0x40, 0x82, 0x00, 0x00, 0x01]);
    const result = decodeFrame(frame, 4, maxPacketSize);
    assert.equal(result.ok, false);
    if (!result.ok) assert.match(result.reason, /not minimally encoded/);
    assert.deepEqual(
      result.packets.map((p) => p.cmd),
      ['pingreq'],
    );
    assert.throws(() => splitPackets(clientDecodeFrame(frame)), /not minimally encoded/);
    assert.match(decodeFails(bytesOf([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]), 4), /longer than 4 bytes/);
  });

  test('[MQTT-2.3.1-1] an acknowledgement or QoS 1 PUBLISH without a packet identifier is malformed', () => {
    for (const version of [4, 5] as const) {
      for (const bytes of [
        [0x40, 0x00],
        [0x50, 0x01, 0x07],
        [0x62, 0x00],
        [0x70, 0x00],
        [0x32, 0x03, 0x00, 0x01, 0x61],
      ]) {
        assert.match(
          decodeFails(bytesOf(bytes), version),
          /without a packet identifier/,
          `v${version} ${bytes[0].toString(16)}`,
        );
      }
    }
  });

  test('[MQTT-3.3.1-4] a PUBLISH with both QoS bits set is a malformed packet', () => {
    assert.match(decodeFails(bytesOf([0x36, 0x03, 0x00, 0x01, 0x61]), 4), /malformed packet/);
  });

  test('a packet after a malformed one is not decoded', () => {
    const frame = Buffer.concat([
      generate({ cmd: 'pingreq' }, 4),
      Buffer.from([0xc1, 0x00]),
      generate({ cmd: 'pingreq' }, 4),
    ]).toString('base64');
    const result = decodeFrame(frame, 4, maxPacketSize);
    assert.equal(result.ok, false);
    assert.deepEqual(
      result.packets.map((p) => p.cmd),
      ['pingreq'],
    );
  });

  test('a packet larger than the maximum packet size is refused', () => {
    const bytes = generate(publish('t', Buffer.alloc(1000, 1)), 4).toString('base64');
    assert.match(decodeFails(bytes, 4, 500), /exceeds the maximum/);
    assert.equal(decodeOk(bytes, 4, 5000).length, 1);
  });

  test('[MQTT-3.2.2-15] the maximum packet size counts the whole packet, fixed header included', () => {
    // MQTT 5.0 §3.2.2.3.6: the packet size is the total number of bytes in an MQTT Control Packet.
    const bytes = generate(publish('t', Buffer.alloc(200, 1)), 5);
    const total = bytes.length; // 1 byte of header, 2 bytes of remaining length, 204 of the rest
    assert.equal(total, 207);
    assert.equal(decodeOk(bytes.toString('base64'), 5, total).length, 1);
    assert.match(decodeFails(bytes.toString('base64'), 5, total - 1), /exceeds the maximum/);
  });

  test('the maximum packet size counts every byte of a multi-byte Remaining Length', () => {
    for (const remaining of [127, 128, 16_383, 16_384]) {
      // topic 't' takes 3 bytes of the variable header (v4, QoS 0); the payload fills the rest.
      const bytes = generate(publish('t', Buffer.alloc(remaining - 3)), 4);
      const lengthBytes = remaining < 128 ? 1 : remaining < 16_384 ? 2 : 3;
      assert.equal(bytes.length, 1 + lengthBytes + remaining);
      assert.equal(decodeOk(bytes.toString('base64'), 4, bytes.length).length, 1, `${remaining}`);
      assert.match(decodeFails(bytes.toString('base64'), 4, bytes.length - 1), /exceeds the maximum/);
    }
  });

  test('packets before an oversized one are kept; nothing after it is', () => {
    const small = generate({ cmd: 'pingreq' }, 4);
    const big = generate(publish('t', Buffer.alloc(600)), 4);
    const result = decodeFrame(Buffer.concat([small, big, small]).toString('base64'), 4, 100);
    assert.equal(result.ok, false);
    assert.deepEqual(
      result.packets.map((p) => p.cmd),
      ['pingreq'],
    );
  });
});

describe('encodeFrame', () => {
  test('a PINGRESP is the frame "0AA="', () => {
    assert.equal(encodeFrame([{ cmd: 'pingresp' }], 4), '0AA=');
  });

  test('a v5 DISCONNECT carries its reason code; a v4 one has none', () => {
    const v5 = Buffer.from(encodeFrame([{ cmd: 'disconnect', reasonCode: 0x81 }], 5), 'base64');
    assert.equal(v5[0], 0xe0);
    assert.equal(v5[2], 0x81);
    assert.deepEqual([...Buffer.from(encodeFrame([{ cmd: 'disconnect' }], 4), 'base64')], [0xe0, 0x00]);
  });
});

describe('fuzz', () => {
  test('arbitrary bytes, base64-encoded, never throw: a clean decode or a refusal with a reason', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ minLength: 1, maxLength: 64 }),
          // A valid packet prefix followed by junk.
          fc
            .tuple(fc.constantFrom(...validPrefixes()), fc.uint8Array({ maxLength: 32 }))
            .map(([prefix, junk]) => Uint8Array.from([...prefix, ...junk])),
        ),
        fc.constantFrom<ProtocolVersion | undefined>(4, 5, undefined),
        fc.integer({ min: 0, max: 100 }),
        (bytes, version, max) => {
          const result = decodeFrame(Buffer.from(bytes).toString('base64'), version, max);
          if (result.ok) {
            for (const packet of result.packets) assert.equal(typeof packet.cmd, 'string');
          } else {
            assert.equal(typeof result.reason, 'string');
            assert.ok(result.reason.length > 0);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  test('arbitrary strings never throw and are refused unless they are base64', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (text) => {
        const result = decodeFrame(text, 4, maxPacketSize);
        if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0 || text.length === 0) {
          assert.equal(result.ok, false);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('the broker and the client read frames alike', () => {
  /** The client's verdict on an inbound frame: base64 text of whole packets (client/stream.ts). */
  const clientAccepts = (text: string): boolean => {
    try {
      splitPackets(clientDecodeFrame(text));
      return true;
    } catch {
      return false;
    }
  };
  const brokerAccepts = (text: string): boolean => decodeFrame(text, 4, maxPacketSize).ok;
  /** Written out rather than imported: Node's encoder is canonical, so canonical text survives a round trip. */
  const isCanonicalBase64 = (text: string): boolean =>
    text.length > 0 && Buffer.from(text, 'base64').toString('base64') === text;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

  /** Sets some of the bits the padding leaves unused; the text then names the same bytes, non-canonically. */
  const withPadBits = (text: string, bits: number): string => {
    const padding = text.length - text.replace(/=+$/, '').length;
    if (padding === 0) return text;
    const at = text.length - 1 - padding;
    const unused = padding === 2 ? 15 : 3;
    const index = alphabet.indexOf(text[at]) | (1 + (bits % unused));
    return text.slice(0, at) + alphabet[index] + text.slice(at + 1);
  };

  const packetArb: fc.Arbitrary<Packet> = fc.oneof(
    fc
      .record({
        topic: fc.stringMatching(/^[a-z0-9/]{1,12}$/),
        payload: fc.uint8Array({ maxLength: 40 }),
        qos: fc.constantFrom<0 | 1>(0, 1),
      })
      .map(({ topic, payload, qos }) => publish(topic, Buffer.from(payload), qos)),
    fc.constantFrom<Packet>({ cmd: 'pingreq' }, { cmd: 'puback', messageId: 7 }),
    fc
      .integer({ min: 1, max: 65_535 })
      .map(
        (messageId): Packet => ({ cmd: 'subscribe', messageId, subscriptions: [{ topic: 'a/+', qos: 1 }] }),
      ),
  );
  /** The text of a valid frame, then altered the ways a drifting peer might alter it. */
  const frameTextArb = fc
    .tuple(
      fc.array(packetArb, { minLength: 1, maxLength: 4 }),
      fc.constantFrom(
        'as is',
        'non-canonical',
        'unpadded',
        'extra padding',
        'invalid character',
        'URL-safe',
        'cut',
        'twice',
      ),
      fc.nat(),
      fc.constantFrom('-', '_', ' ', '\n', '.', '=', '*', 'é', '\0'),
    )
    .map(([packets, change, n, character]) => {
      const text = Buffer.concat(packets.map((packet) => generate(packet, 4))).toString('base64');
      switch (change) {
        case 'non-canonical':
          return withPadBits(text, n);
        case 'unpadded':
          return text.replace(/=+$/, '');
        case 'extra padding':
          return `${text}=`;
        case 'invalid character': {
          const at = n % (text.length + 1);
          return text.slice(0, at) + character + text.slice(at);
        }
        case 'URL-safe':
          return text.replaceAll('+', '-').replaceAll('/', '_');
        case 'cut':
          return text.slice(0, n % (text.length + 1));
        case 'twice':
          return text + text;
        default:
          return text;
      }
    });

  test('frames of whole packets, valid or altered, are accepted by both or refused by both', () => {
    fc.assert(
      fc.property(frameTextArb, (text) => {
        const label = JSON.stringify(text.slice(0, 60));
        assert.equal(brokerAccepts(text), clientAccepts(text), label);
        if (!isCanonicalBase64(text)) assert.equal(clientAccepts(text), false, label);
      }),
      { numRuns: 3000 },
    );
  });

  test('any text: both apply the same base64 rule, the canonical padded standard encoding', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.stringMatching(/^[A-Za-z0-9+/=_ -]{0,12}$/),
          fc.string({ unit: 'binary', maxLength: 24 }),
          fc
            .uint8Array({ minLength: 1, maxLength: 24 })
            .map((bytes) => Buffer.from(bytes).toString('base64')),
          fc
            .tuple(fc.uint8Array({ minLength: 1, maxLength: 24 }), fc.nat())
            .map(([bytes, bits]) => withPadBits(Buffer.from(bytes).toString('base64'), bits)),
        ),
        (text) => {
          let clientBase64 = true;
          try {
            clientDecodeFrame(text);
          } catch {
            clientBase64 = false;
          }
          const result = decodeFrame(text, 4, maxPacketSize);
          // Bytes that pass the base64 rule may still be refused as MQTT, never for their base64.
          const brokerBase64 = result.ok || !/base64/.test(result.reason);
          const label = JSON.stringify(text);
          assert.equal(clientBase64, isCanonicalBase64(text), label);
          assert.equal(brokerBase64, clientBase64, label);
        },
      ),
      { numRuns: 3000 },
    );
  });

  test('a non-canonical frame (non-zero pad bits) is refused by the broker and by the client', () => {
    // 'wAB=' and 'QAIAAR==' read as a PINGREQ and a PUBACK to a lenient decoder, 'QR==' as the byte 0x41.
    for (const [canonical, altered] of [
      ['wAA=', 'wAB='],
      ['QAIAAQ==', 'QAIAAR=='],
      ['QQ==', 'QR=='],
    ]) {
      assert.deepEqual(Buffer.from(altered, 'base64'), Buffer.from(canonical, 'base64'), altered);
      assert.match(decodeFails(altered, 4), /not canonical base64/, altered);
      assert.throws(() => clientDecodeFrame(altered), { code: 'ERR_NIMBUS_BAD_FRAME' }, altered);
    }
    assert.equal(brokerAccepts('wAA='), true);
    assert.equal(clientAccepts('wAA='), true);
  });
});

function validPrefixes(): Uint8Array[] {
  const packets: Array<[Packet, ProtocolVersion]> = [
    [connect(4), 4],
    [connect(5), 5],
    [publish('a/b', Buffer.from('x'), 1, { messageId: 1 }), 4],
    [{ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/#', qos: 1 }] }, 5],
    [{ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['a/#'] }, 4],
    [{ cmd: 'pingreq' }, 4],
  ];
  return packets.map(([packet, version]) => Uint8Array.from(generate(packet, version)));
}
