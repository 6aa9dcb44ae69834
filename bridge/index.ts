/**
 * The TCP bridge: lets stock MQTT clients (mosquitto_pub/sub, device SDKs, conformance suites) use a
 * Nimbus broker. It accepts plain MQTT over TCP and, for each TCP connection, opens one WebSocket to
 * the Nimbus endpoint speaking the wire contract (subprotocol `mqtt`, padded base64 text frames of
 * whole packets). One TCP connection is one WebSocket connection is one MQTT session, so takeover,
 * wills and keep-alive behave as they do for a client connected directly.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { type RawData, WebSocket } from 'ws';
import {
  decodeFrame,
  encodeFrame,
  MAX_FRAME_BYTES,
  messageFragments,
  PacketFramer,
  packetSize,
  planFrames,
  SUBPROTOCOL,
  splitPackets,
} from '../shared/protocol/wire.js';

/** Options of {@link startBridge}. */
export interface BridgeOptions {
  /** TCP port MQTT clients connect to; 0 picks a free one. */
  listenPort: number;
  /** Address to bind. @default '127.0.0.1' */
  host?: string;
  /** The Nimbus endpoint: the API Gateway stage URL (wss://…) or the emulator's ws://127.0.0.1:1884. */
  url: string;
  /** Where connection and error lines go (one line per connection opened and closed). @default stderr */
  log?: (message: string) => void;
  /** Log only connections closed for a problem (too large, malformed, refused…), not every open and close. */
  quiet?: boolean;
}

/** A running bridge. */
export interface Bridge {
  /** The TCP port it listens on (the one picked when `listenPort` was 0). */
  readonly port: number;
  readonly host: string;
  /** The Nimbus endpoint each connection is carried to. */
  readonly url: string;
  /** Bridged connections currently open (not yet closing). */
  readonly connections: number;
  /** Stops listening, closes every bridged connection (WebSocket close 1001) and waits for them to end. */
  stop(): Promise<void>;
}

/** Outbound WebSocket bytes buffered above which the TCP client is paused, and below which it resumes. */
const HIGH_WATER = 1 << 20;
const LOW_WATER = 1 << 18;
/** WebSocket close codes that end a connection in the ordinary way: normal, going away, no status. */
const ORDINARY_CLOSE_CODES = new Set([1000, 1001, 1005]);
/** How long a TCP peer gets to close after the bridge ended its side, and a WebSocket after stop(). */
const CLOSE_GRACE_MS = 2_000;

const PACKET_NAMES = [
  'reserved',
  'CONNECT',
  'CONNACK',
  'PUBLISH',
  'PUBACK',
  'PUBREC',
  'PUBREL',
  'PUBCOMP',
  'SUBSCRIBE',
  'SUBACK',
  'UNSUBSCRIBE',
  'UNSUBACK',
  'PINGREQ',
  'PINGRESP',
  'DISCONNECT',
  'AUTH',
];

function tooLarge(head: readonly number[], size: number | undefined): string {
  const name = PACKET_NAMES[head[0] >> 4] ?? 'MQTT';
  const amount = size === undefined ? 'more than' : `${size.toLocaleString('en-US')} bytes,`;
  return (
    `${name} packet too large for the gateway (${amount} limit ${MAX_FRAME_BYTES.toLocaleString('en-US')} ` +
    `bytes per WebSocket message once base64-encoded); closing this TCP connection`
  );
}

/** One TCP client carried over one WebSocket. */
class BridgedConnection {
  readonly finished: Promise<void>;
  private readonly framer = new PacketFramer();
  private readonly ws: WebSocket;
  private readonly peer: string;
  /** First bytes (up to 5) of the incomplete packet the framer holds, to name it if it grows too large. */
  private head: number[] = [];
  private done = false;
  private tcpClosed = false;
  private wsClosed = false;
  private tcpPaused = false;
  private resolveFinished!: () => void;

  constructor(
    private readonly tcp: Socket,
    url: string,
    private readonly log: (message: string) => void,
    /** Connections not yet shutting down, this one included until it does. */
    private readonly live: Set<BridgedConnection>,
    private readonly quiet: boolean,
  ) {
    live.add(this);
    this.peer = `${tcp.remoteAddress}:${tcp.remotePort}`;
    this.finished = new Promise((resolve) => {
      this.resolveFinished = resolve;
    });
    tcp.setNoDelay(true);
    // No 'data' listener until the WebSocket is open: the TCP socket stays paused, bytes wait in the kernel.
    tcp.on('end', () => this.shutdown('the client closed the TCP connection', 1000, true));
    tcp.on('error', (error: NodeJS.ErrnoException) =>
      this.shutdown(`TCP error ${error.code ?? error.message}`),
    );
    tcp.on('close', () => {
      this.tcpClosed = true;
      this.shutdown('the TCP connection closed', 1000, true);
      this.maybeFinished();
    });

    this.ws = new WebSocket(url, [SUBPROTOCOL], { perMessageDeflate: false, handshakeTimeout: 10_000 });
    this.ws.on('open', () => this.onOpen());
    this.ws.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    this.ws.on('error', (error) => this.shutdown(`WebSocket error: ${error.message}`));
    this.ws.on('close', (code, reason) => {
      this.wsClosed = true;
      const detail = reason.length > 0 ? ` ${reason.toString()}` : '';
      this.shutdown(
        `the broker closed the WebSocket (${code}${detail})`,
        1000,
        ORDINARY_CLOSE_CODES.has(code),
      );
      this.maybeFinished();
    });
  }

  private onOpen(): void {
    if (this.done) return;
    if (this.ws.protocol !== SUBPROTOCOL) {
      this.shutdown(`the endpoint accepted subprotocol '${this.ws.protocol}', not '${SUBPROTOCOL}'`, 1002);
      return;
    }
    if (!this.quiet) this.log(`${this.peer} connected (${this.live.size} open)`);
    this.tcp.on('data', (chunk: Buffer) => this.onTcpData(chunk));
  }

  /** TCP bytes → whole MQTT packets → text frames; the packets one chunk completes share frames. */
  private onTcpData(chunk: Buffer): void {
    if (this.done) return;
    let packets: Uint8Array[];
    try {
      packets = this.framer.push(chunk);
    } catch (error) {
      this.shutdown(`malformed MQTT from the client (${(error as Error).message})`, 1002);
      return;
    }
    const first = packets.findIndex((packet) => packet.length > MAX_FRAME_BYTES);
    const sendable = first < 0 ? packets : packets.slice(0, first);
    for (const frame of planFrames(sendable).frames) this.send(encodeFrame(frame));
    if (first >= 0) {
      const packet = packets[first];
      this.shutdown(tooLarge([...packet.subarray(0, 5)], packet.length), 1009);
      return;
    }
    this.trackHead(chunk);
    // Refuse as soon as the packet under way is certain to be too large, rather than buffering it all.
    if (this.framer.pendingBytes > MAX_FRAME_BYTES) {
      this.shutdown(tooLarge(this.head, packetSize(this.head)), 1009);
    }
  }

  private trackHead(chunk: Buffer): void {
    const pending = this.framer.pendingBytes;
    if (pending === 0) {
      this.head = [];
    } else if (pending <= chunk.length) {
      // The incomplete packet starts inside this chunk.
      const start = chunk.length - pending;
      this.head = [...chunk.subarray(start, start + 5)];
    } else {
      // It started earlier and this whole chunk belongs to it.
      for (let i = 0; this.head.length < 5 && i < chunk.length; i++) this.head.push(chunk[i]);
    }
  }

  private send(text: string): void {
    // Frames of at most 32 KB, as API Gateway requires; the callback fires once the last is written.
    const fragments = messageFragments(text);
    for (const fragment of fragments.slice(0, -1)) this.ws.send(fragment, { fin: false });
    this.ws.send(fragments[fragments.length - 1], { fin: true }, () => {
      if (this.tcpPaused && this.ws.bufferedAmount < LOW_WATER) {
        this.tcpPaused = false;
        this.tcp.resume();
      }
    });
    if (!this.tcpPaused && this.ws.bufferedAmount > HIGH_WATER) {
      this.tcpPaused = true;
      this.tcp.pause();
    }
  }

  /** Inbound text frame → base64-decoded packets → TCP. */
  private onFrame(data: RawData, isBinary: boolean): void {
    if (this.done) return;
    if (isBinary) {
      this.shutdown('the endpoint sent a binary frame (the wire contract allows text only)', 1003);
      return;
    }
    let bytes: Uint8Array;
    try {
      bytes = decodeFrame(data.toString());
      splitPackets(bytes);
    } catch (error) {
      this.shutdown(`the endpoint sent a bad frame (${(error as Error).message})`, 1007);
      return;
    }
    if (!this.tcp.write(bytes)) {
      this.ws.pause();
      this.tcp.once('drain', () => this.ws.resume());
    }
  }

  /**
   * Closes both sides once, for the first reason: the WebSocket with `wsCode` (after the frames already
   * queued), the TCP connection with an orderly end (after the bytes already written).
   */
  shutdown(reason: string, wsCode = 1000, ordinary = false): void {
    if (this.done) return;
    this.done = true;
    this.live.delete(this);
    if (!ordinary || !this.quiet) this.log(`${this.peer} closed: ${reason} (${this.live.size} open)`);
    if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    else if (this.ws.readyState === WebSocket.OPEN) this.ws.close(wsCode);
    if (!this.tcp.destroyed) {
      this.tcp.end();
      // Keep draining so a client still sending cannot stall the close; then give it a moment.
      this.tcp.resume();
      setTimeout(() => this.tcp.destroy(), CLOSE_GRACE_MS).unref();
    }
  }

  /** Ends the connection now: used when the bridge stops. */
  kill(): void {
    this.shutdown('the bridge is stopping', 1001, true);
    this.tcp.destroy();
    setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref();
  }

  private maybeFinished(): void {
    if (this.tcpClosed && this.wsClosed) this.resolveFinished();
  }
}

/**
 * Starts a bridge: plain MQTT over TCP on `host:listenPort`, each connection carried over its own
 * WebSocket to the Nimbus endpoint at `url`. Resolves once it listens.
 *
 * @example
 * const bridge = await startBridge({ listenPort: 1883, url: 'ws://127.0.0.1:1884' });
 * // mosquitto_sub -h 127.0.0.1 -p 1883 -t 'home/#'
 * await bridge.stop();
 */
export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const host = options.host ?? '127.0.0.1';
  const protocol = new URL(options.url).protocol;
  if (protocol !== 'ws:' && protocol !== 'wss:') {
    throw new TypeError(`the Nimbus URL starts with wss:// (or ws:// locally), not ${protocol}//`);
  }
  const log = options.log ?? ((message: string) => process.stderr.write(`[bridge] ${message}\n`));
  const live = new Set<BridgedConnection>();
  /** Connections whose TCP socket or WebSocket has not closed yet. */
  const unfinished = new Set<BridgedConnection>();
  const server: Server = createServer((tcp) => {
    const connection = new BridgedConnection(tcp, options.url, log, live, options.quiet === true);
    unfinished.add(connection);
    void connection.finished.then(() => unfinished.delete(connection));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listenPort, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => log(`listener error: ${error.message}`));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the bridge has no TCP port');
  let stopped: Promise<void> | undefined;
  return {
    port: address.port,
    host,
    url: options.url,
    get connections() {
      return live.size;
    },
    stop() {
      stopped ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        const finishing = [...unfinished].map((connection) => connection.finished);
        for (const connection of unfinished) connection.kill();
        await Promise.all([closed, ...finishing]);
      })();
      return stopped;
    },
  };
}
