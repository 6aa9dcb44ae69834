import mqttPacket, { type Packet } from 'mqtt-packet';
import { frameTextFault, packetSize } from './wire.js';

/** Protocol levels the broker speaks: 3.1.1 and 5.0 (3.1 "MQIsdp" is refused at CONNECT). */
export type ProtocolVersion = 4 | 5;

/**
 * What was wrong with a frame: too large a packet, an unknown protocol level in CONNECT, a value the
 * specification calls a Protocol Error (5.0 reason code 0x82), or anything else malformed.
 */
export type DecodeFault = 'too-large' | 'protocol-level' | 'protocol-error' | 'malformed';

export type DecodeResult =
  | { readonly ok: true; readonly packets: Packet[] }
  | { readonly ok: false; readonly packets: Packet[]; readonly reason: string; readonly fault: DecodeFault };

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The parser's internals `checkValues` reaches into: mqtt-packet 9 reads every UTF-8 string in `_parseString`, every property value in `_parseByType`. */
interface ParserInternals {
  _pos: number;
  _list: { length: number; slice(start: number, end: number): Buffer; readUInt8(at: number): number };
  _parseString(): string | null;
  _parseByType(type: string): unknown;
  _parseProperties(): unknown;
  _emitError(error: Error): void;
}

/** A value the parser read that the specification calls a Protocol Error rather than malformed. */
class ProtocolErrorValue extends Error {}

/**
 * mqtt-packet's refusals of values the specification calls a Protocol Error rather than malformed:
 * a subscription's Maximum QoS 3 or Retain Handling 3 (5.0 §3.8.3.1).
 */
const PROTOCOL_ERROR_MESSAGES = new Set([
  'Invalid subscribe QoS, must be <= 2',
  'Invalid retain handling, must be <= 2',
]);

/**
 * Makes the parser refuse ill-formed UTF-8 in every string it reads [MQTT-1.5.3-1] (5.0:
 * [MQTT-1.5.4-1]); U+0000 is well-formed and left to the checks of each field, which answer it
 * with a reason code where there is one (a client id's CONNACK 2). mqtt-packet decodes strings with
 * `toString('utf8')`, which silently turns bad bytes into U+FFFD, and exposes no raw bytes; its
 * one string reader is wrapped here instead, so the check sees exactly the bytes of each string;
 * its property reader too, for the values it reads as booleans.
 */
function checkValues(parser: unknown): void {
  const reader = parser as ParserInternals;
  const readString = reader._parseString;
  reader._parseString = function (this: ParserInternals) {
    const start = this._pos + 2;
    const text = readString.call(this);
    if (text === null) return null;
    try {
      strictUtf8.decode(this._list.slice(start, this._pos));
    } catch {
      this._emitError(new Error('string is not well-formed UTF-8'));
      return null;
    }
    return text;
  };
  // MQTT 5 Byte properties (Payload Format Indicator, Request Problem/Response Information, …) are 0
  // or 1, any other value a Protocol Error (5.0 §3.1.2.11.7); mqtt-packet reads them as `value !== 0`.
  // A repeated property is a Protocol Error (5.0 §2.2.2.2). mqtt-packet keeps one as an array, which
  // packet-rules refuses, unless its first value is falsy (0, false): then the second overwrites it.
  let firstValues = new Map<number, unknown>();
  const readProperties = reader._parseProperties;
  reader._parseProperties = function (this: ParserInternals) {
    firstValues = new Map();
    return readProperties.call(this);
  };
  const readByType = reader._parseByType;
  reader._parseByType = function (this: ParserInternals, type: string) {
    // Called only by _parseProperties, just after it read the property identifier.
    const id = this._list.readUInt8(this._pos - 1);
    const raw = type === 'byte' && this._pos < this._list.length ? this._list.readUInt8(this._pos) : 0;
    const value = readByType.call(this, type);
    if (raw > 1) this._emitError(new ProtocolErrorValue(`property value ${raw} where 0 or 1 is allowed`));
    if (firstValues.has(id) && !firstValues.get(id))
      this._emitError(new ProtocolErrorValue(`property 0x${id.toString(16)} appears more than once`));
    if (!firstValues.has(id)) firstValues.set(id, value);
    return value;
  };
}

/**
 * Decodes one WebSocket text frame of the wire contract into MQTT packets.
 * `protocolVersion` is the connection's (unknown before CONNECT); a CONNECT
 * inside the frame sets it for the packets that follow. Packets decoded
 * before a fault are returned too, so they are handled before the close.
 *
 * @example
 * const result = decodeFrame('EAwABE1RVFQEAgA8AAA=', undefined);
 * if (result.ok) result.packets[0].cmd; // 'connect'
 */
export function decodeFrame(
  text: string,
  protocolVersion: ProtocolVersion | undefined,
  maxPacketSize: number,
): DecodeResult {
  // The client transport and the bridge apply the same rule, so both ends refuse the same frames.
  const fault = frameTextFault(text);
  if (fault !== undefined) return { ok: false, packets: [], reason: fault, fault: 'malformed' };
  const decoded = Buffer.from(text, 'base64');
  // mqtt-packet reads a Remaining Length in more bytes than needed; the wire framer does not. Only
  // the packets before such a length are parsed, so both ends refuse the same frames.
  const lengths = lengthFault(decoded);
  const bytes = lengths ? decoded.subarray(0, lengths.at) : decoded;
  const settings = { protocolVersion: protocolVersion ?? 4 };
  // The parser reads this object for each packet; a CONNECT switches it to its own version.
  const parser = mqttPacket.parser(settings);
  checkValues(parser);
  const packets: Packet[] = [];
  let failure: string | undefined;
  let kind: DecodeFault = 'malformed';
  parser.on('packet', (packet: Packet) => {
    if (packet.cmd === 'connect' && (packet.protocolVersion === 4 || packet.protocolVersion === 5)) {
      settings.protocolVersion = packet.protocolVersion;
    }
    // The size is the whole packet: fixed header byte, Remaining Length (7 bits a byte) and the rest.
    if (1 + Math.ceil((packet.length ?? 0).toString(2).length / 7) + (packet.length ?? 0) > maxPacketSize) {
      if (failure === undefined) {
        failure = `packet of ${packet.length} bytes exceeds the maximum`;
        kind = 'too-large';
      }
    }
    if (lacksPacketId(packet))
      failure ??= `malformed packet: ${packet.cmd.toUpperCase()} without a packet identifier`;
    if (!failure) packets.push(packet);
  });
  parser.on('error', (error: Error) => {
    if (failure !== undefined) return;
    failure = `malformed packet: ${error.message}`;
    // [MQTT-3.1.2-2] an unknown level is answered with a CONNACK, not only a close.
    if (error.message === 'Invalid protocol version' && packets.length === 0) kind = 'protocol-level';
    if (error instanceof ProtocolErrorValue || PROTOCOL_ERROR_MESSAGES.has(error.message))
      kind = 'protocol-error';
  });
  const leftover = parser.parse(bytes);
  if (lengths) failure ??= `malformed packet: ${lengths.reason}`;
  // mqtt-packet consumes a fixed header and Remaining Length before the rest arrives: a started packet is a cut one.
  if (!failure && (leftover > 0 || (parser as unknown as { packet: { cmd: unknown } }).packet.cmd !== null))
    failure = 'frame ends inside a packet';
  return failure ? { ok: false, packets, reason: failure, fault: kind } : { ok: true, packets };
}

const PACKETS_WITH_ID = new Set([
  'puback',
  'pubrec',
  'pubrel',
  'pubcomp',
  'subscribe',
  'suback',
  'unsubscribe',
  'unsuback',
]);

/**
 * [MQTT-2.3.1-1] a packet that needs a packet identifier and has none: mqtt-packet reads a PUBACK,
 * PUBREC, PUBREL, PUBCOMP or QoS > 0 PUBLISH too short to hold one as packet id -1.
 */
function lacksPacketId(packet: Packet): boolean {
  const needed = packet.cmd === 'publish' ? packet.qos > 0 : PACKETS_WITH_ID.has(packet.cmd);
  const id = (packet as { messageId?: number }).messageId;
  return needed && (id === undefined || id < 0);
}

/**
 * The first packet whose Remaining Length breaks [MQTT-1.5.5-1] (more bytes than needed, or more
 * than four): where it starts and why. A frame that merely ends inside a packet is left to the parser.
 */
function lengthFault(bytes: Uint8Array): { at: number; reason: string } | undefined {
  let at = 0;
  while (at < bytes.length) {
    let size: number | undefined;
    try {
      size = packetSize(bytes.subarray(at, at + 5));
    } catch (error) {
      return { at, reason: (error as Error).message };
    }
    if (size === undefined) return undefined;
    at += size;
  }
  return undefined;
}

/**
 * Encodes packets as one text frame of the wire contract.
 *
 * @example
 * encodeFrame([{ cmd: 'pingresp' }], 4); // '0AA='
 */
export function encodeFrame(packets: readonly Packet[], protocolVersion: ProtocolVersion): string {
  return Buffer.concat(packets.map((p) => mqttPacket.generate(p, { protocolVersion }))).toString('base64');
}
