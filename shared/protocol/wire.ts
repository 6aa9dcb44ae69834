/**
 * The Nimbus wire contract, in one place for the broker, the client transport and the bridge: every
 * WebSocket message is a text frame holding the padded standard base64 (RFC 4648 §4) of one or more
 * whole MQTT control packets, under API Gateway's size limits. Pure functions and constants, no I/O.
 *
 * Browser-safe (the client transport is bundled for browsers): no `node:` imports, and `buffer`
 * resolves to Node's built-in module in Node and to the npm polyfill in browser bundles.
 */
import { Buffer } from 'buffer';

/** The WebSocket subprotocol of the wire contract. */
export const SUBPROTOCOL = 'mqtt';

/** Largest WebSocket message API Gateway accepts: 128 KB (a larger one is closed with 1009). */
export const GATEWAY_MESSAGE_LIMIT = 128 * 1024;

/** Largest WebSocket frame API Gateway accepts: 32 KB (1009 otherwise); longer messages must be fragmented. */
export const GATEWAY_FRAME_LIMIT = 32 * 1024;

/**
 * Most bytes of packets in one message: what 128 KB of base64 decodes to (98,304). Also the
 * broker's default maximum packet size.
 */
export const MAX_FRAME_BYTES = (GATEWAY_MESSAGE_LIMIT / 4) * 3;

/**
 * Most bytes of packets in one message from a WebSocket that cannot fragment a message, as in
 * browsers: what one 32 KB frame of base64 decodes to (24,576).
 */
export const BROWSER_MAX_FRAME_BYTES = (GATEWAY_FRAME_LIMIT / 4) * 3;

/** Error codes carried by {@link NimbusFramingError}. */
export type NimbusFramingErrorCode =
  | 'ERR_NIMBUS_MALFORMED_LENGTH'
  | 'ERR_NIMBUS_PACKET_TOO_LARGE'
  | 'ERR_NIMBUS_BAD_FRAME';

/**
 * A violation of the wire contract. It has a `code` because MQTT.js only forwards stream errors
 * that carry one to the client's 'error' event.
 */
export class NimbusFramingError extends Error {
  readonly code: NimbusFramingErrorCode;
  constructor(code: NimbusFramingErrorCode, message: string) {
    super(message);
    this.name = 'NimbusFramingError';
    this.code = code;
  }
}

/** Raised instead of sending a packet whose frame could never pass API Gateway. */
export class PacketTooLargeError extends NimbusFramingError {
  /** Size of the refused packet in bytes. */
  readonly size: number;
  /** MQTT control packet type (3 = PUBLISH). */
  readonly packetType: number;
  /** Packet identifier, when the packet has one (QoS > 0 PUBLISH, SUBSCRIBE, UNSUBSCRIBE). */
  readonly messageId: number | undefined;
  constructor(packet: Uint8Array) {
    super(
      'ERR_NIMBUS_PACKET_TOO_LARGE',
      `MQTT packet of ${packet.length} bytes exceeds the gateway's ${GATEWAY_MESSAGE_LIMIT / 1024} KB message limit ` +
        `(at most ${MAX_FRAME_BYTES} bytes of packets per WebSocket message once base64-encoded); not sent`,
    );
    this.name = 'PacketTooLargeError';
    this.size = packet.length;
    this.packetType = packet[0] >> 4;
    this.messageId = packetIdentifier(packet);
  }
}

/** What the fixed header says about the packet at the head of the stream. */
interface Header {
  /** Fixed header length: 1 type byte + 1..4 Remaining Length bytes. */
  headerLength: number;
  remainingLength: number;
}

/**
 * Reads the Remaining Length varint that starts at index 1. `byteAt` returns undefined past the end
 * of what has arrived so far.
 */
function readHeader(byteAt: (index: number) => number | undefined): Header | undefined {
  let value = 0;
  let multiplier = 1;
  for (let i = 1; i <= 4; i++) {
    const byte = byteAt(i);
    if (byte === undefined) return undefined;
    // A zero continuation byte means the varint used more bytes than needed (MQTT-1.5.5-1).
    if (i > 1 && byte === 0) {
      throw new NimbusFramingError(
        'ERR_NIMBUS_MALFORMED_LENGTH',
        'Remaining Length is not minimally encoded',
      );
    }
    value += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return { headerLength: i + 1, remainingLength: value };
    multiplier *= 128;
  }
  throw new NimbusFramingError('ERR_NIMBUS_MALFORMED_LENGTH', 'Remaining Length is longer than 4 bytes');
}

/**
 * Size of the whole packet (fixed header included) whose first bytes are `head`, or undefined while
 * its Remaining Length is incomplete.
 * @throws {NimbusFramingError} on a malformed Remaining Length.
 * @example
 * packetSize([0x30, 0x05]); // 7
 * packetSize([0x30, 0x80]); // undefined: more length bytes follow
 */
export function packetSize(head: ArrayLike<number>): number | undefined {
  const header = readHeader((i) => (i < head.length ? head[i] : undefined));
  return header && header.headerLength + header.remainingLength;
}

/**
 * Reassembles whole MQTT control packets from arbitrary byte chunks. MQTT.js (mqtt-packet's
 * `writeToStream`) writes one packet in several writes (header, length, topic, payload), but a frame
 * must hold whole packets only. After a malformed length the framer stays failed: the byte stream
 * has lost its packet boundaries.
 *
 * @example
 * const framer = new PacketFramer();
 * framer.push(Uint8Array.of(0xc0)); // []  (PINGREQ header only)
 * framer.push(Uint8Array.of(0x00)); // [Uint8Array [0xc0, 0x00]]
 */
export class PacketFramer {
  private chunks: Uint8Array[] = [];
  /** Offset of the first unconsumed byte in chunks[0]. */
  private offset = 0;
  private buffered = 0;
  /** Size of the packet at the head, once its fixed header has arrived. */
  private needed: number | undefined;
  private failure: NimbusFramingError | undefined;

  /** Bytes received that do not yet form a whole packet. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /**
   * Adds a chunk and returns the packets it completes, in order (often none).
   * @throws {NimbusFramingError} on a malformed Remaining Length, now or earlier.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    if (this.failure) throw this.failure;
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const packets: Uint8Array[] = [];
    try {
      for (;;) {
        if (this.needed === undefined) {
          const header = readHeader((i) => this.byteAt(i));
          if (!header) break;
          this.needed = header.headerLength + header.remainingLength;
        }
        if (this.buffered < this.needed) break;
        packets.push(this.take(this.needed));
        this.needed = undefined;
      }
    } catch (error) {
      if (error instanceof NimbusFramingError) this.failure = error;
      throw error;
    }
    return packets;
  }

  private byteAt(index: number): number | undefined {
    let i = index + this.offset;
    for (const chunk of this.chunks) {
      if (i < chunk.length) return chunk[i];
      i -= chunk.length;
    }
    return undefined;
  }

  /** Copies out the first `size` buffered bytes (copying keeps packets independent of callers' buffers). */
  private take(size: number): Uint8Array {
    const out = new Uint8Array(size);
    let filled = 0;
    while (filled < size) {
      const chunk = this.chunks[0];
      const n = Math.min(chunk.length - this.offset, size - filled);
      out.set(chunk.subarray(this.offset, this.offset + n), filled);
      filled += n;
      this.offset += n;
      if (this.offset === chunk.length) {
        this.chunks.shift();
        this.offset = 0;
      }
    }
    this.buffered -= size;
    return out;
  }
}

/**
 * Splits bytes that must hold whole packets only (the content of one frame).
 * @throws {NimbusFramingError} when the bytes are empty, end inside a packet or have a malformed length.
 * @example
 * splitPackets(Uint8Array.of(0xc0, 0x00, 0xd0, 0x00)); // [PINGREQ, PINGRESP]
 */
export function splitPackets(bytes: Uint8Array): Uint8Array[] {
  const framer = new PacketFramer();
  const packets = framer.push(bytes);
  if (packets.length === 0 || framer.pendingBytes > 0) {
    throw new NimbusFramingError(
      'ERR_NIMBUS_BAD_FRAME',
      `frame does not hold whole MQTT packets (${framer.pendingBytes} bytes of an incomplete packet)`,
    );
  }
  return packets;
}

/**
 * Encodes whole packets as the text of one frame (padded standard base64).
 * @throws {RangeError} when the packets add up to more than {@link MAX_FRAME_BYTES}.
 * @example
 * encodeFrame([Uint8Array.of(0xc0, 0x00)]); // 'wAA='
 */
export function encodeFrame(packets: Uint8Array[]): string {
  let total = 0;
  for (const packet of packets) total += packet.length;
  if (total > MAX_FRAME_BYTES) {
    throw new RangeError(
      `frame of ${total} bytes exceeds ${MAX_FRAME_BYTES} bytes (${GATEWAY_MESSAGE_LIMIT / 1024} KB once base64-encoded)`,
    );
  }
  const bytes = Buffer.allocUnsafe(total);
  let at = 0;
  for (const packet of packets) {
    bytes.set(packet, at);
    at += packet.length;
  }
  return bytes.toString('base64');
}

// Standard alphabet, groups of four, optional padded tail; no whitespace, no URL-safe characters.
const PADDED_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/**
 * Why `text` cannot be the text of a frame, or undefined when it can. The contract's one base64 rule,
 * applied by every decoder on both sides: the canonical padded standard encoding (RFC 4648 §4) of at
 * least one byte. A text whose pad bits are not zero ('QR==') is not the standard encoding of any
 * bytes, so it is refused, although lenient decoders read it as the same bytes as 'QQ=='.
 *
 * @example
 * frameTextFault('wAA='); // undefined
 * frameTextFault('wAB='); // 'frame is not canonical base64 (non-zero pad bits)'
 */
export function frameTextFault(text: string): string | undefined {
  if (text.length === 0) return 'empty frame: a frame holds the base64 of at least one MQTT packet';
  if (!PADDED_BASE64.test(text)) return 'frame is not padded standard base64 (RFC 4648 §4)';
  // The character before the padding carries 4 ('==') or 2 ('=') bits past the data: zero in the standard encoding.
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const unusedBits = ALPHABET.indexOf(text[text.length - 1 - padding]) % (padding === 2 ? 16 : 4);
  if (padding > 0 && unusedBits !== 0) return 'frame is not canonical base64 (non-zero pad bits)';
  return undefined;
}

/**
 * Decodes the text of one frame into the bytes it carries. Strict (see {@link frameTextFault}), so a
 * peer that drifts from the contract is caught here rather than by a confused MQTT parser.
 * @throws {NimbusFramingError} on empty, unpadded, URL-safe, whitespace-laden or non-canonical input.
 * @example
 * decodeFrame('wAA='); // Uint8Array [0xc0, 0x00]
 * decodeFrame('wAA');  // throws: not padded
 */
export function decodeFrame(text: string): Uint8Array {
  const fault = frameTextFault(text);
  if (fault !== undefined) throw new NimbusFramingError('ERR_NIMBUS_BAD_FRAME', fault);
  const bytes = Buffer.from(text, 'base64');
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

/**
 * Cuts the text of one message into the WebSocket frames it is sent in, each at most `limit`
 * characters, as API Gateway requires of messages over 32 KB.
 * @example
 * messageFragments('x'.repeat(40_000)).map((f) => f.length); // [32768, 7232]
 */
export function messageFragments(text: string, limit: number = GATEWAY_FRAME_LIMIT): string[] {
  if (text.length <= limit) return [text];
  const fragments: string[] = [];
  for (let at = 0; at < text.length; at += limit) fragments.push(text.slice(at, at + limit));
  return fragments;
}

/**
 * Groups packets, in order, into frames of at most `limit` bytes each; packets that can never fit
 * are returned separately instead.
 * @example
 * const { frames, oversized } = planFrames(packets);
 * for (const frame of frames) socket.send(encodeFrame(frame));
 */
export function planFrames(
  packets: Uint8Array[],
  limit: number = MAX_FRAME_BYTES,
): { frames: Uint8Array[][]; oversized: Uint8Array[] } {
  const frames: Uint8Array[][] = [];
  const oversized: Uint8Array[] = [];
  let current: Uint8Array[] = [];
  let size = 0;
  for (const packet of packets) {
    if (packet.length > limit) {
      oversized.push(packet);
      continue;
    }
    if (size + packet.length > limit) {
      frames.push(current);
      current = [];
      size = 0;
    }
    current.push(packet);
    size += packet.length;
  }
  if (current.length > 0) frames.push(current);
  return { frames, oversized };
}

/** Packet identifier of a QoS > 0 PUBLISH, SUBSCRIBE or UNSUBSCRIBE: what MQTT.js tracks as in flight. */
function packetIdentifier(packet: Uint8Array): number | undefined {
  const type = packet[0] >> 4;
  let at = 1;
  while (at < 5 && (packet[at] & 0x80) !== 0) at++;
  at++;
  if (type === 3) {
    if (((packet[0] >> 1) & 3) === 0) return undefined;
    at += 2 + ((packet[at] << 8) | packet[at + 1]);
  } else if (type !== 8 && type !== 10) {
    return undefined;
  }
  if (at + 1 >= packet.length) return undefined;
  return (packet[at] << 8) | packet[at + 1];
}
