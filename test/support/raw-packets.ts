/**
 * MQTT packets built byte by byte, for the hostile input mqtt-packet refuses
 * to generate: ill-formed UTF-8, packet id 0, DUP on QoS 0, repeated or
 * misplaced MQTT 5 properties, unknown protocol levels.
 */

/** A Variable Byte Integer (MQTT §1.5.5). */
export function varint(value: number): Buffer {
  const out: number[] = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    out.push(byte);
  } while (value > 0);
  return Buffer.from(out);
}

/** A length-prefixed string of exactly these bytes (a JS string is UTF-8 encoded). */
export function mqttString(text: string | Uint8Array): Buffer {
  const bytes = typeof text === 'string' ? Buffer.from(text) : Buffer.from(text);
  const length = Buffer.alloc(2);
  length.writeUInt16BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);

/** A whole packet: the first byte (type and flags), Remaining Length, then the body. */
export function rawPacket(firstByte: number, ...body: Uint8Array[]): Buffer {
  const rest = Buffer.concat(body);
  return Buffer.concat([Buffer.from([firstByte]), varint(rest.length), rest]);
}

/** An MQTT 5 property block holding these already-encoded properties. */
export function properties(...encoded: Uint8Array[]): Buffer {
  const all = Buffer.concat(encoded);
  return Buffer.concat([varint(all.length), all]);
}

/**
 * A CONNECT with a client id of exactly these bytes.
 *
 * @example
 * rawConnect({ clientId: Buffer.from([0x61, 0xff]) }); // ill-formed UTF-8
 */
export function rawConnect(
  options: {
    clientId?: string | Uint8Array;
    level?: number;
    clean?: boolean;
    /** MQTT 5 CONNECT properties, already encoded with `properties()`. */
    props?: Uint8Array;
    will?: { topic: string | Uint8Array; payload: string; qos?: number; retain?: boolean };
  } = {},
): Buffer {
  const level = options.level ?? 4;
  const will = options.will;
  const flags =
    (options.clean === false ? 0 : 0x02) |
    (will ? 0x04 | ((will.qos ?? 0) << 3) | (will.retain ? 0x20 : 0) : 0);
  const v5 = level === 5;
  return rawPacket(
    0x10,
    mqttString('MQTT'),
    Buffer.from([level, flags]),
    u16(60),
    v5 ? (options.props ?? properties()) : Buffer.alloc(0),
    mqttString(options.clientId ?? 'raw'),
    will && v5 ? properties() : Buffer.alloc(0),
    will ? mqttString(will.topic) : Buffer.alloc(0),
    will ? mqttString(will.payload) : Buffer.alloc(0),
  );
}

/** A PUBLISH with exactly this topic, packet id and flags. */
export function rawPublish(options: {
  topic: string | Uint8Array;
  payload?: string;
  qos?: number;
  dup?: boolean;
  retain?: boolean;
  packetId?: number;
  /** MQTT 5: the property block, already encoded with `properties()`. */
  props?: Uint8Array;
}): Buffer {
  const qos = options.qos ?? 0;
  const first = 0x30 | (options.dup ? 0x08 : 0) | (qos << 1) | (options.retain ? 1 : 0);
  return rawPacket(
    first,
    mqttString(options.topic),
    qos > 0 ? u16(options.packetId ?? 1) : Buffer.alloc(0),
    options.props ?? Buffer.alloc(0),
    Buffer.from(options.payload ?? ''),
  );
}

/** A SUBSCRIBE of these filters (each at QoS 1) with this packet id; MQTT 5 when `props` is given. */
export function rawSubscribe(
  packetId: number,
  filters: Array<string | Uint8Array>,
  props?: Uint8Array,
): Buffer {
  return rawPacket(
    0x82,
    u16(packetId),
    props ?? Buffer.alloc(0),
    ...filters.map((f) => Buffer.concat([mqttString(f), Buffer.from([1])])),
  );
}

/** An UNSUBSCRIBE of these filters with this packet id; MQTT 5 when `props` is given. */
export function rawUnsubscribe(packetId: number, filters: string[], props?: Uint8Array): Buffer {
  return rawPacket(0xa2, u16(packetId), props ?? Buffer.alloc(0), ...filters.map((f) => mqttString(f)));
}

/** MQTT 5 property encoders by identifier (§2.2.2.2). */
export const property = {
  receiveMaximum: (n: number) => Buffer.concat([Buffer.from([0x21]), u16(n)]),
  topicAlias: (n: number) => Buffer.concat([Buffer.from([0x23]), u16(n)]),
  maximumPacketSize: (n: number) => {
    const b = Buffer.alloc(5);
    b[0] = 0x27;
    b.writeUInt32BE(n, 1);
    return b;
  },
  subscriptionIdentifier: (n: number) => Buffer.concat([Buffer.from([0x0b]), varint(n)]),
  payloadFormatIndicator: (n: number) => Buffer.from([0x01, n]),
  requestProblemInformation: (n: number) => Buffer.from([0x17, n]),
  sessionExpiryInterval: (n: number) => {
    const b = Buffer.alloc(5);
    b[0] = 0x11;
    b.writeUInt32BE(n, 1);
    return b;
  },
};
