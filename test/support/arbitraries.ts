import { isUtf8 } from 'node:buffer';
/**
 * fast-check generators of MQTT traffic for the fuzz properties (test/support/fuzz-properties.ts):
 * valid 3.1.1 and 5.0 packets of every type as mqtt-packet objects, hostile mutations of their bytes,
 * frame texts of the wire contract, and sequences of frames for one connection.
 *
 * Every mutation says whether the result is a packet the specification calls malformed or a
 * protocol error (the broker must close the connection) and, where the specification names one,
 * the MQTT 5 reason code of the refusal.
 */
import fc from 'fast-check';
import mqttPacket, { type Packet } from 'mqtt-packet';
import type { ProtocolVersion } from '../../shared/protocol/frames.js';

/** Topics under this prefix belong to the victims of the handler properties; the attacker never picks them. */
export const VICTIM_PREFIX = 'victim';

/** Encodes a packet as mqtt-packet's `generate` does for the version. */
export function bytesOf(packet: Packet, version: ProtocolVersion): Buffer {
  const bytes = mqttPacket.generate(packet, { protocolVersion: version });
  // mqtt-packet gives up on some objects silently, with no bytes: a generator bug, not a broker one.
  if (bytes.length === 0) throw new Error(`mqtt-packet cannot encode ${JSON.stringify(packet)}`);
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Strings, topics, identifiers

/** An MQTT UTF-8 string [MQTT-1.5.3-1], [MQTT-1.5.3-2]: well-formed, no U+0000, any plane. */
export const mqttString = (maxLength = 12): fc.Arbitrary<string> =>
  fc.string({ unit: 'binary', maxLength }).filter((s) => s.isWellFormed() && !s.includes('\u0000'));

const level = fc.oneof(
  { weight: 4, arbitrary: fc.stringMatching(/^[a-c0-9]{0,4}$/) },
  { weight: 1, arbitrary: mqttString(4).filter((s) => !/[+#/]/.test(s)) },
);

/** A valid topic name [MQTT-4.7.3-1], [MQTT-3.3.2-2]: no wildcards, at least one character; never a victim's. */
export const topicName: fc.Arbitrary<string> = fc
  .array(level, { minLength: 1, maxLength: 4 })
  .map((levels) => levels.join('/'))
  .filter((t) => t.length > 0 && !t.startsWith(VICTIM_PREFIX) && Buffer.byteLength(t) <= 65_535);

/** A valid topic filter [MQTT-4.7.1-2], [MQTT-4.7.1-3]: `+` alone in its level, `#` alone and last. */
export const topicFilter: fc.Arbitrary<string> = fc
  .tuple(
    fc.array(fc.oneof({ weight: 3, arbitrary: level }, { weight: 1, arbitrary: fc.constant('+') }), {
      minLength: 1,
      maxLength: 4,
    }),
    fc.boolean(),
  )
  .map(([levels, multi]) => (multi ? [...levels, '#'] : levels).join('/'))
  .filter((f) => f.length > 0);

/** A filter a client may try, valid or not ('a/#/b', 'a+', '$share/…', ''). */
export const anyFilter: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: topicFilter },
  { weight: 1, arbitrary: fc.constantFrom('#', '+', 'a/#/b', 'a+', '#a', '', '$share/g/a', '$SYS/#') },
  { weight: 1, arbitrary: mqttString(8) },
);

/** A client id the attacker may use: never a victim's. */
export const clientId: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('attacker', 'mallory', ''),
  mqttString(10).filter((id) => !id.startsWith(VICTIM_PREFIX)),
);

export const packetId = fc.integer({ min: 1, max: 65_535 });
const qos = fc.constantFrom<0 | 1 | 2>(0, 1, 2);
const u16 = fc.integer({ min: 0, max: 65_535 });
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const smallBytes = (maxLength = 16) => fc.uint8Array({ maxLength }).map((b) => Buffer.from(b));
const userProperties = fc.dictionary(
  fc.stringMatching(/^[a-z]{1,4}$/),
  fc.stringMatching(/^[a-z0-9]{0,4}$/),
  {
    minKeys: 1, // mqtt-packet writes nothing at all for an empty set
    maxKeys: 2,
  },
);
/** A 5.0 reason code for acknowledgements (§3.4.2.1); mqtt-packet refuses codes outside each packet's list. */
const ackReasonCode = fc.constantFrom(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99);

// ---------------------------------------------------------------------------------------------
// Valid packets

/** An arbitrary per protocol version, built once each: building arbitraries is what costs. */
function byVersion<T>(
  build: (version: ProtocolVersion) => fc.Arbitrary<T>,
): (version: ProtocolVersion) => fc.Arbitrary<T> {
  const built = new Map<ProtocolVersion, fc.Arbitrary<T>>();
  return (version) => {
    let arbitrary = built.get(version);
    if (!arbitrary) {
      arbitrary = build(version);
      built.set(version, arbitrary);
    }
    return arbitrary;
  };
}

/** Values from the arbitrary for 3.1.1 or for 5.0, each with its version. */
export const eitherVersion = <T>(
  build: (version: ProtocolVersion) => fc.Arbitrary<T>,
): fc.Arbitrary<[ProtocolVersion, T]> =>
  fc.oneof(
    build(4).map((v): [ProtocolVersion, T] => [4, v]),
    build(5).map((v): [ProtocolVersion, T] => [5, v]),
  );

const connect = byVersion(
  (version): fc.Arbitrary<Packet> =>
    fc
      .record(
        {
          clientId,
          clean: fc.boolean(),
          keepalive: u16,
          username: mqttString(6),
          password: smallBytes(6),
          will: fc.record(
            {
              topic: topicName,
              payload: smallBytes(),
              qos,
              retain: fc.boolean(),
              properties: fc.record(
                { willDelayInterval: u32, contentType: mqttString(6), userProperties },
                { requiredKeys: [] },
              ),
            },
            { requiredKeys: ['topic', 'payload', 'qos', 'retain'] },
          ),
          properties: fc.record(
            {
              sessionExpiryInterval: u32,
              receiveMaximum: fc.integer({ min: 1, max: 65_535 }),
              maximumPacketSize: fc.integer({ min: 1, max: 0xffff_ffff }),
              topicAliasMaximum: u16,
              requestProblemInformation: fc.boolean(),
              userProperties,
            },
            { requiredKeys: [] },
          ),
        },
        { requiredKeys: ['clientId', 'clean', 'keepalive'] },
      )
      .map(({ clientId: id, clean, keepalive, username, password, will, properties }): Packet => {
        const packet: mqttPacket.IConnectPacket = {
          cmd: 'connect',
          protocolId: 'MQTT',
          protocolVersion: version,
          clientId: id,
          // mqtt-packet will not write an empty client id without a clean session; a mutation can.
          clean: clean || id === '',
          keepalive,
        };
        if (username !== undefined) packet.username = username;
        // [MQTT-3.1.2-22] a 3.1.1 password needs a user name (mqtt-packet asks for one in 5.0 too).
        if (password !== undefined && username !== undefined) packet.password = password;
        if (will) {
          const { properties: willProperties, ...rest } = will;
          packet.will = version === 5 && willProperties ? { ...rest, properties: willProperties } : rest;
        }
        if (version === 5 && properties) packet.properties = properties;
        return packet;
      }),
);

const publish = byVersion(
  (version): fc.Arbitrary<mqttPacket.IPublishPacket> =>
    fc
      .record({
        topic: topicName,
        payload: smallBytes(32),
        qos,
        retain: fc.boolean(),
        dup: fc.boolean(),
        messageId: packetId,
        properties: fc.option(
          fc.record(
            {
              payloadFormatIndicator: fc.boolean(),
              messageExpiryInterval: u32,
              contentType: mqttString(6),
              responseTopic: topicName,
              correlationData: smallBytes(6),
              userProperties,
            },
            { requiredKeys: [] },
          ),
          { nil: undefined },
        ),
      })
      .map(({ topic, payload, qos: q, retain, dup, messageId, properties }) => {
        const packet: mqttPacket.IPublishPacket = {
          cmd: 'publish',
          topic,
          payload,
          qos: q,
          retain,
          dup: false,
        };
        if (q > 0) {
          packet.messageId = messageId;
          packet.dup = dup; // [MQTT-3.3.1-2] DUP only on QoS 1 and 2
        }
        if (version === 5 && properties) {
          packet.properties = properties;
          // A valid PUBLISH that says its payload is UTF-8 carries UTF-8 [MQTT-3.3.2-4]; the broker checks it (0x99).
          if (properties.payloadFormatIndicator && !isUtf8(payload))
            packet.payload = Buffer.from(Buffer.from(payload).toString('hex'));
        }
        return packet;
      }),
);

const ack = (
  cmd: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp',
  version: ProtocolVersion,
): fc.Arbitrary<Packet> =>
  fc.record({ messageId: packetId, reasonCode: ackReasonCode }).map(({ messageId, reasonCode }): Packet => {
    // PUBREL and PUBCOMP know only 0x00 and 0x92 (§3.6.2.1, §3.7.2.1).
    const code = cmd === 'pubrel' || cmd === 'pubcomp' ? (reasonCode === 0 ? 0 : 0x92) : reasonCode;
    return version === 5 ? { cmd, messageId, reasonCode: code } : { cmd, messageId };
  });

const subscribe = byVersion(
  (version): fc.Arbitrary<Packet> =>
    fc
      .record({
        messageId: packetId,
        subscriptions: fc.array(
          fc.record({
            topic: anyFilter,
            qos,
            nl: fc.boolean(),
            rap: fc.boolean(),
            rh: fc.constantFrom(0, 1, 2),
          }),
          // [MQTT-3.8.3-3] at least one filter.
          { minLength: 1, maxLength: 3 },
        ),
        identifier: fc.option(fc.integer({ min: 1, max: 268_435_455 }), { nil: undefined }),
      })
      .map(({ messageId, subscriptions, identifier }): Packet => {
        if (version === 4) {
          return {
            cmd: 'subscribe',
            messageId,
            subscriptions: subscriptions.map(({ topic, qos: q }) => ({ topic, qos: q })),
          };
        }
        return {
          cmd: 'subscribe',
          messageId,
          // [MQTT-3.8.3-4] No Local on a Shared Subscription is a protocol error, not a client's packet.
          subscriptions: subscriptions.map((s) => (s.topic.startsWith('$share/') ? { ...s, nl: false } : s)),
          ...(identifier !== undefined ? { properties: { subscriptionIdentifier: identifier } } : {}),
        };
      }),
);

const unsubscribe = fc
  .record({ messageId: packetId, unsubscriptions: fc.array(anyFilter, { minLength: 1, maxLength: 3 }) })
  .map((p): Packet => ({ cmd: 'unsubscribe', ...p }));

const disconnect = byVersion(
  (version): fc.Arbitrary<Packet> =>
    version === 4
      ? fc.constant<Packet>({ cmd: 'disconnect' })
      : fc
          .record({
            reasonCode: fc.constantFrom(0x00, 0x04, 0x80, 0x81, 0x82, 0x8e, 0x93),
            expiry: fc.option(u32),
          })
          .map(
            ({ reasonCode, expiry }): Packet => ({
              cmd: 'disconnect',
              reasonCode,
              ...(expiry !== null ? { properties: { sessionExpiryInterval: expiry } } : {}),
            }),
          ),
);

/** Packets a client sends to a server, CONNECT aside. */
export const clientPacket = byVersion(
  (version): fc.Arbitrary<Packet> =>
    fc.oneof(
      { weight: 4, arbitrary: publish(version) },
      { weight: 1, arbitrary: ack('puback', version) },
      { weight: 1, arbitrary: ack('pubrec', version) },
      { weight: 1, arbitrary: ack('pubrel', version) },
      { weight: 1, arbitrary: ack('pubcomp', version) },
      { weight: 2, arbitrary: subscribe(version) },
      { weight: 1, arbitrary: unsubscribe },
      { weight: 1, arbitrary: fc.constant<Packet>({ cmd: 'pingreq' }) },
      { weight: 1, arbitrary: disconnect(version) },
    ),
);

/** Packets only a server sends (and 5.0 AUTH, which the broker does not offer). */
export const serverPacket = byVersion((version): fc.Arbitrary<Packet> => {
  const suback = fc
    .record({
      messageId: packetId,
      granted: fc.array(fc.constantFrom(0, 1, 2, 0x80), { minLength: 1, maxLength: 3 }),
    })
    .map((p): Packet => ({ cmd: 'suback', ...p }));
  const unsuback = fc
    .record({
      messageId: packetId,
      granted: fc.array(fc.constantFrom(0x00, 0x11, 0x80), { minLength: 1, maxLength: 3 }),
    })
    .map(
      ({ messageId, granted }): Packet =>
        version === 5 ? { cmd: 'unsuback', messageId, granted } : { cmd: 'unsuback', messageId, granted: [] },
    );
  const connack = fc
    .boolean()
    .map(
      (sessionPresent): Packet =>
        version === 5
          ? { cmd: 'connack', sessionPresent, reasonCode: 0, properties: { maximumPacketSize: 1000 } }
          : { cmd: 'connack', sessionPresent, returnCode: 0 },
    );
  const all = [connack, suback, unsuback, fc.constant<Packet>({ cmd: 'pingresp' })];
  if (version === 5) {
    all.push(
      fc.record({ reasonCode: fc.constantFrom(0x00, 0x18, 0x19), method: mqttString(6) }).map(
        ({ reasonCode, method }): Packet => ({
          cmd: 'auth',
          reasonCode,
          properties: { authenticationMethod: method },
        }),
      ),
    );
  }
  return fc.oneof(...all);
});

/** A valid packet of any type for the version (CONNECT with the same version). */
export const anyPacket = byVersion(
  (version): fc.Arbitrary<Packet> =>
    fc.oneof(
      { weight: 1, arbitrary: connect(version) },
      { weight: 6, arbitrary: clientPacket(version) },
      { weight: 2, arbitrary: serverPacket(version) },
    ),
);

export { connect as connectPacketArb, publish as publishPacketArb };

// ---------------------------------------------------------------------------------------------
// Hostile mutations

export interface Mutation {
  /** What was done to the packet. */
  readonly kind: string;
  readonly bytes: Buffer;
  /** A malformed packet or protocol error: the broker must close the connection [MQTT-4.8.0-1]. */
  readonly mustClose: boolean;
  /** Whether the packet is a CONNECT (must-close cases then may answer CONNACK instead of DISCONNECT). */
  readonly isConnect: boolean;
  /**
   * The MQTT 5 reason code of the refusal, where the specification names one: 0x81 Malformed Packet,
   * 0x82 Protocol Error (§4.13); in a DISCONNECT, or in a CONNACK for a CONNECT.
   */
  readonly reasonCode?: number;
}

const MALFORMED = 0x81;
const PROTOCOL_ERROR = 0x82;

/** A Variable Byte Integer (§1.5.5), minimal unless `extra` bytes of zero continuation are asked for. */
function varint(value: number, extra = 0): number[] {
  const bytes: number[] = [];
  let n = value;
  do {
    bytes.push(n % 128);
    n = Math.floor(n / 128);
  } while (n > 0);
  for (let i = 0; i < extra; i++) bytes.push(0);
  return bytes.map((b, i) => (i < bytes.length - 1 ? b | 0x80 : b));
}

/** A packet from its first byte and the rest, with a minimal Remaining Length. */
export function rawPacket(first: number, body: readonly number[]): Buffer {
  return Buffer.from([first, ...varint(body.length), ...body]);
}

const u16Bytes = (n: number) => [(n >> 8) & 0xff, n & 0xff];
const u32Bytes = (n: number) => [(n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
const utf8 = (bytes: readonly number[]) => [...u16Bytes(bytes.length), ...bytes];
const text = (s: string) => utf8([...Buffer.from(s)]);
/** A 5.0 property section: its length (a one-byte varint here) and the properties. */
const props = (version: ProtocolVersion, bytes: readonly number[] = []) =>
  version === 5 ? [bytes.length, ...bytes] : [];

/** Byte sequences that are not MQTT UTF-8 strings [MQTT-1.5.3-1], [MQTT-1.5.3-2]. */
const badUtf8 = fc.constantFrom(
  [0xff],
  [0x80],
  [0xc0, 0x80], // overlong U+0000
  [0xed, 0xa0, 0x80], // a UTF-16 surrogate
  [0xe2, 0x82], // cut short
  [0xf4, 0x90, 0x80, 0x80], // beyond U+10FFFF
  [0x00], // U+0000
);

const connectBytes = (
  version: ProtocolVersion,
  id: readonly number[],
  flags = 0x02,
  level: number = version,
  name = 'MQTT',
) => rawPacket(0x10, [...text(name), level, flags, 0, 60, ...props(version), ...utf8(id)]);

/** Mutations the specification calls malformed or a protocol error, built byte by byte. */
const structuralMutation = byVersion((version): fc.Arbitrary<Mutation> => {
  const m = (kind: string, bytes: Buffer, reasonCode?: number, isConnect = false): Mutation => ({
    kind,
    bytes,
    mustClose: true,
    isConnect,
    ...(reasonCode !== undefined ? { reasonCode } : {}),
  });
  const ascii = [...Buffer.from('a')];
  const all: fc.Arbitrary<Mutation>[] = [
    // [MQTT-1.5.3-1] [MQTT-1.5.3-2] ill-formed UTF-8 or U+0000 in a topic name, a filter, a client id:
    // malformed (5.0 [MQTT-1.5.4-1], [MQTT-1.5.4-2]).
    fc
      .tuple(badUtf8, fc.constantFrom('publish', 'subscribe', 'unsubscribe', 'connect'))
      .map(([bad, where]) => {
        const s = [...ascii, ...bad, ...ascii];
        const bytes =
          where === 'publish'
            ? rawPacket(0x30, [...utf8(s), ...props(version), 0x78])
            : where === 'subscribe'
              ? rawPacket(0x82, [...u16Bytes(1), ...props(version), ...utf8(s), 0x01])
              : where === 'unsubscribe'
                ? rawPacket(0xa2, [...u16Bytes(1), ...props(version), ...utf8(s)])
                : connectBytes(version, s);
        return where === 'connect'
          ? m('invalid UTF-8 in connect', bytes, undefined, true)
          : m(`invalid UTF-8 in ${where}`, bytes, MALFORMED);
      }),
    // [MQTT-2.3.1-1] packet identifier 0; an acknowledgement names a PUBLISH's, never 0 [MQTT-2.3.1-6].
    fc
      .constantFrom(
        rawPacket(0x32, [...text('t'), 0, 0, ...props(version)]),
        rawPacket(0x34, [...text('t'), 0, 0, ...props(version)]),
        rawPacket(0x82, [0, 0, ...props(version), ...text('t'), 0]),
        rawPacket(0xa2, [0, 0, ...props(version), ...text('t')]),
        rawPacket(0x40, [0, 0]),
        rawPacket(0x50, [0, 0]),
        rawPacket(0x62, [0, 0]),
        rawPacket(0x70, [0, 0]),
      )
      .map((bytes) => m(`packet id 0 in 0x${bytes[0].toString(16)}`, bytes, PROTOCOL_ERROR)),
    // [MQTT-2.3.1-1] no packet identifier where one is required: cut short after the topic or the type.
    fc
      .constantFrom(
        rawPacket(0x32, [...text('t')]),
        rawPacket(0x40, []),
        rawPacket(0x50, [0x01]),
        rawPacket(0x62, []),
        rawPacket(0x70, [0x00]),
      )
      .map((bytes) => m(`no packet id in 0x${bytes[0].toString(16)}`, bytes, MALFORMED)),
    // [MQTT-3.3.1-2] DUP set on QoS 0.
    fc.constant(m('DUP on QoS 0', rawPacket(0x38, [...text('t'), ...props(version), 0x78]), PROTOCOL_ERROR)),
    // [MQTT-3.3.1-4] QoS 3 is a Malformed Packet.
    fc.constant(m('PUBLISH QoS 3', rawPacket(0x36, [...text('t'), 0, 1, ...props(version)]), MALFORMED)),
    // [MQTT-3.8.3-3] SUBSCRIBE without filters; [MQTT-3.10.3-2] UNSUBSCRIBE without filters: protocol errors.
    fc.constant(m('SUBSCRIBE with no filters', rawPacket(0x82, [0, 1, ...props(version)]), PROTOCOL_ERROR)),
    fc.constant(m('UNSUBSCRIBE with no filters', rawPacket(0xa2, [0, 1, ...props(version)]), PROTOCOL_ERROR)),
    // [MQTT-3.8.3-4] subscription options: QoS 3 and Retain Handling 3 are protocol errors (§3.8.3.1),
    // reserved bits set malformed [MQTT-3.8.3-5].
    fc
      .constantFrom<[number, number]>(
        [0x03, PROTOCOL_ERROR],
        [version === 5 ? 0x40 : 0x04, MALFORMED],
        [version === 5 ? 0x80 : 0x10, MALFORMED],
        ...(version === 5 ? [[0x30, PROTOCOL_ERROR] as [number, number]] : []),
      )
      .map(([options, code]) =>
        m(
          `SUBSCRIBE options 0x${options.toString(16)}`,
          rawPacket(0x82, [0, 1, ...props(version), ...text('a'), options]),
          code,
        ),
      ),
    // [MQTT-3.1.2-3] CONNECT reserved flag; [MQTT-3.1.2-11] will QoS without will flag; [MQTT-3.1.2-14] will QoS 3.
    fc
      .constantFrom(0x03, 0x0a, 0x12, 0x1e)
      .map((flags) =>
        m(`CONNECT flags 0x${flags.toString(16)}`, connectBytes(version, ascii, flags), undefined, true),
      ),
    // [MQTT-3.1.2-1] a protocol name other than "MQTT".
    fc.constant(
      m('CONNECT protocol name MQTX', connectBytes(version, ascii, 0x02, version, 'MQTX'), undefined, true),
    ),
    // [MQTT-3.1.2-2] an unsupported protocol level: CONNACK 0x01 (3.1.1) or 0x84 (5.0), then close.
    fc
      .constantFrom(0, 1, 2, 6, 7, 255)
      .map((level) =>
        m(`CONNECT protocol level ${level}`, connectBytes(version, ascii, 0x02, level), undefined, true),
      ),
  ];
  if (version === 5) {
    // [MQTT-2.2.2-2] a property that appears twice where it may appear once is a protocol error (§2.2.2.2).
    all.push(
      fc
        .constantFrom(
          rawPacket(0x30, [...text('t'), 4, 0x01, 0x00, 0x01, 0x01]),
          rawPacket(0x30, [...text('t'), 10, 0x02, ...u32Bytes(9), 0x02, ...u32Bytes(9)]),
          rawPacket(0x82, [0, 1, 4, 0x0b, 0x01, 0x0b, 0x02, ...text('a'), 0]),
          connectBytes5WithProps([0x11, ...u32Bytes(1), 0x11, ...u32Bytes(2)]),
        )
        .map((bytes) =>
          m(`duplicated property in 0x${bytes[0].toString(16)}`, bytes, PROTOCOL_ERROR, bytes[0] === 0x10),
        ),
    );
    // §2.2.2.2: a property not defined for the packet type is a Malformed Packet.
    all.push(
      fc
        .constantFrom(
          rawPacket(0x30, [...text('t'), 5, 0x11, ...u32Bytes(1)]), // Session Expiry Interval in PUBLISH
          rawPacket(0x82, [0, 1, 3, 0x23, 0, 1, ...text('a'), 0]), // Topic Alias in SUBSCRIBE
          connectBytes5WithProps([0x24, 1]), // Maximum QoS (a CONNACK property) in CONNECT
        )
        .map((bytes) =>
          m(`misplaced property in 0x${bytes[0].toString(16)}`, bytes, MALFORMED, bytes[0] === 0x10),
        ),
    );
    // §3.3.2.3.2 Payload Format Indicator 0 or 1; §3.1.2.11.3 Receive Maximum not 0: protocol errors.
    all.push(
      fc
        .constantFrom(rawPacket(0x30, [...text('t'), 2, 0x01, 0x07]), connectBytes5WithProps([0x21, 0, 0]))
        .map((bytes) =>
          m(
            `property value out of range in 0x${bytes[0].toString(16)}`,
            bytes,
            PROTOCOL_ERROR,
            bytes[0] === 0x10,
          ),
        ),
    );
  }
  return fc.oneof(...all);
});

function connectBytes5WithProps(properties: number[]): Buffer {
  return rawPacket(0x10, [...text('MQTT'), 5, 0x02, 0, 60, properties.length, ...properties, ...text('a')]);
}

/** Mutations of a valid packet's bytes that need not be malformed (the broker may answer or close). */
const byteMutation = byVersion(
  (version): fc.Arbitrary<Mutation> =>
    fc
      .tuple(
        anyPacket(version),
        fc.nat(),
        fc.nat(),
        fc.constantFrom(
          'bit flip',
          'bit flips',
          'truncate',
          'longer length',
          'shorter length',
          'non-minimal length',
          'five-byte length',
          'wrong flags',
        ),
      )
      .map(([packet, n, k, kind]): Mutation => {
        const bytes = Buffer.from(bytesOf(packet, version));
        const isConnect = packet.cmd === 'connect';
        // Each must-close case here is malformed; a broken CONNECT may be closed without a CONNACK.
        const malformed = isConnect ? {} : { reasonCode: MALFORMED };
        const headerLength = 1 + (bytes.subarray(1).findIndex((b) => (b & 0x80) === 0) + 1);
        const body = bytes.subarray(headerLength);
        switch (kind) {
          case 'bit flip':
          case 'bit flips': {
            const flips = kind === 'bit flip' ? 1 : 2 + (k % 6);
            for (let i = 0; i < flips; i++) {
              const at = (n + i * 7919 * (k + 1)) % bytes.length;
              bytes[at] ^= 1 << ((n + i * 3) % 8);
            }
            return { kind, bytes, mustClose: false, isConnect };
          }
          case 'truncate':
            // [MQTT-4.8.0-1] a frame ending inside a packet.
            return {
              kind,
              bytes: bytes.subarray(0, 1 + (n % (bytes.length - 1))),
              mustClose: true,
              isConnect,
              ...malformed,
            };
          case 'longer length':
            // Remaining Length claims more bytes than the frame holds.
            return {
              kind,
              bytes: rawPacketWithLength(bytes[0], body.length + 1 + (n % 300), body),
              mustClose: true,
              isConnect,
              ...malformed,
            };
          case 'shorter length':
            // The packet ends early; its tail is read as whatever comes next.
            if (body.length === 0) return { kind, bytes, mustClose: false, isConnect };
            return {
              kind,
              bytes: rawPacketWithLength(bytes[0], n % body.length, body),
              mustClose: false,
              isConnect,
            };
          case 'non-minimal length':
            // [MQTT-1.5.5-1] the Remaining Length in one byte more than needed.
            return {
              kind,
              bytes: Buffer.concat([Buffer.from([bytes[0], ...varint(body.length, 1)]), body]),
              mustClose: true,
              isConnect,
              ...malformed,
            };
          case 'five-byte length':
            return {
              kind,
              bytes: Buffer.concat([Buffer.from([bytes[0], 0xff, 0xff, 0xff, 0xff, 0x7f]), body]),
              mustClose: true,
              isConnect,
              ...malformed,
            };
          default: {
            // [MQTT-2.2.2-2] reserved flags of a fixed header that are not as specified.
            const type = bytes[0] >> 4;
            if (type === 3)
              return {
                kind: 'PUBLISH QoS 3',
                bytes: Buffer.from([bytes[0] | 0x06, ...bytes.subarray(1)]),
                mustClose: true,
                isConnect,
                ...malformed,
              };
            const required = type === 6 || type === 8 || type === 10 ? 0x02 : 0x00;
            const flags = (required + 1 + (n % 15)) % 16;
            bytes[0] = (type << 4) | flags;
            return { kind, bytes, mustClose: true, isConnect, ...malformed };
          }
        }
      }),
);

/** A packet whose Remaining Length says `length` whatever the body holds. */
function rawPacketWithLength(first: number, length: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([first, ...varint(length)]), body.subarray(0, length)]);
}

/** A hostile packet for a connection speaking `version`. */
export const mutation = byVersion(
  (version): fc.Arbitrary<Mutation> => fc.oneof(structuralMutation(version), byteMutation(version)),
);

// ---------------------------------------------------------------------------------------------
// Frames

/** Text of a frame: what a hostile or drifting peer might put in a WebSocket message. */
export interface FrameText {
  readonly kind: string;
  readonly text: string;
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Sets some of the bits the padding leaves unused: the text then names the same bytes, non-canonically. */
export function withPadBits(canonical: string, bits: number): string {
  const padding = canonical.length - canonical.replace(/=+$/, '').length;
  if (padding === 0) return canonical;
  const at = canonical.length - 1 - padding;
  const index = ALPHABET.indexOf(canonical[at]) | (1 + (bits % (padding === 2 ? 15 : 3)));
  return canonical.slice(0, at) + ALPHABET[index] + canonical.slice(at + 1);
}

/** Frame texts: base64 of random bytes, text that is not base64, non-canonical base64. */
export const frameText: fc.Arbitrary<FrameText> = fc.oneof(
  fc
    .uint8Array({ minLength: 1, maxLength: 64 })
    .map((b) => ({ kind: 'random bytes', text: Buffer.from(b).toString('base64') })),
  fc.string({ unit: 'binary', maxLength: 40 }).map((text) => ({ kind: 'any text', text })),
  fc.stringMatching(/^[A-Za-z0-9+/=_\- \n]{0,24}$/).map((text) => ({ kind: 'base64-like text', text })),
  fc
    .tuple(fc.uint8Array({ minLength: 1, maxLength: 32 }), fc.nat())
    .filter(([b]) => b.length % 3 !== 0)
    .map(([b, n]) => ({
      kind: 'non-canonical base64',
      text: withPadBits(Buffer.from(b).toString('base64'), n),
    })),
  fc
    .uint8Array({ minLength: 1, maxLength: 32 })
    .map((b) => ({ kind: 'unpadded base64', text: Buffer.from(b).toString('base64').replace(/=+$/, '') })),
  fc
    .uint8Array({ minLength: 1, maxLength: 32 })
    .map((b) => ({ kind: 'URL-safe base64', text: Buffer.from(b).toString('base64url') })),
);

/** One item of a frame: a valid packet, a hostile one, or random bytes. */
export type FrameItem =
  | { readonly kind: 'packet'; readonly packet: Packet }
  | { readonly kind: 'mutation'; readonly mutation: Mutation }
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array };

export const frameItem = (version: ProtocolVersion): fc.Arbitrary<FrameItem> =>
  fc.oneof(
    { weight: 6, arbitrary: clientPacket(version).map((packet): FrameItem => ({ kind: 'packet', packet })) },
    { weight: 1, arbitrary: serverPacket(version).map((packet): FrameItem => ({ kind: 'packet', packet })) },
    {
      weight: 3,
      arbitrary: mutation(version).map((m): FrameItem => ({ kind: 'mutation', mutation: m })),
    },
    {
      weight: 1,
      arbitrary: fc
        .uint8Array({ minLength: 1, maxLength: 24 })
        .map((bytes): FrameItem => ({ kind: 'bytes', bytes })),
    },
  );

/** Bytes of a frame's items, for a connection speaking `version`. */
export const itemBytes = (item: FrameItem, version: ProtocolVersion): Buffer =>
  item.kind === 'packet'
    ? bytesOf(item.packet, version)
    : item.kind === 'mutation'
      ? item.mutation.bytes
      : Buffer.from(item.bytes);

/** A frame of a connection script: packets in one frame, or a frame text as is. */
export type ScriptFrame =
  | { readonly kind: 'items'; readonly items: readonly FrameItem[] }
  | { readonly kind: 'text'; readonly frame: FrameText };

/** What one connection sends: its version, whether it opens with a valid CONNECT, and the frames after. */
export interface ConnectionScript {
  readonly version: ProtocolVersion;
  readonly connect?: Packet;
  readonly frames: readonly ScriptFrame[];
}

/** Sequences of frames for one connection, CONNECT first or not. */
export const connectionScript = (options: { maxFrames?: number } = {}): fc.Arbitrary<ConnectionScript> => {
  const forVersion = (version: ProtocolVersion) =>
    fc.record({
      version: fc.constant(version),
      // A quarter of the scripts do not open with CONNECT [MQTT-3.1.0-1].
      connect: fc.option(connect(version), { nil: undefined, freq: 4 }),
      frames: fc.array(
        fc.oneof(
          {
            weight: 5,
            arbitrary: fc
              .array(frameItem(version), { minLength: 1, maxLength: 3 })
              .map((items): ScriptFrame => ({ kind: 'items', items })),
          },
          { weight: 1, arbitrary: frameText.map((frame): ScriptFrame => ({ kind: 'text', frame })) },
        ),
        { minLength: 1, maxLength: options.maxFrames ?? 5 },
      ),
    });
  return fc.oneof(forVersion(4), forVersion(5));
};

/** The text of a script frame. */
export const scriptFrameText = (frame: ScriptFrame, version: ProtocolVersion): string =>
  frame.kind === 'text'
    ? frame.frame.text
    : Buffer.concat(frame.items.map((i) => itemBytes(i, version))).toString('base64');
