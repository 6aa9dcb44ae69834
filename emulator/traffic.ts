import type { Packet } from 'mqtt-packet';
import { type DecodeResult, decodeFrame, type ProtocolVersion } from '../shared/protocol/frames.js';
import type { GatewayObserver } from './gateway.js';
import type { EmulatorLog } from './log.js';
import { framePacketTypes } from './metrics.js';
import { reasonText } from './reason-names.js';

/** What the gateway saw of one connection: its CONNECT, its CONNACK and its traffic. */
export interface ConnectionView {
  readonly connectionId: string;
  readonly connectedAt: number;
  readonly sourceIp: string;
  lastActiveAt: number;
  /** From CONNECT; the CONNACK's assigned identifier replaces an empty one (MQTT 5). */
  clientId?: string;
  username?: string;
  protocolVersion?: ProtocolVersion;
  keepAliveSeconds?: number;
  cleanSession?: boolean;
  /** Set once a successful CONNACK went out. */
  accepted: boolean;
  sessionPresent?: boolean;
  publishesIn: number;
  publishesOut: number;
}

interface Tracked extends ConnectionView {
  /** SUBSCRIBEs awaiting their SUBACK, by packet identifier. */
  readonly subscribing: Map<number, string[]>;
  /** Why the connection is ending, as far as the gateway can tell. */
  ending?: string;
}

/** Message counts per second over the last few whole seconds. */
export interface TrafficRates {
  /** PUBLISH packets from clients per second. */
  readonly publishesInPerSecond: number;
  /** PUBLISH packets to clients per second. */
  readonly publishesOutPerSecond: number;
  readonly publishesIn: number;
  readonly publishesOut: number;
  /** Seconds the rates average over. */
  readonly windowSeconds: number;
}

/** The protocol's largest packet: the observer reads what the broker enforces its own limits on. */
const anySize = 268_435_460;
const rateWindowSeconds = 5;
const noClient = '-';
/** Server DISCONNECT reasons (keep alive timeout, server shutting down, session taken over, maximum connect time) that refuse nothing. */
const notRefusals = new Set([0x8b, 0x8d, 0x8e, 0xa0]);

const connectionTimes = (seconds: number) => `ka=${seconds}`;

/** The wire codec's reading of a frame; an observer never lets a codec exception reach the gateway. */
function decode(frame: string, version: ProtocolVersion | undefined): DecodeResult {
  try {
    return decodeFrame(frame, version, anySize);
  } catch (error) {
    return {
      ok: false,
      packets: [],
      reason: `undecodable frame: ${(error as Error).message}`,
      fault: 'malformed',
    };
  }
}

/**
 * Watches the frames crossing the emulated gateway, decodes them with the wire codec, and turns them
 * into log lines and the console's view of each connection. It sees only what API Gateway would
 * see: the broker core knows nothing of it.
 *
 * @example
 * const traffic = new Traffic(createLog('info', console.log));
 * new Gateway({ ...options, observer: traffic });
 */
export class Traffic implements GatewayObserver {
  private readonly connections = new Map<string, Tracked>();
  /** Publish counts by epoch second, in and out; only the rate window is kept. */
  private readonly buckets = new Map<number, { in: number; out: number }>();
  private publishesIn = 0;
  private publishesOut = 0;

  constructor(
    private readonly log: EmulatorLog,
    private readonly now: () => number = Date.now,
  ) {}

  /** The client id an open connection's CONNECT (or CONNACK) gave, if any. */
  clientIdOf(connectionId: string): string | undefined {
    return this.connections.get(connectionId)?.clientId;
  }

  /** The open connections, oldest first. */
  get views(): ConnectionView[] {
    return [...this.connections.values()];
  }

  handshakeRefused(status: number, body: string): void {
    this.log.event(
      'info',
      'refused',
      noClient,
      `WebSocket handshake: HTTP ${status}${body ? ` ${body}` : ''}`,
    );
  }

  opened(connectionId: string, connectedAt: number, sourceIp: string): void {
    this.connections.set(connectionId, {
      connectionId,
      connectedAt,
      sourceIp,
      lastActiveAt: connectedAt,
      accepted: false,
      publishesIn: 0,
      publishesOut: 0,
      subscribing: new Map(),
    });
  }

  frameIn(connectionId: string, frame: string): void {
    const connection = this.connections.get(connectionId);
    if (!connection) return;
    connection.lastActiveAt = this.now();
    const decoded = decode(frame, connection.protocolVersion);
    for (const packet of decoded.packets) this.fromClient(connection, packet);
    if (!decoded.ok) this.log.event('info', 'refused', this.nameOf(connection), decoded.reason);
  }

  frameOut(connectionId: string, frame: string): void {
    const connection = this.connections.get(connectionId);
    if (!connection) return;
    connection.lastActiveAt = this.now();
    // Deliveries are most of what goes out (10,000 posts for a burst to 10,000): unless they are logged,
    // their count is all the view needs, read from the fixed headers without decoding the packets.
    if (!this.log.enabled('debug')) {
      const types = framePacketTypes(frame);
      if (types.length > 0 && types.every((type) => type === 'publish')) {
        for (const _ of types) this.countDelivery(connection);
        return;
      }
    }
    for (const packet of decode(frame, connection.protocolVersion).packets) {
      this.toClient(connection, packet);
    }
  }

  closing(connectionId: string, why: string): void {
    const connection = this.connections.get(connectionId);
    if (connection) connection.ending ??= why;
  }

  closed(connectionId: string, code: number): void {
    const connection = this.connections.get(connectionId);
    if (!connection) return;
    this.connections.delete(connectionId);
    const why = connection.ending ?? (code === 1000 ? 'closed by the client' : `network close (${code})`);
    this.log.event('info', 'disconnect', this.nameOf(connection), why);
  }

  /** PUBLISH rates over the last few whole seconds, and totals since start. */
  rates(): TrafficRates {
    const current = Math.floor(this.now() / 1000);
    let publishesIn = 0;
    let publishesOut = 0;
    for (let second = current - rateWindowSeconds; second < current; second++) {
      publishesIn += this.buckets.get(second)?.in ?? 0;
      publishesOut += this.buckets.get(second)?.out ?? 0;
    }
    return {
      publishesInPerSecond: publishesIn / rateWindowSeconds,
      publishesOutPerSecond: publishesOut / rateWindowSeconds,
      publishesIn: this.publishesIn,
      publishesOut: this.publishesOut,
      windowSeconds: rateWindowSeconds,
    };
  }

  private count(direction: 'in' | 'out'): void {
    const second = Math.floor(this.now() / 1000);
    let bucket = this.buckets.get(second);
    if (!bucket) {
      bucket = { in: 0, out: 0 };
      this.buckets.set(second, bucket);
      for (const old of this.buckets.keys()) if (old < second - rateWindowSeconds) this.buckets.delete(old);
    }
    bucket[direction]++;
  }

  private countDelivery(connection: Tracked): void {
    connection.publishesOut++;
    this.publishesOut++;
    this.count('out');
  }

  private nameOf(connection: ConnectionView): string {
    if (connection.clientId === undefined) return noClient;
    return connection.clientId === '' ? '(assigned)' : connection.clientId;
  }

  private fromClient(connection: Tracked, packet: Packet): void {
    switch (packet.cmd) {
      case 'connect':
        connection.clientId = packet.clientId;
        connection.username = packet.username;
        connection.protocolVersion = packet.protocolVersion === 5 ? 5 : 4;
        connection.keepAliveSeconds = packet.keepalive;
        connection.cleanSession = packet.clean;
        return;
      case 'publish': {
        connection.publishesIn++;
        this.publishesIn++;
        this.count('in');
        if (this.log.enabled('debug')) {
          const bytes =
            typeof packet.payload === 'string' ? Buffer.byteLength(packet.payload) : packet.payload.length;
          this.log.event(
            'debug',
            'publish',
            this.nameOf(connection),
            `${packet.topic} q${packet.qos}${packet.retain ? ' retain' : ''} ${bytes} B`,
          );
        }
        return;
      }
      case 'subscribe':
        if (packet.messageId !== undefined) {
          connection.subscribing.set(
            packet.messageId,
            packet.subscriptions.map((s) => s.topic),
          );
        }
        return;
      case 'unsubscribe':
        this.log.event('info', 'unsubscribe', this.nameOf(connection), packet.unsubscriptions.join(' '));
        return;
      case 'disconnect':
        connection.ending ??=
          packet.reasonCode && packet.reasonCode !== 0
            ? `client DISCONNECT ${reasonText(packet.reasonCode, 5)}`
            : 'client DISCONNECT';
        return;
      default:
        return;
    }
  }

  private toClient(connection: Tracked, packet: Packet): void {
    const version = connection.protocolVersion;
    switch (packet.cmd) {
      case 'connack': {
        const code = version === 5 ? (packet.reasonCode ?? 0) : (packet.returnCode ?? 0);
        const assigned = packet.properties?.assignedClientIdentifier;
        if (assigned) connection.clientId = assigned;
        if (code !== 0) {
          this.log.event(
            'info',
            'refused',
            this.nameOf(connection),
            `CONNECT: ${reasonText(code, version, 'connack')}`,
          );
          connection.ending ??= 'connection refused';
          return;
        }
        connection.accepted = true;
        connection.sessionPresent = packet.sessionPresent;
        const details = [
          `v${version}`,
          connectionTimes(connection.keepAliveSeconds ?? 0),
          connection.cleanSession ? 'clean' : 'persistent',
          `session-present=${packet.sessionPresent ? 1 : 0}`,
        ];
        if (connection.username !== undefined) details.push(`user=${connection.username}`);
        this.log.event('info', 'connect', this.nameOf(connection), details.join(' '));
        return;
      }
      case 'suback': {
        const filters =
          packet.messageId === undefined ? undefined : connection.subscribing.get(packet.messageId);
        if (!filters || packet.messageId === undefined) return;
        connection.subscribing.delete(packet.messageId);
        const granted = packet.granted.map((g) => (typeof g === 'number' ? g : 0x80));
        const parts = filters.map((filter, i) => {
          const code = granted[i] ?? 0x80;
          return code < 0x80 ? `${filter} q${code}` : `${filter} refused ${reasonText(code, version)}`;
        });
        this.log.event('info', 'subscribe', this.nameOf(connection), parts.join(', '));
        return;
      }
      case 'puback':
      case 'pubrec':
        if (packet.reasonCode !== undefined && packet.reasonCode >= 0x80) {
          this.log.event(
            'info',
            'refused',
            this.nameOf(connection),
            `PUBLISH id ${packet.messageId}: ${reasonText(packet.reasonCode, version)}`,
          );
        }
        return;
      case 'publish': {
        this.countDelivery(connection);
        if (this.log.enabled('debug')) {
          const bytes =
            typeof packet.payload === 'string' ? Buffer.byteLength(packet.payload) : packet.payload.length;
          this.log.event(
            'debug',
            'deliver',
            this.nameOf(connection),
            `${packet.topic} q${packet.qos}${packet.retain ? ' retain' : ''}${packet.dup ? ' dup' : ''} ${bytes} B`,
          );
        }
        return;
      }
      case 'disconnect': {
        const code = packet.reasonCode ?? 0;
        const reason = reasonText(code, 5);
        // A takeover, a keep-alive expiry or a shutdown ends the connection without refusing a packet.
        if (code >= 0x80 && !notRefusals.has(code))
          this.log.event('info', 'refused', this.nameOf(connection), reason);
        connection.ending ??= `broker DISCONNECT ${reason}`;
        return;
      }
      default:
        return;
    }
  }
}
