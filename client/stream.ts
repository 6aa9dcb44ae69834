/**
 * A byte stream of MQTT packets carried over the Nimbus wire contract, shaped the way MQTT.js
 * expects a transport: a Duplex (from `readable-stream`, so browser bundles need no Node core).
 */
import { Buffer } from 'buffer';
import { Duplex } from 'readable-stream';
import {
  decodeFrame,
  encodeFrame,
  type NimbusFramingError,
  PacketFramer,
  PacketTooLargeError,
  planFrames,
  SUBPROTOCOL,
  splitPackets,
} from '../shared/protocol/wire.js';
import {
  CONNECTING,
  maxPacketBytesFor,
  OPEN,
  openWebSocket,
  sendMessage,
  type WebSocketConstructor,
  type WebSocketLike,
} from './websocket.js';

/** Close codes after which the stream just ends (MQTT.js then reconnects) rather than errors. */
const ORDINARY_CLOSE_CODES = new Set([
  1000, // normal
  1001, // going away: API Gateway's idle and 2-hour limits, deployments
  1005, // no status sent
  1006, // dropped without a close frame; a network error usually came first
]);

/** Error codes carried by {@link NimbusTransportError}. */
export type NimbusTransportErrorCode =
  | 'ERR_NIMBUS_BINARY_FRAME'
  | 'ERR_NIMBUS_SUBPROTOCOL'
  | 'ERR_NIMBUS_CLOSED'
  | 'ERR_NIMBUS_WEBSOCKET';

/** A transport failure. It carries a `code` so MQTT.js forwards it to the client's 'error' event. */
export class NimbusTransportError extends Error {
  readonly code: NimbusTransportErrorCode;
  /** The WebSocket close code, for ERR_NIMBUS_CLOSED. */
  readonly closeCode: number | undefined;
  constructor(code: NimbusTransportErrorCode, message: string, closeCode?: number) {
    super(message);
    this.name = 'NimbusTransportError';
    this.code = code;
    this.closeCode = closeCode;
  }
}

/** Options of {@link NimbusStream}. MQTT.js's `IClientOptions` fits: unknown keys are ignored. */
export interface NimbusStreamOptions {
  /** WebSocket class to use instead of `ws` (Node) or `globalThis.WebSocket` (browsers). */
  WebSocket?: WebSocketConstructor;
  /** Options for the `ws` constructor (headers, agent, TLS); ignored by other implementations. */
  wsOptions?: object;
}

/**
 * Passes an error through, giving it a code if it has none: MQTT.js silently drops stream errors
 * without one, and a refused handshake (say, auth failing at $connect) must reach the user.
 */
function withCode(error: unknown, fallback: string): Error {
  if (!(error instanceof Error)) return new NimbusTransportError('ERR_NIMBUS_WEBSOCKET', fallback);
  const coded = error as Error & { code?: unknown };
  if (coded.code === undefined) coded.code = 'ERR_NIMBUS_WEBSOCKET';
  return error;
}

function closeSocket(socket: WebSocketLike, code: number, reason: string): void {
  if (socket.readyState !== CONNECTING && socket.readyState !== OPEN) return;
  try {
    socket.close(code, reason);
  } catch {
    // Browsers only let scripts send 1000 or 3000-4999; the reason is still worth a plain close.
    socket.close();
  }
}

/**
 * Duplex stream of raw MQTT bytes over one WebSocket speaking the Nimbus wire contract.
 *
 * Writes may split packets anywhere (MQTT.js writes one packet in several pieces); whole packets
 * completed in the same tick are sent together in one text frame of at most `MAX_FRAME_BYTES` raw
 * bytes (`BROWSER_MAX_FRAME_BYTES` where the WebSocket cannot fragment a message).
 * A packet that cannot fit in one frame is not sent: the stream emits a {@link PacketTooLargeError}
 * and stays open. Writes before the socket opens are held (their callbacks fire on open; that is
 * the only backpressure, after it the WebSocket buffers). Inbound frames must be padded base64 of
 * whole packets; a binary frame or malformed text destroys the stream with an error. The stream
 * ends when the socket closes, which is what MQTT.js watches to reconnect.
 *
 * @example
 * const stream = new NimbusStream('wss://abc.execute-api.eu-west-1.amazonaws.com/prod');
 * stream.on('data', (bytes) => console.log('received', bytes.length, 'bytes'));
 * stream.write(Buffer.from([0xc0, 0x00])); // PINGREQ
 */
export class NimbusStream extends Duplex {
  /** The WebSocket, once created (creating one is asynchronous in Node: `ws` is loaded on demand). */
  webSocket: WebSocketLike | undefined;
  private readonly framer = new PacketFramer();
  /** Whole packets waiting for the next flush. */
  private outbox: Uint8Array[] = [];
  /** Write callbacks held until the socket opens, so MQTT.js does not pile up writes meanwhile. */
  private unsent: Array<() => void> = [];
  private flushQueued = false;
  private ending = false;

  constructor(url: string, options: NimbusStreamOptions = {}) {
    super({ allowHalfOpen: false });
    openWebSocket(url, [SUBPROTOCOL], options.WebSocket, options.wsOptions as Record<string, unknown>).then(
      (socket) => this.attach(socket),
      (error: unknown) => this.destroy(withCode(error, 'WebSocket could not be created')),
    );
  }

  private attach(socket: WebSocketLike): void {
    this.webSocket = socket;
    // Listeners go on first: closing a connecting `ws` socket emits 'error', which must be handled.
    socket.addEventListener('open', () => this.onOpen());
    socket.addEventListener('message', (event) => this.onMessage(event.data));
    socket.addEventListener('close', (event) => this.onClose(event.code, event.reason));
    socket.addEventListener('error', (event) => this.onError(event));
    if (this.destroyed || this.ending) closeSocket(socket, 1000, '');
    else if (socket.readyState === OPEN) this.onOpen();
  }

  private onOpen(): void {
    const socket = this.webSocket;
    if (this.destroyed || !socket) return;
    if (socket.protocol !== SUBPROTOCOL) {
      this.fail(
        new NimbusTransportError(
          'ERR_NIMBUS_SUBPROTOCOL',
          `server accepted subprotocol '${socket.protocol}', not '${SUBPROTOCOL}'`,
        ),
        1002,
      );
      return;
    }
    const callbacks = this.unsent;
    this.unsent = [];
    // The Writable hands over its buffered writes synchronously here, so they join the first frame.
    for (const callback of callbacks) callback();
    this.flush();
  }

  private isOpen(): boolean {
    return this.webSocket !== undefined && this.webSocket.readyState === OPEN;
  }

  private onMessage(data: unknown): void {
    if (this.destroyed) return;
    if (typeof data !== 'string') {
      this.fail(
        new NimbusTransportError(
          'ERR_NIMBUS_BINARY_FRAME',
          'server sent a binary frame; the wire contract allows text only',
        ),
        1003,
      );
      return;
    }
    let bytes: Uint8Array;
    try {
      bytes = decodeFrame(data);
      splitPackets(bytes);
    } catch (error) {
      this.fail(error as NimbusFramingError, 1007);
      return;
    }
    // A WebSocket cannot be paused from a browser, so inbound backpressure is not propagated.
    this.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }

  private onClose(code: number, reason: string): void {
    if (this.destroyed) return;
    if (!this.ending && !ORDINARY_CLOSE_CODES.has(code)) {
      const detail = reason ? `: ${reason}` : '';
      this.destroy(
        new NimbusTransportError('ERR_NIMBUS_CLOSED', `WebSocket closed with code ${code}${detail}`, code),
      );
      return;
    }
    this.push(null);
    // Keep bytes already received (a DISCONNECT with a reason code, say) until they are read.
    if (this.readableLength === 0) this.destroy();
    else this.once('end', () => this.destroy());
  }

  private onError(event: { error?: unknown; message?: string }): void {
    if (this.destroyed) return;
    // Closing during the handshake makes `ws` report an error that is no news to someone ending.
    if (this.ending) {
      this.destroy();
      return;
    }
    // Browsers pass a bare Event that tells nothing about the cause.
    this.destroy(withCode(event.error, event.message || 'WebSocket error'));
  }

  private fail(error: Error, closeCode: number): void {
    if (this.webSocket) closeSocket(this.webSocket, closeCode, error.message.slice(0, 120));
    this.destroy(error);
  }

  override _read(): void {
    // Data is pushed as frames arrive.
  }

  override _write(chunk: unknown, _encoding: string, callback: (error?: Error | null) => void): void {
    this._writev([{ chunk }], callback);
  }

  override _writev(chunks: Array<{ chunk: unknown }>, callback: (error?: Error | null) => void): void {
    try {
      for (const { chunk } of chunks) {
        // decodeStrings (the default) turns strings into Buffers before they get here.
        for (const packet of this.framer.push(chunk as Uint8Array)) this.outbox.push(packet);
      }
    } catch (error) {
      callback(error as Error);
      return;
    }
    if (this.isOpen()) callback();
    else this.unsent.push(callback);
    if (!this.flushQueued) {
      this.flushQueued = true;
      // Runs after the current tick's writes (including mqtt-packet's uncork), so they share a frame.
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushQueued = false;
    const socket = this.webSocket;
    if (this.destroyed || !socket || socket.readyState !== OPEN) return; // onOpen flushes
    const { frames, oversized } = planFrames(this.outbox, maxPacketBytesFor(socket));
    this.outbox = [];
    for (const frame of frames) sendMessage(socket, encodeFrame(frame));
    // Not fatal: the connection is fine, only this packet could never pass the gateway.
    for (const packet of oversized) this.emit('error', new PacketTooLargeError(packet));
  }

  override _final(callback: (error?: Error | null) => void): void {
    // All write callbacks have fired, so any write found the socket open: send what is queued now.
    this.ending = true;
    this.flush();
    if (this.webSocket) closeSocket(this.webSocket, 1000, '');
    callback();
  }

  override _destroy(error: Error | null, callback: (error: Error | null) => void): void {
    if (this.webSocket) closeSocket(this.webSocket, 1000, '');
    this.outbox = [];
    callback(error);
  }
}
